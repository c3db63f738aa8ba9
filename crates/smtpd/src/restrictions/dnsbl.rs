//! DNS lists (Postfix's `reject_rbl_client`, `reject_rhsbl_sender`, `_helo`, `_recipient`):
//! the query (`4.3.2.1.zen.example.org` for client 1.2.3.4, `example.com.rhsbl.example.org`
//! for a sender at example.com), the optional `=127.0.0.x` filter on the answer, the TXT
//! reason, and the reply from `rbl_reply_maps` or `default_rbl_reply` (`$rbl_code Service
//! unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}`).
//! A list that cannot be asked (a DNS failure) is "not listed", as in Postfix.

use proto::reply::Reply;
use tracing::warn;

use super::dns::{self, Lookup};
use super::evaluate::{reply, truncate_dot, valid_hostname, State, Status};
use super::parse::Subject;
use super::{access, Class, Request, Restrictions};

/// One `reject_rbl_*`/`reject_rhsbl_*` restriction.
pub async fn check(
    r: &Restrictions,
    subject: Subject,
    list: &str,
    request: &Request,
    state: &mut State,
) -> Status {
    let (domain, filter) = list.split_once('=').unwrap_or((list, ""));
    let (query, what, class) = match subject {
        Subject::Client => (
            dns::reversed(request.client_ip),
            request.client_ip.to_string(),
            Class::Client,
        ),
        Subject::ClientName => return Status::Dunno,
        Subject::Helo | Subject::Sender | Subject::Recipient => {
            let (what, class) = match subject {
                Subject::Helo => (request.helo.clone(), Class::Helo),
                Subject::Sender => (request.sender.clone(), Class::Sender),
                _ => (request.recipient.clone(), Class::Recipient),
            };
            let Some(what) = what.filter(|w| !w.is_empty()) else {
                return Status::Dunno;
            };
            match rhsbl_name(&what) {
                Some(name) => (name, what, class),
                None => return Status::Dunno,
            }
        }
    };
    let name = format!("{query}.{domain}");
    let answers = match r.dns.a(&name).await {
        Lookup::Found(answers) => answers,
        Lookup::NotFound | Lookup::TempFail(_) => return Status::Dunno,
    };
    if !filter.is_empty() && !answers.iter().any(|a| dns::filter_matches(filter, *a)) {
        return Status::Dunno;
    }
    let reason = r.dns.txt(&name).await;
    let facts = RblFacts {
        code: r.codes.rbl,
        class: class.name(),
        what: &what,
        domain,
        reason: &reason,
    };
    let template = r
        .rbl_reply_maps
        .lookup(list)
        .or_else(|| r.rbl_reply_maps.lookup(domain))
        .unwrap_or_else(|| r.default_rbl_reply.clone());
    state.refuse(request, rbl_reply(&template, &facts, request))
}

/// The domain an RHSBL is asked about: the part after `@`, never an address literal or a
/// name ending in a number (Postfix skips both).
fn rhsbl_name(what: &str) -> Option<String> {
    let domain = what.rsplit_once('@').map_or(what, |(_, d)| d);
    let domain = truncate_dot(domain);
    let last = domain.rsplit('.').next().unwrap_or(domain);
    let usable = !domain.is_empty()
        && !domain.starts_with('[')
        && !last.bytes().all(|b| b.is_ascii_digit())
        && valid_hostname(domain);
    usable.then(|| domain.to_ascii_lowercase())
}

/// The `$rbl_*` values of one listing.
struct RblFacts<'a> {
    code: u16,
    class: &'a str,
    what: &'a str,
    domain: &'a str,
    reason: &'a str,
}

/// The reply from an `rbl_reply_maps` or `default_rbl_reply` template.
fn rbl_reply(template: &str, facts: &RblFacts<'_>, request: &Request) -> Reply {
    let lookup = |name: &str| -> Option<String> {
        Some(match name {
            "rbl_code" => facts.code.to_string(),
            "rbl_class" => facts.class.to_string(),
            "rbl_what" => facts.what.to_string(),
            "rbl_domain" => facts.domain.to_string(),
            "rbl_reason" | "rbl_txt" => facts.reason.to_string(),
            "client_address" => request.client_ip.to_string(),
            "client_name" => request.client_name.clone(),
            "helo_name" => request.helo.clone().unwrap_or_default(),
            "sender" => request.sender.clone().unwrap_or_default(),
            "recipient" => request.recipient.clone().unwrap_or_default(),
            _ => return None,
        })
    };
    let text = expand(template, &lookup);
    let code = text
        .get(..3)
        .filter(|c| access_code(c))
        .and_then(|c| c.parse().ok());
    match (code, text.get(3..4)) {
        (Some(code), Some(" ")) => {
            let (dsn, rest) = access::split_dsn(&text[4..], "4.7.1");
            let rest = if rest.is_empty() {
                "Service unavailable"
            } else {
                rest
            };
            reply(code, &dsn, rest)
        }
        _ => {
            warn!(target: "smtpd", "rbl response code configuration error: {}", maillog::sanitize(&text));
            reply(450, "4.7.1", "Service unavailable")
        }
    }
}

fn access_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 3 && matches!(b[0], b'4' | b'5') && b[1].is_ascii_digit() && b[2].is_ascii_digit()
}

/// Postfix's `mac_expand` for reply templates: `$name`, `${name}`, `${name?text}` (text
/// when the value is not empty), `${name:text}` (text when it is), `$$`.
fn expand(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = rest.strip_prefix('{') {
            let Some(end) = matching_brace(inner) else {
                out.push_str("${");
                rest = inner;
                continue;
            };
            out.push_str(&expand_braced(&inner[..end], lookup));
            rest = &inner[end + 1..];
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push_str(&lookup(&rest[..end]).unwrap_or_default());
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

fn expand_braced(inner: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let split = inner.find(['?', ':']);
    let name = &inner[..split.unwrap_or(inner.len())];
    let value = lookup(name).unwrap_or_default();
    match split.map(|at| (&inner[at..at + 1], &inner[at + 1..])) {
        Some(("?", text)) if !value.is_empty() => expand(text, lookup),
        Some((":", text)) if value.is_empty() => expand(text, lookup),
        Some(_) => String::new(),
        None => value,
    }
}

/// The index of the `}` closing a `${`, counting nested braces.
fn matching_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_like_mac_expand() {
        let lookup = |name: &str| match name {
            "rbl_code" => Some("554".to_string()),
            "rbl_reason" => Some(String::new()),
            "rbl_domain" => Some("zen.example".to_string()),
            _ => None,
        };
        assert_eq!(
            expand(
                "$rbl_code blocked using ${rbl_domain}${rbl_reason?; $rbl_reason}$$",
                &lookup
            ),
            "554 blocked using zen.example$"
        );
        assert_eq!(
            expand("${rbl_reason:none} ${rbl_code?x{y}}", &lookup),
            "none x{y}"
        );
    }
}
