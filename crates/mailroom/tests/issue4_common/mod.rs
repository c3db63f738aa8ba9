//! Harness of issue 4's end-to-end tests (`issue4_*.rs`, delivery to other servers), on top
//! of `common`: a daemon with an SMTP listener on a free loopback port, real peers on
//! loopback — Postfix's `smtp-sink`, a scripted SMTP server ([`Peer`]) whose answers a test
//! can change while it runs, a tiny authoritative DNS server ([`Dns`]) for MX tests — a
//! minimal SMTP client (for the test content filter's re-injection), and Python's `email`
//! module to read delivery status notifications field by field.
//!
//! Everything is bounded in time: sockets have timeouts, waits poll with a deadline, and
//! every server thread stops when its handle is dropped (or when its client goes away).
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::{python, tail, Daemon, TestEnv, DEADLINE};

/// How long a peer or client waits for one line before giving up on the connection.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub use crate::common::free_port;

/// Polls `done` every 50 ms for at most `limit`; false if it never became true.
pub fn poll_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// The mailroom side.

/// A test world: the daemon's environment with an SMTP listener (role `smtp`) on `port`,
/// `127.0.0.1` trusted for relaying, TLS key pair and password file inside the test dir.
pub struct World {
    pub env: TestEnv,
    pub port: u16,
    pub daemon: Option<Daemon>,
}

impl World {
    /// A world (not started) whose configuration is the common base plus `extra`.
    pub fn new(extra: &str) -> World {
        let port = free_port();
        let env = TestEnv::new();
        let world = World {
            env,
            port,
            daemon: None,
        };
        world.configure(extra);
        world
    }

    /// Rewrites the configuration (base + listener + `extra`); takes effect at the next start.
    /// Unlike [`TestEnv::write_config`], `extra` may override the base's parameters (the
    /// backoff times, say): a base line whose key `extra` sets is left out.
    pub fn configure(&self, extra: &str) {
        let root = self.env.root.display();
        let extra = format!(
            r#"data_directory = "{root}"
smtpd_sasl_password_file = "{root}/passwd"
smtpd_listen = ["127.0.0.1:{port}"]
mynetworks = ["127.0.0.1/32"]
{extra}"#,
            port = self.port
        );
        let key = |line: &str| {
            line.split('=')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let overridden: Vec<String> = extra.lines().filter(|l| l.contains('=')).map(key).collect();
        let base = crate::common::base_config(&self.env.root, &self.env.queue_dir(), "");
        let mut text: String = base
            .lines()
            .filter(|l| !l.contains('=') || !overridden.contains(&key(l)))
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(&extra);
        text.push('\n');
        fs::write(&self.env.config, text).expect("write config");
    }

    /// Starts the daemon and waits until its SMTP listeners (`listeners` of them) are up.
    pub fn start_with_listeners(&mut self, listeners: usize) {
        // A bad configuration fails here at once, not after the harness's 60 s wait.
        self.run_ok(&["config", "-n"]);
        let before = self.env.log_lines("listening on").len();
        self.daemon = Some(self.env.start());
        self.env.wait_log("listening on", before + listeners);
    }

    pub fn start(&mut self) {
        self.start_with_listeners(1);
    }

    pub fn started(extra: &str) -> World {
        let mut world = World::new(extra);
        world.start();
        world
    }

    /// Sends one message over SMTP to the daemon's listener (fails the test on a refusal).
    pub fn submit(&self, sender: &str, recipients: &[&str], message: &str) {
        smtp_send(self.port, sender, "", &plain(recipients), message)
            .unwrap_or_else(|e| panic!("SMTP submission refused: {e}"));
    }

    /// Log lines containing every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.env
            .log()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }

    /// Waits until at least `n` log lines contain every one of `needles`.
    pub fn wait_lines(&self, needles: &[&str], n: usize) -> Vec<String> {
        let ok = poll_for(DEADLINE, || self.lines_with(needles).len() >= n);
        assert!(
            ok,
            "timed out waiting for {n} log lines with {needles:?}; log tail:\n{}",
            tail(&self.env.log(), 40)
        );
        self.lines_with(needles)
    }

