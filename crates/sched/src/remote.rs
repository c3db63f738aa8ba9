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

    /// Delivers to the content filter. The message is not final yet (the filter may change
    /// it and re-injects it), so agents that add to outgoing mail (a DKIM signature) must not
    /// do it here; the default is a plain [`RemoteAgent::deliver`].
    fn deliver_to_filter<'a>(
        &'a self,
        nexthop: &'a Nexthop,
        id: QueueId,
        envelope: &'a Envelope,
        recipients: &'a [usize],
        message: &'a [u8],
    ) -> BoxFuture<'a, DeliveryReport> {
        self.deliver(nexthop, id, envelope, recipients, message)
    }
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
    /// The client, DKIM-signing with `dkim` (the keys are loaded and checked here) and
    /// honouring MTA-STS as `sts` says.
    pub fn new(
        settings: agents::SmtpSettings,
        dkim: &agents::dkim::DkimSettings,
        sts: &agents::mta_sts::MtaStsSettings,
    ) -> Result<SmtpRemote, String> {
        let signer = agents::dkim::Signer::load(dkim).map_err(|e| e.to_string())?;
        let sts = agents::mta_sts::MtaSts::new(sts)?.map(std::sync::Arc::new);
        let client = agents::SmtpClient::new(settings)
            .map_err(|e| e.to_string())?
            .with_dkim(signer)
            .with_mta_sts(sts);
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

    fn deliver_to_filter<'a>(
        &'a self,
        nexthop: &'a Nexthop,
        id: QueueId,
        envelope: &'a Envelope,
        recipients: &'a [usize],
        message: &'a [u8],
    ) -> BoxFuture<'a, DeliveryReport> {
        Box::pin(
            self.client
                .deliver_to_filter(nexthop, id, envelope, recipients, message),
        )
    }
}
