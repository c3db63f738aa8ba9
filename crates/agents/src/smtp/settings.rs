//! The SMTP client's settings: the `smtp_*` parameters of [`config::Config`] (or the
//! `lmtp_*` ones for the LMTP client), checked and typed once so the delivery path never
//! parses strings.
//!
//! Inputs → outputs: a [`Config`] → [`SmtpSettings`] ([`SmtpSettings::from_config`],
//! [`SmtpSettings::lmtp_from_config`]).
//! Invariants: every timeout is non-zero (a zero from the configuration becomes one second,
//! so no phase can hang forever or fail instantly); a recipient limit of 0 means no limit.
//! Security stance: trusts the configuration (the operator's word); no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::Config;
pub use config::{InetProtocols, SmtpTlsLevel, TlsVersions};

/// Both TLS versions (a protocol list the configuration check let through cannot fail).
const ALL_VERSIONS: TlsVersions = TlsVersions {
    tls12: true,
    tls13: true,
};

fn versions(text: &str) -> TlsVersions {
    TlsVersions::parse(text).unwrap_or(ALL_VERSIONS)
}

pub use super::sasl::SaslSettings;

/// Postfix's `smtp_rset_timeout` default; not a mailroom parameter (yet).
const RSET_TIMEOUT: Duration = Duration::from_secs(20);
/// Postfix's `lmtp_connection_cache_time_limit` default: how long an idle LMTP connection
/// waits for the next message (SMTP: the parameter `smtp_connection_cache_time_limit`).
const CONNECTION_CACHE_TIME: Duration = Duration::from_secs(2);
/// Postfix's `smtp_connection_reuse_time_limit` default: older connections are not reused.
const CONNECTION_REUSE_TIME: Duration = Duration::from_secs(300);
/// Postfix's `smtp_mx_address_limit` default: IP addresses tried per delivery.
const MX_ADDRESS_LIMIT: usize = 5;

/// Postfix's `lmtp_rset_timeout` default.
const LMTP_RSET_TIMEOUT: Duration = Duration::from_secs(20);
/// What `lmtp_connect_timeout = 0` (Postfix: "use the operating system built-in time
/// limit") becomes: about what Linux takes to give up on a TCP connect.
const OS_CONNECT_TIMEOUT: Duration = Duration::from_secs(127);
/// The LMTP port (RFC 2033 registers none; Postfix and Dovecot use 24).
const LMTP_PORT: u16 = 24;

/// Which protocol the client speaks: SMTP (RFC 5321) or LMTP (RFC 2033: LHLO instead of
/// EHLO, no HELO fallback, no STARTTLS, one reply per accepted recipient after the dot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    #[default]
    Smtp,
    Lmtp,
}

/// Per-phase timeouts (Postfix `smtp_*_timeout`). Each bounds one read or one write, like
/// Postfix's: a slow but progressing body transfer is not cut off, a stalled one is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Greeting, EHLO/HELO and STARTTLS.
    pub helo: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    /// The reply to DATA.
    pub data_init: Duration,
    /// Each write of the message body.
    pub data_xfer: Duration,
    /// The final dot and its reply (the "message may be sent more than once" window).
    pub data_done: Duration,
    pub rset: Duration,
    pub quit: Duration,
}

impl Timeouts {
    /// Every phase with the same limit (tests).
    pub fn uniform(limit: Duration) -> Timeouts {
        Timeouts {
            connect: limit,
            helo: limit,
            mail: limit,
            rcpt: limit,
            data_init: limit,
            data_xfer: limit,
            data_done: limit,
            rset: limit,
            quit: limit,
        }
    }

    fn non_zero(self) -> Timeouts {
        let fix = |d: Duration| {
            if d.is_zero() {
                Duration::from_secs(1)
            } else {
                d
            }
        };
        Timeouts {
            connect: fix(self.connect),
            helo: fix(self.helo),
            mail: fix(self.mail),
            rcpt: fix(self.rcpt),
            data_init: fix(self.data_init),
            data_xfer: fix(self.data_xfer),
            data_done: fix(self.data_done),
            rset: fix(self.rset),
            quit: fix(self.quit),
        }
    }
}

/// The local addresses outgoing TCP connections come from (Postfix `smtp_bind_address`,
/// `smtp_bind_address6`, `smtp_bind_address_enforce`; `lmtp_…` for LMTP).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindAddresses {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
    /// A bind that fails defers (4.4.0) instead of connecting from the system's choice.
    pub enforce: bool,
}

impl BindAddresses {
    /// From the parameters' text (checked at configuration load; anything else is none).
    pub fn parse(v4: &str, v6: &str, enforce: bool) -> BindAddresses {
        let v6 = v6.trim();
        let v6 = v6
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(v6);
        BindAddresses {
            v4: v4.trim().parse().ok(),
            v6: v6.parse().ok(),
            enforce,
        }
    }

