//! The connection driver: runs one [`Session`] over one [`Conn`] — reads command lines,
//! applies `smtpd_forbid_bare_newline` to them, parses, does what the session's [`Action`]
//! says (replies, DATA, BDAT, STARTTLS, AUTH), and writes the Postfix-style log lines
//! (`connect from`, `lost connection after`, `timeout after`, `disconnect from`).
//!
//! Limits enforced here: the hard error limit (421 4.7.0 and close), the soft one (every
//! reply slowed by `smtpd_error_sleep_time`), the idle timeout (421 4.4.2 and close, via
//! [`Conn`]), and the daemon stop (421 4.3.2 at the next command; a DATA or BDAT in progress
//! is read to its end and queued or refused first, so no acknowledged mail is lost).

use tracing::info;

use crate::auth;
use crate::checks;
use crate::conn::{Conn, Line};
use crate::exchange::{send, End, Env};
use crate::intake;
use crate::session::{upper_verb, Action, ChunkEnd, Session, Transaction};
use crate::tls;
use proto::command;
use proto::data::{BareNewline, DataError};
use proto::reply::{fixed, Reply};

/// Runs a session to its end and logs it.
pub async fn run(mut conn: Conn, mut session: Session, mut env: Env<'_>) {
    let label = session.client.label().to_string();
    info!(target: "smtpd", "connect from {label}");
    telemetry::get().smtpd_connects.inc();
    let end = if session.settings.forbid_unauth_pipelining && out_of_turn(&mut conn, &session) {
        End::Pipelining
    } else {
        // Postfix: the milters hear of the client before it hears the greeting.
        match crate::milters::connect(&mut session).await {
            Some((reply, true)) => {
                conn.reply(&reply);
                End::Quit
            }
            greeting => {
                let greeting = greeting.map_or_else(|| session.greeting(), |(reply, _)| reply);
                conn.reply(&greeting);
                match command_loop(&mut conn, &mut session, &mut env).await {
                    Ok(()) => End::Quit,
                    Err(end) => end,
                }
            }
        }
    };
    crate::milters::quit(&mut session).await;
    let host = session.settings.hostname.clone();
    let verb = session.last_verb;
    match end {
        End::Quit | End::BareNewline | End::TlsFailed => {}
        End::Pipelining => conn.reply(&fixed::pipelining_violation()),
        End::Evicted => {
            conn.reply(&fixed::timeout(&host));
            info!(target: "smtpd", "stalled after {verb} from {label}: slot given to a new client under stress");
        }
        End::Lost => info!(target: "smtpd", "lost connection after {verb} from {label}"),
        End::Timeout => {
            conn.reply(&fixed::timeout(&host));
            info!(target: "smtpd", "timeout after {verb} from {label}");
        }
        End::TooManyErrors => {
            conn.reply(&fixed::too_many_errors(&host));
            info!(target: "smtpd", "too many errors after {verb} from {label}");
        }
        End::Shutdown => conn.reply(&fixed::shutting_down(&host)),
    }
    conn.close().await;
    info!(target: "smtpd", "disconnect from {label}{}", session.stats.summary());
    telemetry::get().smtpd_disconnects.inc();
}

async fn command_loop(
    conn: &mut Conn,
    session: &mut Session,
    env: &mut Env<'_>,
) -> Result<(), End> {
    loop {
        // A transaction that ended (RSET, end of data, a refusal) ends for the milters too.
        crate::milters::end_transaction(session).await;
        if session.milter_hangup {
            return Ok(());
        }
        if session.too_many_errors() {
            return Err(End::TooManyErrors);
        }
        if *env.stop.borrow() {
            return Err(End::Shutdown);
        }
        let Some(text) = next_command_line(conn, session, env).await? else {
            continue;
        };
        let command = match command::parse(&text) {
            Ok(command) => command,
            Err(error) => {
                session.last_verb = upper_verb(error.verb);
                session.stats.record(error.verb, false);
                let mut reply = error.reply;
                if reply.code == 500 {
                    reply = crate::milters::unknown(session, &text)
                        .await
                        .unwrap_or(reply);
                }
                send(conn, session, reply).await;
                continue;
            }
        };
        let verb = command.verb();
        session.last_verb = upper_verb(verb);
        if session.must_end_group(&command) && out_of_turn(conn, session) {
            return Err(End::Pipelining);
        }
        if let Some(reply) = crate::anvil::session_check(session, &env.anvil, &command) {
            session.stats.record(verb, false);
            send(conn, session, reply).await;
            continue;
        }
        if let Some(reply) = milter_standing(session, &command) {
            session.stats.record(verb, false);
            send(conn, session, reply).await;
            continue;
        }
        let not_implemented = matches!(command, command::Command::NotImplemented(_));
        match session.handle(command, env.storage) {
            Action::Reply(reply) => {
                let reply = match verb {
                    "mail" => checks::mail_and_milters(conn, session, reply).await,
                    _ if not_implemented => crate::milters::unknown(session, &text)
                        .await
                        .unwrap_or(reply),
                    "helo" | "ehlo" if reply.is_positive() => {
                        if let Some(reply) = crate::milters::helo(session).await {
                            session.stats.record(verb, false);
                            send(conn, session, reply).await;
                            return Ok(());
                        }
                        reply
                    }
                    _ => reply,
                };
                session.stats.record(verb, reply.is_positive());
                send(conn, session, reply).await;
            }
            Action::Rcpt(pending) => {
                let reply = checks::rcpt(conn, session, *pending).await;
                session.stats.record(verb, reply.is_positive());
                send(conn, session, reply).await;
            }
            Action::RcptAccepted(accepted) => {
                let reply = match crate::milters::rcpt(session, &accepted).await {
                    Some(refusal) => refusal,
                    None => session.accept_rcpt(*accepted),
                };
                session.stats.record(verb, reply.is_positive());
                send(conn, session, reply).await;
            }
            Action::Close(reply) => {
                session.stats.record(verb, true);
                send(conn, session, reply).await;
                return Ok(());
            }
            Action::StartTls => tls::starttls(conn, session, env).await?,
            Action::Data => data(conn, session, env).await?,
            Action::Bdat {
                size,
                last,
                refusal,
                first,
            } => {
                // The first chunk is where DATA would be: smtpd_data_restrictions.
                let refusal = match (refusal, first) {
                    (None, true) => checks::data_and_milters(conn, session, false).await,
                    (refusal, _) => refusal,
                };
                bdat(conn, session, env, size, last, refusal).await?
            }
            Action::Auth { mechanism, initial } => {
                auth::run(conn, session, env, mechanism, initial).await?
            }
        }
    }
}

