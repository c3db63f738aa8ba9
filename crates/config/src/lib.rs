//! mailroom's configuration: one TOML file whose parameter names follow Postfix's `main.cf`
//! where the concept is the same, with Postfix's defaults unless noted.
//!
//! # Job
//! Inputs → output: a TOML file (or none) plus the process environment → one checked
//! [`Config`] that every other crate reads, and the `postconf`-style text `mailroom config`
//! prints ([`postconf_parameters`]: values as written or expanded; [`render`],
//! [`render_one`]: final values). Also the text side of `postconf -e`/`-#`
//! ([`set_parameters`], [`comment_out_parameters`]: TOML edits that keep comments; the
//! caller validates with [`Config::from_str`] and writes), and the parameter reference of
//! mailroom.toml(5) ([`parameter_reference`]).
//!
//! * **Where the file is** ([`Config::load`]): the explicit path, else `$MAILROOM_CONFIG`,
//!   else `/etc/mailroom/mailroom.toml` if it exists, else no file: the embedded default.
//! * **What a file starts from**: [`Config::embedded_default`] (unprivileged, everything under
//!   one data directory, SMTP on 127.0.0.1:2525), or [`Config::system_default`] when the file
//!   says `profile = "system"`. Setting `data_directory` moves the defaults of
//!   `queue_directory`, `mail_spool_directory` and `alias_maps` under it (either profile).
//!   `mydomain`, `myorigin` and `mydestination` default from `myhostname`, as in Postfix.
//! * **Value syntax**: durations are seconds or `300s`/`5m`/`1h`/`5d`/`1w`; sizes are bytes or
//!   `100K`/`100M`/`2G` (1024-based); booleans are `true`/`false` or `"yes"`/`"no"`; lists are a
//!   TOML array or one string separated by commas and/or spaces. `$name`, `${name}` and
//!   `$(name)` expand to another parameter's value in every string (`$$` is a `$`).
//!   Postfix's `2bounce_notice_recipient` is also accepted as `bounce_notice_recipient`.
//!
//! # Invariants
//! * A loaded [`Config`] holds final values: no `$` references remain (the system profile's
//!   `local_recipient_maps = unix:passwd.byname, $alias_maps` is stored expanded, e.g.
//!   `["unix:passwd.byname", "/etc/aliases"]`), and every value passed its checks: limits that
//!   must be positive are, `minimal_backoff_time <= maximal_backoff_time`, a mailbox and the
//!   maildrop can each hold one maximal message, `smtpd_listen` entries are socket addresses.
//! * Every error names the file, the 1-based line and the key ([`ConfigError`]); unknown keys
//!   are errors (with a "did you mean" when a known name is close), never ignored.
//! * [`render`] output is stable: alphabetical, one `name = value` line per parameter.
//! * Choice parameters (one word of a fixed set) are enums ([`TlsLevel`],
//!   [`ForbidBareNewline`], [`LogFormat`], [`Profile`]): no room compares strings.
//!
//! # Security stance
//! Needs no privilege and writes nothing (edits return text); reads one file and a few
//! environment variables (`MAILROOM_CONFIG`,
//! `MAILROOM_DATA`, `XDG_DATA_HOME`, `HOME`) plus the host name and the current user from
//! the system. The file is trusted as the operator's word, but every value is checked; a bad one
//! is an error, never a silent fallback: a configuration file that was asked for (or that
//! exists at the system path) but cannot be read is an error, not a reason to run with the
//! defaults. `default_privs` may not be `root`. Set-gid callers (`mailroom-postdrop`) must
//! not honour `$MAILROOM_CONFIG` from an untrusted environment: pass an explicit path.

#![forbid(unsafe_code)]

mod choices;
mod defaults;
mod edit;
mod expand;
pub mod fuzzing;
mod inet_protocols;
mod load;
mod params;
mod postconf;
mod print;
mod reference;
mod resolve;
mod tls_protocols;
mod units;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use choices::{ForbidBareNewline, SmtpTlsLevel, SyslogFacility, TlsLevel};
pub use edit::{comment_out_parameters, set_parameters, split_assignment};
pub use inet_protocols::InetProtocols;
pub use load::SYSTEM_CONFIG_PATH;
pub use postconf::{config_file, parameter_name, postconf_parameters, Show};
pub use print::{render, render_one, PrintMode};
pub use reference::{parameter_reference, Origin, ParameterDoc};
pub use tls_protocols::TlsVersions;