    /// The local address for a connection to `to`, of its family, if one is set.
    pub fn for_peer(&self, to: &SocketAddr) -> Option<IpAddr> {
        match to {
            SocketAddr::V4(_) => self.v4.map(IpAddr::V4),
            SocketAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
    }
}

/// Everything the SMTP client needs from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpSettings {
    /// SMTP or LMTP.
    pub dialect: Dialect,
    /// `smtp_helo_name`: the name sent in EHLO/HELO.
    pub helo_name: String,
    /// `smtp_tls_security_level`: the level of destinations without a policy entry.
    pub tls_level: SmtpTlsLevel,
    /// `smtp_tls_CAfile`; empty = the system store.
    pub ca_file: String,
    /// `smtp_tls_secure_cert_match`.
    pub secure_cert_match: Vec<String>,
    /// `smtp_tls_verify_cert_match`.
    pub verify_cert_match: Vec<String>,
    /// `smtp_tls_policy_maps`.
    pub tls_policy_maps: Vec<String>,
    /// `smtp_tls_servername`: empty, `hostname`, `nexthop` or a name.
    pub tls_servername: String,
    /// `smtp_tls_protocols` (at may) and `smtp_tls_mandatory_protocols` (above).
    pub tls_protocols: TlsVersions,
    pub tls_mandatory_protocols: TlsVersions,
    /// `smtp_sasl_*`.
    pub sasl: SaslSettings,
    /// `smtp_destination_recipient_limit`: recipients per transaction; 0 = no limit.
    pub recipient_limit: usize,
    pub timeouts: Timeouts,
    /// `smtp_default_port`: the port for MX hosts and for nexthops without one.
    pub default_port: u16,
    /// `dns_nameservers` (`127.0.0.1:5353`, `::1`, `[::1]:53`); empty = /etc/resolv.conf.
    pub dns_nameservers: Vec<String>,
    /// `inet_protocols`: the address families looked up and connected to.
    pub inet_protocols: InetProtocols,
    /// How long an idle connection is kept for the next message to the same nexthop.
    pub connection_cache_time: Duration,
    /// Connections older than this are closed instead of reused.
    pub connection_reuse_time: Duration,
    /// `smtp_destination_concurrency_limit` (`lmtp_…`): the most connections one nexthop
    /// has in use at once, so the most kept idle for it.
    pub destination_concurrency_limit: usize,
    /// `smtp_mx_address_limit`: IP addresses tried per delivery (0 = no limit).
    pub mx_address_limit: usize,
    /// `smtp_line_length_limit`: longer message lines are broken with CR LF SPACE (0 = never).
    pub line_length_limit: usize,
    /// `smtp_bind_address`, `smtp_bind_address6`, `smtp_bind_address_enforce`.
    pub bind: BindAddresses,
    /// `smtp_connection_reuse_count_limit`: a session taken from the cache this many times
    /// is closed after its delivery, so it carries at most this many plus one (0 = no limit).
    pub connection_reuse_count_limit: usize,
    /// `queue_directory`: what a relative LMTP socket path (`unix:private/dovecot-lmtp`) is
    /// relative to, as for Postfix's daemons, which run there.
    pub queue_directory: PathBuf,
}

/// Postfix separates match names with commas, spaces or colons (`nexthop:dot-nexthop`).
fn match_words(items: &[String]) -> Vec<String> {
    items
        .iter()
        .flat_map(|item| item.split([',', ':', ' ', '\t']))
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect()
}

