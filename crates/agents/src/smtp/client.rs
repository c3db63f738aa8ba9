//! [`SmtpClient::deliver`]: one message to some of its recipients at one nexthop — find
//! the servers, reuse or open a session, run as many transactions as the recipient limit
//! needs, keep the session for the next message.
//!
//! The path: cached session (after an RSET probe) → else DNS ([`dns`](super::dns)) → each
//! address in order until one session opens ([`session`](super::session)) → transactions of
//! at most `smtp_destination_recipient_limit` recipients ([`transaction`](super::transaction))
//! → the session goes back to the cache, or QUIT.
//! Inputs → outputs: nexthop, envelope, recipient indexes, message → [`DeliveryReport`].
//! Invariants: exactly one outcome per requested recipient; `destination_failure` is set only
//! when no session could be opened for a temporary reason (so the scheduler may hold back the
//! destination's other mail) — never for bounces or per-message problems; failures before
//! MAIL move on to the next address, failures after it do not (the recipients are deferred).
//! LMTP ([`SmtpClient::deliver_lmtp`], settings from [`SmtpSettings::lmtp_from_config`]):
//! the same path to an [`LmtpNexthop`] — a unix socket is one peer (no DNS), an inet host
//! is resolved without MX lookups.
//! Security stance: runs unprivileged; all servers and DNS answers are untrusted input.

use std::sync::Arc;

use envelope::{DeliveryReport, Envelope, Nexthop, OutcomeKind, QueueId};

use super::cache::ConnectionCache;
use super::conn::{Connection, Endpoint, Peer};
use super::dns::Dns;
use super::failure::{Failure, Phase};
use super::job::{Job, Outcomes, Rcpt};
use super::lmtp::LmtpNexthop;
use super::session::{self, HostFailure, Opener};
use super::settings::{SmtpSettings, TlsLevel};
use super::transaction::{self, After};
use super::SmtpError;

/// The SMTP client: cheap to clone (one shared resolver, TLS configuration and connection
/// cache); call [`SmtpClient::deliver`] from as many tasks as the scheduler allows.
#[derive(Clone)]
pub struct SmtpClient {
    inner: Arc<Inner>,
}

struct Inner {
    settings: SmtpSettings,
    dns: Dns,
    tls: Option<Arc<rustls::ClientConfig>>,
    cache: Arc<ConnectionCache>,
}

impl SmtpClient {
    /// A client with opportunistic TLS ([`security::tls::client_config_may`]) unless the
    /// level is `none`. Fails only on unusable settings (a bad `dns_nameservers` entry).
    pub fn new(settings: SmtpSettings) -> Result<SmtpClient, SmtpError> {
        let tls = match settings.tls_level {
            TlsLevel::None => None,
            TlsLevel::May | TlsLevel::Encrypt => Some(security::tls::client_config_may()),
        };
        SmtpClient::with_tls_config(settings, tls)
    }

