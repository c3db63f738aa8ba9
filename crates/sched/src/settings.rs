//! The parameters the queue manager works with, taken from `Config` once per (re)load by
//! the binary ([`Settings::from_config`]), so no part of the scheduler sees the whole
//! configuration: `dispatch` and `plan` decide with [`Limits`] and the retry fields, the
//! router is built from [`Routing`], and the acting parts find `corrupt/` in the
//! [`queue::Layout`].

use crate::route::{Routing, Transport};
use config::Config;
use queue::Layout;
use std::time::Duration;

/// Per-destination limits (Postfix's `*_destination_concurrency_limit`) and how long a
/// destination that failed as a whole stays marked dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub local: usize,
    pub virtual_mailbox: usize,
    pub smtp: usize,
    pub lmtp: usize,
    pub filter: usize,
    /// `transport_destination_concurrency_limit`: the named transports' own limits.
    pub named: Vec<(String, usize)>,
    /// `default_destination_concurrency_limit`, for a named transport without its own.
    pub default: usize,
    pub dead_time: Duration,
}

impl Limits {
    /// The concurrency limit of a destination of this transport (at least one).
    pub fn of(&self, transport: Transport) -> usize {
        let limit = match transport {
            Transport::Local => self.local,
            // Postfix: virtual_destination_concurrency_limit = $default_destination_concurrency_limit.
            Transport::Virtual => self.virtual_mailbox,
            Transport::Smtp => self.smtp,
            Transport::Lmtp => self.lmtp,
            Transport::Filter => self.filter,
            Transport::Named(name) => self
                .named
                .iter()
                .find(|(n, _)| n == name)
                .map_or(self.default, |(_, limit)| *limit),
        };
        limit.max(1)
    }
}

/// Everything the queue manager takes from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `default_process_limit`: deliveries in flight at once, all transports.
    pub process_limit: usize,
    /// `qmgr_message_active_limit`: messages in the active queue (in memory) at once.
    pub active_limit: usize,
    pub limits: Limits,
    /// Bounces become deferrals (the safety switch).
    pub soft_bounce: bool,
    pub minimal_backoff_time: Duration,
    pub maximal_backoff_time: Duration,
    pub maximal_queue_lifetime: Duration,
    pub bounce_queue_lifetime: Duration,
    /// 0 = no "delayed mail" warnings.
    pub delay_warning_time: Duration,
    /// Where a null-sender message's failures go (`2bounce_notice_recipient`).
    pub bounce_notice_recipient: String,
    pub myhostname: String,
    /// Bytes of the original message returned in a notice.
    pub bounce_size_limit: u64,
    /// Where damaged messages are saved (`corrupt/`).
    pub layout: Layout,
    pub routing: Routing,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Settings {
        Settings {
            process_limit: cfg.default_process_limit,
            active_limit: cfg.qmgr_message_active_limit,
            limits: Limits {
                local: cfg.local_destination_concurrency_limit,
                virtual_mailbox: cfg.default_destination_concurrency_limit,
                smtp: cfg.smtp_destination_concurrency_limit,
                lmtp: cfg.lmtp_destination_concurrency_limit,
                filter: cfg.filter_destination_concurrency_limit,
                named: cfg.transport_destination_concurrency_limit.clone(),
                default: cfg.default_destination_concurrency_limit,
                // A dead mark is short: it saves connections, it is not a retry schedule.
                dead_time: cfg
                    .minimal_backoff_time
                    .clamp(Duration::from_secs(1), Duration::from_secs(60)),
            },
            soft_bounce: cfg.soft_bounce,
            minimal_backoff_time: cfg.minimal_backoff_time,
            maximal_backoff_time: cfg.maximal_backoff_time,
            maximal_queue_lifetime: cfg.maximal_queue_lifetime,
            bounce_queue_lifetime: cfg.bounce_queue_lifetime,
            delay_warning_time: cfg.delay_warning_time,
            bounce_notice_recipient: cfg.bounce_notice_recipient.clone(),
            myhostname: cfg.myhostname.clone(),
            bounce_size_limit: cfg.bounce_size_limit,
            layout: Layout::new(&cfg.queue_directory),
            routing: Routing::from_config(cfg),
        }
    }
}