/// The effective configuration. Every field is a Postfix parameter of the same name unless
/// its doc says otherwise. Durations are [`Duration`], sizes are bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where this configuration came from (`None` = the embedded default). Not a parameter.
    pub source: Option<PathBuf>,
    /// Which default the file started from (`profile = "system"`). mailroom-only.
    pub profile: Profile,
    /// Root of the embedded default's data (`MAILROOM_DATA`, else `$XDG_DATA_HOME/mailroom`,
    /// else `$HOME/.local/share/mailroom`). mailroom-only; the other paths default under it.
    pub data_directory: PathBuf,
    /// The queue store: `maildrop/`, the message log, `corrupt/`, the lock and control socket.
    pub queue_directory: PathBuf,
    /// mbox files are `mail_spool_directory/<user>`.
    pub mail_spool_directory: PathBuf,
    /// Non-empty: deliver to `$HOME/<home_mailbox>` instead; a trailing `/` means Maildir.
    pub home_mailbox: String,
    /// Where a user's `.forward` is looked for, first existing file wins. Expanded at
    /// delivery time (`$home`, `$user`, `${extension}` …), never when the file is loaded.
    pub forward_path: String,
    /// Non-empty: hand mailbox deliveries to this command (procmail, maildrop) as the user.
    /// Never `$`-expanded (as in Postfix): `"$EXTENSION"` is for the shell.
    pub mailbox_command: String,
    /// The characters that separate a local part from its extension (`alice+news`); empty
    /// = no extensions.
    pub recipient_delimiter: String,
    /// The longest a `|command` or `mailbox_command` delivery may run.
    pub command_time_limit: Duration,
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
    /// The user that owns the queue in a system install (Postfix: `postfix`), and the user
    /// a daemon started as root becomes after binding its ports (privilege separation). In
    /// the embedded default: the user running mailroom.
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
    /// mailroom-only: the store prepares each next segment ahead, full of zeros and
    /// fsynced, so a commit's sync changes no file size or extent (default auto: on where
    /// the queue is on a journaled ext4).
    pub queue_prezero_segments: Toggle,
    /// mailroom-only: the store opens its segments `O_DSYNC`, so a commit's write is its
    /// sync (default auto: as `queue_prezero_segments` turns out).
    pub queue_dsync_writes: Toggle,
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
    /// mailroom-only: how often the daemon adds a sample of queue counts to the history
    /// ring `doctor` reads (default 60s; the ring keeps 1440 samples).
    pub doctor_history_interval: Duration,
    pub minimal_backoff_time: Duration,
    pub maximal_backoff_time: Duration,
    pub maximal_queue_lifetime: Duration,
    pub bounce_queue_lifetime: Duration,
    pub delay_warning_time: Duration,
    /// Deliveries in flight at once, all transports (Postfix: `default_process_limit`, 100).
    pub default_process_limit: usize,
    /// Messages the queue manager holds in its active queue at once; the rest wait in the
    /// store until room frees (Postfix: `qmgr_message_active_limit`, 20000).
    pub qmgr_message_active_limit: usize,
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
    /// mailroom-only: `submission` listeners (587 style: AUTH required before MAIL).
    pub submission_listen: Vec<SocketAddr>,
    /// mailroom-only: `reinject` listeners (loopback; mail from the content filter, which
    /// skips the filter).
    pub reinject_listen: Vec<SocketAddr>,
    /// The HTTP server (`/metrics`, `/api/v1`); empty = off.
    pub http_listen: Vec<SocketAddr>,
    /// Allow `http_listen` addresses that are not loopback (refused at start otherwise).
    pub http_allow_remote: bool,
    /// The file holding the bearer token every change through the HTTP API needs.
    pub http_admin_token_file: String,
    /// Postfix: the text after `220 ` in the greeting.
    pub smtpd_banner: String,
    /// PEM certificate chain and key for STARTTLS; empty = a self-signed pair made on first
    /// start under `<data_directory>/tls/`.
    pub smtpd_tls_cert_file: String,
    pub smtpd_tls_key_file: String,
    /// `none`, `may` (offer STARTTLS) or `encrypt` (require it before MAIL).
    pub smtpd_tls_security_level: TlsLevel,
    /// Offer AUTH on `smtp` listeners too (always on for `submission`).
    pub smtpd_sasl_auth_enable: bool,
    /// mailroom-only: `name:argon2-hash` lines, managed with `mailroom passwd`.
    pub smtpd_sasl_password_file: PathBuf,
    pub smtpd_recipient_limit: usize,
    /// Recipients past `smtpd_recipient_limit` answered 452 without counting as errors
    /// (Postfix default 1000), so a client that sends too many gets the rest through in a
    /// later transaction instead of hitting the hard error limit.
    pub smtpd_recipient_overshoot_limit: usize,
    /// Postfix: `${stress?{10}:{300}}s`. Per read, or per request under
    /// `smtpd_per_request_deadline`.
    pub smtpd_timeout: Stressed<Duration>,
    /// Postfix: `${stress?{yes}:{no}}`: under stress a whole command line (or DATA at `smtpd_min_data_rate`) must arrive within `smtpd_timeout`,
    /// so a client that trickles one byte at a time cannot hold a slot.
    pub smtpd_per_request_deadline: Stressed<bool>,
    /// Bytes per second that extend the DATA/BDAT deadline (Postfix default 500).
    pub smtpd_min_data_rate: u64,
    /// mailroom-only: the longest one SMTP session may last, whatever it sends
    /// (default `${stress?{120}:{3600}}s`).
    pub smtpd_session_deadline: Stressed<Duration>,
    /// Postfix: `${stress?{1}:{20}}`.
    pub smtpd_hard_error_limit: Stressed<usize>,
    pub smtpd_soft_error_limit: usize,
    /// NOOP, VRFY, RSET, HELO/EHLO past this count as errors (Postfix: `${stress?{1}:{100}}`);
    /// reset when a message is queued.
    pub smtpd_junk_command_limit: Stressed<usize>,
    pub smtpd_error_sleep_time: Duration,
    /// Postfix default `no`: MAIL does not need a HELO/EHLO first.
    pub smtpd_helo_required: bool,
    /// Postfix 3.9 default `yes`: a client that sends more after a command that must end a
    /// pipelined group (EHLO, HELO, DATA, NOOP, VRFY, any command without EHLO), or talks
    /// before the greeting, gets `554 5.5.0 Error: SMTP protocol synchronization` and is
    /// disconnected. Applies to `smtp` and `reinject` listeners; `submission` is exempt, as
    /// in Postfix's stock master.cf.
    pub smtpd_forbid_unauth_pipelining: bool,
    /// Postfix's restriction lists (issue 13), each a list of restriction names and their
    /// arguments in Postfix's syntax (`check_client_access cidr:/etc/x`), evaluated in this
    /// order at RCPT (with `smtpd_delay_reject`): client, HELO, sender, relay, recipient.
    pub smtpd_client_restrictions: Vec<String>,
    pub smtpd_helo_restrictions: Vec<String>,
    pub smtpd_sender_restrictions: Vec<String>,
    /// Postfix 3 default `permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination`.
    pub smtpd_relay_restrictions: Vec<String>,
    pub smtpd_recipient_restrictions: Vec<String>,
    pub smtpd_data_restrictions: Vec<String>,
    pub smtpd_end_of_data_restrictions: Vec<String>,
    /// Named restriction lists, each `name:restrictions` (TOML: `[{ name, restrictions }]`).
    pub smtpd_restriction_classes: Vec<String>,
    /// Postfix default `yes`: client, HELO and sender restrictions wait until RCPT.
    pub smtpd_delay_reject: bool,
    /// How long one policy service query may take (Postfix 100s).
    pub smtpd_policy_service_timeout: Duration,
    /// What a policy service that cannot be reached amounts to.
    pub smtpd_policy_service_default_action: String,
    /// A kept policy connection is closed after this long unused (Postfix 300s).
    pub smtpd_policy_service_max_idle: Duration,
    /// ... or this long after it was opened (Postfix 1000s).
    pub smtpd_policy_service_max_ttl: Duration,
    /// Attempts per query (Postfix 2).
    pub smtpd_policy_service_try_limit: usize,
    /// The pause between attempts (Postfix 1s).
    pub smtpd_policy_service_retry_delay: Duration,
    /// Queries per connection before it is closed (Postfix 0: no limit).
    pub smtpd_policy_service_request_limit: usize,
    /// Reply codes of the restrictions (Postfix's names and defaults).
    pub reject_code: usize,
    pub defer_code: usize,
    pub access_map_reject_code: usize,
    pub access_map_defer_code: usize,
    pub invalid_hostname_reject_code: usize,
    pub non_fqdn_reject_code: usize,
    pub unknown_address_reject_code: usize,
    pub unknown_hostname_reject_code: usize,
    pub unknown_client_reject_code: usize,
    pub relay_domains_reject_code: usize,
    pub maps_rbl_reject_code: usize,
    /// Reply templates per DNSBL domain (`$rbl_code`, `$rbl_class`, …), and the default.
    pub rbl_reply_maps: Vec<String>,
    pub default_rbl_reply: String,
    /// mailroom-only: failed AUTH attempts allowed per client IP, and per user name, within
    /// `anvil_rate_time_unit` (default 10; 0 = no limit). Past it AUTH is refused without a
    /// password check.
    pub smtpd_client_auth_failure_limit: usize,
    /// The time unit of the per-client rate limits (Postfix default 60s).
    pub anvil_rate_time_unit: Duration,
    /// Simultaneous connections from one client IP (Postfix default 50; 0 = no limit).
    pub smtpd_client_connection_count_limit: usize,
    /// Connections one client IP may make per `anvil_rate_time_unit` (0 = no limit).
    pub smtpd_client_connection_rate_limit: usize,
    /// MAIL FROM commands one client IP may send per `anvil_rate_time_unit` (0 = no limit).
    pub smtpd_client_message_rate_limit: usize,
    /// RCPT TO commands one client IP may send per `anvil_rate_time_unit` (0 = no limit).
    pub smtpd_client_recipient_rate_limit: usize,
    /// New TLS sessions one client IP may negotiate per `anvil_rate_time_unit` (0 = no limit).
    pub smtpd_client_new_tls_session_rate_limit: usize,
    /// AUTH commands one client IP may send per `anvil_rate_time_unit` (0 = no limit).
    pub smtpd_client_auth_rate_limit: usize,
    /// Clients exempt from the per-client count and rate limits (default `$mynetworks`).
    pub smtpd_client_event_limit_exceptions: Vec<String>,
    /// The per-client limits count IPv4 clients by this network prefix (Postfix 3.8; 32 =
    /// each address on its own).
    pub smtpd_client_ipv4_prefix_length: u8,
    /// The per-client limits count IPv6 clients by this network prefix (Postfix 3.8's 84: an
    /// attacker given a /64 cannot escape them by rotating addresses).
    pub smtpd_client_ipv6_prefix_length: u8,
    /// `regexp:`/`pcre:` tables applied to each primary message header by cleanup.
    pub header_checks: Vec<String>,
    /// Tables for MIME headers of body parts (default `$header_checks`).
    pub mime_header_checks: Vec<String>,
    /// Tables for the headers of attached messages (default `$header_checks`).
    pub nested_header_checks: Vec<String>,
    /// Tables applied to each body line by cleanup.
    pub body_checks: Vec<String>,
    /// mailroom-only: simultaneous SMTP connections in all (Postfix: smtpd's process limit).
    pub smtpd_process_limit: usize,
    /// `reject` (550 5.5.2, Postfix's `yes`), `normalize` (accept bare LF as a line end,
    /// never as part of the end-of-data mark) or `no`.
    pub smtpd_forbid_bare_newline: ForbidBareNewline,
    /// Postfix default `no`; ours `yes` (VRFY answers 252 and reveals nothing).
    pub disable_vrfy_command: bool,
    /// Transport map files (Postfix syntax: `example.com smtp:[10.0.0.5]:25`).
    pub transport_maps: Vec<String>,
    /// Domains delivered by the virtual(8) agent: plain domain names, or maps in which the
    /// domain is a key (Postfix's default `$virtual_mailbox_maps`).
    pub virtual_mailbox_domains: Vec<String>,
    /// `user@domain` (or `@domain`) → mailbox path under `virtual_mailbox_base`; a trailing
    /// `/` means Maildir.
    pub virtual_mailbox_maps: Vec<String>,
    /// The absolute directory every `virtual_mailbox_maps` result is relative to.
    pub virtual_mailbox_base: String,
    /// `user@domain` → the uid that owns the mailbox (`static:5000` for one for all).
    pub virtual_uid_maps: Vec<String>,
    /// `user@domain` → the gid that owns the mailbox.
    pub virtual_gid_maps: Vec<String>,
    /// Lowest uid `virtual_uid_maps` may give (Postfix 100).
    pub virtual_minimum_uid: usize,
    /// The largest a virtual mailbox (mbox) or one Maildir message may get; 0 = no limit.
    pub virtual_mailbox_limit: u64,
    /// How virtual mboxes are locked: `fcntl` and/or `dotlock` (Postfix's Linux default both).
    pub virtual_mailbox_lock: Vec<String>,
    /// The transport of virtual mailbox domains: `virtual` (the built-in agent).
    pub virtual_transport: String,
    /// `smtp:[127.0.0.1]:10024` sends new mail through an after-queue filter; empty = none.
    pub content_filter: String,
    /// Milters for mail from SMTP clients and for locally submitted mail
    /// (`inet:host:port`, `unix:/path`, `{ inet:host:port, default_action=accept }`).
    pub smtpd_milters: Vec<String>,
    pub non_smtpd_milters: Vec<String>,
    /// Per-client milter lists by client address (Postfix 3.2): the lookup result replaces
    /// `smtpd_milters` for that client, `DISABLE` turns milters off.
    pub smtpd_milter_maps: Vec<String>,
    /// `tempfail`, `accept`, `reject` or `quarantine`: when a milter is unavailable.
    pub milter_default_action: String,
    pub milter_protocol: usize,
    pub milter_connect_timeout: Duration,
    pub milter_command_timeout: Duration,
    pub milter_content_timeout: Duration,
    pub milter_connect_macros: Vec<String>,
    pub milter_helo_macros: Vec<String>,
    pub milter_mail_macros: Vec<String>,
    pub milter_rcpt_macros: Vec<String>,
    pub milter_data_macros: Vec<String>,
    pub milter_end_of_header_macros: Vec<String>,
    pub milter_end_of_data_macros: Vec<String>,
    /// The `{daemon_name}` macro (Postfix: `$myhostname`).
    pub milter_macro_daemon_name: String,
    /// The `v` macro.
    pub milter_macro_v: String,
    pub filter_destination_concurrency_limit: usize,
    pub smtp_destination_concurrency_limit: usize,
    /// mailroom-only: messages per time to one destination (the scheduler's destination
    /// name: a domain, or a next hop such as `[10.0.0.1]:25`), shared by a fleet.
    pub smtp_destination_rate_limit: Vec<(String, Rate)>,
    /// mailroom-only (Postfix: master.cf entries): named transports and the agent each
    /// runs (`slow=smtp`), for `transport_maps` results such as `slow:[mx.example.net]`.
    pub transports: Vec<(String, String)>,
    /// Postfix's `NAME_destination_concurrency_limit`, per named transport (`slow=3`).
    pub transport_destination_concurrency_limit: Vec<(String, usize)>,
    /// Messages per time to one destination of a named transport (`slow=60/m`).
    pub transport_destination_rate_limit: Vec<(String, Rate)>,
    /// mailroom-only: the Redis a fleet of nodes shares limits and suspensions through
    /// (`redis://host:6379/0`); empty = a single node.
    pub fleet_redis_url: String,
    /// mailroom-only: this node's name in the fleet; empty = `$myhostname`.
    pub fleet_node_name: String,
    /// Postfix: `default_destination_recipient_limit` for smtp (recipients per transaction).
    pub smtp_destination_recipient_limit: usize,
    /// `none`, `may` (opportunistic STARTTLS), `encrypt`, `verify`, `secure`, `dane` or
    /// `dane-only`.
    pub smtp_tls_security_level: SmtpTlsLevel,
    /// PEM CA bundle for `verify`/`secure`; empty = the system store (/etc/ssl/certs).
    /// Postfix: `smtp_tls_CAfile` (the field is snake case; the parameter keeps Postfix's name).
    pub smtp_tls_cafile: String,
    /// Names a `secure` certificate must match (`nexthop, dot-nexthop`).
    pub smtp_tls_secure_cert_match: Vec<String>,
    /// Names a `verify` certificate must match (`hostname`).
    pub smtp_tls_verify_cert_match: Vec<String>,
    /// tls_policy(5) files: `example.org secure match=mx.example.org`.
    pub smtp_tls_policy_maps: Vec<String>,
    /// SNI: empty (none), `hostname`, `nexthop` or a DNS name (Postfix 3.4).
    pub smtp_tls_servername: String,
    /// TLS versions at `may` (Postfix syntax, `>=TLSv1`).
    pub smtp_tls_protocols: String,
    /// TLS versions at `encrypt` and above (`>=TLSv1`).
    pub smtp_tls_mandatory_protocols: String,
    /// Cipher grade at `may` (`medium`; accepted, rustls's suites are all "high").
    pub smtp_tls_ciphers: String,
    /// Cipher grade at `encrypt` and above (`medium`; likewise).
    pub smtp_tls_mandatory_ciphers: String,
    /// Postfix: authenticate to servers that offer AUTH (default no).
    pub smtp_sasl_auth_enable: bool,
    /// Files of `[host]:port user:password` lines (Postfix text-map syntax).
    pub smtp_sasl_password_maps: Vec<String>,
    /// SASL restrictions outside TLS (`noplaintext, noanonymous`).
    pub smtp_sasl_security_options: Vec<String>,
    /// SASL restrictions inside TLS (mailroom default `noanonymous`).
    pub smtp_sasl_tls_security_options: Vec<String>,
    /// Look the sender up in `smtp_sasl_password_maps` first (default no).
    pub smtp_sender_dependent_authentication: bool,
    pub smtp_helo_name: String,
    /// Postfix: the local IPv4 address outgoing SMTP connections come from (empty = the
    /// system's choice); `smtp_bind_address6` the same for IPv6 (`::1` or `[::1]`).
    pub smtp_bind_address: String,
    pub smtp_bind_address6: String,
    /// Postfix 3.7: defer (4.4.0) instead of connecting from the system's choice when the
    /// bind address cannot be used (default no: warn and connect anyway).
    pub smtp_bind_address_enforce: bool,
    /// Postfix (2.11): how many times a cached connection may be reused (it carries at most
    /// this many plus one deliveries); 0 = no limit.
    pub smtp_connection_reuse_count_limit: usize,
    pub smtp_connect_timeout: Duration,
    /// How long an idle connection waits in the cache for the next delivery (Postfix
    /// `smtp_connection_cache_time_limit`, 2s; 0 = no caching).
    pub smtp_connection_cache_time_limit: Duration,
    pub smtp_helo_timeout: Duration,
    pub smtp_mail_timeout: Duration,
    pub smtp_rcpt_timeout: Duration,
    pub smtp_data_init_timeout: Duration,
    pub smtp_data_xfer_timeout: Duration,
    pub smtp_data_done_timeout: Duration,
    pub smtp_quit_timeout: Duration,
    /// Postfix: longest header or body line sent via SMTP, CRLF not counted (998); longer
    /// lines are broken with CRLF SPACE. 0 = never break.
    pub smtp_line_length_limit: usize,
    /// Postfix's LMTP client timeouts (`lmtp_*`, the same phases as `smtp_*`; LHLO is the
    /// EHLO of LMTP). `lmtp_connect_timeout = 0` (Postfix's default) means the system's limit.
    pub lmtp_connect_timeout: Duration,
    pub lmtp_lhlo_timeout: Duration,
    pub lmtp_mail_timeout: Duration,
    pub lmtp_rcpt_timeout: Duration,
    pub lmtp_data_init_timeout: Duration,
    pub lmtp_data_xfer_timeout: Duration,
    pub lmtp_data_done_timeout: Duration,
    pub lmtp_quit_timeout: Duration,
    /// Postfix: `$default_destination_concurrency_limit`.
    pub lmtp_destination_concurrency_limit: usize,
    /// Recipients per LMTP transaction (Postfix: `$default_destination_recipient_limit`, 50).
    pub lmtp_destination_recipient_limit: usize,
    pub lmtp_line_length_limit: usize,
    /// The `smtp_bind_address*` settings of the LMTP client (for `inet:` next hops).
    pub lmtp_bind_address: String,
    pub lmtp_bind_address6: String,
    pub lmtp_bind_address_enforce: bool,
    /// `smtp_connection_reuse_count_limit` for LMTP.
    pub lmtp_connection_reuse_count_limit: usize,
    /// Postfix: where mail for local users goes instead of the local mailbox, after alias
    /// expansion (`lmtp:unix:/run/dovecot/lmtp`); empty = the local agent delivers.
    pub mailbox_transport: String,
    /// mailroom-only: the port used for MX hosts (25; tests point it at a loopback port).
    pub smtp_default_port: u16,
    /// mailroom-only: DNS servers (`127.0.0.1:5353`); empty = /etc/resolv.conf.
    pub dns_nameservers: Vec<String>,
    /// The address families the SMTP and LMTP clients use: `all`, `ipv4`, `ipv6`
    /// ([`InetProtocols`]).
    pub inet_protocols: String,
    /// mailroom-only (Postfix signs through a milter such as OpenDKIM): the domains whose
    /// outgoing SMTP mail is DKIM-signed, each with its selector and private key file.
    pub dkim_sign: Vec<DkimSign>,
    /// mailroom-only (Postfix needs an external policy daemon): honour MTA-STS (RFC 8461)
    /// policies of recipient domains.
    pub smtp_mta_sts: bool,
    /// mailroom-only: the CA certificates (PEM) that MTA-STS trusts for policy hosts and MX
    /// certificates; empty = the system's roots.
    pub smtp_mta_sts_ca_file: String,
    /// mailroom-only: the HTTPS port of MTA-STS policy hosts (443; tests use a loopback port).
    pub smtp_mta_sts_policy_port: u16,
    /// Bytes of the original message returned in a bounce (Postfix default 50000).
    pub bounce_size_limit: u64,
    /// Postfix: `maillog_file`. Empty = syslog when `syslog_socket` is set, else standard
    /// error; set, it wins over syslog (as in Postfix).
    pub maillog_file: String,
    /// Postfix: `syslog_name`, the ident before `/service[pid]` (default `mailroom`;
    /// `postfix` makes fail2ban's and pflogsumm's Postfix patterns match unchanged).
    pub syslog_name: String,
    /// Postfix: `syslog_facility` (default `mail`).
    pub syslog_facility: SyslogFacility,
    /// mailroom-only: the syslog datagram socket (`/dev/log` in the system profile; empty =
    /// no syslog, the embedded default). Postfix has no such knob: it always uses /dev/log.
    pub syslog_socket: String,
    /// mailroom-only: `text` (Postfix-style lines) or `json`.
    pub log_format: LogFormat,
    /// mailroom-only: identical warnings within this window are folded into one
    /// `... repeated N times` line (default 60s).
    pub log_repeat_window: Duration,
    // Address rewriting (Postfix's canonical(5), virtual(5), relocated(5), generic(5)).
    /// Maps for sender and recipient addresses, envelope and headers (cleanup).
    pub canonical_maps: Vec<String>,
    pub sender_canonical_maps: Vec<String>,
    pub recipient_canonical_maps: Vec<String>,
    /// Which addresses `canonical_maps` rewrites: `envelope_sender`, `envelope_recipient`,
    /// `header_sender`, `header_recipient`.
    pub canonical_classes: Vec<String>,
    pub sender_canonical_classes: Vec<String>,
    pub recipient_canonical_classes: Vec<String>,
    /// `example.com`: `user@host.example.com` becomes `user@example.com`.
    pub masquerade_domains: Vec<String>,
    pub masquerade_classes: Vec<String>,
    /// Local parts that are never masqueraded (`root`).
    pub masquerade_exceptions: Vec<String>,
    /// `addr  addr, addr`: envelope recipients expanded one-to-many in cleanup.
    pub virtual_alias_maps: Vec<String>,
    /// Domains served only by `virtual_alias_maps` (names, or maps whose keys are domains).
    pub virtual_alias_domains: Vec<String>,
    pub virtual_alias_recursion_limit: usize,
    pub virtual_alias_expansion_limit: usize,
    /// `canonical`, `virtual`, `alias`, `forward`, `include`, `generic`.
    pub propagate_unmatched_extensions: Vec<String>,
    /// `old@example.com  new@example.net`: bounced 5.1.6 "User has moved to ...".
    pub relocated_maps: Vec<String>,
    /// Sender and header addresses rewritten when mail leaves over SMTP.
    pub smtp_generic_maps: Vec<String>,
}

