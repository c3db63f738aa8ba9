//! The parameters the queue manager decides with, taken from `Config` once per (re)load, so
//! the deciding code (`dispatch`, `plan`) depends on this small struct, not the whole
//! configuration.

use crate::route::Transport;
use config::Config;
use std::time::Duration;

/// Per-destination limits (Postfix's `*_destination_concurrency_limit`) and how long a
/// destination that failed as a whole stays marked dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    pub local: usize,
    pub smtp: usize,
    pub filter: usize,
    pub dead_time: Duration,
}

impl Limits {
    /// The concurrency limit of a destination of this transport (at least one).
    pub fn of(&self, transport: Transport) -> usize {
        let limit = match transport {
            Transport::Local => self.local,
            Transport::Smtp => self.smtp,
            Transport::Filter => self.filter,
        };
        limit.max(1)
    }
}

/// What `plan` needs to know to turn outcomes into queue state and notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
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
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Settings {
        Settings {
            limits: Limits {
                local: cfg.local_destination_concurrency_limit,
                smtp: cfg.smtp_destination_concurrency_limit,
                filter: cfg.filter_destination_concurrency_limit,
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
        }
    }
}
