//! `mailroom doctor`: one screen that would have caught every seed — the daemon up or down
//! while maildrop grows (000), permission problems (001), oversized mailboxes (002), a
//! swelling deferred queue and who feeds it (000, 003, 004), free space and inodes against
//! `queue_minfree`, and the log's warning rate. Exit 0/1/2 = ok/warn/critical, for
//! monitoring.
//!
//! Inputs → outputs: the configuration, whether the daemon answers, queue [`Stats`] (from the
//! daemon or a snapshot), a `check` report, the file system → a [`Report`] of [`Item`]s
//! rendered as text or JSON. Reads only; changes nothing.
//!
//! Thresholds (why): free space below `queue_minfree` is critical (intake already refuses),
//! below twice that a warning; maildrop at 50 % of `maildrop_count_limit` warns, at 90 % or
//! and the daemon down with mail waiting is critical (seed 000); a deferred queue of 1,000+
//! warns, and so does deferred mail that all waits on one destination (one recipient domain,
//! or the `relayhost` that all of it goes through: seed 004) or that keeps growing (10 or more
//! deferred messages arrived in the last hour), with the destination and the reason in full; the oldest message past half of `maximal_queue_lifetime` warns; a mailbox past
//! 80 % of `mailbox_size_limit` warns (its next deliveries will bounce); a warning rate over
//! 10 per minute in the last hour of `maillog_file` warns; a suspended destination warns
//! (a forgotten one holds its mail back for good); the daemon's history ring
//! ([`crate::history`]) warns when the deferred queue grew by 10 or more in the last hour, or
//! submissions were refused, saying where the mail goes and why.

use crate::check::{Report as CheckReport, Severity};
use crate::duration::human_age;
use crate::row::State;
use crate::stats::Stats;
use crate::Settings;
use serde::Serialize;
use std::io::{self, Read, Seek, SeekFrom, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Critical,
}

impl Level {
    pub fn exit_code(self) -> u8 {
        self as u8
    }
    fn word(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "WARN",
            Level::Critical => "CRITICAL",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub name: String,
    pub level: Level,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub level: Level,
    pub items: Vec<Item>,
    /// The suspended destinations.
    pub suspended: Vec<queue::Suspension>,
    /// The history samples of the last [`HISTORY_WINDOW`] seconds, oldest first.
    pub history: Vec<crate::history::Sample>,
}

/// How far back doctor reads the history for its sentences.
pub const HISTORY_WINDOW: u64 = 3600;

/// Everything doctor looks at, gathered by the caller.
pub struct Inputs<'a> {
    pub cfg: &'a Settings,
    pub daemon_up: bool,
    pub stats: Option<Stats>,
    pub check: &'a CheckReport,
    pub now: u64,
    /// The suspensions in force.
    pub suspended: Vec<queue::Suspension>,
    /// The daemon's history ring (`crate::history::read`).
    pub history: Vec<crate::history::Sample>,
}

pub fn diagnose(i: &Inputs<'_>) -> Report {
    let mut items = Vec::new();
    let maildrop = i
        .stats
        .as_ref()
        .map(|s| s.count(State::Maildrop))
        .unwrap_or(0);
    items.push(daemon(i.daemon_up, maildrop));
    items.extend(space(i.cfg));
    items.push(maildrop_item(i.cfg, maildrop));
    if let Some(s) = &i.stats {
        items.extend(queue_items(i.cfg, s, i.now));
    } else {
        items.push(item(
            "queue",
            Level::Warn,
            "cannot read the queue store".into(),
        ));
    }
    items.push(permissions(i.check));
    items.push(mailboxes(i.cfg));
    if let Some(it) = log_rate(i.cfg, i.now) {
        items.push(it);
    }
    items.push(suspended(&i.suspended));
    items.push(history_item(&i.history, i.now));
    let level = items.iter().map(|x| x.level).max().unwrap_or(Level::Ok);
    let recent = i.history.iter().filter(|s| s.t + HISTORY_WINDOW >= i.now);
    Report {
        level,
        items,
        suspended: i.suspended.clone(),
        history: recent.cloned().collect(),
    }
}

/// A suspension is the operator's choice, but one forgotten holds mail back for good: warn.
fn suspended(all: &[queue::Suspension]) -> Item {
    if all.is_empty() {
        return item("suspended", Level::Ok, "no destination is suspended".into());
    }
    let each: Vec<String> = all
        .iter()
        .map(|s| format!("{}: {}", s.destination, s.text()))
        .collect();
    let detail = format!("{} (mailroom resume DEST)", each.join("; "));
    item("suspended", Level::Warn, detail)
}

