//! The parameter reference of mailroom.toml(5): every parameter of the table in
//! `params.rs`, its default (as `postconf -d` writes it, in both profiles) and what it
//! means. Names and defaults come from the table and the profile defaults themselves, so
//! the page cannot list a parameter that does not exist or a default that is not the real
//! one; the meanings live here, and a unit test fails when a parameter has none.

use crate::defaults::{self, Environment};
use crate::params::PARAMS;
use crate::postconf::as_written_defaults;

/// Where a parameter's meaning comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Postfix has a parameter of this name and mailroom gives it Postfix's meaning.
    Postfix,
    /// mailroom's own parameter; Postfix has none of this name.
    Mailroom,
}

/// One parameter as mailroom.toml(5) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterDoc {
    pub name: &'static str,
    /// The system profile's default, as written (`$myhostname` kept).
    pub default: String,
    /// The embedded default when it differs from the system one.
    pub embedded_default: Option<String>,
    pub origin: Origin,
    pub meaning: &'static str,
}

/// Every parameter, alphabetical, `profile` included.
pub fn parameter_reference() -> Vec<ParameterDoc> {
    let system = as_written_defaults(&defaults::system(), false, HOST_DOMAIN);
    let environment = Environment {
        mailroom_data: Some("$data_directory".into()),
        ..Environment::default()
    };
    let embedded = as_written_defaults(&defaults::embedded(&environment), false, HOST_DOMAIN);
    let mut names: Vec<&'static str> = PARAMS.iter().map(|p| p.name).collect();
    names.push("profile");
    names.sort_unstable();
    names
        .into_iter()
        .map(|name| {
            let (origin, meaning) = meaning(name);
            let default =
                site_default(name, false).map_or_else(|| system[name].clone(), String::from);
            let embedded =
                site_default(name, true).map_or_else(|| embedded[name].clone(), String::from);
            ParameterDoc {
                name,
                embedded_default: (embedded != default).then_some(embedded),
                default,
                origin,
                meaning,
            }
        })
        .collect()
}

const HOST_DOMAIN: &str = "$myhostname minus its first label";

/// Defaults that depend on the machine or the user, described instead of shown.
fn site_default(name: &str, embedded: bool) -> Option<&'static str> {
    Some(match (name, embedded) {
        ("myhostname", _) => "the host name (gethostname(2))",
        // With no file, or a file that does not say, the embedded profile applies.
        ("profile", _) => "embedded",
        ("data_directory", true) => {
            "$MAILROOM_DATA, else $XDG_DATA_HOME/mailroom, else ~/.local/share/mailroom"
        }
        ("mail_owner", true) => "the user running mailroom",
        ("setgid_group", true) => "the primary group of the user running mailroom",
        ("postdrop_path", true) => "mailroom-postdrop beside the mailroom binary",
        _ => return None,
    })
}

fn meaning(name: &str) -> (Origin, &'static str) {
    MEANINGS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or((Origin::Mailroom, ""), |(_, origin, text)| (*origin, *text))
}

use Origin::{Mailroom as M, Postfix as P};

