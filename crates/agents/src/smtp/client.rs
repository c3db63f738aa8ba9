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
//! Security stance: runs unprivileged; all servers and DNS answers are untrusted input.

use std::sync::Arc;

use envelope::{DeliveryReport, Envelope, Nexthop, OutcomeKind, QueueId};

use super::cache::ConnectionCache;
use super::conn::Connection;
use super::dns::Dns;
use super::failure::{Failure, Phase};
use super::job::{Job, Outcomes, Rcpt};
use super::session::{self, HostFailure, Opener};
use super::settings::{SmtpSettings, TlsLevel};
use super::sts::{self, Gate};
use super::transaction::{self, After};
use super::SmtpError;
use crate::dkim::Signer;
use crate::mta_sts::MtaSts;

/// The SMTP client: cheap to clone (one shared resolver, TLS configuration and connection
/// cache); call [`SmtpClient::deliver`] from as many tasks as the scheduler allows.
#[derive(Clone)]
pub struct SmtpClient {
    inner: Arc<Inner>,
    /// DKIM keys (`dkim_sign`); empty = sign nothing.
    dkim: Signer,
    /// MTA-STS policies (`smtp_mta_sts`); `None` = off.
    sts: Option<Arc<MtaSts>>,
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
            dkim: Signer::default(),
            sts: None,
        })
    }

    /// The same client, honouring MTA-STS policies through `sts`.
    pub fn with_mta_sts(self, sts: Option<Arc<MtaSts>>) -> SmtpClient {
        SmtpClient { sts, ..self }
    }

    /// The same client, DKIM-signing what [`SmtpClient::deliver`] sends with `dkim`.
    pub fn with_dkim(self, dkim: Signer) -> SmtpClient {
        SmtpClient { dkim, ..self }
    }

    pub fn settings(&self) -> &SmtpSettings {
        &self.inner.settings
    }

    /// Idle connections currently cached (diagnostics and tests).
    pub fn idle_connections(&self) -> usize {
        self.inner.cache.len()
    }

    /// Delivers `message` (LF line ends) to `env.recipients[i]` for each `i` in `recipients`,
    /// all routed to `nexthop` (without a port: `smtp_default_port`), DKIM-signed when a
    /// `dkim_sign` domain matches. Never fails: every problem is an outcome.
    pub async fn deliver(
        &self,
        nexthop: &Nexthop,
        id: QueueId,
        env: &Envelope,
        recipients: &[usize],
        message: &[u8],
    ) -> DeliveryReport {
        let request = Request { id, env, message };
        self.send(nexthop, request, recipients, Some(&self.dkim))
            .await
    }

    /// Like [`SmtpClient::deliver`], to the content filter: never signed, because the
    /// filter may still change the message (it is signed when it leaves after re-injection).
    pub async fn deliver_to_filter(
        &self,
        nexthop: &Nexthop,
        id: QueueId,
        env: &Envelope,
        recipients: &[usize],
        message: &[u8],
    ) -> DeliveryReport {
        let request = Request { id, env, message };
        self.send(nexthop, request, recipients, None).await
    }

    async fn send(
        &self,
        nexthop: &Nexthop,
        request: Request<'_>,
        recipients: &[usize],
        dkim: Option<&Signer>,
    ) -> DeliveryReport {
        let Request { id, env, message } = request;
        let mut job = Job::new(id, env, message, self.inner.settings.line_length_limit);
        let mut out = Outcomes::new(recipients);
        if let Some(failure) = job.sender_problem() {
            out.fail_open(&failure, "none");
            return report(out, None);
        }
        let rcpts = job.recipients(recipients, &mut out);
        if rcpts.is_empty() {
            return report(out, None);
        }
        if let Some(signer) = dkim {
            job.sign_with(signer);
        }
        // One spelling per destination, so `[h]` and `[h]:25` share cached connections.
        let nexthop = Nexthop {
            port: Some(nexthop.port_or(self.inner.settings.default_port)),
            ..nexthop.clone()
        };
        let gate = sts::Gate::for_nexthop(self.sts.as_deref(), &self.inner.dns, &nexthop).await;
        let destination_failure = self
            .inner
            .deliver(&nexthop, &job, &rcpts, &mut out, gate.as_ref())
            .await;
        report(out, destination_failure)
    }
}

