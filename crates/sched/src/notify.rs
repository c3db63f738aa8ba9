//! Which delivery status notifications a finished or delayed message produces (RFC 3461
//! NOTIFY): pure decisions over an envelope, queued by `carry`. The texts themselves come
//! from the `bounce` crate.
//!
//! - Failures go to the sender for recipients whose NOTIFY is absent or includes FAILURE;
//!   a null-sender message's failures go once to the postmaster (`2bounce_notice_recipient`),
//!   and a failed postmaster notice is dropped — never a bounce of a bounce (invariant 5).
//! - Success notices go to the sender for recipients with NOTIFY=SUCCESS.
//! - One "delayed" warning per message once it is older than `delay_warning_time` (0 = off),
//!   for recipients whose NOTIFY is absent or includes DELAY.

use crate::settings::Settings;
use crate::timed::Agent;
use bounce::{Action, Kind, Report};
use envelope::{Envelope, Outcome, Recipient, RecipientState};
use queue::MessageMeta;

/// `origin` of a postmaster notice: if one of these fails, it is dropped (no third level).
pub(crate) const ORIGIN_NOTICE: &str = "2bounce";

/// `origin` of a copy that an alias or `.forward` sends on. A forwarded postmaster notice
/// is still a postmaster notice: were it a plain "forward", its failure would become a new
/// notice to the postmaster, forwarded again — an endless loop whenever the postmaster's
/// alias points at an address that fails (invariant 5).
pub(crate) fn forward_origin(parent: &str) -> &'static str {
    if parent == ORIGIN_NOTICE {
        ORIGIN_NOTICE
    } else {
        "forward"
    }
}

/// One notification to queue (with the null sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub kind: Kind,
    pub to: String,
    /// The notice's own `origin`: `bounce`, or [`ORIGIN_NOTICE`] for a postmaster notice.
    pub origin: &'static str,
    pub reports: Vec<Report>,
}

/// What a message whose recipients are all final reports to its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bounce {
    /// Nothing to report: the message is just removed.
    Nothing,
    /// A postmaster notice that itself failed: dropped, with a warning.
    Discarded,
    /// This notice replaces the message (atomically).
    Send(Notice),
}

/// A recipient just delivered, and by whom (a success notice says "delivered" for the
/// local agent, "relayed" for SMTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivered {
    pub outcome: Outcome,
    pub agent: Agent,
}

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

/// The failure report of a message whose recipients are all final.
pub(crate) fn bounce(settings: &Settings, env: &Envelope) -> Bounce {
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
        return Bounce::Nothing;
    }
    if env.origin == ORIGIN_NOTICE {
        return Bounce::Discarded;
    }
    Bounce::Send(if env.is_null_sender() {
        Notice {
            kind: Kind::PostmasterNotice,
            to: qualify(&settings.bounce_notice_recipient, &settings.myhostname),
            origin: ORIGIN_NOTICE,
            reports,
        }
    } else {
        to_sender(env, Kind::Bounce, reports)
    })
}

fn to_sender(env: &Envelope, kind: Kind, reports: Vec<Report>) -> Notice {
    Notice {
        kind,
        to: env.sender.clone(),
        origin: "bounce",
        reports,
    }
}

/// A notice to the sender, unless there is nothing to say or nobody to say it to.
fn to_sender_if_any(env: &Envelope, kind: Kind, reports: Vec<Report>) -> Option<Notice> {
    (!reports.is_empty() && !env.is_null_sender()).then(|| to_sender(env, kind, reports))
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

pub(crate) fn delay_warning_due(settings: &Settings, meta: &MessageMeta, now: u64) -> bool {
    let after = settings.delay_warning_time.as_secs();
    after > 0
        && !meta.delay_warned
        && !meta.envelope.is_null_sender()
        && now.saturating_sub(meta.envelope.arrival_time) >= after
}

/// True if a success notice is due for any of these just-delivered recipients.
pub(crate) fn wants_success(env: &Envelope, delivered: &[Delivered]) -> bool {
    !env.is_null_sender()
        && delivered
            .iter()
            .filter_map(|d| env.recipients.get(d.outcome.recipient))
            .any(|r| wants(r, "SUCCESS", false))
}

/// The success notice for NOTIFY=SUCCESS recipients just delivered, if any.
pub(crate) fn success(env: &Envelope, delivered: &[Delivered]) -> Option<Notice> {
    let reports = delivered
        .iter()
        .filter_map(|d| env.recipients.get(d.outcome.recipient).map(|r| (r, d)))
        .filter(|(r, _)| wants(r, "SUCCESS", false))
        .map(|(r, d)| {
            let o = &d.outcome;
            // An LMTP server delivers finally (Postfix's lmtp(8) reports `delivered` too).
            let local = matches!(d.agent, Agent::Local | Agent::Lmtp);
            Report {
                address: r.address.clone(),
                orcpt: r.orcpt.clone(),
                action: if local {
                    Action::Delivered
                } else {
                    Action::Relayed
                },
                status: o.dsn.clone(),
                reason: o.text.clone(),
                // `none`: decided without a remote host (e.g. discard).
                remote_mta: (!local && o.relay != "none").then(|| o.relay.clone()),
            }
        })
        .collect();
    to_sender_if_any(env, Kind::Success, reports)
}

/// The one "delayed mail" warning, if any recipient wants it.
pub(crate) fn delay(env: &Envelope) -> Option<Notice> {
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
    to_sender_if_any(env, Kind::Delay, reports)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_forwarded_postmaster_notice_stays_a_postmaster_notice() {
        assert_eq!(super::forward_origin(super::ORIGIN_NOTICE), "2bounce");
        for parent in ["smtp", "pickup", "bounce", "forward", ""] {
            assert_eq!(super::forward_origin(parent), "forward", "{parent:?}");
        }
    }

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
