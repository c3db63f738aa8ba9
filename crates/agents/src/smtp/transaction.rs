//! One mail transaction on an open session: MAIL FROM, RCPT TO for some recipients, DATA,
//! the body and the final dot — pipelined (RFC 2920) when the server offers PIPELINING.
//!
//! The sequence:
//! ```text
//! checks (SIZE limit, SMTPUTF8) ─► MAIL ─► RCPT × n ─► DATA ─► body ─► "." ─► reply
//!   pipelined: MAIL + every RCPT + DATA go out in one write; the replies are read in order.
//!   A session just taken from the cache puts RSET first; a dead one (no 250 to it) is Stale.
//!   MAIL refused → every recipient gets that reply; no RCPT accepted or DATA refused → RSET.
//! ```
//! LMTP (RFC 2033 4.2): after the final dot the server answers once per accepted recipient,
//! in RCPT order; each reply settles its own recipient (2xx sent, 4xx deferred, 5xx bounced).
//! A connection lost halfway leaves the recipients already answered as answered.
//!
//! Inputs → outputs: a session, the job and up to `recipient_limit` recipients → one outcome
//! per recipient in [`Outcomes`] and whether the session can carry another transaction.
//! Invariants: a recipient is reported sent only after the server's 2xx to the final dot;
//! an I/O failure after the dot is reported with Postfix's "message may be sent more than
//! once" (the RFC 1047 window) and is a deferral, never a bounce; the session is offered for
//! reuse only when the server is known to be between transactions.
//! Security stance: replies are untrusted; they only choose outcomes and become text.

use std::time::Duration;

use super::conn::{ConnError, Connection};
use super::failure::{self, Failure, Phase};
use super::job::{Job, Outcomes, Rcpt};
use super::reply::Reply;
use super::settings::{Dialect, Timeouts};
use super::wire::{self, MailParams};

/// Body writes are this large; each gets the full `smtp_data_xfer_timeout`.
const BODY_CHUNK: usize = 64 * 1024;

/// What the session is good for after a transaction.
#[derive(Debug)]
pub(crate) enum After {
    /// Between transactions: another MAIL may follow.
    Ready,
    /// Broken or in an unknown state; recipients not yet tried get this failure.
    Dead(Failure),
    /// A session from the connection cache did not answer the RSET that opened the
    /// pipelined group: it died while idle. Nothing was delivered and no outcome recorded;
    /// the recipients go out over another session.
    Stale,
}

/// An I/O failure and where it happened.
type Broken = (ConnError, Phase);

/// Runs one transaction for `rcpts`, recording their outcomes in `out`.
pub(crate) async fn run(
    conn: &mut Connection,
    job: &Job<'_>,
    rcpts: &[Rcpt<'_>],
    timeouts: &Timeouts,
    dialect: Dialect,
    out: &mut Outcomes,
) -> After {
    let rcpts = precheck(conn, job, rcpts, out);
    if rcpts.is_empty() {
        return After::Ready;
    }
    let mut tx = Transaction {
        conn,
        job,
        timeouts,
        dialect,
        out,
    };
    match tx.exchange(&rcpts).await {
        Ok(after) => after,
        Err((error, phase)) => {
            let failure = Failure::from_conn(&error, tx.conn.peer(), phase);
            tx.out.fail_these(&rcpts, &failure, tx.conn.relay());
            After::Dead(failure)
        }
    }
}

/// Per-session refusals made before MAIL: the server's SIZE limit (5.3.4) and SMTPUTF8
/// (5.6.7). Returns the recipients still to send.
fn precheck<'a>(
    conn: &Connection,
    job: &Job<'_>,
    rcpts: &[Rcpt<'a>],
    out: &mut Outcomes,
) -> Vec<Rcpt<'a>> {
    let relay = conn.relay();
    let whole_message = match conn.caps.max_size() {
        Some(limit) if job.size() > limit => Some(Failure::bounced(
            "5.3.4",
            format!(
                "message size {} exceeds size limit {limit} of server {}",
                job.size(),
                conn.peer().namaddr()
            ),
        )),
        _ if job.sender_needs_smtputf8() && !conn.caps.smtputf8 => {
            Some(no_smtputf8(&conn.peer().namaddr()))
        }
        _ => None,
    };
    if let Some(failure) = whole_message {
        out.fail_these(rcpts, &failure, relay);
        return Vec::new();
    }
    let mut keep = Vec::with_capacity(rcpts.len());
    for rcpt in rcpts {
        if wire::needs_smtputf8(&rcpt.recipient.address) && !conn.caps.smtputf8 {
            let failure = no_smtputf8(&conn.peer().namaddr());
            out.set(rcpt.slot, failure.outcome(rcpt.index, relay));
        } else {
            keep.push(*rcpt);
        }
    }
    keep
}

