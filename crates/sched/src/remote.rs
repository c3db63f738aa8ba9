//! The scheduler's view of a remote (SMTP) delivery agent: a trait, so the queue manager can
//! be tested with a scripted agent and the real SMTP client is wired in by the daemon.

use crate::route::Nexthop;
use envelope::{Envelope, Outcome, QueueId};
use std::future::Future;
use std::pin::Pin;

/// What a remote delivery reports.
#[derive(Debug, Clone, Default)]
pub struct RemoteReport {
    /// Exactly one per requested recipient.
    pub outcomes: Vec<Outcome>,
    /// The destination itself failed (no address, nothing answering): the scheduler marks it
    /// dead for a while and defers its other mail without connecting.
    pub destination_failure: Option<String>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait RemoteAgent: Send + Sync + 'static {
    fn deliver<'a>(
        &'a self,
        nexthop: &'a Nexthop,
        id: QueueId,
        envelope: &'a Envelope,
        recipients: &'a [usize],
        message: &'a [u8],
    ) -> BoxFuture<'a, RemoteReport>;
}

/// The agent used when none is configured: every remote recipient is deferred.
pub struct NoRemote;

impl RemoteAgent for NoRemote {
    fn deliver<'a>(
        &'a self,
        _nexthop: &'a Nexthop,
        _id: QueueId,
        _envelope: &'a Envelope,
        recipients: &'a [usize],
        _message: &'a [u8],
    ) -> BoxFuture<'a, RemoteReport> {
        let outcomes = recipients
            .iter()
            .map(|&i| Outcome::deferred(i, "4.3.5", "none", "no SMTP client configured"))
            .collect();
        Box::pin(async move {
            RemoteReport {
                outcomes,
                destination_failure: None,
            }
        })
    }
}

/// The real remote agent: the SMTP client, with the router's next hops translated.
pub struct SmtpRemote {
    client: agents::SmtpClient,
    default_port: u16,
}

impl SmtpRemote {
    pub fn new(cfg: &config::Config) -> Result<SmtpRemote, String> {
        let settings = agents::SmtpSettings::from_config(cfg);
        let client = agents::SmtpClient::new(settings).map_err(|e| e.to_string())?;
        Ok(SmtpRemote {
            client,
            default_port: cfg.smtp_default_port,
        })
    }
}

impl RemoteAgent for SmtpRemote {
    fn deliver<'a>(
        &'a self,
        nexthop: &'a Nexthop,
        id: QueueId,
        envelope: &'a Envelope,
        recipients: &'a [usize],
        message: &'a [u8],
    ) -> BoxFuture<'a, RemoteReport> {
        let hop = agents::Nexthop {
            host: nexthop.host.clone(),
            port: nexthop.port.unwrap_or(self.default_port),
            mx_lookup: nexthop.mx_lookup,
        };
        Box::pin(async move {
            let r = self
                .client
                .deliver(&hop, id, envelope, recipients, message)
                .await;
            RemoteReport {
                outcomes: r.outcomes,
                destination_failure: r.destination_failure,
            }
        })
    }
}
