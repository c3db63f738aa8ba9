//! The parameter table: every TOML key mailroom accepts, its value syntax, and how it is read
//! from and written to [`Config`]. Loading, `$`-expansion and printing all walk this one
//! table, so a parameter added here is accepted, expanded and printed everywhere at once.
//!
//! Setters check what one value alone can get wrong (syntax, zero where zero makes no sense);
//! checks across parameters live in `validate.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::choices;
use crate::units::{self, parse_bool, parse_count, parse_duration, parse_size};
use crate::{Config, DkimSign, LogFormat, Toggle};

/// The value syntax of a parameter, which decides the TOML types it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A TOML string.
    Text,
    /// A TOML array of strings, or one string of items separated by commas and/or spaces.
    List,
    /// Seconds as a TOML integer, or a string with a unit (`300s`, `5d`).
    Duration,
    /// Bytes as a TOML integer, or a string with a unit (`100M`).
    Size,
    /// A TOML integer (or a string of digits).
    Count,
    /// A TOML boolean, or `"yes"`/`"no"`.
    Bool,
    /// A list whose items may also be TOML inline tables with these keys (all required),
    /// stored as their values joined by `:` in this order (`example.com:sel:/key`).
    Records(&'static [&'static str]),
    /// `key=value` items: a TOML inline table (`{ "example.net" = "300/m" }`), an array of
    /// `key=value` strings, or one string of them separated by commas and/or spaces.
    Pairs,
}

type Check = Result<(), String>;

/// How a parameter's value moves between its text form and its [`Config`] field.
pub(crate) enum Access {
    Scalar {
        get: fn(&Config) -> String,
        set: fn(&mut Config, &str) -> Check,
    },
    List {
        get: fn(&Config) -> Vec<String>,
        set: fn(&mut Config, Vec<String>) -> Check,
    },
}

pub(crate) struct Param {
    /// The TOML key and the name printed by `mailroom config` (Postfix's name).
    pub name: &'static str,
    pub kind: Kind,
    pub access: Access,
}

/// Parameters whose `$` is not for the loader: `forward_path` is expanded per recipient by
/// the local delivery agent (`$home`, `$user`, `${extension}` …, Postfix's `local_expand`),
/// and `mailbox_command`'s is the shell's (`"$EXTENSION"`), as in Postfix; `default_rbl_reply`'s
/// (`$rbl_code`, `$rbl_domain` …) is smtpd's, per DNSBL reply. Their values are kept as written.
pub(crate) const EXPANDED_AT_DELIVERY: &[&str] =
    &["forward_path", "mailbox_command", "default_rbl_reply"];

/// `2bounce_notice_recipient` starts with a digit, so the field drops it; accept both.
const ALIASES: &[(&str, &str)] = &[("bounce_notice_recipient", "2bounce_notice_recipient")];

/// The table entry for a TOML key or `$name`, accepting aliases.
pub(crate) fn find(name: &str) -> Option<&'static Param> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, canonical)| canonical);
    PARAMS.iter().find(|param| param.name == name)
}

/// Every name a TOML file may use, for "did you mean" suggestions.
pub(crate) fn all_names() -> impl Iterator<Item = &'static str> {
    PARAMS
        .iter()
        .map(|param| param.name)
        .chain(ALIASES.iter().map(|(alias, _)| *alias))
}

macro_rules! scalar {
    ($name:expr, $field:ident, $kind:ident, $parse:expr, $format:expr) => {
        Param {
            name: $name,
            kind: Kind::$kind,
            access: Access::Scalar {
                get: |config| ($format)(&config.$field),
                set: |config, text| {
                    config.$field = ($parse)(text)?;
                    Ok(())
                },
            },
        }
    };
}

macro_rules! text {
    ($field:ident) => {
        scalar!(
            stringify!($field),
            $field,
            Text,
            |text: &str| Ok::<_, String>(text.to_string()),
            String::clone
        )
    };
    ($field:ident, $parse:expr) => {
        scalar!(stringify!($field), $field, Text, $parse, String::clone)
    };
}

macro_rules! path {
    ($field:ident) => {
        scalar!(
            stringify!($field),
            $field,
            Text,
            parse_path,
            |path: &PathBuf| path.display().to_string()
        )
    };
}

