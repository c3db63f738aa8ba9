//! One delivery request as the SMTP client sees it: the message with what it needs from a
//! server (size, 8-bit body, SMTPUTF8), the recipients to send, and the outcomes so far.
//!
//! Inputs → outputs: an envelope, the requested recipient indexes and the message bytes →
//! a [`Job`] and the [`Rcpt`]s that can be sent; [`Outcomes`] collects exactly one outcome
//! per requested recipient (by position in the request) and turns into the report's list.
//! Invariants: a recipient's first outcome is final (later, more general failures never
//! overwrite it); [`Outcomes::finish`] always returns one outcome per requested recipient,
//! in request order, even if some path forgot one (deferred 4.3.0, never lost).
//! Security stance: addresses that could break the command line (CR, LF, brackets) are
//! refused here, before any connection, as bounces with the RFC 3463 syntax codes.

use std::sync::OnceLock;

use envelope::{Envelope, Outcome, QueueId, Recipient};

use super::failure::Failure;
use super::settings::Dialect;
use super::wire;

/// The message and its properties.
pub(crate) struct Job<'a> {
    pub id: QueueId,
    pub env: &'a Envelope,
    pub message: &'a [u8],
    pub eight_bit: bool,
    /// `smtp_line_length_limit` (0 = none).
    line_limit: usize,
    /// For the program name of log lines.
    dialect: Dialect,
    /// The `DKIM-Signature` field put on top on the wire (CR LF form), if signed.
    signature: Option<Vec<u8>>,
    /// The DATA form and the size on the wire (SIZE=, the server's limit), built on first
    /// use.
    body: OnceLock<(Vec<u8>, u64)>,
}

/// One recipient to send: its position in the request and its envelope entry.
#[derive(Clone, Copy)]
pub(crate) struct Rcpt<'a> {
    pub slot: usize,
    pub index: usize,
    pub recipient: &'a Recipient,
}

impl<'a> Job<'a> {
    pub fn new(
        id: QueueId,
        env: &'a Envelope,
        message: &'a [u8],
        line_limit: usize,
        dialect: Dialect,
    ) -> Job<'a> {
        Job {
            id,
            env,
            message,
            eight_bit: wire::has_8bit(message),
            line_limit,
            dialect,
            signature: None,
            body: OnceLock::new(),
        }
    }

    /// Signs the message as it will be sent (after line breaking), if `signer` has a key
    /// for it; the field goes on top of the body and counts in SIZE=.
    pub fn sign_with(&mut self, signer: &crate::dkim::Signer) {
        if signer.is_empty() {
            return;
        }
        let text = wire::wire_text(self.message, self.line_limit);
        self.signature = signer.sign(self.id, &self.env.sender, &text);
    }

    /// The body in DATA form, encoded on first use and shared by every transaction.
    pub fn body(&self) -> &[u8] {
        &self.encoded().0
    }

    /// The message's size on the wire as SIZE= announces it (RFC 1870): the DATA form less
    /// its transparency dots, the signature field included.
    pub fn size(&self) -> u64 {
        self.encoded().1
    }

    fn encoded(&self) -> &(Vec<u8>, u64) {
        self.body.get_or_init(|| {
            let (mut body, broken, stuffed) = wire::data_body(self.message, self.line_limit);
            if let Some(field) = &self.signature {
                // No line of a header field starts with a dot: nothing to stuff.
                body.splice(0..0, field.iter().copied());
            }
            if broken {
                // Postfix's words, once per message, so a changed MIME part can be explained.
                note!(
                    self.dialect,
                    "{}: breaking line > {} bytes with <CR><LF>SPACE",
                    self.id,
                    self.line_limit
                );
            }
            let size = (body.len() - stuffed) as u64;
            (body, size)
        })
    }

    pub fn sender_needs_smtputf8(&self) -> bool {
        wire::needs_smtputf8(&self.env.sender)
    }

    /// A bounce for every recipient when the sender cannot be sent at all.
    pub fn sender_problem(&self) -> Option<Failure> {
        (!wire::is_safe_address(&self.env.sender))
            .then(|| Failure::bounced("5.1.7", "bad sender address syntax: refusing to send it"))
    }

    /// The requested recipients that can be sent; the others get their outcome now.
    pub fn recipients(&self, requested: &[usize], out: &mut Outcomes) -> Vec<Rcpt<'a>> {
        let mut sendable = Vec::with_capacity(requested.len());
        for (slot, &index) in requested.iter().enumerate() {
            let Some(recipient) = self.env.recipients.get(index) else {
                let text = format!("internal error: no recipient #{index} in this message");
                out.set(
                    slot,
                    Failure::deferred("4.3.0", text).outcome(index, "none"),
                );
                continue;
            };
            if recipient.address.is_empty() || !wire::is_safe_address(&recipient.address) {
                let f = Failure::bounced("5.1.3", "bad recipient address syntax");
                out.set(slot, f.outcome(index, "none"));
                continue;
            }
            sendable.push(Rcpt {
                slot,
                index,
                recipient,
            });
        }
        sendable
    }
}

