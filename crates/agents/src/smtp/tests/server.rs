//! A scriptable SMTP server for tests: real sockets on loopback, one [`Behaviour`] per
//! server saying how to answer each command (reply, delay, silence, hang up), and a
//! [`Transcript`] of what the client did (connections, commands, pipelined batches, messages
//! as they arrived on the wire).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How the server answers one command.
#[derive(Clone, Debug)]
pub enum Action {
    /// Writes these lines (a multi-line reply is separate lines with `NNN-`).
    Reply(String),
    /// Waits, then replies.
    Delay(Duration, String),
    /// Never answers (the client must time out).
    Hang,
    /// Closes the connection without a word.
    Close,
}

pub fn reply(text: &str) -> Action {
    Action::Reply(text.to_string())
}

/// What STARTTLS does.
#[derive(Clone)]
pub enum StartTls {
    /// Not offered; the command gets 502.
    Off,
    /// Offered and working.
    On(Arc<rustls::ServerConfig>),
    /// Offered, answers 220, then sends garbage instead of a handshake.
    Broken,
}

pub type RcptRule = Arc<dyn Fn(&str) -> Action + Send + Sync>;
/// The answer to AUTH (PLAIN or LOGIN) for a user and password.
pub type AuthRule = Arc<dyn Fn(&str, &str) -> Action + Send + Sync>;

/// The script of a server.
#[derive(Clone)]
pub struct Behaviour {
    pub greeting: Action,
    /// EHLO keywords after the host name line; `Err` = answer EHLO with this instead.
    pub ehlo: Result<Vec<String>, Action>,
    pub mail: Action,
    pub rcpt: RcptRule,
    pub data: Action,
    /// The reply to the final dot; `{n}` is replaced by a message counter.
    pub dot: Action,
    pub rset: Action,
    pub starttls: StartTls,
    /// Hang up after each accepted message (tests connection-cache probing).
    pub close_after_message: bool,
    /// How AUTH is answered (offer it with an `AUTH PLAIN LOGIN` EHLO keyword).
    pub auth: AuthRule,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            greeting: reply("220 test.example ESMTP"),
            ehlo: Ok(vec!["PIPELINING".into(), "8BITMIME".into()]),
            mail: reply("250 2.1.0 Ok"),
            rcpt: Arc::new(|_| reply("250 2.1.5 Ok")),
            data: reply("354 End data with <CR><LF>.<CR><LF>"),
            dot: reply("250 2.0.0 Ok: queued as Q{n}"),
            rset: reply("250 2.0.0 Ok"),
            starttls: StartTls::Off,
            close_after_message: false,
            auth: Arc::new(|_, _| reply("535 5.7.8 Error: authentication failed")),
        }
    }
}

impl Behaviour {
    pub fn with_ehlo(mut self, keywords: &[&str]) -> Self {
        self.ehlo = Ok(keywords.iter().map(|k| k.to_string()).collect());
        self
    }

    pub fn with_rcpt(mut self, rule: impl Fn(&str) -> Action + Send + Sync + 'static) -> Self {
        self.rcpt = Arc::new(rule);
        self
    }
}

/// One message as received: MAIL FROM line, accepted RCPT TO lines, DATA as on the wire.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub mail: String,
    pub rcpts: Vec<String>,
    /// Every line between DATA's 354 and the final dot, CR LF included, still dot-stuffed.
    pub data: Vec<u8>,
}

/// What the client did.
#[derive(Clone, Debug, Default)]
pub struct Transcript {
    pub connections: usize,
    /// Each connection's client address, in order of arrival.
    pub clients: Vec<SocketAddr>,
    pub tls_sessions: usize,
    /// Per TLS session: the SNI name the client sent, and the protocol version.
    pub tls_names: Vec<Option<String>>,
    pub tls_versions: Vec<String>,
    pub commands: Vec<String>,
    /// For each MAIL command: the lines that had already arrived with it (pipelining).
    pub batched_with_mail: Vec<Vec<String>>,
    /// For each RSET: the lines that had already arrived with it.
    pub batched_with_rset: Vec<Vec<String>>,
    pub messages: Vec<Received>,
    /// Each AUTH: mechanism, user, password, and whether it came over TLS.
    pub auth: Vec<(String, String, String, bool)>,
}

