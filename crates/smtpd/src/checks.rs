//! Where the driver asks the restrictions (`restrictions/`): at RCPT (always: relay control
//! is `smtpd_relay_restrictions`), at MAIL (with `smtpd_delay_reject = no`), at DATA and at
//! the end of the data; and, after the restrictions, the milters' MAIL, RCPT and DATA
//! events (`milters.rs`). The session builds the [`Request`](crate::restrictions::Request)
//! and acts on the verdict; this file only carries one to the other, because evaluating
//! waits (DNS, policy services) and the session does no I/O.

use crate::conn::Conn;
use crate::restrictions::Stage;
use crate::session::{PendingRcpt, Session, Transaction};
use proto::reply::Reply;

/// RCPT: the restrictions, then the rest of the recipient checks.
pub async fn rcpt(conn: &mut Conn, session: &mut Session, pending: PendingRcpt) -> Reply {
    let mut request = session.restriction_request(Stage::Rcpt, Some(&pending));
    request.pipelined = !session.esmtp && conn.has_pending_input();
    let restrictions = session.settings.restrictions.clone();
    let verdict = restrictions.check(Stage::Rcpt, &request).await;
    let address = pending.address.clone();
    match session.check_rcpt(pending, verdict) {
        Ok(accepted) => match crate::milters::rcpt(session, &accepted).await {
            Some(refusal) => refusal,
            None => session.accept_rcpt(accepted),
        },
        Err(refusal) => {
            crate::milters::rejected_rcpt(session, &address, &refusal).await;
            refusal
        }
    }
}

/// After a MAIL that the session accepted: with `smtpd_delay_reject = no`, the client,
/// HELO and sender restrictions; a refusal ends the transaction again.
pub async fn mail(conn: &mut Conn, session: &mut Session, accepted: Reply) -> Reply {
    let restrictions = session.settings.restrictions.clone();
    if !accepted.is_positive() || !restrictions.checks_at(Stage::Mail) {
        return accepted;
    }
    let mut request = session.restriction_request(Stage::Mail, None);
    request.pipelined = !session.esmtp && conn.has_pending_input();
    let mut verdict = restrictions.check(Stage::Mail, &request).await;
    match verdict.reject.take() {
        Some(reply) => {
            session.tx = None;
            reply
        }
        None => {
            if let Some(tx) = session.tx.as_mut() {
                tx.actions.add(&mut verdict);
            }
            accepted
        }
    }
}

/// After MAIL: the restrictions (if due now), then the milters.
pub async fn mail_and_milters(conn: &mut Conn, session: &mut Session, accepted: Reply) -> Reply {
    let reply = mail(conn, session, accepted).await;
    if !reply.is_positive() {
        return reply;
    }
    crate::milters::mail(session).await.unwrap_or(reply)
}

/// DATA, before the 354, or the first BDAT, before its chunk is taken:
/// `smtpd_data_restrictions`. `Some(refusal)` when refused. `dot`: DATA (after BDAT the
/// chunk itself is pending input, so it is not taken for pipelining).
pub async fn data(conn: &mut Conn, session: &mut Session, dot: bool) -> Option<Reply> {
    let restrictions = session.settings.restrictions.clone();
    if !restrictions.checks_at(Stage::Data) {
        return None;
    }
    let mut request = session.restriction_request(Stage::Data, None);
    // RFC 2920: DATA ends a pipelined group; nothing may follow it before our reply.
    request.pipelined = dot && conn.has_pending_input();
    let mut verdict = restrictions.check(Stage::Data, &request).await;
    let refusal = verdict.reject.take();
    if let Some(tx) = session.tx.as_mut() {
        tx.actions.add(&mut verdict);
    }
    refusal
}

/// DATA or the first BDAT: the data restrictions, then the milters (`SMFIC_DATA`).
pub async fn data_and_milters(conn: &mut Conn, session: &mut Session, dot: bool) -> Option<Reply> {
    match data(conn, session, dot).await {
        Some(refusal) => Some(refusal),
        None => crate::milters::data(session).await,
    }
}

/// After the data, before queueing: `smtpd_end_of_data_restrictions`.
pub async fn end_of_data(session: &Session, tx: &mut Transaction, size: usize) -> Option<Reply> {
    let restrictions = session.settings.restrictions.clone();
    if !restrictions.checks_at(Stage::EndOfData) {
        return None;
    }
    let mut request = session.restriction_request(Stage::EndOfData, None);
    request.sender = Some(tx.given_sender.clone());
    request.queue_id = tx.id.map(|id| id.to_string());
    request.recipient_count = tx.recipients.len();
    request.size = size as u64;
    let mut verdict = restrictions.check(Stage::EndOfData, &request).await;
    let refusal = verdict.reject.take();
    tx.actions.add(&mut verdict);
    refusal
}