    /// `mailroom postqueue -j`: (queue name, queue id, recipients) per message.
    pub fn queue(&self) -> Vec<(String, String, Vec<String>)> {
        self.env
            .queue_json()
            .into_iter()
            .map(|v| {
                let recipients = v["recipients"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .map(|r| r["address"].as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    v["queue_name"].as_str().unwrap_or_default().to_string(),
                    v["queue_id"].as_str().unwrap_or_default().to_string(),
                    recipients,
                )
            })
            .collect()
    }

    /// Runs `mailroom ARGS`, failing the test unless it exits 0.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.env.run(args, b"");
        crate::common::assert_success(&out, &format!("mailroom {args:?}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Recipients without DSN parameters, for [`smtp_send`].
pub fn plain<'a>(recipients: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    recipients.iter().map(|r| (*r, "")).collect()
}

/// A small message with `subject` (LF line ends).
pub fn message(subject: &str) -> String {
    format!("From: sender@test.example\nTo: someone@far.example\nSubject: {subject}\nMessage-ID: <{subject}@test.example>\n\nbody of {subject}\n")
}

// ---------------------------------------------------------------------------------------
// A minimal SMTP client (no pipelining): what the test content filter re-injects with.

/// Reads one (possibly multi-line) reply; returns the code and the last line.
fn read_reply(reader: &mut impl BufRead) -> Result<(u16, String), String> {
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return Err("connection closed".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
        let line = line.trim_end().to_string();
        if line.len() < 3 {
            return Err(format!("short reply {line:?}"));
        }
        let code: u16 = line[..3]
            .parse()
            .map_err(|_| format!("bad reply {line:?}"))?;
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, line));
        }
    }
}

/// Sends one message: `MAIL FROM:<sender> mail_params`, `RCPT TO:<r> params` for each
/// recipient, the message (LF or CRLF line ends; dot-stuffed here). Err(reply) on refusal.
pub fn smtp_send(
    port: u16,
    sender: &str,
    mail_params: &str,
    recipients: &[(&str, &str)],
    message: &str,
) -> Result<(), String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
    stream.set_write_timeout(Some(IO_TIMEOUT)).ok();
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut step = |command: Option<String>, want: u16| -> Result<(), String> {
        if let Some(c) = &command {
            writer
                .write_all(format!("{c}\r\n").as_bytes())
                .map_err(|e| format!("write: {e}"))?;
        }
        let (code, line) = read_reply(&mut reader)?;
        if code / 100 != want / 100 {
            return Err(format!("{command:?} -> {line}"));
        }
        Ok(())
    };
    step(None, 220)?;
    step(Some("EHLO filter.test".into()), 250)?;
    let params = match mail_params {
        "" => String::new(),
        p => format!(" {p}"),
    };
    step(Some(format!("MAIL FROM:<{sender}>{params}")), 250)?;
    for (rcpt, p) in recipients {
        let params = match *p {
            "" => String::new(),
            p => format!(" {p}"),
        };
        step(Some(format!("RCPT TO:<{rcpt}>{params}")), 250)?;
    }
    step(Some("DATA".into()), 354)?;
    let mut body = String::new();
    for line in message.lines() {
        if line.starts_with('.') {
            body.push('.');
        }
        body.push_str(line);
        body.push_str("\r\n");
    }
    body.push('.');
    step(Some(body), 250)?;
    let _ = step(Some("QUIT".into()), 221);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Postfix's smtp-sink.

pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// A running `smtp-sink -c`, killed (by its own handle) when dropped.
pub struct Sink {
    child: Child,
    pub port: u16,
    counters: PathBuf,
}

impl Sink {
    /// `smtp-sink -c [extra] 127.0.0.1:PORT 256` on a free port; its counters go to a file
    /// in `dir`.
    pub fn start(dir: &Path, extra: &[&str]) -> Sink {
        Sink::start_on(dir, free_port(), extra)
    }

    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Sink {
        assert!(
            Path::new(SMTP_SINK).exists(),
            "{SMTP_SINK} is not installed (apt-get install postfix; scripts/test.sh does it)"
        );
        let counters = dir.join(format!("smtp-sink-{port}.out"));
        let out = fs::File::create(&counters).expect("sink output file");
        let mut command = Command::new(SMTP_SINK);
        if crate::common::is_root() {
            command.args(["-u", "nobody"]); // as root, smtp-sink insists on dropping privileges
        }
        let child = command
            .arg("-c")
            .args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        let sink = Sink {
            child,
            port,
            counters,
        };
        let up = poll_for(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "smtp-sink did not start on port {port}");
        sink
    }

