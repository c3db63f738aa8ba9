//! Whole-file tests: TOML text in, `Config` or error out. Each builds its environment
//! explicitly, so none reads or writes the process environment (tests run in parallel).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::defaults::{self, Environment};
use crate::load::{config_path, parse, SYSTEM_CONFIG_PATH};
use crate::{Config, ConfigError, LogFormat, Profile};

fn environment() -> Environment {
    Environment {
        mailroom_data: Some("/srv/mailroom".into()),
        ..Environment::default()
    }
}

fn parse_ok(text: &str) -> Config {
    parse(text, None, &environment()).unwrap_or_else(|error| panic!("{error}"))
}

fn parse_err(text: &str) -> ConfigError {
    let file = Path::new(SYSTEM_CONFIG_PATH);
    parse(text, Some(file), &environment()).expect_err("should fail")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

#[test]
fn an_empty_file_is_the_embedded_default() {
    assert_eq!(parse_ok(""), defaults::embedded(&environment()));
}

#[test]
fn unknown_key_names_its_line_and_the_closest_name() {
    let error = parse_err("myhostname = \"a.example\"\n\nmessage_size_limt = 5\n");
    assert_eq!(
        error.to_string(),
        "/etc/mailroom/mailroom.toml:3: message_size_limt: unknown parameter; \
         did you mean message_size_limit?"
    );
    let error = parse_err("\n[smtpd]\nport = 25\n");
    assert_eq!((error.line, error.key.as_str()), (Some(2), "smtpd"));
    assert!(error.message.contains("no [sections]"), "{error}");
    assert_eq!(parse_err("frobnicate = 1").message, "unknown parameter");
}

#[test]
fn bad_value_names_its_line() {
    let text = "# comment\n\n\n\n\nhopcount_limit = 10\nqueue_minfree = \"lots\"\n";
    assert_eq!(
        parse_err(text).to_string(),
        "/etc/mailroom/mailroom.toml:7: queue_minfree: not a size: \"lots\" \
         (use bytes or a unit: 100M, 2G)"
    );
    let error = parse_err("soft_bounce = \"maybe\"");
    assert_eq!((error.line, error.key.as_str()), (Some(1), "soft_bounce"));
    assert_eq!(
        parse_err("hopcount_limit = -1").message,
        "must not be negative: -1"
    );
    assert_eq!(
        parse_err("hopcount_limit = 0").message,
        "must be greater than zero"
    );
    assert!(parse_err("relayhost = 25")
        .message
        .starts_with("expected a string"));
    assert!(parse_err("smtpd_listen = \"localhost\"")
        .message
        .starts_with("not a socket"));
    assert!(parse_err("log_format = \"xml\"")
        .message
        .starts_with("not a log format"));
    assert!(parse_err("allow_mail_to_files = \"alias, pipe\"")
        .message
        .contains("\"pipe\""));
    assert!(parse_err("default_privs = \"root\"")
        .message
        .contains("privileged"));
}

#[test]
fn client_prefix_lengths_take_postfix_defaults_and_refuse_what_is_no_prefix() {
    let config = parse_ok("");
    assert_eq!(
        (
            config.smtpd_client_ipv4_prefix_length,
            config.smtpd_client_ipv6_prefix_length
        ),
        (32, 84)
    );
    let config =
        parse_ok("smtpd_client_ipv4_prefix_length = 24\nsmtpd_client_ipv6_prefix_length = 64");
    assert_eq!(config.smtpd_client_ipv4_prefix_length, 24);
    assert_eq!(config.smtpd_client_ipv6_prefix_length, 64);
    for (text, message) in [
        (
            "smtpd_client_ipv4_prefix_length = 33",
            "not a prefix length between 1 and 32: 33",
        ),
        (
            "smtpd_client_ipv4_prefix_length = 0",
            "not a prefix length between 1 and 32: 0",
        ),
        (
            "smtpd_client_ipv6_prefix_length = 129",
            "not a prefix length between 1 and 128: 129",
        ),
    ] {
        assert_eq!(parse_err(text).message, message, "{text}");
    }
}

#[test]
fn syntax_error_names_its_line() {
    let error = parse_err("relayhost = \"a\"\nmynetworks = [\"x\"\n\n");
    assert!(error.line.is_some_and(|line| line >= 2), "{error}");
    assert!(error.message.starts_with("TOML syntax error"), "{error}");
    assert!(error.key.is_empty());
    assert!(!error.message.contains('\n'), "{error}");
}

#[test]
fn values_take_both_toml_types() {
    let config = parse_ok(
        "queue_run_delay = 60\nmaximal_queue_lifetime = \"2d\"\nqueue_minfree = \"1G\"\n\
         message_size_limit = 1000\nsoft_bounce = \"yes\"\nlog_format = \"json\"\n\
         smtpd_listen = [\"127.0.0.1:25\", \"[::1]:25\"]\n",
    );
    assert_eq!(config.queue_run_delay, Duration::from_secs(60));
    assert_eq!(
        config.maximal_queue_lifetime,
        Duration::from_secs(2 * 86_400)
    );
    assert_eq!(config.queue_minfree, 1 << 30);
    assert_eq!(config.message_size_limit, 1000);
    assert!(config.soft_bounce);
    assert_eq!(config.log_format, LogFormat::Json);
    let expected: Vec<SocketAddr> =
        vec!["127.0.0.1:25".parse().unwrap(), "[::1]:25".parse().unwrap()];
    assert_eq!(config.smtpd_listen, expected);
}

#[test]
fn lists_take_both_syntaxes() {
    let config = parse_ok(
        "mydestination = \"a.example, b.example c.example\"\n\
         relay_domains = [\"x.example\", \" y.example \"]\nmynetworks = \"\"\n",
    );
    assert_eq!(
        config.mydestination,
        strings(&["a.example", "b.example", "c.example"])
    );
    assert_eq!(config.relay_domains, strings(&["x.example", "y.example"]));
    assert!(config.mynetworks.is_empty());
    assert!(parse_err("relay_domains = [1]").message.contains("strings"));
}

#[test]
fn host_names_drive_domain_origin_and_destination() {
    let config = parse_ok("myhostname = \"mx.example.com\"");
    assert_eq!(config.mydomain, "example.com");
    assert_eq!(config.myorigin, "mx.example.com");
    assert_eq!(
        config.mydestination,
        strings(&["mx.example.com", "localhost.example.com", "localhost"])
    );
}

#[test]
fn dollar_references_expand() {
    let config = parse_ok(
        "myhostname = \"mx.example.com\"\nmydomain = \"example.org\"\n\
         mydestination = \"$myhostname, localhost.${mydomain}, $(mydomain)\"\n\
         relayhost = \"[smtp.$mydomain]:587\"\nmaillog_file = \"$data_directory/log$$\"\n\
         relay_domains = \"$mydestination other.example\"\n",
    );
    assert_eq!(
        config.mydestination,
        strings(&["mx.example.com", "localhost.example.org", "example.org"])
    );
    assert_eq!(config.relayhost, "[smtp.example.org]:587");
    assert_eq!(config.maillog_file, "/srv/mailroom/log$");
    assert_eq!(config.relay_domains.len(), 4);
}

#[test]
fn bad_references_are_errors() {
    let error = parse_err("relayhost = \"x\"\nmyorigin = \"$nosuch\"");
    assert_eq!((error.line, error.key.as_str()), (Some(2), "myorigin"));
    assert_eq!(error.message, "unknown parameter $nosuch in value");
    let error = parse_err("myhostname = \"$myorigin\"\nmyorigin = \"$myhostname\"");
    assert!(error.message.starts_with("recursive reference"), "{error}");
    assert!(parse_err("relayhost = \"a $ b\"")
        .message
        .starts_with("bad $ reference"));
}

#[test]
fn multiplying_references_are_refused_not_expanded_until_memory_runs_out() {
    // Ten parameters, each eight references to the next: 1.3 KB of file, 42 GB of value.
    let chain = [
        "smtpd_banner",
        "relayhost",
        "home_mailbox",
        "content_filter",
        "smtp_helo_name",
        "default_privs",
        "mail_owner",
        "setgid_group",
        "smtpd_tls_cert_file",
        "smtpd_tls_key_file",
    ];
    let mut text: String = chain
        .windows(2)
        .map(|pair| format!("{} = \"{}\"\n", pair[0], format!("${}", pair[1]).repeat(8)))
        .collect();
    text += &format!("smtpd_tls_key_file = \"{}\"\n", "a".repeat(40));
    let error = parse_err(&text);
    assert!(error.message.contains("after $ expansion"), "{error}");
    // The same with lists, whose items a sole reference splices in.
    let lists = [
        "mynetworks",
        "relay_domains",
        "transport_maps",
        "dns_nameservers",
    ];
    let mut text: String = lists
        .windows(2)
        .map(|pair| {
            format!(
                "{} = [{}]\n",
                pair[0],
                vec![format!("\"${}\"", pair[1]); 64].join(",")
            )
        })
        .collect();
    text += &format!("dns_nameservers = [\"{}\"]\n", "a".repeat(100));
    let error = parse_err(&text);
    assert!(error.message.contains("after $ expansion"), "{error}");
    // A long value that does not multiply is fine.
    let long = "x".repeat(100_000);
    assert_eq!(
        parse_ok(&format!("smtpd_banner = \"{long} $myhostname\""))
            .smtpd_banner
            .len(),
        100_000 + 1 + parse_ok("").myhostname.len()
    );
}

#[test]
fn list_items_from_references_are_trimmed_like_items_written_in_the_file() {
    // Found by the config fuzz target: `mailroom config` showed `mydestination = mx , …`,
    // a value no file can write back (array items are trimmed).
    let config = parse_ok(
        "myhostname = \"mx.example.org \"\nrelay_domains = [\"$myhostname\", \" $mydomain\"]",
    );
    assert_eq!(config.mydestination[0], "mx.example.org");
    assert_eq!(config.relay_domains[0], "mx.example.org");
    let written = "myhostname = \"mx.example.org \"\nmydestination = [\"mx.example.org \"]";
    assert_eq!(parse_ok(written).mydestination, config.mydestination[..1]);
}

#[test]
fn a_line_break_in_a_value_is_an_error_not_a_forged_line() {
    // Found by the config fuzz target: `myhostname = "mx\n…"` loaded, `mailroom config`
    // printed the value over several lines, and the SMTP greeting would have carried it.
    let error = parse_err("relayhost = \"x\"\nmyhostname = \"mx.example\\r\\n250 forged\"");
    assert_eq!((error.line, error.key.as_str()), (Some(2), "myhostname"));
    assert!(
        error.message.starts_with("control character '\\r'"),
        "{error}"
    );
    let error = parse_err("mynetworks = [\"127.0.0.0/8\", \"a\\u0000b\"]");
    assert_eq!(error.key, "mynetworks");
    assert_eq!(parse_ok("smtpd_banner = \"a\\tb\"").smtpd_banner, "a\tb");
}

#[test]
fn data_directory_moves_the_paths_under_it() {
    let config = parse_ok("data_directory = \"/home/John Doe/mr\"");
    assert_eq!(
        config.queue_directory,
        PathBuf::from("/home/John Doe/mr/queue")
    );
    assert_eq!(
        config.mail_spool_directory,
        PathBuf::from("/home/John Doe/mr/mail")
    );
    assert_eq!(config.alias_maps, strings(&["/home/John Doe/mr/aliases"]));

    let config = parse_ok("data_directory = \"/d\"\nqueue_directory = \"/q\"");
    assert_eq!(config.queue_directory, PathBuf::from("/q"));
    assert_eq!(config.mail_spool_directory, PathBuf::from("/d/mail"));
}

#[test]
fn system_profile_starts_from_the_system_default() {
    let config = parse_ok("profile = \"system\"\nalias_maps = \"hash:/etc/mail/aliases\"");
    assert_eq!(config.profile, Profile::System);
    assert_eq!(config.queue_directory, PathBuf::from("/var/spool/mailroom"));
    assert_eq!(config.mail_owner, "mailroom");
    assert_eq!(
        config.local_recipient_maps,
        strings(&["unix:passwd.byname", "hash:/etc/mail/aliases"])
    );
    let expected = Config {
        alias_maps: config.alias_maps.clone(),
        ..Config::system_default()
    };
    assert_eq!(
        Config {
            local_recipient_maps: expected.local_recipient_maps.clone(),
            ..config
        },
        expected
    );
    assert!(parse_err("profile = \"desktop\"")
        .message
        .starts_with("not a profile"));
}

#[test]
fn bounce_notice_recipient_has_two_names() {
    let config = parse_ok("2bounce_notice_recipient = \"ops\"");
    assert_eq!(config.bounce_notice_recipient, "ops");
    let config = parse_ok("bounce_notice_recipient = \"ops2\"");
    assert_eq!(config.bounce_notice_recipient, "ops2");
    let error = parse_err("2bounce_notice_recipient = \"a\"\nbounce_notice_recipient = \"b\"");
    assert!(error.message.starts_with("set twice"), "{error}");
}

#[test]
fn cross_parameter_checks_name_the_line() {
    let error = parse_err("relayhost = \"\"\nminimal_backoff_time = \"2h\"\n");
    assert_eq!(
        (error.line, error.key.as_str()),
        (Some(2), "minimal_backoff_time")
    );
}

#[test]
fn config_path_resolution() {
    let explicit = Path::new("/x/explicit.toml");
    let env = || Some(OsString::from("/x/env.toml"));
    let table = [
        (Some(explicit), env(), true, Some("/x/explicit.toml")),
        (None, env(), true, Some("/x/env.toml")),
        (None, Some(OsString::new()), true, Some(SYSTEM_CONFIG_PATH)),
        (None, None, true, Some(SYSTEM_CONFIG_PATH)),
        (None, None, false, None),
    ];
    for (explicit, env_value, system_exists, expected) in table {
        let got = config_path(explicit, env_value, || system_exists);
        assert_eq!(got, expected.map(PathBuf::from));
    }
}

#[test]
fn load_reads_an_explicit_file_and_records_its_source() {
    let path =
        std::env::temp_dir().join(format!("mailroom-config-test-{}.toml", std::process::id()));
    std::fs::write(&path, "hopcount_limit = 7\n").unwrap();
    let loaded = Config::load(Some(&path));
    std::fs::remove_file(&path).unwrap();
    let config = loaded.unwrap();
    assert_eq!(config.hopcount_limit, 7);
    assert_eq!(config.source.as_deref(), Some(path.as_path()));

    let error = Config::load(Some(Path::new("/nonexistent/mailroom.toml"))).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/mailroom.toml: cannot read"),
        "{error}"
    );
}

