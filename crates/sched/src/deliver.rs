//! One delivery attempt of one message: agents in, outcomes applied, next step decided.

use crate::manager::{unix_now, QueueManager};
use crate::retry;
use agents::local::{Delivery, LocalAgent};
use envelope::{split_address, Envelope, Outcome, OutcomeKind, QueueId, RecipientState};
use queue::{Entry, FollowUp, QueueName, StoreError, Update};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{error, info, warn};

/// `origin` of a postmaster notice: if one of these fails, it is dropped (no third level).
const ORIGIN_NOTICE: &str = "2bounce";

fn delay_since(id: QueueId) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    now.saturating_sub(id.unix_micros()) as f64 / 1e6
}

impl QueueManager {
    pub(crate) async fn deliver(self: &Arc<Self>, id: QueueId) {
        let store = self.shared.store.clone();
        let Some(entry) = store.get(id) else { return };
        if entry.meta.attempts == 0 {
            let env = &entry.meta.envelope;
            info!(target: "qmgr", "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
                env.sender, entry.size, env.recipients.len());
        }
        let body = match tokio::task::spawn_blocking(move || store.read_message(id)).await {
            Ok(Ok(b)) => b,
            Ok(Err(StoreError::Corrupt(why))) => return self.quarantine(&entry, &why).await,
            Ok(Err(e)) => {
                warn!(target: "qmgr", "{id}: cannot read message: {e}");
                return self
                    .defer_all(&entry, "4.3.0", &format!("cannot read queue file: {e}"))
                    .await;
            }
            Err(_) => return,
        };
        let open: Vec<usize> = entry
            .meta
            .envelope
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state.is_open())
            .map(|(i, _)| i)
            .collect();
        let mut outcomes = Vec::new();
        if !open.is_empty() {
            outcomes = self.run_agents(&entry, &open, body.clone()).await;
        }
        self.apply(entry, outcomes, &body).await;
    }

    /// Runs the local agent for local recipients; remote ones are deferred until the SMTP
    /// client exists. A panic in the agent is contained and defers the message.
    async fn run_agents(&self, entry: &Entry, open: &[usize], body: Vec<u8>) -> Vec<Outcome> {
        let agent = self.shared.local();
        let env = &entry.meta.envelope;
        let (local, remote): (Vec<usize>, Vec<usize>) = open.iter().partition(|&&i| {
            let (_, domain) = split_address(&env.recipients[i].address);
            agent.is_local_domain(&domain)
        });
        let mut outcomes: Vec<Outcome> = remote
            .iter()
            .map(|&i| Outcome::deferred(i, "4.4.1", "none",
                "delivery to non-local domains is not available yet (no SMTP client in this version)"))
            .collect();
        if local.is_empty() {
            return outcomes;
        }
        let id = entry.id;
        let env_copy = env.clone();
        let local_copy = local.clone();
        let run =
            move || -> Delivery { LocalAgent::deliver(&agent, id, &env_copy, &local_copy, &body) };
        match tokio::task::spawn_blocking(run).await {
            Ok(delivery) => {
                let forwarded = self.resubmit(entry, delivery.resubmit).await;
                outcomes.extend(
                    delivery
                        .outcomes
                        .into_iter()
                        .map(|o| merge_forward(o, &forwarded)),
                );
            }
            Err(e) => {
                error!(target: "local", "{id}: delivery agent failed: {e}; message deferred");
                outcomes.extend(local.iter().map(|&i| {
                    Outcome::deferred(
                        i,
                        "4.3.0",
                        "local",
                        "internal error in the local delivery agent",
                    )
                }));
            }
        }
        outcomes
    }

    /// Queues forwarded copies; each marks its alias recipient sent in the same record.
    /// Returns, per original recipient, Ok(new id) or Err(reason).
    async fn resubmit(
        &self,
        entry: &Entry,
        resubmissions: Vec<agents::local::Resubmission>,
    ) -> Vec<(usize, Result<QueueId, String>)> {
        let mut results = Vec::new();
        for r in resubmissions {
            let new_id = QueueId::generate();
            let mut env = Envelope::new(r.sender, r.recipients, unix_now());
            env.origin = "forward".into();
            let follow =
                FollowUp::SetRecipients(entry.id, vec![(r.for_recipient, RecipientState::Sent)]);
            let store = self.shared.store.clone();
            let msg = r.message;
            let res = tokio::task::spawn_blocking(move || {
                store.enqueue_with(new_id, env, &msg, Some(follow))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
            if res.is_ok() {
                self.schedule(new_id, 0);
            }
            results.push((r.for_recipient, res.map(|_| new_id)));
        }
        results
    }

    /// Turns outcomes into durable state, logs them, and decides: retry, finish, or bounce.
    async fn apply(self: &Arc<Self>, entry: Entry, outcomes: Vec<Outcome>, body: &[u8]) {
        let cfg = self.shared.config();
        let id = entry.id;
        let now = unix_now();
        let mut meta = entry.meta.clone();
        let mut changes = Vec::new();
        for mut o in outcomes {
            if o.kind == OutcomeKind::Bounced && cfg.soft_bounce {
                o.kind = OutcomeKind::Deferred; // soft_bounce: a safety switch while testing config
                o.dsn = o.dsn.replacen('5', "4", 1);
            }
            let Some(rcpt) = meta.envelope.recipients.get_mut(o.recipient) else {
                continue;
            };
            log_outcome(id, &rcpt.address, &o);
            rcpt.state = match o.kind {
                OutcomeKind::Sent => RecipientState::Sent,
                OutcomeKind::Deferred => RecipientState::Deferred {
                    reason: o.text.clone(),
                },
                OutcomeKind::Bounced => RecipientState::Bounced {
                    status: o.dsn.clone(),
                    reason: o.text.clone(),
                },
            };
            changes.push((o.recipient, rcpt.state.clone()));
        }
        let lifetime = if meta.envelope.is_null_sender() {
            cfg.bounce_queue_lifetime
        } else {
            cfg.maximal_queue_lifetime
        };
        let still_open = meta.envelope.recipients.iter().any(|r| r.state.is_open());
        if still_open && retry::expired(meta.envelope.arrival_time, now, lifetime) {
            for (i, r) in meta.envelope.recipients.iter_mut().enumerate() {
                if let RecipientState::Deferred { reason }
                | RecipientState::Bounced { reason, .. } = &r.state
                {
                    if r.state.is_open() {
                        let reason = format!(
                            "message expired after {}s in the queue; last error: {reason}",
                            lifetime.as_secs()
                        );
                        info!(target: "qmgr", "{id}: to=<{}>, status=expired, returned to sender ({reason})", r.address);
                        r.state = RecipientState::Bounced {
                            status: "4.4.7".into(),
                            reason,
                        };
                        changes.push((i, r.state.clone()));
                    }
                }
            }
        }
        let still_open = meta.envelope.recipients.iter().any(|r| r.state.is_open());
        let attempts = meta.attempts + 1;
        // An operator may have put the message on hold during the attempt: keep it there.
        let held = self.shared.store.get(id).is_some_and(|e| e.meta.queue == QueueName::Hold);
        let (queue, next) = if held {
            (QueueName::Hold, 0)
        } else if still_open {
            let next = retry::next_attempt(
                now,
                attempts,
                cfg.minimal_backoff_time,
                cfg.maximal_backoff_time,
                fastrand::f64(),
            );
            (QueueName::Deferred, next)
        } else {
            (meta.queue, 0)
        };
        let update = Update {
            recipients: changes,
            queue,
            next_attempt: next,
            attempts,
            delay_warned: meta.delay_warned,
        };
        let store = self.shared.store.clone();
        match tokio::task::spawn_blocking(move || store.update(id, update)).await {
            Ok(Ok(())) => {}
            Ok(Err(StoreError::NotFound(_))) => return, // deleted by the operator meanwhile
            other => {
                warn!(target: "qmgr", "{id}: cannot record delivery status: {:?}; will retry", other.err());
                self.schedule(id, now + cfg.minimal_backoff_time.as_secs());
                return;
            }
        }
        if held && still_open {
            // stays in hold until released; not scheduled
        } else if still_open {
            self.schedule(id, next);
        } else {
            self.finalize(id, &meta.envelope, body).await;
        }
    }

    /// Every recipient is final: queue a bounce (replacing the original atomically) or
    /// remove the message.
    async fn finalize(&self, id: QueueId, env: &Envelope, body: &[u8]) {
        let cfg = self.shared.config();
        let failed: Vec<bounce::Failed> = env
            .recipients
            .iter()
            .filter_map(|r| match &r.state {
                RecipientState::Bounced { status, reason } => Some(bounce::Failed {
                    address: r.address.clone(),
                    status: status.clone(),
                    reason: reason.clone(),
                }),
                _ => None,
            })
            .collect();
        let store = self.shared.store.clone();
        if failed.is_empty() || env.origin == ORIGIN_NOTICE {
            if !failed.is_empty() {
                warn!(target: "qmgr", "{id}: postmaster notice undeliverable; discarded");
            }
            let _ = tokio::task::spawn_blocking(move || store.remove(id, "done")).await;
            info!(target: "qmgr", "{id}: removed");
            return;
        }
        let (kind, to, origin) = if env.is_null_sender() {
            (
                bounce::Kind::PostmasterNotice,
                cfg.bounce_notice_recipient.clone(),
                ORIGIN_NOTICE,
            )
        } else {
            (bounce::Kind::Bounce, env.sender.clone(), "bounce")
        };
        let to = qualify(&to, &cfg.myhostname);
        let message = bounce::build(&bounce::Input {
            id,
            envelope: env,
            original: body,
            myhostname: &cfg.myhostname,
            failed: &failed,
            kind,
            to: &to,
        });
        let bounce_id = QueueId::generate();
        let mut benv = Envelope::new("", vec![to.clone()], unix_now());
        benv.origin = origin.into();
        let follow = Some(FollowUp::Remove(id));
        match tokio::task::spawn_blocking(move || {
            store.enqueue_with(bounce_id, benv, &message, follow)
        })
        .await
        {
            Ok(Ok(())) => {
                info!(target: "bounce", "{id}: sender non-delivery notification: {bounce_id}");
                info!(target: "qmgr", "{id}: removed");
                self.schedule(bounce_id, 0);
            }
            other => {
                warn!(target: "bounce", "{id}: cannot queue non-delivery notification: {:?}; will retry", other.err());
                self.schedule(id, unix_now() + cfg.minimal_backoff_time.as_secs());
            }
        }
    }

    async fn defer_all(self: &Arc<Self>, entry: &Entry, dsn: &str, why: &str) {
        let outcomes = entry
            .meta
            .envelope
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state.is_open())
            .map(|(i, _)| Outcome::deferred(i, dsn, "none", why))
            .collect();
        self.apply(entry.clone(), outcomes, b"").await;
    }

    /// A message whose record fails its checksum: its envelope goes to `corrupt/`, the
    /// message leaves the queue, one error line is logged; the daemon carries on.
    async fn quarantine(&self, entry: &Entry, why: &str) {
        let cfg = self.shared.config();
        let dir = cfg.queue_directory.join("corrupt");
        let path = dir.join(format!("{}.envelope.json", entry.id));
        let json = serde_json::to_vec_pretty(&entry.meta).unwrap_or_default();
        let _ = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, json));
        error!(target: "qmgr", "{}: queue file is corrupt ({why}); envelope saved to {}, message removed from the queue", entry.id, path.display());
        let store = self.shared.store.clone();
        let id = entry.id;
        let _ = tokio::task::spawn_blocking(move || store.remove(id, "corrupt")).await;
    }
}

