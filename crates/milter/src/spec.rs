//! Which milters to talk to and how (Postfix's `smtpd_milters` / `non_smtpd_milters`
//! syntax): `inet:host:port`, `unix:/path`, or a group with per-milter settings
//! `{ inet:host:port, default_action=accept, command_timeout=10s }` overriding the
//! `milter_*` defaults.

use std::path::PathBuf;
use std::time::Duration;

/// Where a milter listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Inet { host: String, port: u16 },
    Unix(PathBuf),
}

/// What happens to a message when a milter cannot be reached or breaks the protocol
/// (`milter_default_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// 451 4.7.1: the client retries later (Postfix's default).
    Tempfail,
    /// Go on as if the milter were not configured.
    Accept,
    /// 550 5.7.1.
    Reject,
    /// Accept, but into the hold queue.
    Quarantine,
}

impl DefaultAction {
    pub fn parse(text: &str) -> Option<DefaultAction> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "tempfail" => DefaultAction::Tempfail,
            "accept" => DefaultAction::Accept,
            "reject" => DefaultAction::Reject,
            "quarantine" => DefaultAction::Quarantine,
            _ => return None,
        })
    }
}

/// One milter with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilterSpec {
    /// As configured (`inet:127.0.0.1:8891`), for log lines.
    pub name: String,
    pub endpoint: Endpoint,
    pub default_action: DefaultAction,
    pub protocol: u32,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub content_timeout: Duration,
}

/// The per-milter defaults (the global `milter_*` parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub default_action: DefaultAction,
    pub protocol: u32,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub content_timeout: Duration,
}

/// Parses a milter list; the list may have been split at commas and spaces already (the
/// configuration's string form), so the items are joined again and the braces found.
/// `Err` names the first entry that is not a milter.
pub fn parse_list(items: &[String], defaults: &Defaults) -> Result<Vec<MilterSpec>, String> {
    let text = items.join(", ");
    let mut specs = Vec::new();
    let mut rest = text.as_str();
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return Ok(specs);
        }
        let (entry, after) = match rest.strip_prefix('{') {
            Some(inner) => {
                let end = inner
                    .find('}')
                    .ok_or_else(|| format!("missing '}}' in {rest:?}"))?;
                (&inner[..end], &inner[end + 1..])
            }
            None => {
                let end = rest
                    .find(|c: char| c == ',' || c.is_whitespace())
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        specs.push(parse_entry(entry, defaults)?);
        rest = after;
    }
}

fn parse_entry(entry: &str, defaults: &Defaults) -> Result<MilterSpec, String> {
    // `name = value` may have been split at its blanks: glue it together again.
    let mut entry = entry.to_string();
    for spaced in [", =, ", ", =", "=, ", " = ", " =", "= "] {
        entry = entry.replace(spaced, "=");
    }
    let mut parts = entry.split(',').map(str::trim).filter(|p| !p.is_empty());
    let name = parts
        .next()
        .ok_or_else(|| "empty milter entry '{}'".to_string())?;
    let mut spec = MilterSpec {
        name: name.to_string(),
        endpoint: parse_endpoint(name)?,
        default_action: defaults.default_action,
        protocol: defaults.protocol,
        connect_timeout: defaults.connect_timeout,
        command_timeout: defaults.command_timeout,
        content_timeout: defaults.content_timeout,
    };
    for setting in parts {
        let (key, value) = setting
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| format!("{name}: {setting:?} is not name=value"))?;
        let bad = || format!("{name}: bad value {value:?} for {key}");
        match key {
            "default_action" => {
                spec.default_action = DefaultAction::parse(value).ok_or_else(bad)?
            }
            "protocol" => spec.protocol = parse_protocol(value).ok_or_else(bad)?,
            "connect_timeout" => spec.connect_timeout = parse_seconds(value).ok_or_else(bad)?,
            "command_timeout" => spec.command_timeout = parse_seconds(value).ok_or_else(bad)?,
            "content_timeout" => spec.content_timeout = parse_seconds(value).ok_or_else(bad)?,
            _ => return Err(format!("{name}: unknown milter setting {key:?}")),
        }
    }
    Ok(spec)
}

/// Protocol versions 2 to 6 exist; mailroom speaks what it negotiates down to.
pub fn parse_protocol(text: &str) -> Option<u32> {
    text.parse().ok().filter(|v| (2..=6).contains(v))
}

/// `30`, `30s`, `5m`, `1h`.
fn parse_seconds(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..split].parse().ok()?;
    let unit = match &text[split..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(number.checked_mul(unit)?))
}

fn parse_endpoint(name: &str) -> Result<Endpoint, String> {
    if let Some(path) = name.strip_prefix("unix:") {
        return match path.is_empty() {
            true => Err(format!("{name}: no socket path")),
            false => Ok(Endpoint::Unix(PathBuf::from(path))),
        };
    }
    let inet = name
        .strip_prefix("inet:")
        .ok_or_else(|| format!("{name}: expected inet:host:port or unix:/path"))?;
    let (host, port) = inet
        .rsplit_once(':')
        .ok_or_else(|| format!("{name}: no port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port
        .parse()
        .map_err(|_| format!("{name}: bad port {port:?}"))?;
    if host.is_empty() {
        return Err(format!("{name}: no host"));
    }
    Ok(Endpoint::Inet {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            default_action: DefaultAction::Tempfail,
            protocol: 6,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(30),
            content_timeout: Duration::from_secs(300),
        }
    }

    #[test]
    fn plain_and_grouped_entries_in_either_list_form() {
        let joined = vec!["inet:127.0.0.1:11332 { unix:/run/dkim.sock, default_action=accept, command_timeout = 5s }".to_string()];
        // The same value after the configuration's string form split it at commas and spaces.
        let split: Vec<String> = joined[0]
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        for items in [joined, split] {
            let specs = parse_list(&items, &defaults()).unwrap();
            assert_eq!(specs.len(), 2, "{items:?}");
            assert_eq!(
                specs[0].endpoint,
                Endpoint::Inet {
                    host: "127.0.0.1".into(),
                    port: 11332
                }
            );
            assert_eq!(specs[0].default_action, DefaultAction::Tempfail);
            assert_eq!(specs[1].endpoint, Endpoint::Unix("/run/dkim.sock".into()));
            assert_eq!(specs[1].default_action, DefaultAction::Accept);
            assert_eq!(specs[1].command_timeout, Duration::from_secs(5));
            assert_eq!(specs[1].content_timeout, Duration::from_secs(300));
        }
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "tcp:1.2.3.4:5",
            "inet:host",
            "inet:h:port",
            "{ inet:h:1, colour=red }",
            "{ inet:h:1",
            "{ inet:h:1, protocol=9 }",
        ] {
            assert!(
                parse_list(&[bad.to_string()], &defaults()).is_err(),
                "{bad}"
            );
        }
        assert_eq!(parse_list(&[], &defaults()), Ok(vec![]));
    }
}