#[test]
fn stress_dependent_values_take_postfix_syntax_and_plain_values() {
    let default = parse_ok("");
    assert_eq!(default.smtpd_timeout.normal, Duration::from_secs(300));
    assert_eq!(default.smtpd_timeout.stress, Duration::from_secs(10));
    assert_eq!(
        (
            default.smtpd_hard_error_limit.normal,
            default.smtpd_hard_error_limit.stress
        ),
        (20, 1)
    );
    let config = parse_ok(
        "smtpd_timeout = \"${stress?{5}:{60}}s\"\nsmtpd_hard_error_limit = 4\nsmtpd_per_request_deadline = true\nsmtpd_junk_command_limit = \"${stress?{2}:{50}}\"",
    );
    assert_eq!(config.smtpd_timeout.normal, Duration::from_secs(60));
    assert_eq!(config.smtpd_timeout.stress, Duration::from_secs(5));
    assert_eq!(config.smtpd_hard_error_limit, crate::Stressed::fixed(4));
    assert!(config.smtpd_per_request_deadline.normal);
    assert_eq!(config.smtpd_junk_command_limit.stress, 2);
    let shown = crate::render_one(&config, "smtpd_timeout").unwrap();
    assert_eq!(shown, "smtpd_timeout = ${stress?{5}:{60}}s");
    let error = parse_err("smtpd_timeout = \"${stress?{0}:{60}}s\"");
    assert_eq!(error.key, "smtpd_timeout");
    assert_eq!(error.line, Some(1));
}

