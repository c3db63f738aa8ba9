//! What the driver and its sub-dialogues (STARTTLS in `tls.rs`, AUTH in `auth.rs`) share:
//! how a session ends, what it needs besides its own state, and how a reply is sent. Its own
//! module so the driver can call the sub-dialogues without them importing the driver back.

use std::path::PathBuf;

use tokio::sync::watch;

use crate::conn::{Conn, ReadEnd};
use crate::intake::Intake;
use crate::session::{Session, Storage};
use proto::reply::Reply;

/// Why a session ended.
#[derive(Debug)]
pub enum End {
    Quit,
    Lost,
    Timeout,
    TooManyErrors,
    Shutdown,
    /// A bare LF or CR in a command under `reject`: 550 sent, then close (as Postfix does).
    BareNewline,
    /// The TLS handshake failed; the connection is unusable.
    TlsFailed,
    /// `smtpd_forbid_unauth_pipelining`: 554 sent, then close.
    Pipelining,
    /// The slot went to a new client while this one stalled.
    Evicted,
}

impl From<ReadEnd> for End {
    fn from(end: ReadEnd) -> End {
        match end {
            ReadEnd::Lost => End::Lost,
            ReadEnd::Timeout => End::Timeout,
            ReadEnd::Shutdown => End::Shutdown,
            ReadEnd::Evicted => End::Evicted,
        }
    }
}

/// Everything one session needs besides its own state.
pub struct Env<'a> {
    pub intake: &'a Intake,
    pub storage: &'a (dyn Storage + Sync),
    pub stop: watch::Receiver<bool>,
    /// `smtpd_sasl_password_file`.
    pub password_file: PathBuf,
    /// This client's per-time-unit event limits (`anvil.rs`).
    pub anvil: crate::anvil::ClientEvents,
}

/// Queues a reply, slowed down once the client passed the soft error limit, and counts it.
pub async fn send(conn: &mut Conn, session: &mut Session, reply: Reply) {
    if session.slow_down() {
        conn.flush().await.ok();
        tokio::time::sleep(session.settings.error_sleep).await;
    }
    session.note_reply(&reply);
    conn.reply(&reply);
}
