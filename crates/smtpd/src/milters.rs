//! `smtpd_milters` at each SMTP stage, as Postfix's smtpd consults them: the session's
//! milter connections (crate `milter`, [`milter::SessionMilters`]) are opened when the
//! client connects and told each command as it arrives; their answers are applied there.
//!
//! * CONNECT: a 5xx makes the greeting `554 HOST ESMTP not accepting connections`, a 421
//!   `421 HOST Service unavailable - try again later` (and the session ends); the refusal
//!   then stands: MAIL, STARTTLS, AUTH and VRFY get it for the rest of the session.
//! * HELO/EHLO: a refusal is logged and stands the same way; HELO itself still gets 250.
//! * MAIL: refuses that MAIL FROM. RCPT: refuses that recipient only. DATA: refuses DATA.
//! * Discard, from MAIL on: the message is accepted and not delivered.
//! * A 421 at any stage (`SMFIR_SHUTDOWN` is `421 4.7.0 Server closing connection`): that
//!   reply, then the session ends, as Postfix hangs up after a 421.
//! * An unknown or unimplemented command (`SMFIC_UNKNOWN`): a 4xx replaces the 500/502.
//! * End of the data: the content; changes are applied, refusals refuse the message.
//!
//! Each is logged as Postfix logs it (`NOQUEUE: milter-reject: RCPT from unknown[ip]: 550
//! 5.7.1 Command rejected; from=<a> to=<b> proto=ESMTP helo=<h>`, `ID: milter-reject:
//! END-OF-MESSAGE from …: 5.7.1 text; …`), so fail2ban and pflogsumm count them.

use std::collections::HashMap;

use milter::{Context, Mail, Verdict};
use tracing::info;

use crate::message::Prepared;
use crate::session::{AcceptedRcpt, Session};
use proto::reply::Reply;

/// What happens to a message after the milters.
pub enum After {
    /// Queue it (changes applied); `Some(reason)`: into the hold queue.
    Queue { hold: Option<String> },
    /// Answer 250 and queue nothing.
    Discard,
    /// Refuse it with this reply.
    Refuse(Reply),
}

/// At connect: opens the milter connections. `Some(greeting)` replaces the 220;
/// `Some((reply, true))` means close after it.
pub async fn connect(session: &mut Session) -> Option<(Reply, bool)> {
    // `smtpd_milter_maps` may give this client its own list, or none (`DISABLE`).
    let specs = session
        .settings
        .milters
        .smtpd_for(session.client.ip)
        .into_owned();
    if specs.is_empty() {
        return None;
    }
    let context = context(session, &[]);
    let (milters, verdict) = milter::SessionMilters::connect(&specs, &context).await;
    session.milters = milters;
    let reply = refused(session, "CONNECT", verdict?, None, None)?;
    let host = session.settings.hostname.clone();
    match (reply.code, reply.code / 100) {
        (421, _) => Some((
            Reply::new(
                421,
                "",
                format!("{host} Service unavailable - try again later"),
            ),
            true,
        )),
        (_, 5) => Some((
            Reply::new(554, "", format!("{host} ESMTP not accepting connections")),
            false,
        )),
        _ => None,
    }
}

/// After a HELO/EHLO the session took: `Some(421 reply)` when the session must end.
pub async fn helo(session: &mut Session) -> Option<Reply> {
    if session.milters.is_empty() {
        return None;
    }
    let name = session.helo.clone().unwrap_or_default();
    let context = context(session, &[]);
    let verdict = session.milters.helo(&name, &context).await?;
    let reply = refused(session, "HELO", verdict, None, None)?;
    (reply.code == 421).then_some(reply)
}

/// After a MAIL FROM the session and the restrictions took: `Some(refusal)` ends the
/// transaction again.
pub async fn mail(session: &mut Session) -> Option<Reply> {
    if session.milters.is_empty() {
        return None;
    }
    let tx = session.tx.as_ref()?;
    let sender = tx.sender.clone();
    let args = mail_args(&tx.given_sender, &tx.params);
    let context = context(session, &[]);
    let verdict = session.milters.mail(args, &context).await?;
    let refusal = refused(session, "MAIL", verdict, Some(&sender), None);
    if refusal.is_some() {
        session.tx = None;
    }
    refusal
}

