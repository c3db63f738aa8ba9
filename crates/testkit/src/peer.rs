//! A scripted SMTP server on loopback ([`Peer`]): the destination a relay scenario talks
//! to, whose answers the test can change while it runs (a 4xx now, 250 later; a server that
//! closes at once; a content filter that re-injects at the final dot), and which records
//! what it was offered. Every thread stops when the handle is dropped or its client goes.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::client::REPLY_TIMEOUT as IO_TIMEOUT;
use crate::text::header_value;

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
        header_value(head, name)
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

/// A content filter's final dot: re-injects the message, with `X-Filtered: yes` on top,
/// into mailroom's `reinject_listen` `port` before answering (as amavis does); 451 when the
/// re-injection fails, so nothing is lost.
pub fn reinject_to(port: u16) -> DotRule {
    Arc::new(move |m: &Received| {
        let rcpts: Vec<&str> = m.recipients.iter().map(String::as_str).collect();
        let text = format!("X-Filtered: yes\n{}", m.data);
        match crate::client::smtp_send(port, &m.sender, "", &crate::client::plain(&rcpts), &text) {
            Ok(()) => "250 2.0.0 Ok: filtered and re-injected".to_string(),
            Err(e) => format!("451 4.3.0 filter could not re-inject: {e}"),
        }
    })
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The address between `<` and `>` after `FROM:` / `TO:`.
fn path_of(line: &str) -> String {
    match (line.find('<'), line.find('>')) {
        (Some(a), Some(b)) if a < b => line[a + 1..b].to_string(),
        _ => String::new(),
    }
}

/// The scripted answer to `RCPT TO:` (recorded as an attempt; kept if accepted).
fn rcpt(st: &PeerState, tx: &mut Received, line: &str) -> String {
    let rcpt = path_of(line);
    lock(&st.rcpt_attempts).push(rcpt.clone());
    let rule = lock(&st.script).rcpt.clone();
    let reply = rule(&rcpt);
    if reply.starts_with('2') {
        tx.recipients.push(rcpt);
    }
    reply
}

/// The message after DATA up to the lone dot, LF line ends, dot-stuffing undone; None if
/// the client went away first.
fn read_data(r: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut data = String::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 {
            return Ok(None);
        }
        let l = l.trim_end_matches(['\r', '\n']);
        if l == "." {
            return Ok(Some(data));
        }
        data.push_str(l.strip_prefix('.').unwrap_or(l));
        data.push('\n');
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
            "RCPT" if in_tx => rcpt(st, &mut tx, &line),
            "DATA" if in_tx && !tx.recipients.is_empty() => {
                w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let Some(data) = read_data(&mut r)? else {
                    return Ok(());
                };
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
