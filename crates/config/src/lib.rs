//! mailroom's configuration: one TOML file whose parameter names follow Postfix's `main.cf`
//! where the concept is the same, with Postfix's defaults unless noted.
//!
//! (Contract file written first so the other crates can code against [`Config`]; loading,
//! validation and printing live in the modules below.)
//!
//! Security stance: the file is trusted as the operator's word, but every value is checked;
//! a bad one is an error naming the key and the file line, never a silent fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The effective configuration. Every field is a Postfix parameter of the same name unless
/// its doc says otherwise. Durations are [`Duration`], sizes are bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where this configuration came from (`None` = the embedded default). Not a parameter.
    pub source: Option<PathBuf>,
    /// Root of the embedded default's data (`MAILROOM_DATA`, else `$XDG_DATA_HOME/mailroom`,
    /// else `$HOME/.local/share/mailroom`). mailroom-only; the other paths default under it.
    pub data_directory: PathBuf,
    /// The queue store: `maildrop/`, the message log, `corrupt/`, the lock and control socket.
    pub queue_directory: PathBuf,
    /// mbox files are `mail_spool_directory/<user>`.
    pub mail_spool_directory: PathBuf,
    /// Non-empty: deliver to `$HOME/<home_mailbox>` instead; a trailing `/` means Maildir.
    pub home_mailbox: String,
    pub myhostname: String,
    pub mydomain: String,
    pub myorigin: String,
    /// Domains delivered locally. Default: `$myhostname, localhost.$mydomain, localhost`.
    pub mydestination: Vec<String>,
    pub mynetworks: Vec<String>,
    pub relay_domains: Vec<String>,
    pub relayhost: String,
    /// Alias files in `/etc/aliases` syntax; a `hash:`/`lmdb:`/`texthash:` prefix is accepted
    /// and ignored (we read the text file itself). Default: `/etc/aliases` in a system install,
    /// `<data_directory>/aliases` in the embedded default.
    pub alias_maps: Vec<String>,
    /// Who is a known local user. `unix:passwd.byname` (the passwd file) and/or alias maps.
    /// Empty list = every local part is accepted (the embedded default's choice, so that
    /// `alice@localhost` works on a machine with no user alice).
    pub local_recipient_maps: Vec<String>,
    /// Which alias/forward sources may deliver to `|command` (Postfix: `alias, forward`).
    pub allow_mail_to_commands: Vec<String>,
    /// Which alias/forward sources may deliver to `/file` (Postfix: `alias, forward`).
    pub allow_mail_to_files: Vec<String>,
    /// User whose rights `|command` and `/file` deliveries get when running as root.
    pub default_privs: String,
    /// The user that owns the queue in a system install (Postfix: `postfix`). In the
    /// embedded default: the user running mailroom.
    pub mail_owner: String,
    /// Group of the setgid `mailroom-postdrop` helper and of `maildrop/` (Postfix: `postdrop`).
    pub setgid_group: String,
    /// Path of the setgid helper `sendmail` falls back to when it cannot write `maildrop/`.
    pub postdrop_path: PathBuf,

    /// Intake refuses (sendmail 75, SMTP 452 4.3.1) when free space under the queue is below
    /// this. Postfix's default is 0; ours is 100 MiB so a full disk is never our doing.
    pub queue_minfree: u64,
    /// mailroom-only: intake also refuses below this many free inodes (default 1000).
    pub queue_minfree_inodes: u64,
    /// mailroom-only: cap on the bytes in `maildrop/` (default 256 MiB), checked by sendmail.
    pub maildrop_size_limit: u64,
    /// mailroom-only: cap on the files in `maildrop/` (default 10000), checked by sendmail.
    pub maildrop_count_limit: u64,
    /// mailroom-only: the longest sendmail may spend after reading its input (default 30s);
    /// past it, it gives up with exit 75 and leaves no partial file.
    pub submit_timeout: Duration,
    pub message_size_limit: u64,
    pub header_size_limit: u64,
    pub mailbox_size_limit: u64,
    pub hopcount_limit: u32,

    pub queue_run_delay: Duration,
    pub minimal_backoff_time: Duration,
    pub maximal_backoff_time: Duration,
    pub maximal_queue_lifetime: Duration,
    pub bounce_queue_lifetime: Duration,
    pub delay_warning_time: Duration,
    /// Deliveries in flight at once, all transports (Postfix: `default_process_limit`, 100).
    pub default_process_limit: usize,
    /// Concurrent deliveries to one local user (Postfix default 2).
    pub local_destination_concurrency_limit: usize,
    pub default_destination_concurrency_limit: usize,
    /// Postmaster address for double bounces.
    pub double_bounce_recipient: String,
    /// Postfix: `2bounce_notice_recipient` (TOML key `2bounce_notice_recipient`).
    pub bounce_notice_recipient: String,
    pub soft_bounce: bool,

    /// mailroom-only: SMTP listeners (the embedded default: `127.0.0.1:2525`).
    pub smtpd_listen: Vec<SocketAddr>,
    /// Postfix: `maillog_file`. Empty = log to standard error.
    pub maillog_file: String,
    /// mailroom-only: `text` (Postfix-style lines) or `json`.
    pub log_format: LogFormat,
    /// mailroom-only: identical warnings within this window are folded into one
    /// `... repeated N times` line (default 60s).
    pub log_repeat_window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A configuration problem: which file, which line, which key, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {key}: {message}", file.as_deref().map(|f| f.display().to_string()).unwrap_or_else(|| "<config>".into()), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}