/// The message a delivery carries.
struct Request<'a> {
    id: QueueId,
    env: &'a Envelope,
    message: &'a [u8],
}

fn report(out: Outcomes, destination_failure: Option<String>) -> DeliveryReport {
    DeliveryReport {
        outcomes: out.finish(),
        destination_failure,
    }
}

impl Inner {
    /// Returns the destination failure, if the destination could not be reached at all.
    /// `nexthop` has its port filled in.
    async fn deliver(
        &self,
        nexthop: &Nexthop,
        job: &Job<'_>,
        rcpts: &[Rcpt<'_>],
        out: &mut Outcomes,
        gate: Option<&Gate>,
    ) -> Option<String> {
        // Under an enforced MTA-STS policy every session is opened (and verified) anew.
        let enforced = gate.is_some_and(Gate::enforces);
        if let Some(conn) = self.reuse(nexthop).await.filter(|_| !enforced) {
            tracing::debug!(target: "smtp", "{}: reusing connection to {}", job.id, conn.peer.relay());
            self.run_session(nexthop, conn, job, rcpts, out).await;
            return None;
        }
        let peers = self
            .dns
            .peers(
                nexthop,
                nexthop.port_or(self.settings.default_port),
                self.settings.mx_address_limit,
            )
            .await;
        let peers = match (peers, gate) {
            (Ok(peers), Some(gate)) => gate.filter(job.id, peers),
            (other, _) => other,
        };
        let peers = match peers {
            Ok(peers) => peers,
            Err(failure) => {
                out.fail_open(&failure, "none");
                return (failure.kind == OutcomeKind::Deferred).then_some(failure.text);
            }
        };
        let mut last: Option<HostFailure> = None;
        for peer in peers {
            if let Some(previous) = &last {
                tracing::info!(target: "smtp", "{}: {}", job.id, previous.failure.text);
            }
            match self.open(peer, gate).await {
                Ok(conn) => {
                    self.run_session(nexthop, conn, job, rcpts, out).await;
                    return None;
                }
                Err(failure) => last = Some(failure),
            }
        }
        let last = last.unwrap_or_else(|| HostFailure {
            failure: Failure::deferred("4.4.3", format!("no address found for {}", nexthop.host)),
            relay: "none".into(),
            retry_plain: false,
        });
        out.fail_open(&last.failure, &last.relay);
        Some(last.failure.text)
    }

    /// Opens a session, retrying once without TLS after a failed handshake at level `may`;
    /// under an enforced MTA-STS policy, with verified TLS required.
    async fn open(
        &self,
        peer: super::conn::Peer,
        gate: Option<&Gate>,
    ) -> Result<Connection, HostFailure> {
        if let Some((settings, tls)) = gate.and_then(|g| g.required_tls(&self.settings)) {
            let opener = Opener {
                settings: &settings,
                tls: Some(tls),
            };
            let gate = gate.expect("required_tls came from it");
            return opener.open(peer, true).await.map_err(|f| HostFailure {
                failure: gate.explain(f.failure),
                ..f
            });
        }
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
    async fn reuse(&self, nexthop: &Nexthop) -> Option<Connection> {
        let timeouts = self.settings.checked_timeouts();
        while let Some(mut conn) = self
            .cache
            .take(nexthop, self.settings.connection_cache_time)
        {
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
        nexthop: &Nexthop,
        mut conn: Connection,
        job: &Job<'_>,
        rcpts: &[Rcpt<'_>],
        out: &mut Outcomes,
    ) {
        let timeouts = self.settings.checked_timeouts();
        let relay = conn.peer.relay();
        for chunk in rcpts.chunks(self.settings.recipients_per_transaction()) {
            if let After::Dead(failure) =
                transaction::run(&mut conn, job, chunk, &timeouts, out).await
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
            self.cache.put(nexthop.clone(), conn, idle, timeouts.quit);
        } else {
            conn.quit(timeouts.quit).await;
        }
    }
}