#[test]
fn delivery_time_templates_are_kept_as_written() {
    let cfg = parse_ok(concat!(
        "forward_path = \"$home/.forward${recipient_delimiter}${extension}, /var/forward/$user\"\n",
        "mailbox_command = \"/usr/bin/procmail -a \\\"$EXTENSION\\\"\"\n",
        "recipient_delimiter = \"+\"\n",
        "command_time_limit = \"30s\"\n",
    ));
    assert_eq!(
        cfg.forward_path,
        "$home/.forward${recipient_delimiter}${extension}, /var/forward/$user"
    );
    assert_eq!(cfg.mailbox_command, "/usr/bin/procmail -a \"$EXTENSION\"");
    assert_eq!(cfg.recipient_delimiter, "+");
    assert_eq!(cfg.command_time_limit, std::time::Duration::from_secs(30));
    let defaults = parse_ok("");
    assert_eq!(
        defaults.forward_path,
        "$home/.forward${recipient_delimiter}${extension}, $home/.forward"
    );
    assert_eq!(defaults.command_time_limit.as_secs(), 1000);
    assert!(defaults.mailbox_command.is_empty() && defaults.recipient_delimiter.is_empty());
}

#[test]
fn dkim_sign_takes_inline_tables_and_prints_them_as_text() {
    let config = parse_ok(
        "dkim_sign = [{ domain = \"Example.COM\", selector = \"mail2026\", key = \"/etc/mailroom/dkim/a.key\" },\n  \"other.example:s1:$data_directory/b.key\"]\n",
    );
    let entries: Vec<String> = config.dkim_sign.iter().map(|e| e.to_text()).collect();
    assert_eq!(
        entries,
        [
            "example.com:mail2026:/etc/mailroom/dkim/a.key",
            "other.example:s1:/srv/mailroom/b.key"
        ]
    );
    let printed = crate::render_one(&config, "dkim_sign").unwrap();
    assert_eq!(
        printed,
        "dkim_sign = example.com:mail2026:/etc/mailroom/dkim/a.key, other.example:s1:/srv/mailroom/b.key"
    );
}

