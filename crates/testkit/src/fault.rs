//! The fault suite's counting kit (`crates/mailroom/tests/fault_*.rs`): what every
//! scenario needs to *count* under a fault rather than only check that something happened.
//!
//! - Tagged messages: each carries a unique tag in its `Subject:` and a last body line
//!   `END <tag>`, so a copy that arrived whole can be told from a torn one.
//! - [`send_tagged`] / [`Load`]: SMTP clients that record, per message, whether the daemon
//!   acknowledged it (250 after the final dot), refused it (with the reply) or broke off.
//!   Only an acknowledged message counts against "lost".
//! - [`DumpSink`]: Postfix's `smtp-sink -d`, one file per received transaction, read back
//!   as tag → copies (duplicates are visible, and so is the moment a copy arrived).
//! - The machine: [`peak_rss_kib`] / [`rss_kib`], [`raise_nofile`], a seeded [`Rng`]
//!   (filling a disk is [`crate::Tmpfs::fill`]).
//! - [`Summary`]: the one line per scenario that RELIABILITY.md collects, written past the
//!   test harness's output capture so it shows in every `cargo test` log.
//! - [`skip_unless_root`], [`skip_unless_peers`]: a scenario that cannot run here says why in
//!   one line and passes, rather than failing on a machine without root or Postfix.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::client::{local, Client, Failure};
use crate::env::TestEnv;
use crate::machine::{is_root, list_dir};
use crate::sink::{Sink, SMTP_SINK};
use crate::wait::poll_every;

// ---------------------------------------------------------------------------------------
// Skipping and reporting.

/// True (and one line on stderr) when the scenario cannot run because we are not root.
pub fn skip_unless_root(scenario: &str) -> bool {
    if is_root() {
        return false;
    }
    say(&format!("SKIPPED {scenario}: needs root (mount -t tmpfs)"));
    true
}

/// True (and one line on stderr) when a peer program the scenario drives is missing.
pub fn skip_unless_peers(scenario: &str) -> bool {
    if !Path::new(SMTP_SINK).exists() {
        say(&format!(
            "SKIPPED {scenario}: {SMTP_SINK} is missing (apt-get install postfix)"
        ));
        return true;
    }
    let python = Command::new("python3").arg("-c").arg("pass").status();
    if !python.is_ok_and(|s| s.success()) {
        say(&format!("SKIPPED {scenario}: python3 is missing"));
        return true;
    }
    false
}

/// Writes one line to the real standard error, past libtest's capture (which only catches
/// `print!`/`eprint!`), so the figures appear in the log of a passing run too.
pub fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// The figures of one scenario, as RELIABILITY.md's table has them.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub scenario: &'static str,
    pub runs: usize,
    /// Messages the daemon acknowledged (250 after DATA, or `sendmail` exit 0).
    pub acknowledged: usize,
    /// Acknowledged messages that never arrived whole.
    pub lost: usize,
    /// Extra copies: arrivals beyond the first, summed over messages.
    pub duplicated: usize,
    /// Anything else worth a figure (`key=value` words).
    pub notes: String,
}

impl Summary {
    pub fn print(&self) {
        say(&format!(
            "fault-summary: scenario={} runs={} acknowledged={} lost={} duplicated={} {}",
            self.scenario, self.runs, self.acknowledged, self.lost, self.duplicated, self.notes
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Tagged messages and the clients that send them.

/// A message whose `Subject:` is `tag` and whose last line is `END tag`; `pad` lines of
/// 76 characters make it bigger without long lines.
pub fn tagged_message(tag: &str, pad: usize) -> String {
    let mut text = format!(
        "From: load@client.test\r\nTo: someone@example.net\r\nSubject: {tag}\r\n\
         Message-ID: <{tag}@client.test>\r\n\r\nbody of {tag}\r\n"
    );
    for i in 0..pad {
        text += &format!("{i:06} {}\r\n", "x".repeat(69));
    }
    text += &format!("END {tag}\r\n");
    text
}

/// The tag of a whole tagged message (its `END tag` line), if it is there.
pub fn tag_of(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let at = text.rfind("\nEND ")?;
    // The END line must be complete (ended by its newline), and name the Subject's tag.
    let line = text[at + 5..].split_once('\n')?.0.trim_end();
    let subject = format!("Subject: {line}");
    let named = text.lines().any(|l| l.trim_end() == subject);
    (!line.is_empty() && named).then(|| line.to_string())
}

/// What happened to one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// 2xx to the final dot: the daemon now owns the message.
    Acked,
    /// A 4xx/5xx reply at some step (the reply line).
    Refused(String),
    /// The connection failed or closed before the final reply.
    Broken(String),
}

/// Sends `tagged_message(tag, pad)` from `load@client.test` to `rcpt` in one session.
pub fn send_tagged(port: u16, tag: &str, rcpt: &str, pad: usize) -> Sent {
    let mut client = match Client::try_connect(local(port)) {
        Ok(client) => client,
        Err(e) => return Sent::Broken(e.to_string()),
    };
    let message = tagged_message(tag, pad);
    match client.send_mail("load@client.test", "", &[(rcpt, "")], &message) {
        Ok(()) => Sent::Acked,
        Err(Failure::Refused { reply, .. }) => Sent::Refused(reply),
        Err(Failure::Broken(why)) => Sent::Broken(why),
    }
}

/// What a set of clients saw, message by message.
#[derive(Debug, Default)]
pub struct Tally {
    pub acked: Vec<String>,
    pub refused: Vec<(String, String)>,
    pub broken: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.acked.extend(other.acked);
        self.refused.extend(other.refused);
        self.broken.extend(other.broken);
    }
}

/// `clients` threads sending tagged messages (`PREFIX-CLIENT-N`) back to back until
/// stopped. A refused or broken message is not retried: its tag is recorded and the next
/// message gets a new tag, so any copy of an acknowledged tag is the daemon's doing.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Tally>>,
}

impl Load {
    pub fn start(port: u16, clients: usize, prefix: &str, rcpt: &str, pad: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|c| {
                let (stop, prefix, rcpt) = (stop.clone(), prefix.to_string(), rcpt.to_string());
                thread::spawn(move || {
                    client_loop(port, &format!("{prefix}-{c}"), &rcpt, pad, &stop)
                })
            })
            .collect();
        Load { stop, threads }
    }

