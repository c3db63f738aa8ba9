//! Pickup: moves `maildrop/` files into the queue store (Postfix's pickup + cleanup).
//!
//! Each file is read (strictly: length, crc, `END`), cleaned (headers Postfix's cleanup adds,
//! size and hop limits), enqueued durably, then unlinked; the maildrop directory is fsynced
//! after each batch of unlinks *before* the messages are handed to the scheduler. So after a
//! crash a file is either still in maildrop and not yet delivered (its queue ID is then found
//! in the store and the file is just removed), or gone for good: never delivered twice.
//!
//! Runs inside the daemon (which owns the store); the scheduler is reached only through
//! [`Pickup::queued`], so this crate does not depend on it.

use crate::cleanup::CleanupSettings;
use crate::content::{self, Disposition};
use crate::maildrop::{self, MaildropFile};
use crate::milters::{self, Deferrals, Judged};
use config::Config;
use envelope::{Envelope, QueueId, RecipientState};
use queue::{Layout, Store, StoreError};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// How often maildrop is scanned when idle; a submission waits at most this long.
const POLL: Duration = Duration::from_millis(200);
/// Files handled concurrently, so their fsyncs share group commits.
const PARALLEL: usize = 32;

/// What pickup takes from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickupSettings {
    /// Where `maildrop/` and `corrupt/` are.
    pub layout: Layout,
    pub cleanup: CleanupSettings,
    /// A temp file older than four times `submit_timeout` has no live writer.
    pub submit_timeout: Duration,
    /// `non_smtpd_milters` and the milter macros.
    pub milters: milter::MilterSettings,
}

impl PickupSettings {
    pub fn from_config(cfg: &Config) -> PickupSettings {
        PickupSettings {
            layout: Layout::new(&cfg.queue_directory),
            cleanup: CleanupSettings::from_config(cfg),
            submit_timeout: cfg.submit_timeout,
            milters: milter::MilterSettings::from_config(cfg),
        }
    }
}

/// What pickup works with.
pub struct Pickup {
    pub settings: Arc<PickupSettings>,
    pub store: Store,
    /// Told of each newly queued message once its maildrop file's removal is durable (the
    /// scheduler makes it due).
    pub queued: Box<dyn Fn(QueueId) + Send>,
    /// The wait before the n-th retry of a failed directory sync (the scheduler's
    /// `durable_step_delay`).
    pub retry_delay: fn(u32) -> Duration,
    /// Address rewriting after cleanup (canonical, masquerade, virtual aliases); the
    /// daemon reloads it.
    pub rewrite: Arc<rewrite::Live>,
}

