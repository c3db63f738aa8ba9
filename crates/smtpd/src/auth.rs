//! SMTP AUTH (RFC 4954) on the wire: runs the SASL exchange of `sasl.rs` over the
//! connection and checks the password against `smtpd_sasl_password_file` (argon2 hashes,
//! through the `security` crate, on the few checker threads of `auth_guard.rs`, which bound
//! the CPU and memory that guessing can take).
//!
//! The file is read at each attempt, so `mailroom passwd add|del` takes effect without a
//! reload. A failed attempt is answered `535 5.7.8` only after `smtpd_error_sleep_time`, and
//! counts as a client error, so guessing is slow and soon ends the session (hard limit).
//! Past `smtpd_client_auth_failure_limit` failures per `anvil_rate_time_unit`, AUTH from that
//! client IP gets `450 4.7.1` with no check, and so does (`454 4.7.0`) a user name that many
//! clients guess at.
//!
//! Each failure is logged as Postfix logs it, the line fail2ban's `postfix-sasl` filter
//! matches, and never folded into "repeated N times" (fail2ban counts the lines):
//! `warning: unknown[192.0.2.1]: SASL PLAIN authentication failed: authentication failure,
//! sasl_username=bob`. Passwords are never logged; user names are, escaped.

use std::path::PathBuf;

use security::passwd::PasswordFile;
use tracing::{info, warn};

use crate::auth_guard::Busy;
use crate::conn::{Conn, Line};
use crate::exchange::{send, End, Env};
use crate::sasl::{Credentials, Exchange, Mechanism, SaslError, Step};
use crate::session::Session;
use crate::stress::Presence;
use proto::reply::{fixed, Reply};

/// Runs one AUTH command to its reply.
pub async fn run(
    conn: &mut Conn,
    session: &mut Session,
    env: &mut Env<'_>,
    mechanism: Mechanism,
    initial: Option<String>,
) -> Result<(), End> {
    let reply = match client_over_limit(session, env) {
        Some(reply) => reply,
        None => exchange(conn, session, env, mechanism, initial).await?,
    };
    session.stats.record("auth", reply.is_positive());
    send(conn, session, reply).await;
    Ok(())
}

/// `450 4.7.1` when this client IP failed too often in the current window.
fn client_over_limit(session: &Session, env: &Env<'_>) -> Option<Reply> {
    let s = &session.settings;
    let failures = env
        .intake
        .auth
        .ip_failures(env.anvil.key(session.client.ip), s.auth_failure_window);
    if s.auth_failure_limit == 0 || failures < s.auth_failure_limit {
        return None;
    }
    let label = session.client.label();
    warn!(target: "smtpd", "AUTH failure limit exceeded: {failures} from {label} for service {}", s.role.name());
    Some(fixed::too_many_auth_failures(
        &session.client.ip.to_string(),
    ))
}

async fn exchange(
    conn: &mut Conn,
    session: &mut Session,
    env: &mut Env<'_>,
    mechanism: Mechanism,
    initial: Option<String>,
) -> Result<Reply, End> {
    let (mut exchange, mut step) = Exchange::start(mechanism, initial.as_deref());
    loop {
        match step {
            Step::Challenge(challenge) => {
                conn.reply(&Reply::multi(334, vec![challenge.to_string()]));
                let line = match conn.read_line(&mut env.stop).await? {
                    Line::Text {
                        text,
                        nul: false,
                        bare_cr: false,
                        ..
                    } => String::from_utf8(text).ok(),
                    _ => None,
                };
                step = match line {
                    Some(line) => exchange.respond(&line),
                    None => Step::Failed(SaslError::Malformed),
                };
            }
            Step::Failed(SaslError::Aborted) => return Ok(fixed::auth_aborted()),
            Step::Failed(SaslError::Malformed) => return Ok(fixed::auth_bad_response()),
            Step::Done(credentials) => {
                let presence = conn.presence();
                return checked(session, env, mechanism, credentials, &presence).await;
            }
        }
    }
}

/// [`check`], unless the session is evicted meanwhile: under stress a session waiting for
/// a password checker is the first to give its slot to a new client.
async fn checked(
    session: &mut Session,
    env: &Env<'_>,
    mechanism: Mechanism,
    credentials: Credentials,
    presence: &Presence,
) -> Result<Reply, End> {
    if session.settings.stress.get() {
        presence.begin_server_wait();
    }
    let reply = tokio::select! {
        reply = check(session, env, mechanism, credentials) => Ok(reply),
        _ = presence.evicted() => Err(End::Evicted),
    };
    presence.end_wait();
    reply
}

async fn check(
    session: &mut Session,
    env: &Env<'_>,
    mechanism: Mechanism,
    credentials: Credentials,
) -> Reply {
    let guard = &env.intake.auth;
    let window = session.settings.auth_failure_window;
    let limit = session.settings.auth_failure_limit;
    let user = credentials.user.clone();
    if limit > 0 && guard.user_failures(&user, window) >= limit {
        failed(
            session,
            mechanism,
            &user,
            "too many recent failures for this user",
        );
        guard.failed(env.anvil.key(session.client.ip), None, window);
        return fixed::auth_unavailable();
    }
    let path = env.password_file.clone();
    let wait = if session.settings.stress.get() {
        crate::auth_guard::VERIFY_WAIT_UNDER_STRESS
    } else {
        crate::auth_guard::VERIFY_WAIT
    };
    let verdict = guard.verify(wait, move || verify(path, &credentials)).await;
    let label = session.client.label();
    match verdict {
        Ok(Ok(true)) => {
            let shown = maillog::sanitize(&user);
            info!(target: "smtpd", "{label}: sasl_method={}, sasl_username={shown}", mechanism.name());
            session.authenticated(mechanism, user);
            fixed::auth_ok()
        }
        Ok(Ok(false)) => {
            failed(session, mechanism, &user, "authentication failure");
            guard.failed(env.anvil.key(session.client.ip), Some(&user), window);
            tokio::time::sleep(session.settings.error_sleep).await;
            fixed::auth_failed()
        }
        Ok(Err(e)) => {
            warn!(target: "smtpd", "cannot read smtpd_sasl_password_file: {e}");
            fixed::auth_unavailable()
        }
        Err(Busy::Timeout) => {
            warn!(target: "smtpd", "{label}: SASL {} authentication deferred: every password checker busy for {} ms", mechanism.name(), wait.as_millis());
            fixed::auth_unavailable()
        }
        Err(Busy::Gone) => {
            warn!(target: "smtpd", "{label}: password check failed unexpectedly");
            fixed::auth_unavailable()
        }
    }
}

/// Postfix's failure line, written every time (`audit`: fail2ban counts these lines).
fn failed(session: &Session, mechanism: Mechanism, user: &str, reason: &str) {
    let label = session.client.label();
    let shown = maillog::sanitize(user);
    warn!(target: "smtpd", audit = true, "{label}: SASL {} authentication failed: {reason}, sasl_username={shown}", mechanism.name());
}

fn verify(path: PathBuf, credentials: &Credentials) -> Result<bool, security::passwd::PasswdError> {
    let file = PasswordFile::load(&path)?;
    Ok(file.verify(&credentials.user, &credentials.password))
}
