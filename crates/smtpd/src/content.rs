//! The content checks at the end of DATA (Postfix's cleanup header_checks and body_checks,
//! `rewrite::content`): the inspection, its log lines in cleanup's format, and what it
//! means for the SMTP reply — `550 5.7.1 text` (or `451 4.x.y`) for REJECT, `250` with
//! nothing queued for DISCARD, the hold queue for HOLD; PASS skips the milters; FILTER
//! names the message's own content filter in its envelope (`Inspection::apply`).

use proto::reply::Reply;
use rewrite::content::{LogContext, Outcome};
use tracing::{info, warn};

use crate::message::Prepared;
use crate::session::Session;

/// What to do with a message after its content checks.
pub enum Disposition {
    /// Queue it; `Some(reason)` into the hold queue; `pass`: no milter inspection.
    Queue {
        hold: Option<String>,
        pass: bool,
    },
    /// Answer 250 as if queued, queue nothing.
    Discard,
    Refuse(Reply),
}

/// Inspects `prepared` (editing it for IGNORE, PREPEND and REDIRECT) and logs each finding.
pub fn inspect(session: &Session, prepared: &mut Prepared) -> Disposition {
    let checks = session.settings.rewriter.content_checks();
    if checks.is_empty() {
        return Disposition::Queue {
            hold: None,
            pass: false,
        };
    }
    let mut inspection = checks.inspect(&prepared.message);
    log(session, prepared, &inspection.findings);
    for problem in &inspection.warnings {
        warn!(target: "cleanup", "{}: {}", prepared.id, maillog::sanitize(problem));
    }
    inspection.apply(&mut prepared.envelope, &mut prepared.message);
    match inspection.outcome {
        Outcome::Accept => Disposition::Queue {
            hold: inspection.hold,
            pass: inspection.pass,
        },
        Outcome::Discard => Disposition::Discard,
        Outcome::Reject { status, text } => {
            let code = if status.starts_with('4') { 451 } else { 550 };
            Disposition::Refuse(match status.as_str() {
                "5.7.1" => Reply::new(550, "5.7.1", text),
                _ => Reply::new(code, "", format!("{status} {text}")),
            })
        }
    }
}

fn log(session: &Session, prepared: &Prepared, findings: &[rewrite::content::Finding]) {
    if findings.is_empty() {
        return;
    }
    let id = prepared.id.to_string();
    let origin = session.client.label();
    let cx = LogContext {
        queue_id: &id,
        origin,
        sender: &prepared.envelope.sender,
        recipient: prepared
            .envelope
            .recipients
            .first()
            .map(|r| r.address.as_str()),
        smtp: Some((session.protocol(), session.helo.as_deref().unwrap_or(""))),
    };
    for finding in findings {
        info!(target: "cleanup", "{}", finding.log_line(&cx));
    }
}
