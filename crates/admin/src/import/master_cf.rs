//! `master.cf` → `smtpd_listen` / `submission_listen`, and a report line for every service
//! mailroom has no equivalent of. mailroom's daemons are built in, so the stock Postfix
//! services (pickup, cleanup, qmgr, the smtp client, local, ...) need nothing. Other
//! services that run the SMTP client (`slow unix - - n - - smtp`) become named transports
//! (`transports`), with main.cf's `slow_destination_concurrency_limit` and
//! `slow_destination_rate_delay` as their limits, so transport_maps entries naming them work.

use super::settings::{Decision, Outcome};
use config::Config;
use std::net::IpAddr;

/// One `master.cf` service line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub kind: String,
    pub command: String,
    pub args: Vec<String>,
}

/// Services of a stock Postfix that mailroom has built in.
const BUILT_IN: &[&str] = &[
    "anvil",
    "bounce",
    "bsmtp",
    "cleanup",
    "defer",
    "discard",
    "dnsblog",
    "error",
    "flush",
    "ifmail",
    "lmtp",
    "local",
    "maildrop",
    "mailman",
    "oqmgr",
    "pickup",
    "postlog",
    "proxymap",
    "proxywrite",
    "qmgr",
    "relay",
    "retry",
    "rewrite",
    "scache",
    "scalemail-backend",
    "showq",
    "smtp",
    "tlsmgr",
    "tlsproxy",
    "trace",
    "uucp",
    "verify",
    "virtual",
];

/// Service lines: whitespace-separated fields, continuation lines start with white space.
pub fn parse_master_cf(text: &str) -> Vec<Service> {
    let mut logical: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match logical.last_mut() {
            Some(last) if line.starts_with(char::is_whitespace) => {
                last.push(' ');
                last.push_str(trimmed);
            }
            _ => logical.push(trimmed.to_string()),
        }
    }
    logical
        .iter()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 8).then(|| Service {
                name: fields[0].to_string(),
                kind: fields[1].to_string(),
                command: fields[7].to_string(),
                args: fields[8..].iter().map(|s| s.to_string()).collect(),
            })
        })
        .collect()
}

/// The listeners and the report lines for `master.cf`, given `main.cf`'s parameters.
pub fn decide_master_cf(services: &[Service], main_cf: &[(String, String)]) -> Vec<Decision> {
    let setting = main_cf
        .iter()
        .find(|(n, _)| n == "inet_interfaces")
        .map(|(_, v)| v.as_str());
    let interfaces = interfaces(setting.unwrap_or("all"));
    let mut decisions = Vec::new();
    let (mut smtpd, mut submission) = (Vec::new(), Vec::new());
    for service in services {
        let Some(port) = smtp_service(service, &mut decisions) else {
            continue;
        };
        let addresses = match listen_point(&service.name).and_then(|(host, _)| host) {
            Some(host) => vec![host],
            None => interfaces.clone(),
        };
        let target = if port == 587 {
            &mut submission
        } else {
            &mut smtpd
        };
        target.extend(addresses.iter().map(|a| socket(a, port)));
    }
    decisions.extend(named_transports(services, main_cf));
    decisions.push(listen("smtpd_listen", &smtpd));
    if !submission.is_empty() {
        decisions.push(listen("submission_listen", &submission));
    }
    decisions
}

/// A custom service running the SMTP client (not one mailroom has built in).
fn is_named_transport(service: &Service) -> bool {
    service.kind == "unix"
        && service.command == "smtp"
        && !BUILT_IN.contains(&service.name.as_str())
}

/// `transports` and the named transports' limits from main.cf (Postfix's
/// `NAME_destination_concurrency_limit`, and `NAME_destination_rate_delay` as one message
/// per that delay), checked by loading them as mailroom would.
fn named_transports(services: &[Service], main_cf: &[(String, String)]) -> Vec<Decision> {
    let names: Vec<&str> = services
        .iter()
        .filter(|s| is_named_transport(s))
        .map(|s| s.name.as_str())
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    let param = |name: &str, suffix: &str| {
        let key = format!("{name}_{suffix}");
        let found = main_cf.iter().find(|(n, _)| *n == key);
        found.map(|(_, v)| v.trim().to_string())
    };
    let limits = names.iter().filter_map(|n| {
        let limit = param(n, "destination_concurrency_limit")?;
        Some(format!("{n}={limit}"))
    });
    let rates = names.iter().filter_map(|n| {
        let delay =
            param(n, "destination_rate_delay").filter(|d| !matches!(d.as_str(), "0" | "0s"))?;
        let delay = if delay.ends_with(|c: char| c.is_ascii_digit()) {
            format!("{delay}s")
        } else {
            delay
        };
        Some(format!("{n}=1/{delay}"))
    });
    let pairs = [
        (
            "transports",
            names
                .iter()
                .map(|n| format!("{n}=smtp"))
                .collect::<Vec<_>>(),
        ),
        ("transport_destination_concurrency_limit", limits.collect()),
        ("transport_destination_rate_limit", rates.collect()),
    ];
    let pairs = pairs.into_iter().filter(|(_, items)| !items.is_empty());
    pairs
        .map(|(name, items)| named_decision(name, &items.join(" "), &names))
        .collect()
}

