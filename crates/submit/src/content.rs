//! The content checks for locally submitted mail (Postfix's cleanup as pickup runs it:
//! header_checks, mime_header_checks, nested_header_checks, body_checks through
//! `rewrite::content`). As in Postfix, sendmail has exited by then, so REJECT bounces the
//! message to its sender (`5.7.1 message content rejected`), DISCARD drops it, HOLD puts
//! it in the hold queue, FILTER names the message's content filter in its envelope; the log
//! lines say `from local`.

use envelope::{Envelope, QueueId};
use rewrite::content::{LogContext, Outcome};
use tracing::{info, warn};

/// What pickup does with the message.
pub enum Disposition {
    /// Queue it; `Some(reason)` into the hold queue; `pass`: no milter inspection.
    Queue {
        hold: Option<String>,
        pass: bool,
    },
    Discard,
    /// Bounce it: status and text.
    Reject {
        dsn: String,
        reason: String,
    },
}

/// Inspects the message (editing it for IGNORE, PREPEND and REDIRECT) and logs each
/// finding.
pub fn inspect(
    rewriter: &rewrite::Rewriter,
    id: QueueId,
    envelope: &mut Envelope,
    message: &mut Vec<u8>,
) -> Disposition {
    let checks = rewriter.content_checks();
    if checks.is_empty() {
        return Disposition::Queue {
            hold: None,
            pass: false,
        };
    }
    let mut inspection = checks.inspect(message);
    let queue_id = id.to_string();
    let cx = LogContext {
        queue_id: &queue_id,
        origin: "local",
        sender: &envelope.sender,
        recipient: envelope.recipients.first().map(|r| r.address.as_str()),
        smtp: None,
    };
    for finding in &inspection.findings {
        info!(target: "cleanup", "{}", finding.log_line(&cx));
    }
    for problem in &inspection.warnings {
        warn!(target: "cleanup", "{queue_id}: {}", maillog::sanitize(problem));
    }
    inspection.apply(envelope, message);
    match inspection.outcome {
        Outcome::Accept => Disposition::Queue {
            hold: inspection.hold,
            pass: inspection.pass,
        },
        Outcome::Discard => Disposition::Discard,
        Outcome::Reject { status, text } => Disposition::Reject {
            dsn: status,
            reason: text,
        },
    }
}
