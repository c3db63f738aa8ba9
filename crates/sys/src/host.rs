//! The kernel's host name.

use std::io;

/// gethostname(2), decoded lossily (a host name is ASCII in practice). May be empty.
pub fn hostname() -> io::Result<String> {
    let name = nix::unistd::gethostname().map_err(crate::io_error)?;
    Ok(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostname_is_the_kernels() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(super::hostname().unwrap(), kernel.trim_end_matches('\n'));
    }
}