    pub fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Tally::default();
        for t in self.threads {
            total.merge(t.join().expect("load client panicked"));
        }
        total
    }
}

fn client_loop(port: u16, prefix: &str, rcpt: &str, pad: usize, stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let tag = format!("{prefix}-{n}");
        n += 1;
        match send_tagged(port, &tag, rcpt, pad) {
            Sent::Acked => tally.acked.push(tag),
            Sent::Refused(line) => {
                tally.refused.push((tag, line));
                thread::sleep(Duration::from_millis(20));
            }
            Sent::Broken(_) => {
                // The daemon is down (killed) or went away mid-session: back off a little.
                tally.broken.push(tag);
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
    tally
}

// ---------------------------------------------------------------------------------------
// The receiving side.

/// Postfix's `smtp-sink -c -d DIR/m.`: every completed transaction becomes one file, so
/// duplicates and the order of arrival can be counted after the fact.
pub struct DumpSink {
    pub sink: Sink,
    pub dir: PathBuf,
}

/// What the sink holds: tag → names of the files with a whole copy, and how many files
/// hold no whole tagged message.
#[derive(Debug, Default)]
pub struct Copies {
    pub by_tag: BTreeMap<String, Vec<String>>,
    pub incomplete: Vec<String>,
}

impl Copies {
    /// Extra copies, summed over tags.
    pub fn duplicated(&self) -> usize {
        self.by_tag.values().map(|c| c.len() - 1).sum()
    }

    /// Acknowledged tags with no whole copy.
    pub fn lost<'a>(&self, acked: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        acked
            .into_iter()
            .filter(|t| !self.by_tag.contains_key(*t))
            .cloned()
            .collect()
    }
}

impl DumpSink {
    /// Starts the sink on `port` (chosen before, so the daemon's relayhost can name it while
    /// nothing listens yet). As root, smtp-sink runs as `nobody`: the test root is opened up
    /// so it can reach its dump directory.
    pub fn start(env: &TestEnv, port: u16) -> DumpSink {
        DumpSink::start_with(env, port, &[])
    }

    /// [`DumpSink::start`] with more smtp-sink options, e.g. `["-W", ".:300"]` for a sink
    /// that takes the whole message but answers the final dot only after 300 s. A sink
    /// started again on the same port keeps its dump directory (and the files in it).
    pub fn start_with(env: &TestEnv, port: u16, extra: &[&str]) -> DumpSink {
        let (sink, dir) =
            Sink::start_dumping(&env.root, std::net::Ipv4Addr::LOCALHOST, port, extra);
        DumpSink { sink, dir }
    }

    /// File names in the dump directory now (a cheap snapshot).
    pub fn files(&self) -> Vec<String> {
        list_dir(&self.dir)
    }

    /// Reads every dump file.
    pub fn copies(&self) -> Copies {
        let mut copies = Copies::default();
        for name in self.files() {
            let bytes = fs::read(self.dir.join(&name)).unwrap_or_default();
            match tag_of(&bytes) {
                Some(tag) => copies.by_tag.entry(tag).or_default().push(name),
                None => copies.incomplete.push(name),
            }
        }
        copies
    }

    /// Waits (at most `limit`) until every tag in `tags` has a whole copy; returns what
    /// the sink holds then.
    pub fn wait_for(&self, tags: &[String], limit: Duration) -> Copies {
        // Each check reads every dump file: every 250 ms is enough.
        poll_every(Duration::from_millis(250), limit, || {
            self.copies().lost(tags).is_empty()
        });
        self.copies()
    }
}

/// Peak resident set size (`VmHWM`, KiB) of process `pid`.
pub fn peak_rss_kib(pid: i32) -> Option<u64> {
    status_field(pid, "VmHWM:")
}

/// Current resident set size (`VmRSS`, KiB) of process `pid`.
pub fn rss_kib(pid: i32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

fn status_field(pid: i32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Raises this process's open-file limit (inherited by the daemon it starts) to `want`.
pub fn raise_nofile(want: u64) -> u64 {
    sys::raise_open_file_limit(want).expect("getrlimit(RLIMIT_NOFILE)")
}

/// A small xorshift generator: random fault moments without a dependency. The seed is
/// `FAULT_SEED` if set (to replay a run), else the clock; scenarios print it.
pub struct Rng {
    state: u64,
    seed: u64,
}

impl Rng {
    pub fn from_env() -> Rng {
        let seed = std::env::var("FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        let seed = seed.max(1);
        Rng { state: seed, seed }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    #[allow(clippy::should_implement_trait)] // an endless generator, not an iterator
    pub fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// Uniform in `low..high` (milliseconds, say).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }
}
