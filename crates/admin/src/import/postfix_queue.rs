//! Moves a stopped Postfix's queue (`incoming`, `active`, `deferred`, `hold`) into the
//! mailroom store, one file at a time, so that nothing is delivered twice and nothing is lost.
//!
//! For each ready queue file: parse it whole ([`queue_file::parse`]); build the mailroom
//! message (pending recipients only; done ones dropped; ones Postfix bounced but had not yet
//! reported become `Bounced`, so mailroom sends the report Postfix owed); enqueue it in the
//! queue it had (`hold` stays held, `deferred` keeps its next retry time, Postfix's file
//! mtime) in one durable record ([`queue::Store::enqueue_as`]); only then unlink the Postfix
//! file and fsync its directory, and drop its `defer`/`bounce`/`trace` logs.
//!
//! Crash anywhere and run again: the mailroom queue ID is derived from the Postfix file
//! (arrival time plus a hash of the Postfix queue ID), so a file whose copy is already in
//! the store is recognised (same ID, same sender and arrival) and only unlinked. The one
//! window left: a crash between the store's fsync and the unlink, followed by starting
//! mailroom and letting it deliver before re-running the import; the README says to re-run
//! the import first.
//!
//! A file it cannot use (unparsable, incomplete, not a regular file) is left in place and
//! named in the report; the rest are imported.

use super::queue_file::{self, QueueFile};
use envelope::{Envelope, QueueId, Recipient, RecipientState};
use queue::{MessageMeta, QueueName, Snapshot, Store};
use serde::Serialize;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Postfix's queues that hold mail to import, in the order they are imported; `maildrop`
/// last: its files are listed (never silently passed over) but not imported.
pub const QUEUES: [&str; 5] = ["incoming", "active", "deferred", "hold", "maildrop"];

/// Why a `maildrop/` file is left: it is raw `sendmail` input that Postfix's pickup and
/// cleanup have not processed (recipients of `sendmail -t` are still in its headers).
const MAILDROP_WHY: &str = "not yet queued by Postfix (maildrop): start Postfix until \
`postqueue -p` lists it, stop it, and run the import again";

/// Where the copies go: the store (owned, under its lock), or a read-only look for
/// `--dry-run`.
pub enum Target<'a> {
    Store(&'a Store),
    DryRun(Option<&'a Snapshot>),
}

impl Target<'_> {
    fn existing(&self, id: QueueId) -> Option<Envelope> {
        match self {
            Target::Store(store) => store.get(id).map(|e| e.meta.envelope),
            Target::DryRun(snapshot) => (*snapshot)?.get(id).map(|e| e.meta.envelope),
        }
    }
}

/// What happened to one Postfix queue file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Copied into the store and removed from Postfix's queue.
    Imported,
    /// A copy was already in the store (an earlier, interrupted run); removed from Postfix.
    AlreadyImported,
    /// Nothing left to deliver or report; removed, as Postfix's queue manager would.
    Finished,
    /// Left in Postfix's queue; `why` says why.
    Left,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// Path under Postfix's queue directory, e.g. `deferred/A/A1B2C3D4E5`.
    pub path: String,
    pub postfix_id: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailroom_id: Option<String>,
    /// The mailroom queue it went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<&'static str>,
    /// Recipients still to deliver.
    pub pending: usize,
    /// Recipients Postfix had finished: never imported.
    pub done: usize,
    /// Done recipients whose bounce Postfix had not yet sent: imported as bounced.
    pub bounced: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl FileReport {
    fn left(file: &QueueEntry, why: impl Into<String>) -> FileReport {
        FileReport {
            path: file.relative.clone(),
            postfix_id: file.postfix_id.clone(),
            action: Action::Left,
            mailroom_id: None,
            queue: None,
            pending: 0,
            done: 0,
            bounced: 0,
            why: Some(why.into()),
            warning: None,
        }
    }
}

/// One file found in a Postfix queue.
#[derive(Debug, Clone)]
pub struct QueueEntry {
    pub queue: &'static str,
    pub relative: String,
    pub path: PathBuf,
    pub postfix_id: String,
}