impl SmtpSettings {
    pub fn from_config(cfg: &Config) -> SmtpSettings {
        let helo_name = if cfg.smtp_helo_name.trim().is_empty() {
            cfg.myhostname.clone()
        } else {
            cfg.smtp_helo_name.clone()
        };
        let timeouts = Timeouts {
            connect: cfg.smtp_connect_timeout,
            helo: cfg.smtp_helo_timeout,
            mail: cfg.smtp_mail_timeout,
            rcpt: cfg.smtp_rcpt_timeout,
            data_init: cfg.smtp_data_init_timeout,
            data_xfer: cfg.smtp_data_xfer_timeout,
            data_done: cfg.smtp_data_done_timeout,
            rset: RSET_TIMEOUT,
            quit: cfg.smtp_quit_timeout,
        };
        SmtpSettings {
            dialect: Dialect::Smtp,
            helo_name,
            tls_level: cfg.smtp_tls_security_level,
            ca_file: cfg.smtp_tls_cafile.clone(),
            secure_cert_match: match_words(&cfg.smtp_tls_secure_cert_match),
            verify_cert_match: match_words(&cfg.smtp_tls_verify_cert_match),
            tls_policy_maps: cfg.smtp_tls_policy_maps.clone(),
            tls_servername: cfg.smtp_tls_servername.clone(),
            tls_protocols: versions(&cfg.smtp_tls_protocols),
            tls_mandatory_protocols: versions(&cfg.smtp_tls_mandatory_protocols),
            sasl: SaslSettings {
                enabled: cfg.smtp_sasl_auth_enable,
                password_maps: cfg.smtp_sasl_password_maps.clone(),
                security_options: cfg.smtp_sasl_security_options.clone(),
                tls_security_options: cfg.smtp_sasl_tls_security_options.clone(),
                sender_dependent: cfg.smtp_sender_dependent_authentication,
            },
            recipient_limit: cfg.smtp_destination_recipient_limit,
            timeouts: timeouts.non_zero(),
            default_port: cfg.smtp_default_port,
            dns_nameservers: cfg.dns_nameservers.clone(),
            inet_protocols: InetProtocols::parse(&cfg.inet_protocols).unwrap_or_default(),
            connection_cache_time: cfg.smtp_connection_cache_time_limit,
            connection_reuse_time: CONNECTION_REUSE_TIME,
            destination_concurrency_limit: cfg.smtp_destination_concurrency_limit,
            mx_address_limit: MX_ADDRESS_LIMIT,
            line_length_limit: cfg.smtp_line_length_limit,
            bind: BindAddresses::parse(
                &cfg.smtp_bind_address,
                &cfg.smtp_bind_address6,
                cfg.smtp_bind_address_enforce,
            ),
            connection_reuse_count_limit: cfg.smtp_connection_reuse_count_limit,
            queue_directory: cfg.queue_directory.clone(),
        }
    }

    /// The LMTP client's settings (Postfix's lmtp(8) is smtp(8) with `lmtp_*` parameters):
    /// LHLO with `$myhostname`, no TLS (Postfix's `lmtp_tls_security_level` is empty), port
    /// 24 for `inet:` next hops without one, `lmtp_connect_timeout = 0` meaning the
    /// system's limit.
    pub fn lmtp_from_config(cfg: &Config) -> SmtpSettings {
        let connect = if cfg.lmtp_connect_timeout.is_zero() {
            OS_CONNECT_TIMEOUT
        } else {
            cfg.lmtp_connect_timeout
        };
        let timeouts = Timeouts {
            connect,
            helo: cfg.lmtp_lhlo_timeout,
            mail: cfg.lmtp_mail_timeout,
            rcpt: cfg.lmtp_rcpt_timeout,
            data_init: cfg.lmtp_data_init_timeout,
            data_xfer: cfg.lmtp_data_xfer_timeout,
            data_done: cfg.lmtp_data_done_timeout,
            rset: LMTP_RSET_TIMEOUT,
            quit: cfg.lmtp_quit_timeout,
        };
        SmtpSettings {
            dialect: Dialect::Lmtp,
            helo_name: cfg.myhostname.clone(),
            // Postfix's lmtp_tls_* and lmtp_sasl_* are not implemented: LMTP is local.
            tls_level: SmtpTlsLevel::None,
            ca_file: String::new(),
            secure_cert_match: Vec::new(),
            verify_cert_match: Vec::new(),
            tls_policy_maps: Vec::new(),
            tls_servername: String::new(),
            tls_protocols: ALL_VERSIONS,
            tls_mandatory_protocols: ALL_VERSIONS,
            sasl: SaslSettings::default(),
            recipient_limit: cfg.lmtp_destination_recipient_limit,
            timeouts: timeouts.non_zero(),
            default_port: LMTP_PORT,
            dns_nameservers: cfg.dns_nameservers.clone(),
            inet_protocols: InetProtocols::parse(&cfg.inet_protocols).unwrap_or_default(),
            connection_cache_time: CONNECTION_CACHE_TIME,
            connection_reuse_time: CONNECTION_REUSE_TIME,
            destination_concurrency_limit: cfg.lmtp_destination_concurrency_limit,
            mx_address_limit: MX_ADDRESS_LIMIT,
            line_length_limit: cfg.lmtp_line_length_limit,
            bind: BindAddresses::parse(
                &cfg.lmtp_bind_address,
                &cfg.lmtp_bind_address6,
                cfg.lmtp_bind_address_enforce,
            ),
            connection_reuse_count_limit: cfg.lmtp_connection_reuse_count_limit,
            queue_directory: cfg.queue_directory.clone(),
        }
    }

