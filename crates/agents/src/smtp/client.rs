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
//! Outgoing SMTP mail is DKIM-signed just before it leaves ([`crate::dkim`]; never what goes
//! to the content filter or over LMTP), and a recipient domain's MTA-STS policy
//! ([`sts`](super::sts)) may narrow the MX hosts and raise the TLS level to `verify`.
//! Security stance: runs unprivileged; all servers and DNS answers are untrusted input.

use std::sync::Arc;

use envelope::{DeliveryReport, Envelope, Nexthop, OutcomeKind, QueueId};

use super::cache::{By, ConnectionCache, Labels, SessionKind};
use super::conn::{Connection, Endpoint, Peer};
use super::dane::{Dane, SecureDns};
use super::dns::Dns;
use super::failure::{Failure, Phase};
use super::job::{Job, Outcomes, Rcpt};
use super::lmtp::LmtpNexthop;
use super::maps::{Secrecy, TextMap};
use super::policy::TlsPolicy;
use super::session::{self, HostFailure, Opener};
use super::settings::{Dialect, SmtpSettings};
use super::sts::Gate;
use super::tls::TlsContext;
use super::transaction::{self, After};
use super::SmtpError;
use crate::dkim::Signer;
use crate::mta_sts::MtaSts;

/// The SMTP client: cheap to clone (one shared resolver, TLS trust anchors, lookup tables and
/// connection cache); call [`SmtpClient::deliver`] from as many tasks as the scheduler allows.
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
    /// DNSSEC-aware queries for DANE.
    secure_dns: SecureDns,
    tls: TlsContext,
    /// `smtp_tls_policy_maps`, or why they cannot be used (then all mail waits).
    policies: Result<TextMap, String>,
    /// `smtp_sasl_password_maps` when `smtp_sasl_auth_enable` is on, or why not usable.
    passwords: Option<Result<TextMap, String>>,
    cache: Arc<ConnectionCache>,
}

