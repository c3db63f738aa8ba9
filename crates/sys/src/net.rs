//! Sockets std cannot make: a TCP connection from a chosen source address (bind before
//! connect), which std's `TcpStream::connect` does not offer.

use std::io;
use std::net::{SocketAddrV4, TcpStream};

use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
use std::os::fd::AsRawFd;

/// socket(2), bind(2) to `source`, connect(2) to `target`: a blocking IPv4 TCP stream whose
/// local address is `source` (port 0 lets the kernel pick one).
pub fn connect_from(source: SocketAddrV4, target: SocketAddrV4) -> io::Result<TcpStream> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(crate::io_error)?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(source)).map_err(crate::io_error)?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(target)).map_err(crate::io_error)?;
    Ok(TcpStream::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};

    #[test]
    fn the_connection_comes_from_the_source_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = match listener.local_addr().unwrap() {
            std::net::SocketAddr::V4(v4) => v4,
            other => panic!("not IPv4: {other}"),
        };
        let source = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 0);
        let stream = connect_from(source, target).unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), std::net::IpAddr::V4(*source.ip()));
        assert_eq!(
            stream.peer_addr().unwrap(),
            std::net::SocketAddr::V4(target)
        );
    }
}