/// Every file under the queues (hashed subdirectories included), oldest queue first.
/// Collects them all: for tests and small queues; the command streams with [`for_each`].
pub fn list(postfix_queue: &Path) -> io::Result<Vec<QueueEntry>> {
    let mut found = Vec::new();
    for_each(postfix_queue, |entry| found.push(entry))?;
    Ok(found)
}

/// Calls `f` for every file under the queues, one directory in memory at a time, so a
/// queue of a million files is walked in bounded memory (DESIGN invariant 8).
pub fn for_each(postfix_queue: &Path, mut f: impl FnMut(QueueEntry)) -> io::Result<()> {
    for queue in QUEUES {
        let dir = postfix_queue.join(queue);
        if dir.is_dir() {
            walk(postfix_queue, &dir, queue, 0, &mut f)?;
        }
    }
    Ok(())
}

/// How many files [`for_each`] will visit (for the progress bar).
pub fn count(postfix_queue: &Path) -> io::Result<u64> {
    let mut n = 0;
    for_each(postfix_queue, |_| n += 1)?;
    Ok(n)
}

fn walk(
    root: &Path,
    dir: &Path,
    queue: &'static str,
    depth: usize,
    f: &mut impl FnMut(QueueEntry),
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let path = entry.path();
        // Hashed queues (`hash_queue_depth`) nest at most a few levels; never follow links.
        if entry.file_type()?.is_dir() && depth < 16 {
            walk(root, &path, queue, depth + 1, f)?;
            continue;
        }
        let relative = path.strip_prefix(root).unwrap_or(&path);
        f(QueueEntry {
            queue,
            relative: relative.to_string_lossy().into_owned(),
            postfix_id: entry.file_name().to_string_lossy().into_owned(),
            path,
        });
    }
    Ok(())
}

