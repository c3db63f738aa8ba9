//! The hand-off to the queue: the disk guard before a transaction, and after the data the
//! durable enqueue that must come before any 250 (DESIGN invariant 1).
//!
//! `Store::enqueue` blocks until its record is fdatasynced; it runs on the blocking pool, and
//! concurrent sessions share one fdatasync (the store's group commit). Only when it returned
//! `Ok` does the client get `250 2.0.0 Ok: queued as ID`, and only then is the scheduler told
//! (`queued(id)`). A failed enqueue is `451 4.3.0`: the client keeps the message and retries.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use envelope::QueueId;
use queue::{MessageMeta, QueueName, Store, StoreError};
use submit::guard::{self, FreeSpace, GuardError, Limits};
use tracing::{info, warn};

use crate::content::{self, Disposition};
use crate::message;
use crate::session::{Session, Storage, Transaction};
use proto::data::DataError;
use proto::reply::{fixed, Reply};

/// Called with the ID of each newly queued message (the daemon makes it due at once).
pub type Queued = Arc<dyn Fn(QueueId) + Send + Sync>;

/// What every session shares: where accepted mail goes, and the STARTTLS acceptor.
pub struct Intake {
    pub store: Store,
    pub queued: Queued,
    /// `None` when TLS is off or could not be set up (STARTTLS is then not offered);
    /// replaced on reload (new certificates), read once per STARTTLS.
    pub tls: RwLock<Option<tokio_rustls::TlsAcceptor>>,
    pub local_recipient: Option<crate::session::RecipientCheck>,
    pub rewrite: Arc<rewrite::Live>,
    pub virtual_recipient: Option<crate::session::VirtualRecipientCheck>,
    /// Password checking: bounded concurrency and failure counts (`auth_guard.rs`).
    pub auth: Arc<crate::auth_guard::AuthGuard>,
}

impl Intake {
    /// The STARTTLS acceptor of this moment.
    pub fn tls(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A reload's new acceptor; sessions already in TLS keep the one they started with.
    pub fn set_tls(&self, acceptor: Option<tokio_rustls::TlsAcceptor>) {
        *self.tls.write().unwrap_or_else(|p| p.into_inner()) = acceptor;
    }
}

/// How long a measurement of the queue's free space answers later checks, and how much room
/// above what they need it must show to do so: far from the limits a session's MAIL and
/// DATA checks (two `statfs` a message) reuse it; near them every check measures anew.
const RECENT: Duration = Duration::from_millis(100);
const RECENT_MARGIN_BYTES: u64 = 256 << 20;
const RECENT_MARGIN_INODES: u64 = 10_000;

/// `queue_minfree` / `queue_minfree_inodes` on the queue file system.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    pub queue_directory: PathBuf,
    pub limits: Limits,
    /// The last measurement and when it was made (shared by every session).
    recent: Arc<Mutex<Option<(Instant, FreeSpace)>>>,
}

impl DiskGuard {
    pub fn new(queue_directory: PathBuf, limits: Limits) -> DiskGuard {
        DiskGuard {
            queue_directory,
            limits,
            recent: Arc::default(),
        }
    }

    /// Whether the last measurement, younger than [`RECENT`], leaves room for `size` bytes
    /// with the margins to spare (so that what other sessions wrote since cannot matter).
    fn recently_roomy(&self, size: u64, now: Instant) -> bool {
        let recent = *self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let Some((at, free)) = recent else {
            return false;
        };
        let need = self
            .limits
            .queue_minfree
            .saturating_add(size)
            .saturating_add(RECENT_MARGIN_BYTES);
        let inodes_ok = free.inodes.is_none_or(|n| {
            n >= self
                .limits
                .queue_minfree_inodes
                .saturating_add(RECENT_MARGIN_INODES)
        });
        now.saturating_duration_since(at) < RECENT && free.bytes >= need && inodes_ok
    }

    fn measure(&self, now: Instant) -> Result<FreeSpace, GuardError> {
        let free = guard::measure_free_space(&self.queue_directory)?;
        *self.recent.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, free));
        Ok(free)
    }
}

impl Storage for DiskGuard {
    fn has_room(&self, size: u64) -> Result<(), Reply> {
        let now = Instant::now();
        if self.recently_roomy(size, now) {
            return Ok(());
        }
        let verdict = self
            .measure(now)
            .and_then(|free| guard::judge_free_space(free, &self.limits, size));
        match verdict {
            Ok(()) => Ok(()),
            Err(GuardError::Refused(why)) => {
                warn!(target: "smtpd", "not enough free space in mail queue: {why}");
                telemetry::submissions_refused("smtpd_queue_minfree", 1);
                Err(fixed::insufficient_storage())
            }
            Err(e) => {
                warn!(target: "smtpd", "cannot check free space of the queue: {e}");
                Err(fixed::insufficient_storage())
            }
        }
    }
}

