//! `GET /api/v1/queue/{id}`: one message — its listing row, the full envelope with every
//! recipient's state and last reason, the next retry time, and the headers (not the body:
//! the API is for steering the queue; `postcat -b` shows bodies).
//!
//! Headers are split at the first empty line and unfolded; a header section that is not
//! UTF-8 is shown with replacement characters (it is shown, never interpreted).

use crate::Daemon;
use admin::row::State;
use admin::Row;
use envelope::{QueueId, RecipientState};
use serde::Serialize;

/// Header bytes shown at most (the rest is cut, `headers_truncated` says so).
const MAX_HEADER_BYTES: usize = 256 << 10;

#[derive(Debug, Serialize)]
pub struct Recipient {
    pub address: String,
    /// `pending`, `deferred`, `sent` or `bounced`.
    pub state: &'static str,
    /// The last attempt's reason (deferred, bounced); empty otherwise.
    pub reason: String,
    /// The DSN status of a bounce (`5.1.1`); empty otherwise.
    pub status: String,
}

#[derive(Debug, Serialize)]
pub struct Detail {
    #[serde(flatten)]
    pub row: Row,
    /// Every recipient, done or open.
    pub envelope_recipients: Vec<Recipient>,
    /// Where it came from: `smtpd`, `pickup`, `bounce`, ...
    pub origin: String,
    /// Unix seconds; 0 = due now, `null` = not scheduled (on hold, or being delivered).
    pub next_retry: Option<u64>,
    /// `[name, value]` in order.
    pub headers: Vec<(String, String)>,
    pub headers_truncated: bool,
}

/// `None`: no such message in the store.
pub fn detail(daemon: &dyn Daemon, id: QueueId) -> Result<Option<Detail>, String> {
    let store = daemon.store();
    let Some(entry) = store.get(id) else {
        return Ok(None);
    };
    let message = match store.read_message(id) {
        Ok(bytes) => bytes,
        Err(queue::StoreError::NotFound(_)) => return Ok(None), // delivered meanwhile
        Err(e) => return Err(format!("cannot read {id} from the queue store: {e}")),
    };
    let active = daemon.is_active(id);
    let row = Row::from_entry(&entry, active);
    let next_retry = match row.queue_name {
        State::Hold | State::Active => None,
        _ => Some(entry.meta.next_attempt),
    };
    let (headers, headers_truncated) = headers(&message);
    Ok(Some(Detail {
        row,
        envelope_recipients: entry
            .meta
            .envelope
            .recipients
            .iter()
            .map(recipient)
            .collect(),
        origin: entry.meta.envelope.origin.clone(),
        next_retry,
        headers,
        headers_truncated,
    }))
}

fn recipient(r: &envelope::Recipient) -> Recipient {
    let (state, reason, status) = match &r.state {
        RecipientState::Pending => ("pending", "", ""),
        RecipientState::Deferred { reason } => ("deferred", reason.as_str(), ""),
        RecipientState::Sent => ("sent", "", ""),
        RecipientState::Bounced { status, reason } => ("bounced", reason.as_str(), status.as_str()),
    };
    Recipient {
        address: r.address.clone(),
        state,
        reason: reason.to_string(),
        status: status.to_string(),
    }
}

/// The header fields of `message`, unfolded, and whether they were cut.
pub fn headers(message: &[u8]) -> (Vec<(String, String)>, bool) {
    let end = find_blank_line(message).unwrap_or(message.len());
    let truncated = end > MAX_HEADER_BYTES;
    let section = String::from_utf8_lossy(&message[..end.min(MAX_HEADER_BYTES)]);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in section
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
    {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    (fields, truncated)
}

fn find_blank_line(message: &[u8]) -> Option<usize> {
    if message.starts_with(b"\r\n") || message.starts_with(b"\n") {
        return Some(0);
    }
    let crlf = message.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = message.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_unfolded_and_stop_at_the_body() {
        let msg = b"Subject: a\r\n long one\r\nFrom: x@y\r\n\r\nBody: not a header\r\n";
        let (h, cut) = headers(msg);
        assert!(!cut);
        assert_eq!(
            h,
            vec![
                ("Subject".into(), "a long one".into()),
                ("From".into(), "x@y".into())
            ]
        );
        assert!(headers(b"\r\nNot: header").0.is_empty());
    }
}
