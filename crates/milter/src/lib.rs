//! The milter client: the Sendmail mail filter protocol (version 6, as Postfix speaks it),
//! so rspamd, OpenDKIM and friends can judge and change mail before it is queued.
//!
//! # Job, inputs → outputs
//! A message (envelope, headers, body) plus what is known of its client ([`Context`]) →
//! a [`Decision`]: go on (with the milters' changes applied to the [`Mail`]: headers added,
//! inserted, changed or deleted, sender and recipients changed, body replaced; possibly
//! into the hold queue), or refuse it (`reject` → 5xx, `tempfail` → 4xx), or discard it.
//! The milters run one after the other, each seeing the changes of those before it; the
//! first to decide ends the run.
//!
//! ```text
//!  spec.rs          smtpd_milters / non_smtpd_milters entries, per-milter settings
//!  codec.rs         packets ⇄ Command / Response                  pure, fuzzed
//!  client.rs        one connection: connect, negotiate, ask with timeouts
//!  conversation.rs  one message through one milter, stage by stage
//!  session.rs       smtpd_milters through an SMTP session, event by event
//!  mail.rs          the message and the end-of-message changes    pure
//! ```
//!
//! Two ways to drive them, as Postfix has:
//! * `smtpd_milters` ([`SessionMilters`]): one connection per milter for the whole SMTP
//!   session, each command reported when the client sends it, so a refusal at RCPT refuses
//!   only that recipient and one at HELO answers every later command.
//! * `non_smtpd_milters` ([`run`]): a whole locally submitted message, the stages
//!   (connect, HELO, MAIL, RCPT, DATA, headers, body) replayed at once on one connection
//!   per message; a refusal at any stage refuses the message.
//!
//! # Invariants
//! * A milter that cannot be reached, times out or breaks the protocol never loses mail:
//!   its `default_action` decides (tempfail by default, so the client keeps the message).
//! * Changes are applied only when the milter's final answer accepts the message.
//!
//! # Security stance
//! Milters are configured by the administrator and trusted to judge mail, but their bytes
//! are parsed strictly and bounded (1 MiB per packet, timeouts on every wait); nothing a
//! milter sends can crash the daemon.

#![forbid(unsafe_code)]

pub mod client;
pub mod codec;
mod conversation;
pub mod fuzzing;
pub mod mail;
mod session;
mod settings;
pub mod spec;

use std::collections::HashMap;
use std::net::IpAddr;

use tracing::warn;

pub use client::MilterError;
pub use mail::Mail;
pub use session::SessionMilters;
pub use settings::{MacroNames, MilterSettings};
pub use spec::{DefaultAction, MilterSpec};

use codec::Response;
use conversation::Outcome;

/// What the milters are told about a message's origin.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `unknown` for a client without a name, `localhost` for local submission.
    pub client_name: String,
    /// `None` for local submission (`SMFIA_UNKNOWN`).
    pub client_address: Option<IpAddr>,
    pub client_port: u16,
    pub helo: String,
    /// Every macro value known (`j`, `{client_addr}`, `i`, `{auth_authen}` …); per stage,
    /// those named in the stage's list are sent.
    pub macros: HashMap<String, String>,
    pub names: MacroNames,
}

/// What smtpd answers a milter's `SMFIR_SHUTDOWN` with (Postfix's smtpd; the session
/// then ends, as after any 421).
pub const SHUTDOWN_REPLY: &str = "421 4.7.0 Server closing connection";

/// What a `SMFIR_SHUTDOWN` is for a locally submitted message: a tempfail (Postfix's
/// cleanup), so the message stays in `maildrop/`.
pub const SHUTDOWN_LOCAL: &str = "421 4.7.0 Service unavailable";

/// How the milters judged a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on; `Some(reason)`: into the hold queue (`SMFIR_QUARANTINE`, or a default action).
    Accept { hold: Option<String> },
    /// `550 5.7.1 text`: refuse (bounce for local submission).
    Reject(String),
    /// `451 4.7.1 text`: try again later.
    Tempfail(String),
    /// Say yes, deliver nothing.
    Discard,
}

/// A [`Verdict`] with where it was reached, for the `milter-reject: STAGE from …` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// `CONNECT`, `HELO`, `MAIL`, `RCPT`, `DATA`, `END-OF-MESSAGE`.
    pub stage: &'static str,
}