#[test]
fn dkim_sign_entries_missing_a_key_or_with_bad_names_are_refused() {
    let error = parse_err("\ndkim_sign = [{ domain = \"example.com\", selector = \"s\" }]\n");
    assert_eq!((error.line, error.key.as_str()), (Some(2), "dkim_sign"));
    assert!(
        error.message.contains("key is missing"),
        "{}",
        error.message
    );
    let error = parse_err("dkim_sign = [{ domain = \"a b\", selector = \"s\", key = \"/k\" }]\n");
    assert!(
        error.message.contains("not a domain and selector"),
        "{}",
        error.message
    );
    let error =
        parse_err("dkim_sign = [{ domain = \"a\", selector = \"s\", key = \"/k\", x = \"1\" }]\n");
    assert!(
        error.message.contains("unknown key \"x\""),
        "{}",
        error.message
    );
}

#[test]
fn mta_sts_parameters_have_their_defaults() {
    let config = parse_ok("smtp_mta_sts = true\n");
    assert!(config.smtp_mta_sts);
    assert_eq!(config.smtp_mta_sts_policy_port, 443);
    assert_eq!(config.smtp_mta_sts_ca_file, "");
}

#[test]
fn virtual_mailbox_domains_default_to_the_virtual_mailbox_maps() {
    let config = parse_ok("virtual_mailbox_maps = [\"hash:/etc/mailroom/vmailbox\"]");
    assert_eq!(
        config.virtual_mailbox_domains,
        strings(&["hash:/etc/mailroom/vmailbox"])
    );
    assert_eq!(config.virtual_transport, "virtual");
    assert_eq!(config.virtual_minimum_uid, 100);
    assert_eq!(config.virtual_mailbox_limit, 51_200_000);
    let config = parse_ok("virtual_mailbox_domains = \"example.com, example.net\"");
    assert_eq!(
        config.virtual_mailbox_domains,
        strings(&["example.com", "example.net"])
    );
    let error = parse_err("virtual_mailbox_lock = [\"flock\"]");
    assert!(error.message.contains("unknown lock"), "{error}");
}