impl SmtpClient {
    /// A client for `settings`: reads the CA bundle and the policy and password tables once
    /// (a problem with them is logged here and defers the mail it concerns). Fails only on
    /// unusable settings (a bad `dns_nameservers` entry).
    pub fn new(settings: SmtpSettings) -> Result<SmtpClient, SmtpError> {
        let dns = Dns::new(&settings.dns_nameservers, settings.inet_protocols)?;
        let secure_dns = SecureDns::new(&settings.dns_nameservers, settings.inet_protocols);
        let tls = TlsContext::load(&settings.ca_file);
        let policies = TextMap::load(
            "smtp_tls_policy_maps",
            &settings.tls_policy_maps,
            Secrecy::Public,
        );
        let passwords = settings.sasl.enabled.then(|| {
            TextMap::load(
                "smtp_sasl_password_maps",
                &settings.sasl.password_maps,
                Secrecy::Private,
            )
        });
        let problems = [
            policies.as_ref().err(),
            passwords.as_ref().and_then(|p| p.as_ref().err()),
        ];
        for problem in problems.into_iter().flatten() {
            tracing::warn!(target: "smtp", "warning: {problem}; mail that needs it is deferred");
        }
        Ok(SmtpClient {
            inner: Arc::new(Inner {
                settings,
                dns,
                secure_dns,
                tls,
                policies,
                passwords,
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
        let hop = LmtpNexthop::Inet(nexthop.clone());
        let request = Request { id, env, message };
        self.deliver_to(&hop, request, recipients, Some(&self.dkim))
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
        let hop = LmtpNexthop::Inet(nexthop.clone());
        let request = Request { id, env, message };
        self.deliver_to(&hop, request, recipients, None).await
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
        let request = Request { id, env, message };
        self.deliver_to(hop, request, recipients, None).await
    }

    async fn deliver_to(
        &self,
        hop: &LmtpNexthop,
        request: Request<'_>,
        recipients: &[usize],
        dkim: Option<&Signer>,
    ) -> DeliveryReport {
        let Request { id, env, message } = request;
        let settings = &self.inner.settings;
        let mut job = Job::new(
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
        if let Some(signer) = dkim {
            job.sign_with(signer);
        }
        let gate = match hop {
            LmtpNexthop::Inet(nexthop) if settings.dialect == Dialect::Smtp => {
                Gate::for_nexthop(self.sts.as_deref(), &self.inner.dns, nexthop).await
            }
            _ => None,
        };
        let policy = self.inner.policy(hop).map(|p| match &gate {
            Some(g) => g.tighten(p),
            None => p,
        });
        let destination_failure = self
            .inner
            .deliver(hop, policy, &job, &rcpts, &mut out, gate.as_ref())
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
    async fn deliver(
        &self,
        hop: &LmtpNexthop,
        policy: Result<TlsPolicy, Failure>,
        job: &Job<'_>,
        rcpts: &[Rcpt<'_>],
        out: &mut Outcomes,
        gate: Option<&Gate>,
    ) -> Option<String> {
        let prepared = policy.and_then(|policy| Ok((policy, self.passwords()?)));
        let (policy, passwords) = match prepared {
            Ok(prepared) => prepared,
            Err(failure) => {
                out.fail_open(&failure, "none");
                return Some(failure.text);
            }
        };
        let mut opener = self.opener(hop, &policy, passwords, job);
        opener.dane = self.dane(hop, &policy).await;
        // A session authenticated for one sender is not reused for another, and under an
        // enforced MTA-STS policy every session is opened (and verified) anew.
        let reuse = (!self.settings.sasl.sender_dependent || passwords.is_none())
            && !gate.is_some_and(Gate::enforces);
        // One spelling per destination, so `[h]` and `[h]:25` share cached connections.
        let destination = hop.cache_key(self.settings.default_port);
        let kind = SessionKind {
            dialect: self.settings.dialect,
            helo_name: &self.settings.helo_name,
            policy: &policy,
            destination: &destination,
            sasl: passwords.is_some(),
        };
        let label = kind.destination_label();
        // A cached session found dead by its pipelined probe hands the recipients it did
        // not try to the next one (each turn takes one session out of the cache).
        let mut rcpts = rcpts;
        while let Some(conn) = self.reuse(By::Destination, &label, reuse).await {
            tracing::debug!(target: "smtp", "{}: reusing connection to {}", job.id, conn.relay());
            let labels = Labels {
                endpoint: kind.endpoint_label(conn.peer()),
                destination: label.clone(),
            };
            match self
                .run_session(&kind, (conn, labels), job, rcpts, out, reuse)
                .await
            {
                None => return None,
                Some(untried) => rcpts = &rcpts[untried..],
            }
        }
        let peers = match self.allowed_peers(hop, gate, job).await {
            Ok(peers) => peers,
            Err(failure) => {
                out.fail_open(&failure, "none");
                return (failure.kind == OutcomeKind::Deferred).then_some(failure.text);
            }
        };
        let reach = Reach {
            opener: &opener,
            kind: &kind,
            reuse,
        };
        let last = loop {
            match self.open_first(&reach, &peers, job).await {
                Ok((conn, endpoint)) => {
                    let labels = Labels {
                        destination: label.clone(),
                        endpoint,
                    };
                    match self
                        .run_session(&kind, (conn, labels), job, rcpts, out, reuse)
                        .await
                    {
                        None => return None,
                        Some(untried) => rcpts = &rcpts[untried..],
                    }
                }
                Err(last) => break last,
            }
        };
        let last = match (last, gate.filter(|g| g.enforces())) {
            (Some(f), Some(g)) => HostFailure {
                failure: g.explain(f.failure),
                ..f
            },
            (Some(f), None) => f,
            (None, _) => HostFailure {
                failure: Failure::deferred(
                    "4.4.3",
                    format!("no address found for {}", hop.host_name()),
                ),
                relay: "none".into(),
                retry_plain: false,
            },
        };
        out.fail_open(&last.failure, &last.relay);
        Some(last.failure.text)
    }

    /// What opens sessions to `hop` for `job` under `policy`.
    fn opener<'a>(
        &'a self,
        hop: &'a LmtpNexthop,
        policy: &'a TlsPolicy,
        passwords: Option<&'a TextMap>,
        job: &'a Job<'_>,
    ) -> Opener<'a> {
        Opener {
            settings: &self.settings,
            tls: &self.tls,
            policy,
            nexthop: match hop {
                LmtpNexthop::Inet(nexthop) => Some(nexthop),
                LmtpNexthop::Unix(_) => None,
            },
            passwords,
            sender: &job.env.sender,
            dane: None,
        }
    }

    /// At a DANE level, the DNSSEC queries and whether the destination's MX RRset is
    /// validated (asked once per delivery; each host's TLSA records when it is tried).
    async fn dane(&self, hop: &LmtpNexthop, policy: &TlsPolicy) -> Option<Dane<'_>> {
        let LmtpNexthop::Inet(nexthop) = hop else {
            return None;
        };
        if !policy.level.is_dane() {
            return None;
        }
        let mx_secure = match nexthop.mx_lookup && nexthop.host.parse::<std::net::IpAddr>().is_err()
        {
            true => self.secure_dns.mx_is_secure(&nexthop.host).await,
            false => None,
        };
        Some(Dane {
            dns: &self.secure_dns,
            mx_secure,
        })
    }

    /// The servers to try, narrowed by the destination's MTA-STS policy when it has one.
    async fn allowed_peers(
        &self,
        hop: &LmtpNexthop,
        gate: Option<&Gate>,
        job: &Job<'_>,
    ) -> Result<Vec<Peer>, Failure> {
        match (self.peers(hop).await, gate) {
            (Ok(peers), Some(gate)) => gate.filter(job.id, peers),
            (other, _) => other,
        }
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

    /// The destination's TLS policy, looked up by the nexthop as written (`[h]` or
    /// `[h]:587`); LMTP has none. A broken policy table or entry defers the mail.
    fn policy(&self, hop: &LmtpNexthop) -> Result<TlsPolicy, Failure> {
        let nexthop = match hop {
            LmtpNexthop::Inet(nexthop) if self.settings.dialect == Dialect::Smtp => nexthop,
            _ => return Ok(TlsPolicy::none()),
        };
        let table = self
            .policies
            .as_ref()
            .map_err(|why| Failure::deferred("4.3.0", why.clone()))?;
        TlsPolicy::for_nexthop(&self.settings, table, nexthop)
            .map_err(|why| Failure::deferred("4.7.5", why))
    }

    /// The password table when SASL is on; a refused table defers the mail.
    fn passwords(&self) -> Result<Option<&TextMap>, Failure> {
        match &self.passwords {
            None => Ok(None),
            Some(Ok(table)) => Ok(Some(table)),
            Some(Err(why)) => Err(Failure::deferred("4.7.0", why.clone())),
        }
    }

    /// A session cached under `label`, if any. One whose server offers PIPELINING is
    /// probed by the RSET that opens its next transaction's group
    /// ([`After::Stale`] when it died idle); any other must
    /// answer an RSET first: one the server closed meanwhile is dropped and the next is
    /// tried (a dead idle connection means "connect anew", never a failed delivery).
    async fn reuse(&self, by: By, label: &str, allowed: bool) -> Option<Connection> {
        if !allowed {
            return None;
        }
        let timeouts = self.settings.checked_timeouts();
        while let Some(mut conn) = self.cache.take(by, label) {
            if conn.caps.pipelining {
                conn.probe_pending = true;
                conn.reused += 1;
                return Some(conn);
            }
            let probe = session::command(&mut conn, b"RSET\r\n", Phase::RsetProbe, timeouts.rset);
            if matches!(probe.await, Ok(reply) if reply.is_positive()) {
                conn.reused += 1;
                return Some(conn);
            }
        }
        None
    }

    /// Tries each address in order until a session opens — an idle one to the same address
    /// and of the same kind ([`SessionKind`]) first, as Postfix's `smtp_reuse_addr` — else
    /// the last failure (each earlier one is logged, as Postfix logs every host it gave up
    /// on). The session comes with its endpoint label, made once for the lookup and kept for
    /// filing it afterwards.
    async fn open_first(
        &self,
        reach: &Reach<'_>,
        peers: &[Peer],
        job: &Job<'_>,
    ) -> Result<(Connection, String), Option<HostFailure>> {
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
            let label = reach.kind.endpoint_label(peer);
            if let Some(mut conn) = self.reuse(By::Endpoint, &label, reach.reuse).await {
                tracing::debug!(target: "smtp", "{}: reusing connection to {} for {}", job.id, conn.relay(), peer.host);
                // Logged as the host this delivery looked up (the label holds it whenever
                // it mattered for TLS or SASL).
                conn.set_host(peer.host.clone());
                return Ok((conn, label));
            }
            match open(reach.opener, peer.clone()).await {
                Ok(conn) => return Ok((conn, label)),
                Err(failure) => last = Some(failure),
            }
        }
        Err(last)
    }

    /// Runs the transactions on `conn`, then caches (when `cache`, under its `labels`:
    /// `kind`'s labels of `conn.peer`, made once by the caller) or closes it. A session authenticated for one
    /// sender (`smtp_sender_dependent_authentication`) is not cached. A cached session
    /// found dead ([`After::Stale`]) is dropped, and the index of the first recipient it
    /// did not try is returned for another session to take.
    async fn run_session(
        &self,
        kind: &SessionKind<'_>,
        (mut conn, labels): (Connection, Labels),
        job: &Job<'_>,
        rcpts: &[Rcpt<'_>],
        out: &mut Outcomes,
        cache: bool,
    ) -> Option<usize> {
        let timeouts = self.settings.checked_timeouts();
        let per_transaction = self.settings.recipients_per_transaction();
        for (n, chunk) in rcpts.chunks(per_transaction).enumerate() {
            match transaction::run(&mut conn, job, chunk, &timeouts, self.settings.dialect, out)
                .await
            {
                After::Ready => {}
                After::Dead(failure) => {
                    out.fail_these(rcpts, &failure, conn.relay());
                    return None;
                }
                After::Stale => {
                    tracing::debug!(target: "smtp", "{}: cached connection to {} was closed while idle", job.id, conn.relay());
                    return Some(n * per_transaction);
                }
            }
        }
        let idle = self.settings.connection_cache_time;
        let reusable = cache
            && !idle.is_zero()
            && conn.opened.elapsed() < self.settings.connection_reuse_time
            && !self.reuse_count_reached(&conn)
            && !conn.has_unread_input();
        if reusable {
            let cap = self.settings.destination_concurrency_limit;
            debug_assert_eq!(labels, kind.labels(conn.peer()));
            self.cache.put(labels, conn, idle, timeouts.quit, cap);
        } else {
            conn.quit(timeouts.quit).await;
        }
        None
    }
}

impl Inner {
    /// `smtp_connection_reuse_count_limit`: a session taken from the cache that many times
    /// is not cached again (Postfix's `THIS_SESSION_IS_EXPIRED`: with a limit of N a
    /// session carries up to N + 1 deliveries). 0 = no limit.
    fn reuse_count_reached(&self, conn: &Connection) -> bool {
        let limit = self.settings.connection_reuse_count_limit;
        limit > 0 && conn.reused >= limit
    }
}

/// How one delivery reaches a server: what opens a new session, and which idle ones fit.
struct Reach<'a> {
    opener: &'a Opener<'a>,
    kind: &'a SessionKind<'a>,
    /// Cached sessions may be used (and this one kept afterwards).
    reuse: bool,
}

/// Opens a session, retrying once without TLS after a failed handshake at level `may`.
async fn open(opener: &Opener<'_>, peer: Peer) -> Result<Connection, HostFailure> {
    match opener.open(peer.clone(), true).await {
        Err(failure) if failure.retry_plain => {
            tracing::info!(target: "smtp", "{}: {}; trying again without TLS", peer.relay(), failure.failure.text);
            opener.open(peer, false).await
        }
        other => other,
    }
}
