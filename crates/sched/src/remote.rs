//! The scheduler's view of a remote (SMTP) delivery agent: a trait, so the queue manager can
//! be tested with a scripted agent and the real SMTP client is wired in by the daemon.

use envelope::{DeliveryReport, Envelope, Nexthop, Outcome, QueueId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait RemoteAgent: Send + Sync + 'static {
    fn deliver<'a>(
        &'a self,
        nexthop: &'a Nexthop,
        id: QueueId,
        envelope: &'a Envelope,
        recipients: &'a [usize],
        message: &'a [u8],
    ) -> BoxFuture<'a, DeliveryReport>;
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
    ) -> BoxFuture<'a, DeliveryReport> {
        let outcomes = recipients
            .iter()
            .map(|&i| Outcome::deferred(i, "4.3.5", "none", "no SMTP client configured"))
            .collect();
        Box::pin(async move {
            DeliveryReport {
                outcomes,
                destination_failure: None,
            }
        })
    }
}

/// The real remote agent: the SMTP client.
pub struct SmtpRemote {
    client: agents::SmtpClient,
    /// `smtp_generic_maps`, applied to each outgoing copy.
    rewrite: Option<Arc<rewrite::Live>>,
}

impl SmtpRemote {
    pub fn new(settings: agents::SmtpSettings) -> Result<SmtpRemote, String> {
        let client = agents::SmtpClient::new(settings).map_err(|e| e.to_string())?;
        Ok(SmtpRemote {
            client,
            rewrite: None,
        })
    }

    /// Rewrites outgoing mail through the rewriter's `smtp_generic_maps`.
    pub fn with_rewrite(mut self, rewrite: Arc<rewrite::Live>) -> SmtpRemote {
        self.rewrite = Some(rewrite);
        self
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
    ) -> BoxFuture<'a, DeliveryReport> {
        let rewriter = self.rewrite.as_ref().map(|live| live.get());
        let generic =
            rewriter.and_then(|r| agents::smtp::generic::rewrite_outgoing(&r, envelope, message));
        match generic {
            Some((envelope, message)) => Box::pin(async move {
                self.client
                    .deliver(nexthop, id, &envelope, recipients, &message)
                    .await
            }),
            None => Box::pin(
                self.client
                    .deliver(nexthop, id, envelope, recipients, message),
            ),
        }
    }
}
