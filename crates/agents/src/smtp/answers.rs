//! The servers each nexthop resolved to, kept until the first of the DNS answers behind them
//! expires, so the next delivery there needs no lookup at all.
//!
//! Why, when hickory caches answers already: with many destinations nearly every delivery
//! misses the connection cache's destination label (the idle connection it would take was
//! filed under another domain since) and asks DNS where to go: an MX and an A/AAAA lookup,
//! each a trip through hickory's resolver machinery and its cache (name hashing, the cache's
//! housekeeping, a timeout timer). Measured with callgrind (BENCHMARKS.md, "Where the
//! many-domain CPU goes"), that was most of the CPU a delivery over 5,000 domains paid beyond
//! one to a single domain. This table answers the same question with one hash lookup.
//!
//! Inputs → outputs: a nexthop name whose lookups all succeeded ([`Servers`]: each MX host
//! with its preference and addresses) and the instant the first of those answers expires →
//! kept; later the same name → the same servers until that instant, then nothing.
//! Invariants: never outlives a DNS answer it came from (the earliest `valid_until` of the MX
//! and every address lookup); only complete, positive results are kept (a failed, partial or
//! implicit-MX result is asked again every time, through hickory's own cache, exactly as
//! before) — partial includes a host whose A lookup succeeded while its AAAA lookup failed
//! for now (or the reverse): kept, that set would leave the host's IPv6 addresses out until
//! the A record expired (`dns.rs` asks the two families apart to know); equal-preference MX hosts are shuffled again for every delivery (RFC 5321 5.1:
//! the table keeps preferences, not an order); at most [`MAX_NEXTHOPS`] names, so a flood of
//! distinct destinations cannot grow it without bound.
//! Security stance: holds only what the resolver returned; no other input.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Nexthop names kept at most (hickory's cache is sized 65,536 answers, three a domain).
pub(crate) const MAX_NEXTHOPS: usize = 32_768;

/// One nexthop's servers: each MX host (or the `[host]` itself, preference 0) with its
/// preference and addresses, in the order the answers gave them.
pub(crate) type Servers = Arc<[(u16, String, Vec<IpAddr>)]>;

struct Entry {
    servers: Servers,
    valid_until: Instant,
}

/// The table, by nexthop name: one for MX lookups (`domain`), one for hosts asked for their
/// addresses only (`[host]`), since the same name means different servers in each.
#[derive(Default)]
pub(crate) struct Answers {
    tables: Mutex<[HashMap<String, Entry>; 2]>,
}

impl Answers {
    /// The servers kept for `name` (looked up by MX when `mx_lookup`), if still valid at `now`.
    pub fn get(&self, name: &str, mx_lookup: bool, now: Instant) -> Option<Servers> {
        let mut tables = self.lock();
        let table = &mut tables[usize::from(mx_lookup)];
        let entry = table.get(name)?;
        if entry.valid_until > now {
            return Some(Arc::clone(&entry.servers));
        }
        table.remove(name);
        None
    }

    /// Keeps `servers` for `name` until `valid_until`. When the table is full, expired names
    /// go first; if none had expired, the table starts over (each name costs one lookup
    /// through hickory again, never a wrong answer).
    pub fn put(&self, name: &str, mx_lookup: bool, servers: Servers, valid_until: Instant) {
        let now = Instant::now();
        if valid_until <= now {
            return;
        }
        let mut tables = self.lock();
        let kept: usize = tables.iter().map(HashMap::len).sum();
        if kept >= MAX_NEXTHOPS {
            for table in tables.iter_mut() {
                table.retain(|_, entry| entry.valid_until > now);
            }
            if tables.iter().map(HashMap::len).sum::<usize>() >= MAX_NEXTHOPS {
                tables.iter_mut().for_each(HashMap::clear);
            }
        }
        let entry = Entry {
            servers,
            valid_until,
        };
        tables[usize::from(mx_lookup)].insert(name.to_string(), entry);
    }

    /// Names kept (tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().iter().map(HashMap::len).sum()
    }

    /// The tables, even if a panicking thread poisoned the lock (every critical section is a
    /// plain get, insert or remove).
    fn lock(&self) -> std::sync::MutexGuard<'_, [HashMap<String, Entry>; 2]> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn servers(ip: &str) -> Servers {
        Arc::from(vec![(
            10,
            "mx.example".to_string(),
            vec![ip.parse().unwrap()],
        )])
    }

    #[test]
    fn an_answer_is_given_until_it_expires_and_then_forgotten() {
        let answers = Answers::default();
        let now = Instant::now();
        let until = now + Duration::from_secs(60);
        answers.put("example.net", true, servers("192.0.2.1"), until);
        let got = answers.get("example.net", true, now).unwrap();
        assert_eq!(got[0].2, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert!(answers.get("example.net", true, until).is_none());
        assert_eq!(answers.len(), 0, "an expired answer is dropped when asked");
    }

    #[test]
    fn a_name_looked_up_by_mx_is_not_the_same_name_in_brackets() {
        let answers = Answers::default();
        let until = Instant::now() + Duration::from_secs(60);
        answers.put("example.net", true, servers("192.0.2.1"), until);
        assert!(answers.get("example.net", false, Instant::now()).is_none());
        answers.put("example.net", false, servers("192.0.2.2"), until);
        let bracketed = answers.get("example.net", false, Instant::now()).unwrap();
        assert_eq!(bracketed[0].2[0].to_string(), "192.0.2.2");
    }

    #[test]
    fn an_already_expired_answer_is_not_kept() {
        let answers = Answers::default();
        answers.put("example.net", true, servers("192.0.2.1"), Instant::now());
        assert_eq!(answers.len(), 0);
    }

    #[test]
    fn the_table_never_holds_more_than_its_cap() {
        let answers = Answers::default();
        let until = Instant::now() + Duration::from_secs(60);
        for n in 0..MAX_NEXTHOPS + 10 {
            answers.put(&format!("d{n}.example"), true, servers("192.0.2.1"), until);
            assert!(answers.len() <= MAX_NEXTHOPS);
        }
        let last = format!("d{}.example", MAX_NEXTHOPS + 9);
        assert!(answers.get(&last, true, Instant::now()).is_some());
    }
}