/// The history's sentences: a warning when the deferred queue grew or mail was refused.
fn history_item(samples: &[crate::history::Sample], now: u64) -> Item {
    let said = crate::history::trends(samples, now, HISTORY_WINDOW);
    match (samples.last(), said.is_empty()) {
        (None, _) => item(
            "history",
            Level::Ok,
            "no samples yet (the daemon records one every doctor_history_interval)".into(),
        ),
        (Some(last), true) => item(
            "history",
            Level::Ok,
            format!("steady in the last hour ({} deferred)", last.deferred),
        ),
        (Some(_), false) => item("history", Level::Warn, said.join("; ")),
    }
}

fn item(name: &str, level: Level, detail: String) -> Item {
    Item {
        name: name.into(),
        level,
        detail,
    }
}

fn daemon(up: bool, maildrop: u64) -> Item {
    match (up, maildrop) {
        (true, _) => item("daemon", Level::Ok, "up (control socket answers)".into()),
        (false, 0) => item(
            "daemon",
            Level::Warn,
            "down: start it with mailroom serve".into(),
        ),
        (false, n) => item(
            "daemon",
            Level::Critical,
            format!("down while {n} messages wait in maildrop: start it with mailroom serve"),
        ),
    }
}

fn space(cfg: &Settings) -> Vec<Item> {
    let Ok(free) = submit::guard::free_space(cfg.layout.queue_directory()) else {
        return vec![item(
            "disk",
            Level::Critical,
            format!("cannot stat {}", cfg.layout.queue_directory().display()),
        )];
    };
    let min = cfg.queue_minfree;
    let level = if free.bytes < min {
        Level::Critical
    } else if free.bytes < min.saturating_mul(2) {
        Level::Warn
    } else {
        Level::Ok
    };
    let human = submit::guard::human;
    let mut out = vec![item(
        "disk free",
        level,
        format!("{} (queue_minfree {})", human(free.bytes), human(min)),
    )];
    if let Some(inodes) = free.inodes {
        let min = cfg.queue_minfree_inodes;
        let level = if inodes < min {
            Level::Critical
        } else if inodes < min.saturating_mul(2) {
            Level::Warn
        } else {
            Level::Ok
        };
        out.push(item(
            "inodes free",
            level,
            format!("{inodes} (queue_minfree_inodes {min})"),
        ));
    }
    out
}

fn maildrop_item(cfg: &Settings, n: u64) -> Item {
    let limit = cfg.maildrop_count_limit.max(1);
    let level = if n * 10 >= limit * 9 {
        Level::Critical
    } else if n * 2 >= limit {
        Level::Warn
    } else {
        Level::Ok
    };
    item(
        "maildrop",
        level,
        format!("{n} files waiting (maildrop_count_limit {limit})"),
    )
}