impl Config {
    /// The no-config default: unprivileged, everything under one data directory
    /// (`$MAILROOM_DATA`, else `$XDG_DATA_HOME/mailroom`, else `$HOME/.local/share/mailroom`).
    pub fn embedded_default() -> Config {
        defaults::embedded(&defaults::Environment::current())
    }

    /// The system install's default (`profile = "system"`): `/var/spool/mailroom`, port 25,
    /// user `mailroom`, group `mailroom-drop`.
    pub fn system_default() -> Config {
        defaults::system()
    }

    /// Finds and reads the configuration: `explicit`, else `$MAILROOM_CONFIG`, else
    /// [`SYSTEM_CONFIG_PATH`] if it exists, else the embedded default.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        load::load(explicit)
    }

    /// Builds a configuration from TOML text; `path` is only used in errors and `source`.
    pub fn from_str(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
        load::parse(text, path, &defaults::Environment::current())
    }

    /// Every parameter as `(name, value)` in Postfix's text form, alphabetical by name
    /// (Postfix names: `2bounce_notice_recipient`), including `profile`.
    pub fn parameters(&self) -> Vec<(String, String)> {
        print::parameters(self)
    }
}

/// A message rate: `count` messages per `per` (`300/m` is 300 a minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u64,
    pub per: Duration,
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s".to_string(),
            60 => "m".to_string(),
            3600 => "h".to_string(),
            86_400 => "d".to_string(),
            n => format!("{n}s"),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// One `dkim_sign` entry: sign mail from `domain` with the key in `key` under `selector`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSign {
    /// The signing domain (`d=`), lower case.
    pub domain: String,
    /// The selector (`s=`): the key's DNS record is `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// The PEM private key (RSA or Ed25519, PKCS#8 or PKCS#1).
    pub key: PathBuf,
}