    /// Like [`SmtpClient::new`] with an explicit client TLS configuration (for example a
    /// verifying one); `None` means no STARTTLS at all.
    pub fn with_tls_config(
        settings: SmtpSettings,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<SmtpClient, SmtpError> {
        let dns = Dns::new(&settings.dns_nameservers)?;
        Ok(SmtpClient {
            inner: Arc::new(Inner {
                settings,
                dns,
                tls,
                cache: Arc::default(),
            }),
        })
    }

    pub fn settings(&self) -> &SmtpSettings {
        &self.inner.settings
    }

    /// Idle connections currently cached (diagnostics and tests).
    pub fn idle_connections(&self) -> usize {
        self.inner.cache.len()
    }

    /// Delivers `message` (LF line ends) to `env.recipients[i]` for each `i` in `recipients`,
    /// all routed to `nexthop` (without a port: `smtp_default_port`). Never fails: every
    /// problem is an outcome.
    pub async fn deliver(
        &self,
        nexthop: &Nexthop,
        id: QueueId,
        env: &Envelope,
        recipients: &[usize],
        message: &[u8],
    ) -> DeliveryReport {
        let hop = LmtpNexthop::Inet(nexthop.clone());
        self.deliver_to(&hop, id, env, recipients, message).await
    }

    /// Delivers to an LMTP server (a client built with [`SmtpSettings::lmtp_from_config`]);
    /// otherwise like [`SmtpClient::deliver`].
    pub async fn deliver_lmtp(
        &self,
        hop: &LmtpNexthop,
        id: QueueId,
        env: &Envelope,
        recipients: &[usize],
        message: &[u8],
    ) -> DeliveryReport {
        self.deliver_to(hop, id, env, recipients, message).await
    }

    async fn deliver_to(
        &self,
        hop: &LmtpNexthop,
        id: QueueId,
        env: &Envelope,
        recipients: &[usize],
        message: &[u8],
    ) -> DeliveryReport {
        let settings = &self.inner.settings;
        let job = Job::new(
            id,
            env,
            message,
            settings.line_length_limit,
            settings.dialect,
        );
        let mut out = Outcomes::new(recipients);
        if let Some(failure) = job.sender_problem() {
            out.fail_open(&failure, "none");
            return report(out, None);
        }
        let rcpts = job.recipients(recipients, &mut out);
        if rcpts.is_empty() {
            return report(out, None);
        }
        let destination_failure = self.inner.deliver(hop, &job, &rcpts, &mut out).await;
        report(out, destination_failure)
    }
}

fn report(out: Outcomes, destination_failure: Option<String>) -> DeliveryReport {
    DeliveryReport {
        outcomes: out.finish(),
        destination_failure,
    }
}

impl Inner {
    /// Returns the destination failure, if the destination could not be reached at all.
    async fn deliver(
        &self,
        hop: &LmtpNexthop,
        job: &Job<'_>,
        rcpts: &[Rcpt<'_>],
        out: &mut Outcomes,
    ) -> Option<String> {
        // One spelling per destination, so `[h]` and `[h]:25` share cached connections.
        let key = hop.cache_key(self.settings.default_port);
        if let Some(conn) = self.reuse(&key).await {
            tracing::debug!(target: "smtp", "{}: reusing connection to {}", job.id, conn.peer.relay());
            self.run_session(&key, conn, job, rcpts, out).await;
            return None;
        }
        let peers = match self.peers(hop).await {
            Ok(peers) => peers,
            Err(failure) => {
                out.fail_open(&failure, "none");
                return (failure.kind == OutcomeKind::Deferred).then_some(failure.text);
            }
        };
        let mut last: Option<HostFailure> = None;
        for peer in peers {
            if let Some(previous) = &last {
                note!(
                    self.settings.dialect,
                    "{}: {}",
                    job.id,
                    previous.failure.text
                );
            }
            match self.open(peer).await {
                Ok(conn) => {
                    self.run_session(&key, conn, job, rcpts, out).await;
                    return None;
                }
                Err(failure) => last = Some(failure),
            }
        }
        let last = last.unwrap_or_else(|| HostFailure {
            failure: Failure::deferred(
                "4.4.3",
                format!("no address found for {}", hop.host_name()),
            ),
            relay: "none".into(),
            retry_plain: false,
        });
        out.fail_open(&last.failure, &last.relay);
        Some(last.failure.text)
    }

    /// The servers to try: the MX hosts or the host's addresses, or the one LMTP socket
    /// (logged as `myhostname[/path]`, as Postfix's LMTP client does).
    async fn peers(&self, hop: &LmtpNexthop) -> Result<Vec<Peer>, Failure> {
        match hop {
            LmtpNexthop::Unix(path) => Ok(vec![Peer {
                host: self.settings.helo_name.clone(),
                addr: Endpoint::Unix(path.clone()),
            }]),
            LmtpNexthop::Inet(nexthop) => {
                let port = nexthop.port_or(self.settings.default_port);
                (self.dns)
                    .peers(nexthop, port, self.settings.mx_address_limit)
                    .await
            }
        }
    }

    /// Opens a session, retrying once without TLS after a failed handshake at level `may`.
    async fn open(&self, peer: Peer) -> Result<Connection, HostFailure> {
        let opener = Opener {
            settings: &self.settings,
            tls: self.tls.clone(),
        };
        match opener.open(peer.clone(), true).await {
            Err(failure) if failure.retry_plain => {
                tracing::info!(target: "smtp", "{}: {}; trying again without TLS", peer.relay(), failure.failure.text);
                opener.open(peer, false).await
            }
            other => other,
        }
    }

    /// A cached session that still answers RSET, if any.
    async fn reuse(&self, key: &str) -> Option<Connection> {
        let timeouts = self.settings.checked_timeouts();
        while let Some(mut conn) = self.cache.take(key, self.settings.connection_cache_time) {
            let probe = session::command(&mut conn, b"RSET\r\n", Phase::RsetProbe, timeouts.rset);
            if matches!(probe.await, Ok(reply) if reply.is_positive()) {
                return Some(conn);
            }
        }
        None
    }

    /// Runs the transactions on `conn`, then caches or closes it.
    async fn run_session(
        &self,
        key: &str,
        mut conn: Connection,
        job: &Job<'_>,
        rcpts: &[Rcpt<'_>],
        out: &mut Outcomes,
    ) {
        let timeouts = self.settings.checked_timeouts();
        let relay = conn.peer.relay();
        for chunk in rcpts.chunks(self.settings.recipients_per_transaction()) {
            if let After::Dead(failure) =
                transaction::run(&mut conn, job, chunk, &timeouts, self.settings.dialect, out).await
            {
                out.fail_these(rcpts, &failure, &relay);
                return;
            }
        }
        let idle = self.settings.connection_cache_time;
        let reusable = !idle.is_zero()
            && conn.opened.elapsed() < self.settings.connection_reuse_time
            && !conn.has_unread_input();
        if reusable {
            self.cache.put(key.to_string(), conn, idle, timeouts.quit);
        } else {
            conn.quit(timeouts.quit).await;
        }
    }
}