macro_rules! size {
    ($field:ident) => {
        scalar!(stringify!($field), $field, Size, parse_size, u64::to_string)
    };
    ($field:ident, positive) => {
        scalar!(
            stringify!($field),
            $field,
            Size,
            |text| parse_size(text).and_then(positive),
            u64::to_string
        )
    };
}

macro_rules! count {
    ($field:ident) => {
        scalar!(
            stringify!($field),
            $field,
            Count,
            parse_count,
            ToString::to_string
        )
    };
    ($field:ident, positive) => {
        scalar!(
            stringify!($field),
            $field,
            Count,
            |text| parse_count(text).and_then(positive),
            ToString::to_string
        )
    };
}

/// An SMTP reply code a restriction answers with: 4xx or 5xx.
macro_rules! reply_code {
    ($field:ident) => {
        scalar!(
            stringify!($field),
            $field,
            Count,
            |text| parse_count(text).and_then(reply_code),
            ToString::to_string
        )
    };
}

macro_rules! duration {
    ($field:ident) => {
        scalar!(
            stringify!($field),
            $field,
            Duration,
            parse_duration,
            format_duration
        )
    };
    ($field:ident, positive) => {
        scalar!(
            stringify!($field),
            $field,
            Duration,
            |text| parse_duration(text).and_then(positive),
            format_duration
        )
    };
}

macro_rules! list {
    ($field:ident) => {
        list!($field, |_: &[String]| -> Check { Ok(()) })
    };
    ($field:ident, $check:expr) => {
        Param {
            name: stringify!($field),
            kind: Kind::List,
            access: Access::List {
                get: |config| config.$field.clone(),
                set: |config, items| {
                    ($check)(&items)?;
                    config.$field = items;
                    Ok(())
                },
            },
        }
    };
}

macro_rules! boolean {
    ($field:ident) => {
        scalar!(
            stringify!($field),
            $field,
            Bool,
            parse_bool,
            |value: &bool| units::format_bool(*value)
        )
    };
}

/// A boolean that may also be `"auto"` (the daemon decides; see [`Toggle`]).
macro_rules! toggle {
    ($field:ident) => {
        scalar!(
            stringify!($field),
            $field,
            Bool,
            parse_toggle,
            Toggle::to_string
        )
    };
}

macro_rules! listen {
    ($field:ident) => {
        Param {
            name: stringify!($field),
            kind: Kind::List,
            access: Access::List {
                get: |config| config.$field.iter().map(ToString::to_string).collect(),
                set: |config, items| {
                    config.$field = items
                        .iter()
                        .map(|item| parse_listen(item))
                        .collect::<Result<_, _>>()?;
                    Ok(())
                },
            },
        }
    };
}

/// A parameter that may be written `${stress?{x}:{y}}` (see [`crate::Stressed`]).
macro_rules! stressed {
    ($field:ident, $kind:ident, $parse:expr, $format:expr) => {
        scalar!(
            stringify!($field),
            $field,
            $kind,
            |text| units::parse_stressed(text, $parse),
            |value| units::format_stressed(value, $format)
        )
    };
}

fn stressed_duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).and_then(positive)
}

fn stressed_count(text: &str) -> Result<usize, String> {
    parse_count(text).and_then(positive)
}

fn stressed_bool(text: &str) -> Result<bool, String> {
    parse_bool(text)
}

/// A parameter that is one of a fixed set of words (see `choices.rs`).
macro_rules! choice {
    ($field:ident) => {
        scalar!(stringify!($field), $field, Text, choices::parse, |value| {
            choices::word(value).to_string()
        })
    };
}

