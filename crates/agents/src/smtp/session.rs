//! Opening an SMTP session with one server address: TCP connect, greeting, EHLO (HELO when
//! EHLO is refused), STARTTLS per the destination's TLS policy, EHLO again over TLS, then
//! AUTH when `smtp_sasl_auth_enable` is on and the server offers it.
//!
//! States (each step either advances or ends with a [`HostFailure`]):
//! ```text
//! connect ─► greeting 2xx ─► EHLO 2xx ─┬─ STARTTLS offered & level ≥ may ─► 220 ─► handshake ─► EHLO ─► AUTH? ─► ready
//!                            │ non-2xx  │                                   │ refused: may → plain, else 4.7.5
//!                            ▼ (≠421)   │                                   │ bad certificate at verify/secure → 4.7.5
//!                         HELO 2xx ─────┴─ no STARTTLS: may → plain, encrypt and above → 4.7.4
//! ```
//! At `dane`/`dane-only` the host's own policy comes first ([`dane::host_policy`]: its TLSA
//! records, or the fallback level, or a deferral before any connection).
//! LMTP (RFC 2033, [`Dialect::Lmtp`]): greeting, then LHLO; a refused LHLO ends the session
//! (there is no HELO to fall back to) and STARTTLS is never tried.
//!
//! Inputs → outputs: a [`Peer`] → a ready [`Connection`] (capabilities known) or a
//! [`HostFailure`] saying what to report and whether to try this host again without TLS.
//! Invariants: at `encrypt`, `verify` and `secure` no MAIL (and no password) is ever sent in
//! plaintext, and a certificate that fails verification is never retried without TLS; at
//! `may` a failed handshake is retried once over a new plaintext connection (Postfix:
//! "Otherwise we would defer mail forever with destinations that have no alternate MX
//! host"); every failure here is a deferral, so the caller may try the next MX host.
//! Security stance: `may` and `encrypt` verify no certificate (like Postfix's levels of the
//! same names): they protect against passive eavesdropping only; `verify` trusts the MX name
//! DNS gave, `secure` only names derived from the nexthop (see `tls.rs`).

use std::io;

use envelope::Nexthop;

use super::conn::{ConnError, ConnectError, Connection, Endpoint, Peer};
use super::dane::{self, Dane};
use super::failure::{soften, Failure, Phase};
use super::maps::TextMap;
use super::policy::TlsPolicy;
use super::reply::{Capabilities, Reply};
use super::sasl;
use super::settings::{Dialect, SmtpSettings, SmtpTlsLevel};
use super::tls::{TlsContext, Trust};

/// Why a server address could not be used.
#[derive(Debug)]
pub(crate) struct HostFailure {
    pub failure: Failure,
    /// `none` when no TCP connection was made, else `host[ip]:port`.
    pub relay: String,
    /// The TLS handshake failed at level `may`: try the same address once more, in plaintext.
    pub retry_plain: bool,
}

/// What opening a session needs: the client's settings and TLS trust anchors, and this
/// delivery's destination, TLS policy, password table and sender.
pub(crate) struct Opener<'a> {
    pub settings: &'a SmtpSettings,
    pub tls: &'a TlsContext,
    pub policy: &'a TlsPolicy,
    /// The destination (`None` for an LMTP socket).
    pub nexthop: Option<&'a Nexthop>,
    /// `smtp_sasl_password_maps` when `smtp_sasl_auth_enable` is on.
    pub passwords: Option<&'a TextMap>,
    pub sender: &'a str,
    /// At a DANE level: how to find the host's TLSA records (`dane.rs`).
    pub dane: Option<Dane<'a>>,
}