/// Outcomes by position in the request.
pub(crate) struct Outcomes {
    requested: Vec<usize>,
    slots: Vec<Option<Outcome>>,
}

impl Outcomes {
    pub fn new(requested: &[usize]) -> Outcomes {
        Outcomes {
            requested: requested.to_vec(),
            slots: vec![None; requested.len()],
        }
    }

    /// Records the outcome of the recipient at `slot` unless it already has one.
    pub fn set(&mut self, slot: usize, outcome: Outcome) {
        if let Some(entry @ None) = self.slots.get_mut(slot) {
            *entry = Some(outcome);
        }
    }

    #[cfg(test)]
    pub fn is_open(&self, slot: usize) -> bool {
        matches!(self.slots.get(slot), Some(None))
    }

    /// Gives `failure` to every recipient that has no outcome yet.
    pub fn fail_open(&mut self, failure: &Failure, relay: &str) {
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            if entry.is_none() {
                *entry = Some(failure.outcome(self.requested[slot], relay));
            }
        }
    }

    /// Gives `failure` to the recipients of `rcpts` that have no outcome yet.
    pub fn fail_these(&mut self, rcpts: &[Rcpt], failure: &Failure, relay: &str) {
        for rcpt in rcpts {
            self.set(rcpt.slot, failure.outcome(rcpt.index, relay));
        }
    }

    pub fn finish(mut self) -> Vec<Outcome> {
        let missing = Failure::deferred("4.3.0", "internal error: no delivery attempt was made");
        self.fail_open(&missing, "none");
        self.slots.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope::OutcomeKind;

    #[test]
    fn first_outcome_wins_and_none_is_lost() {
        let mut out = Outcomes::new(&[3, 1, 2]);
        out.set(1, Failure::bounced("5.1.1", "no").outcome(1, "r"));
        out.fail_open(&Failure::deferred("4.4.1", "down"), "none");
        out.set(0, Failure::bounced("5.0.0", "late").outcome(3, "r"));
        let list = out.finish();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].kind, OutcomeKind::Deferred);
        assert_eq!(
            (list[1].recipient, &list[1].kind),
            (1, &OutcomeKind::Bounced)
        );
        assert_eq!(list[2].recipient, 2);
    }

    #[test]
    fn bad_recipients_are_settled_before_sending() {
        let env = Envelope::new(
            "s@x",
            vec!["ok@x".into(), "bad\r\nRSET@x".into(), String::new()],
            0,
        );
        let job = Job::new(QueueId::generate(), &env, b"hi\n", 998, Dialect::Smtp);
        let mut out = Outcomes::new(&[0, 1, 2, 9]);
        let sendable = job.recipients(&[0, 1, 2, 9], &mut out);
        assert_eq!(sendable.len(), 1);
        assert!(out.is_open(0) && !out.is_open(1) && !out.is_open(2) && !out.is_open(3));
        let list = out.finish();
        assert_eq!(list[1].dsn, "5.1.3");
        assert_eq!((list[3].dsn.as_str(), list[3].recipient), ("4.3.0", 9));
        assert_eq!(job.body(), b"hi\r\n");
        assert_eq!(job.size(), 4);
    }

    /// SIZE= comes from the DATA form less its dots: the same as counting the wire text
    /// line by line, for texts full of dots, bare CRs and long lines.
    #[test]
    fn the_size_is_the_wire_text_whatever_the_dots() {
        let env = Envelope::new("s@x", vec!["r@x".into()], 0);
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..2000 {
            let n = rng.usize(0..200);
            let text: Vec<u8> = (0..n)
                .map(|_| *rng.choice(b"a.\n\r\xc3\xa9").unwrap())
                .collect();
            for limit in [0, 1, 3, 10, 998] {
                let job = Job::new(QueueId::generate(), &env, &text, limit, Dialect::Smtp);
                assert_eq!(
                    job.size(),
                    wire::wire_size(&text, limit),
                    "{text:?} {limit}"
                );
            }
        }
    }
}