/// Every parameter, in the order `mailroom config` prints them (alphabetical).
pub(crate) const PARAMS: &[Param] = &[
    scalar!(
        "2bounce_notice_recipient",
        bounce_notice_recipient,
        Text,
        required,
        String::clone
    ),
    reply_code!(access_map_defer_code),
    reply_code!(access_map_reject_code),
    list!(alias_maps),
    list!(allow_mail_to_commands, delivery_sources),
    list!(allow_mail_to_files, delivery_sources),
    duration!(anvil_rate_time_unit, positive),
    list!(body_checks),
    duration!(bounce_queue_lifetime),
    size!(bounce_size_limit),
    list!(canonical_classes, address_classes),
    list!(canonical_maps),
    duration!(command_time_limit, positive),
    text!(content_filter),
    path!(data_directory),
    count!(default_destination_concurrency_limit, positive),
    text!(default_privs, unprivileged_user),
    count!(default_process_limit, positive),
    text!(default_rbl_reply),
    reply_code!(defer_code),
    duration!(delay_warning_time),
    boolean!(disable_vrfy_command),
    Param {
        name: "dkim_sign",
        kind: Kind::Records(&["domain", "selector", "key"]),
        access: Access::List {
            get: |config| config.dkim_sign.iter().map(DkimSign::to_text).collect(),
            set: |config, items| {
                config.dkim_sign = items
                    .iter()
                    .map(|item| DkimSign::parse(item))
                    .collect::<Result<_, _>>()?;
                Ok(())
            },
        },
    },
    list!(dns_nameservers),
    duration!(doctor_history_interval, positive),
    text!(double_bounce_recipient, required),
    count!(filter_destination_concurrency_limit, positive),
    text!(fleet_node_name),
    text!(fleet_redis_url, fleet_url),
    text!(forward_path),
    list!(header_checks),
    size!(header_size_limit, positive),
    text!(home_mailbox),
    count!(hopcount_limit, positive),
    text!(http_admin_token_file),
    boolean!(http_allow_remote),
    listen!(http_listen),
    text!(inet_protocols, crate::inet_protocols::inet_protocols),
    reply_code!(invalid_hostname_reject_code),
    text!(lmtp_bind_address, bind_address4),
    text!(lmtp_bind_address6, bind_address6),
    boolean!(lmtp_bind_address_enforce),
    duration!(lmtp_connect_timeout),
    count!(lmtp_connection_reuse_count_limit),
    duration!(lmtp_data_done_timeout, positive),
    duration!(lmtp_data_init_timeout, positive),
    duration!(lmtp_data_xfer_timeout, positive),
    count!(lmtp_destination_concurrency_limit, positive),
    count!(lmtp_destination_recipient_limit, positive),
    duration!(lmtp_lhlo_timeout, positive),
    count!(lmtp_line_length_limit),
    duration!(lmtp_mail_timeout, positive),
    duration!(lmtp_quit_timeout, positive),
    duration!(lmtp_rcpt_timeout, positive),
    count!(local_destination_concurrency_limit, positive),
    list!(local_recipient_maps),
    scalar!(
        "log_format",
        log_format,
        Text,
        parse_log_format,
        format_log_format
    ),
    duration!(log_repeat_window),
    text!(mail_owner, required),
    path!(mail_spool_directory),
    text!(mailbox_command),
    size!(mailbox_size_limit),
    text!(mailbox_transport),
    count!(maildrop_count_limit, positive),
    size!(maildrop_size_limit, positive),
    text!(maillog_file),
    reply_code!(maps_rbl_reject_code),
    list!(masquerade_classes, address_classes),
    list!(masquerade_domains),
    list!(masquerade_exceptions),
    duration!(maximal_backoff_time, positive),
    duration!(maximal_queue_lifetime),
    size!(message_size_limit),
    duration!(milter_command_timeout, positive),
    list!(milter_connect_macros),
    duration!(milter_connect_timeout, positive),
    duration!(milter_content_timeout, positive),
    list!(milter_data_macros),
    text!(milter_default_action, milter_action),
    list!(milter_end_of_data_macros),
    list!(milter_end_of_header_macros),
    list!(milter_helo_macros),
    text!(milter_macro_daemon_name),
    text!(milter_macro_v),
    list!(milter_mail_macros),
    scalar!(
        "milter_protocol",
        milter_protocol,
        Count,
        |text| parse_count(text).and_then(milter_protocol),
        ToString::to_string
    ),
    list!(milter_rcpt_macros),
    list!(mime_header_checks),
    duration!(minimal_backoff_time, positive),
    list!(mydestination),
    text!(mydomain, required),
    text!(myhostname, required),
    list!(mynetworks),
    text!(myorigin, required),
    list!(nested_header_checks),
    reply_code!(non_fqdn_reject_code),
    list!(non_smtpd_milters),
    path!(postdrop_path),
    list!(propagate_unmatched_extensions, extension_classes),
    count!(qmgr_message_active_limit, positive),
    path!(queue_directory),
    toggle!(queue_dsync_writes),
    size!(queue_minfree),
    count!(queue_minfree_inodes),
    toggle!(queue_prezero_segments),
    duration!(queue_run_delay, positive),
    list!(rbl_reply_maps),
    list!(recipient_canonical_classes, address_classes),
    list!(recipient_canonical_maps),
    text!(recipient_delimiter),
    listen!(reinject_listen),
    reply_code!(reject_code),
    list!(relay_domains),
    reply_code!(relay_domains_reject_code),
    text!(relayhost),
    list!(relocated_maps),
    list!(sender_canonical_classes, address_classes),
    list!(sender_canonical_maps),
    text!(setgid_group, required),
    text!(smtp_bind_address, bind_address4),
    text!(smtp_bind_address6, bind_address6),
    boolean!(smtp_bind_address_enforce),
    duration!(smtp_connect_timeout, positive),
    duration!(smtp_connection_cache_time_limit),
    count!(smtp_connection_reuse_count_limit),
    duration!(smtp_data_done_timeout, positive),
    duration!(smtp_data_init_timeout, positive),
    duration!(smtp_data_xfer_timeout, positive),
    count!(smtp_default_port, positive),
    count!(smtp_destination_concurrency_limit, positive),
    Param {
        name: "smtp_destination_rate_limit",
        kind: Kind::Pairs,
        access: Access::List {
            get: |config| {
                config
                    .smtp_destination_rate_limit
                    .iter()
                    .map(|(d, r)| format!("{d}={r}"))
                    .collect()
            },
            set: |config, items| {
                config.smtp_destination_rate_limit = items
                    .iter()
                    .map(|item| units::parse_destination_rate(item))
                    .collect::<Result<_, _>>()?;
                Ok(())
            },
        },
    },
    count!(smtp_destination_recipient_limit, positive),
    list!(smtp_generic_maps),
    text!(smtp_helo_name, required),
    duration!(smtp_helo_timeout, positive),
    count!(smtp_line_length_limit),
    duration!(smtp_mail_timeout, positive),
    boolean!(smtp_mta_sts),
    text!(smtp_mta_sts_ca_file),
    count!(smtp_mta_sts_policy_port, positive),
    duration!(smtp_quit_timeout, positive),
    duration!(smtp_rcpt_timeout, positive),
    boolean!(smtp_sasl_auth_enable),
    list!(smtp_sasl_password_maps),
    list!(smtp_sasl_security_options, sasl_options),
    list!(smtp_sasl_tls_security_options, sasl_options),
    boolean!(smtp_sender_dependent_authentication),
    scalar!(
        "smtp_tls_CAfile",
        smtp_tls_cafile,
        Text,
        |text: &str| Ok::<_, String>(text.to_string()),
        String::clone
    ),
    text!(smtp_tls_ciphers, crate::tls_protocols::cipher_grade),
    text!(
        smtp_tls_mandatory_ciphers,
        crate::tls_protocols::cipher_grade
    ),
    text!(
        smtp_tls_mandatory_protocols,
        crate::tls_protocols::protocol_list
    ),
    list!(smtp_tls_policy_maps),
    text!(smtp_tls_protocols, crate::tls_protocols::protocol_list),
    list!(smtp_tls_secure_cert_match),
    choice!(smtp_tls_security_level),
    text!(smtp_tls_servername, servername),
    list!(smtp_tls_verify_cert_match),
    text!(smtpd_banner, required),
    count!(smtpd_client_auth_failure_limit),
    count!(smtpd_client_auth_rate_limit),
    count!(smtpd_client_connection_count_limit),
    count!(smtpd_client_connection_rate_limit),
    list!(smtpd_client_event_limit_exceptions),
    scalar!(
        "smtpd_client_ipv4_prefix_length",
        smtpd_client_ipv4_prefix_length,
        Count,
        |text| parse_count(text).and_then(|n| prefix_length(n, 32)),
        ToString::to_string
    ),
    scalar!(
        "smtpd_client_ipv6_prefix_length",
        smtpd_client_ipv6_prefix_length,
        Count,
        |text| parse_count(text).and_then(|n| prefix_length(n, 128)),
        ToString::to_string
    ),
    count!(smtpd_client_message_rate_limit),
    count!(smtpd_client_new_tls_session_rate_limit),
    count!(smtpd_client_recipient_rate_limit),
    list!(smtpd_client_restrictions),
    list!(smtpd_data_restrictions),
    boolean!(smtpd_delay_reject),
    list!(smtpd_end_of_data_restrictions),
    duration!(smtpd_error_sleep_time),
    choice!(smtpd_forbid_bare_newline),
    boolean!(smtpd_forbid_unauth_pipelining),
    stressed!(
        smtpd_hard_error_limit,
        Count,
        stressed_count,
        |v: &usize| v.to_string()
    ),
    boolean!(smtpd_helo_required),
    list!(smtpd_helo_restrictions),
    stressed!(
        smtpd_junk_command_limit,
        Count,
        stressed_count,
        |v: &usize| v.to_string()
    ),
    Param {
        name: "smtpd_listen",
        kind: Kind::List,
        access: Access::List {
            get: |config| {
                config
                    .smtpd_listen
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            },
            set: |config, items| {
                config.smtpd_listen = items
                    .iter()
                    .map(|item| parse_listen(item))
                    .collect::<Result<_, _>>()?;
                Ok(())
            },
        },
    },
    list!(smtpd_milter_maps),
    list!(smtpd_milters),
    count!(smtpd_min_data_rate, positive),
    stressed!(
        smtpd_per_request_deadline,
        Bool,
        stressed_bool,
        |v: &bool| { units::format_bool(*v) }
    ),
    text!(smtpd_policy_service_default_action, required),
    duration!(smtpd_policy_service_max_idle, positive),
    duration!(smtpd_policy_service_max_ttl, positive),
    count!(smtpd_policy_service_request_limit),
    duration!(smtpd_policy_service_retry_delay),
    duration!(smtpd_policy_service_timeout, positive),
    count!(smtpd_policy_service_try_limit, positive),
    count!(smtpd_process_limit, positive),
    count!(smtpd_recipient_limit, positive),
    count!(smtpd_recipient_overshoot_limit),
    list!(smtpd_recipient_restrictions),
    list!(smtpd_relay_restrictions),
    Param {
        name: "smtpd_restriction_classes",
        kind: Kind::Records(&["name", "restrictions"]),
        access: Access::List {
            get: |config| config.smtpd_restriction_classes.clone(),
            set: |config, items| {
                for item in &items {
                    match item.split_once(':') {
                        Some((name, _))
                            if !name.trim().is_empty() && !name.contains(char::is_whitespace) => {}
                        _ => {
                            return Err(format!(
                                "{item:?}: use {{ name = \"class\", restrictions = \"...\" }}"
                            ))
                        }
                    }
                }
                config.smtpd_restriction_classes = items;
                Ok(())
            },
        },
    },
    boolean!(smtpd_sasl_auth_enable),
    path!(smtpd_sasl_password_file),
    list!(smtpd_sender_restrictions),
    stressed!(
        smtpd_session_deadline,
        Duration,
        stressed_duration,
        format_duration
    ),
    count!(smtpd_soft_error_limit, positive),
    stressed!(smtpd_timeout, Duration, stressed_duration, format_duration),
    text!(smtpd_tls_cert_file),
    text!(smtpd_tls_key_file),
    choice!(smtpd_tls_security_level),
    scalar!(
        "soft_bounce",
        soft_bounce,
        Bool,
        parse_bool,
        |value: &bool| units::format_bool(*value)
    ),
    listen!(submission_listen),
    duration!(submit_timeout, positive),
    choice!(syslog_facility),
    text!(syslog_name, required),
    text!(syslog_socket),
    Param {
        name: "transport_destination_concurrency_limit",
        kind: Kind::Pairs,
        access: Access::List {
            get: |config| pairs(&config.transport_destination_concurrency_limit),
            set: |config, items| {
                config.transport_destination_concurrency_limit =
                    units::parse_pairs(&items, |v| parse_count(v).ok().filter(|&n: &usize| n > 0))?;
                Ok(())
            },
        },
    },
    Param {
        name: "transport_destination_rate_limit",
        kind: Kind::Pairs,
        access: Access::List {
            get: |config| pairs(&config.transport_destination_rate_limit),
            set: |config, items| {
                config.transport_destination_rate_limit = items
                    .iter()
                    .map(|item| units::parse_destination_rate(item))
                    .collect::<Result<_, _>>()?;
                Ok(())
            },
        },
    },
    list!(transport_maps),
    Param {
        name: "transports",
        kind: Kind::Pairs,
        access: Access::List {
            get: |config| pairs(&config.transports),
            set: |config, items| {
                config.transports = units::parse_pairs(&items, |v| {
                    matches!(v, "smtp" | "relay").then(|| v.to_string())
                })?;
                Ok(())
            },
        },
    },
    reply_code!(unknown_address_reject_code),
    reply_code!(unknown_client_reject_code),
    reply_code!(unknown_hostname_reject_code),
    list!(virtual_alias_domains),
    count!(virtual_alias_expansion_limit, positive),
    list!(virtual_alias_maps),
    count!(virtual_alias_recursion_limit, positive),
    list!(virtual_gid_maps),
    text!(virtual_mailbox_base),
    list!(virtual_mailbox_domains),
    size!(virtual_mailbox_limit),
    list!(virtual_mailbox_lock, mailbox_locks),
    list!(virtual_mailbox_maps),
    count!(virtual_minimum_uid),
    text!(virtual_transport, required),
    list!(virtual_uid_maps),
];