/// Runs `mail` through `milters` in order; changes are applied to `mail`.
pub async fn run(milters: &[MilterSpec], context: &Context, mail: &mut Mail) -> Decision {
    let mut hold = None;
    for spec in milters {
        match conversation::converse(spec, context, mail).await {
            Ok(Outcome::Accepted {
                changes,
                leading_space,
            }) => {
                if let Some(reason) = apply(spec, mail, &changes, leading_space) {
                    hold = Some(reason);
                }
            }
            Ok(Outcome::Decided(Verdict::Tempfail(text), stage)) if text == SHUTDOWN_REPLY => {
                let verdict = Verdict::Tempfail(SHUTDOWN_LOCAL.into());
                return Decision { verdict, stage };
            }
            Ok(Outcome::Decided(verdict, stage)) => return Decision { verdict, stage },
            Err(error) => {
                warn!(target: "milter", "milter {}: {error}", spec.name);
                match spec.default_action {
                    DefaultAction::Accept => {}
                    DefaultAction::Quarantine => hold = Some("milter default action".into()),
                    DefaultAction::Reject => {
                        return decided(Verdict::Reject("550 5.5.0 Service unavailable".into()))
                    }
                    DefaultAction::Tempfail => {
                        return decided(Verdict::Tempfail(
                            "451 4.7.1 Service unavailable - try again later".into(),
                        ))
                    }
                }
            }
        }
    }
    decided(Verdict::Accept { hold })
}

fn decided(verdict: Verdict) -> Decision {
    Decision {
        verdict,
        stage: "END-OF-MESSAGE",
    }
}

/// Applies one milter's changes; returns its quarantine reason, if any.
fn apply(
    spec: &MilterSpec,
    mail: &mut Mail,
    changes: &[Response],
    leading_space: bool,
) -> Option<String> {
    let mut hold = None;
    let mut new_body = None;
    for change in changes {
        match change {
            Response::Quarantine(reason) => hold = Some(reason.clone()),
            other => {
                if !mail.apply(other, leading_space, &mut new_body) {
                    warn!(target: "milter", "milter {}: ignoring unexpected reply {other:?}", spec.name);
                }
            }
        }
    }
    if let Some(body) = new_body {
        mail.body = mail::body_from_crlf(&body);
    }
    hold
}

/// `SMFIR_REPLYCODE`'s text → a verdict: 4xx tempfails, 5xx rejects. Without an enhanced
/// status code, Postfix's default (`4.7.1`/`5.7.1`) is added; anything else is a tempfail
/// (a milter's malformed reply must not bounce mail).
pub fn reply_verdict(text: &str) -> Verdict {
    // One line: the SMTP reply is re-made from the code and the text.
    let text = text.split(['\r', '\n']).next().unwrap_or("").trim();
    let code = text
        .get(..3)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
    let rest = text.get(3..).unwrap_or("").trim_start_matches([' ', '-']);
    let (class, default) = match code.and_then(|c| c.as_bytes().first()) {
        Some(b'4') => ('4', "4.7.1"),
        Some(b'5') => ('5', "5.7.1"),
        _ => return Verdict::Tempfail("451 4.7.1 Service unavailable - try again later".into()),
    };
    let has_enhanced = rest.split(' ').next().is_some_and(|word| {
        word.starts_with(class)
            && word.split('.').count() == 3
            && word
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    let code = code.unwrap_or_default();
    let line = match has_enhanced {
        true => format!("{code} {rest}"),
        false => format!("{code} {default} {rest}").trim_end().to_string(),
    };
    match class {
        '4' => Verdict::Tempfail(line),
        _ => Verdict::Reject(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes_become_verdicts() {
        assert_eq!(
            reply_verdict("554 5.7.1 Spam message rejected"),
            Verdict::Reject("554 5.7.1 Spam message rejected".into())
        );
        assert_eq!(
            reply_verdict("451 Try later\r\n"),
            Verdict::Tempfail("451 4.7.1 Try later".into())
        );
        assert_eq!(
            reply_verdict("550-5.7.1 first\r\n550 5.7.1 second"),
            Verdict::Reject("550 5.7.1 first".into())
        );
        assert!(matches!(reply_verdict("250 ok"), Verdict::Tempfail(_)));
        assert!(matches!(reply_verdict(""), Verdict::Tempfail(_)));
    }
}
