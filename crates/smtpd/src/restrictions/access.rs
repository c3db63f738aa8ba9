//! Access tables (`check_client_access`, `_helo_`, `_sender_`, `_recipient_access`) and
//! what their results mean — the same results a policy service answers with.
//!
//! Look-up keys, in Postfix's order (text tables get every key, `regexp:`/`pcre:`/`cidr:`
//! only the whole one):
//! * client: the address (`192.0.2.1`), then its networks `192.0.2`, `192.0`, `192`
//!   (IPv6: shorter `:`-prefixes); mailroom knows no client name, so none is looked up;
//! * HELO: the name, then its parent domains (`a.example.com`, `example.com`, `com`:
//!   `parent_domain_matches_subdomains` includes `smtpd_access_maps` by default);
//! * sender and recipient: `user@domain`, the domain and its parents, `user@`; the null
//!   sender is `<>` (`smtpd_null_access_lookup_key`).
//!
//! Results: `OK`, `RELAY` or digits permit; `DUNNO` goes on; `REJECT [text]`,
//! `DEFER [text]`, `4xx text`, `5xx text` refuse (an enhanced code may lead the text);
//! `DEFER_IF_PERMIT`, `DEFER_IF_REJECT`; `HOLD`, `DISCARD`, `PREPEND header: text`,
//! `WARN`, `INFO`, `REDIRECT user@domain`, `BCC user@domain`, `FILTER transport:destination`
//! (the whole message goes to that content filter; the last FILTER wins). A result that is a restriction
//! class name or restriction words is evaluated as a list (Postfix's); anything else is a
//! configuration error (451 4.3.5).

use std::net::IpAddr;

use tracing::warn;

use super::evaluate::{reply, State, Status};
use super::parse::Subject;
use super::{log_whatsup, Request, Restrictions};

/// The first result any table has for `subject`'s keys, or `None`.
pub fn find(maps: &maps::Maps, subject: Subject, request: &Request) -> Option<String> {
    let whole = match subject {
        Subject::Client => request.client_ip.to_string(),
        Subject::ClientName => return None,
        Subject::Helo => request.helo.clone()?,
        Subject::Sender => match request.sender.as_deref()? {
            "" => "<>".to_string(),
            sender => sender.to_string(),
        },
        Subject::Recipient => request.recipient.clone()?,
    };
    let partial = match subject {
        Subject::Client => networks(request.client_ip),
        Subject::Helo => parents(&whole),
        _ if whole == "<>" => Vec::new(),
        _ => address_keys(&whole),
    };
    maps.iter().find_map(|map| {
        map.lookup(&whole).or_else(|| {
            (!map.is_pattern())
                .then(|| partial.iter().find_map(|key| map.lookup(key)))
                .flatten()
        })
    })
}

/// `192.0.2.1` → `192.0.2`, `192.0`, `192`; `2001:db8::1` → `2001:db8:`, `2001:db8`, `2001`
/// (Postfix's expanded-form prefixes).
fn networks(ip: IpAddr) -> Vec<String> {
    let text = ip.to_string();
    let separator = if ip.is_ipv4() { '.' } else { ':' };
    let mut keys = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.rfind(separator) {
        rest = &text[..at];
        if !rest.is_empty() {
            keys.push(rest.to_string());
        }
    }
    keys
}

/// `a.example.com` → `example.com`, `com`.
fn parents(domain: &str) -> Vec<String> {
    let domain = domain.trim_end_matches('.');
    let mut keys = Vec::new();
    let mut rest = domain;
    while let Some((_, parent)) = rest.split_once('.') {
        keys.push(parent.to_string());
        rest = parent;
    }
    keys
}

/// `user@a.example.com` → `a.example.com`, `example.com`, `com`, `user@`.
fn address_keys(address: &str) -> Vec<String> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Vec::new();
    };
    let mut keys = vec![domain.to_string()];
    keys.extend(parents(domain));
    keys.push(format!("{local}@"));
    keys
}