impl Opener<'_> {
    /// Connects to `peer` and runs the handshake; `allow_tls = false` skips STARTTLS. At a
    /// DANE level the host's own policy is resolved first (a dane-only host without usable
    /// TLSA records, or a TLSA lookup error, fails here, before any connection).
    pub async fn open(&self, peer: Peer, allow_tls: bool) -> Result<Connection, HostFailure> {
        let Some(dane) = self.dane.filter(|_| self.policy.level.is_dane()) else {
            return self.open_resolved(peer, allow_tls).await;
        };
        let port = match &peer.addr {
            Endpoint::Tcp(addr) => addr.port(),
            Endpoint::Unix(_) => self.settings.default_port,
        };
        let policy = dane::host_policy(dane.dns, self.policy, dane.mx_secure, &peer.host, port)
            .await
            .map_err(|failure| HostFailure {
                failure,
                relay: "none".to_string(),
                retry_plain: false,
            })?;
        let resolved = Opener {
            policy: &policy,
            dane: None,
            ..*self
        };
        resolved.open_resolved(peer, allow_tls).await
    }

    async fn open_resolved(&self, peer: Peer, allow_tls: bool) -> Result<Connection, HostFailure> {
        let timeouts = self.settings.checked_timeouts();
        let conn = self.connect(&peer).await?;
        let fail = |failure: Failure| HostFailure {
            failure,
            relay: peer.relay(),
            retry_plain: false,
        };
        let mut conn = conn;
        let greeting = read(&mut conn, Phase::Greeting, timeouts.helo)
            .await
            .map_err(fail)?;
        if !greeting.is_positive() {
            return Err(fail(Failure::refused(&greeting, &peer)));
        }
        self.hello(&mut conn).await.map_err(fail)?;
        let mut conn = self.secure(conn, allow_tls).await?;
        self.authenticate(&mut conn).await.map_err(fail)?;
        Ok(conn)
    }

    /// The TCP (or unix: a relative path under `queue_directory`) connection to `peer`, from `smtp_bind_address` or
    /// `smtp_bind_address6` when set. As Postfix's `smtp_connect_addr`: an address that
    /// cannot be bound is a warning, and the connection is made from the system's choice —
    /// unless `smtp_bind_address_enforce` is on, then this server is not tried (4.4.0
    /// "server configuration error", a deferral: the next one is).
    async fn connect(&self, peer: &Peer) -> Result<Connection, HostFailure> {
        let limit = self.settings.checked_timeouts().connect;
        let (source, target) = match &peer.addr {
            Endpoint::Tcp(addr) => (self.settings.bind.for_peer(addr), peer.clone()),
            Endpoint::Unix(path) => {
                let path = Endpoint::Unix(self.settings.socket_path(path));
                (
                    None,
                    Peer {
                        addr: path,
                        ..peer.clone()
                    },
                )
            }
        };
        let error = match Connection::connect(target, limit, source).await {
            // Logged and cached as written (`relay=myhost[private/dovecot-lmtp]`, Postfix's).
            Ok(mut conn) => {
                conn.set_peer(peer.clone());
                return Ok(conn);
            }
            Err(ConnectError::Connect(e)) => return Err(connect_failure(peer, &e)),
            Err(ConnectError::Bind(ip, e)) => (ip, e),
        };
        let (ip, why) = error;
        caution!(
            self.settings.dialect,
            "warning: smtp_connect_addr: bind {ip}: {}",
            strerror(&why)
        );
        if self.settings.bind.enforce {
            return Err(HostFailure {
                failure: Failure::deferred("4.4.0", "server configuration error"),
                relay: "none".to_string(),
                retry_plain: false,
            });
        }
        match Connection::connect(peer.clone(), limit, None).await {
            Ok(conn) => Ok(conn),
            Err(ConnectError::Connect(e) | ConnectError::Bind(_, e)) => {
                Err(connect_failure(peer, &e))
            }
        }
    }

    /// EHLO, or HELO when EHLO is refused with anything but 421 (Postfix's rule); LHLO for
    /// LMTP.
    async fn hello(&self, conn: &mut Connection) -> Result<(), Failure> {
        let limit = self.settings.checked_timeouts().helo;
        if self.settings.dialect == Dialect::Lmtp {
            let lhlo = format!("LHLO {}\r\n", self.settings.helo_name);
            let reply = command(conn, lhlo.as_bytes(), Phase::Lhlo, limit).await?;
            if !reply.is_positive() {
                return Err(Failure::refused(&reply, conn.peer()));
            }
            conn.caps = Capabilities::from_ehlo(&reply);
            return Ok(());
        }
        let ehlo = format!("EHLO {}\r\n", self.settings.helo_name);
        let reply = command(conn, ehlo.as_bytes(), Phase::Ehlo, limit).await?;
        if reply.is_positive() {
            conn.caps = Capabilities::from_ehlo(&reply);
            return Ok(());
        }
        if reply.code == 421 {
            return Err(Failure::refused(&reply, conn.peer()));
        }
        let helo = format!("HELO {}\r\n", self.settings.helo_name);
        let reply = command(conn, helo.as_bytes(), Phase::Helo, limit).await?;
        if !reply.is_positive() {
            return Err(Failure::refused(&reply, conn.peer()));
        }
        conn.caps = Capabilities::default();
        Ok(())
    }

    /// Applies the destination's TLS level: STARTTLS when offered (and allowed), the
    /// certificate checked as the level demands, refusal when TLS is required.
    async fn secure(
        &self,
        mut conn: Connection,
        allow_tls: bool,
    ) -> Result<Connection, HostFailure> {
        let level = self.policy.level;
        let relay = conn.relay().to_string();
        let fail = |failure: Failure, retry_plain: bool| HostFailure {
            failure,
            relay: relay.clone(),
            retry_plain,
        };
        // LMTP never tries STARTTLS (its policy is always `none`, see `policy.rs`).
        let lmtp = self.settings.dialect == Dialect::Lmtp;
        if lmtp || level == SmtpTlsLevel::None || !allow_tls || !conn.caps.starttls {
            return self.require_tls(conn).map_err(|f| fail(f, false));
        }
        let handshake = self
            .tls
            .client_config(self.policy, &conn.peer().host, &self.nexthop_name(&conn))
            .map_err(|why| fail(Failure::deferred("4.7.5", why), false))?;
        let limit = self.settings.checked_timeouts().helo;
        let reply = command(&mut conn, b"STARTTLS\r\n", Phase::StartTls, limit)
            .await
            .map_err(|f| fail(f, false))?;
        if reply.class() != 2 {
            return match level.requires_tls() {
                true => Err(fail(refused_tls(&reply, conn.peer()), false)),
                false => Ok(conn),
            };
        }
        let mut conn = match conn.start_tls(&handshake, limit).await {
            Ok(conn) => conn,
            Err(e) => return Err(self.handshake_failure(&relay, &handshake.verdict, &e, fail)),
        };
        let trust = handshake
            .verdict
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let word = trust.as_ref().map_or("Anonymous", |(t, _)| t.word());
        tracing::info!(target: "smtp", "{word} TLS connection established to {relay}: {}", conn.tls_session);
        self.hello(&mut conn).await.map_err(|f| fail(f, false))?;
        Ok(conn)
    }

    /// A failed handshake: "Server certificate not verified" when the verifier refused the
    /// certificate (verify/secure), else a handshake failure (retried in plaintext at may).
    fn handshake_failure(
        &self,
        relay: &str,
        verdict: &super::tls::Verdict,
        error: &ConnError,
        fail: impl Fn(Failure, bool) -> HostFailure,
    ) -> HostFailure {
        let level = self.policy.level;
        let refused = verdict.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((_, why)) = refused.filter(|(t, _)| *t != Trust::Verified) {
            if level.requires_verification() {
                tracing::info!(target: "smtp", "server certificate verification failed for {relay}: {why}");
                return fail(
                    Failure::deferred("4.7.5", "Server certificate not verified"),
                    false,
                );
            }
        }
        tracing::info!(target: "smtp", "TLS handshake failed with {relay}: {error:?}");
        let failure = Failure::deferred("4.7.5", "Cannot start TLS: handshake failure");
        fail(failure, level == SmtpTlsLevel::May)
    }

    /// The nexthop domain for certificate name rules (the server's name without one).
    fn nexthop_name(&self, conn: &Connection) -> String {
        self.nexthop
            .map_or_else(|| conn.peer().host.clone(), |n| n.host.clone())
    }

    /// Without TLS: fine unless the destination's level requires it.
    fn require_tls(&self, conn: Connection) -> Result<Connection, Failure> {
        if self.policy.level.requires_tls() && !conn.tls {
            return Err(Failure::deferred(
                "4.7.4",
                format!(
                    "TLS is required, but was not offered by host {}",
                    conn.peer().namaddr()
                ),
            ));
        }
        Ok(conn)
    }

    /// AUTH when enabled, offered, and the table has credentials for this server.
    async fn authenticate(&self, conn: &mut Connection) -> Result<(), Failure> {
        let (Some(table), Some(nexthop)) = (self.passwords, self.nexthop) else {
            return Ok(());
        };
        if conn.caps.auth.is_empty() {
            return Ok(());
        }
        let sasl = &self.settings.sasl;
        let host = conn.peer().host.clone();
        let Some(credentials) = sasl::lookup(table, sasl, self.sender, nexthop, &host) else {
            return Ok(());
        };
        let limit = self.settings.checked_timeouts().helo;
        sasl::authenticate(conn, &credentials, sasl, limit).await
    }
}