/// Appends `@myhostname` to a bare local name like `postmaster`.
fn qualify(address: &str, myhostname: &str) -> String {
    if address.contains('@') {
        address.to_string()
    } else {
        format!("{address}@{myhostname}")
    }
}

/// A recipient forwarded as a new message: sent once the forward is queued, else deferred.
fn merge_forward(o: Outcome, forwarded: &[(usize, Result<QueueId, String>)]) -> Outcome {
    match forwarded.iter().find(|(i, _)| *i == o.recipient) {
        Some((_, Err(e))) => Outcome::deferred(
            o.recipient,
            "4.3.0",
            &o.relay,
            format!("cannot queue forwarded message: {e}"),
        ),
        Some((_, Ok(new_id))) if o.kind == OutcomeKind::Sent => {
            Outcome::sent(o.recipient, &o.relay, format!("forwarded as {new_id}"))
        }
        _ => o,
    }
}

fn log_outcome(id: QueueId, to: &str, o: &Outcome) {
    let status = match o.kind {
        OutcomeKind::Sent => "sent",
        OutcomeKind::Deferred => "deferred",
        OutcomeKind::Bounced => "bounced",
    };
    let delay = delay_since(id);
    info!(target: "qmgr", queue_id = %id, to = to, relay = %o.relay, dsn = %o.dsn, status = status,
        "{id}: to=<{to}>, relay={}, delay={delay:.2}, dsn={}, status={status} ({})", o.relay, o.dsn, o.text);
}
