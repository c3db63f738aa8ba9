//! One delivery attempt of one work item: the agent run with its panics contained, the
//! forwarded copies it asks for queued, and exactly one outcome per recipient reported back
//! (to `dispatch`, through the manager).

use crate::clock::unix_now;
use crate::context::Context;
use crate::dispatch::{Delivery, Item};
use crate::due::Lane;
use crate::fleet::Admission;
use crate::route::{Route, Transport};
use crate::timed::{Agent, Timed};
use envelope::{Envelope, Outcome, OutcomeKind, QueueId, RecipientState};
use queue::{Entry, FollowUp, StoreError};
use std::time::Instant;
use tracing::{error, warn};

/// Delivers one item; panics inside agents are contained: the item is deferred.
pub(crate) async fn run(cx: &Context, item: &Item) -> Delivery {
    let dispatched = Instant::now();
    let (outcomes, failure) = attempt(cx, item).await;
    let finished = Instant::now();
    let agent = match item.destination.transport {
        Transport::Local => Agent::Local,
        Transport::Virtual => Agent::Virtual,
        Transport::Smtp | Transport::Filter | Transport::Named(_) => Agent::Smtp,
        Transport::Lmtp => Agent::Lmtp,
    };
    let outcomes = complete_set(item, outcomes)
        .into_iter()
        .map(|outcome| Timed {
            outcome,
            queued: item.queued,
            dispatched,
            finished,
            agent,
        })
        .collect();
    Delivery {
        outcomes,
        failure,
        recorded: None,
    }
}

/// Runs the agent for one item; a network delivery first waits for the fleet's consent
/// and holds its permit until the connection is closed.
async fn attempt(cx: &Context, item: &Item) -> (Vec<Outcome>, Option<String>) {
    let network = matches!(item.route, Route::Smtp { .. } | Route::Lmtp { .. });
    let Some(fleet) = cx.shared.fleet().filter(|_| network) else {
        return attempt_now(cx, item).await;
    };
    let limit = cx.shared.settings().limits.of(item.destination.transport);
    // A named transport's destinations are its own in the fleet too (`slow:[mx.example.net]`,
    // limited by `transport_destination_*_limit`); the built-in ones keep the bare name
    // that `smtp_destination_rate_limit` is keyed by.
    let key = match item.destination.transport {
        Transport::Named(_) => item.destination.to_string(),
        _ => item.destination.name.clone(),
    };
    match fleet.admit(&key, limit).await {
        Admission::Go(permit) => {
            let result = attempt_now(cx, item).await;
            drop(permit);
            result
        }
        Admission::Dead(reason) => {
            let why = format!("delivery temporarily suspended: {reason}");
            let outcomes = item.recipients.iter();
            let outcomes = outcomes.map(|&i| Outcome::deferred(i, "4.4.1", "none", why.clone()));
            (outcomes.collect(), None)
        }
    }
}

async fn attempt_now(cx: &Context, item: &Item) -> (Vec<Outcome>, Option<String>) {
    let Some(entry) = cx.shared.store.get(item.id) else {
        return (Vec::new(), None);
    };
    let store = cx.shared.store.clone();
    let id = item.id;
    // A message queued a moment ago is still in the page cache: read it here, without a
    // hop to a blocking thread and back (two wakeups per delivery); else on that thread.
    let read = match store.read_message_cached(id) {
        Some(read) => Ok(read),
        None => tokio::task::spawn_blocking(move || store.read_message(id)).await,
    };
    let body = match read {
        Ok(Ok(b)) => b,
        Ok(Err(StoreError::Corrupt(why))) => {
            return (quarantine(cx, &entry, &item.recipients, &why).await, None);
        }
        other => {
            let why = format!("cannot read queue file: {:?}", other.map(|r| r.err()));
            return (defer_all(&item.recipients, &why), None);
        }
    };
    match &item.route {
        // The local agent (in-process, or the root helper) also runs the virtual(8) agent:
        // both write mailboxes with a user's rights, which only that process may have.
        Route::Local | Route::Virtual => {
            (run_local(cx, &entry, &item.recipients, body).await, None)
        }
        Route::Lmtp { nexthop } => run_lmtp(cx, item, nexthop, &entry, body).await,
        Route::Smtp {
            nexthop, filter, ..
        } => {
            let remote = cx.shared.remote();
            let (hop, env, rcpts, filter) = (
                nexthop.clone(),
                entry.meta.envelope.clone(),
                item.recipients.clone(),
                *filter,
            );
            let task = tokio::spawn(async move {
                let r = match filter {
                    true => {
                        remote
                            .deliver_to_filter(&hop, id, &env, &rcpts, &body)
                            .await
                    }
                    false => remote.deliver(&hop, id, &env, &rcpts, &body).await,
                };
                (r.outcomes, r.destination_failure)
            });
            match task.await {
                Ok(result) => result,
                Err(e) => {
                    error!(target: "smtp", "{id}: delivery agent failed: {e}; message deferred");
                    (
                        defer_all(&item.recipients, "internal error in the SMTP client"),
                        None,
                    )
                }
            }
        }
        _ => (Vec::new(), None),
    }
}

