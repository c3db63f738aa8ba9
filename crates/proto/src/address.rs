//! RFC 5321 section 4.1.2 paths: `<>`, `<user@domain>`, `<@route:user@domain>`, with the
//! RFC 6531 UTF-8 extension. Pure functions, strict: what is accepted here is what later
//! stages and other MTAs can parse.
//!
//! Accepted: a dot-string or quoted-string local part of at most 64 bytes; a domain of
//! letter/digit/hyphen labels (or UTF-8 labels) or an address literal `[1.2.3.4]` /
//! `[IPv6:...]`, at most 255 bytes; the whole path at most 256 bytes. A missing domain is
//! syntactically allowed (`<postmaster>`); the session decides what to do with it.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not enclosed in angle brackets, or junk around them.
    Brackets,
    /// Something inside does not follow the grammar.
    Syntax,
    /// Longer than RFC 5321 section 4.5.3.1 allows.
    TooLong,
}

const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 255;
const MAX_PATH: usize = 256;

/// Parses `<...>` at the start of `text`; returns the address (without brackets and source
/// route; empty for `<>`) and the rest of the text after `>`.
pub fn parse_path(text: &str) -> Result<(String, &str), PathError> {
    let inner_start = text.strip_prefix('<').ok_or(PathError::Brackets)?;
    let close = find_closing(inner_start).ok_or(PathError::Brackets)?;
    let inner = &inner_start[..close];
    let rest = &inner_start[close + 1..];
    if inner.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    if inner.is_empty() {
        return Ok((String::new(), rest));
    }
    let mailbox = strip_route(inner)?;
    check_mailbox(mailbox)?;
    Ok((mailbox.to_string(), rest))
}

/// Index of the `>` that closes the path, skipping quoted strings (`<"a>b"@c>`).
fn find_closing(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// `@a,@b:user@host` → `user@host` (RFC 5321 section 4.1.2: the route is ignored).
fn strip_route(inner: &str) -> Result<&str, PathError> {
    if !inner.starts_with('@') {
        return Ok(inner);
    }
    let (route, mailbox) = inner.split_once(':').ok_or(PathError::Syntax)?;
    for hop in route.split(',') {
        let domain = hop.strip_prefix('@').ok_or(PathError::Syntax)?;
        check_domain(domain)?;
    }
    Ok(mailbox)
}

/// `local@domain` or a bare `local` part.
pub fn check_mailbox(mailbox: &str) -> Result<(), PathError> {
    let (local, domain) = split_mailbox(mailbox);
    check_local_part(local)?;
    match domain {
        Some(domain) => check_domain(domain),
        None => Ok(()),
    }
}

/// Splits at the last `@` outside a quoted local part.
fn split_mailbox(mailbox: &str) -> (&str, Option<&str>) {
    match mailbox.rfind('@') {
        Some(at) if !mailbox[at..].contains('"') => (&mailbox[..at], Some(&mailbox[at + 1..])),
        _ => (mailbox, None),
    }
}

fn check_local_part(local: &str) -> Result<(), PathError> {
    if local.is_empty() {
        return Err(PathError::Syntax);
    }
    if local.len() > MAX_LOCAL {
        return Err(PathError::TooLong);
    }
    if local.starts_with('"') {
        return check_quoted(local);
    }
    let atoms_ok = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
    if atoms_ok {
        Ok(())
    } else {
        Err(PathError::Syntax)
    }
}

/// RFC 5322 atext, plus any non-ASCII character (RFC 6531 UTF-8 addresses).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

/// `"..."` with qtextSMTP and quoted pairs of printable ASCII.
fn check_quoted(local: &str) -> Result<(), PathError> {
    let inner = local
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or(PathError::Syntax)?;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(' '..='~') => {}
                _ => return Err(PathError::Syntax),
            },
            '"' => return Err(PathError::Syntax),
            ' '..='~' => {}
            c if !c.is_ascii() && !c.is_control() => {}
            _ => return Err(PathError::Syntax),
        }
    }
    Ok(())
}

