//! Destinations the operator suspended (`postqueue -S`, `mailroom suspend`): the table, how a
//! recipient is matched against it, and its file `<queue_directory>/suspended`.
//!
//! A suspension names a recipient domain (`example.net`: every recipient in it, whatever
//! route it takes) or a next hop as the scheduler keys its destinations (`[10.0.0.1]:2525`,
//! a relayhost: every recipient routed through it). While it lasts, the queue manager leaves
//! the matching recipients queued without a connection, an attempt or an expiry (see the
//! sched crate); it ends when resumed or, for a timed one, by itself at `until`.
//!
//! The file is small JSON, replaced whole (temp file, fsync, rename, directory fsync, under
//! an exclusive lock of the queue directory so a CLI and a daemon cannot lose each other's
//! change), mode 0644 and owned by the queue directory's owner, so the daemon running as
//! `mail_owner` reads and rewrites what root's CLI wrote while it was down. A missing file is
//! an empty table; an unreadable one is an error (never silently "nothing suspended").

use crate::Layout;
use serde::{Deserialize, Serialize};
use std::io;
use std::os::unix::fs::MetadataExt;

/// Why a suspend or resume did not happen: the caller's mistake, or the server's trouble
/// (the API answers 400 and 500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuspendError {
    /// Not a destination.
    #[error("{0}")]
    Invalid(String),
    /// The file could not be read or written.
    #[error("{0}")]
    Failed(String),
}

/// One suspended destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// A lower-case domain, or a next hop in its canonical form (`[host]:port`).
    pub destination: String,
    /// The operator's words (may be empty).
    #[serde(default)]
    pub reason: String,
    /// Unix seconds it began.
    pub since: u64,
    /// Unix seconds it ends by itself; `None` = until resumed.
    #[serde(default)]
    pub until: Option<u64>,
}

impl Suspension {
    /// True while it lasts.
    pub fn in_force(&self, now: u64) -> bool {
        self.until.is_none_or(|t| t > now)
    }

    /// The deferral reason mailq shows for a recipient it holds back.
    pub fn text(&self) -> String {
        let until = match self.until {
            Some(t) => format!("until {}", utc(t)),
            None => "until resumed".to_string(),
        };
        match self.reason.as_str() {
            "" => format!("delivery suspended by the operator {until}"),
            why => format!("delivery suspended by the operator {until}: {why}"),
        }
    }
}

/// `2026-12-01 17:05:00 UTC` (no time-zone database needed).
pub fn utc(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let (h, min, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02} UTC")
}

/// Year, month (1-12) and day (1-31) of a day number counted from 1970-01-01 (Howard
/// Hinnant's days-to-civil algorithm, proleptic Gregorian); also mailq's arrival dates.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The canonical form of a destination as the operator typed it: a domain lower-cased
/// without its trailing dot, or a bracketed next hop as the scheduler prints it.
pub fn normalize(destination: &str) -> Result<String, String> {
    let text = destination.trim();
    if text.starts_with('[') {
        return envelope::Nexthop::parse(text)
            .map(|n| n.to_string())
            .map_err(|e| e.to_string());
    }
    let domain = text.trim_end_matches('.').to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    match valid {
        true => Ok(domain),
        false => Err(format!(
            "not a destination: {text:?} (use a domain, or [host] or [host]:port)"
        )),
    }
}

/// Every suspension, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspensions {
    pub list: Vec<Suspension>,
}

impl Suspensions {
    /// The suspension in force at `now` that holds back a recipient in `domain` going to
    /// the destination named `nexthop` (the scheduler's destination name), if any.
    pub fn matching(&self, domain: &str, nexthop: Option<&str>, now: u64) -> Option<&Suspension> {
        let domain = domain.trim_end_matches('.');
        self.list.iter().filter(|s| s.in_force(now)).find(|s| {
            s.destination.eq_ignore_ascii_case(domain)
                || nexthop.is_some_and(|n| s.destination.eq_ignore_ascii_case(n))
        })
    }

    /// Adds or replaces the suspension of `s.destination`.
    pub fn insert(&mut self, s: Suspension) {
        self.list.retain(|x| x.destination != s.destination);
        self.list.push(s);
    }

    /// Removes the suspension of `destination`; true if there was one in force.
    pub fn remove(&mut self, destination: &str, now: u64) -> bool {
        let before = self.list.iter().filter(|s| s.in_force(now)).count();
        self.list.retain(|s| s.destination != destination);
        self.list.iter().filter(|s| s.in_force(now)).count() < before
    }

    /// Drops the suspensions that ended; true if any did.
    pub fn prune(&mut self, now: u64) -> bool {
        let before = self.list.len();
        self.list.retain(|s| s.in_force(now));
        self.list.len() < before
    }

