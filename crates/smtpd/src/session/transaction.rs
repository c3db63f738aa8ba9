//! The mail transaction: MAIL, RCPT, DATA and BDAT (RFC 5321 section 3.3, RFC 3030), with
//! relay control, the recipient limit, SIZE and the disk guard. Rejections of MAIL and RCPT
//! that policy (not syntax) decides are logged the way Postfix logs them, so `pflogsumm`
//! counts them: `NOQUEUE: reject: RCPT from unknown[ip]: 554 5.7.1 ...; from=<a> to=<b>
//! proto=ESMTP helo=<h>`.

use envelope::{QueueId, Recipient};
use tracing::info;

use super::{Action, Role, Session, Storage};
use crate::restrictions::{Request, Stage, Verdict};
use proto::data::{DataError, Decoder, Mode};
use proto::params::{MailParams, RcptParams};
use proto::reply::{fixed, Reply};

/// One mail transaction in progress.
#[derive(Debug)]
pub struct Transaction {
    /// The envelope sender, qualified; empty for `<>`.
    pub sender: String,
    pub params: MailParams,
    pub recipients: Vec<Recipient>,
    /// Assigned at the first accepted recipient (the `client=` log line names it).
    pub id: Option<QueueId>,
    /// BDAT chunks received so far, decoded as they arrive.
    pub chunks: Option<Decoder>,
    /// Some RCPT was refused (so DATA without recipients says "no valid recipients").
    pub refused_recipients: bool,
    /// Recipients refused for `smtpd_recipient_limit` so far.
    pub overshoot: usize,
    /// The sender as the client wrote it (unqualified), as restrictions see it.
    pub given_sender: String,
    /// What the restrictions decided for the message (HOLD, DISCARD, PREPEND).
    pub actions: MessageActions,
}

/// Access table and policy actions that apply to the whole message.
#[derive(Debug, Default)]
pub struct MessageActions {
    /// Queue on hold; the reason (already logged).
    pub hold: Option<String>,
    /// Answer 250 but do not queue; the reason (already logged).
    pub discard: Option<String>,
    /// Headers to add at the top.
    pub prepend: Vec<String>,
    /// REDIRECT: the one recipient the message goes to instead (the last one said wins).
    pub redirect: Option<String>,
    /// BCC: recipients added (NOTIFY=NEVER).
    pub bcc: Vec<String>,
    /// FILTER: the content filter for the message (the last one said wins).
    pub filter: Option<String>,
}

impl MessageActions {
    /// Adds what a verdict says (the first HOLD or DISCARD reason wins, the last REDIRECT
    /// or FILTER).
    pub fn add(&mut self, verdict: &mut Verdict) {
        if self.hold.is_none() {
            self.hold = verdict.hold.take();
        }
        if self.discard.is_none() {
            self.discard = verdict.discard.take();
        }
        self.prepend.append(&mut verdict.prepend);
        if let Some(redirect) = verdict.redirect.take() {
            self.redirect = Some(redirect);
        }
        self.bcc.append(&mut verdict.bcc);
        if let Some(filter) = verdict.filter.take() {
            self.filter = Some(filter);
        }
    }

    /// REDIRECT, BCC and FILTER on the envelope, as Postfix's cleanup applies smtpd's
    /// records: redirected recipients become that one address, a BCC already a recipient
    /// is not added again (a header check's FILTER, applied later, replaces this one).
    pub fn apply(&self, envelope: &mut envelope::Envelope) {
        if let Some(filter) = &self.filter {
            envelope.filter = Some(filter.clone());
        }
        if let Some(address) = &self.redirect {
            envelope.recipients = vec![envelope::Recipient::new(address.as_str())];
        }
        for address in &self.bcc {
            if !envelope.recipients.iter().any(|r| r.address == *address) {
                let mut bcc = envelope::Recipient::new(address.as_str());
                bcc.notify = Some("NEVER".to_string());
                envelope.recipients.push(bcc);
            }
        }
    }
}