/// A host name (letters, digits, hyphens; UTF-8 labels allowed) or an address literal.
pub fn check_domain(domain: &str) -> Result<(), PathError> {
    if domain.is_empty() {
        return Err(PathError::Syntax);
    }
    if domain.len() > MAX_DOMAIN {
        return Err(PathError::TooLong);
    }
    if let Some(literal) = domain.strip_prefix('[') {
        return check_address_literal(literal.strip_suffix(']').ok_or(PathError::Syntax)?);
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| {
                c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && !c.is_control())
            })
    };
    if domain.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(PathError::Syntax)
    }
}

fn check_address_literal(literal: &str) -> Result<(), PathError> {
    let valid = match literal.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => literal[5..].parse::<Ipv6Addr>().is_ok(),
        _ => literal.parse::<Ipv4Addr>().is_ok(),
    };
    if valid {
        Ok(())
    } else {
        Err(PathError::Syntax)
    }
}

/// The domain of an address, lower-cased; `None` for a bare local part.
pub fn domain_of(address: &str) -> Option<String> {
    split_mailbox(address).1.map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        type Expected = Result<(&'static str, &'static str), PathError>;
        let table: &[(&str, Expected)] = &[
            ("<>", Ok(("", ""))),
            ("<a@b.org>", Ok(("a@b.org", ""))),
            ("<a@b.org> SIZE=1", Ok(("a@b.org", " SIZE=1"))),
            ("<postmaster>", Ok(("postmaster", ""))),
            ("<@r1.org,@r2.org:a@b.org>", Ok(("a@b.org", ""))),
            ("<\"x>y\"@b.org>", Ok(("\"x>y\"@b.org", ""))),
            ("<\"a b\\\"c\"@b.org>", Ok(("\"a b\\\"c\"@b.org", ""))),
            ("<a@[127.0.0.1]>", Ok(("a@[127.0.0.1]", ""))),
            ("<a@[IPv6:::1]>", Ok(("a@[IPv6:::1]", ""))),
            (
                "<δοκιμή@παράδειγμα.δοκιμή>",
                Ok(("δοκιμή@παράδειγμα.δοκιμή", "")),
            ),
            ("a@b.org", Err(PathError::Brackets)),
            ("<a@b.org", Err(PathError::Brackets)),
            ("<a@@b.org>", Err(PathError::Syntax)),
            ("<a..b@c.org>", Err(PathError::Syntax)),
            ("<.a@c.org>", Err(PathError::Syntax)),
            ("<a b@c.org>", Err(PathError::Syntax)),
            ("<a@b..org>", Err(PathError::Syntax)),
            ("<a@-b.org>", Err(PathError::Syntax)),
            ("<a@b_c.org>", Err(PathError::Syntax)),
            ("<a@>", Err(PathError::Syntax)),
            ("<@b.org>", Err(PathError::Syntax)),
            ("<a@[1.2.3]>", Err(PathError::Syntax)),
            ("<a@[1.2.3.4>", Err(PathError::Syntax)),
            ("<a\u{1}@b.org>", Err(PathError::Syntax)),
            ("<\"a\u{1}\"@b.org>", Err(PathError::Syntax)),
            ("<@r1.org:>", Err(PathError::Syntax)),
        ];
        for (input, expected) in table {
            let got = parse_path(input);
            let got = got.as_ref().map(|(a, r)| (a.as_str(), *r)).map_err(|e| *e);
            assert_eq!(got, *expected, "input {input:?}");
        }
    }

    #[test]
    fn lengths() {
        let local = "a".repeat(65);
        assert_eq!(
            parse_path(&format!("<{local}@b.org>")).unwrap_err(),
            PathError::TooLong
        );
        let long = format!("<a@{}.org>", "b".repeat(300));
        assert_eq!(parse_path(&long).unwrap_err(), PathError::TooLong);
    }

    #[test]
    fn domains() {
        assert_eq!(domain_of("a@B.Org"), Some("b.org".into()));
        assert_eq!(domain_of("\"a@b\"@C"), Some("c".into()));
        assert_eq!(domain_of("postmaster"), None);
        assert_eq!(domain_of("\"x@y\""), None);
    }
}