/// One of the named transports' parameters, as mailroom would load it with `transports`.
fn named_decision(name: &str, value: &str, names: &[&str]) -> Decision {
    let declared: Vec<String> = names.iter().map(|n| format!("{n}=smtp")).collect();
    let mut text = format!("transports = {:?}\n", declared.join(" "));
    if name != "transports" {
        text.push_str(&format!("{name} = {value:?}\n"));
    }
    match Config::from_str(&text, None) {
        Err(e) => ignored(
            name,
            value,
            &format!("mailroom does not accept this value: {}", e.message),
        ),
        Ok(_) => Decision {
            name: name.to_string(),
            value: value.to_string(),
            outcome: Outcome::Imported,
            why: Some(
                "from master.cf's services running smtp and their main.cf limits".to_string(),
            ),
        },
    }
}

/// The port of an SMTP service mailroom's smtpd can take over, with a report line for
/// everything about the service it cannot; `None` (and why) for any other service.
fn smtp_service(service: &Service, decisions: &mut Vec<Decision>) -> Option<u16> {
    let label = format!("master.cf {}/{}", service.name, service.kind);
    let mut ignore = |value: &str, why: &str| decisions.push(ignored(&label, value, why));
    let smtp_server = matches!(service.command.as_str(), "smtpd" | "postscreen");
    if is_named_transport(service) {
        for option in overrides(&service.args) {
            ignore(option, "a per-service override: a named transport takes the smtp client's settings, and only its limits from main.cf");
        }
        return None;
    }
    if service.kind != "inet" || !smtp_server {
        if !BUILT_IN.contains(&service.name.as_str()) || service.kind == "inet" {
            ignore(&service.command, "mailroom has no such service; route mail with transport_maps or content_filter to its built-in agents");
        }
        return None;
    }
    let Some((_, port)) = listen_point(&service.name) else {
        ignore(&service.name, "cannot tell the listening address");
        return None;
    };
    if port == 465 {
        ignore(
            &service.name,
            "mailroom has no implicit-TLS (smtps) listener; clients can use STARTTLS on 587",
        );
        return None;
    }
    for option in overrides(&service.args) {
        ignore(option, "a per-service override: mailroom has one smtpd configuration; set it in mailroom.toml if it should apply to all");
    }
    if service.command == "postscreen" {
        ignore(
            "postscreen",
            "mailroom has no postscreen; its smtpd listens directly",
        );
    }
    Some(port)
}

/// The `-o name=value` options of a service (`-o name=value` or `-oname=value`).
fn overrides(args: &[String]) -> Vec<&str> {
    let mut found = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.strip_prefix("-o") {
            Some("") => found.extend(args.next().map(String::as_str)),
            Some(inline) => found.push(inline),
            None => {}
        }
    }
    found
}

fn ignored(name: &str, value: &str, why: &str) -> Decision {
    Decision {
        name: name.to_string(),
        value: value.to_string(),
        outcome: Outcome::Ignored,
        why: Some(why.to_string()),
    }
}

/// `inet_interfaces` as addresses (IPv4 for `all` and `loopback-only`).
fn interfaces(value: &str) -> Vec<String> {
    value
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .filter_map(|item| match item {
            "all" => Some("0.0.0.0".to_string()),
            "loopback-only" | "localhost" => Some("127.0.0.1".to_string()),
            other => {
                let bare = other.trim_start_matches('[').trim_end_matches(']');
                bare.parse::<IpAddr>().ok().map(|ip| ip.to_string())
            }
        })
        .collect()
}

/// A service name as (host, port): `smtp`, `submission`, `2525`, `127.0.0.1:25`.
fn listen_point(name: &str) -> Option<(Option<String>, u16)> {
    let (host, port) = match name.rsplit_once(':') {
        Some((host, port)) => (
            Some(host.trim_start_matches('[').trim_end_matches(']')),
            port,
        ),
        None => (None, name),
    };
    let port = match port {
        "smtp" => 25,
        "submission" => 587,
        "smtps" | "submissions" => 465,
        number => number.parse().ok()?,
    };
    let host = match host {
        Some(host) => Some(host.parse::<IpAddr>().ok()?.to_string()),
        None => None,
    };
    Some((host, port))
}

fn socket(address: &str, port: u16) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        _ => format!("{address}:{port}"),
    }
}

/// A listener parameter, checked by mailroom's loader like every other value.
fn listen(name: &str, addresses: &[String]) -> Decision {
    let value = addresses.join(", ");
    let text = format!(
        "profile = \"system\"\n{name} = [{}]\n",
        addresses
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let default = Config::system_default()
        .parameters()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v);
    match Config::from_str(&text, None) {
        Err(e) => ignored(
            name,
            &value,
            &format!("mailroom does not accept this value: {}", e.message),
        ),
        Ok(config) => {
            let effective = config
                .parameters()
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v);
            Decision {
                name: name.to_string(),
                value,
                outcome: if effective == default {
                    Outcome::Default
                } else {
                    Outcome::Imported
                },
                why: Some("from master.cf's SMTP services and inet_interfaces".to_string()),
            }
        }
    }
}
