//! Which delivery status notifications a finished or delayed message produces (RFC 3461
//! NOTIFY), and queueing them. The texts themselves come from the `bounce` crate.
//!
//! - Failures go to the sender for recipients whose NOTIFY is absent or includes FAILURE;
//!   a null-sender message's failures go once to the postmaster (`2bounce_notice_recipient`),
//!   and a failed postmaster notice is dropped — never a bounce of a bounce (invariant 5).
//! - Success notices go to the sender for recipients with NOTIFY=SUCCESS.
//! - One "delayed" warning per message once it is older than `delay_warning_time` (0 = off),
//!   for recipients whose NOTIFY is absent or includes DELAY.

use crate::manager::{unix_now, QueueManager};
use bounce::{Action, Kind, Report};
use config::Config;
use envelope::{Envelope, Outcome, QueueId, Recipient, RecipientState};
use queue::{Entry, MessageMeta, StoreError};
use tracing::{info, warn};

/// `origin` of a postmaster notice: if one of these fails, it is dropped (no third level).
pub(crate) const ORIGIN_NOTICE: &str = "2bounce";

fn wants(r: &Recipient, word: &str, by_default: bool) -> bool {
    match &r.notify {
        None => by_default,
        Some(n) => n.split(',').any(|w| w.trim().eq_ignore_ascii_case(word)),
    }
}

fn qualify(address: &str, myhostname: &str) -> String {
    if address.contains('@') {
        address.to_string()
    } else {
        format!("{address}@{myhostname}")
    }
}

/// What to send when every recipient is final: `(to, kind, origin, reports)`, or `None`
/// (nothing to report: just remove the message).
pub(crate) fn bounce_plan(
    cfg: &Config,
    id: QueueId,
    env: &Envelope,
) -> Option<(String, Kind, &'static str, Vec<Report>)> {
    let reports: Vec<Report> = env
        .recipients
        .iter()
        .filter(|r| wants(r, "FAILURE", true))
        .filter_map(|r| match &r.state {
            RecipientState::Bounced { status, reason } => {
                let (remote_mta, diagnostic) = split_remote(reason);
                Some(Report {
                    address: r.address.clone(),
                    orcpt: r.orcpt.clone(),
                    action: Action::Failed,
                    status: status.clone(),
                    reason: diagnostic,
                    remote_mta,
                })
            }
            _ => None,
        })
        .collect();
    if reports.is_empty() {
        return None;
    }
    if env.origin == ORIGIN_NOTICE {
        warn!(target: "qmgr", "{id}: postmaster notice undeliverable; discarded");
        return None;
    }
    if env.is_null_sender() {
        let to = qualify(&cfg.bounce_notice_recipient, &cfg.myhostname);
        return Some((to, Kind::PostmasterNotice, ORIGIN_NOTICE, reports));
    }
    Some((env.sender.clone(), Kind::Bounce, "bounce", reports))
}

/// The SMTP client reports a remote refusal as Postfix does: `host mx.example[192.0.2.1]
/// said: 550 5.1.1 <x@y>: unknown (in reply to RCPT TO command)`. A DSN wants the parts apart:
/// `Remote-MTA: dns; mx.example` and `Diagnostic-Code: smtp; 550 5.1.1 <x@y>: unknown`.
fn split_remote(reason: &str) -> (Option<String>, String) {
    let Some(rest) = reason.strip_prefix("host ") else {
        return (None, reason.to_string());
    };
    let Some((host, said)) = rest.split_once(" said: ") else {
        return (None, reason.to_string());
    };
    let diagnostic = said.rsplit_once(" (in reply to ").map_or(said, |(d, _)| d);
    (Some(host.to_string()), diagnostic.trim().to_string())
}

pub(crate) fn delay_warning_due(cfg: &Config, meta: &MessageMeta, now: u64) -> bool {
    let after = cfg.delay_warning_time.as_secs();
    after > 0
        && !meta.delay_warned
        && !meta.envelope.is_null_sender()
        && now.saturating_sub(meta.envelope.arrival_time) >= after
}