fn no_smtputf8(namaddr: &str) -> Failure {
    Failure::bounced(
        "5.6.7",
        format!("SMTPUTF8 is required, but was not offered by host {namaddr}"),
    )
}

struct Transaction<'t, 'j> {
    conn: &'t mut Connection,
    job: &'t Job<'j>,
    timeouts: &'t Timeouts,
    dialect: Dialect,
    out: &'t mut Outcomes,
}

impl Transaction<'_, '_> {
    async fn exchange(&mut self, rcpts: &[Rcpt<'_>]) -> Result<After, Broken> {
        let mail = self.mail_command(rcpts);
        if self.conn.caps.pipelining {
            self.pipelined(mail, rcpts).await
        } else {
            self.stepwise(mail, rcpts).await
        }
    }

    fn mail_command(&self, rcpts: &[Rcpt<'_>]) -> Vec<u8> {
        let env = self.job.env;
        let params = MailParams {
            size: self.job.size(),
            eight_bit: self.job.eight_bit,
            smtputf8: self.job.sender_needs_smtputf8()
                || rcpts
                    .iter()
                    .any(|r| wire::needs_smtputf8(&r.recipient.address)),
            ret: env.ret.as_deref(),
            envid: env.envid.as_deref(),
        };
        wire::mail_from(&env.sender, &params, &self.conn.caps)
    }

    fn rcpt_command(&self, rcpt: &Rcpt<'_>) -> Vec<u8> {
        let r = rcpt.recipient;
        wire::rcpt_to(
            &r.address,
            r.notify.as_deref(),
            r.orcpt.as_deref(),
            &self.conn.caps,
        )
    }

    /// RFC 2920: MAIL, every RCPT and DATA in one write, then the replies in order. A
    /// session just taken from the cache opens the group with RSET (RFC 2920 allows it
    /// anywhere in a group), the probe that it is still alive, so a reuse costs no round
    /// trip of its own; until its reply arrives nothing counts as tried.
    async fn pipelined(&mut self, mail: Vec<u8>, rcpts: &[Rcpt<'_>]) -> Result<After, Broken> {
        let probe = std::mem::take(&mut self.conn.probe_pending);
        let mut batch = Vec::with_capacity(mail.len() + 6 + 64 * rcpts.len());
        if probe {
            batch.extend_from_slice(b"RSET\r\n");
        }
        batch.extend_from_slice(&mail);
        for rcpt in rcpts {
            batch.extend(self.rcpt_command(rcpt));
        }
        batch.extend_from_slice(b"DATA\r\n");
        let sent = self.send(&batch, Phase::Mail, self.timeouts.mail).await;
        if probe {
            let alive = match sent {
                Ok(()) => self.read(Phase::RsetProbe, self.timeouts.rset).await,
                Err(broken) => Err(broken),
            };
            if !matches!(alive, Ok(reply) if reply.is_positive()) {
                return Ok(After::Stale);
            }
        } else {
            sent?;
        }
        let mail = self.read(Phase::Mail, self.timeouts.mail).await?;
        let mut accepted = Vec::with_capacity(rcpts.len());
        for rcpt in rcpts {
            let reply = self.read(Phase::Rcpt, self.timeouts.rcpt).await?;
            if mail.is_positive() {
                self.judge_rcpt(rcpt, &reply, &mut accepted);
            }
        }
        let data = self.read(Phase::Data, self.timeouts.data_init).await?;
        if !mail.is_positive() {
            self.fail(rcpts, &mail, Phase::Mail);
        }
        self.after_data(&data, &accepted).await
    }

    /// One command, one reply, for servers without PIPELINING.
    async fn stepwise(&mut self, mail: Vec<u8>, rcpts: &[Rcpt<'_>]) -> Result<After, Broken> {
        let reply = self.command(&mail, Phase::Mail, self.timeouts.mail).await?;
        if !reply.is_positive() {
            self.fail(rcpts, &reply, Phase::Mail);
            return self.reset().await;
        }
        let mut accepted = Vec::with_capacity(rcpts.len());
        for rcpt in rcpts {
            let line = self.rcpt_command(rcpt);
            let reply = self.command(&line, Phase::Rcpt, self.timeouts.rcpt).await?;
            self.judge_rcpt(rcpt, &reply, &mut accepted);
        }
        if accepted.is_empty() {
            return self.reset().await;
        }
        let data = self
            .command(b"DATA\r\n", Phase::Data, self.timeouts.data_init)
            .await?;
        self.after_data(&data, &accepted).await
    }

    fn judge_rcpt<'r>(&mut self, rcpt: &Rcpt<'r>, reply: &Reply, accepted: &mut Vec<Rcpt<'r>>) {
        if reply.is_positive() {
            accepted.push(*rcpt);
        } else {
            self.fail(std::slice::from_ref(rcpt), reply, Phase::Rcpt);
        }
    }

    /// After the reply to DATA: send the body to the accepted recipients, or clean up.
    async fn after_data(&mut self, data: &Reply, accepted: &[Rcpt<'_>]) -> Result<After, Broken> {
        if data.class() != 3 {
            self.fail(accepted, data, Phase::Data);
            return self.reset().await;
        }
        if accepted.is_empty() {
            // A pipelining server said 354 with no valid recipient: end the empty message
            // (RFC 2920 3.1) and forget it.
            self.command(b".\r\n", Phase::Dot, self.timeouts.data_done)
                .await?;
            return self.reset().await;
        }
        // The final dot goes out in the same write as the last piece of the body (one
        // system call, one segment less per message, as Postfix's buffered stream does).
        // If that write fails the dot was not sent whole: the failure is the body's.
        let body = self.job.body();
        let last_start = body.len().saturating_sub(1) / BODY_CHUNK * BODY_CHUNK;
        let (head, last) = body.split_at(last_start.min(body.len()));
        for chunk in head.chunks(BODY_CHUNK) {
            self.send(chunk, Phase::Body, self.timeouts.data_xfer)
                .await?;
        }
        let mut end = Vec::with_capacity(last.len() + 3);
        end.extend_from_slice(last);
        end.extend_from_slice(b".\r\n");
        let limit = self.timeouts.data_xfer.max(self.timeouts.data_done);
        self.send(&end, Phase::Body, limit).await?;
        match self.dialect {
            Dialect::Smtp => {
                let end = self.read(Phase::Dot, self.timeouts.data_done).await?;
                for rcpt in accepted {
                    self.settle(rcpt, &end);
                }
            }
            Dialect::Lmtp => {
                for rcpt in accepted {
                    let end = self.read(Phase::Dot, self.timeouts.data_done).await?;
                    self.settle(rcpt, &end);
                }
            }
        }
        Ok(After::Ready)
    }

    /// One accepted recipient's verdict from a reply to the final dot.
    fn settle(&mut self, rcpt: &Rcpt<'_>, end: &Reply) {
        if end.is_positive() {
            let outcome = failure::sent(end, rcpt.index, self.conn.relay());
            self.out.set(rcpt.slot, outcome);
        } else {
            self.fail(std::slice::from_ref(rcpt), end, Phase::Dot);
        }
    }

    /// RSET after an aborted transaction; a server that refuses it is not reused.
    async fn reset(&mut self) -> Result<After, Broken> {
        let reply = self
            .command(b"RSET\r\n", Phase::Rset, self.timeouts.rset)
            .await?;
        if reply.is_positive() {
            return Ok(After::Ready);
        }
        // Only recipients not yet tried get this; a refused RSET must not bounce them.
        let refused = Failure::from_reply(&reply, self.conn.peer(), Phase::Rset);
        Ok(After::Dead(Failure::deferred(
            &failure::soften(&refused.dsn),
            refused.text,
        )))
    }

    fn fail(&mut self, rcpts: &[Rcpt<'_>], reply: &Reply, phase: Phase) {
        let failure = Failure::from_reply(reply, self.conn.peer(), phase);
        self.out.fail_these(rcpts, &failure, self.conn.relay());
    }

    async fn command(
        &mut self,
        line: &[u8],
        phase: Phase,
        limit: Duration,
    ) -> Result<Reply, Broken> {
        self.send(line, phase, limit).await?;
        self.read(phase, limit).await
    }

    async fn send(&mut self, bytes: &[u8], phase: Phase, limit: Duration) -> Result<(), Broken> {
        self.conn.send(bytes, limit).await.map_err(|e| (e, phase))
    }

    async fn read(&mut self, phase: Phase, limit: Duration) -> Result<Reply, Broken> {
        self.conn.read_reply(limit).await.map_err(|e| (e, phase))
    }
}