/// What a table (or policy service) result means here. `subject` and `class` name what
/// a refusal is about: `<x@y>: Sender address rejected: text`.
pub fn result(
    restrictions: &Restrictions,
    value: &str,
    table: &str,
    (subject, class): (&str, &str),
    request: &Request,
    state: &mut State,
) -> Status {
    let value = value.trim();
    let (command, text) = match value.find([' ', '\t']) {
        Some(at) => (&value[..at], value[at..].trim_start()),
        None => (value, ""),
    };
    let keyword = command.to_ascii_uppercase();
    let codes = &restrictions.codes;
    let refusal = |code: u16, dsn: &str, fallback: &str| {
        let (dsn, text) = split_dsn(text, dsn);
        let text = if text.is_empty() { fallback } else { text };
        reply(
            code,
            &dsn,
            &format!("<{subject}>: {class} rejected: {text}"),
        )
    };
    match keyword.as_str() {
        "DUNNO" => Status::Dunno,
        "OK" | "RELAY" => Status::Permit,
        // Some out-of-band authentication writes a time stamp: Postfix reads it as OK.
        _ if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => Status::Permit,
        "REJECT" => state.refuse(
            request,
            refusal(codes.access_reject, "5.7.1", "Access denied"),
        ),
        "DEFER" => state.refuse(
            request,
            refusal(codes.access_defer, "4.7.1", "Access denied"),
        ),
        "DEFER_IF_PERMIT" => {
            let reply = refusal(codes.access_defer, "4.7.1", "Service unavailable");
            state.defer_if_permit.get_or_insert(reply);
            Status::Dunno
        }
        "DEFER_IF_REJECT" => {
            let reply = refusal(codes.access_defer, "4.7.1", "Service unavailable");
            state.defer_if_reject.get_or_insert(reply);
            Status::Dunno
        }
        "WARN" | "INFO" => {
            log_whatsup(request, &keyword.to_ascii_lowercase(), text);
            Status::Dunno
        }
        "HOLD" => {
            let why = format!("<{subject}>: {class} {}", or(text, "triggers HOLD action"));
            log_whatsup(request, "hold", &why);
            state.verdict.hold.get_or_insert(why);
            Status::Dunno
        }
        "DISCARD" => {
            let why = format!(
                "<{subject}>: {class} {}",
                or(text, "triggers DISCARD action")
            );
            log_whatsup(request, "discard", &why);
            state.verdict.discard.get_or_insert(why);
            Status::Permit
        }
        "PREPEND" => {
            prepend(text, table, state);
            Status::Dunno
        }
        "REDIRECT" | "BCC" if !text.contains('@') => {
            warn!(target: "smtpd", "access table {table} entry \"{}\" requires user@domain target", maillog::sanitize(value));
            Status::Dunno
        }
        "REDIRECT" => {
            log_whatsup(
                request,
                "redirect",
                &format!("<{subject}>: {class} triggers REDIRECT {text}"),
            );
            state.verdict.redirect = Some(text.to_string());
            Status::Dunno
        }
        "BCC" => {
            log_whatsup(
                request,
                "bcc",
                &format!("<{subject}>: {class} triggers BCC {text}"),
            );
            state.verdict.bcc.push(text.to_string());
            Status::Dunno
        }
        "FILTER" => {
            filter(text, value, table, (subject, class), request, state);
            Status::Dunno
        }
        _ if is_reply_code(command) && !text.is_empty() => {
            let code: u16 = command.parse().unwrap_or(554);
            let default_dsn = format!("{}.7.1", &command[..1]);
            state.refuse(request, refusal(code, &default_dsn, "Access denied"))
        }
        _ if is_restriction_list(restrictions, value) => Status::Delegate(value.to_string()),
        _ => {
            warn!(target: "smtpd", "access table {table}: unknown or unsupported action {:?}", maillog::sanitize(value));
            state.server_error(request)
        }
    }
}

/// Whether a result is a restriction class name or restriction words (Postfix then
/// evaluates it as a list); anything else is a configuration error.
fn is_restriction_list(restrictions: &Restrictions, value: &str) -> bool {
    let (_, problems) = super::parse::parse_list(&super::words(value), &restrictions.class_names());
    !value.trim().is_empty() && problems.is_empty()
}

fn or<'a>(text: &'a str, fallback: &'a str) -> &'a str {
    if text.is_empty() {
        fallback
    } else {
        text
    }
}