/// The mailroom ID of a Postfix message: its arrival time (so IDs still sort by age) and
/// 28 bits of an FNV-1a hash of its Postfix queue ID. The same file always maps to the
/// same ID, which is how a second run recognises what the first already copied.
pub fn mailroom_id(postfix_id: &str, arrival: (u64, u32)) -> QueueId {
    let micros = arrival.0.saturating_mul(1_000_000) + u64::from(arrival.1);
    let micros = micros & ((1 << 52) - 1);
    let mut hash: u32 = 0x811c_9dc5;
    for byte in postfix_id.bytes() {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    QueueId::from_u128((u128::from(micros) << 28) | u128::from(hash & 0x0fff_ffff))
}

/// Imports one file (or, in a dry run, says what it would do).
pub fn import_one(postfix_queue: &Path, file: &QueueEntry, target: &Target) -> FileReport {
    match prepare(postfix_queue, file) {
        Ok(prepared) => commit(postfix_queue, file, prepared, target),
        Err(why) => FileReport::left(file, why),
    }
}

/// A parsed file and the mailroom message made from it.
struct Prepared {
    parsed: QueueFile,
    id: QueueId,
    meta: MessageMeta,
    report: FileReport,
}

fn prepare(postfix_queue: &Path, file: &QueueEntry) -> Result<Prepared, String> {
    let (bytes, retry_at) = read_ready(file)?;
    let parsed = queue_file::parse(&bytes).map_err(|e| format!("cannot parse: {e}"))?;
    let logs = Logs::read(postfix_queue, file);
    let queue = match file.queue {
        "hold" => QueueName::Hold,
        "deferred" => QueueName::Deferred,
        _ => QueueName::Incoming,
    };
    let (mut envelope, mut counts) = envelope(&parsed, &logs);
    if parsed.verify_only {
        // Postfix would only probe these recipients (RCPT, then RSET): mailroom has no
        // probe, and delivering the probe would send mail nobody wrote.
        envelope.recipients.clear();
        counts = (0, parsed.recipients.len() + parsed.done.len(), 0);
    }
    let deferred = queue == QueueName::Deferred;
    let meta = MessageMeta {
        envelope,
        queue,
        next_attempt: if deferred { retry_at } else { 0 },
        attempts: u32::from(deferred),
        delay_warned: parsed.delay_warned,
        follow_up: None,
    };
    let id = mailroom_id(&file.postfix_id, parsed.arrival);
    let mut report = FileReport::left(file, "");
    report.why = None;
    report.mailroom_id = Some(id.to_string());
    report.queue = Some(queue.as_str());
    (report.pending, report.done, report.bounced) = counts;
    report.warning = warning(&parsed);
    Ok(Prepared {
        parsed,
        id,
        meta,
        report,
    })
}

/// The bytes of a complete queue file and its mtime (a deferred file's next retry time:
/// Postfix's queue manager sets it so).
fn read_ready(file: &QueueEntry) -> Result<(Vec<u8>, u64), String> {
    if file.queue == "maildrop" {
        return Err(MAILDROP_WHY.to_string());
    }
    let metadata = fs::symlink_metadata(&file.path).map_err(|e| e.to_string())?;
    if !metadata.file_type().is_file() {
        return Err("not a regular file".to_string());
    }
    // Postfix's cleanup sets the owner-execute bit when a file is complete (mode 0700);
    // without it the file was still being written and Postfix would not deliver it either.
    if metadata.permissions().mode() & 0o700 != 0o700 {
        return Err("incomplete: Postfix's cleanup never finished it (mode not 0700)".into());
    }
    let bytes = fs::read(&file.path).map_err(|e| e.to_string())?;
    let retry_at = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok((bytes, retry_at))
}

fn warning(parsed: &QueueFile) -> Option<String> {
    if parsed.verify_only {
        let what = "an address verification probe (verify(8) or sendmail -bv), not mail";
        return Some(format!("{what}: not imported"));
    }
    let filter = parsed.content_filter.as_ref()?;
    Some(format!(
        "was to pass Postfix content filter {filter}; mailroom's content_filter applies instead"
    ))
}

/// The mailroom envelope and (pending, done, bounced) counts.
fn envelope(parsed: &QueueFile, logs: &Logs) -> (Envelope, (usize, usize, usize)) {
    let mut recipients: Vec<Recipient> = parsed
        .recipients
        .iter()
        .map(|r| Recipient {
            address: r.address.clone(),
            orcpt: r.orcpt.clone(),
            notify: r.notify.clone(),
            state: match logs.deferred.get(&r.address) {
                Some(reason) => RecipientState::Deferred {
                    reason: reason.clone(),
                },
                None => RecipientState::Pending,
            },
        })
        .collect();
    let pending = recipients.len();
    let mut bounced = 0;
    for address in &parsed.done {
        if let Some((status, reason)) = logs.bounced.get(address) {
            let mut recipient = Recipient::new(address.clone());
            recipient.state = RecipientState::Bounced {
                status: status.clone(),
                reason: reason.clone(),
            };
            recipients.push(recipient);
            bounced += 1;
        }
    }
    let envelope = Envelope {
        sender: parsed.sender.clone(),
        recipients,
        arrival_time: parsed.arrival.0,
        envid: parsed.envid.clone(),
        ret: parsed.ret.clone(),
        origin: "postfix".to_string(),
        filter: None,
    };
    (envelope, (pending, parsed.done.len() - bounced, bounced))
}

fn commit(postfix_queue: &Path, file: &QueueEntry, p: Prepared, target: &Target) -> FileReport {
    let Prepared {
        parsed,
        id,
        meta,
        mut report,
    } = p;
    let nothing_to_do = meta.envelope.recipients.is_empty();
    report.action = match target.existing(id) {
        Some(existing) if !same_message(&existing, &parsed) => {
            return FileReport::left(
                file,
                format!("mailroom queue ID {id} is taken by another message"),
            );
        }
        Some(_) => Action::AlreadyImported,
        None if nothing_to_do => Action::Finished,
        None => Action::Imported,
    };
    let Target::Store(store) = target else {
        return report;
    };
    if report.action == Action::Imported {
        let content = parsed.content;
        if let Err(e) = store.enqueue_as(id, meta, &content) {
            return FileReport::left(file, format!("cannot queue in mailroom: {e}"));
        }
    }
    if let Err(e) = remove_durably(&file.path) {
        report.warning = Some(format!(
            "copied, but cannot remove the Postfix file: {e}; do not start Postfix again"
        ));
        return report;
    }
    remove_logs(postfix_queue, file);
    report
}

/// The copy in the store is this file's (not another message that hashed to the same ID).
fn same_message(existing: &Envelope, parsed: &QueueFile) -> bool {
    existing.origin == "postfix"
        && existing.sender == parsed.sender
        && existing.arrival_time == parsed.arrival.0
}

/// Unlinks and fsyncs the directory, so a crash cannot bring the Postfix file back after
/// mailroom has started delivering its copy.
fn remove_durably(path: &Path) -> io::Result<()> {
    fs::remove_file(path)?;
    match path.parent() {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Where Postfix may keep a message's log in the `defer`/`bounce`/`trace` queue. `deferred`
/// and `defer` are hashed alike (`hash_queue_names`), so a deferred file's log sits at the
/// same relative path; other queues are usually flat while `defer` is hashed (by the first
/// characters of a short ID, by the microseconds of a long one), so for those the log
/// queue's subdirectories are searched, two levels deep (`hash_queue_depth` is 1 by default).
fn log_paths(postfix_queue: &Path, file: &QueueEntry, log: &str) -> Vec<PathBuf> {
    let dir = postfix_queue.join(log);
    let id = &file.postfix_id;
    let inside = Path::new(&file.relative)
        .strip_prefix(file.queue)
        .unwrap_or(Path::new(id));
    let mut paths = vec![dir.join(inside), dir.join(id)];
    if file.queue != "deferred" {
        for first in subdirectories(&dir) {
            paths.push(first.join(id));
            paths.extend(subdirectories(&first).map(|second| second.join(id)));
        }
    }
    paths.dedup();
    paths
}

fn subdirectories(dir: &Path) -> impl Iterator<Item = PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
}

/// The logs are only Postfix's notes for its own reports; they go once their message has.
fn remove_logs(postfix_queue: &Path, file: &QueueEntry) {
    for log in ["defer", "bounce", "trace"] {
        for path in log_paths(postfix_queue, file, log) {
            let _ = fs::remove_file(path);
        }
    }
}

/// What Postfix's `defer` and `bounce` logs say about a message's recipients.
#[derive(Default)]
struct Logs {
    /// recipient → the reason of its last deferral (what `mailq` shows).
    deferred: HashMap<String, String>,
    /// recipient → (status, reason) of a bounce not yet reported to the sender.
    bounced: HashMap<String, (String, String)>,
}

impl Logs {
    fn read(postfix_queue: &Path, file: &QueueEntry) -> Logs {
        let mut logs = Logs::default();
        for (log, bounce) in [("defer", false), ("bounce", true)] {
            let Some(text) = log_paths(postfix_queue, file, log)
                .iter()
                .find_map(|p| fs::read_to_string(p).ok())
            else {
                continue;
            };
            for entry in log_entries(&text) {
                let Some(recipient) = entry.get("recipient") else {
                    continue;
                };
                let reason = entry.get("reason").cloned().unwrap_or_default();
                let status = entry.get("status").cloned().unwrap_or_default();
                if bounce {
                    let status = if status.starts_with('5') {
                        status
                    } else {
                        "5.0.0".into()
                    };
                    logs.bounced.insert(recipient.clone(), (status, reason));
                } else {
                    logs.deferred.insert(recipient.clone(), reason);
                }
            }
        }
        logs
    }
}

/// A Postfix log file: `name=value` lines, one blank line after each recipient's entry.
fn log_entries(text: &str) -> Vec<HashMap<String, String>> {
    text.split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter_map(|line| line.split_once('='))
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect::<HashMap<_, _>>()
        })
        .filter(|entry| !entry.is_empty())
        .collect()
}

#[cfg(test)]
#[path = "postfix_queue_tests.rs"]
mod tests;