/// What each parameter means. Postfix ones keep Postfix's meaning; where mailroom differs,
/// the text says how.
const MEANINGS: &[(&str, Origin, &str)] = &[
    ("2bounce_notice_recipient", P, "Who gets the notice of a double bounce (a bounce that could not be delivered). Also accepted as bounce_notice_recipient."),
    ("alias_maps", P, "Alias files in aliases(5) syntax (name: a, b, \"|command\", /file, :include:/list). A hash:, lmdb: or texthash: prefix is accepted and ignored: mailroom reads the text file itself."),
    ("allow_mail_to_commands", P, "Which sources may deliver to |command: alias, forward, include."),
    ("allow_mail_to_files", P, "Which sources may deliver to /file: alias, forward, include."),
    ("anvil_rate_time_unit", P, "The time unit of the per-client rate limits (smtpd_client_*_rate_limit, smtpd_client_auth_failure_limit): a client's counts start again this long after its first event."),
    ("body_checks", P, "regexp: or pcre: tables cleanup applies to each body line (text parts, one line at a time): REJECT, HOLD, DISCARD, WARN, IGNORE, PREPEND, REDIRECT, FILTER, DUNNO, OK."),
    ("bounce_queue_lifetime", P, "How long a bounce (null-sender message) may stay queued before it is dropped."),
    ("bounce_size_limit", P, "How many bytes of the original message a bounce returns."),
    ("command_time_limit", P, "The longest a |command or mailbox_command delivery may run; then its process group is killed and the mail deferred (Postfix bounces it)."),
    ("milter_command_timeout", P, "How long to wait for a milter's answer to a connect, HELO, MAIL, RCPT or DATA event; then milter_default_action applies for the rest of the session."),
    ("milter_connect_macros", P, "The macros sent to milters at connect (Postfix's j {daemon_name} {daemon_addr} v _)."),
    ("milter_connect_timeout", P, "How long to wait for a connection to a milter."),
    ("milter_content_timeout", P, "How long to wait for a milter's answer to a header, a body chunk or the end of the message."),
    ("milter_data_macros", P, "The macros sent to milters at DATA."),
    ("milter_default_action", P, "What stands in for a milter that is down, times out or breaks the protocol, for the rest of the session: tempfail (451 4.7.1), accept (as if there were no milter), reject (550 5.5.0) or quarantine (every message queued on hold)."),
    ("milter_end_of_data_macros", P, "The macros sent to milters at the end of the message."),
    ("milter_end_of_header_macros", P, "The macros sent to milters at the end of the headers."),
    ("milter_helo_macros", P, "The macros sent to milters at HELO/EHLO (the TLS ones)."),
    ("milter_macro_daemon_name", P, "The value of the {daemon_name} macro."),
    ("milter_macro_v", P, "The value of the v macro (the MTA's name and version)."),
    ("milter_mail_macros", P, "The macros sent to milters at MAIL FROM (i, {auth_authen}, {mail_addr} ...)."),
    ("milter_protocol", P, "The Sendmail milter protocol version offered to milters (2 to 6)."),
    ("milter_rcpt_macros", P, "The macros sent to milters at RCPT TO (i, {rcpt_addr} ...)."),
    ("non_smtpd_milters", P, "Milters for locally submitted mail (sendmail, pickup): inet:host:port, unix:/path or { inet:host:port, default_action=accept, command_timeout=10s }."),
    ("smtpd_milter_maps", P, "Milter lists per SMTP client address (e.g. cidr:/etc/mailroom/milters.cidr): the result replaces smtpd_milters for that client; DISABLE turns milters off for it."),
    ("smtpd_milters", P, "Milters for mail from SMTP clients, in order; same syntax as non_smtpd_milters. Consulted at each SMTP stage over one connection per session: connect, HELO, MAIL, each RCPT, DATA, then the content (see README: Milters)."),
    ("content_filter", P, "After-queue content filter for new mail, as smtp:[host]:port; empty for none. Filtered mail comes back through reinject_listen."),
    ("data_directory", P, "mailroom's own data (TLS pair made on first start, archives). In the embedded profile the queue, the mail spool, the aliases and the password file default under it; setting it moves them too."),
    ("default_destination_concurrency_limit", P, "Deliveries in flight to one destination, for transports without their own limit."),
    ("default_privs", P, "The user whose rights |command and /file deliveries get when mailroom runs as root. Must not be root."),
    ("default_process_limit", P, "Deliveries in flight at once, all transports together."),
    ("qmgr_message_active_limit", P, "Messages the queue manager holds in its active queue at once (in memory, being delivered or about to be); the rest wait in incoming/deferred and are taken in as room frees, new mail and deferred mail in turn."),
    ("delay_warning_time", P, "Send the sender a delay notice after a message has been queued this long; 0 = never."),
    ("dkim_sign", M, "DKIM-sign (RFC 6376) outgoing SMTP mail whose From: (else envelope sender) domain is listed: [{ domain = \"example.com\", selector = \"mail2026\", key = \"/etc/mailroom/dkim/example.com.mail2026.key\" }]. Keys: PEM RSA or Ed25519, mode 0600, readable by mail_owner (mailroom dkim keygen makes one). Postfix signs through a milter (OpenDKIM) instead."),
    ("disable_vrfy_command", P, "Refuse to reveal addresses through VRFY (it answers 252). Postfix's default is no; mailroom's is yes."),
    ("dns_nameservers", M, "DNS servers for MX lookups (127.0.0.1:5353); empty = /etc/resolv.conf."),
    ("doctor_history_interval", M, "How often the daemon records queue counts (per state, the top deferred destination and reason, refused submissions, deliveries and bounces) in the history ring <queue_directory>/history (1440 samples: 24 hours at 60s) that mailroom doctor reads, also with the daemon down."),
    ("double_bounce_recipient", P, "Postmaster address for double bounces; they are delivered once and then dropped."),
    ("filter_destination_concurrency_limit", M, "Deliveries in flight to the content filter."),
    ("fleet_node_name", M, "This node's name in a fleet (heartbeats, fleet status, the node label of /metrics); empty = $myhostname."),
    ("fleet_redis_url", M, "The Redis (redis://host:6379/0) a fleet of nodes shares destination limits, suspensions, dead marks and heartbeats through; empty = a single node, as without it. Queues stay local."),
    ("forward_path", P, "Where a local user's .forward is looked for (first existing file wins), expanded at delivery time: $home $user $shell $local $extension $recipient $domain $recipient_delimiter, ${name?text} and ${name:text}. Empty = no .forward files."),
    ("header_size_limit", P, "The longest one logical header may be (its line and continuation lines). A bigger one is refused (SMTP 552 5.3.4) where Postfix cuts it."),
    ("header_checks", P, "regexp: or pcre: tables cleanup applies to each primary header (a folded header as one line): REJECT [text], HOLD, DISCARD, WARN, IGNORE, PREPEND text, REDIRECT addr, FILTER transport:dest, DUNNO, OK. For SMTP and sendmail mail alike."),
    ("home_mailbox", P, "Non-empty: deliver to $HOME/<home_mailbox> instead of the mail spool; a trailing / means Maildir."),
    ("http_admin_token_file", M, "File holding the bearer token (one line) that every change through the HTTP API needs; empty = the API changes nothing. Read at start, as root."),
    ("http_allow_remote", M, "Allow http_listen addresses that are not loopback (the daemon refuses to start otherwise); remote clients need the token for every /api request."),
    ("http_listen", M, "HTTP listeners for /metrics (Prometheus) and the /api/v1 JSON API, as address:port; empty = off."),
    ("inet_protocols", P, "Address families the SMTP and LMTP clients use: all, ipv4, ipv6 (or \"ipv4, ipv6\"). With one family only its address records are looked up and only its addresses connected to; listeners bind the addresses they are given."),
    ("hopcount_limit", P, "Messages with more Received: or Delivered-To: headers bounce as a mail loop (5.4.6)."),
    ("lmtp_bind_address", P, "LMTP client: smtp_bind_address for inet: LMTP servers."),
    ("lmtp_bind_address6", P, "LMTP client: smtp_bind_address6 for inet: LMTP servers."),
    ("lmtp_bind_address_enforce", P, "LMTP client: smtp_bind_address_enforce for inet: LMTP servers."),
    ("lmtp_connect_timeout", P, "LMTP client: how long a connect may take; 0 = the operating system's limit (about two minutes)."),
    ("lmtp_connection_reuse_count_limit", P, "LMTP client: smtp_connection_reuse_count_limit for LMTP sessions."),
    ("lmtp_data_done_timeout", P, "LMTP client: how long to wait for the per-recipient replies after the final dot."),
    ("lmtp_data_init_timeout", P, "LMTP client: how long to wait for the reply to DATA."),
    ("lmtp_data_xfer_timeout", P, "LMTP client: how long one write of the message body may take."),
    ("lmtp_destination_concurrency_limit", P, "LMTP client: deliveries in flight to one LMTP server (socket or host:port)."),
    ("lmtp_destination_recipient_limit", P, "LMTP client: recipients per LMTP transaction."),
    ("lmtp_lhlo_timeout", P, "LMTP client: how long to wait for the greeting and the reply to LHLO."),
    ("lmtp_line_length_limit", P, "LMTP client: longer header or body lines are broken with CRLF SPACE; 0 = never."),
    ("lmtp_mail_timeout", P, "LMTP client: how long to wait for the reply to MAIL FROM."),
    ("lmtp_quit_timeout", P, "LMTP client: how long to wait when sending QUIT."),
    ("lmtp_rcpt_timeout", P, "LMTP client: how long to wait for the reply to RCPT TO."),
    ("local_destination_concurrency_limit", P, "Concurrent deliveries to one local user."),
    ("local_recipient_maps", P, "Who is a local user: unix:passwd.byname and/or alias files. Others are refused at RCPT (550 5.1.1). Empty = every local part that can be a mailbox name."),
    ("log_format", M, "text (Postfix-style lines, for grep and pflogsumm) or json."),
    ("log_repeat_window", M, "Identical warnings within this window are folded into one \"... repeated N times\" line."),
    ("mail_owner", P, "The user that owns the queue and runs the daemon's unprivileged parts (Postfix: postfix)."),
    ("mailbox_transport", P, "Where mail for local users goes instead of the local mailbox, after alias expansion: lmtp:unix:/path, lmtp:inet:host:port or lmtp:[host]:port (e.g. Dovecot's LMTP); empty = the local agent delivers."),
    ("mail_spool_directory", P, "Where mbox files live: <dir>/<user>."),
    ("mailbox_command", P, "Non-empty: hand mailbox deliveries to this command (procmail, maildrop) as the user, with Postfix's environment (HOME USER SHELL LOGNAME EXTENSION DOMAIN LOCAL RECIPIENT SENDER ORIGINAL_RECIPIENT PATH). As in Postfix it is not $-expanded: \"$EXTENSION\" is the shell's, from the environment."),
    ("mailbox_size_limit", P, "An mbox that would grow past this bounces the message (5.2.2); 0 = no limit. Must hold one message_size_limit message."),
    ("maildrop_count_limit", M, "The most files maildrop/ may hold; sendmail checks it itself and exits 75 past it."),
    ("maildrop_size_limit", M, "The most bytes maildrop/ may hold; sendmail checks it itself and exits 75 past it."),
    ("maillog_file", P, "The log file, reopened by mailroom logrotate (SIGUSR1); empty = syslog if syslog_socket is set, else standard error."),
    ("maximal_backoff_time", P, "The longest wait between two delivery attempts of a deferred message."),
    ("maximal_queue_lifetime", P, "How long a message may stay deferred before it bounces as undeliverable."),
    ("message_size_limit", P, "The largest message accepted, in bytes; sendmail exits 69 and SMTP answers 552 for a bigger one."),
    ("mime_header_checks", P, "Tables for the MIME headers (Content-*) of message body parts; default $header_checks."),
    ("minimal_backoff_time", P, "The shortest wait between two delivery attempts of a deferred message."),
    ("mydestination", P, "The domains delivered locally."),
    ("mydomain", P, "The local domain."),
    ("myhostname", P, "This machine's fully qualified name: the SMTP greeting, HELO, Received: headers."),
    ("mynetworks", P, "Clients trusted to relay through this server, as networks (127.0.0.0/8, [::1]/128)."),
    ("myorigin", P, "The domain added to locally submitted addresses without one."),
    ("nested_header_checks", P, "Tables for the headers of attached messages (message/rfc822 parts); default $header_checks."),
    ("postdrop_path", M, "The setgid helper sendmail falls back to when it cannot write maildrop/ itself (Postfix: postdrop)."),
    ("profile", M, "Which built-in defaults the file starts from: embedded (per-user, no privileges) or system (/var/spool/mailroom, port 25, user mailroom)."),
    ("queue_directory", P, "The queue: maildrop/, the message log, corrupt/, the lock and the control socket."),
    ("queue_dsync_writes", M, "The store opens its segment files O_DSYNC: a group commit's write is its sync, one system call instead of write plus fdatasync. With queue_prezero_segments it relayed fastest on a journaled ext4 (README, \"How it keeps mail safe\"). auto (the default): on when queue_prezero_segments turns out on."),
    ("queue_minfree", P, "Intake refuses (sendmail 75, SMTP 452 4.3.1) below this much free space on the queue's file system, while delivery goes on. Postfix's default is 0; mailroom's is 100M."),
    ("queue_minfree_inodes", M, "Intake also refuses below this many free inodes."),
    ("queue_prezero_segments", M, "The store prepares each next 16 MB segment ahead, written full of zeros and fsynced once, so a commit overwrites allocated blocks and its sync has no size or extent change for the journal to commit. Costs one extra write of every segment; skipped while space is short. auto (the default): on where the queue is on an ext4 with a journal, off elsewhere."),
    ("queue_run_delay", P, "How often deferred mail is reconsidered."),
    ("reinject_listen", M, "Loopback SMTP listeners for mail coming back from the content filter (it is not filtered again)."),
    ("recipient_delimiter", P, "Characters that separate a local part from its extension (+ makes alice+news reach alice, with $extension = news); empty = none."),
    ("relay_domains", P, "Remote domains this server accepts mail for from any client."),
    ("relayhost", P, "Send all remote mail through this host ([host]:port skips the MX lookup); empty = deliver directly."),
    ("setgid_group", P, "The group of the setgid postdrop helper and of maildrop/ (Postfix: postdrop)."),
    ("smtp_bind_address", P, "SMTP client: the local IPv4 address outgoing connections come from; empty = the system's choice."),
    ("smtp_bind_address6", P, "SMTP client: the local IPv6 address outgoing connections come from; empty = the system's choice."),
    ("smtp_bind_address_enforce", P, "SMTP client: defer (4.4.0) when smtp_bind_address or smtp_bind_address6 cannot be used, instead of logging a warning and connecting from the system's choice."),
    ("smtp_connection_reuse_count_limit", P, "SMTP client: how many times a cached connection may be reused (it carries at most this many plus one deliveries); 0 = no limit."),
    ("smtp_connect_timeout", P, "SMTP client: how long to wait for a TCP connection."),
    ("smtp_connection_cache_time_limit", P, "SMTP client: how long an idle connection is kept for the next delivery to the same destination or server address (0 = close after each delivery)."),
    ("smtp_data_done_timeout", P, "SMTP client: how long to wait for the reply to the final dot."),
    ("smtp_data_init_timeout", P, "SMTP client: how long to wait for the reply to DATA."),
    ("smtp_data_xfer_timeout", P, "SMTP client: how long one write of message content may stall."),
    ("smtp_default_port", M, "The port used for MX hosts."),
    ("smtp_destination_concurrency_limit", P, "SMTP client: deliveries in flight to one destination (with fleet_redis_url: connections from the whole fleet)."),
    ("smtp_destination_rate_limit", M, "Messages per time to a destination, as { \"example.net\" = \"300/m\" } (s, m, h, d); keys are the scheduler's destination names (a domain, or a next hop like [10.0.0.1]:25); with fleet_redis_url the rate is the whole fleet's."),
    ("smtp_destination_recipient_limit", P, "SMTP client: recipients per transaction."),
    ("smtp_helo_name", P, "SMTP client: the name sent in EHLO/HELO."),
    ("smtp_helo_timeout", P, "SMTP client: how long to wait for the greeting and the EHLO reply."),
    ("smtp_line_length_limit", P, "SMTP client: longer header or body lines are broken with CRLF SPACE; 0 = never."),
    ("smtp_mail_timeout", P, "SMTP client: how long to wait for the reply to MAIL FROM."),
    ("smtp_mta_sts", M, "Honour MTA-STS (RFC 8461) policies of recipient domains: in mode enforce, mail goes only to MX hosts the policy lists, over TLS with a verified certificate, else it is deferred with the reason; testing only logs. Postfix needs an external policy daemon for this."),
    ("smtp_mta_sts_ca_file", M, "PEM CA certificates trusted for MTA-STS policy hosts and MX certificates; empty = the system's roots."),
    ("smtp_mta_sts_policy_port", M, "The HTTPS port of MTA-STS policy hosts (mta-sts.DOMAIN). RFC 8461 says 443; only tests and proxies change it."),
    ("smtp_quit_timeout", P, "SMTP client: how long to wait for the reply to QUIT."),
    ("smtp_rcpt_timeout", P, "SMTP client: how long to wait for the reply to RCPT TO."),
    ("smtp_sasl_auth_enable", P, "SMTP client: authenticate (AUTH PLAIN or LOGIN) to servers that offer AUTH, with the password from smtp_sasl_password_maps."),
    ("smtp_sasl_password_maps", P, "SMTP client: files of `[host]:port user:password` lines, looked up by [host]:port, [host], the server name, the nexthop domain (and first by sender with smtp_sender_dependent_authentication); refused when readable by group or others."),
    ("smtp_sasl_security_options", P, "SMTP client SASL restrictions outside TLS: noplaintext forbids PLAIN and LOGIN, noanonymous is always in effect."),
    ("smtp_sasl_tls_security_options", P, "SMTP client SASL restrictions inside TLS. Postfix's default is $smtp_sasl_security_options (no PLAIN even over TLS); mailroom's is noanonymous."),
    ("smtp_sender_dependent_authentication", P, "SMTP client: look up the sender address, then @domain, in smtp_sasl_password_maps before the server."),
    ("smtp_tls_CAfile", P, "SMTP client: PEM bundle of the CAs trusted at verify and secure; empty = the system store (/etc/ssl/certs/ca-certificates.crt)."),
    ("smtp_tls_servername", P, "SMTP client: the TLS SNI name: empty (none sent), hostname (the MX host), nexthop (the destination) or a DNS name; with DANE always the MX host."),
    ("smtp_tls_protocols", P, "SMTP client: TLS versions at may, Postfix syntax (>=TLSv1.2, !TLSv1.3, TLSv1.2:TLSv1.3); mailroom speaks only TLSv1.2 and TLSv1.3."),
    ("smtp_tls_mandatory_protocols", P, "SMTP client: TLS versions at encrypt, verify, secure and dane, same syntax as smtp_tls_protocols; a tls_policy protocols= attribute overrides it."),
    ("smtp_tls_ciphers", P, "SMTP client: cipher grade at may (export, low, medium, high, null); accepted but changes nothing: rustls offers only strong AEAD suites."),
    ("smtp_tls_mandatory_ciphers", P, "SMTP client: cipher grade at encrypt and above; accepted but changes nothing (rustls's suites are all Postfix's high grade)."),
    ("smtp_tls_policy_maps", P, "SMTP client: tls_policy(5) files, per destination a level and match= names (`example.org secure match=mx.example.org`, `[mx.example.net]:587 encrypt`)."),
    ("smtp_tls_secure_cert_match", P, "SMTP client: names a certificate must match at secure (nexthop, dot-nexthop, hostname, a name, or .domain for its subdomains)."),
    ("smtp_tls_security_level", P, "SMTP client TLS: none, may (opportunistic STARTTLS), encrypt (required, any certificate), verify (trusted chain naming the MX host), secure (trusted chain naming the nexthop), dane (RFC 7672 TLSA records when DNSSEC-signed, else may) or dane-only (TLSA or defer)."),
    ("smtp_tls_verify_cert_match", P, "SMTP client: names a certificate must match at verify (default hostname: the MX host name)."),
    ("smtpd_banner", P, "The text after 220 in the SMTP greeting."),
    ("smtpd_client_auth_failure_limit", M, "Failed AUTH attempts allowed per client address and per user name within anvil_rate_time_unit; past it AUTH is refused without a password check. 0 = no limit."),
    ("smtpd_client_auth_rate_limit", P, "AUTH commands one client address may send per anvil_rate_time_unit; over it 450 4.7.1. 0 = no limit."),
    ("smtpd_client_connection_count_limit", P, "Simultaneous connections from one client address and service; over it 421 4.7.0. 0 = no limit. Clients in smtpd_client_event_limit_exceptions are exempt."),
    ("smtpd_client_connection_rate_limit", P, "Connections one client address may make to a service per anvil_rate_time_unit; over it 421 4.7.0 and close. 0 = no limit."),
    ("smtpd_client_event_limit_exceptions", P, "Clients exempt from the per-client count and rate limits, as networks (default $mynetworks)."),
    ("smtpd_client_ipv4_prefix_length", P, "The per-client count and rate limits count IPv4 clients by this network prefix: 32 = each address alone, 24 = a /24 together (1-32)."),
    ("smtpd_client_ipv6_prefix_length", P, "The per-client count and rate limits count IPv6 clients by this network prefix, so that rotating addresses inside a /64 does not escape them (1-128; 128 = each address alone)."),
    ("smtpd_client_message_rate_limit", P, "MAIL FROM commands one client address may send per anvil_rate_time_unit; over it 450 4.7.1. 0 = no limit."),
    ("smtpd_client_new_tls_session_rate_limit", P, "New TLS sessions one client address may negotiate per anvil_rate_time_unit; over it STARTTLS gets 454 4.7.0. 0 = no limit."),
    ("smtpd_client_recipient_rate_limit", P, "RCPT TO commands one client address may send per anvil_rate_time_unit; over it 450 4.7.1. 0 = no limit."),
    ("smtpd_error_sleep_time", P, "How long the SMTP server waits before answering an error."),
    ("smtpd_forbid_bare_newline", P, "A bare LF in SMTP input: reject (550 5.5.2, Postfix's yes), normalize (accepted as a line end, never as part of the end-of-data mark) or no."),
    ("smtpd_forbid_unauth_pipelining", P, "Disconnect (554 5.5.0) a client that pipelines where it may not, or talks before the greeting. The submission listener is exempt."),
    ("smtpd_hard_error_limit", P, "Errors after which a client is disconnected (stress-dependent)."),
    ("smtpd_helo_required", P, "Require HELO/EHLO before MAIL FROM."),
    ("access_map_defer_code", P, "Reply code of DEFER (and DEFER_IF_PERMIT) results of check_*_access tables and policy services."),
    ("access_map_reject_code", P, "Reply code of REJECT results of check_*_access tables and policy services."),
    ("default_rbl_reply", P, "The reply of reject_rbl_client and the reject_rhsbl_* restrictions ($rbl_code, $rbl_class, $rbl_what, $rbl_domain, $rbl_reason)."),
    ("defer_code", P, "Reply code of the defer restriction."),
    ("invalid_hostname_reject_code", P, "Reply code of reject_invalid_helo_hostname."),
    ("maps_rbl_reject_code", P, "The $rbl_code of a DNSBL rejection."),
    ("non_fqdn_reject_code", P, "Reply code of reject_non_fqdn_helo_hostname, reject_non_fqdn_sender and reject_non_fqdn_recipient."),
    ("rbl_reply_maps", P, "Reply templates per DNSBL domain, instead of default_rbl_reply."),
    ("reject_code", P, "Reply code of the reject restriction."),
    ("relay_domains_reject_code", P, "Reply code of reject_unauth_destination (defer_unauth_destination answers 100 less)."),
    ("smtpd_client_restrictions", P, "Restrictions on the client address (at RCPT with smtpd_delay_reject)."),
    ("smtpd_data_restrictions", P, "Restrictions applied to the DATA command."),
    ("smtpd_delay_reject", P, "Evaluate client, HELO and sender restrictions at RCPT (yes) or at MAIL (no)."),
    ("smtpd_restriction_classes", P, "Named restriction lists, usable as a restriction or as an access table result: [{ name = \"from_freemail\", restrictions = \"reject_unknown_sender_domain, reject\" }] (Postfix: a class name here and a parameter of that name)."),
    ("smtpd_end_of_data_restrictions", P, "Restrictions applied after the message data, before it is queued."),
    ("smtpd_helo_restrictions", P, "Restrictions on the HELO/EHLO name (at RCPT with smtpd_delay_reject)."),
    ("smtpd_policy_service_max_idle", P, "A kept check_policy_service connection is closed after this long unused."),
    ("smtpd_policy_service_max_ttl", P, "A kept check_policy_service connection is closed this long after it was opened (at its next use or when idle)."),
    ("smtpd_policy_service_request_limit", P, "Queries per check_policy_service connection before it is closed (0: no limit)."),
    ("smtpd_policy_service_retry_delay", P, "The pause between two attempts of one policy query."),
    ("smtpd_policy_service_try_limit", P, "Attempts per policy query before smtpd_policy_service_default_action applies (a kept connection the server closed is retried once more, uncounted)."),
    ("smtpd_policy_service_default_action", P, "What a check_policy_service server that fails or times out amounts to."),
    ("smtpd_policy_service_timeout", P, "How long one check_policy_service query may take."),
    ("smtpd_recipient_restrictions", P, "Restrictions on RCPT TO, after smtpd_relay_restrictions."),
    ("smtpd_relay_restrictions", P, "Relay control: restrictions on RCPT TO, before smtpd_recipient_restrictions."),
    ("smtpd_sender_restrictions", P, "Restrictions on MAIL FROM (at RCPT with smtpd_delay_reject)."),
    ("unknown_address_reject_code", P, "Reply code of reject_unknown_sender_domain and reject_unknown_recipient_domain for a domain that does not exist."),
    ("unknown_client_reject_code", P, "Reply code of reject_unknown_reverse_client_hostname for an address without a name."),
    ("unknown_hostname_reject_code", P, "Reply code of reject_unknown_helo_hostname."),
    ("smtpd_junk_command_limit", P, "NOOP, VRFY, RSET, HELO/EHLO past this count as errors; reset when a message is queued (stress-dependent)."),
    ("smtpd_listen", M, "SMTP listeners, as address:port (Postfix: the smtp line of master.cf)."),
    ("smtpd_min_data_rate", P, "Bytes per second that extend the DATA/BDAT deadline."),
    ("smtpd_per_request_deadline", P, "Apply smtpd_timeout to a whole command or DATA rather than each read, so a client trickling one byte at a time cannot hold a slot (stress-dependent)."),
    ("smtpd_process_limit", M, "Simultaneous SMTP connections in all (Postfix: smtpd's process limit in master.cf)."),
    ("smtpd_recipient_limit", P, "Recipients accepted per message."),
    ("smtpd_recipient_overshoot_limit", P, "Recipients past smtpd_recipient_limit are answered 452 without counting as errors, up to this many."),
    ("smtpd_sasl_auth_enable", P, "Offer AUTH on the smtp listeners too (always on for submission)."),
    ("smtpd_sasl_password_file", M, "The SMTP AUTH users: name:argon2-hash lines, managed with mailroom passwd."),
    ("smtpd_session_deadline", M, "The longest one SMTP session may last, whatever it sends (stress-dependent)."),
    ("smtpd_soft_error_limit", P, "Errors after which the server slows down its replies (smtpd_error_sleep_time)."),
    ("smtpd_timeout", P, "How long the SMTP server waits for a client (stress-dependent)."),
    ("smtpd_tls_cert_file", P, "PEM certificate chain for STARTTLS; empty = a self-signed pair made on first start under data_directory/tls/."),
    ("smtpd_tls_key_file", P, "PEM private key for smtpd_tls_cert_file."),
    ("smtpd_tls_security_level", P, "SMTP server TLS: none, may (offer STARTTLS) or encrypt (required before MAIL)."),
    ("soft_bounce", P, "Turn every bounce into a deferral: nothing is returned, mail stays queued (for testing a change safely)."),
    ("submission_listen", M, "Submission (port 587 style) listeners: AUTH is required before MAIL."),
    ("submit_timeout", M, "The longest sendmail may work after reading its input; past it, it exits 75 and leaves nothing behind."),
    ("syslog_facility", P, "The syslog facility of log lines (mail)."),
    ("syslog_name", P, "The ident of log lines: syslog_name/service[pid]. postfix makes fail2ban's and pflogsumm's Postfix defaults match."),
    ("syslog_socket", M, "The syslog datagram socket (/dev/log in the system profile); empty = no syslog (Postfix always uses /dev/log)."),
    ("transport_destination_concurrency_limit", M, "Postfix's NAME_destination_concurrency_limit for named transports, as { \"slow\" = \"3\" }: deliveries in flight to one destination of that transport (with fleet_redis_url: the whole fleet's); unset = default_destination_concurrency_limit."),
    ("transport_destination_rate_limit", M, "Messages per time to one destination of a named transport, as { \"slow\" = \"60/m\" } (with fleet_redis_url: the whole fleet's)."),
    ("transport_maps", P, "Transport map files: example.com smtp:[10.0.0.5]:25, example.org lmtp:unix:/run/dovecot/lmtp."),
    ("transports", M, "Named transports (Postfix: master.cf services) and their agent, as { \"slow\" = \"smtp\" }: transport_maps may then say example.net slow:[mx.example.net], with that transport's own limits."),
    ("canonical_maps", P, "Maps (canonical(5)) rewriting sender and recipient addresses in the envelope and the headers at cleanup: root  ops@example.com. Text tables, regexp:, pcre: and the other maps crate types."),
    ("sender_canonical_maps", P, "Like canonical_maps, for sender addresses only; tried before canonical_maps."),
    ("recipient_canonical_maps", P, "Like canonical_maps, for recipient addresses only; tried before canonical_maps."),
    ("canonical_classes", P, "Which addresses canonical_maps rewrites: envelope_sender, envelope_recipient, header_sender, header_recipient."),
    ("sender_canonical_classes", P, "Which addresses sender_canonical_maps rewrites: envelope_sender, header_sender."),
    ("recipient_canonical_classes", P, "Which addresses recipient_canonical_maps rewrites: envelope_recipient, header_recipient."),
    ("masquerade_domains", P, "Domains that hide their subdomains: with example.com, user@host.example.com becomes user@example.com. A !domain entry excludes it."),
    ("masquerade_classes", P, "Which addresses are masqueraded: envelope_sender, envelope_recipient, header_sender, header_recipient."),
    ("masquerade_exceptions", P, "Local parts never masqueraded (root)."),
    ("virtual_alias_maps", P, "Maps (virtual(5)) that expand envelope recipients one-to-many at cleanup, recursively; @domain keys catch a whole domain."),
    ("virtual_alias_domains", P, "Domains that only have virtual aliases: an address there without an entry is refused at RCPT (550 5.1.1 User unknown in virtual alias table). Names, or maps whose keys are the domains; default $virtual_alias_maps."),
    ("virtual_alias_recursion_limit", P, "How deep a virtual alias expansion may nest; deeper is a loop (mailroom bounces 5.4.6 where Postfix defers)."),
    ("virtual_alias_expansion_limit", P, "How many addresses one recipient may expand to; more bounces 5.4.6 (Postfix defers)."),
    ("propagate_unmatched_extensions", P, "Which tables carry an address extension the key did not match over to the result (user+foo -> other+foo): canonical, virtual (here; alias, forward, include are local delivery's)."),
    ("relocated_maps", P, "Maps (relocated(5)) of users or domains that have moved: mail to them bounces 550 5.1.6 User has moved to NEW (refused at RCPT too)."),
    ("smtp_generic_maps", P, "Maps (generic(5)) rewriting the envelope sender and header addresses of mail the SMTP client sends: root@web01.localdomain  ops@example.com."),
    ("virtual_gid_maps", P, "user@domain (or @domain) -> the gid a virtual mailbox is written with; static:5000 for all."),
    ("virtual_mailbox_base", P, "The absolute directory every virtual_mailbox_maps result is under."),
    ("virtual_mailbox_domains", P, "Domains whose mail goes to virtual_transport, by default the virtual agent (domain names, or maps with the domain as key; default $virtual_mailbox_maps). Must not overlap mydestination."),
    ("virtual_mailbox_limit", P, "A virtual mbox that would grow past this (or a larger Maildir message) bounces the message (5.2.2); 0 = no limit."),
    ("virtual_mailbox_lock", P, "Locks taken on a virtual mbox: fcntl and/or dotlock (Postfix's flock is not offered)."),
    ("virtual_mailbox_maps", P, "user@domain (or @domain) -> mailbox path under virtual_mailbox_base, a trailing / for Maildir. Unknown users are refused at RCPT (550 5.1.1)."),
    ("virtual_minimum_uid", P, "The lowest uid virtual_uid_maps may give; a lower one defers the mail (4.3.5, mail system configuration error)."),
    ("virtual_transport", P, "The transport of virtual_mailbox_domains: virtual (the built-in virtual(8) agent) or lmtp:unix:/path, lmtp:inet:host:port (e.g. Dovecot's LMTP)."),
    ("virtual_uid_maps", P, "user@domain (or @domain) -> the uid a virtual mailbox is written with; static:5000 for all."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_has_a_meaning_and_no_meaning_is_stale() {
        let reference = parameter_reference();
        assert_eq!(reference.len(), PARAMS.len() + 1);
        for doc in &reference {
            assert!(
                !doc.meaning.is_empty(),
                "{}: add its meaning to MEANINGS in reference.rs",
                doc.name
            );
        }
        for (name, _, _) in MEANINGS {
            assert!(
                reference.iter().any(|doc| doc.name == *name),
                "{name}: no such parameter"
            );
        }
    }

    #[test]
    fn defaults_are_the_profiles_own_and_site_facts_are_described() {
        let reference = parameter_reference();
        let find = |name| reference.iter().find(|doc| doc.name == name).unwrap();
        assert_eq!(find("hopcount_limit").default, "50");
        assert_eq!(find("hopcount_limit").embedded_default, None);
        assert_eq!(find("myorigin").default, "$myhostname");
        assert_eq!(find("queue_directory").default, "/var/spool/mailroom");
        assert_eq!(
            find("queue_directory").embedded_default.as_deref(),
            Some("$data_directory/queue")
        );
        assert_eq!(
            find("smtpd_listen").embedded_default.as_deref(),
            Some("127.0.0.1:2525")
        );
        assert!(find("myhostname").default.contains("host name"));
        assert!(find("mail_owner")
            .embedded_default
            .as_deref()
            .unwrap()
            .contains("user running"));
        assert_eq!(find("profile").default, "embedded");
        assert_eq!(find("profile").embedded_default, None);
    }
}