fn prepend(text: &str, table: &str, state: &mut State) {
    let is_header = text
        .split_once(':')
        .is_some_and(|(name, _)| !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()));
    if is_header {
        state.verdict.prepend.push(text.to_string());
    } else {
        warn!(target: "smtpd", "access table {table}: PREPEND requires header: text, not {:?}", maillog::sanitize(text));
    }
}

/// FILTER: remembered for the message, logged as Postfix's smtpd logs it (`NOQUEUE:
/// filter: RCPT from ...: <a@b>: Sender address triggers FILTER smtp:[127.0.0.1]:10026;
/// from=<a@b> ...`); without a usable `transport:destination`, a warning and DUNNO.
fn filter(
    text: &str,
    value: &str,
    table: &str,
    (subject, class): (&str, &str),
    request: &Request,
    state: &mut State,
) {
    let value = maillog::sanitize(value);
    if text.is_empty() {
        warn!(target: "smtpd", "access table {table} entry \"{value}\" has FILTER entry without value");
        return;
    }
    if let Err(e) = envelope::parse_filter(text) {
        warn!(target: "smtpd", "access table {table} entry \"{value}\" requires transport:destination ({e})");
        return;
    }
    let why = format!("<{subject}>: {class} triggers FILTER {text}");
    log_whatsup(request, "filter", &why);
    state.verdict.filter = Some(text.to_string());
}

fn is_reply_code(command: &str) -> bool {
    let b = command.as_bytes();
    b.len() == 3 && matches!(b[0], b'4' | b'5') && b[1].is_ascii_digit() && b[2].is_ascii_digit()
}

/// `5.7.2 text` → (`5.7.2`, `text`); text without a leading enhanced code → (`default`,
/// text). Postfix's `dsn_split`.
pub fn split_dsn<'a>(text: &'a str, default: &str) -> (String, &'a str) {
    let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
    let parts: Vec<&str> = first.split('.').collect();
    let valid = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    match valid {
        true => (first.to_string(), rest.trim_start()),
        false => (default.to_string(), text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_postfix_order() {
        assert_eq!(
            networks("192.0.2.1".parse().unwrap()),
            ["192.0.2", "192.0", "192"]
        );
        assert_eq!(parents("a.example.com"), ["example.com", "com"]);
        assert_eq!(
            address_keys("User@a.example.com"),
            ["a.example.com", "example.com", "com", "User@"]
        );
        assert!(address_keys("nodomain").is_empty());
    }

    fn request() -> Request {
        Request {
            stage: super::super::Stage::Rcpt,
            client_ip: "192.0.2.1".parse().unwrap(),
            client_name: "unknown".into(),
            helo: Some("h.example".into()),
            sender: Some("a@b.example".into()),
            recipient: Some("c@d.example".into()),
            protocol: "ESMTP".into(),
            mynetworks: false,
            sasl: None,
            auth_destination: true,
            final_destination: true,
            pipelined: false,
            queue_id: None,
            recipient_count: 0,
            size: 0,
            stress: false,
        }
    }

    #[test]
    fn filter_results_are_remembered_last_one_winning_and_bad_ones_ignored() {
        let restrictions = Restrictions::from_config(&config::Config::embedded_default());
        let mut state = State::default();
        let about = ("a@b.example", "Sender address");
        for value in [
            "FILTER smtp:[127.0.0.1]:10025",
            "FILTER smtp:[127.0.0.1]:10026",
            "FILTER",
            "FILTER [127.0.0.1]:10027",
        ] {
            let status = result(&restrictions, value, "t", about, &request(), &mut state);
            assert!(matches!(status, Status::Dunno), "{value}: goes on");
        }
        assert_eq!(
            state.verdict.filter.as_deref(),
            Some("smtp:[127.0.0.1]:10026")
        );
        assert!(state.verdict.reject.is_none());
    }

    #[test]
    fn enhanced_codes_are_split_off() {
        assert_eq!(
            split_dsn("5.7.2 go away", "5.7.1"),
            ("5.7.2".into(), "go away")
        );
        assert_eq!(split_dsn("go away", "5.7.1"), ("5.7.1".into(), "go away"));
        assert_eq!(split_dsn("", "4.7.1"), ("4.7.1".into(), ""));
        assert_eq!(split_dsn("5.7 x", "4.7.1"), ("4.7.1".into(), "5.7 x"));
    }
}