/// Moves maildrop files into the store until `shutdown` turns true.
pub async fn run(pickup: Pickup, mut shutdown: watch::Receiver<bool>) {
    let Pickup {
        settings,
        store,
        queued: on_queued,
        retry_delay,
        rewrite,
    } = pickup;
    let dir = settings.layout.maildrop();
    let deferrals = Deferrals::default();
    for problem in &settings.milters.problems {
        warn!(target: "pickup", "{problem}: its default action applies to every message");
    }
    loop {
        if *shutdown.borrow() {
            return;
        }
        let (d, c) = (dir.clone(), settings.clone());
        let files = tokio::task::spawn_blocking(move || scan_and_sweep(&c, &d)).await;
        let files = match files {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                warn!(target: "pickup", "cannot scan {}: {e}", dir.display());
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        let busy = !files.is_empty();
        for chunk in files.chunks(PARALLEL) {
            if *shutdown.borrow() {
                return;
            }
            let queued = pickup_batch(&settings, &store, &rewrite, &deferrals, chunk).await;
            // The unlinks must be durable before delivery starts (see module doc).
            if !sync_unlinks(&dir, retry_delay, &mut shutdown).await {
                return; // stopping: the messages are queued and go out at the next start
            }
            for id in queued {
                on_queued(id);
            }
        }
        if !busy {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

async fn pickup_batch(
    settings: &Arc<PickupSettings>,
    store: &Store,
    rewrite: &rewrite::Live,
    deferrals: &Deferrals,
    chunk: &[(QueueId, PathBuf)],
) -> Vec<QueueId> {
    let mut tasks = Vec::with_capacity(chunk.len());
    for (id, path) in chunk.iter().cloned() {
        if deferrals.waiting(id) {
            continue;
        }
        let settings = settings.clone();
        let store = store.clone();
        let rewriter = rewrite.get();
        let deferrals = deferrals.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            pickup_one(&settings, &store, &rewriter, &deferrals, id, &path)
        }));
    }
    let mut queued = Vec::new();
    for t in tasks {
        if let Ok(Some(id)) = t.await {
            queued.push(id);
        }
    }
    queued
}

/// Handles one maildrop file; returns the queue ID if a message was newly queued.
fn pickup_one(
    settings: &PickupSettings,
    store: &Store,
    rewriter: &rewrite::Rewriter,
    deferrals: &Deferrals,
    id: QueueId,
    path: &Path,
) -> Option<QueueId> {
    if store.contains(id) {
        // Queued before a crash that came before the unlink: finish the job (retried at
        // the next scan if it fails).
        if let Err(e) = fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(target: "pickup", "{}: cannot remove after queueing: {e}", path.display());
            }
        }
        return None;
    }
    let drop = match maildrop::read(path) {
        Ok(d) => d,
        Err(e) if e.is_permission_denied() => {
            warn!(target: "pickup", "{}: {e} (run: mailroom check --fix)", path.display());
            return None;
        }
        Err(maildrop::MaildropError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return None
        }
        Err(e) => {
            quarantine(settings, path, &e.to_string());
            return None;
        }
    };
    let Some((envelope, message, hold)) = clean(settings, rewriter, deferrals, &drop, path) else {
        return None; // discarded, or left in maildrop for later
    };
    let (sender, nrcpt) = (envelope.sender.clone(), envelope.recipients.len());
    match enqueue(store, id, envelope, &message, hold) {
        Ok(()) | Err(StoreError::Duplicate(_)) => {}
        Err(e) => {
            // Leave the file: it is retried at the next scan (disk full, ...).
            warn!(target: "pickup", "{id}: cannot queue message: {e}");
            return None;
        }
    }
    info!(target: "pickup", "{id}: uid={} from=<{sender}>", drop.uid);
    info!(target: "cleanup", "{id}: message-id={}, nrcpt={nrcpt}", message_id(&message));
    remove_after(path, "queueing");
    // A held message waits for `postsuper -H`; the scheduler is not told of it.
    (!hold).then_some(id)
}

/// Cleanup, rewriting and the `non_smtpd_milters`: what to queue (and whether on hold);
/// `None` when a milter discarded the message (its file is removed) or could not judge it
/// (the file stays for a later try).
fn clean(
    settings: &PickupSettings,
    rewriter: &rewrite::Rewriter,
    deferrals: &Deferrals,
    drop: &MaildropFile,
    path: &Path,
) -> Option<(Envelope, Vec<u8>, bool)> {
    let mut cleaned = match crate::cleanup(&settings.cleanup, drop) {
        Ok(cleaned) => cleaned,
        Err(rejected) => {
            let (envelope, message) =
                rejected_envelope(settings, drop, &rejected.dsn, &rejected.reason);
            return Some((envelope, message, false));
        }
    };
    let rewritten = rewriter.cleanup(&mut cleaned.envelope, &cleaned.message);
    let mut message = rewritten.unwrap_or(cleaned.message);
    // header_checks/body_checks first, then the milters, as Postfix's cleanup orders them.
    let (content_hold, pass) =
        match content::inspect(rewriter, drop.id, &mut cleaned.envelope, &mut message) {
            Disposition::Queue { hold, pass } => (hold.is_some(), pass),
            Disposition::Discard => {
                remove_after(path, "discarding");
                return None;
            }
            Disposition::Reject { dsn, reason } => {
                let (envelope, message) = rejected_envelope(settings, drop, &dsn, &reason);
                return Some((envelope, message, false));
            }
        };
    // A check's PASS: no milter inspection either (Postfix).
    if pass {
        return Some((cleaned.envelope, message, content_hold));
    }
    match milters::judge(
        &settings.milters,
        deferrals,
        drop.id,
        cleaned.envelope,
        message,
    ) {
        Judged::Queue {
            envelope,
            message,
            hold,
        } => Some((envelope, message, hold || content_hold)),
        Judged::Bounce { dsn, reason } => {
            let (envelope, message) = rejected_envelope(settings, drop, &dsn, &reason);
            Some((envelope, message, false))
        }
        Judged::Discard => {
            remove_after(path, "discarding");
            None
        }
        Judged::Later => None,
    }
}

fn remove_after(path: &Path, what: &str) {
    if let Err(e) = fs::remove_file(path) {
        warn!(target: "pickup", "{}: cannot remove after {what}: {e}", path.display());
    }
}