/// An LMTP delivery (mailbox_transport, virtual_transport, `lmtp:` in transport_maps).
async fn run_lmtp(
    cx: &Context,
    item: &Item,
    hop: &agents::LmtpNexthop,
    entry: &Entry,
    body: Vec<u8>,
) -> (Vec<Outcome>, Option<String>) {
    let Some(client) = cx.shared.lmtp() else {
        return (
            defer_all(&item.recipients, "no LMTP client configured"),
            None,
        );
    };
    let (id, hop, env, rcpts) = (
        item.id,
        hop.clone(),
        entry.meta.envelope.clone(),
        item.recipients.clone(),
    );
    let task = tokio::spawn(async move {
        let r = client.deliver_lmtp(&hop, id, &env, &rcpts, &body).await;
        (r.outcomes, r.destination_failure)
    });
    match task.await {
        Ok(result) => result,
        Err(e) => {
            error!(target: "lmtp", "{id}: delivery agent failed: {e}; message deferred");
            let why = "internal error in the LMTP client";
            (defer_all(&item.recipients, why), None)
        }
    }
}

async fn run_local(
    cx: &Context,
    entry: &Entry,
    recipients: &[usize],
    body: Vec<u8>,
) -> Vec<Outcome> {
    let (id, env, rcpts) = (entry.id, entry.meta.envelope.clone(), recipients.to_vec());
    let delivered = match cx.shared.local_helper() {
        // Privilege separation: the root helper delivers; it never fails to answer (a dead
        // helper is a deferral), so there is no panic to contain here.
        Some(helper) => Ok(helper.deliver(id, env, &rcpts, body).await),
        None => {
            let agent = cx.shared.local();
            tokio::task::spawn_blocking(move || agent.deliver(id, &env, &rcpts, &body)).await
        }
    };
    match delivered {
        Ok(delivery) => {
            let forwarded = resubmit(cx, entry, delivery.resubmit).await;
            delivery
                .outcomes
                .into_iter()
                .map(|o| merge_forward(o, &forwarded))
                .collect()
        }
        Err(e) => {
            error!(target: "local", "{id}: delivery agent failed: {e}; message deferred");
            defer_all(recipients, "internal error in the local delivery agent")
        }
    }
}

/// Queues forwarded copies; each marks its alias recipient sent in the same record.
async fn resubmit(
    cx: &Context,
    entry: &Entry,
    list: Vec<agents::Resubmission>,
) -> Vec<(usize, Result<QueueId, String>)> {
    let mut results = Vec::new();
    for r in list {
        let new_id = QueueId::generate();
        let mut env = Envelope::new(r.sender, r.recipients, unix_now());
        env.origin = crate::notify::forward_origin(&entry.meta.envelope.origin).into();
        let follow =
            FollowUp::SetRecipients(entry.id, vec![(r.for_recipient, RecipientState::Sent)]);
        let store = cx.shared.store.clone();
        let mut msg = r.message;
        // A forward to a virtual alias or canonical address is rewritten as new mail is.
        if let Some(rewritten) = cx
            .shared
            .cleanup()
            .and_then(|cleanup| cleanup(&mut env, &msg))
        {
            msg = rewritten;
        }
        let res = store
            .enqueue_async(new_id, env, &msg, Some(follow))
            .await
            .map_err(|e| e.to_string());
        if res.is_ok() {
            cx.due.schedule(new_id, 0, Lane::Incoming);
        }
        results.push((r.for_recipient, res.map(|_| new_id)));
    }
    results
}

