//! The two starting points a configuration is built from: the embedded default (unprivileged,
//! everything under one data directory, SMTP on 127.0.0.1:2525) and the system profile
//! (`/var/spool/mailroom`, port 25, a dedicated `mailroom` user).
//!
//! Both share Postfix's defaults for every parameter Postfix has; only the site-specific
//! values (paths, owners, listeners) differ. Host and user facts come from the system
//! (`sys::hostname`, `sys::user_by_uid`, `sys::group_name`); environment facts come in through
//! [`Environment`] so tests need not touch the process environment.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{
    Config, ForbidBareNewline, LogFormat, Profile, SmtpTlsLevel, Stressed, TlsLevel, Toggle,
};

/// The environment variables the embedded default depends on (empty values count as unset).
#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    pub mailroom_data: Option<OsString>,
    pub xdg_data_home: Option<OsString>,
    pub home: Option<OsString>,
}

impl Environment {
    pub(crate) fn current() -> Environment {
        let var = |name| std::env::var_os(name).filter(|value| !value.is_empty());
        Environment {
            mailroom_data: var("MAILROOM_DATA"),
            xdg_data_home: var("XDG_DATA_HOME"),
            home: var("HOME"),
        }
    }

    /// `MAILROOM_DATA`, else `$XDG_DATA_HOME/mailroom`, else `$HOME/.local/share/mailroom`,
    /// else `./mailroom-data`.
    pub(crate) fn data_directory(&self) -> PathBuf {
        if let Some(data) = &self.mailroom_data {
            PathBuf::from(data)
        } else if let Some(xdg) = &self.xdg_data_home {
            Path::new(xdg).join("mailroom")
        } else if let Some(home) = &self.home {
            Path::new(home).join(".local/share/mailroom")
        } else {
            PathBuf::from("./mailroom-data")
        }
    }
}

/// The values that differ between the embedded default and the system profile.
struct Site {
    profile: Profile,
    data_directory: PathBuf,
    queue_directory: PathBuf,
    mail_spool_directory: PathBuf,
    alias_maps: Vec<String>,
    local_recipient_maps: Vec<String>,
    mail_owner: String,
    setgid_group: String,
    smtpd_listen: SocketAddr,
    postdrop_path: PathBuf,
    password_file: PathBuf,
    syslog_socket: String,
}

pub(crate) fn embedded(env: &Environment) -> Config {
    let data = env.data_directory();
    let (user, group) = current_user_and_group();
    with_postfix_defaults(Site {
        profile: Profile::Embedded,
        queue_directory: data.join("queue"),
        mail_spool_directory: data.join("mail"),
        alias_maps: vec![data.join("aliases").display().to_string()],
        password_file: data.join("passwd"),
        local_recipient_maps: Vec::new(),
        data_directory: data,
        mail_owner: user,
        setgid_group: group,
        smtpd_listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
        postdrop_path: beside_current_exe("mailroom-postdrop"),
        // A private daemon logs to standard error (or maillog_file), not to the system log.
        syslog_socket: String::new(),
    })
}

/// The system profile. `local_recipient_maps` is stored expanded: the passwd file plus the
/// alias maps (Postfix writes `unix:passwd.byname $alias_maps`).
pub(crate) fn system() -> Config {
    with_postfix_defaults(Site {
        profile: Profile::System,
        data_directory: PathBuf::from("/var/lib/mailroom"),
        queue_directory: PathBuf::from("/var/spool/mailroom"),
        mail_spool_directory: PathBuf::from("/var/mail"),
        alias_maps: vec!["/etc/aliases".to_string()],
        local_recipient_maps: vec!["unix:passwd.byname".to_string(), "/etc/aliases".to_string()],
        mail_owner: "mailroom".to_string(),
        setgid_group: "mailroom-drop".to_string(),
        smtpd_listen: SocketAddr::from(([0, 0, 0, 0], 25)),
        postdrop_path: PathBuf::from("/usr/sbin/mailroom-postdrop"),
        password_file: PathBuf::from("/etc/mailroom/passwd"),
        // The system's MTA logs where Debian's Postfix does: syslog, facility mail.
        syslog_socket: "/dev/log".to_string(),
    })
}

