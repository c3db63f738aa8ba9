//! The one SMTP client of the tests ([`Client`]): writes exactly the bytes it is given and
//! reads replies with a timeout, so a test can speak byte-exact (pipelining, bare LF, slow
//! clients) or use the ready-made transaction ([`Client::send_mail`], [`smtp_send`]).
//! Python's `smtplib` ([`smtplib`]) is the independent client for TLS and AUTH.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

/// How long a client waits for one reply (or one write) before giving up.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// Connects to `address` within 5 s; an error instead of a panic (a daemon under a
    /// fault may be down).
    pub fn try_connect(address: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
        Ok(Client::from_stream(stream))
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

    /// Sends `line` + CRLF and asserts the reply's code and that its text contains `needle`.
    pub fn cmd_expect(&mut self, line: &str, code: u16, needle: &str) -> Reply {
        let reply = self.cmd(line);
        assert!(
            reply.code == code && reply.text().contains(needle),
            "{line:?}: expected {code} {needle:?}, got {}",
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

/// Why [`Client::send_mail`] did not end with the message accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A 4xx/5xx reply at some step: the command (its first line; empty for the
    /// greeting) and the reply (`451 4.3.0 ...`).
    Refused { command: String, reply: String },
    /// The connection failed, closed or timed out before the final reply.
    Broken(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused { command, reply } => write!(f, "{command:?} -> {reply}"),
            Failure::Broken(why) => write!(f, "{why}"),
        }
    }
}

impl Client {
    /// One whole transaction on a fresh connection: greeting, `EHLO client.test`,
    /// `MAIL FROM:<sender> mail_params`, `RCPT TO:<r> params` per recipient, the message
    /// (LF or CRLF line ends; dot-stuffed here), `QUIT`. Ok once the final dot got a 2xx.
    pub fn send_mail(
        &mut self,
        sender: &str,
        mail_params: &str,
        recipients: &[(&str, &str)],
        message: &str,
    ) -> Result<(), Failure> {
        self.step(None)?;
        self.step(Some("EHLO client.test".into()))?;
        self.step(Some(format!(
            "MAIL FROM:<{sender}>{}",
            with_space(mail_params)
        )))?;
        for (rcpt, params) in recipients {
            self.step(Some(format!("RCPT TO:<{rcpt}>{}", with_space(params))))?;
        }
        self.step(Some("DATA".into()))?;
        let mut body = String::new();
        for line in message.lines() {
            if line.starts_with('.') {
                body.push('.');
            }
            body.push_str(line);
            body.push_str("\r\n");
        }
        body.push('.');
        self.step(Some(body))?;
        let _ = self.step(Some("QUIT".into()));
        Ok(())
    }

    /// Sends `command` (if any) with CRLF and reads the reply: Ok on 2xx and 3xx.
    fn step(&mut self, command: Option<String>) -> Result<(), Failure> {
        if let Some(c) = &command {
            self.try_send(format!("{c}\r\n").as_bytes())
                .map_err(|e| Failure::Broken(format!("write: {e}")))?;
        }
        let reply = self.try_reply().map_err(Failure::Broken)?;
        match reply.code / 100 {
            2 | 3 => Ok(()),
            _ => Err(Failure::Refused {
                command: first_line(command.as_deref().unwrap_or_default()).to_string(),
                reply: reply.text(),
            }),
        }
    }
}

fn with_space(params: &str) -> String {
    match params {
        "" => String::new(),
        p => format!(" {p}"),
    }
}

fn first_line(command: &str) -> &str {
    command.lines().next().unwrap_or_default()
}

/// Sends one message to 127.0.0.1:`port` ([`Client::send_mail`]); Err(why) on refusal.
pub fn smtp_send(
    port: u16,
    sender: &str,
    mail_params: &str,
    recipients: &[(&str, &str)],
    message: &str,
) -> Result<(), String> {
    let mut client = Client::try_connect(local(port)).map_err(|e| format!("connect: {e}"))?;
    client
        .send_mail(sender, mail_params, recipients, message)
        .map_err(|e| e.to_string())
}

/// Recipients without DSN parameters, for [`smtp_send`].
pub fn plain<'a>(recipients: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    recipients.iter().map(|r| (*r, "")).collect()
}

/// A TCP connection from `source` to 127.0.0.1:`port` (bind before connect).
fn connect_bound(source: Ipv4Addr, port: u16) -> TcpStream {
    let target = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    sys::connect_from(SocketAddrV4::new(source, 0), target)
        .unwrap_or_else(|e| panic!("connect from {source}: {e}"))
}

/// Runs a Python script (with `smtplib` and `ssl` imported) with `args`; returns stdout.
/// The script prints one result per line; a failing script fails the test.
pub fn smtplib(script: &str, args: &[&str]) -> String {
    let full = format!("import smtplib, ssl, sys, json\n{script}");
    String::from_utf8_lossy(&crate::mbox::python(&full, args, b"")).into_owned()
}

/// The address of 127.0.0.1:`port`, for messages.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