/// `milter_default_action`: Postfix's four words.
fn milter_action(text: &str) -> Result<String, String> {
    match text {
        "tempfail" | "accept" | "reject" | "quarantine" => Ok(text.to_string()),
        _ => Err("expected tempfail, accept, reject or quarantine".to_string()),
    }
}

/// `milter_protocol`: the Sendmail milter protocol versions 2 to 6.
fn milter_protocol(version: usize) -> Result<usize, String> {
    match version {
        2..=6 => Ok(version),
        _ => Err("expected a milter protocol version from 2 to 6".to_string()),
    }
}

/// `fleet_redis_url`: empty (no fleet), or a `redis://` / `unix://` URL.
fn fleet_url(text: &str) -> Result<String, String> {
    let url = text.trim();
    let schemes = ["redis://", "rediss://", "unix://", "redis+unix://"];
    if url.is_empty() || schemes.iter().any(|s| url.starts_with(s)) {
        return Ok(url.to_string());
    }
    Err(format!(
        "not a Redis URL: {url:?} (use redis://host:6379/0)"
    ))
}

fn required(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("must not be empty".to_string());
    }
    Ok(text.to_string())
}

fn parse_path(text: &str) -> Result<PathBuf, String> {
    required(text).map(PathBuf::from)
}

/// RFC 5321 section 4.2.1: a refusal is a 4xx (temporary) or 5xx (permanent) reply.
fn reply_code(value: usize) -> Result<usize, String> {
    match value {
        400..=599 => Ok(value),
        _ => Err(format!("not a 4xx or 5xx reply code: {value}")),
    }
}