    /// Messages received so far (the last `mesg=N` of `-c`'s running counters).
    pub fn messages(&self) -> usize {
        let text = fs::read_to_string(&self.counters).unwrap_or_default();
        text.rsplit("mesg=")
            .next()
            .filter(|_| text.contains("mesg="))
            .and_then(|rest| {
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// A scripted SMTP server.

/// The reply to one RCPT TO, given the address.
pub type RcptRule = Arc<dyn Fn(&str) -> String + Send + Sync>;
/// The reply to the final dot, given the transaction (a filter re-injects here).
pub type DotRule = Arc<dyn Fn(&Received) -> String + Send + Sync>;

/// What the server does when a client connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConnect {
    /// `220` greeting and a normal session.
    Greet,
    /// Accepts and closes at once (a broken or dead server).
    Close,
}

struct Script {
    connect: OnConnect,
    rcpt: RcptRule,
    dot: DotRule,
}

/// One transaction as the server saw it: accepted recipients only; `data` is the message
/// with LF line ends and the dot-stuffing undone.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub sender: String,
    pub mail_line: String,
    pub recipients: Vec<String>,
    pub data: String,
}

impl Received {
    /// The first header named `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\n\n").next().unwrap_or_default();
        crate::common::header_value(head, name)
    }
}

struct PeerState {
    script: Mutex<Script>,
    connections: AtomicUsize,
    rcpt_attempts: Mutex<Vec<String>>,
    messages: Mutex<Vec<Received>>,
}

/// A scripted SMTP server on a loopback port: answers 250 to everything unless told
/// otherwise ([`Peer::set_rcpt`], [`Peer::set_dot`], [`Peer::set_connect`] — changeable
/// while it runs), and records connections, RCPT attempts and accepted messages.
pub struct Peer {
    pub port: u16,
    state: Arc<PeerState>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

pub fn accept_all() -> RcptRule {
    Arc::new(|_| "250 2.1.5 Ok".to_string())
}

/// Every RCPT gets `reply`.
pub fn rcpt_reply(reply: &str) -> RcptRule {
    let reply = reply.to_string();
    Arc::new(move |_| reply.clone())
}

impl Peer {
    /// A server accepting everything.
    pub fn start() -> Peer {
        Peer::start_with(OnConnect::Greet, accept_all())
    }