/// Checks the decoded message, queues it durably, and returns the reply for the client.
pub async fn finish(
    intake: &Intake,
    session: &mut Session,
    mut tx: Transaction,
    decoded: Result<Vec<u8>, DataError>,
) -> Reply {
    let id = tx.id;
    let sender = tx.sender.clone();
    let actions = std::mem::take(&mut tx.actions);
    let body = match decoded {
        Ok(body) => body,
        Err(error) => return log_refusal(session, id, &sender, error.reply()),
    };
    let mut prepared = match message::prepare(session, tx, body) {
        Ok(p) => p,
        Err(reply) => return log_refusal(session, id, &sender, reply),
    };
    // Postfix's cleanup step: canonical maps, masquerading, virtual alias expansion.
    let rewriter = &session.settings.rewriter;
    if let Some(message) = rewriter.cleanup(&mut prepared.envelope, &prepared.message) {
        prepared.message = message;
    }
    // A restriction's REDIRECT and BCC come first, so a header check's REDIRECT wins
    // (Postfix's smtpd hands them to cleanup before the content).
    actions.apply(&mut prepared.envelope);
    let (content_hold, pass) = match content::inspect(session, &mut prepared) {
        Disposition::Queue { hold, pass } => (hold.is_some(), pass),
        Disposition::Discard => return fixed::queued(&prepared.id.to_string()),
        Disposition::Refuse(reply) => return reply,
    };
    // A restriction's DISCARD: the client is told the message was queued (Postfix), and
    // the `discard:` line was logged when the restriction decided it.
    if actions.discard.is_some() {
        return fixed::queued(&prepared.id.to_string());
    }
    if !actions.prepend.is_empty() {
        prepared.message = prepended(&actions.prepend, &prepared.message);
    }
    // A header/body check's PASS turns the milters off for this message (Postfix).
    let milter_hold = match crate::milters::run(session, &mut prepared, pass).await {
        crate::milters::After::Queue { hold } => hold.is_some(),
        crate::milters::After::Discard => return fixed::queued(&prepared.id.to_string()),
        crate::milters::After::Refuse(reply) => return reply,
    };
    let (id, message_id) = (prepared.id, prepared.message_id.clone());
    // HOLD from a restriction, a header/body check or a milter's quarantine: queued
    // straight into hold, in one record, so a crash cannot deliver it.
    let held = actions.hold.is_some() || content_hold || milter_hold;
    let queued = enqueue(&intake.store, prepared, held).await;
    match queued {
        Ok(()) => {
            let message_id = if message_id.is_empty() {
                "<>".to_string()
            } else {
                message_id
            };
            info!(target: "cleanup", "{id}: message-id={}", maillog::sanitize(&message_id));
            telemetry::get().smtpd_messages_processed.inc();
            if !held {
                (intake.queued)(id);
            }
            fixed::queued(&id.to_string())
        }
        Err(e) => {
            warn!(target: "smtpd", "{id}: cannot queue message from {}: {e}", session.client.label());
            fixed::queue_write_error()
        }
    }
}

/// Queues a message durably: as new mail, or (a milter's quarantine) straight into the
/// hold queue in the same record, so a crash cannot make it deliverable.
async fn enqueue(store: &Store, prepared: message::Prepared, hold: bool) -> Result<(), StoreError> {
    if !hold {
        // No blocking-pool thread per message: the task awaits its record's group commit.
        return store
            .enqueue_async(prepared.id, prepared.envelope, &prepared.message, None)
            .await;
    }
    let store = store.clone();
    let meta = MessageMeta {
        envelope: prepared.envelope,
        queue: QueueName::Hold,
        next_attempt: 0,
        attempts: 0,
        delay_warned: false,
        follow_up: None,
    };
    let (id, message) = (prepared.id, prepared.message);
    tokio::task::spawn_blocking(move || store.enqueue_as(id, meta, &message))
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Io {
                path: PathBuf::new(),
                message: "enqueue task failed".into(),
            })
        })
}

/// `ID: reject: DATA from client: 552 5.3.4 ...; from=<a> proto=ESMTP helo=<h>`.
fn log_refusal(session: &Session, id: Option<QueueId>, sender: &str, reply: Reply) -> Reply {
    let queue = id.map_or_else(|| "NOQUEUE".to_string(), |id| id.to_string());
    let line = format!(
        "{queue}: reject: {} from {}: {}; from=<{sender}> proto={} helo=<{}>",
        session.last_verb,
        session.client.label(),
        reply.summary(),
        session.protocol(),
        session.helo.as_deref().unwrap_or(""),
    );
    info!(target: "smtpd", "{}", maillog::sanitize(&line));
    reply
}

/// Headers a restriction's PREPEND asked for, above the message (Postfix's smtpd writes
/// them before its own `Received:`).
fn prepended(headers: &[String], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + headers.len() * 64);
    for header in headers {
        out.extend_from_slice(header.as_bytes());
        out.push(b'\n'); // the store keeps LF line ends
    }
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(queue_minfree: u64) -> Limits {
        Limits {
            queue_minfree,
            queue_minfree_inodes: 0,
            maildrop_size_limit: 0,
            maildrop_count_limit: 0,
        }
    }

    #[test]
    fn a_recent_roomy_measurement_answers_and_one_near_the_limit_or_old_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let guard = DiskGuard::new(dir.path().to_path_buf(), limits(0));
        let now = Instant::now();
        assert!(!guard.recently_roomy(4096, now), "nothing measured yet");
        let free = guard.measure(now).unwrap();
        if free.bytes < 2 * RECENT_MARGIN_BYTES {
            eprintln!("skipped: the temp file system has under 512 MiB free");
            return;
        }
        assert!(guard.recently_roomy(4096, now + RECENT / 2));
        assert!(!guard.recently_roomy(4096, now + RECENT), "too old");
        // Within the margin of the limit every check measures again.
        let tight = DiskGuard::new(dir.path().to_path_buf(), limits(free.bytes - 1024));
        tight.measure(now).unwrap();
        assert!(!tight.recently_roomy(0, now));
        assert!(tight.has_room(1 << 30).is_err(), "over the limit: refused");
    }
}