/// New mail, or (a milter's quarantine) a message put straight into the hold queue in the
/// same record, so a crash cannot make it deliverable.
fn enqueue(
    store: &Store,
    id: QueueId,
    envelope: Envelope,
    message: &[u8],
    hold: bool,
) -> Result<(), StoreError> {
    if !hold {
        return store.enqueue(id, envelope, message);
    }
    let meta = queue::MessageMeta {
        envelope,
        queue: queue::QueueName::Hold,
        next_attempt: 0,
        attempts: 0,
        delay_warned: false,
        follow_up: None,
    };
    store.enqueue_as(id, meta, message)
}

/// A message cleanup refused (too big, too many hops): queued with every recipient already
/// bounced, so the scheduler's ordinary path sends the bounce (or the postmaster notice for
/// a null sender) — one code path for every bounce.
fn rejected_envelope(
    settings: &PickupSettings,
    drop: &MaildropFile,
    dsn: &str,
    reason: &str,
) -> (Envelope, Vec<u8>) {
    let q = |a: &str| crate::cleanup::qualify(a, &settings.cleanup.myorigin);
    let sender = if drop.sender.is_empty() {
        String::new()
    } else {
        q(&drop.sender)
    };
    let recipients = drop.recipients.iter().map(|r| q(r)).collect();
    let mut env = Envelope::new(sender, recipients, drop.arrival_time);
    env.origin = "pickup".into();
    for r in &mut env.recipients {
        r.state = RecipientState::Bounced {
            status: dsn.to_string(),
            reason: reason.to_string(),
        };
    }
    // Keep only the headers: the bounce returns those, and the body may be the problem.
    let end = drop
        .message
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|p| p + 2)
        .unwrap_or(drop.message.len());
    let end = end.min(256 * 1024);
    (env, drop.message[..end].to_vec())
}

/// Moves an unreadable maildrop file to `corrupt/` with one log line.
pub fn quarantine(settings: &PickupSettings, path: &Path, why: &str) {
    let corrupt = settings.layout.corrupt();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = corrupt.join(format!("maildrop-{name}"));
    let moved = fs::create_dir_all(&corrupt).and_then(|_| fs::rename(path, &target));
    match moved {
        Ok(()) => error!(target: "pickup", "maildrop/{name}: {why}; moved to {}", target.display()),
        Err(e) => {
            error!(target: "pickup", "maildrop/{name}: {why}; cannot move it to corrupt/: {e}")
        }
    }
}

/// The message's own `Message-ID:` value (cleanup adds one when missing), for the log.
fn message_id(message: &[u8]) -> String {
    let headers = message.split(|&b| b == b'\n').take_while(|l| !l.is_empty());
    for line in headers {
        let text = String::from_utf8_lossy(line);
        if let Some((name, value)) = text.split_once(':') {
            if name.eq_ignore_ascii_case("message-id") {
                return value.trim().to_string();
            }
        }
    }
    "<>".to_string()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Makes the batch's unlinks durable, retrying with backoff until it works: a message
/// handed to the scheduler while its maildrop file could come back after a crash would be
/// picked up and delivered a second time. False if a stop came first.
async fn sync_unlinks(
    dir: &Path,
    retry_delay: fn(u32) -> Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut failures = 0;
    loop {
        let d = dir.to_path_buf();
        let error = match tokio::task::spawn_blocking(move || sync_dir(&d)).await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        failures += 1;
        let wait = retry_delay(failures);
        warn!(target: "pickup", "cannot sync {}: {error}; will retry in {}s", dir.display(), wait.as_secs());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return false,
        }
    }
}

/// Lists ready files; names that are neither messages nor temp files go to `corrupt/` (so
/// each is logged once, then gone).
fn scan_and_sweep(
    settings: &PickupSettings,
    dir: &Path,
) -> std::io::Result<Vec<(QueueId, PathBuf)>> {
    let scan = maildrop::scan(dir)?;
    for path in scan.foreign {
        quarantine(settings, &path, "not a maildrop file name");
    }
    Ok(scan.ready)
}

/// Removes temp files no live writer can own any more (crash leftovers of sendmail).
pub fn remove_stale_temp_files(settings: &PickupSettings) {
    let dir = settings.layout.maildrop();
    if let Ok(stale) = maildrop::stale_temp_files(&dir, settings.submit_timeout * 4) {
        for path in stale {
            match fs::remove_file(&path) {
                Ok(()) => {
                    info!(target: "pickup", "removed stale temporary file {}", path.display())
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // Tried again at the next sweep.
                Err(e) => {
                    warn!(target: "pickup", "cannot remove stale temporary file {}: {e}", path.display())
                }
            }
        }
    }
}