#[test]
fn rate_limit_exceptions_and_nested_checks_follow_their_defaults() {
    let config = parse_ok("mynetworks = \"192.0.2.0/24\"\nheader_checks = [\"regexp:/etc/h\"]");
    assert_eq!(
        config.smtpd_client_event_limit_exceptions,
        strings(&["192.0.2.0/24"])
    );
    assert_eq!(config.mime_header_checks, strings(&["regexp:/etc/h"]));
    assert_eq!(config.nested_header_checks, strings(&["regexp:/etc/h"]));
    assert!(config.body_checks.is_empty());
    assert_eq!(
        config.smtpd_client_connection_rate_limit, 0,
        "off by default"
    );
    let config = parse_ok("smtpd_client_event_limit_exceptions = []\nmime_header_checks = []");
    assert!(config.smtpd_client_event_limit_exceptions.is_empty());
    assert!(config.mime_header_checks.is_empty());
}

#[test]
fn destination_rate_limits_read_as_an_inline_table_or_strings() {
    let cfg = parse_ok("smtp_destination_rate_limit = { \"Example.NET\" = \"300/m\", \"[10.0.0.1]:25\" = \"5/s\" }");
    let minute = crate::Rate {
        count: 300,
        per: Duration::from_secs(60),
    };
    let second = crate::Rate {
        count: 5,
        per: Duration::from_secs(1),
    };
    let mut got = cfg.smtp_destination_rate_limit.clone();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("[10.0.0.1]:25".to_string(), second),
            ("example.net".to_string(), minute)
        ]
    );
    let cfg = parse_ok("smtp_destination_rate_limit = [\"example.net=10/2m\"]");
    assert_eq!(
        cfg.smtp_destination_rate_limit[0].1,
        crate::Rate {
            count: 10,
            per: Duration::from_secs(120)
        }
    );
    assert_eq!(cfg.smtp_destination_rate_limit[0].1.to_string(), "10/120s");
    for bad in [
        "\"example.net\"",
        "{ \"example.net\" = \"0/m\" }",
        "{ \"example.net\" = 5 }",
    ] {
        parse_err(&format!("smtp_destination_rate_limit = {bad}"));
    }
    parse_err("fleet_redis_url = \"http://redis:6379\"");
    let cfg = parse_ok("fleet_redis_url = \"redis://127.0.0.1:6379/0\"");
    assert_eq!(cfg.fleet_redis_url, "redis://127.0.0.1:6379/0");
}

