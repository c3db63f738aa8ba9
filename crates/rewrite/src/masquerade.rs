//! `masquerade_domains` (Postfix's cleanup_masquerade): `user@host.example.com` becomes
//! `user@example.com` when `example.com` is listed. Entries are tried in order; the first
//! that equals the domain or is a parent of it decides: a plain entry strips the
//! subdomain, a `!entry` (or an entry equal to the domain) leaves the address alone.
//! `masquerade_exceptions` lists local parts never masqueraded (`root`).

use crate::Classes;

#[derive(Debug, Clone, Default)]
pub struct Masquerade {
    /// `(strip, domain)`, lower case; `strip` is false for a `!domain` entry.
    domains: Vec<(bool, String)>,
    exceptions: Vec<String>,
    classes: Classes,
}

impl Masquerade {
    pub fn new(domains: &[String], exceptions: &[String], classes: Classes) -> Masquerade {
        let domains = domains
            .iter()
            .map(|d| {
                let d = d.trim().to_ascii_lowercase();
                match d.strip_prefix('!') {
                    Some(rest) => (false, rest.to_string()),
                    None => (true, d),
                }
            })
            .filter(|(_, d)| !d.is_empty())
            .collect();
        let exceptions = exceptions.iter().map(|e| e.to_ascii_lowercase()).collect();
        Masquerade {
            domains,
            exceptions,
            classes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    pub fn classes(&self) -> Classes {
        self.classes
    }

    /// The masqueraded address (unchanged when no entry applies).
    pub fn apply(&self, address: &str) -> String {
        let Some(at) = address.rfind('@') else {
            return address.to_string();
        };
        let (local, domain) = (&address[..at], address[at + 1..].to_ascii_lowercase());
        if self.exceptions.contains(&local.to_ascii_lowercase()) {
            return address.to_string();
        }
        for (strip, masq) in &self.domains {
            if domain == *masq {
                break;
            }
            let is_parent = domain
                .strip_suffix(masq.as_str())
                .is_some_and(|head| head.ends_with('.'));
            if is_parent {
                if *strip {
                    return format!("{local}@{masq}");
                }
                break;
            }
        }
        address.to_string()
    }
}
