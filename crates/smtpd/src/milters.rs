//! `smtpd_milters` at the end of DATA: the message, its client and its envelope go to each
//! milter (crate `milter`), and the verdict decides what the client hears. Refusals,
//! discards and holds are logged as Postfix logs them (`ID: milter-reject: END-OF-MESSAGE
//! from unknown[192.0.2.1]: 5.7.1 Spam message rejected; from=<a> to=<b> proto=ESMTP
//! helo=<h>`), so log readers count them.

use std::collections::HashMap;

use milter::{Context, Mail, Verdict};
use tracing::info;

use crate::message::Prepared;
use crate::session::Session;
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

/// Runs the session's milters on `prepared`; their changes are applied to it.
pub async fn run(session: &Session, prepared: &mut Prepared, pass: bool) -> After {
    let settings = &session.settings.milters;
    if settings.smtpd.is_empty() || pass {
        return After::Queue { hold: None };
    }
    let context = context(session, prepared);
    let recipients = prepared
        .envelope
        .recipients
        .iter()
        .map(|r| r.address.clone())
        .collect();
    let mut mail = Mail::new(&prepared.envelope.sender, recipients, &prepared.message);
    mail.sender_args = session_mail_args(prepared);
    let decision = milter::run(&settings.smtpd, &context, &mut mail).await;
    let stage = decision.stage;
    match decision.verdict {
        Verdict::Accept { hold } => {
            milter::mail::update_envelope(&mail, &mut prepared.envelope);
            prepared.message = mail.message();
            if prepared.envelope.recipients.is_empty() {
                let reply = Reply::multi(554, vec!["5.5.1 Error: no valid recipients".into()]);
                log_line(
                    session,
                    prepared,
                    stage,
                    &format!("milter-reject: {}", status_and_text(&reply)),
                );
                return After::Refuse(reply);
            }
            if let Some(reason) = &hold {
                let what = format!("milter-hold: milter triggers HOLD action: {reason}");
                log_line(session, prepared, stage, &what);
            }
            After::Queue { hold }
        }
        Verdict::Discard => {
            log_line(
                session,
                prepared,
                stage,
                "milter-discard: milter triggers DISCARD action",
            );
            After::Discard
        }
        Verdict::Reject(text) | Verdict::Tempfail(text) => {
            let reply = reply_of(&text);
            log_line(
                session,
                prepared,
                stage,
                &format!("milter-reject: {}", status_and_text(&reply)),
            );
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

fn session_mail_args(prepared: &Prepared) -> Vec<String> {
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

/// What the milters are told: the client and Postfix's macros.
fn context(session: &Session, prepared: &Prepared) -> Context {
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
    set("i", prepared.id.to_string());
    set("{mail_mailer}", "smtp".into());
    set("{rcpt_mailer}", "smtp".into());
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
    Context {
        client_name: client.name.clone(),
        client_address: Some(client.ip),
        client_port: 0,
        helo: session.helo.clone().unwrap_or_else(|| client.name.clone()),
        macros,
        names: settings.macros.clone(),
    }
}