    /// The next time a timed suspension ends.
    pub fn next_end(&self, now: u64) -> Option<u64> {
        self.list
            .iter()
            .filter_map(|s| s.until)
            .filter(|&t| t > now)
            .min()
    }

    /// Reads `<queue_directory>/suspended`; a missing file is an empty table.
    pub fn load(layout: &Layout) -> io::Result<Suspensions> {
        match std::fs::read(layout.suspended()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                let path = layout.suspended();
                io::Error::other(format!("{}: {e}", path.display()))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Suspensions::default()),
            Err(e) => Err(e),
        }
    }

    /// Reads, changes and durably replaces the file under the queue directory's lock;
    /// returns the new table and what `change` said. Nothing is written when `change`
    /// fails.
    pub fn update<T>(
        layout: &Layout,
        change: impl FnOnce(&mut Suspensions) -> Result<T, String>,
    ) -> Result<(Suspensions, T), String> {
        let dir = layout.queue_directory();
        if !dir.is_dir() {
            let why = "does not exist (start the daemon once, or run mailroom install)";
            return Err(format!("queue_directory {} {why}", dir.display()));
        }
        let fail = |e: io::Error| format!("{}: {e}", layout.suspended().display());
        let _lock = security::lock_directory_of(&layout.suspended()).map_err(fail)?;
        let mut table = Suspensions::load(layout).map_err(fail)?;
        let answer = change(&mut table)?;
        let owner = std::fs::metadata(dir).map_err(fail)?;
        let mut bytes = serde_json::to_vec_pretty(&table).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
        let path = layout.suspended();
        let ids = Some((owner.uid(), owner.gid()));
        security::write_atomic(&path, &bytes, FILE_MODE, ids).map_err(fail)?;
        Ok((table, answer))
    }
}

/// The file's mode: the reasons are no secret, and doctor may run as any user.
pub const FILE_MODE: u32 = 0o644;

/// Reads a `--for` duration: `90s`, `30m`, `2h`, `1d`, `1w`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (use e.g. 90s, 30m, 2h, 1d)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "not a duration: {text:?} (use e.g. 90s, 30m, 2h, 1d)"
            ))
        }
    };
    n.checked_mul(scale)
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("not a duration: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(dest: &str, until: Option<u64>) -> Suspension {
        Suspension {
            destination: dest.into(),
            reason: "maintenance".into(),
            since: 100,
            until,
        }
    }

    #[test]
    fn a_domain_matches_its_recipients_and_a_nexthop_its_route() {
        let mut t = Suspensions::default();
        t.insert(s("example.net", None));
        t.insert(s("[10.0.0.1]:2525", Some(500)));
        assert!(t.matching("EXAMPLE.NET.", Some("mx.other"), 200).is_some());
        assert!(t
            .matching("other.example", Some("[10.0.0.1]:2525"), 200)
            .is_some());
        assert!(t
            .matching("other.example", Some("[10.0.0.1]:2525"), 500)
            .is_none());
        assert!(t
            .matching("other.example", Some("other.example"), 200)
            .is_none());
        assert_eq!(t.next_end(200), Some(500));
        assert!(t.prune(600));
        assert_eq!(t.list.len(), 1);
    }

    #[test]
    fn destinations_are_normalized_and_garbage_refused() {
        assert_eq!(normalize("Example.NET.").unwrap(), "example.net");
        assert_eq!(normalize("[127.0.0.1]:2525").unwrap(), "[127.0.0.1]:2525");
        assert!(normalize("a b").is_err());
        assert!(normalize("").is_err());
        assert!(normalize("[x").is_err());
    }

    #[test]
    fn the_reason_says_until_when() {
        assert_eq!(
            s("a.example", Some(1_796_144_400)).text(),
            "delivery suspended by the operator until 2026-12-01 17:00:00 UTC: maintenance"
        );
        assert_eq!(
            s("a.example", None).text(),
            "delivery suspended by the operator until resumed: maintenance"
        );
    }

    #[test]
    fn durations_read_like_postfix_times() {
        assert_eq!(parse_duration("2h").unwrap(), 7200);
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert!(parse_duration("2x").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn the_file_survives_a_round_trip_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert_eq!(Suspensions::load(&layout).unwrap(), Suspensions::default());
        let (table, ()) = Suspensions::update(&layout, |t| {
            t.insert(s("example.net", None));
            Ok(())
        })
        .unwrap();
        assert_eq!(Suspensions::load(&layout).unwrap(), table);
        std::fs::write(layout.suspended(), b"{not json").unwrap();
        assert!(Suspensions::load(&layout).is_err());
    }
}
