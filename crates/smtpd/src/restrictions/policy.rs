//! `check_policy_service`: Postfix's policy delegation protocol (SMTPD_POLICY_README).
//! The request is `name=value` lines ending with an empty line (`request=smtpd_access_policy`,
//! `protocol_state=RCPT`, `client_address=…`, `helo_name=…`, `sender=…`, `recipient=…` …);
//! the answer is `action=…` (plus attributes that are ignored) and an empty line. The
//! action is read as an access table result (`access.rs`): `DUNNO`, `OK`, `REJECT text`,
//! `DEFER_IF_PERMIT text` (greylisting), `450 text`, `PREPEND header: text` …
//!
//! Endpoints are `inet:host:port` and `unix:/path`. Connections are kept, as Postfix keeps
//! one per smtpd process: an idle one is reused by the next query of any session
//! ([`Pool`]), closed after `smtpd_policy_service_max_idle` unused, at its first use after
//! `smtpd_policy_service_max_ttl`, or after `smtpd_policy_service_request_limit` queries.
//! Each attempt — connect, write, read — is bounded by `smtpd_policy_service_timeout`; a
//! failed attempt logs `warning: problem talking to server …` and is tried again after
//! `smtpd_policy_service_retry_delay`, up to `smtpd_policy_service_try_limit` attempts
//! (a kept connection that fails — the server may have closed it while idle — gets one
//! fresh retry that is not counted); then the caller answers
//! `smtpd_policy_service_default_action` (`451 4.3.5 Server configuration problem`).
//!
//! Security stance: the server is the operator's; its answer is still bounded (a line of at
//! most [`MAX_LINE`] bytes, at most [`MAX_ATTRIBUTES`] lines) and never trusted to be
//! well formed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tracing::warn;

use super::Request;

const MAX_LINE: usize = 4096;
const MAX_ATTRIBUTES: usize = 100;

/// The `smtpd_policy_service_*` settings.
#[derive(Debug, Clone)]
pub struct PolicySettings {
    pub timeout: Duration,
    pub default_action: String,
    pub max_idle: Duration,
    pub max_ttl: Duration,
    pub try_limit: usize,
    pub retry_delay: Duration,
    /// 0: no limit.
    pub request_limit: usize,
}

