//! One message through one milter, stage by stage as Postfix sends them: connect, HELO,
//! MAIL, RCPT (each), DATA, headers, end of headers, body, end of message. Each answer
//! either lets the message go on, ends this milter's part (`accept`), or decides the
//! message (`reject`, `tempfail`, a reply code, `discard`). The end-of-message changes are
//! collected and handed back only with the milter's final accept/continue.

use std::collections::HashMap;

use crate::client::{Connection, MilterError};
use crate::codec::{protocol, Command, Family, Response, Stage, BODY_CHUNK};
use crate::mail::Mail;
use crate::spec::MilterSpec;
use crate::{Context, Verdict};

/// How a milter left a message.
#[derive(Debug)]
pub enum Outcome {
    /// Accepted (at any stage); `changes` come from the end of message.
    Accepted {
        changes: Vec<Response>,
        leading_space: bool,
    },
    /// Decided at `stage` (`CONNECT`, `RCPT`, `END-OF-MESSAGE` …).
    Decided(Verdict, &'static str),
}

pub(crate) enum Flow {
    Next,
    Done(Outcome),
}

/// Runs the whole conversation for `mail` and says goodbye.
pub async fn converse(
    spec: &MilterSpec,
    context: &Context,
    mail: &Mail,
) -> Result<Outcome, MilterError> {
    let mut connection = crate::client::open(spec).await?;
    let outcome = stages(&mut connection, context, mail).await;
    connection.quit().await;
    outcome
}

async fn stages(
    c: &mut Connection,
    context: &Context,
    mail: &Mail,
) -> Result<Outcome, MilterError> {
    let mut values = context.macros.clone();
    let family = family(context);
    let connect = Command::Connect {
        hostname: connect_hostname(context),
        family,
    };
    let steps = [
        (
            Stage::Connect,
            connect,
            protocol::NO_CONNECT,
            protocol::NR_CONNECT,
            "CONNECT",
        ),
        (
            Stage::Helo,
            Command::Helo(context.helo.clone()),
            protocol::NO_HELO,
            protocol::NR_HELO,
            "HELO",
        ),
    ];
    for (stage, command, skip, no_reply, name) in steps {
        if let Flow::Done(outcome) =
            step(c, context, &values, stage, command, (skip, no_reply), name).await?
        {
            return Ok(outcome);
        }
    }
    values.insert("{mail_addr}".into(), mail.sender.clone());
    let mut args = vec![format!("<{}>", mail.sender)];
    args.extend(mail.sender_args.iter().cloned());
    let flags = (protocol::NO_MAIL, protocol::NR_MAIL);
    if let Flow::Done(outcome) = step(
        c,
        context,
        &values,
        Stage::Mail,
        Command::Mail(args),
        flags,
        "MAIL",
    )
    .await?
    {
        return Ok(outcome);
    }
    for rcpt in &mail.recipients {
        values.insert("{rcpt_addr}".into(), rcpt.clone());
        let command = Command::Rcpt(vec![format!("<{rcpt}>")]);
        let flags = (protocol::NO_RCPT, protocol::NR_RCPT);
        if let Flow::Done(outcome) =
            step(c, context, &values, Stage::Rcpt, command, flags, "RCPT").await?
        {
            return Ok(outcome);
        }
    }
    values.remove("{rcpt_addr}");
    let flags = (protocol::NO_DATA, protocol::NR_DATA);
    if let Flow::Done(outcome) = step(
        c,
        context,
        &values,
        Stage::Data,
        Command::Data,
        flags,
        "DATA",
    )
    .await?
    {
        return Ok(outcome);
    }
    content(c, context, &values, mail).await
}

/// Headers, end of headers, body, end of message.
pub(crate) async fn content(
    c: &mut Connection,
    context: &Context,
    values: &HashMap<String, String>,
    mail: &Mail,
) -> Result<Outcome, MilterError> {
    let leading_space = c.skips(protocol::HEADER_LEADING_SPACE);
    if !c.skips(protocol::NO_HEADERS) {
        for header in &mail.headers {
            let (name, value) = Mail::header_fields(header, leading_space);
            let command = Command::Header { name, value };
            if let Flow::Done(outcome) =
                reply(c, command, protocol::NR_HEADER, "END-OF-MESSAGE", true).await?
            {
                return Ok(outcome);
            }
        }
    }
    let flags = (protocol::NO_EOH, protocol::NR_EOH);
    if let Flow::Done(outcome) = step(
        c,
        context,
        values,
        Stage::EndOfHeaders,
        Command::EndOfHeaders,
        flags,
        "END-OF-MESSAGE",
    )
    .await?
    {
        return Ok(outcome);
    }
    if !c.skips(protocol::NO_BODY) {
        let body = mail.body_crlf();
        for chunk in body.chunks(BODY_CHUNK) {
            match c.skips(protocol::NR_BODY) {
                true => c.send(&Command::Body(chunk.to_vec())).await?,
                false => match c.ask(&Command::Body(chunk.to_vec()), "body", true).await? {
                    Response::Skip => break,
                    other => {
                        if let Flow::Done(outcome) = judge(other, "END-OF-MESSAGE") {
                            return Ok(outcome);
                        }
                    }
                },
            }
        }
    }
    send_macros(c, context, values, Stage::EndOfMessage).await?;
    c.send(&Command::EndOfMessage).await?;
    end_of_message(c, leading_space).await
}

/// The end-of-message replies: changes, then one final answer.
async fn end_of_message(c: &mut Connection, leading_space: bool) -> Result<Outcome, MilterError> {
    let mut changes = Vec::new();
    loop {
        let answer = c.answer("end of message", true).await?;
        match answer {
            Response::Accept | Response::Continue => {
                return Ok(Outcome::Accepted {
                    changes,
                    leading_space,
                })
            }
            Response::Skip | Response::OptionNegotiation { .. } => {
                return Err(MilterError::Protocol(format!(
                    "unexpected end-of-message reply {answer:?}"
                )))
            }
            change @ (Response::AddHeader { .. }
            | Response::InsertHeader { .. }
            | Response::ChangeHeader { .. }
            | Response::ChangeFrom(..)
            | Response::AddRecipient(_)
            | Response::AddRecipientWithArgs(..)
            | Response::DeleteRecipient(_)
            | Response::ReplaceBody(_)
            | Response::Quarantine(_)) => changes.push(change),
            other => match judge(other, "END-OF-MESSAGE") {
                Flow::Done(outcome) => return Ok(outcome),
                Flow::Next => {
                    return Ok(Outcome::Accepted {
                        changes,
                        leading_space,
                    })
                }
            },
        }
    }
}

/// Macros, then the command (unless the milter skips it), then its reply (unless the
/// milter does not send one).
pub(crate) async fn step(
    c: &mut Connection,
    context: &Context,
    values: &HashMap<String, String>,
    stage: Stage,
    command: Command,
    (skip, no_reply): (u32, u32),
    name: &'static str,
) -> Result<Flow, MilterError> {
    if c.skips(skip) {
        return Ok(Flow::Next);
    }
    send_macros(c, context, values, stage).await?;
    let content = stage == Stage::EndOfHeaders;
    reply(c, command, no_reply, name, content).await
}

async fn reply(
    c: &mut Connection,
    command: Command,
    no_reply: u32,
    name: &'static str,
    content: bool,
) -> Result<Flow, MilterError> {
    if c.skips(no_reply) {
        c.send(&command).await?;
        return Ok(Flow::Next);
    }
    let answer = c.ask(&command, name, content).await?;
    Ok(judge(answer, name))
}

/// What an answer before the end of message means.
pub(crate) fn judge(answer: Response, stage: &'static str) -> Flow {
    let verdict = match answer {
        Response::Continue | Response::Skip => return Flow::Next,
        Response::Accept => {
            return Flow::Done(Outcome::Accepted {
                changes: Vec::new(),
                leading_space: false,
            })
        }
        Response::Reject => Verdict::Reject("550 5.7.1 Command rejected".into()),
        Response::Tempfail => {
            Verdict::Tempfail("451 4.7.1 Service unavailable - try again later".into())
        }
        Response::Discard => Verdict::Discard,
        // Postfix's smtpd answers it with a 421 and ends the session.
        Response::Shutdown => Verdict::Tempfail(crate::SHUTDOWN_REPLY.into()),
        Response::ReplyCode(text) => crate::reply_verdict(&text),
        // A change before the end of message is a protocol error; Postfix then applies
        // the default action, and so would we, but an unknown answer is simply ignored.
        _ => return Flow::Next,
    };
    Flow::Done(Outcome::Decided(verdict, stage))
}

async fn send_macros(
    c: &mut Connection,
    context: &Context,
    values: &HashMap<String, String>,
    stage: Stage,
) -> Result<(), MilterError> {
    let wanted = c
        .wanted_macros
        .iter()
        .find(|(s, _)| *s == stage)
        .map(|(_, names)| names.clone());
    let names: Vec<String> = match wanted {
        Some(names) => names.split_whitespace().map(String::from).collect(),
        None => context.names.for_stage(stage).to_vec(),
    };
    let pairs: Vec<(String, String)> = names
        .into_iter()
        .filter_map(|name| {
            let value = values
                .get(&name)
                .or_else(|| values.get(&format!("{{{name}}}")))?;
            Some((name, value.clone()))
        })
        .collect();
    if pairs.is_empty() {
        return Ok(());
    }
    c.send(&Command::Macros {
        stage: stage.command(),
        pairs,
    })
    .await
}

/// The client's address as `SMFIC_CONNECT` carries it: the family, the client's source
/// port and the address as Postfix sends them (an IPv6 address without the `IPv6:` prefix
/// of the Received header).
pub(crate) fn family(context: &Context) -> Family {
    match context.client_address {
        Some(std::net::IpAddr::V4(v4)) => Family::Inet4 {
            port: context.client_port,
            address: v4.to_string(),
        },
        Some(std::net::IpAddr::V6(v6)) => Family::Inet6 {
            port: context.client_port,
            address: v6.to_string(),
        },
        None => Family::Unknown,
    }
}

/// The host name `SMFIC_CONNECT` carries: a client without a name (`unknown`) is
/// `[address]`, the Sendmail form Postfix turns it into.
pub(crate) fn connect_hostname(context: &Context) -> String {
    match context.client_address {
        Some(address) if context.client_name == "unknown" => format!("[{address}]"),
        _ => context.client_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_carries_the_port_and_the_sendmail_form_of_an_unknown_name() {
        let mut context = Context {
            client_name: "unknown".into(),
            client_address: Some("2001:db8::1".parse().unwrap()),
            client_port: 40001,
            ..Context::default()
        };
        assert_eq!(
            family(&context),
            Family::Inet6 {
                port: 40001,
                address: "2001:db8::1".into()
            }
        );
        assert_eq!(connect_hostname(&context), "[2001:db8::1]");
        context.client_name = "mx.example".into();
        assert_eq!(connect_hostname(&context), "mx.example");
        context.client_address = None;
        context.client_name = "localhost".into();
        assert_eq!(family(&context), Family::Unknown);
    }
}
