//! Harness of the SMTP server's end-to-end tests (`smtp_*.rs`), on top of `common`: a daemon
//! with its SMTP listener on a free loopback port, a byte-exact raw SMTP client (optionally
//! bound to another loopback source address such as 127.0.0.2), and Python `smtplib` /
//! `swaks` runners. Everything is bounded in time: reads time out, waits poll with a deadline.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{run_with_input, Daemon, TestEnv};

/// How long a raw client waits for one reply before the test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

pub use crate::common::free_port;

/// A test world whose daemon serves SMTP on `port` (role `smtp`) and maybe more listeners.
pub struct SmtpEnv {
    pub env: TestEnv,
    pub port: u16,
    pub daemon: Option<Daemon>,
}

/// The TOML lines every SMTP test adds: the listener, a data directory inside the test
/// (TLS key pair, password file), and only 127.0.0.1 as `mynetworks` (so 127.0.0.2 is a
/// stranger).
pub fn smtp_config(env: &TestEnv, port: u16, extra: &str) -> String {
    smtp_config_listening(env, &format!("\"127.0.0.1:{port}\""), extra)
}

/// [`smtp_config`] with the `smtpd_listen` list given as TOML items.
pub fn smtp_config_listening(env: &TestEnv, listen: &str, extra: &str) -> String {
    format!(
        r#"data_directory = "{root}"
smtpd_sasl_password_file = "{root}/passwd"
smtpd_listen = [{listen}]
mynetworks = ["127.0.0.1/32"]
{extra}"#,
        root = env.root.display()
    )
}

impl SmtpEnv {
    /// A fresh environment (not started) with [`smtp_config`] plus `extra`.
    pub fn new(extra: &str) -> SmtpEnv {
        let port = free_port();
        let env = TestEnv::new();
        env.write_config(&smtp_config(&env, port, extra));
        SmtpEnv {
            env,
            port,
            daemon: None,
        }
    }

    /// Starts the daemon and waits until the SMTP listener is up.
    pub fn start(&mut self) {
        let before = self.env.log_lines("listening on").len();
        self.daemon = Some(self.env.start());
        self.env.wait_log("listening on", before + 1);
    }

    pub fn started(extra: &str) -> SmtpEnv {
        let mut env = SmtpEnv::new(extra);
        env.start();
        env
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// `mailroom passwd add user` with `password` on standard input.
    pub fn add_user(&self, user: &str, password: &str) {
        let out = self
            .env
            .run(&["passwd", "add", user], format!("{password}\n").as_bytes());
        crate::common::assert_success(&out, "mailroom passwd add");
    }

    /// Runs `swaks --server 127.0.0.1:PORT ARGS`.
    pub fn swaks(&self, args: &[&str]) -> Output {
        let server = format!("127.0.0.1:{}", self.port);
        let mut cmd = Command::new("swaks");
        cmd.args(["--server", &server, "--timeout", "30"])
            .args(args);
        run_with_input(&mut cmd, b"")
    }
}

/// One SMTP reply: code and text lines (without the code and separator).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// `250 2.0.0 Ok` form of the last line, for assertions and messages.
    pub fn text(&self) -> String {
        format!(
            "{} {}",
            self.code,
            self.lines.last().map(String::as_str).unwrap_or("")
        )
    }
}

/// A raw SMTP client: writes exactly the bytes given, reads replies with a timeout.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        Client::connect_to(local(port))
    }

    pub fn connect_to(address: SocketAddr) -> Client {
        let stream =
            TcpStream::connect(address).unwrap_or_else(|e| panic!("connect {address}: {e}"));
        Client::from_stream(stream)
    }

    /// Connects from source address `source` (e.g. 127.0.0.2: any 127/8 address works on
    /// Linux loopback without configuration).
    pub fn connect_from(source: Ipv4Addr, port: u16) -> Client {
        Client::from_stream(connect_bound(source, port))
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .expect("timeout");
        stream
            .set_write_timeout(Some(REPLY_TIMEOUT))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        Client {
            reader: BufReader::new(stream),
            writer,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to server");
    }

    /// Like [`Client::send`], but a server that has closed the connection is an `Err`.
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Reads one (possibly multi-line) reply; panics on timeout or a malformed reply.
    pub fn reply(&mut self) -> Reply {
        self.try_reply()
            .unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    /// Reads one reply; `Err` when the connection closed or timed out first.
    pub fn try_reply(&mut self) -> Result<Reply, String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(format!("connection closed after {lines:?}")),
                Ok(_) => {}
                Err(e) => return Err(format!("{e} after {lines:?}")),
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("bad reply line {line:?}"))?;
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply { code, lines });
            }
        }
    }

    /// Sends `line` + CRLF and reads the reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Asserts the next reply's code (and that its text contains `needle`).
    pub fn expect(&mut self, code: u16, needle: &str) -> Reply {
        let reply = self.reply();
        assert!(
            reply.code == code && reply.text().contains(needle),
            "expected {code} {needle:?}, got {}",
            reply.text()
        );
        reply
    }

    /// `cmd` plus [`Client::expect`].
    pub fn ok(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.cmd(line);
        assert_eq!(reply.code, code, "{line:?} got {}", reply.text());
        reply
    }

    /// Greeting, EHLO, MAIL, RCPT: ready for DATA.
    pub fn start_transaction(&mut self, from: &str, to: &[&str]) {
        self.expect(220, "");
        self.ok("EHLO client.test", 250);
        self.ok(&format!("MAIL FROM:<{from}>"), 250);
        for rcpt in to {
            self.ok(&format!("RCPT TO:<{rcpt}>"), 250);
        }
    }

    /// True when the server closed the connection (EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 512];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// A TCP connection from `source` to 127.0.0.1:`port` (bind before connect, via libc).
fn connect_bound(source: Ipv4Addr, port: u16) -> TcpStream {
    // SAFETY: plain socket(2)/bind(2)/connect(2) on a descriptor we own; every struct is
    // fully initialised and its size passed correctly.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let stream = TcpStream::from_raw_fd(fd);
        let bind_to = sockaddr(SocketAddrV4::new(source, 0));
        let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, (&bind_to as *const libc::sockaddr_in).cast(), size),
            0,
            "bind {source}"
        );
        let target = sockaddr(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        assert_eq!(
            libc::connect(fd, (&target as *const libc::sockaddr_in).cast(), size),
            0,
            "connect from {source}"
        );
        stream
    }
}

fn sockaddr(address: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; zero is a valid starting value.
    let mut raw: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    raw.sin_family = libc::AF_INET as libc::sa_family_t;
    raw.sin_port = address.port().to_be();
    raw.sin_addr.s_addr = u32::from(*address.ip()).to_be();
    raw
}

/// Runs a Python script (with `smtplib` and `ssl` imported) with `args`; returns stdout.
/// The script prints one result per line; a failing script fails the test.
pub fn smtplib(script: &str, args: &[&str]) -> String {
    let full = format!("import smtplib, ssl, sys, json\n{script}");
    String::from_utf8_lossy(&crate::common::python(&full, args, b"")).into_owned()
}

/// The address of 127.0.0.1:`port`, for messages.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