impl DkimSign {
    /// The text form of one `dkim_sign` item: `domain:selector:keyfile`.
    pub fn to_text(&self) -> String {
        format!("{}:{}:{}", self.domain, self.selector, self.key.display())
    }

    /// Parses `domain:selector:keyfile` (the key file may itself contain colons).
    pub fn parse(text: &str) -> Result<DkimSign, String> {
        let mut parts = text.trim().splitn(3, ':');
        let (domain, selector, key) = match (parts.next(), parts.next(), parts.next()) {
            (Some(d), Some(s), Some(k)) if !d.is_empty() && !s.is_empty() && !k.is_empty() => {
                (d, s, k)
            }
            _ => {
                return Err(format!(
                    "not a DKIM signing entry: {text:?} (use {{ domain = \"example.com\", selector = \"mail2026\", key = \"/path/to/key\" }})"
                ))
            }
        };
        let label = |s: &str| {
            s.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        };
        if !label(domain) || !label(selector) {
            return Err(format!(
                "not a domain and selector: {domain:?}, {selector:?}"
            ));
        }
        Ok(DkimSign {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_string(),
            key: PathBuf::from(key),
        })
    }
}

/// Which built-in default a configuration starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// [`Config::embedded_default`]: per-user, no privileges.
    #[default]
    Embedded,
    /// [`Config::system_default`]: a system install.
    System,
}