    pub fn start_with(connect: OnConnect, rcpt: RcptRule) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind peer");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).expect("nonblocking");
        let counter = AtomicUsize::new(0);
        let state = Arc::new(PeerState {
            script: Mutex::new(Script {
                connect,
                rcpt,
                dot: Arc::new(move |_| {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    format!("250 2.0.0 Ok: queued as PEER{n}")
                }),
            }),
            connections: AtomicUsize::new(0),
            rcpt_attempts: Mutex::new(Vec::new()),
            messages: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let acceptor = thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        st.connections.fetch_add(1, Ordering::SeqCst);
                        let connect = lock(&st.script).connect;
                        if connect == OnConnect::Close {
                            drop(stream);
                            continue;
                        }
                        let st = st.clone();
                        thread::spawn(move || {
                            let _ = session(&st, stream);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Peer {
            port,
            state,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn set_rcpt(&self, rule: RcptRule) {
        lock(&self.state.script).rcpt = rule;
    }

    pub fn set_dot(&self, rule: DotRule) {
        lock(&self.state.script).dot = rule;
    }

    pub fn set_connect(&self, connect: OnConnect) {
        lock(&self.state.script).connect = connect;
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Every RCPT TO address tried, accepted or not, in order.
    pub fn rcpt_attempts(&self) -> Vec<String> {
        lock(&self.state.rcpt_attempts).clone()
    }

    /// Transactions completed with a 2xx to the final dot.
    pub fn messages(&self) -> Vec<Received> {
        lock(&self.state.messages).clone()
    }

    /// Every recipient of every accepted message.
    pub fn delivered_to(&self) -> Vec<String> {
        self.messages()
            .into_iter()
            .flat_map(|m| m.recipients)
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The address between `<` and `>` after `FROM:` / `TO:`.
fn path_of(line: &str) -> String {
    match (line.find('<'), line.find('>')) {
        (Some(a), Some(b)) if a < b => line[a + 1..b].to_string(),
        _ => String::new(),
    }
}

fn session(st: &PeerState, stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    w.write_all(b"220 peer.test ESMTP scripted\r\n")?;
    let mut tx = Received::default();
    let mut in_tx = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        let verb = line
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => "250-peer.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES"
                .to_string(),
            "HELO" => "250 peer.test".to_string(),
            "MAIL" => {
                tx = Received {
                    sender: path_of(&line),
                    mail_line: line.clone(),
                    ..Received::default()
                };
                in_tx = true;
                "250 2.1.0 Ok".to_string()
            }
            "RCPT" if in_tx => {
                let rcpt = path_of(&line);
                lock(&st.rcpt_attempts).push(rcpt.clone());
                let rule = lock(&st.script).rcpt.clone();
                let reply = rule(&rcpt);
                if reply.starts_with('2') {
                    tx.recipients.push(rcpt);
                }
                reply
            }
            "DATA" if in_tx && !tx.recipients.is_empty() => {
                w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l)? == 0 {
                        return Ok(());
                    }
                    let l = l.trim_end_matches(['\r', '\n']);
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(l));
                    data.push('\n');
                }
                tx.data = data;
                in_tx = false;
                let rule = lock(&st.script).dot.clone();
                let reply = rule(&tx);
                if reply.starts_with('2') {
                    lock(&st.messages).push(std::mem::take(&mut tx));
                }
                reply
            }
            "DATA" => "554 5.5.1 Error: no valid recipients".to_string(),
            "RCPT" => "503 5.5.1 Error: need MAIL command".to_string(),
            "RSET" => {
                in_tx = false;
                "250 2.0.0 Ok".to_string()
            }
            "NOOP" => "250 2.0.0 Ok".to_string(),
            "QUIT" => {
                w.write_all(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            _ => "502 5.5.2 Error: command not recognized".to_string(),
        };
        w.write_all(format!("{reply}\r\n").as_bytes())?;
    }
}

// ---------------------------------------------------------------------------------------
// A tiny authoritative DNS server (UDP).

const TYPE_A: u16 = 1;
const TYPE_MX: u16 = 15;

/// The zone: names (lower case, no trailing dot) and their MX and A records. Unknown names
/// get NXDOMAIN; a known name without records of the asked type gets an empty NOERROR.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    mx: HashMap<String, Vec<(u16, String)>>,
    a: HashMap<String, Vec<Ipv4Addr>>,
}

impl Zone {
    /// `exchange` "." is a null MX (RFC 7505).
    pub fn mx(mut self, name: &str, preference: u16, exchange: &str) -> Self {
        self.mx
            .entry(name.to_string())
            .or_default()
            .push((preference, exchange.to_string()));
        self
    }

    pub fn a(mut self, name: &str, ip: &str) -> Self {
        self.a
            .entry(name.to_string())
            .or_default()
            .push(ip.parse().expect("IPv4 address"));
        self
    }

    fn exists(&self, name: &str) -> bool {
        self.mx.contains_key(name) || self.a.contains_key(name)
    }
}

/// The DNS server; `queries` lists `name type` of every question it got.
pub struct Dns {
    pub port: u16,
    queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dns {
    pub fn start(zone: Zone) -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind DNS");
        let port = socket.local_addr().unwrap().port();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, sp) = (queries.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !sp.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some((answer, question)) = dns_answer(&zone, &buf[..len]) {
                    lock(&q).push(question);
                    let _ = socket.send_to(&answer, from);
                }
            }
        });
        Dns {
            port,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    /// `dns_nameservers = [...]` value.
    pub fn nameserver(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn queries(&self) -> Vec<String> {
        lock(&self.queries).clone()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The answer to one query and a `name type` description, or None for garbage.
fn dns_answer(zone: &Zone, query: &[u8]) -> Option<(Vec<u8>, String)> {
    let (name, end) = read_name(query, 12)?;
    let qtype = u16::from_be_bytes([*query.get(end)?, *query.get(end + 1)?]);
    let question = query.get(12..end + 4)?;
    let name = name.to_ascii_lowercase();
    let (rcode, answers) = if zone.exists(&name) {
        (0u8, records(zone, &name, qtype))
    } else {
        (3u8, Vec::new())
    };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[..2]); // ID
    out.push(0x84 | (query[2] & 0x01)); // QR, AA, RD echoed
    out.push(0x80 | rcode); // RA, RCODE
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // NSCOUNT, ARCOUNT
    out.extend_from_slice(question);
    for (rtype, rdata) in answers {
        out.extend_from_slice(&[0xc0, 12]); // the question's name
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&60u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some((out, format!("{name} {qtype}")))
}

fn records(zone: &Zone, name: &str, qtype: u16) -> Vec<(u16, Vec<u8>)> {
    match qtype {
        TYPE_MX => zone
            .mx
            .get(name)
            .into_iter()
            .flatten()
            .map(|(pref, exchange)| {
                let mut rdata = pref.to_be_bytes().to_vec();
                rdata.extend(encode_name(exchange));
                (TYPE_MX, rdata)
            })
            .collect(),
        TYPE_A => zone
            .a
            .get(name)
            .into_iter()
            .flatten()
            .map(|ip| (TYPE_A, ip.octets().to_vec()))
            .collect(),
        _ => Vec::new(), // AAAA and the rest: the name exists, no data
    }
}

fn read_name(packet: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    loop {
        let len = *packet.get(at)? as usize;
        at += 1;
        if len == 0 {
            return Some((labels.join("."), at));
        }
        if len > 63 {
            return None; // compression in a question: not from our resolver
        }
        labels.push(String::from_utf8_lossy(packet.get(at..at + len)?).to_string());
        at += len;
    }
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

// ---------------------------------------------------------------------------------------
// Delivery status notifications, read by Python's `email` module.

const PARSE_DSN_PY: &str = r#"
import email, email.policy, json, sys
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.compat32)
out = {"content_type": msg.get_content_type(),
       "report_type": msg.get_param("report-type"),
       "subject": msg["Subject"], "to": msg["To"], "from": msg["From"],
       "auto_submitted": msg["Auto-Submitted"],
       "parts": [], "human": None,
       "per_message": {}, "recipients": [], "returned": None}
# Only the report's own parts: a returned message may itself be a report.
for part in (msg.get_payload() if msg.is_multipart() else []):
    ctype = part.get_content_type()
    out["parts"].append(ctype)
    if ctype == "text/plain" and out["human"] is None:
        out["human"] = part.get_payload(decode=True).decode("utf-8", "replace")
    elif ctype == "message/delivery-status":
        blocks = part.get_payload()
        out["per_message"] = dict(blocks[0].items())
        out["recipients"] = [dict(b.items()) for b in blocks[1:]]
    elif ctype == "text/rfc822-headers":
        out["returned"] = part.get_payload()
    elif ctype == "message/rfc822":
        out["returned"] = part.get_payload(0).as_string()
json.dump(out, sys.stdout)
"#;

/// A DSN as Python's `email` module reads it: `content_type`, `report_type`, `subject`,
/// `parts` (content types of the report's parts), `human` (the text part), `per_message`
/// and `recipients` (the delivery-status fields), `returned` (the returned message or
/// headers).
pub fn parse_dsn(raw: &[u8]) -> serde_json::Value {
    let out = python(PARSE_DSN_PY, &[], raw);
    serde_json::from_slice(&out).expect("DSN JSON")
}

/// Field `name` of a delivery-status block, as a string ("" if missing).
pub fn field<'a>(block: &'a serde_json::Value, name: &str) -> &'a str {
    block[name].as_str().unwrap_or_default()
}