/// A network prefix length of an address family whose addresses have `bits` bits.
fn prefix_length(value: usize, bits: u8) -> Result<u8, String> {
    match u8::try_from(value) {
        Ok(length) if (1..=bits).contains(&length) => Ok(length),
        _ => Err(format!("not a prefix length between 1 and {bits}: {value}")),
    }
}

fn positive<T: PartialEq + Default>(value: T) -> Result<T, String> {
    if value == T::default() {
        return Err("must be greater than zero".to_string());
    }
    Ok(value)
}

/// Deliveries to `|command` and `/file` run with `default_privs`; root would defeat that.
/// `smtp_bind_address`: empty or one IPv4 address (Postfix takes one numeric address).
fn bind_address4(text: &str) -> Result<String, String> {
    let text = text.trim();
    match text.parse::<std::net::Ipv4Addr>() {
        _ if text.is_empty() => Ok(String::new()),
        Ok(_) => Ok(text.to_string()),
        Err(_) => Err(format!("{text:?} is not an IPv4 address")),
    }
}

/// `smtp_bind_address6`: empty or one IPv6 address, bare or in brackets as Postfix allows.
fn bind_address6(text: &str) -> Result<String, String> {
    let text = text.trim();
    let bare = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    match bare.parse::<std::net::Ipv6Addr>() {
        _ if text.is_empty() => Ok(String::new()),
        Ok(_) => Ok(text.to_string()),
        Err(_) => Err(format!("{text:?} is not an IPv6 address")),
    }
}