/// STARTTLS, AUTH and VRFY after a milter refused the connection or the HELO: that
/// refusal (Postfix answers them with it too; a 4xx is 454 for STARTTLS and AUTH).
fn milter_standing(session: &Session, command: &command::Command) -> Option<Reply> {
    use command::Command::{Auth, StartTls, Vrfy};
    match command {
        StartTls | Auth { .. } => crate::milters::standing(session, true),
        Vrfy(_) => crate::milters::standing(session, false),
        _ => None,
    }
}

/// `smtpd_forbid_unauth_pipelining`: the client sent more than it may before our reply
/// (or before the greeting). Logs Postfix's line with the first 100 bytes it sent.
fn out_of_turn(conn: &mut Conn, session: &Session) -> bool {
    if !conn.has_pending_input() {
        return false;
    }
    let pending = conn.buffered();
    let shown = String::from_utf8_lossy(&pending[..pending.len().min(100)]);
    info!(target: "smtpd", "improper command pipelining after {} from {}: {}", session.last_verb, session.client.label(), maillog::sanitize(&shown));
    true
}

/// Reads one command line; `None` when the line was answered already (too long, NUL).
async fn next_command_line(
    conn: &mut Conn,
    session: &mut Session,
    env: &mut Env<'_>,
) -> Result<Option<Vec<u8>>, End> {
    let line = conn.read_line(&mut env.stop).await?;
    session.last_verb = "UNKNOWN";
    let (text, bare_lf, bare_cr, nul) = match line {
        Line::TooLong => {
            session.stats.record("unknown", false);
            send(conn, session, fixed::line_too_long()).await;
            return Ok(None);
        }
        Line::Text {
            text,
            bare_lf,
            bare_cr,
            nul,
        } => (text, bare_lf, bare_cr, nul),
    };
    if nul {
        session.stats.record("unknown", false);
        send(conn, session, fixed::nul_in_command()).await;
        return Ok(None);
    }
    if session.settings.bare_newline == BareNewline::Reject && (bare_lf || bare_cr) {
        let what = if bare_lf { "LF" } else { "CR" };
        session.stats.record("unknown", false);
        send(conn, session, fixed::bare_newline(what)).await;
        info!(target: "smtpd", "disconnect: bare <{what}> received from {}", session.client.label());
        return Err(End::BareNewline);
    }
    Ok(Some(text))
}

/// DATA: 354, the message through a dot-mode decoder, then queue or refuse it.
async fn data(conn: &mut Conn, session: &mut Session, env: &mut Env<'_>) -> Result<(), End> {
    if let Some(refusal) = checks::data_and_milters(conn, session, true).await {
        session.stats.record("data", false);
        send(conn, session, refusal).await;
        return Ok(());
    }
    send(conn, session, fixed::start_data()).await;
    let mut decoder = session.data_decoder();
    conn.read_until_end(|bytes| decoder.feed(bytes)).await?;
    let reply = match session.take_transaction() {
        Some(tx) => finish(session, env, tx, decoder.finish()).await,
        None => fixed::need_mail(),
    };
    session.stats.record("data", reply.is_positive());
    send(conn, session, reply).await;
    Ok(())
}

/// BDAT: read the chunk (always), then answer it or, after LAST, queue the message.
async fn bdat(
    conn: &mut Conn,
    session: &mut Session,
    env: &mut Env<'_>,
    size: u64,
    last: bool,
    refusal: Option<Reply>,
) -> Result<(), End> {
    let accepted = refusal.is_none();
    conn.read_exact_into(size, |bytes| {
        if let Some(decoder) = session.chunk_sink().filter(|_| accepted) {
            decoder.feed(bytes);
        }
    })
    .await?;
    let reply = match session.end_chunk(size, last, refusal) {
        ChunkEnd::Reply(reply) => reply,
        ChunkEnd::Message(tx, decoded) => finish(session, env, *tx, decoded).await,
    };
    session.stats.record("bdat", reply.is_positive());
    send(conn, session, reply).await;
    Ok(())
}

/// The end of a message: checks, then the durable enqueue; the reply says which.
async fn finish(
    session: &mut Session,
    env: &Env<'_>,
    mut tx: Transaction,
    decoded: Result<Vec<u8>, DataError>,
) -> Reply {
    if let Ok(body) = &decoded {
        if let Some(refusal) = checks::end_of_data(session, &mut tx, body.len()).await {
            return refusal;
        }
    }
    let reply = intake::finish(env.intake, session, tx, decoded).await;
    if reply.is_positive() {
        // Postfix: the error limits count errors "without delivering mail".
        session.delivered();
    }
    reply
}
