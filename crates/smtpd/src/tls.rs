//! STARTTLS (RFC 3207) on our side of the wire: load the server configuration once (the
//! `security` crate decides certificates, versions and ciphers: TLS 1.2+ only), and upgrade
//! a session in place.
//!
//! Security stance: the plaintext the client pipelined after STARTTLS is discarded, never
//! read as commands inside TLS (CVE-2011-0411); after the handshake the session forgets its
//! greeting, transaction and authentication (RFC 3207 section 4.2). A failed handshake ends
//! the connection (nothing sensible can be said on a half-negotiated stream) and is logged.

use tokio_rustls::rustls::{HandshakeKind, ServerConnection};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::conn::Conn;
use crate::exchange::{send, End, Env};
use crate::session::Session;
use crate::SmtpdSettings;
use proto::reply::fixed;

/// The STARTTLS acceptor, or `None` (with a warning) when TLS is off or cannot be set up;
/// then STARTTLS is simply not offered.
pub fn acceptor(settings: &SmtpdSettings) -> Option<TlsAcceptor> {
    if settings.tls_level == config::TlsLevel::None {
        return None;
    }
    match security::tls::server_config(&settings.tls) {
        Ok(server) => Some(TlsAcceptor::from(server)),
        Err(e) => {
            warn!(target: "smtpd", "TLS unavailable, STARTTLS will not be offered: {e}");
            None
        }
    }
}

/// The acceptor for a reload: `None` when TLS is off, an error (the caller keeps the old
/// acceptor) when the certificates cannot be loaded.
pub fn reloaded_acceptor(settings: &SmtpdSettings) -> Result<Option<TlsAcceptor>, String> {
    if !settings.wants_tls() || settings.tls_level == config::TlsLevel::None {
        return Ok(None);
    }
    match security::tls::server_config(&settings.tls) {
        Ok(server) => Ok(Some(TlsAcceptor::from(server))),
        Err(e) => Err(e.to_string()),
    }
}

/// `TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384`, for the log and the Received: header.
fn describe(connection: &ServerConnection) -> String {
    let version = match connection.protocol_version() {
        Some(v) => format!("{v:?}").replace("TLSv1_", "TLSv1."),
        None => "TLS".to_string(),
    };
    match connection.negotiated_cipher_suite() {
        Some(suite) => format!("{version} with cipher {:?}", suite.suite()),
        None => version,
    }
}

/// Sends 220, then runs the handshake with the `smtpd_timeout` bound.
pub async fn starttls(
    conn: &mut Conn,
    session: &mut Session,
    env: &mut Env<'_>,
) -> Result<(), End> {
    let Some(acceptor) = env.intake.tls() else {
        session.stats.record("starttls", false);
        send(conn, session, fixed::tls_unavailable()).await;
        return Ok(());
    };
    if let Some(reply) = crate::anvil::starttls_check(session, &env.anvil) {
        session.stats.record("starttls", false);
        send(conn, session, reply).await;
        return Ok(());
    }
    session.stats.record("starttls", true);
    send(conn, session, fixed::start_tls()).await;
    conn.flush().await?;
    let label = session.client.label();
    let injected = conn.discard_input();
    if injected > 0 {
        warn!(target: "smtpd", "{label}: {injected} bytes pipelined after STARTTLS discarded");
    }
    let tcp = conn.take_plain().ok_or(End::Lost)?;
    let handshake = tokio::time::timeout(conn.timeout(), acceptor.accept(tcp)).await;
    match handshake {
        Ok(Ok(stream)) => {
            let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
            let description = describe(stream.get_ref().1);
            info!(target: "smtpd", "Anonymous TLS connection established from {label}: {description}");
            conn.set_tls(stream);
            session.tls_started(description);
            match crate::anvil::new_tls_session(session, &env.anvil, resumed) {
                Some(reply) => {
                    send(conn, session, reply).await;
                    Err(End::TlsFailed)
                }
                None => Ok(()),
            }
        }
        Ok(Err(e)) => {
            warn!(target: "smtpd", "TLS handshake failed from {label}: {e}");
            info!(target: "smtpd", "lost connection after STARTTLS from {label}");
            Err(End::TlsFailed)
        }
        Err(_) => Err(End::Timeout),
    }
}