/// `smtp_tls_servername`: empty, `hostname`, `nexthop`, or a DNS name in A-label form.
fn servername(text: &str) -> Result<String, String> {
    let name = text.trim();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.trim_end_matches('.').split('.').all(label_ok) {
        return Ok(name.to_string());
    }
    Err(format!(
        "{name:?} is not a DNS host name (in A-label form), hostname or nexthop"
    ))
}

fn unprivileged_user(text: &str) -> Result<String, String> {
    let user = required(text)?;
    if user == "root" || user == "0" {
        return Err("must not be a privileged user".to_string());
    }
    Ok(user)
}

/// The lock kinds mailroom takes on an mbox (Postfix's `flock` is not offered: fcntl and
/// flock are the same lock on Linux for local files).
fn mailbox_locks(items: &[String]) -> Check {
    match items
        .iter()
        .find(|item| !matches!(item.as_str(), "fcntl" | "dotlock"))
    {
        Some(bad) => Err(format!("unknown lock {bad:?} (use fcntl, dotlock)")),
        None => Ok(()),
    }
}

/// Postfix's `allow_mail_to_commands`/`allow_mail_to_files` vocabulary.
fn delivery_sources(items: &[String]) -> Check {
    match items
        .iter()
        .find(|item| !matches!(item.as_str(), "alias" | "forward" | "include"))
    {
        Some(bad) => Err(format!(
            "unknown source {bad:?} (use alias, forward, include)"
        )),
        None => Ok(()),
    }
}