#[test]
fn named_transports_and_their_limits_are_read_and_misspelt_names_refused() {
    let cfg = parse_ok(
        "transports = { slow = \"smtp\" }\n\
         transport_destination_concurrency_limit = { slow = \"3\" }\n\
         transport_destination_rate_limit = { slow = \"60/m\" }",
    );
    assert_eq!(
        cfg.transports,
        vec![("slow".to_string(), "smtp".to_string())]
    );
    assert_eq!(
        cfg.transport_destination_concurrency_limit,
        vec![("slow".to_string(), 3)]
    );
    assert_eq!(cfg.transport_destination_rate_limit[0].1.count, 60);
    let err = parse_err(
        "transports = { slow = \"smtp\" }\ntransport_destination_concurrency_limit = { slwo = \"3\" }",
    );
    assert!(
        err.to_string().contains("unknown transport \"slwo\""),
        "{err}"
    );
    for bad in [
        "{ smtp = \"smtp\" }",
        "{ slow = \"local\" }",
        "{ \"Sl ow\" = \"smtp\" }",
    ] {
        parse_err(&format!("transports = {bad}"));
    }
    parse_err("transports = { slow = \"smtp\" }\ntransport_destination_concurrency_limit = { slow = \"0\" }");
}

#[test]
fn inet_protocols_defaults_to_all_and_refuses_unknown_words() {
    assert_eq!(parse_ok("").inet_protocols, "all");
    assert_eq!(
        parse_ok("inet_protocols = \"ipv4\"\n").inet_protocols,
        "ipv4"
    );
    let error = parse_err("\ninet_protocols = \"ipv5\"\n");
    assert_eq!(
        error.to_string(),
        "/etc/mailroom/mailroom.toml:2: inet_protocols: unknown protocol \"ipv5\" (all, ipv4, ipv6, or \"ipv4, ipv6\")"
    );
}