impl Transcript {
    pub fn count(&self, verb: &str) -> usize {
        self.commands
            .iter()
            .filter(|c| c.to_ascii_uppercase().starts_with(verb))
            .count()
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    log: Arc<Mutex<Transcript>>,
}

impl TestServer {
    pub async fn start(behaviour: Behaviour) -> TestServer {
        TestServer::start_on("127.0.0.1:0".parse().unwrap(), behaviour).await
    }

    pub async fn start_on(addr: SocketAddr, behaviour: Behaviour) -> TestServer {
        let listener = TcpListener::bind(addr).await.expect("bind test server");
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Transcript::default()));
        let shared = (Arc::new(behaviour), log.clone());
        tokio::spawn(async move {
            while let Ok((stream, client)) = listener.accept().await {
                {
                    let mut log = shared.1.lock().unwrap();
                    log.connections += 1;
                    log.clients.push(client);
                }
                let (b, l) = (shared.0.clone(), shared.1.clone());
                tokio::spawn(async move { Session::new(stream, b, l).serve().await });
            }
        });
        TestServer { addr, log }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn transcript(&self) -> Transcript {
        self.log.lock().unwrap().clone()
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Session {
    io: BufReader<Box<dyn Io>>,
    behaviour: Arc<Behaviour>,
    log: Arc<Mutex<Transcript>>,
    current: Received,
    tls: bool,
}

/// What to do after a command.
enum Next {
    Continue,
    Stop,
}

impl Session {
    fn new(stream: TcpStream, behaviour: Arc<Behaviour>, log: Arc<Mutex<Transcript>>) -> Self {
        Session {
            io: BufReader::new(Box::new(stream)),
            behaviour,
            log,
            current: Received::default(),
            tls: false,
        }
    }

    async fn serve(mut self) {
        let greeting = self.behaviour.greeting.clone();
        if !self.act(&greeting).await {
            return;
        }
        while let Some(line) = self.read_line().await {
            self.log.lock().unwrap().commands.push(line.clone());
            if let Next::Stop = self.command(&line).await {
                return;
            }
        }
    }

    async fn command(&mut self, line: &str) -> Next {
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let b = self.behaviour.clone();
        let action = match verb.as_str() {
            "EHLO" => self.ehlo_reply(),
            "HELO" => reply("250 test.example"),
            "STARTTLS" => return self.starttls().await,
            "AUTH" => match self.auth(line).await {
                Some(action) => action,
                None => return Next::Stop,
            },
            "MAIL" => {
                self.note_batch();
                self.current = Received {
                    mail: line.to_string(),
                    ..Received::default()
                };
                b.mail.clone()
            }
            "RCPT" => self.rcpt(line),
            "DATA" => return self.data().await,
            "RSET" => {
                let lines = self.buffered_lines();
                self.log.lock().unwrap().batched_with_rset.push(lines);
                b.rset.clone()
            }
            "NOOP" => reply("250 2.0.0 Ok"),
            "QUIT" => {
                self.act(&reply("221 2.0.0 Bye")).await;
                return Next::Stop;
            }
            _ => reply("502 5.5.2 Error: command not recognized"),
        };
        if self.act(&action).await {
            Next::Continue
        } else {
            Next::Stop
        }
    }

    fn ehlo_reply(&self) -> Action {
        match &self.behaviour.ehlo {
            Err(action) => action.clone(),
            Ok(keywords) => {
                let mut lines = vec!["250-test.example".to_string()];
                let offered = keywords
                    .iter()
                    .filter(|k| !(self.tls && k.eq_ignore_ascii_case("STARTTLS")));
                lines.extend(offered.map(|k| format!("250-{k}")));
                let last = lines.pop().unwrap().replacen("250-", "250 ", 1);
                lines.push(last);
                Action::Reply(lines.join("\r\n"))
            }
        }
    }

    fn rcpt(&mut self, line: &str) -> Action {
        let address = line
            .split_once('<')
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(a, _)| a.to_string())
            .unwrap_or_default();
        let action = (self.behaviour.rcpt)(&address);
        if matches!(&action, Action::Reply(r) | Action::Delay(_, r) if r.starts_with('2')) {
            self.current.rcpts.push(line.to_string());
        }
        action
    }

    /// Records the lines already buffered when MAIL was read (sent in the same batch).
    fn note_batch(&mut self) {
        let lines = self.buffered_lines();
        self.log.lock().unwrap().batched_with_mail.push(lines);
    }

    /// The lines already read from the socket but not yet answered.
    fn buffered_lines(&self) -> Vec<String> {
        String::from_utf8_lossy(self.io.buffer())
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    async fn data(&mut self) -> Next {
        let action = self.behaviour.data.clone();
        if !self.act(&action).await {
            return Next::Stop;
        }
        if !matches!(&action, Action::Reply(r) | Action::Delay(_, r) if r.starts_with('3')) {
            return Next::Continue;
        }
        let mut data = Vec::new();
        loop {
            let mut raw = Vec::new();
            match self.io.read_until(b'\n', &mut raw).await {
                Ok(0) | Err(_) => return Next::Stop,
                Ok(_) => {}
            }
            if raw == b".\r\n" {
                break;
            }
            data.extend_from_slice(&raw);
        }
        let mut received = std::mem::take(&mut self.current);
        received.data = data;
        let n = {
            let mut log = self.log.lock().unwrap();
            log.messages.push(received);
            log.messages.len()
        };
        let dot = match self.behaviour.dot.clone() {
            Action::Reply(r) => Action::Reply(r.replace("{n}", &n.to_string())),
            other => other,
        };
        if !self.act(&dot).await || self.behaviour.close_after_message {
            return Next::Stop;
        }
        Next::Continue
    }

    /// AUTH PLAIN with an initial response, or AUTH LOGIN's two prompts.
    async fn auth(&mut self, line: &str) -> Option<Action> {
        use base64::Engine;
        let decode = |b64: &str| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).to_string()
        };
        let words: Vec<&str> = line.split(' ').collect();
        let mechanism = words.get(1).copied().unwrap_or("").to_ascii_uppercase();
        let (user, password) = match mechanism.as_str() {
            "PLAIN" => {
                let token = decode(words.get(2).copied().unwrap_or(""));
                let mut parts = token.split('\0').skip(1);
                let user = parts.next().unwrap_or("").to_string();
                (user, parts.next().unwrap_or("").to_string())
            }
            "LOGIN" => {
                self.act(&reply("334 VXNlcm5hbWU6")).await;
                let user = decode(&self.read_line().await?);
                self.act(&reply("334 UGFzc3dvcmQ6")).await;
                (user, decode(&self.read_line().await?))
            }
            _ => return Some(reply("504 5.5.4 Unrecognized authentication type")),
        };
        let entry = (mechanism, user.clone(), password.clone(), self.tls);
        self.log.lock().unwrap().auth.push(entry);
        Some((self.behaviour.auth)(&user, &password))
    }

