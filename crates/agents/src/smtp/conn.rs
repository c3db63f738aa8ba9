//! One TCP (optionally TLS) or unix-domain connection to an SMTP or LMTP server: connect,
//! write, read replies, switch to TLS — each under a timeout. No SMTP decisions are made here.
//! Unix-domain sockets exist for LMTP (`lmtp:unix:/run/dovecot/lmtp`); they never do TLS.
//!
//! Inputs → outputs: a [`Peer`] (host name, address or socket path) → a [`Connection`]; bytes to send →
//! written and flushed; incoming bytes → [`Reply`]s.
//! Invariants: every operation is bounded in time (the caller's timeout) and in memory (a
//! reply line keeps at most [`MAX_LINE`] bytes, a reply at most `MAX_REPLY_LINES` lines, the
//! rest is read and dropped); after STARTTLS no byte received in plaintext is ever used
//! (CVE-2011-0411 style injection is refused).
//! Security stance: the server is untrusted; nothing it sends can make us allocate without
//! bound, block without bound, or panic.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::reply::{Capabilities, Reply, ReplyError, ReplyParser, MAX_LINE};

/// Where a connection goes: a TCP address, or a unix-domain socket (LMTP only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Endpoint {
        Endpoint::Tcp(addr)
    }
}

/// The server end of a connection, as it appears in logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Peer {
    /// The MX host name, or the address itself for IP nexthops; for a unix socket, our own
    /// host name (as Postfix's LMTP client logs `relay=myhost[private/dovecot-lmtp]`).
    pub host: String,
    pub addr: Endpoint,
}

impl Peer {
    /// `host[ip]` (`host[/socket/path]` for unix sockets), Postfix's `namaddr`.
    pub fn namaddr(&self) -> String {
        match &self.addr {
            Endpoint::Tcp(addr) => format!("{}[{}]", self.host, addr.ip()),
            Endpoint::Unix(path) => format!("{}[{}]", self.host, path.display()),
        }
    }

    /// `host[ip]:port`, the `relay=` of log lines; unix sockets have no port.
    pub fn relay(&self) -> String {
        match &self.addr {
            Endpoint::Tcp(addr) => format!("{}:{}", self.namaddr(), addr.port()),
            Endpoint::Unix(_) => self.namaddr(),
        }
    }
}

/// Why an I/O step failed.
#[derive(Debug)]
pub(crate) enum ConnError {
    Timeout,
    /// The server closed the connection (or reset it).
    Lost,
    /// A reply we cannot understand, or bytes where none may be.
    Protocol(String),
}

impl From<ReplyError> for ConnError {
    fn from(e: ReplyError) -> Self {
        ConnError::Protocol(e.to_string())
    }
}

/// Plain TCP or TLS over TCP.
pub(crate) type NetStream = security::stream::MaybeTls<TlsStream<TcpStream>>;