/// A notification about message `id` for `to`, with the original read back from the store
/// (as much of it as `bounce_size_limit` and RET allow), and its null-sender envelope.
pub(crate) async fn compose(
    qm: &QueueManager,
    id: QueueId,
    env: &Envelope,
    kind: Kind,
    reports: &[Report],
    to: &str,
    origin: &str,
) -> (Envelope, Vec<u8>) {
    let cfg = qm.shared.config();
    let store = qm.shared.store.clone();
    let original = tokio::task::spawn_blocking(move || store.read_message(id))
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let message = bounce::build(&bounce::Input {
        id,
        envelope: env,
        original: &original,
        myhostname: &cfg.myhostname,
        reports,
        kind,
        to,
        size_limit: cfg.bounce_size_limit as usize,
    });
    let mut notice = Envelope::new("", vec![to.to_string()], unix_now());
    notice.origin = origin.into();
    (notice, message)
}

/// Queues one notification (null sender) to the original sender; the caller retries a
/// failure.
async fn send(
    qm: &QueueManager,
    entry: &Entry,
    env: &Envelope,
    kind: Kind,
    reports: Vec<Report>,
) -> Result<(), StoreError> {
    if reports.is_empty() || env.is_null_sender() {
        return Ok(());
    }
    let store = qm.shared.store.clone();
    let id = entry.id;
    let (nenv, message) = compose(qm, id, env, kind, &reports, &env.sender, "bounce").await;
    let new_id = QueueId::generate();
    store.enqueue_async(new_id, nenv, &message, None).await?;
    let what = if kind == Kind::Delay {
        "delayed mail"
    } else {
        "delivery status"
    };
    info!(target: "bounce", "{id}: sender {what} notification: {new_id}");
    qm.schedule(new_id, 0);
    Ok(())
}

/// True if a success notice is due for any of these just-delivered recipients.
pub(crate) fn wants_success(env: &Envelope, delivered: &[(usize, Outcome)]) -> bool {
    !env.is_null_sender()
        && delivered
            .iter()
            .filter_map(|(i, _)| env.recipients.get(*i))
            .any(|r| wants(r, "SUCCESS", false))
}

/// NOTIFY=SUCCESS recipients just delivered.
pub(crate) async fn success(
    qm: &QueueManager,
    entry: &Entry,
    env: &Envelope,
    delivered: &[(usize, Outcome)],
) -> Result<(), StoreError> {
    let reports = delivered
        .iter()
        .filter_map(|(i, o)| env.recipients.get(*i).map(|r| (r, o)))
        .filter(|(r, _)| wants(r, "SUCCESS", false))
        .map(|(r, o)| Report {
            address: r.address.clone(),
            orcpt: r.orcpt.clone(),
            action: if o.relay == "local" {
                Action::Delivered
            } else {
                Action::Relayed
            },
            status: o.dsn.clone(),
            reason: o.text.clone(),
            remote_mta: (o.relay != "local" && o.relay != "none").then(|| o.relay.clone()),
        })
        .collect();
    send(qm, entry, env, Kind::Success, reports).await
}

/// The one "delayed mail" warning.
pub(crate) async fn delay(
    qm: &QueueManager,
    entry: &Entry,
    env: &Envelope,
) -> Result<(), StoreError> {
    let reports = env
        .recipients
        .iter()
        .filter(|r| wants(r, "DELAY", true))
        .filter_map(|r| match &r.state {
            RecipientState::Deferred { reason } => Some(Report {
                address: r.address.clone(),
                orcpt: r.orcpt.clone(),
                action: Action::Delayed,
                status: "4.0.0".into(),
                reason: reason.clone(),
                remote_mta: None,
            }),
            _ => None,
        })
        .collect();
    send(qm, entry, env, Kind::Delay, reports).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn remote_refusals_split_into_mta_and_diagnostic() {
        let (mta, diag) = super::split_remote(
            "host mx.example[192.0.2.1] said: 550 5.1.1 <x@y>: unknown (in reply to RCPT TO command)",
        );
        assert_eq!(mta.as_deref(), Some("mx.example[192.0.2.1]"));
        assert_eq!(diag, "550 5.1.1 <x@y>: unknown");
        let (mta, diag) = super::split_remote("unknown user: \"bob\"");
        assert_eq!((mta, diag.as_str()), (None, "unknown user: \"bob\""));
    }
}