fn queue_items(cfg: &Settings, s: &Stats, now: u64) -> Vec<Item> {
    let counts: Vec<String> = [State::Incoming, State::Active, State::Deferred, State::Hold]
        .iter()
        .map(|q| format!("{} {}", q.as_str(), s.count(*q)))
        .collect();
    let deferred = s.count(State::Deferred);
    let level = if deferred >= 1000 {
        Level::Warn
    } else {
        Level::Ok
    };
    let mut out = vec![item(
        "queue",
        level,
        format!("{} ({})", counts.join(", "), submit::guard::human(s.bytes)),
    )];
    if let Some((id, t, q)) = &s.oldest {
        let age = now.saturating_sub(*t);
        let limit = cfg.maximal_queue_lifetime.as_secs();
        let level = if age > limit / 2 {
            Level::Warn
        } else {
            Level::Ok
        };
        out.push(item(
            "oldest",
            level,
            format!("{} old, {id} in {}", human_age(age), q.as_str()),
        ));
    }
    let top = |list: &[(String, u64)]| {
        list.iter()
            .map(|(k, n)| format!("{n} {}", if k.is_empty() { "(local)" } else { k }))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if deferred > 0 {
        out.extend(stuck(cfg, s));
        out.push(item(
            "deferred to",
            Level::Ok,
            top(&s.deferred_destinations),
        ));
        out.push(item("deferred from", Level::Ok, top(&s.deferred_senders)));
        // In full: a reason cut mid-text hides the host and the error an admin acts on.
        let reasons: Vec<(String, u64)> = s.deferred_reasons.iter().take(2).cloned().collect();
        out.push(item("deferred why", Level::Ok, top(&reasons)));
    }
    out
}

/// Deferred messages that arrived within the last hour from which the queue counts as growing.
pub const GROWING_PER_HOUR: u64 = 10;

/// Deferred mail that is not leaving: all of it waiting on one destination (seed 004: a dead
/// relayhost, the whole queue deferred, and `status: ok`), or more of it every hour.
fn stuck(cfg: &Settings, s: &Stats) -> Option<Item> {
    let deferred = s.count(State::Deferred);
    let reason = s
        .deferred_reasons
        .first()
        .map_or("(no reason recorded)", |(r, _)| r.as_str());
    if let Some(destination) = one_destination(cfg, s) {
        let detail = format!("all {deferred} deferred messages wait on {destination}: {reason}");
        return Some(item("deferred", Level::Warn, detail));
    }
    if s.deferred_last_hour >= GROWING_PER_HOUR {
        let detail = format!(
            "growing: {} of {deferred} deferred messages arrived in the last hour; most often: {reason}",
            s.deferred_last_hour
        );
        return Some(item("deferred", Level::Warn, detail));
    }
    None
}

/// The one destination all deferred mail waits on, if there is one: a single recipient
/// domain, or the `relayhost` when every deferred domain is remote and routed through it
/// (no `transport_maps`). The domains are known in full only up to the top list's length.
fn one_destination(cfg: &Settings, s: &Stats) -> Option<String> {
    let local = |domain: &str| {
        domain.is_empty()
            || cfg
                .mydestination
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
    };
    let all_known = s.deferred_domain_count as usize == s.deferred_destinations.len();
    let via_relayhost = !cfg.relayhost.is_empty()
        && cfg.transport_maps.is_empty()
        && all_known
        && s.deferred_destinations.iter().all(|(d, _)| !local(d));
    let single = match s.deferred_destinations.as_slice() {
        [(domain, _)] if s.deferred_domain_count == 1 => Some(domain.as_str()),
        _ => None,
    };
    match (single, via_relayhost) {
        (Some(domain), true) => Some(format!("{domain} via relayhost {}", cfg.relayhost)),
        (None, true) => Some(format!("relayhost {}", cfg.relayhost)),
        (Some(""), false) => Some("(local)".into()),
        (Some(domain), false) => Some(domain.to_string()),
        (None, false) => None,
    }
}

fn permissions(report: &CheckReport) -> Item {
    let worst = report.problems.iter().map(|p| p.severity).max();
    let level = match worst {
        None => Level::Ok,
        Some(Severity::Warning) => Level::Warn,
        Some(Severity::Error) => Level::Critical,
    };
    let detail = match report.problems.first() {
        None => "store owner and modes as expected".into(),
        Some(p) => format!(
            "{} problem(s), first: {}: {} ({})",
            report.problems.len(),
            p.path,
            p.what,
            if p.fixable() {
                "run mailroom check --fix"
            } else {
                "mailroom check says how to fix it"
            }
        ),
    };
    item("permissions", level, detail)
}

fn mailboxes(cfg: &Settings) -> Item {
    let limit = cfg.mailbox_size_limit;
    let threshold = if limit > 0 { limit / 10 * 8 } else { 1 << 30 };
    let mut big: Vec<(u64, String)> = std::fs::read_dir(&cfg.mail_spool_directory)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            (m.is_file() && m.len() >= threshold)
                .then(|| (m.len(), e.file_name().to_string_lossy().into_owned()))
        })
        .collect();
    big.sort_by(|a, b| b.cmp(a));
    if big.is_empty() {
        return item(
            "mailboxes",
            Level::Ok,
            format!("none over {}", submit::guard::human(threshold)),
        );
    }
    let list: Vec<String> = big
        .iter()
        .take(3)
        .map(|(n, u)| format!("{u} {}", submit::guard::human(*n)))
        .collect();
    item(
        "mailboxes",
        Level::Warn,
        format!(
            "{} over {}: {} (mailroom mailbox archive USER)",
            big.len(),
            submit::guard::human(threshold),
            list.join(", ")
        ),
    )
}

/// Warnings per minute over the last hour of `maillog_file`, from its last 4 MiB.
fn log_rate(cfg: &Settings, now: u64) -> Option<Item> {
    if cfg.maillog_file.is_empty() || cfg.maillog_file.starts_with("/dev/") {
        return None;
    }
    let mut file = std::fs::File::open(&cfg.maillog_file).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(4 << 20);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut text = String::new();
    file.take(4 << 20).read_to_string(&mut text).ok()?;
    let hour_ago =
        chrono::DateTime::from_timestamp(now as i64 - 3600, 0)?.with_timezone(&chrono::Local);
    let mut warnings = 0u64;
    for line in text.lines() {
        let is_warning = line.contains(" warning: ")
            || line.contains(" error: ")
            || line.contains(" fatal: ")
            || line.contains("\"level\":\"warn")
            || line.contains("\"level\":\"error");
        if is_warning && line_time(line).is_none_or(|t| t >= hour_ago.naive_local()) {
            warnings += 1;
        }
    }
    let per_minute = warnings as f64 / 60.0;
    let level = if per_minute > 10.0 {
        Level::Warn
    } else {
        Level::Ok
    };
    Some(item(
        "log warnings",
        level,
        format!("{warnings} in the last hour of {}", cfg.maillog_file),
    ))
}