fn with_postfix_defaults(site: Site) -> Config {
    let myhostname = hostname();
    let hostname_copy = myhostname.clone();
    let mydomain = domain_of(&myhostname);
    let seconds = Duration::from_secs;
    let words = |list: &[&str]| list.iter().map(|word| word.to_string()).collect();
    Config {
        source: None,
        profile: site.profile,
        data_directory: site.data_directory,
        queue_directory: site.queue_directory,
        mail_spool_directory: site.mail_spool_directory,
        home_mailbox: String::new(),
        forward_path: "$home/.forward${recipient_delimiter}${extension}, $home/.forward"
            .to_string(),
        mailbox_command: String::new(),
        recipient_delimiter: String::new(),
        command_time_limit: seconds(1000),
        mydestination: default_mydestination(&myhostname, &mydomain),
        myorigin: myhostname.clone(),
        myhostname,
        mydomain,
        mynetworks: words(&["127.0.0.0/8", "[::1]/128"]),
        relay_domains: Vec::new(),
        relayhost: String::new(),
        alias_maps: site.alias_maps,
        local_recipient_maps: site.local_recipient_maps,
        allow_mail_to_commands: words(&["alias", "forward"]),
        allow_mail_to_files: words(&["alias", "forward"]),
        default_privs: "nobody".to_string(),
        mail_owner: site.mail_owner,
        setgid_group: site.setgid_group,
        postdrop_path: site.postdrop_path,
        queue_minfree: 100 << 20,
        queue_minfree_inodes: 1000,
        queue_prezero_segments: Toggle::Auto,
        queue_dsync_writes: Toggle::Auto,
        maildrop_size_limit: 256 << 20,
        maildrop_count_limit: 10_000,
        submit_timeout: seconds(30),
        message_size_limit: 10_240_000,
        header_size_limit: 102_400,
        mailbox_size_limit: 51_200_000,
        hopcount_limit: 50,
        queue_run_delay: seconds(300),
        doctor_history_interval: seconds(60),
        minimal_backoff_time: seconds(300),
        maximal_backoff_time: seconds(4000),
        maximal_queue_lifetime: seconds(5 * 86_400),
        bounce_queue_lifetime: seconds(5 * 86_400),
        delay_warning_time: Duration::ZERO,
        default_process_limit: 100,
        qmgr_message_active_limit: 20_000,
        // Postfix: 2. One delivery per mailbox at a time keeps a mailbox's mail in queue
        // order (two raced for the mailbox lock and reordered it), and costs nothing: the
        // lock lets one writer in anyway (1,000 messages to one mbox: 4.3 s at 1, 5.0 s at 2).
        local_destination_concurrency_limit: 1,
        default_destination_concurrency_limit: 20,
        double_bounce_recipient: "postmaster".to_string(),
        bounce_notice_recipient: "postmaster".to_string(),
        soft_bounce: false,
        smtpd_listen: vec![site.smtpd_listen],
        submission_listen: Vec::new(),
        reinject_listen: Vec::new(),
        http_listen: Vec::new(),
        http_allow_remote: false,
        http_admin_token_file: String::new(),
        smtpd_banner: format!("{host} ESMTP mailroom", host = hostname_copy),
        smtpd_tls_cert_file: String::new(),
        smtpd_tls_key_file: String::new(),
        smtpd_tls_security_level: TlsLevel::May,
        smtpd_sasl_auth_enable: false,
        smtpd_sasl_password_file: site.password_file,
        smtpd_recipient_limit: 1000,
        smtpd_recipient_overshoot_limit: 1000,
        smtpd_timeout: Stressed {
            normal: seconds(300),
            stress: seconds(10),
        },
        smtpd_per_request_deadline: Stressed {
            normal: false,
            stress: true,
        },
        smtpd_min_data_rate: 500,
        smtpd_session_deadline: Stressed {
            normal: seconds(3600),
            stress: seconds(120),
        },
        smtpd_hard_error_limit: Stressed {
            normal: 20,
            stress: 1,
        },
        smtpd_soft_error_limit: 10,
        smtpd_junk_command_limit: Stressed {
            normal: 100,
            stress: 1,
        },
        smtpd_error_sleep_time: seconds(1),
        smtpd_helo_required: false,
        smtpd_forbid_unauth_pipelining: true,
        smtpd_client_restrictions: Vec::new(),
        smtpd_helo_restrictions: Vec::new(),
        smtpd_sender_restrictions: Vec::new(),
        smtpd_relay_restrictions: words(&[
            "permit_mynetworks",
            "permit_sasl_authenticated",
            "defer_unauth_destination",
        ]),
        smtpd_recipient_restrictions: Vec::new(),
        smtpd_data_restrictions: Vec::new(),
        smtpd_end_of_data_restrictions: Vec::new(),
        smtpd_restriction_classes: Vec::new(),
        smtpd_delay_reject: true,
        smtpd_policy_service_timeout: seconds(100),
        smtpd_policy_service_default_action: "451 4.3.5 Server configuration problem".to_string(),
        smtpd_policy_service_max_idle: seconds(300),
        smtpd_policy_service_max_ttl: seconds(1000),
        smtpd_policy_service_try_limit: 2,
        smtpd_policy_service_retry_delay: seconds(1),
        smtpd_policy_service_request_limit: 0,
        reject_code: 554,
        defer_code: 450,
        access_map_reject_code: 554,
        access_map_defer_code: 450,
        invalid_hostname_reject_code: 501,
        non_fqdn_reject_code: 504,
        unknown_address_reject_code: 450,
        unknown_hostname_reject_code: 450,
        unknown_client_reject_code: 450,
        relay_domains_reject_code: 554,
        maps_rbl_reject_code: 554,
        rbl_reply_maps: Vec::new(),
        default_rbl_reply: "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}".to_string(),
        smtpd_client_auth_failure_limit: 10,
        anvil_rate_time_unit: seconds(60),
        smtpd_client_connection_count_limit: 50,
        smtpd_client_connection_rate_limit: 0,
        smtpd_client_message_rate_limit: 0,
        smtpd_client_recipient_rate_limit: 0,
        smtpd_client_new_tls_session_rate_limit: 0,
        smtpd_client_auth_rate_limit: 0,
        smtpd_client_event_limit_exceptions: words(&["127.0.0.0/8", "[::1]/128"]),
        smtpd_client_ipv4_prefix_length: 32,
        smtpd_client_ipv6_prefix_length: 84,
        header_checks: Vec::new(),
        mime_header_checks: Vec::new(),
        nested_header_checks: Vec::new(),
        body_checks: Vec::new(),
        smtpd_process_limit: 100,
        smtpd_forbid_bare_newline: ForbidBareNewline::Reject,
        disable_vrfy_command: true,
        transport_maps: Vec::new(),
        virtual_mailbox_domains: Vec::new(),
        virtual_mailbox_maps: Vec::new(),
        virtual_mailbox_base: String::new(),
        virtual_uid_maps: Vec::new(),
        virtual_gid_maps: Vec::new(),
        virtual_minimum_uid: 100,
        virtual_mailbox_limit: 51_200_000,
        virtual_mailbox_lock: words(&["fcntl", "dotlock"]),
        virtual_transport: "virtual".to_string(),
        content_filter: String::new(),
        smtpd_milters: Vec::new(),
        smtpd_milter_maps: Vec::new(),
        non_smtpd_milters: Vec::new(),
        milter_default_action: "tempfail".to_string(),
        milter_protocol: 6,
        milter_connect_timeout: seconds(30),
        milter_command_timeout: seconds(30),
        milter_content_timeout: seconds(300),
        milter_connect_macros: words(&["j", "{daemon_name}", "{daemon_addr}", "v", "_"]),
        milter_helo_macros: words(&[
            "{tls_version}",
            "{cipher}",
            "{cipher_bits}",
            "{cert_subject}",
            "{cert_issuer}",
        ]),
        milter_mail_macros: words(&[
            "i",
            "{auth_type}",
            "{auth_authen}",
            "{auth_author}",
            "{mail_addr}",
            "{mail_host}",
            "{mail_mailer}",
        ]),
        milter_rcpt_macros: words(&["i", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"]),
        milter_data_macros: words(&["i"]),
        milter_end_of_header_macros: words(&["i"]),
        milter_end_of_data_macros: words(&["i"]),
        milter_macro_daemon_name: hostname_copy.clone(),
        milter_macro_v: format!("mailroom {}", env!("CARGO_PKG_VERSION")),
        filter_destination_concurrency_limit: 20,
        smtp_destination_concurrency_limit: 20,
        smtp_destination_rate_limit: Vec::new(),
        transports: Vec::new(),
        transport_destination_concurrency_limit: Vec::new(),
        transport_destination_rate_limit: Vec::new(),
        fleet_redis_url: String::new(),
        fleet_node_name: String::new(),
        smtp_destination_recipient_limit: 50,
        smtp_tls_security_level: SmtpTlsLevel::May,
        smtp_tls_cafile: String::new(),
        smtp_tls_secure_cert_match: words(&["nexthop", "dot-nexthop"]),
        smtp_tls_verify_cert_match: words(&["hostname"]),
        smtp_tls_policy_maps: Vec::new(),
        smtp_tls_servername: String::new(),
        smtp_tls_protocols: ">=TLSv1".to_string(),
        smtp_tls_mandatory_protocols: ">=TLSv1".to_string(),
        smtp_tls_ciphers: "medium".to_string(),
        smtp_tls_mandatory_ciphers: "medium".to_string(),
        smtp_sasl_auth_enable: false,
        smtp_sasl_password_maps: Vec::new(),
        smtp_sasl_security_options: words(&["noplaintext", "noanonymous"]),
        smtp_sasl_tls_security_options: words(&["noanonymous"]),
        smtp_sender_dependent_authentication: false,
        smtp_helo_name: hostname_copy.clone(),
        smtp_bind_address: String::new(),
        smtp_bind_address6: String::new(),
        smtp_bind_address_enforce: false,
        smtp_connection_reuse_count_limit: 0,
        smtp_connect_timeout: seconds(30),
        smtp_connection_cache_time_limit: seconds(2),
        smtp_helo_timeout: seconds(300),
        smtp_mail_timeout: seconds(300),
        smtp_rcpt_timeout: seconds(300),
        smtp_data_init_timeout: seconds(120),
        smtp_data_xfer_timeout: seconds(180),
        smtp_data_done_timeout: seconds(600),
        smtp_quit_timeout: seconds(300),
        smtp_line_length_limit: 998,
        lmtp_connect_timeout: Duration::ZERO,
        lmtp_lhlo_timeout: seconds(300),
        lmtp_mail_timeout: seconds(300),
        lmtp_rcpt_timeout: seconds(300),
        lmtp_data_init_timeout: seconds(120),
        lmtp_data_xfer_timeout: seconds(180),
        lmtp_data_done_timeout: seconds(600),
        lmtp_quit_timeout: seconds(300),
        lmtp_destination_concurrency_limit: 20,
        lmtp_destination_recipient_limit: 50,
        lmtp_line_length_limit: 998,
        lmtp_bind_address: String::new(),
        lmtp_bind_address6: String::new(),
        lmtp_bind_address_enforce: false,
        lmtp_connection_reuse_count_limit: 0,
        mailbox_transport: String::new(),
        smtp_default_port: 25,
        dns_nameservers: Vec::new(),
        inet_protocols: "all".to_string(),
        dkim_sign: Vec::new(),
        smtp_mta_sts: false,
        smtp_mta_sts_ca_file: String::new(),
        smtp_mta_sts_policy_port: 443,
        bounce_size_limit: 50_000,
        maillog_file: String::new(),
        syslog_name: "mailroom".to_string(),
        syslog_facility: crate::SyslogFacility::Mail,
        syslog_socket: site.syslog_socket,
        log_format: LogFormat::Text,
        log_repeat_window: seconds(60),
        canonical_maps: Vec::new(),
        sender_canonical_maps: Vec::new(),
        recipient_canonical_maps: Vec::new(),
        canonical_classes: words(&[
            "envelope_sender",
            "envelope_recipient",
            "header_sender",
            "header_recipient",
        ]),
        sender_canonical_classes: words(&["envelope_sender", "header_sender"]),
        recipient_canonical_classes: words(&["envelope_recipient", "header_recipient"]),
        masquerade_domains: Vec::new(),
        masquerade_classes: words(&["envelope_sender", "header_sender", "header_recipient"]),
        masquerade_exceptions: Vec::new(),
        virtual_alias_maps: Vec::new(),
        virtual_alias_domains: Vec::new(),
        virtual_alias_recursion_limit: 1000,
        virtual_alias_expansion_limit: 1000,
        propagate_unmatched_extensions: words(&["canonical", "virtual"]),
        relocated_maps: Vec::new(),
        smtp_generic_maps: Vec::new(),
    }
}

/// Postfix's `$myhostname, localhost.$mydomain, localhost`.
fn default_mydestination(myhostname: &str, mydomain: &str) -> Vec<String> {
    vec![
        myhostname.to_string(),
        format!("localhost.{mydomain}"),
        "localhost".to_string(),
    ]
}

/// Postfix's default `mydomain`: `myhostname` minus its first label, or `localdomain` when
/// the host name has no dot.
pub(crate) fn domain_of(myhostname: &str) -> String {
    match myhostname.split_once('.') {
        Some((_, domain)) if !domain.is_empty() => domain.to_string(),
        _ => "localdomain".to_string(),
    }
}

/// The kernel's host name, or `localhost` if it cannot be read.
fn hostname() -> String {
    match sys::hostname() {
        Ok(name) if !name.is_empty() => name,
        _ => "localhost".to_string(),
    }
}

/// The effective user's name and primary group name; numeric ids if they have no names.
fn current_user_and_group() -> (String, String) {
    let uid = sys::effective_uid();
    // Remembered: sendmail has usually just looked its real user up, the same uid.
    let user = sys::user_by_uid_remembered(uid).ok().flatten();
    match user.filter(|user| !user.name.is_empty()) {
        Some(user) => {
            let group = sys::group_name(user.gid).ok().flatten();
            (user.name, group.unwrap_or_else(|| user.gid.to_string()))
        }
        None => (uid.to_string(), sys::effective_gid().to_string()),
    }
}

/// `<directory of the running binary>/<name>`, so an unpacked build finds its helper.
fn beside_current_exe(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(data: Option<&str>, xdg: Option<&str>, home: Option<&str>) -> Environment {
        Environment {
            mailroom_data: data.map(OsString::from),
            xdg_data_home: xdg.map(OsString::from),
            home: home.map(OsString::from),
        }
    }

    #[test]
    fn data_directory_precedence() {
        let table = [
            (env(Some("/d"), Some("/x"), Some("/h")), "/d"),
            (env(None, Some("/x"), Some("/h")), "/x/mailroom"),
            (env(None, None, Some("/h")), "/h/.local/share/mailroom"),
            (env(None, None, None), "./mailroom-data"),
        ];
        for (environment, expected) in table {
            assert_eq!(environment.data_directory(), PathBuf::from(expected));
        }
    }

    #[test]
    fn embedded_paths_follow_the_data_directory() {
        let config = embedded(&env(Some("/srv/mr"), None, None));
        assert_eq!(config.queue_directory, PathBuf::from("/srv/mr/queue"));
        assert_eq!(config.mail_spool_directory, PathBuf::from("/srv/mr/mail"));
        assert_eq!(config.alias_maps, ["/srv/mr/aliases"]);
        assert!(config.local_recipient_maps.is_empty());
        assert_eq!(
            config.smtpd_listen,
            [SocketAddr::from(([127, 0, 0, 1], 2525))]
        );
        assert!(!config.mail_owner.is_empty() && !config.setgid_group.is_empty());
        assert!(config.postdrop_path.ends_with("mailroom-postdrop"));
    }

    #[test]
    fn host_names_give_domains() {
        assert_eq!(domain_of("mx.example.com"), "example.com");
        assert_eq!(domain_of("box"), "localdomain");
        assert_eq!(domain_of("box."), "localdomain");
        let config = system();
        assert_eq!(config.myorigin, config.myhostname);
        assert_eq!(config.mydestination[0], config.myhostname);
        assert_eq!(
            config.mydestination[1],
            format!("localhost.{}", config.mydomain)
        );
    }
}