fn refused_tls(reply: &Reply, peer: &Peer) -> Failure {
    Failure::deferred(
        &soften(&reply.dsn()),
        format!(
            "TLS is required, but host {} refused to start TLS: {}",
            peer.namaddr(),
            reply.text()
        ),
    )
}

/// Sends one command and reads its reply, both within `limit`.
pub(crate) async fn command(
    conn: &mut Connection,
    line: &[u8],
    phase: Phase,
    limit: std::time::Duration,
) -> Result<Reply, Failure> {
    if let Err(e) = conn.send(line, limit).await {
        return Err(Failure::from_conn(&e, conn.peer(), phase));
    }
    read(conn, phase, limit).await
}

async fn read(
    conn: &mut Connection,
    phase: Phase,
    limit: std::time::Duration,
) -> Result<Reply, Failure> {
    conn.read_reply(limit)
        .await
        .map_err(|e: ConnError| Failure::from_conn(&e, conn.peer(), phase))
}

/// Postfix's `connect to host[ip]:port: Connection refused` (4.4.1), relay `none`.
fn connect_failure(peer: &Peer, error: &io::Error) -> HostFailure {
    HostFailure {
        failure: Failure::deferred(
            "4.4.1",
            format!("connect to {}: {}", peer.relay(), strerror(error)),
        ),
        relay: "none".to_string(),
        retry_plain: false,
    }
}

/// The C library's words for common connect errors, without Rust's "(os error N)".
fn strerror(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "Connection refused".to_string(),
        io::ErrorKind::TimedOut => "Connection timed out".to_string(),
        io::ErrorKind::ConnectionReset => "Connection reset by peer".to_string(),
        _ => {
            let text = error.to_string();
            match text.find(" (os error") {
                Some(cut) => text[..cut].to_string(),
                None => text,
            }
        }
    }
}
