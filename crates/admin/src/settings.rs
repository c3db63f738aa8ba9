//! [`Settings`]: what `check` and `doctor` take from the configuration, built by the binary
//! with [`Settings::from_config`].

use config::{Config, Profile};
use queue::Layout;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The parameters the admin tools inspect (Postfix names unless noted).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Which default the configuration started from: a system install is checked for its
    /// users, group and setgid helper.
    pub profile: Profile,
    /// The queue's paths (`queue_directory`).
    pub layout: Layout,
    pub mail_spool_directory: PathBuf,
    pub mailbox_size_limit: u64,
    pub mail_owner: String,
    pub setgid_group: String,
    pub postdrop_path: PathBuf,
    /// Every listener (`smtpd_listen`, `submission_listen`, `reinject_listen`), in that order.
    pub listeners: Vec<SocketAddr>,
    pub maillog_file: String,
    /// The local domains (a deferred domain among them is not waiting on `relayhost`).
    pub mydestination: Vec<String>,
    pub relayhost: String,
    pub transport_maps: Vec<String>,
    pub maximal_queue_lifetime: Duration,
    pub maildrop_count_limit: u64,
    pub queue_minfree: u64,
    pub queue_minfree_inodes: u64,
    /// Files only `mail_owner` may read (the `dkim_sign` keys).
    pub secret_files: Vec<PathBuf>,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Settings {
        let listeners = cfg
            .smtpd_listen
            .iter()
            .chain(&cfg.submission_listen)
            .chain(&cfg.reinject_listen)
            .copied()
            .collect();
        Settings {
            profile: cfg.profile,
            layout: Layout::new(&cfg.queue_directory),
            mail_spool_directory: cfg.mail_spool_directory.clone(),
            mailbox_size_limit: cfg.mailbox_size_limit,
            mail_owner: cfg.mail_owner.clone(),
            setgid_group: cfg.setgid_group.clone(),
            postdrop_path: cfg.postdrop_path.clone(),
            listeners,
            maillog_file: cfg.maillog_file.clone(),
            mydestination: cfg.mydestination.clone(),
            relayhost: cfg.relayhost.clone(),
            transport_maps: cfg.transport_maps.clone(),
            maximal_queue_lifetime: cfg.maximal_queue_lifetime,
            maildrop_count_limit: cfg.maildrop_count_limit,
            queue_minfree: cfg.queue_minfree,
            queue_minfree_inodes: cfg.queue_minfree_inodes,
            secret_files: cfg.dkim_sign.iter().map(|k| k.key.clone()).collect(),
        }
    }
}