/// A recipient that passed the syntax and limit checks, waiting for the restrictions.
#[derive(Debug)]
pub struct PendingRcpt {
    /// As the client wrote it.
    pub recipient: String,
    /// Qualified with `myorigin`.
    pub address: String,
    pub params: RcptParams,
    /// One of our destinations (local, virtual, `relay_domains`): Postfix's
    /// `permit_auth_destination`.
    pub auth_destination: bool,
    /// Delivered here (local or virtual), not relayed.
    pub final_destination: bool,
}

/// A recipient that passed every check of the session and the restrictions.
#[derive(Debug)]
pub struct AcceptedRcpt {
    /// As the client wrote it.
    pub recipient: String,
    /// Qualified with `myorigin`.
    pub address: String,
    pub params: RcptParams,
}

/// The result of one BDAT chunk.
#[derive(Debug)]
pub enum ChunkEnd {
    Reply(Reply),
    /// LAST chunk read: the transaction and the decoded message (or why it failed).
    Message(Box<Transaction>, Result<Vec<u8>, DataError>),
}

impl Session {
    pub(super) fn mail(
        &mut self,
        sender: String,
        params: MailParams,
        storage: &dyn Storage,
    ) -> Reply {
        if let Some(reply) = self.mail_refusal(&params) {
            return reply;
        }
        if !sender.is_ascii() && !params.smtputf8 {
            return utf8_undeclared();
        }
        let limit = self.settings.message_size_limit;
        if limit > 0 && params.size.is_some_and(|size| size > limit) {
            return self.log_reject("MAIL", fixed::size_exceeded(), None, "");
        }
        if let Err(reply) = storage.has_room(params.size.unwrap_or(0)) {
            return self.log_reject("MAIL", reply, None, "");
        }
        let given_sender = sender.clone();
        let sender = submit::cleanup::qualify(&sender, &self.settings.myorigin);
        self.tx = Some(Transaction {
            given_sender,
            actions: MessageActions::default(),
            sender,
            params,
            recipients: Vec::new(),
            id: None,
            chunks: None,
            refused_recipients: false,
            overshoot: 0,
        });
        fixed::sender_ok()
    }

    fn mail_refusal(&self, params: &MailParams) -> Option<Reply> {
        if self.settings.helo_required && self.helo.is_none() {
            return Some(fixed::need_helo());
        }
        if self.tx.is_some() {
            return Some(fixed::nested_mail());
        }
        if !self.esmtp && !params.is_empty() {
            return Some(Reply::new(
                555,
                "5.5.4",
                "Unsupported option: ESMTP parameters after HELO",
            ));
        }
        if self.settings.tls_required && self.tls.is_none() {
            return Some(fixed::starttls_required());
        }
        if self.settings.role == Role::Submission && self.auth.is_none() {
            return Some(fixed::auth_required());
        }
        None
    }

    pub(super) fn rcpt(&mut self, recipient: String, params: RcptParams) -> Action {
        let Some(tx) = &self.tx else {
            return Action::Reply(fixed::need_mail());
        };
        if !self.esmtp && !params.is_empty() {
            return Action::Reply(Reply::new(
                555,
                "5.5.4",
                "Unsupported option: ESMTP parameters after HELO",
            ));
        }
        if !recipient.is_ascii() && !tx.params.smtputf8 {
            return Action::Reply(utf8_undeclared());
        }
        if tx.recipients.len() >= self.settings.recipient_limit {
            return Action::Reply(self.overshoot());
        }
        // RFC 5321 section 4.5.1: <postmaster> must be accepted from anyone, and Postfix
        // skips every restriction for it.
        if recipient.eq_ignore_ascii_case("postmaster") {
            return Action::RcptAccepted(Box::new(AcceptedRcpt {
                recipient,
                address: self.settings.postmaster.clone(),
                params,
            }));
        }
        let address = submit::cleanup::qualify(&recipient, &self.settings.myorigin);
        // A virtual alias or virtual mailbox domain is a destination of ours (Postfix's
        // virtual classes), never a relay: only its listed addresses are accepted later.
        let virtual_domain = self
            .settings
            .rewriter
            .is_virtual_alias_domain(&rewrite::domain_of(&address));
        let virtual_mailbox = self.virtual_known(&address).is_some();
        let final_destination =
            virtual_domain || virtual_mailbox || self.settings.relay.is_local(&address);
        // Not `final_destination ||`: `a%b@localhost` is local but routed (see relay.rs).
        let auth_destination =
            virtual_domain || virtual_mailbox || self.settings.relay.permits(&address, false);
        Action::Rcpt(Box::new(PendingRcpt {
            recipient,
            address,
            params,
            auth_destination,
            final_destination,
        }))
    }