    async fn starttls(&mut self) -> Next {
        let config = match self.behaviour.starttls.clone() {
            StartTls::Off => return self.continue_after(&reply("502 5.5.1 no TLS here")).await,
            StartTls::Broken => {
                self.act(&reply("220 2.0.0 Ready to start TLS")).await;
                self.act(&reply("this is not a TLS handshake")).await;
                return Next::Stop;
            }
            StartTls::On(config) => config,
        };
        if !self.act(&reply("220 2.0.0 Ready to start TLS")).await {
            return Next::Stop;
        }
        let plain = std::mem::replace(&mut self.io, BufReader::new(Box::new(tokio::io::empty())));
        match TlsAcceptor::from(config).accept(plain.into_inner()).await {
            Ok(tls) => {
                let server = tls.get_ref().1;
                let name = server.server_name().map(str::to_string);
                let version = format!("{:?}", server.protocol_version());
                self.io = BufReader::new(Box::new(tls));
                self.tls = true;
                let mut log = self.log.lock().unwrap();
                log.tls_sessions += 1;
                log.tls_names.push(name);
                log.tls_versions.push(version);
                Next::Continue
            }
            Err(_) => Next::Stop,
        }
    }

    async fn continue_after(&mut self, action: &Action) -> Next {
        if self.act(action).await {
            Next::Continue
        } else {
            Next::Stop
        }
    }

    /// Performs `action`; false when the connection is to end.
    async fn act(&mut self, action: &Action) -> bool {
        let text = match action {
            Action::Reply(text) => text.clone(),
            Action::Delay(delay, text) => {
                tokio::time::sleep(*delay).await;
                text.clone()
            }
            Action::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return false;
            }
            Action::Close => return false,
        };
        let stream = self.io.get_mut();
        let bytes = format!("{text}\r\n");
        stream.write_all(bytes.as_bytes()).await.is_ok() && stream.flush().await.is_ok()
    }

    async fn read_line(&mut self) -> Option<String> {
        let mut raw = Vec::new();
        match self.io.read_until(b'\n', &mut raw).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(
                String::from_utf8_lossy(&raw)
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
        }
    }
}
