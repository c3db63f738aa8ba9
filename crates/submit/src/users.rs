//! Who is submitting: the real uid and its login name from the password database.
//! Environment variables (`LOGNAME`, `USER`) are not trusted for this: anyone can set them.

use std::ffi::CStr;

/// The login name of the real uid of this process, or `uid<N>` without a passwd entry.
pub fn real_user() -> (u32, String) {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    (uid, login_name(uid))
}

/// The login name of `uid`, or `uid<N>` when it has no passwd entry.
pub fn login_name(uid: u32) -> String {
    user_name(uid).unwrap_or_else(|| format!("uid{uid}"))
}

fn user_name(uid: u32) -> Option<String> {
    let mut buffer = vec![0u8; 4096];
    loop {
        // SAFETY: passwd is plain old data; zeroed is valid and getpwuid_r overwrites it.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and the buffer length is its real size.
        let status = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut result,
            )
        };
        if status == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if status != 0 || result.is_null() || entry.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points at a NUL-terminated string inside `buffer`.
        let name = unsafe { CStr::from_ptr(entry.pw_name) };
        let name = name.to_str().ok()?.to_string();
        // A name that would break the maildrop U line is no name at all.
        return (!name.is_empty() && !name.contains(char::is_whitespace)).then_some(name);
    }
}

/// True when this process runs with other rights than its caller's (setgid or setuid).
pub fn is_privileged() -> bool {
    // SAFETY: these four calls have no preconditions and cannot fail.
    unsafe { libc::getuid() != libc::geteuid() || libc::getgid() != libc::getegid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_a_name_and_unknown_uids_fall_back() {
        assert_eq!(login_name(0), "root");
        assert_eq!(login_name(3_999_999_999), "uid3999999999");
        assert!(!real_user().1.is_empty());
    }
}