    fn virtual_known(&self, address: &str) -> Option<bool> {
        let check = self.settings.virtual_recipient.as_ref()?;
        (check.0)(address)
    }

    /// What the restrictions evaluate at `stage`, from what this session knows.
    pub fn restriction_request(&self, stage: Stage, pending: Option<&PendingRcpt>) -> Request {
        let tx = self.tx.as_ref();
        Request {
            stage,
            client_ip: self.client.ip,
            client_name: self.client.name.clone(),
            helo: self.helo.clone(),
            sender: tx.map(|tx| tx.given_sender.clone()),
            recipient: pending.map(|p| p.recipient.clone()),
            protocol: self.protocol().to_string(),
            mynetworks: self.settings.relay.is_trusted_client(self.client.ip),
            sasl: self
                .auth
                .as_ref()
                .map(|(mechanism, user)| (mechanism.name().to_string(), user.clone())),
            auth_destination: pending.is_some_and(|p| p.auth_destination),
            final_destination: pending.is_some_and(|p| p.final_destination),
            pipelined: false,
            queue_id: tx.and_then(|tx| tx.id).map(|id| id.to_string()),
            recipient_count: tx.map_or(0, |tx| tx.recipients.len()),
            size: tx.and_then(|tx| tx.params.size).unwrap_or(0),
            stress: self.settings.stress.get(),
        }
    }

    /// The rest of RCPT once the restrictions have spoken: their refusal (logged already),
    /// or the address rewriter's and the recipient tables' checks, then 250.
    pub fn finish_rcpt(&mut self, pending: PendingRcpt, verdict: Verdict) -> Reply {
        match self.check_rcpt(pending, verdict) {
            Ok(accepted) => self.accept_rcpt(accepted),
            Err(reply) => reply,
        }
    }

    /// [`Session::finish_rcpt`] without taking the recipient: `Ok` when every check
    /// passed (the milters have their say before [`Session::accept_rcpt`]).
    pub fn check_rcpt(
        &mut self,
        pending: PendingRcpt,
        mut verdict: Verdict,
    ) -> Result<AcceptedRcpt, Reply> {
        let PendingRcpt {
            recipient,
            address,
            params,
            ..
        } = pending;
        if let Some(reply) = verdict.reject.take() {
            if let Some(tx) = self.tx.as_mut() {
                tx.refused_recipients = true;
            }
            return Err(reply);
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.actions.add(&mut verdict);
        }
        let rewriter = self.settings.rewriter.clone();
        if let Some(refusal) = rewriter.rcpt_refusal(&address) {
            return Err(self.refuse_recipient(rcpt_refusal(&recipient, &refusal), &address));
        }
        if self.virtual_known(&address) == Some(false) && !rewriter.has_entry(&address) {
            return Err(self.refuse_recipient(fixed::unknown_virtual_user(&recipient), &address));
        }
        if let Some(check) = &self.settings.local_recipient {
            if self.settings.relay.is_local(&address)
                && !rewriter.has_entry(&address)
                && !(check.0)(&address)
            {
                return Err(self.refuse_recipient(fixed::unknown_local_user(&recipient), &address));
            }
        }
        Ok(AcceptedRcpt {
            recipient,
            address,
            params,
        })
    }