/// The time of a Postfix-style line (`Mar  5 07:08:09 host …`) in this year, or of a JSON line.
fn line_time(line: &str) -> Option<chrono::NaiveDateTime> {
    if let Some(rest) = line.strip_prefix("{\"time\":\"") {
        let t = rest.split('"').next()?;
        return chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|d| d.with_timezone(&chrono::Local).naive_local());
    }
    let stamp = line.get(..15)?;
    let year = chrono::Local::now().format("%Y").to_string();
    chrono::NaiveDateTime::parse_from_str(&format!("{year} {stamp}"), "%Y %b %e %H:%M:%S").ok()
}

/// The one-screen text.
pub fn write_text(out: &mut impl Write, report: &Report, cfg: &Settings) -> io::Result<()> {
    writeln!(
        out,
        "mailroom doctor: {} ({} profile)",
        cfg.layout.queue_directory().display(),
        cfg.profile.as_str()
    )?;
    for it in &report.items {
        writeln!(
            out,
            "  {:<14} {:<8} {}",
            it.name,
            it.level.word(),
            it.detail
        )?;
    }
    writeln!(out, "status: {}", report.level.word())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REASON: &str = "conversation with relay.example[192.0.2.1] timed out while sending end of data -- message may be sent more than once";

    fn cfg(extra: &str) -> Settings {
        let text =
            format!("queue_directory = \"/nonexistent\"\nmydestination = [\"localhost\"]\n{extra}");
        Settings::from_config(&config::Config::from_str(&text, None).unwrap())
    }

    fn stats(domains: &[(&str, u64)], last_hour: u64) -> Stats {
        let deferred: u64 = domains.iter().map(|d| d.1).sum();
        Stats {
            messages: [("deferred".to_string(), deferred)].into(),
            deferred_destinations: domains.iter().map(|(d, n)| (d.to_string(), *n)).collect(),
            deferred_reasons: vec![(REASON.to_string(), deferred)],
            deferred_domain_count: domains.len() as u64,
            deferred_last_hour: last_hour,
            ..Stats::default()
        }
    }

    fn stuck_detail(cfg: &Settings, s: &Stats) -> Option<String> {
        let items = queue_items(cfg, s, 0);
        let found = items.into_iter().find(|i| i.name == "deferred")?;
        assert_eq!(found.level, Level::Warn);
        Some(found.detail)
    }

    /// Issue 8, defect 14: seed 004's picture, the whole queue deferred to one dead
    /// destination, was `status: ok`, and the reason was cut at 70 characters.
    #[test]
    fn all_deferred_to_one_destination_warns_with_the_full_reason() {
        let detail = stuck_detail(&cfg(""), &stats(&[("dead.example", 7)], 0)).unwrap();
        assert_eq!(
            detail,
            format!("all 7 deferred messages wait on dead.example: {REASON}")
        );
        let relayed = cfg("relayhost = \"[192.0.2.1]:25\"\n");
        let detail = stuck_detail(&relayed, &stats(&[("a.example", 3), ("b.example", 2)], 0));
        assert_eq!(
            detail.unwrap(),
            format!("all 5 deferred messages wait on relayhost [192.0.2.1]:25: {REASON}")
        );
        let why = queue_items(&cfg(""), &stats(&[("dead.example", 7)], 0), 0)
            .into_iter()
            .find(|i| i.name == "deferred why")
            .unwrap();
        assert!(why.detail.contains(REASON), "{}", why.detail);
    }

    #[test]
    fn a_growing_deferred_queue_warns() {
        let s = stats(&[("a.example", 6), ("b.example", 6)], GROWING_PER_HOUR);
        let detail = stuck_detail(&cfg(""), &s).unwrap();
        assert!(
            detail.starts_with("growing: 10 of 12 deferred messages arrived in the last hour"),
            "{detail}"
        );
    }

    #[test]
    fn scattered_old_deferrals_are_not_a_warning() {
        let s = stats(&[("a.example", 2), ("b.example", 1)], 1);
        assert_eq!(stuck_detail(&cfg(""), &s), None);
        // A local domain among them: the relayhost is not the one destination.
        let relayed = cfg("relayhost = \"[192.0.2.1]:25\"\n");
        let s = stats(&[("localhost", 2), ("b.example", 1)], 1);
        assert_eq!(stuck_detail(&relayed, &s), None);
    }
}