    /// The log target and program name of this client: `smtp` or `lmtp`.
    pub fn program(&self) -> &'static str {
        match self.dialect {
            Dialect::Smtp => "smtp",
            Dialect::Lmtp => "lmtp",
        }
    }

    /// Where a unix socket is: `path` itself when absolute, else under `queue_directory`
    /// (Postfix's daemons `chdir` there, so `private/dovecot-lmtp` is
    /// `$queue_directory/private/dovecot-lmtp`; mailroom never changes its working directory).
    pub(crate) fn socket_path(&self, path: &Path) -> PathBuf {
        match path.is_absolute() {
            true => path.to_path_buf(),
            false => self.queue_directory.join(path),
        }
    }

    /// Recipients per transaction, with 0 meaning no limit.
    pub(crate) fn recipients_per_transaction(&self) -> usize {
        if self.recipient_limit == 0 {
            usize::MAX
        } else {
            self.recipient_limit
        }
    }

    /// The timeouts with zeros replaced (hand-built settings may hold zeros).
    pub(crate) fn checked_timeouts(&self) -> Timeouts {
        self.timeouts.clone().non_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_embedded_default() {
        let cfg = Config::embedded_default();
        let s = SmtpSettings::from_config(&cfg);
        assert_eq!(s.tls_level, SmtpTlsLevel::May);
        assert_eq!(s.secure_cert_match, ["nexthop", "dot-nexthop"]);
        assert_eq!(s.verify_cert_match, ["hostname"]);
        assert_eq!(s.sasl.security_options, ["noplaintext", "noanonymous"]);
        assert!(!s.sasl.enabled && !s.sasl.sender_dependent);
        assert_eq!(s.recipient_limit, 50);
        assert_eq!(s.timeouts.data_done, Duration::from_secs(600));
        assert_eq!(s.timeouts.rset, RSET_TIMEOUT);
        assert_eq!(s.default_port, 25);
        assert_eq!(s.line_length_limit, 998);
        assert!(!s.helo_name.is_empty());
    }

    #[test]
    fn lmtp_settings_use_the_lmtp_parameters() {
        let mut cfg = Config::embedded_default();
        cfg.lmtp_data_done_timeout = Duration::from_secs(7);
        let s = SmtpSettings::lmtp_from_config(&cfg);
        assert_eq!((s.dialect, s.program()), (Dialect::Lmtp, "lmtp"));
        assert_eq!(s.timeouts.data_done, Duration::from_secs(7));
        assert_eq!(
            s.timeouts.connect, OS_CONNECT_TIMEOUT,
            "0s = the system's limit"
        );
        assert_eq!((s.default_port, s.tls_level), (24, SmtpTlsLevel::None));
        assert_eq!(s.helo_name, cfg.myhostname);
        assert_eq!(s.bind, BindAddresses::default());
    }

    #[test]
    fn bind_addresses_by_family() {
        let mut cfg = Config::embedded_default();
        cfg.smtp_bind_address = "127.0.0.2".into();
        cfg.smtp_bind_address6 = "[::1]".into();
        cfg.lmtp_bind_address6 = "2001:db8::5".into();
        cfg.lmtp_bind_address_enforce = true;
        cfg.smtp_connection_reuse_count_limit = 3;
        let s = SmtpSettings::from_config(&cfg);
        let v4: SocketAddr = "192.0.2.1:25".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:25".parse().unwrap();
        assert_eq!(s.bind.for_peer(&v4), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(s.bind.for_peer(&v6), Some("::1".parse().unwrap()));
        assert!(!s.bind.enforce);
        assert_eq!(s.connection_reuse_count_limit, 3);
        let l = SmtpSettings::lmtp_from_config(&cfg);
        assert_eq!(l.bind.for_peer(&v4), None);
        assert_eq!(l.bind.for_peer(&v6), Some("2001:db8::5".parse().unwrap()));
        assert!(l.bind.enforce);
        assert_eq!(l.connection_reuse_count_limit, 0);
    }

    #[test]
    fn relative_socket_paths_are_under_the_queue_directory() {
        let mut cfg = Config::embedded_default();
        cfg.queue_directory = "/var/spool/mailroom".into();
        let s = SmtpSettings::lmtp_from_config(&cfg);
        assert_eq!(
            s.socket_path(Path::new("private/dovecot-lmtp")),
            Path::new("/var/spool/mailroom/private/dovecot-lmtp")
        );
        assert_eq!(
            s.socket_path(Path::new("/run/dovecot/lmtp")),
            Path::new("/run/dovecot/lmtp")
        );
    }

    #[test]
    fn zero_timeouts_and_limits() {
        let mut cfg = Config::embedded_default();
        cfg.smtp_mail_timeout = Duration::ZERO;
        cfg.smtp_destination_recipient_limit = 0;
        let s = SmtpSettings::from_config(&cfg);
        assert_eq!(s.timeouts.mail, Duration::from_secs(1));
        assert_eq!(s.recipients_per_transaction(), usize::MAX);
    }
}