/// Postfix's SASL security options; only `noplaintext` and `noanonymous` change what the
/// SMTP client does (it has no anonymous, dictionary-prone or non-forward-secret mechanism).
fn sasl_options(items: &[String]) -> Check {
    const KNOWN: &[&str] = &[
        "noplaintext",
        "noactive",
        "nodictionary",
        "noanonymous",
        "mutual_auth",
    ];
    match items.iter().find(|item| !KNOWN.contains(&item.as_str())) {
        Some(bad) => Err(format!(
            "unknown SASL security option {bad:?}; must be one of: {}",
            KNOWN.join(", ")
        )),
        None => Ok(()),
    }
}

/// `canonical_classes`, `masquerade_classes`: Postfix's four address classes.
fn address_classes(items: &[String]) -> Check {
    const CLASSES: [&str; 4] = [
        "envelope_sender",
        "envelope_recipient",
        "header_sender",
        "header_recipient",
    ];
    match items.iter().find(|item| !CLASSES.contains(&item.as_str())) {
        Some(bad) => Err(format!(
            "unknown address class {bad:?} (use {})",
            CLASSES.join(", ")
        )),
        None => Ok(()),
    }
}

/// `propagate_unmatched_extensions`: Postfix's table classes.
fn extension_classes(items: &[String]) -> Check {
    const CLASSES: [&str; 6] = [
        "canonical",
        "virtual",
        "alias",
        "forward",
        "include",
        "generic",
    ];
    match items.iter().find(|item| !CLASSES.contains(&item.as_str())) {
        Some(bad) => Err(format!(
            "unknown class {bad:?} (use {})",
            CLASSES.join(", ")
        )),
        None => Ok(()),
    }
}

fn parse_listen(item: &str) -> Result<SocketAddr, String> {
    item.parse()
        .map_err(|_| format!("not a socket address: {item:?} (use 127.0.0.1:25 or [::1]:25)"))
}

fn parse_toggle(text: &str) -> Result<Toggle, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        return Ok(Toggle::Auto);
    }
    match parse_bool(text) {
        Ok(true) => Ok(Toggle::Yes),
        Ok(false) => Ok(Toggle::No),
        Err(_) => Err(format!(
            "not a boolean or auto: {text:?} (use yes, no or auto)"
        )),
    }
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("not a log format: {other:?} (use text or json)")),
    }
}

fn format_log_format(format: &LogFormat) -> String {
    match format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    }
    .to_string()
}

fn format_duration(duration: &Duration) -> String {
    units::format_duration(*duration)
}

/// `key=value` items as printed.
fn pairs<V: std::fmt::Display>(items: &[(String, V)]) -> Vec<String> {
    items.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        let names: Vec<&str> = PARAMS.iter().map(|param| param.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn aliases_find_the_canonical_parameter() {
        assert_eq!(
            find("bounce_notice_recipient").map(|p| p.name),
            Some("2bounce_notice_recipient")
        );
        assert_eq!(find("queue_minfree").map(|p| p.kind), Some(Kind::Size));
        assert!(find("nosuch").is_none());
    }
}