/// For a recipient every other check accepted: `Some(refusal)` refuses this one only.
pub async fn rcpt(session: &mut Session, accepted: &AcceptedRcpt) -> Option<Reply> {
    if session.milters.is_empty() {
        return None;
    }
    let sender = session.tx.as_ref().map(|tx| tx.sender.clone());
    let args = vec![format!("<{}>", accepted.recipient)];
    let values = [("{rcpt_addr}", accepted.address.clone())];
    let context = context(session, &values);
    let verdict = session.milters.rcpt(args, &context).await?;
    let refusal = refused(
        session,
        "RCPT",
        verdict,
        sender.as_deref(),
        Some(&accepted.address),
    );
    if refusal.is_some() {
        session.refused_rcpt();
    }
    refusal
}

/// A recipient the session refused, for milters that negotiated `SMFIP_RCPT_REJ`.
pub async fn rejected_rcpt(session: &mut Session, recipient: &str, refusal: &Reply) {
    if session.milters.is_empty() {
        return;
    }
    let values = [
        ("{rcpt_addr}", recipient.to_string()),
        ("{rcpt_mailer}", "error".to_string()),
        ("{rcpt_host}", refusal.status.to_string()),
    ];
    let context = context(session, &values);
    let args = vec![format!("<{recipient}>")];
    session.milters.rejected_rcpt(args, &context).await;
}

/// At DATA (or the first BDAT), after the data restrictions: `Some(refusal)`.
pub async fn data(session: &mut Session) -> Option<Reply> {
    if session.milters.is_empty() {
        return None;
    }
    let context = context(session, &[]);
    let verdict = session.milters.data(&context).await?;
    let sender = session.tx.as_ref().map(|tx| tx.sender.clone());
    refused(session, "DATA", verdict, sender.as_deref(), None)
}

/// STARTTLS, AUTH and VRFY: a standing refusal from connect or HELO answers them; for
/// STARTTLS and AUTH (`tls_or_auth`) a 4xx is `454 4.3.0 Try again later`, as Postfix
/// answers them (its Sendmail compatibility).
pub fn standing(session: &Session, tls_or_auth: bool) -> Option<Reply> {
    let reply = match session.milters.standing()? {
        Verdict::Reject(text) | Verdict::Tempfail(text) => reply_of(&text),
        Verdict::Accept { .. } | Verdict::Discard => return None,
    };
    match reply.code / 100 == 4 && tls_or_auth {
        true => Some(Reply::new(454, "4.3.0", "Try again later")),
        false => Some(reply),
    }
}

/// An SMTP command mailroom does not know (500) or implement (502), the whole line, for
/// the milters (`SMFIC_UNKNOWN`): a milter's 4xx replaces that reply. A 5xx does not:
/// Postfix keeps its own, since it cannot tell a milter's text from its library's generic
/// one. Not logged, as Postfix does not log it.
pub async fn unknown(session: &mut Session, line: &[u8]) -> Option<Reply> {
    if session.milters.is_empty() {
        return None;
    }
    let line = String::from_utf8_lossy(line);
    match session.milters.unknown(&line).await? {
        Verdict::Tempfail(text) => {
            let reply = reply_of(&text);
            if reply.code == 421 {
                session.milter_hangup = true;
            }
            Some(reply)
        }
        Verdict::Reject(_) | Verdict::Accept { .. } | Verdict::Discard => None,
    }
}

/// The end of a transaction (RSET, a new HELO, the end of the data, a refused MAIL):
/// `SMFIC_ABORT`, so the next message starts clean.
pub async fn end_transaction(session: &mut Session) {
    if session.tx.is_none() {
        session.milters.abort().await;
    }
}

/// The end of the session: `SMFIC_QUIT`.
pub async fn quit(session: &mut Session) {
    std::mem::take(&mut session.milters).quit().await;
}