    /// Takes a recipient every check accepted: 250.
    pub fn accept_rcpt(&mut self, accepted: AcceptedRcpt) -> Reply {
        self.accept_recipient(accepted.address, accepted.params);
        fixed::recipient_ok()
    }

    /// A recipient refused after the restrictions (by a milter): counted as refused, so
    /// DATA without recipients says "no valid recipients".
    pub fn refused_rcpt(&mut self) {
        if let Some(tx) = self.tx.as_mut() {
            tx.refused_recipients = true;
        }
    }

    /// A recipient over `smtpd_recipient_limit`: 452, so the client sends it again in a
    /// later transaction. The first `smtpd_recipient_overshoot_limit` of these are not
    /// errors (Postfix), so many recipients never run into the hard error limit. Not
    /// logged, as Postfix does not.
    fn overshoot(&mut self) -> Reply {
        let limit = self.settings.recipient_overshoot_limit;
        if let Some(tx) = self.tx.as_mut() {
            tx.overshoot += 1;
            self.forgive_reply = tx.overshoot <= limit;
        }
        fixed::too_many_recipients()
    }

    fn refuse_recipient(&mut self, reply: Reply, address: &str) -> Reply {
        let id = self.tx.as_mut().and_then(|tx| {
            tx.refused_recipients = true;
            tx.id
        });
        self.log_reject("RCPT", reply, id, address)
    }

    fn accept_recipient(&mut self, address: String, params: RcptParams) {
        let client = self.client_log_suffix();
        let Some(tx) = self.tx.as_mut() else { return };
        if tx.id.is_none() {
            let id = QueueId::generate();
            tx.id = Some(id);
            info!(target: "smtpd", "{id}: client={client}");
        }
        if tx.recipients.iter().any(|r| r.address == address) {
            return;
        }
        let mut entry = Recipient::new(address);
        entry.notify = params.notify;
        entry.orcpt = params.orcpt;
        tx.recipients.push(entry);
    }

    /// `unknown[ip]` plus `, sasl_method=PLAIN, sasl_username=u` when authenticated.
    fn client_log_suffix(&self) -> String {
        let mut text = self.client.label().to_string();
        if let Some((mechanism, user)) = &self.auth {
            text.push_str(&format!(
                ", sasl_method={}, sasl_username={}",
                mechanism.name(),
                maillog::sanitize(user)
            ));
        }
        text
    }

    /// Why DATA or a first BDAT cannot start, if it cannot.
    fn data_refusal(&self, storage: &dyn Storage) -> Option<Reply> {
        let Some(tx) = &self.tx else {
            return Some(fixed::need_mail());
        };
        if tx.recipients.is_empty() {
            return Some(match tx.refused_recipients {
                true => fixed::no_valid_recipients(),
                false => fixed::need_rcpt(),
            });
        }
        storage.has_room(tx.params.size.unwrap_or(0)).err()
    }

    pub(super) fn data(&mut self, storage: &dyn Storage) -> Action {
        if self.tx.as_ref().is_some_and(|tx| tx.chunks.is_some()) {
            return Action::Reply(fixed::mixed_bdat_data());
        }
        match self.data_refusal(storage) {
            Some(reply) => Action::Reply(reply),
            None => Action::Data,
        }
    }

    /// A decoder for the DATA that was just accepted.
    pub fn data_decoder(&self) -> Decoder {
        let s = &self.settings;
        Decoder::new(Mode::Dot, s.bare_newline, s.message_size_limit)
    }