#[test]
fn bind_addresses_are_ip_literals_of_their_family() {
    let config = parse_ok("");
    assert_eq!(
        (
            config.smtp_bind_address.as_str(),
            config.smtp_bind_address6.as_str()
        ),
        ("", "")
    );
    assert!(!config.smtp_bind_address_enforce && !config.lmtp_bind_address_enforce);
    let config = parse_ok(
        "smtp_bind_address = \"127.0.0.2\"\nsmtp_bind_address6 = \"[::1]\"\n\
         lmtp_bind_address = \"192.0.2.1\"\nlmtp_bind_address6 = \"2001:db8::1\"\n\
         smtp_bind_address_enforce = true\n",
    );
    assert_eq!(config.smtp_bind_address, "127.0.0.2");
    assert_eq!(config.smtp_bind_address6, "[::1]");
    assert_eq!(config.lmtp_bind_address, "192.0.2.1");
    assert_eq!(config.lmtp_bind_address6, "2001:db8::1");
    assert!(config.smtp_bind_address_enforce);
    let error = parse_err("\nsmtp_bind_address = \"::1\"\n");
    assert_eq!(
        error.to_string(),
        "/etc/mailroom/mailroom.toml:2: smtp_bind_address: \"::1\" is not an IPv4 address"
    );
    let error = parse_err("smtp_bind_address6 = \"127.0.0.1\"\n");
    assert_eq!(error.message, "\"127.0.0.1\" is not an IPv6 address");
    assert!(parse_err("lmtp_bind_address = \"mail.example\"\n")
        .message
        .contains("not an IPv4 address"));
    assert!(parse_err("lmtp_bind_address6 = \"[::1\"\n")
        .message
        .contains("not an IPv6 address"));
}

#[test]
fn connection_reuse_count_limits_default_to_no_limit() {
    let config = parse_ok("");
    assert_eq!(config.smtp_connection_reuse_count_limit, 0);
    assert_eq!(config.lmtp_connection_reuse_count_limit, 0);
    let config = parse_ok(
        "smtp_connection_reuse_count_limit = 2\nlmtp_connection_reuse_count_limit = \"7\"\n",
    );
    assert_eq!(config.smtp_connection_reuse_count_limit, 2);
    assert_eq!(config.lmtp_connection_reuse_count_limit, 7);
    assert!(parse_err("smtp_connection_reuse_count_limit = -1\n")
        .key
        .contains("reuse_count"));
}

#[test]
fn qmgr_message_active_limit_takes_postfix_default_and_refuses_zero() {
    assert_eq!(parse_ok("").qmgr_message_active_limit, 20_000);
    assert_eq!(
        parse_ok("qmgr_message_active_limit = 20").qmgr_message_active_limit,
        20
    );
    assert_eq!(
        parse_err("qmgr_message_active_limit = 0").message,
        "must be greater than zero"
    );
    assert_eq!(
        parse_err("qmgr_message_active_limit = -5").message,
        "must not be negative: -5"
    );
    let error = parse_err("qmgr_message_active_limt = 20");
    assert!(
        error.to_string().contains("qmgr_message_active_limit"),
        "{error}"
    );
}

#[test]
fn smtpd_milter_maps_is_a_list_of_maps_empty_by_default() {
    assert!(parse_ok("").smtpd_milter_maps.is_empty());
    let config = parse_ok("smtpd_milter_maps = \"cidr:/etc/mailroom/milters.cidr, hash:/etc/m\"\n");
    assert_eq!(
        config.smtpd_milter_maps,
        strings(&["cidr:/etc/mailroom/milters.cidr", "hash:/etc/m"])
    );
    assert!(parse_err("smtpd_milter_map = \"cidr:/x\"")
        .message
        .contains("smtpd_milter_maps"));
}