/// A TCP (maybe TLS) stream or a unix-domain stream.
pub(crate) enum Stream {
    Net(NetStream),
    Local(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Net(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Local(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Net(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Local(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Net(s) => Pin::new(s).poll_flush(cx),
            Stream::Local(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Net(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Local(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// An open SMTP connection and what we learned about the server.
pub(crate) struct Connection {
    reader: BufReader<Stream>,
    /// Private so that `relay` always describes it: see [`Connection::set_peer`].
    peer: Peer,
    /// `peer.relay()`, made once: every delivery over the connection logs it (formatting an
    /// address costs more than the rest of a log line).
    relay: String,
    /// From the last EHLO (empty after HELO).
    pub caps: Capabilities,
    pub tls: bool,
    /// `TLSv1.3 with cipher … (256/256 bits)` once TLS is on (for the log).
    pub tls_session: String,
    pub opened: Instant,
    /// Times this session was taken from the connection cache (Postfix's `reuse_count`).
    pub reused: usize,
    /// Taken from the cache and not yet shown alive: the next pipelined transaction opens
    /// with RSET and treats a missing or negative reply to it as a dead cached session.
    pub probe_pending: bool,
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The local address to connect from could not be bound (nothing was sent).
    Bind(IpAddr, io::Error),
    Connect(io::Error),
}

/// A TCP socket of `to`'s family, bound to `source` (port chosen by the system) if given.
fn tcp_socket(to: &SocketAddr, source: Option<IpAddr>) -> Result<TcpSocket, ConnectError> {
    let socket = match to {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(ConnectError::Connect)?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| ConnectError::Bind(ip, e))?;
    }
    Ok(socket)
}

impl Connection {
    /// The server end, as it appears in logs.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// `host[ip]:port`, the `relay=` of log lines ([`Peer::relay`], kept).
    pub fn relay(&self) -> &str {
        &self.relay
    }

    /// Logs the connection as `peer` from now on (an LMTP socket under its configured name).
    pub fn set_peer(&mut self, peer: Peer) {
        self.relay = peer.relay();
        self.peer = peer;
    }

    /// Logs the connection under `host` from now on (a reused session, under the host name
    /// its new delivery looked up).
    pub fn set_host(&mut self, host: String) {
        if self.peer.host == host {
            return;
        }
        // The label is `host[address]:port`: the new host before the old label's address
        // part (formatting the address anew cost more than the rest of a reuse).
        let relay = match self.relay.strip_prefix(self.peer.host.as_str()) {
            Some(address) => {
                let mut relay = String::with_capacity(host.len() + address.len());
                relay.push_str(&host);
                relay.push_str(address);
                relay
            }
            None => String::new(),
        };
        self.peer.host = host;
        self.relay = match relay.is_empty() {
            true => self.peer.relay(),
            false => relay,
        };
    }

    /// Opens the TCP connection (Nagle off: pipelined commands go out at once), from the
    /// local address `source` when given, or the unix-domain one (`source` is not used).
    pub async fn connect(
        peer: Peer,
        limit: Duration,
        source: Option<IpAddr>,
    ) -> Result<Connection, ConnectError> {
        let open = async {
            match &peer.addr {
                Endpoint::Tcp(addr) => {
                    let socket = tcp_socket(addr, source)?;
                    let tcp = socket.connect(*addr).await.map_err(ConnectError::Connect)?;
                    tcp.set_nodelay(true).map_err(ConnectError::Connect)?;
                    Ok(Stream::Net(NetStream::Plain(tcp)))
                }
                Endpoint::Unix(path) => UnixStream::connect(path)
                    .await
                    .map(Stream::Local)
                    .map_err(ConnectError::Connect),
            }
        };
        let stream = match tokio::time::timeout(limit, open).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ConnectError::Connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "Connection timed out",
                )))
            }
        };
        Ok(Connection {
            reader: BufReader::new(stream),
            relay: peer.relay(),
            peer,
            caps: Capabilities::default(),
            tls: false,
            tls_session: String::new(),
            opened: Instant::now(),
            reused: 0,
            probe_pending: false,
        })
    }

    /// Writes and flushes `bytes` within `limit`.
    pub async fn send(&mut self, bytes: &[u8], limit: Duration) -> Result<(), ConnError> {
        let stream = self.reader.get_mut();
        let write = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ConnError::Lost),
            Err(_) => Err(ConnError::Timeout),
        }
    }

    /// Reads one complete reply within `limit` (for all of its lines together).
    pub async fn read_reply(&mut self, limit: Duration) -> Result<Reply, ConnError> {
        match tokio::time::timeout(limit, self.read_reply_unbounded()).await {
            Ok(result) => result,
            Err(_) => Err(ConnError::Timeout),
        }
    }

    async fn read_reply_unbounded(&mut self) -> Result<Reply, ConnError> {
        let mut parser = ReplyParser::default();
        let mut line = Vec::with_capacity(128);
        loop {
            line.clear();
            self.read_line(&mut line).await?;
            if let Some(reply) = parser.push(&line)? {
                return Ok(reply);
            }
        }
    }

    /// One line without its CR LF; bytes past [`MAX_LINE`] are read and dropped.
    async fn read_line(&mut self, line: &mut Vec<u8>) -> Result<(), ConnError> {
        loop {
            let available = self.reader.fill_buf().await.map_err(|_| ConnError::Lost)?;
            if available.is_empty() {
                return Err(ConnError::Lost);
            }
            let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], i + 1),
                None => (available, available.len()),
            };
            let room = MAX_LINE.saturating_sub(line.len());
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            let found = done > chunk.len();
            self.reader.consume(done);
            if found {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(());
            }
        }
    }

    /// True when the server sent bytes we have not read (after a reply that must be last).
    pub fn has_unread_input(&self) -> bool {
        !self.reader.buffer().is_empty()
    }

    /// Runs the TLS handshake on this connection (after the server's 220 to STARTTLS).
    pub async fn start_tls(
        self,
        handshake: &super::tls::Handshake,
        limit: Duration,
    ) -> Result<Connection, ConnError> {
        if self.has_unread_input() {
            return Err(ConnError::Protocol(
                "server sent data before the TLS handshake".into(),
            ));
        }
        let Stream::Net(NetStream::Plain(tcp)) = self.reader.into_inner() else {
            return Err(ConnError::Protocol(
                "TLS is already on, or not possible here".into(),
            ));
        };
        // Without SNI (`enable_sni` off) the name only satisfies the API: the certificate
        // is checked by the configuration's verifier against the policy's names.
        let name = handshake
            .sni
            .clone()
            .unwrap_or_else(|| server_name(&self.peer));
        let scheme = handshake.scheme.clone();
        let handshake = TlsConnector::from(handshake.config.clone()).connect(name, tcp);
        let tls = match tokio::time::timeout(limit, handshake).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(ConnError::Protocol(e.to_string())),
            Err(_) => return Err(ConnError::Timeout),
        };
        let signed_with = *scheme.lock().unwrap_or_else(|e| e.into_inner());
        let tls_session = super::tls::describe_session(tls.get_ref().1, signed_with);
        Ok(Connection {
            reader: BufReader::new(Stream::Net(NetStream::Tls(Box::new(tls)))),
            peer: self.peer,
            relay: self.relay,
            caps: Capabilities::default(),
            tls: true,
            tls_session,
            opened: self.opened,
            reused: self.reused,
            probe_pending: false,
        })
    }

    /// Sends QUIT without waiting for the answer (Postfix's `smtp_skip_quit_response`) and
    /// closes the connection.
    pub async fn quit(mut self, limit: Duration) {
        let _ = self.send(b"QUIT\r\n", limit).await;
        let stream = self.reader.get_mut();
        let _ = tokio::time::timeout(limit, stream.shutdown()).await;
    }
}

/// A server name for a session without SNI: the MX host name when it is a DNS name, else
/// the address (never sent: the configuration has SNI off).
fn server_name(peer: &Peer) -> ServerName<'static> {
    match (&peer.addr, ServerName::try_from(peer.host.clone())) {
        (_, Ok(name)) => name,
        (Endpoint::Tcp(addr), Err(_)) => ServerName::IpAddress(addr.ip().into()),
        (Endpoint::Unix(_), Err(_)) => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    }
}
