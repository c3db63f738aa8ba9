//! SMTP AUTH (RFC 4954) on the wire: runs the SASL exchange of `sasl.rs` over the
//! connection and checks the password against `smtpd_sasl_password_file` (argon2 hashes,
//! through the `security` crate, on the blocking pool: a verification costs milliseconds of
//! CPU and must not stall other sessions).
//!
//! The file is read at each attempt, so `mailroom passwd add|del` takes effect without a
//! reload. A failed attempt is answered `535 5.7.8` only after `smtpd_error_sleep_time`, and
//! counts as a client error, so guessing is slow and soon ends the session (hard limit).
//! Passwords are never logged; user names are, escaped.

use std::path::PathBuf;

use security::passwd::PasswordFile;
use tracing::{info, warn};

use crate::conn::{Conn, Line};
use crate::driver::{send, End, Env};
use crate::reply::{fixed, Reply};
use crate::sasl::{Credentials, Exchange, Mechanism, SaslError, Step};
use crate::session::Session;

/// Runs one AUTH command to its reply.
pub async fn run(
    conn: &mut Conn,
    session: &mut Session,
    env: &mut Env<'_>,
    mechanism: Mechanism,
    initial: Option<String>,
) -> Result<(), End> {
    let (mut exchange, mut step) = Exchange::start(mechanism, initial.as_deref());
    let reply = loop {
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
            Step::Failed(SaslError::Aborted) => break fixed::auth_aborted(),
            Step::Failed(SaslError::Malformed) => break fixed::auth_bad_response(),
            Step::Done(credentials) => break check(session, env, mechanism, credentials).await,
        }
    };
    session.stats.record("auth", reply.is_positive());
    send(conn, session, reply).await;
    Ok(())
}

async fn check(
    session: &mut Session,
    env: &Env<'_>,
    mechanism: Mechanism,
    credentials: Credentials,
) -> Reply {
    let path = env.password_file.clone();
    let user = credentials.user.clone();
    let verdict = tokio::task::spawn_blocking(move || verify(path, &credentials)).await;
    let label = session.client.label();
    let shown = maillog::sanitize(&user);
    match verdict {
        Ok(Ok(true)) => {
            info!(target: "smtpd", "{label}: sasl_method={}, sasl_username={shown}", mechanism.name());
            session.authenticated(mechanism, user);
            fixed::auth_ok()
        }
        Ok(Ok(false)) => {
            warn!(target: "smtpd", "{label}: SASL {} authentication failed: user {shown}", mechanism.name());
            tokio::time::sleep(session.settings.error_sleep).await;
            fixed::auth_failed()
        }
        Ok(Err(e)) => {
            warn!(target: "smtpd", "cannot read smtpd_sasl_password_file: {e}");
            fixed::auth_unavailable()
        }
        Err(e) => {
            warn!(target: "smtpd", "password check failed: {e}");
            fixed::auth_unavailable()
        }
    }
}

fn verify(path: PathBuf, credentials: &Credentials) -> Result<bool, security::passwd::PasswdError> {
    let file = PasswordFile::load(&path)?;
    Ok(file.verify(&credentials.user, &credentials.password))
}