/// A message whose record fails its checksum: its envelope and the damaged record go to
/// `corrupt/` (durably), then the message leaves the queue, with one error line; the
/// daemon carries on. If the copy cannot be saved the message stays queued, deferred,
/// and is tried again later; a removal that fails is retried with backoff.
async fn quarantine(cx: &Context, entry: &Entry, recipients: &[usize], why: &str) -> Vec<Outcome> {
    let id = entry.id;
    let dir = cx.shared.settings().layout.corrupt();
    let json = serde_json::to_vec_pretty(&entry.meta).unwrap_or_default();
    let store = cx.shared.store.clone();
    let target = dir.clone();
    let saved = tokio::task::spawn_blocking(move || {
        let raw = store.raw_record(id).unwrap_or_default();
        queue::write_durably(&target, &format!("{id}.record"), &raw)?;
        queue::write_durably(&target, &format!("{id}.envelope.json"), &json)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    if let Err(e) = saved {
        error!(target: "qmgr", "{id}: queue file is corrupt ({why}); cannot save it to {}: {e}; it stays in the queue", dir.display());
        return defer_all(
            recipients,
            "queue file is corrupt and cannot be saved to corrupt/",
        );
    }
    if remove_corrupt(cx, id).await {
        error!(target: "qmgr", "{id}: queue file is corrupt ({why}); envelope and record saved to {}, message removed from the queue", dir.join(format!("{id}.*")).display());
    }
    Vec::new()
}

/// Removes a quarantined message, retrying with backoff; false if given up at a stop.
async fn remove_corrupt(cx: &Context, id: QueueId) -> bool {
    let mut failures = 0;
    loop {
        match cx.shared.store.remove_async(id, "corrupt").await {
            Ok(()) | Err(StoreError::NotFound(_)) => return true,
            Err(e) if cx.stopping() => {
                warn!(target: "qmgr", "{id}: cannot remove the corrupt queue file from the queue: {e}; it stays queued until the next start");
                return false;
            }
            Err(e) => {
                failures += 1;
                let wait = crate::retry::durable_step_delay(failures);
                warn!(target: "qmgr", "{id}: cannot remove the corrupt queue file from the queue: {e}; will retry in {}s", wait.as_secs());
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn defer_all(recipients: &[usize], why: &str) -> Vec<Outcome> {
    recipients
        .iter()
        .map(|&i| Outcome::deferred(i, "4.3.0", "none", why))
        .collect()
}

/// Exactly one outcome per requested recipient: extras are dropped, missing ones deferred.
fn complete_set(item: &Item, outcomes: Vec<Outcome>) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = Vec::with_capacity(item.recipients.len());
    for &i in &item.recipients {
        match outcomes.iter().find(|o| o.recipient == i) {
            Some(o) => out.push(o.clone()),
            None if outcomes.is_empty() => {}
            None => out.push(Outcome::deferred(
                i,
                "4.3.0",
                "none",
                "delivery agent gave no result",
            )),
        }
    }
    out
}

/// A recipient forwarded as a new message: sent once the forward is queued, else deferred.
fn merge_forward(o: Outcome, forwarded: &[(usize, Result<QueueId, String>)]) -> Outcome {
    let expanded = o.expanded.clone();
    let (merged, forward_text) = match forwarded.iter().find(|(i, _)| *i == o.recipient) {
        Some((_, Err(e))) => {
            let text = format!("cannot queue forwarded message: {e}");
            let merged = Outcome::deferred(o.recipient, "4.3.0", &o.relay, text.clone());
            (merged, Some((OutcomeKind::Deferred, "4.3.0", text)))
        }
        Some((_, Ok(new_id))) if o.kind == OutcomeKind::Sent => {
            let text = format!("{}; forwarded as {new_id}", o.text);
            let merged = Outcome::sent(o.recipient, &o.relay, text);
            (
                merged,
                Some((OutcomeKind::Sent, "2.0.0", format!("forwarded as {new_id}"))),
            )
        }
        _ => return o,
    };
    // A forward member is done only when its new message is queued: say what happened.
    let expanded = expanded
        .into_iter()
        .map(|mut member| {
            if let (true, Some((kind, dsn, text))) = (member.forward, &forward_text) {
                member.kind = kind.clone();
                member.dsn = dsn.to_string();
                member.text = text.clone();
            }
            member
        })
        .collect();
    Outcome { expanded, ..merged }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope::Expanded;

    fn fanned_out() -> Outcome {
        let member = |to: &str, forward| Expanded {
            to: to.into(),
            kind: OutcomeKind::Sent,
            dsn: "2.0.0".into(),
            text: if forward {
                "forwarded as new message"
            } else {
                "delivered to mailbox"
            }
            .into(),
            forward,
        };
        let mut o = Outcome::sent(0, "local", "delivered to mailbox");
        o.expanded = vec![member("alice@h", false), member("bob@far.example", true)];
        o
    }

    #[test]
    fn a_forward_that_could_not_be_queued_is_not_logged_as_sent() {
        let merged = merge_forward(fanned_out(), &[(0, Err("disk full".into()))]);
        assert_eq!(merged.kind, OutcomeKind::Deferred);
        let (alice, bob) = (&merged.expanded[0], &merged.expanded[1]);
        assert_eq!(
            alice.kind,
            OutcomeKind::Sent,
            "the mailbox copy was delivered"
        );
        assert_eq!(bob.kind, OutcomeKind::Deferred);
        assert!(bob.text.contains("disk full"), "{}", bob.text);
    }

    #[test]
    fn a_queued_forward_names_its_new_message() {
        let id = QueueId::generate();
        let merged = merge_forward(fanned_out(), &[(0, Ok(id))]);
        assert_eq!(merged.expanded[1].text, format!("forwarded as {id}"));
        assert_eq!(merged.expanded[0].text, "delivered to mailbox");
    }
}