impl Profile {
    /// The TOML spelling: `embedded` or `system`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Embedded => "embedded",
            Profile::System => "system",
        }
    }
}

/// A parameter whose value may depend on overload, as Postfix's stress-adaptive defaults do
/// (`smtpd_timeout = ${stress?{10}:{300}}s`): `stress` applies while the SMTP server is
/// under stress (near `smtpd_process_limit`), `normal` otherwise. A plain value in the file
/// sets both, which turns the adaptation off for that parameter (as in Postfix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stressed<T> {
    pub normal: T,
    pub stress: T,
}

impl<T: Copy> Stressed<T> {
    /// The value for the current state.
    pub fn get(&self, stress: bool) -> T {
        if stress {
            self.stress
        } else {
            self.normal
        }
    }

    /// A value that does not change under stress.
    pub fn fixed(value: T) -> Stressed<T> {
        Stressed {
            normal: value,
            stress: value,
        }
    }
}

/// A yes/no setting whose default the daemon decides from what it finds (`auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toggle {
    Yes,
    No,
    Auto,
}

impl fmt::Display for Toggle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Toggle::Yes => "yes",
            Toggle::No => "no",
            Toggle::Auto => "auto",
        })
    }
}

impl Toggle {
    /// `yes` and `no` as they are; `auto` as `auto` says.
    pub fn resolve(self, auto: bool) -> bool {
        match self {
            Toggle::Yes => true,
            Toggle::No => false,
            Toggle::Auto => auto,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A configuration problem: which file, which line, which key, and what is wrong.
/// Displays as `file:line: key: message` (`<config>` when there is no file; the line and key
/// are left out when unknown or empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}", file.display())?,
            None => f.write_str("<config>")?,
        }
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests;
