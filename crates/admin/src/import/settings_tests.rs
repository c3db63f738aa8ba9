use super::*;
use crate::import::master_cf::{decide_master_cf, parse_master_cf};

fn decision<'a>(decisions: &'a [Decision], name: &str) -> &'a Decision {
    decisions
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no decision for {name}: {decisions:?}"))
}

#[test]
fn main_cf_continuation_lines_comments_and_last_definition_win() {
    let text = "# comment\nmyhostname = a.example\nmydestination = $myhostname,\n    localhost\n\n  # indented comment\nmyhostname = b.example\n";
    let params = parse_main_cf(text);
    assert_eq!(
        params,
        [
            ("myhostname".to_string(), "b.example".to_string()),
            (
                "mydestination".to_string(),
                "$myhostname, localhost".to_string()
            ),
        ]
    );
}

#[test]
fn postfix_own_paths_unknown_names_and_bad_values_are_ignored_with_why() {
    let params = parse_main_cf(
        "queue_directory = /var/spool/postfix\nbiff = no\nsmtpd_banner = $myhostname ESMTP $mail_name\nmyhostname = mail.example.com\nhopcount_limit = 50\n",
    );
    let decisions = decide_main_cf(&params);
    let queue = decision(&decisions, "queue_directory");
    assert_eq!(queue.outcome, Outcome::Ignored);
    assert!(queue.why.as_deref().unwrap().contains("own store"));
    assert_eq!(
        decision(&decisions, "biff").why.as_deref(),
        Some("mailroom has no such parameter")
    );
    let banner = decision(&decisions, "smtpd_banner");
    assert_eq!(banner.outcome, Outcome::Ignored);
    assert!(
        banner.why.as_deref().unwrap().contains("mail_name"),
        "{banner:?}"
    );
    assert_eq!(
        decision(&decisions, "myhostname").outcome,
        Outcome::Imported
    );
    assert_eq!(
        decision(&decisions, "hopcount_limit").outcome,
        Outcome::Default
    );
}

#[test]
fn a_time_without_unit_takes_postfix_default_unit_not_seconds() {
    let decisions = decide_main_cf(&parse_main_cf(
        "maximal_queue_lifetime = 3\ndelay_warning_time = 4\nminimal_backoff_time = 120\n",
    ));
    assert_eq!(decision(&decisions, "maximal_queue_lifetime").value, "3d");
    assert_eq!(decision(&decisions, "delay_warning_time").value, "4h");
    assert_eq!(decision(&decisions, "minimal_backoff_time").value, "120");
}

#[test]
fn indexed_tables_are_read_from_their_text_source() {
    assert_eq!(source_table("hash:/etc/aliases"), "/etc/aliases");
    assert_eq!(
        source_table("proxy:lmdb:/etc/postfix/transport"),
        "/etc/postfix/transport"
    );
    assert_eq!(
        source_table("regexp:/etc/postfix/re"),
        "regexp:/etc/postfix/re"
    );
    let (value, note) = translate("alias_maps", "hash:/etc/aliases, hash:/etc/more");
    assert_eq!(value, "/etc/aliases, /etc/more");
    assert!(note.is_some());
}

#[test]
fn merge_keeps_the_existing_files_values_and_its_comments() {
    let mut decisions = decide_main_cf(&parse_main_cf(
        "myhostname = mail.example.com\nrelayhost = [smarthost.example]:587\n",
    ));
    let existing = "# my notes\nrelayhost = \"[other.example]\"\n";
    let text = merge(Some(existing), &mut decisions).unwrap();
    assert!(
        text.starts_with("# my notes\nrelayhost = \"[other.example]\"\n"),
        "{text}"
    );
    assert!(text.contains("myhostname = \"mail.example.com\""), "{text}");
    assert_eq!(decision(&decisions, "relayhost").outcome, Outcome::Kept);
    let config = Config::from_str(&text, None).unwrap();
    assert_eq!(config.relayhost, "[other.example]");
    // A second run changes nothing.
    let mut again = decide_main_cf(&parse_main_cf("myhostname = mail.example.com\n"));
    assert_eq!(merge(Some(&text), &mut again).unwrap(), text);
}

#[test]
fn a_new_file_uses_the_system_profile_and_loads() {
    let mut decisions = decide_main_cf(&parse_main_cf(
        "message_size_limit = 20480000\nsoft_bounce = yes\n",
    ));
    let text = merge(None, &mut decisions).unwrap();
    let config = Config::from_str(&text, None).unwrap();
    assert_eq!(config.message_size_limit, 20_480_000);
    assert_eq!(config.profile, config::Profile::System);
}

#[test]
fn master_cf_smtp_services_become_listeners_and_the_rest_is_reported() {
    let master = "\
smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       -       smtpd
  -o smtpd_tls_security_level=encrypt
smtps     inet  n       -       y       -       -       smtpd
pickup    unix  n       -       y       60      1       pickup
amavis    unix  -       -       n       -       2       smtp
";
    let services = parse_master_cf(master);
    assert_eq!(services.len(), 5);
    let main = parse_main_cf(
        "inet_interfaces = 192.0.2.1, 127.0.0.1\namavis_destination_concurrency_limit = 2\n\
         amavis_destination_rate_delay = 5s\n",
    );
    let decisions = decide_master_cf(&services, &main);
    // A service running the smtp client is a named transport, with its main.cf limits.
    assert_eq!(decision(&decisions, "transports").value, "amavis=smtp");
    let limit = decision(&decisions, "transport_destination_concurrency_limit");
    assert_eq!(
        (limit.value.as_str(), limit.outcome),
        ("amavis=2", Outcome::Imported)
    );
    let rate = decision(&decisions, "transport_destination_rate_limit");
    assert_eq!(
        (rate.value.as_str(), rate.outcome),
        ("amavis=1/5s", Outcome::Imported)
    );
    let smtpd = decision(&decisions, "smtpd_listen");
    assert_eq!(smtpd.value, "192.0.2.1:25, 127.0.0.1:25");
    assert_eq!(smtpd.outcome, Outcome::Imported);
    assert_eq!(
        decision(&decisions, "submission_listen").value,
        "192.0.2.1:587, 127.0.0.1:587"
    );
    let ignored: Vec<&str> = decisions
        .iter()
        .filter(|d| d.outcome == Outcome::Ignored)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(
        ignored,
        ["master.cf submission/inet", "master.cf smtps/inet",],
        "{decisions:?}"
    );
}

#[test]
fn myorigin_naming_a_file_takes_its_first_line_as_postfix_does() {
    let dir = tempfile::tempdir().unwrap();
    let mailname = dir.path().join("mailname");
    std::fs::write(&mailname, "\nexample.org\n").unwrap();
    let params = vec![("myorigin".to_string(), mailname.display().to_string())];
    let decisions = decide_main_cf(&params);
    assert_eq!(decisions[0].value, "example.org");
    assert_eq!(decisions[0].outcome, Outcome::Imported);
    let missing = vec![("myorigin".to_string(), "/nonexistent/mailname".to_string())];
    assert_eq!(decide_main_cf(&missing)[0].outcome, Outcome::Ignored);
}
