//! `check_policy_service`: Postfix's policy delegation protocol (SMTPD_POLICY_README).
//! The request is `name=value` lines ending with an empty line (`request=smtpd_access_policy`,
//! `protocol_state=RCPT`, `client_address=…`, `helo_name=…`, `sender=…`, `recipient=…` …);
//! the answer is `action=…` (plus attributes that are ignored) and an empty line. The
//! action is read as an access table result (`access.rs`): `DUNNO`, `OK`, `REJECT text`,
//! `DEFER_IF_PERMIT text` (greylisting), `450 text`, `PREPEND header: text` …
//!
//! Endpoints are `inet:host:port` and `unix:/path`. mailroom opens one connection per
//! query (Postfix keeps one per smtpd process); servers such as postgrey serve both. The
//! whole query — connect, write, read — is bounded by `smtpd_policy_service_timeout`; a
//! failure logs `warning: problem talking to server …` and the caller answers
//! `smtpd_policy_service_default_action` (`451 4.3.5 Server configuration problem`).
//!
//! Security stance: the server is the operator's; its answer is still bounded (a line of at
//! most [`MAX_LINE`] bytes, at most [`MAX_ATTRIBUTES`] lines) and never trusted to be
//! well formed.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};

use super::Request;

const MAX_LINE: usize = 4096;
const MAX_ATTRIBUTES: usize = 100;

/// `smtpd_policy_service_timeout` and `_default_action`.
#[derive(Debug, Clone)]
pub struct PolicySettings {
    pub timeout: Duration,
    pub default_action: String,
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

/// Asks the server at `endpoint` about `request`; `Ok(action)` or why it failed.
pub async fn query(endpoint: &str, timeout: Duration, request: &Request) -> Result<String, String> {
    let endpoint = Endpoint::parse(endpoint)?;
    let text = attributes(request);
    let exchange = async {
        match &endpoint {
            Endpoint::Inet(address) => {
                let stream = tokio::net::TcpStream::connect(address.as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                exchange(stream, &text).await
            }
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| e.to_string())?;
                exchange(stream, &text).await
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err("timeout".to_string()),
    }
}

async fn exchange(
    stream: impl AsyncRead + AsyncWrite + Unpin,
    text: &str,
) -> Result<String, String> {
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(text.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut action = None;
    for _ in 0..MAX_ATTRIBUTES {
        let line = read_line(&mut stream).await?;
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
