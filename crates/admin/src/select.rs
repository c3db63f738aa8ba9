//! Selectors: which messages a listing or a `postsuper` operation applies to, beyond Postfix's
//! "one ID or ALL": `--from`, `--to`, `--domain`, `--older-than`, `--queue`, `--reason REGEX`.
//! All given criteria must hold (AND).
//!
//! Address criteria (`--from`, `--to`): `alice@example.org` matches that address; `root`
//! (no `@`) matches any address whose local part is `root`; `@example.org` matches that
//! domain and its subdomains. Case-insensitive. `--from '<>'` (or `MAILER-DAEMON`) is the
//! null sender. `--domain` is `--to @domain`. `--to`, `--domain` and `--reason` look at the
//! recipients still open; one matching recipient selects the message.
//!
//! Pure matching; the regex is compiled once per request, where the messages are.

use crate::row::State;
use regex::Regex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    /// Empty = the operation's default queues.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<State>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Seconds: arrived at least this long ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<u64>,
    /// A regular expression over the deferral reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Selector {
    /// True when only queues restrict the selection.
    pub fn is_queue_only(&self) -> bool {
        self.from.is_none()
            && self.to.is_none()
            && self.domain.is_none()
            && self.older_than.is_none()
            && self.reason.is_none()
    }

    /// Compiles the selector; `defaults` are the queues used when none was named.
    pub fn compile(&self, defaults: &[State], now: u64) -> Result<Matcher, String> {
        let reason = match &self.reason {
            Some(r) => Some(Regex::new(r).map_err(|e| format!("bad --reason regex: {e}"))?),
            None => None,
        };
        let queues = if self.queues.is_empty() {
            defaults.to_vec()
        } else {
            self.queues.clone()
        };
        Ok(Matcher {
            queues,
            from: self.from.as_deref().map(AddressPattern::new),
            to: self.to.as_deref().map(AddressPattern::new),
            domain: self
                .domain
                .as_deref()
                .map(|d| AddressPattern::new(&format!("@{}", d.trim_start_matches('@')))),
            born_before: self.older_than.map(|s| now.saturating_sub(s)),
            reason,
        })
    }
}

/// A compiled [`Selector`].
#[derive(Debug, Clone)]
pub struct Matcher {
    queues: Vec<State>,
    from: Option<AddressPattern>,
    to: Option<AddressPattern>,
    domain: Option<AddressPattern>,
    born_before: Option<u64>,
    reason: Option<Regex>,
}

impl Matcher {
    pub fn wants_state(&self, state: State) -> bool {
        self.queues.contains(&state)
    }

    /// True when the message fits every criterion. `open` yields the open recipients as
    /// `(address, deferral reason)`.
    pub fn matches<'a>(
        &self,
        state: State,
        arrival_time: u64,
        sender: &str,
        open: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> bool {
        if !self.wants_state(state) {
            return false;
        }
        if self.born_before.is_some_and(|t| arrival_time > t) {
            return false;
        }
        if self
            .from
            .as_ref()
            .is_some_and(|p| !p.matches_sender(sender))
        {
            return false;
        }
        if let Some(p) = &self.to {
            if !open.clone().any(|(a, _)| p.matches(a)) {
                return false;
            }
        }
        if let Some(p) = &self.domain {
            if !open.clone().any(|(a, _)| p.matches(a)) {
                return false;
            }
        }
        if let Some(re) = &self.reason {
            if !open.clone().any(|(_, why)| re.is_match(why)) {
                return false;
            }
        }
        true
    }
}

#[derive(Debug, Clone)]
enum AddressPattern {
    Address(String),
    LocalPart(String),
    Domain(String),
    NullSender,
}

impl AddressPattern {
    fn new(text: &str) -> AddressPattern {
        let t = text.trim().trim_start_matches('<').trim_end_matches('>');
        let lower = t.to_ascii_lowercase();
        if t.is_empty() || lower == "mailer-daemon" {
            AddressPattern::NullSender
        } else if let Some(domain) = lower.strip_prefix('@') {
            AddressPattern::Domain(domain.to_string())
        } else if lower.contains('@') {
            AddressPattern::Address(lower)
        } else {
            AddressPattern::LocalPart(lower)
        }
    }

    fn matches_sender(&self, sender: &str) -> bool {
        match self {
            AddressPattern::NullSender => sender.is_empty(),
            _ => !sender.is_empty() && self.matches(sender),
        }
    }

    fn matches(&self, address: &str) -> bool {
        let (local, domain) = envelope::split_address(address);
        match self {
            AddressPattern::NullSender => address.is_empty(),
            AddressPattern::Address(a) => address.eq_ignore_ascii_case(a),
            AddressPattern::LocalPart(l) => local.eq_ignore_ascii_case(l),
            AddressPattern::Domain(d) => {
                domain == *d
                    || domain
                        .strip_suffix(d.as_str())
                        .is_some_and(|p| p.ends_with('.'))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sel: Selector, sender: &str, rcpts: &[(&str, &str)], age: u64) -> bool {
        let m = sel.compile(&[State::Deferred], 10_000).unwrap();
        m.matches(State::Deferred, 10_000 - age, sender, rcpts.iter().copied())
    }

    #[test]
    fn cron_mail_to_root_older_than_a_day() {
        let sel = Selector {
            to: Some("root".into()),
            older_than: Some(3600),
            ..Default::default()
        };
        assert!(check(
            sel.clone(),
            "cron@h",
            &[("ROOT@host.example", "")],
            7200
        ));
        assert!(!check(
            sel.clone(),
            "cron@h",
            &[("root@host.example", "")],
            60
        ));
        assert!(!check(sel, "cron@h", &[("rooty@host.example", "")], 7200));
    }

    #[test]
    fn domains_include_subdomains_only_at_a_dot() {
        let sel = Selector {
            domain: Some("example.com".into()),
            ..Default::default()
        };
        assert!(check(sel.clone(), "", &[("a@example.com", "")], 0));
        assert!(check(sel.clone(), "", &[("a@mx.example.com", "")], 0));
        assert!(!check(sel, "", &[("a@badexample.com", "")], 0));
    }

    #[test]
    fn null_sender_reason_and_queue() {
        let sel = Selector {
            from: Some("<>".into()),
            reason: Some("timed out".into()),
            ..Default::default()
        };
        assert!(check(
            sel.clone(),
            "",
            &[("a@b", "conversation timed out")],
            0
        ));
        assert!(!check(
            sel.clone(),
            "x@y",
            &[("a@b", "conversation timed out")],
            0
        ));
        assert!(!check(sel, "", &[("a@b", "refused")], 0));
        let m = Selector::default().compile(&[State::Hold], 0).unwrap();
        assert!(!m.matches(State::Deferred, 0, "", std::iter::empty()));
        assert!(Selector {
            reason: Some("(".into()),
            ..Default::default()
        }
        .compile(&[], 0)
        .is_err());
    }
}
