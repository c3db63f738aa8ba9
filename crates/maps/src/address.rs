//! Address look-ups in Postfix's order (mail_addr_find): the whole address, then without
//! its extension, then — only for a local domain — the bare local part with and without
//! the extension, then `@domain`. Pattern tables (regexp, cidr) are asked the whole
//! address only, as Postfix asks them.

use crate::Maps;

/// How to look an address up.
#[derive(Debug, Clone, Copy, Default)]
pub struct AddressQuery<'a> {
    /// `recipient_delimiter`: any of these characters starts an extension (empty: none).
    pub delimiter: &'a str,
    /// Try the bare local part (`user`) too: Postfix does when the domain is local
    /// (`$myorigin`, `$mydestination`, `$inet_interfaces`).
    pub local_domain: bool,
}

/// A hit: the value, and the extension the matching key did not contain (to be carried to
/// the result, Postfix's `propagate_unmatched_extensions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    pub unmatched_extension: Option<String>,
}

impl Maps {
    /// Looks `address` up in Postfix's order (see the module doc).
    pub fn find_address(&self, address: &str, q: AddressQuery<'_>) -> Option<Found> {
        let (local, domain) = match address.rsplit_once('@') {
            Some((l, d)) => (l, Some(d)),
            None => (address, None),
        };
        let hit = |value: String, ext: Option<&str>| Found {
            value,
            unmatched_extension: ext.map(str::to_string),
        };
        if let Some(v) = self.lookup(address) {
            return Some(hit(v, None));
        }
        let (user, ext) = split_extension(local, q.delimiter);
        if let (Some(ext), Some(d)) = (ext, domain) {
            if let Some(v) = self.lookup_fixed(&format!("{user}@{d}")) {
                return Some(hit(v, Some(ext)));
            }
        }
        if q.local_domain || domain.is_none() {
            if domain.is_some() {
                if let Some(v) = self.lookup_fixed(local) {
                    return Some(hit(v, None));
                }
            }
            if ext.is_some() {
                if let Some(v) = self.lookup_fixed(user) {
                    return Some(hit(v, ext));
                }
            }
        }
        let d = domain?;
        self.lookup_fixed(&format!("@{d}")).map(|v| hit(v, None))
    }
}

/// `user+ext` → (`user`, `Some("ext")`) at the first delimiter character. Like Postfix,
/// `owner-list` and `list-request` keep their `-` (never an extension), and a local part
/// that starts with the delimiter has none.
pub fn split_extension<'a>(local: &'a str, delimiter: &str) -> (&'a str, Option<&'a str>) {
    if delimiter.is_empty() {
        return (local, None);
    }
    let lower = local.to_ascii_lowercase();
    if delimiter.contains('-') && (lower.starts_with("owner-") || lower.ends_with("-request")) {
        return (local, None);
    }
    match local.find(|c| delimiter.contains(c)) {
        Some(i) if i > 0 => (&local[..i], Some(&local[i + 1..])),
        _ => (local, None),
    }
}

/// `user@domain` with `ext` carried over: `user+ext@domain` (the first delimiter character
/// joins them). An address that already has an extension, or a non-address, is unchanged.
pub fn with_extension(address: &str, ext: Option<&str>, delimiter: &str) -> String {
    let (Some(ext), Some(d)) = (ext, delimiter.chars().next()) else {
        return address.to_string();
    };
    let (local, domain) = match address.rsplit_once('@') {
        Some((l, dom)) => (l, Some(dom)),
        None => (address, None),
    };
    if local.contains(|c| delimiter.contains(c)) || local.is_empty() {
        return address.to_string();
    }
    match domain {
        Some(dom) => format!("{local}{d}{ext}@{dom}"),
        None => format!("{local}{d}{ext}"),
    }
}