/// Applies a stage's verdict: a discard marks the transaction (logged now), a refusal
/// is logged and returned.
fn refused(
    session: &mut Session,
    stage: &str,
    verdict: Verdict,
    from: Option<&str>,
    to: Option<&str>,
) -> Option<Reply> {
    match verdict {
        Verdict::Accept { .. } => None,
        Verdict::Discard => {
            let what = "milter triggers DISCARD action";
            log_stage(session, "milter-discard", stage, what, from, to);
            if let Some(tx) = session.tx.as_mut() {
                tx.actions.discard.get_or_insert_with(|| what.to_string());
            }
            None
        }
        Verdict::Reject(text) | Verdict::Tempfail(text) => {
            let reply = reply_of(&text);
            log_stage(session, "milter-reject", stage, &reply.summary(), from, to);
            telemetry::smtpd_rejected(reply.code);
            if reply.code == 421 {
                session.milter_hangup = true;
            }
            Some(reply)
        }
    }
}

/// `NOQUEUE: milter-reject: RCPT from unknown[ip]: 550 5.7.1 text; from=<a> to=<b>
/// proto=ESMTP helo=<h>` (each part only when known, as Postfix's smtpd writes it).
fn log_stage(
    session: &Session,
    action: &str,
    stage: &str,
    what: &str,
    from: Option<&str>,
    to: Option<&str>,
) {
    let queue = session
        .tx
        .as_ref()
        .and_then(|tx| tx.id)
        .map_or_else(|| "NOQUEUE".to_string(), |id| id.to_string());
    let mut line = format!(
        "{queue}: {action}: {stage} from {}: {what};",
        session.client.label()
    );
    if let Some(from) = from {
        line.push_str(&format!(" from=<{from}>"));
    }
    if let Some(to) = to {
        line.push_str(&format!(" to=<{to}>"));
    }
    line.push_str(&format!(" proto={}", session.protocol()));
    if let Some(helo) = &session.helo {
        line.push_str(&format!(" helo=<{helo}>"));
    }
    info!(target: "smtpd", "{}", maillog::sanitize(&line));
}

/// Runs the session's milters on the message at the end of the data; their changes are
/// applied to it.
pub async fn run(session: &mut Session, prepared: &mut Prepared, pass: bool) -> After {
    if session.milters.is_empty() || pass {
        return After::Queue { hold: None };
    }
    // The transaction has left the session by now: its ID and sender come from here.
    let values = [
        ("i", prepared.id.to_string()),
        ("{mail_addr}", prepared.envelope.sender.clone()),
    ];
    let context = context(session, &values);
    let recipients = prepared
        .envelope
        .recipients
        .iter()
        .map(|r| r.address.clone())
        .collect();
    let mut mail = Mail::new(&prepared.envelope.sender, recipients, &prepared.message);
    mail.sender_args = envelope_args(prepared);
    let decision = session.milters.message(&mut mail, &context).await;
    let stage = decision.stage;
    match decision.verdict {
        Verdict::Accept { hold } => {
            milter::mail::update_envelope(&mail, &mut prepared.envelope);
            prepared.message = mail.message();
            if prepared.envelope.recipients.is_empty() {
                let reply = Reply::multi(554, vec!["5.5.1 Error: no valid recipients".into()]);
                let what = format!("milter-reject: {}", status_and_text(&reply));
                log_line(session, prepared, stage, &what);
                return After::Refuse(reply);
            }
            if let Some(reason) = &hold {
                let what = format!("milter-hold: milter triggers HOLD action: {reason}");
                log_line(session, prepared, stage, &what);
            }
            After::Queue { hold }
        }
        Verdict::Discard => {
            let what = "milter-discard: milter triggers DISCARD action";
            log_line(session, prepared, stage, what);
            After::Discard
        }
        Verdict::Reject(text) | Verdict::Tempfail(text) => {
            let reply = reply_of(&text);
            let what = format!("milter-reject: {}", status_and_text(&reply));
            log_line(session, prepared, stage, &what);
            if reply.code == 421 {
                session.milter_hangup = true;
            }
            After::Refuse(reply)
        }
    }
}

/// `550 5.7.1 text` → the reply (its status is part of the text line).
fn reply_of(text: &str) -> Reply {
    let code = text.get(..3).and_then(|c| c.parse().ok()).unwrap_or(451);
    Reply::multi(code, vec![text.get(4..).unwrap_or("").to_string()])
}