impl PolicySettings {
    pub fn from_config(cfg: &config::Config) -> PolicySettings {
        PolicySettings {
            timeout: cfg.smtpd_policy_service_timeout,
            default_action: cfg.smtpd_policy_service_default_action.clone(),
            max_idle: cfg.smtpd_policy_service_max_idle,
            max_ttl: cfg.smtpd_policy_service_max_ttl,
            try_limit: cfg.smtpd_policy_service_try_limit.max(1),
            retry_delay: cfg.smtpd_policy_service_retry_delay,
            request_limit: cfg.smtpd_policy_service_request_limit,
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection to a policy server.
struct Kept {
    stream: BufReader<Box<dyn Io>>,
    opened: Instant,
    requests: usize,
    /// Tells the idle timer which stay in the pool this is.
    serial: u64,
}

/// The idle connections per endpoint, shared by every session of one configuration
/// (a reload starts a new pool; the old connections close when their last user is done).
#[derive(Clone, Default)]
pub struct Pool {
    idle: Arc<Mutex<HashMap<String, Vec<Kept>>>>,
    serials: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

impl Pool {
    /// An idle connection to `endpoint` still within its lifetime, if any.
    fn take(&self, endpoint: &str, settings: &PolicySettings) -> Option<Kept> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(endpoint)?;
        while let Some(kept) = list.pop() {
            if kept.opened.elapsed() < settings.max_ttl {
                return Some(kept);
            }
        }
        None
    }

    /// Keeps `kept` for the next query (unless it has served its request limit), and
    /// closes it after `max_idle` if nobody took it by then.
    fn put(&self, endpoint: &str, mut kept: Kept, settings: &PolicySettings) {
        let limit = settings.request_limit;
        if limit > 0 && kept.requests >= limit {
            return;
        }
        let serial = self
            .serials
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        kept.serial = serial;
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(endpoint.to_string())
            .or_default()
            .push(kept);
        let (pool, endpoint, max_idle) = (self.clone(), endpoint.to_string(), settings.max_idle);
        tokio::spawn(async move {
            tokio::time::sleep(max_idle).await;
            let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(list) = idle.get_mut(&endpoint) {
                list.retain(|k| k.serial != serial);
            }
        });
    }
}

/// Where the policy server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port` (`[::1]:port` for IPv6).
    Inet(String),
    Unix(PathBuf),
}

impl Endpoint {
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        if let Some(address) = text.strip_prefix("inet:") {
            let valid = address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            return match valid {
                true => Ok(Endpoint::Inet(address.to_string())),
                false => Err(format!("need inet:host:port, not {text:?}")),
            };
        }
        match text.strip_prefix("unix:") {
            Some(path) if !path.is_empty() => Ok(Endpoint::Unix(PathBuf::from(path))),
            _ => Err(format!("need inet:host:port or unix:/path, not {text:?}")),
        }
    }
}

/// Asks the server at `endpoint` about `request`: `Ok(action)`, or why the last attempt
/// failed (each failed attempt is logged).
pub async fn query(
    pool: &Pool,
    settings: &PolicySettings,
    endpoint: &str,
    request: &Request,
) -> Result<String, String> {
    let parsed = Endpoint::parse(endpoint)?;
    let text = attributes(request);
    let mut attempt = 0;
    loop {
        let kept = pool.take(endpoint, settings);
        let reused = kept.is_some();
        let result = tokio::time::timeout(settings.timeout, ask(&parsed, kept, &text)).await;
        let why = match result {
            Ok(Ok((action, kept))) => {
                pool.put(endpoint, kept, settings);
                return Ok(action);
            }
            Ok(Err(why)) => why,
            Err(_) => "timeout".to_string(),
        };
        warn!(target: "smtpd", "problem talking to server {endpoint}: {why}");
        if reused {
            continue; // it may have been closed while idle: a fresh one, uncounted
        }
        attempt += 1;
        if attempt >= settings.try_limit {
            // The per-attempt lines may be folded into one "(repeated N times)".
            warn!(target: "smtpd", "policy server {endpoint}: no answer after {attempt} attempts; using smtpd_policy_service_default_action");
            return Err(why);
        }
        tokio::time::sleep(settings.retry_delay).await;
    }
}

/// One attempt, on `kept` or a new connection; the connection back with the action.
async fn ask(
    endpoint: &Endpoint,
    kept: Option<Kept>,
    text: &str,
) -> Result<(String, Kept), String> {
    let mut kept = match kept {
        Some(kept) => kept,
        None => connect(endpoint).await?,
    };
    kept.requests += 1;
    let action = exchange(&mut kept.stream, text).await?;
    Ok((action, kept))
}

async fn connect(endpoint: &Endpoint) -> Result<Kept, String> {
    let stream: Box<dyn Io> = match endpoint {
        Endpoint::Inet(address) => Box::new(
            tokio::net::TcpStream::connect(address.as_str())
                .await
                .map_err(|e| e.to_string())?,
        ),
        Endpoint::Unix(path) => Box::new(
            tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    Ok(Kept {
        stream: BufReader::new(stream),
        opened: Instant::now(),
        requests: 0,
        serial: 0,
    })
}

async fn exchange(stream: &mut BufReader<Box<dyn Io>>, text: &str) -> Result<String, String> {
    stream
        .get_mut()
        .write_all(text.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut action = None;
    for _ in 0..MAX_ATTRIBUTES {
        let line = read_line(stream).await?;
        if line.is_empty() {
            return action.ok_or_else(|| "reply without action attribute".to_string());
        }
        match line.split_once('=') {
            Some(("action", value)) => action = Some(value.to_string()),
            Some(_) => {}
            None => return Err(format!("malformed reply line: {line:?}")),
        }
    }
    Err("too many reply attributes".to_string())
}

async fn read_line(stream: &mut (impl AsyncBufRead + Unpin)) -> Result<String, String> {
    let mut line = Vec::new();
    let mut limited = AsyncReadExt::take(stream, MAX_LINE as u64 + 1);
    let n = limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed before the end of the reply".to_string());
    }
    if line.last() != Some(&b'\n') {
        return Err("reply line too long".to_string());
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// The request, as Postfix's smtpd sends it (the attributes mailroom has a value for;
/// the TLS client certificate ones are empty, as Postfix sends them without one).
fn attributes(r: &Request) -> String {
    let sasl = |i: usize| {
        r.sasl
            .as_ref()
            .map(|s| if i == 0 { s.0.clone() } else { s.1.clone() })
            .unwrap_or_default()
    };
    let counted = matches!(r.stage, super::Stage::Data | super::Stage::EndOfData);
    let pairs: Vec<(&str, String)> = vec![
        ("request", "smtpd_access_policy".into()),
        ("protocol_state", r.stage.verb().to_string()),
        ("protocol_name", r.protocol.clone()),
        ("client_address", r.client_ip.to_string()),
        ("client_name", r.client_name.clone()),
        ("reverse_client_name", r.client_name.clone()),
        ("helo_name", r.helo.clone().unwrap_or_default()),
        ("sender", r.sender.clone().unwrap_or_default()),
        ("recipient", r.recipient.clone().unwrap_or_default()),
        (
            "recipient_count",
            if counted { r.recipient_count } else { 0 }.to_string(),
        ),
        ("queue_id", r.queue_id.clone().unwrap_or_default()),
        ("instance", r.queue_id.clone().unwrap_or_default()),
        ("size", r.size.to_string()),
        ("etrn_domain", String::new()),
        ("stress", if r.stress { "yes" } else { "" }.into()),
        ("sasl_method", sasl(0)),
        ("sasl_username", sasl(1)),
        ("sasl_sender", String::new()),
        ("ccert_subject", String::new()),
        ("ccert_issuer", String::new()),
        ("ccert_fingerprint", String::new()),
        ("ccert_pubkey_fingerprint", String::new()),
        ("policy_context", String::new()),
        ("compatibility_level", "3.6".into()),
        (
            "mail_version",
            format!("mailroom-{}", env!("CARGO_PKG_VERSION")),
        ),
    ];
    let mut text = String::new();
    for (name, value) in pairs {
        // Values come from parsed command lines; a line break would end the request early.
        let value = value.replace(['\r', '\n'], " ");
        text.push_str(&format!("{name}={value}\n"));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("inet:127.0.0.1:10023"),
            Ok(Endpoint::Inet("127.0.0.1:10023".into()))
        );
        assert_eq!(
            Endpoint::parse("inet:[::1]:10023"),
            Ok(Endpoint::Inet("[::1]:10023".into()))
        );
        assert_eq!(
            Endpoint::parse("unix:/run/policy"),
            Ok(Endpoint::Unix("/run/policy".into()))
        );
        for bad in [
            "127.0.0.1:10023",
            "inet:host",
            "inet::25",
            "unix:",
            "tcp:x:1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