    pub(super) fn bdat(&mut self, size: u64, last: bool, storage: &dyn Storage) -> Action {
        let started = self.tx.as_ref().is_some_and(|tx| tx.chunks.is_some());
        let refusal = if started {
            None
        } else {
            self.data_refusal(storage)
        };
        if refusal.is_none() && !started {
            let decoder = Decoder::new(
                Mode::Chunk,
                self.settings.bare_newline,
                self.settings.message_size_limit,
            );
            if let Some(tx) = self.tx.as_mut() {
                tx.chunks = Some(decoder);
            }
        }
        Action::Bdat {
            size,
            last,
            first: !started && refusal.is_none(),
            refusal,
        }
    }

    /// Where the bytes of an accepted chunk go.
    pub fn chunk_sink(&mut self) -> Option<&mut Decoder> {
        self.tx.as_mut().and_then(|tx| tx.chunks.as_mut())
    }

    /// After a chunk of `size` bytes was read. A failure seen in a non-LAST chunk is
    /// answered at once and ends the transaction (RFC 3030 section 4.2: the client must not
    /// send more chunks after an error).
    pub fn end_chunk(&mut self, size: u64, last: bool, refusal: Option<Reply>) -> ChunkEnd {
        if let Some(reply) = refusal {
            if self.tx.as_ref().is_some_and(|tx| !tx.recipients.is_empty()) {
                self.tx = None;
            }
            return ChunkEnd::Reply(reply);
        }
        let failed = self.chunk_sink().and_then(|d| d.error());
        if let (Some(error), false) = (failed, last) {
            self.tx = None;
            return ChunkEnd::Reply(error.reply());
        }
        if !last {
            return ChunkEnd::Reply(fixed::chunk_ok(size));
        }
        match self.tx.take() {
            Some(mut tx) => {
                let decoded = tx.chunks.take().map_or(Ok(Vec::new()), Decoder::finish);
                ChunkEnd::Message(Box::new(tx), decoded)
            }
            None => ChunkEnd::Reply(fixed::need_mail()),
        }
    }

    /// The transaction whose DATA just ended (forgotten by the session either way).
    pub fn take_transaction(&mut self) -> Option<Transaction> {
        self.tx.take()
    }

    /// Logs `QUEUEID|NOQUEUE: reject: VERB from client: REPLY; from=<> to=<> proto= helo=<>`.
    fn log_reject(&self, verb: &str, reply: Reply, id: Option<QueueId>, to: &str) -> Reply {
        let queue = id.map_or_else(|| "NOQUEUE".to_string(), |id| id.to_string());
        let from = self
            .tx
            .as_ref()
            .map(|tx| format!(" from=<{}>", tx.sender))
            .unwrap_or_default();
        let to = match to {
            "" => String::new(),
            to => format!(" to=<{to}>"),
        };
        let helo = self.helo.as_deref().unwrap_or("");
        let line = format!(
            "{queue}: reject: {verb} from {}: {};{from}{to} proto={} helo=<{helo}>",
            self.client.label(),
            reply.summary(),
            self.protocol(),
        );
        info!(target: "smtpd", "{}", maillog::sanitize(&line));
        telemetry::smtpd_rejected(reply.code);
        reply
    }
}

fn utf8_undeclared() -> Reply {
    Reply::new(553, "5.6.7", "Must declare SMTPUTF8 to send UTF8 address")
}

/// Postfix's smtpd texts for what the address rewriter refuses: `550 5.1.6 <a>: Recipient
/// address rejected: User has moved to NEW`, `550 5.1.1 <a>: Recipient address rejected:
/// User unknown in virtual alias table`.
fn rcpt_refusal(recipient: &str, refusal: &rewrite::RcptRefusal) -> Reply {
    let (_, text) = rewrite::refusal_status(refusal);
    let status = match refusal {
        rewrite::RcptRefusal::Moved(_) => "5.1.6",
        rewrite::RcptRefusal::UnknownVirtual => "5.1.1",
    };
    Reply::new(
        550,
        status,
        format!("<{recipient}>: Recipient address rejected: {text}"),
    )
}