/// `5.7.1 Spam message rejected`: Postfix logs the reply without its code.
fn status_and_text(reply: &Reply) -> String {
    let summary = reply.summary();
    summary.get(4..).unwrap_or(&summary).to_string()
}

/// `SMFIC_MAIL`'s arguments: `<sender>` as the client wrote it, then its parameters.
fn mail_args(sender: &str, params: &proto::params::MailParams) -> Vec<String> {
    let mut args = vec![format!("<{sender}>")];
    if let Some(size) = params.size {
        args.push(format!("SIZE={size}"));
    }
    match params.eight_bit {
        Some(true) => args.push("BODY=8BITMIME".into()),
        Some(false) => args.push("BODY=7BIT".into()),
        None => {}
    }
    if params.smtputf8 {
        args.push("SMTPUTF8".into());
    }
    if let Some(ret) = &params.ret {
        args.push(format!("RET={ret}"));
    }
    if let Some(envid) = &params.envid {
        args.push(format!("ENVID={envid}"));
    }
    args
}

fn envelope_args(prepared: &Prepared) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(ret) = &prepared.envelope.ret {
        args.push(format!("RET={ret}"));
    }
    if let Some(envid) = &prepared.envelope.envid {
        args.push(format!("ENVID={envid}"));
    }
    args
}

/// `ID: milter-reject: END-OF-MESSAGE from unknown[ip]: WHAT; from=<a> to=<b> proto=ESMTP helo=<h>`.
fn log_line(session: &Session, prepared: &Prepared, stage: &str, what: &str) {
    let (kind, rest) = what.split_once(": ").unwrap_or((what, ""));
    let to = prepared
        .envelope
        .recipients
        .first()
        .map_or("", |r| r.address.as_str());
    let line = format!(
        "{}: {kind}: {stage} from {}: {rest}; from=<{}> to=<{to}> proto={} helo=<{}>",
        prepared.id,
        session.client.label(),
        prepared.envelope.sender,
        session.protocol(),
        session.helo.as_deref().unwrap_or(""),
    );
    info!(target: "smtpd", "{}", maillog::sanitize(&line));
}

/// What the milters are told now: the client and Postfix's macros as far as they are
/// known (`i` once the transaction has a queue ID, `{mail_addr}` once there is a sender),
/// plus the stage's own (`{rcpt_addr}`).
fn context(session: &Session, extra: &[(&str, String)]) -> Context {
    let settings = &session.settings.milters;
    let client = &session.client;
    let mut macros = HashMap::new();
    let mut set = |name: &str, value: String| {
        macros.insert(name.to_string(), value);
    };
    set("j", session.settings.hostname.clone());
    set("{daemon_name}", settings.daemon_name.clone());
    set("v", settings.version.clone());
    set("_", format!("{} [{}]", client.name, client.ip));
    set("{client_addr}", client.ip.to_string());
    set("{client_name}", client.name.clone());
    set("{client_ptr}", client.name.clone());
    set("{mail_mailer}", "smtp".into());
    set("{rcpt_mailer}", "smtp".into());
    if let Some(tx) = &session.tx {
        set("{mail_addr}", tx.sender.clone());
        if let Some(id) = tx.id {
            set("i", id.to_string());
        }
    }
    if let Some((mechanism, user)) = &session.auth {
        set("{auth_type}", mechanism.name().to_string());
        set("{auth_authen}", user.clone());
    }
    if let Some(tls) = &session.tls {
        // `TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)`.
        let mut words = tls.split_whitespace();
        if let Some(version) = words.next() {
            set("{tls_version}", version.to_string());
        }
        if let Some(cipher) = words.nth(2) {
            set("{cipher}", cipher.to_string());
        }
    }
    for (name, value) in extra {
        set(name, value.clone());
    }
    Context {
        client_name: client.name.clone(),
        client_address: Some(client.ip),
        client_port: client.port,
        helo: session.helo.clone().unwrap_or_else(|| client.name.clone()),
        macros,
        names: settings.macros.clone(),
    }
}
