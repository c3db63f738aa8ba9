//! Issue 13 part 1: the restrictions that ask the DNS, against the repo's test DNS server
//! (`dns_nameservers`): `reject_rbl_client` with and without a `=127.0.0.x` filter and its
//! TXT reason, `reject_rhsbl_sender` / `_helo`, `reject_unknown_sender_domain` and
//! `_recipient_domain` (NXDOMAIN → 450 4.1.8 / 4.1.2, null MX → 550, SERVFAIL → 450 and
//! only when nothing else refuses), `reject_unknown_reverse_client_hostname`,
//! `reject_unknown_client_hostname`, `reject_unknown_helo_hostname`; and fail2ban's own postfix filter counting the log.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use testkit::*;

fn zone() -> Zone {
    Zone::default()
        // 127.0.0.2 is listed, with a reason; 127.0.0.3 is listed with 127.0.0.10 only.
        .a("2.0.0.127.zen.example.org", "127.0.0.2")
        .txt("2.0.0.127.zen.example.org", "Listed for testing")
        .a("3.0.0.127.zen.example.org", "127.0.0.10")
        .a("spam.example.rhsbl.example.org", "127.0.0.2")
        .a("bad.example.rhsbl.example.org", "127.0.0.2")
        .mx("example.org", 10, "mx.example.org")
        .a("mx.example.org", "192.0.2.1")
        .a("helo.example.org", "192.0.2.2")
        .a("spam.example", "192.0.2.3")
        .mx("nullmx.example", 0, ".")
        .servfail("broken.example")
}

fn world(dns: &Dns, extra: &str) -> World {
    World::builder()
        .smtp()
        .dns(dns)
        .config(&format!("syslog_name = \"postfix\"\n{extra}"))
        .start()
}

fn from(ip: [u8; 4], w: &World, helo: &str) -> Client {
    let mut c = Client::connect_from(Ipv4Addr::from(ip), w.port);
    c.expect(220, "");
    c.ok(&format!("EHLO {helo}"), 250);
    c
}

fn rcpt(c: &mut Client, sender: &str, recipient: &str) -> String {
    c.ok(&format!("MAIL FROM:<{sender}>"), 250);
    let text = c.cmd(&format!("RCPT TO:<{recipient}>")).text();
    c.ok("RSET", 250);
    text
}

#[test]
fn dnsbl_and_rhsbl_refuse_listed_clients_senders_and_helo_names() {
    let dns = Dns::start(zone());
    let w = world(
        &dns,
        "smtpd_client_restrictions = \"reject_rbl_client zen.example.org=127.0.0.[2..4], reject_rbl_client zen.example.org=127.0.0.10\"\n\
         smtpd_helo_restrictions = \"reject_rhsbl_helo rhsbl.example.org\"\n\
         smtpd_sender_restrictions = \"reject_rhsbl_sender rhsbl.example.org\"\n",
    );
    let mut listed = from([127, 0, 0, 2], &w, "helo.example.org");
    assert_eq!(
        rcpt(&mut listed, "a@example.org", "alice@test.example"),
        "554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.example.org; Listed for testing"
    );
    listed.ok("QUIT", 221);
    // 127.0.0.3's answer is 127.0.0.10: not in the first filter, in the second.
    let mut other = from([127, 0, 0, 3], &w, "helo.example.org");
    assert_eq!(
        rcpt(&mut other, "a@example.org", "alice@test.example"),
        "554 5.7.1 Service unavailable; Client host [127.0.0.3] blocked using zen.example.org"
    );
    other.ok("QUIT", 221);
    let mut clean = from([127, 0, 0, 4], &w, "bad.example");
    assert_eq!(
        rcpt(&mut clean, "a@example.org", "alice@test.example"),
        "554 5.7.1 Service unavailable; Helo command [bad.example] blocked using rhsbl.example.org"
    );
    clean.ok("EHLO helo.example.org", 250);
    assert_eq!(
        rcpt(&mut clean, "a@spam.example", "alice@test.example"),
        "554 5.7.1 Service unavailable; Sender address [a@spam.example] blocked using rhsbl.example.org"
    );
    assert!(rcpt(&mut clean, "a@example.org", "alice@test.example").starts_with("250"));
    clean.ok("QUIT", 221);
    let lines = w
        .env
        .wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.2]", 1);
    assert!(lines[0].ends_with("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.example.org; Listed for testing; from=<a@example.org> to=<alice@test.example> proto=ESMTP helo=<helo.example.org>"), "{}", lines[0]);
    fail2ban_counts(&w.env.log_file(), &["127.0.0.2", "127.0.0.3"]);
}

#[test]
fn unknown_domains_are_refused_and_dns_failures_only_deferred() {
    let dns = Dns::start(zone());
    let w = world(
        &dns,
        "smtpd_sender_restrictions = \"reject_unknown_sender_domain\"\n\
         smtpd_recipient_restrictions = \"permit_mynetworks, reject_unknown_recipient_domain\"\n\
         relay_domains = [\"nowhere.example\", \"broken.example\"]\n",
    );
    let mut c = from([127, 0, 0, 4], &w, "helo.example.org");
    let cases = [
        ("a@nowhere.example", "alice@test.example", "450 4.1.8 <a@nowhere.example>: Sender address rejected: Domain not found"),
        ("a@nullmx.example", "alice@test.example", "550 5.7.27 <a@nullmx.example>: Sender address rejected: Domain nullmx.example does not accept mail (nullMX)"),
        ("a@broken.example", "alice@test.example", "450 4.1.8 <a@broken.example>: Sender address rejected: Domain not found"),
        ("a@example.org", "x@nowhere.example", "450 4.1.2 <x@nowhere.example>: Recipient address rejected: Domain not found"),
        ("a@example.org", "x@broken.example", "450 4.1.2 <x@broken.example>: Recipient address rejected: Domain not found"),
    ];
    for (sender, recipient, expected) in cases {
        assert_eq!(
            rcpt(&mut c, sender, recipient),
            expected,
            "{sender} → {recipient}"
        );
    }
    assert!(rcpt(&mut c, "a@example.org", "alice@test.example").starts_with("250"));
    assert!(rcpt(&mut c, "", "alice@test.example").starts_with("250"));
    c.ok("QUIT", 221);
    // A DNS failure defers only if nothing else decides: from mynetworks the recipient
    // list permits, so the sender's SERVFAIL still defers (defer_if_permit) …
    let mut trusted = w.client();
    trusted.expect(220, "");
    trusted.ok("EHLO helo.example.org", 250);
    assert_eq!(
        rcpt(&mut trusted, "a@broken.example", "alice@test.example"),
        "450 4.1.8 <a@broken.example>: Sender address rejected: Domain not found"
    );
    trusted.ok("QUIT", 221);
    w.env.wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.4]: 450 4.1.8 <a@nowhere.example>: Sender address rejected: Domain not found; from=<a@nowhere.example> to=<alice@test.example> proto=ESMTP helo=<helo.example.org>", 1);
}

#[test]
fn a_servfail_is_replaced_by_an_outright_refusal() {
    let dns = Dns::start(zone());
    let w = world(
        &dns,
        "smtpd_sender_restrictions = \"reject_unknown_sender_domain\"\n\
         smtpd_recipient_restrictions = \"reject_non_fqdn_recipient\"\n",
    );
    let mut c = w.client();
    c.expect(220, "");
    c.ok("EHLO helo.example.org", 250);
    assert_eq!(
        rcpt(&mut c, "a@broken.example", "bob"),
        "504 5.5.2 <bob>: Recipient address rejected: need fully-qualified address"
    );
    c.ok("QUIT", 221);
}

/// The reverse and forward-confirmed client name checks. Loopback addresses are answered
/// by the resolver itself (RFC 6761: every 127/8 address is `localhost`, which is
/// 127.0.0.1), so 127.0.0.2 has a reverse name that does not resolve back to it.
#[test]
fn client_names_must_resolve_back_and_helo_names_must_exist() {
    let dns = Dns::start(zone());
    let w = world(
        &dns,
        "smtpd_client_restrictions = \"reject_unknown_reverse_client_hostname, reject_unknown_client_hostname\"\n\
         smtpd_helo_restrictions = \"reject_unknown_helo_hostname\"\n",
    );
    let mut unconfirmed = from([127, 0, 0, 2], &w, "helo.example.org");
    assert_eq!(
        rcpt(&mut unconfirmed, "a@example.org", "alice@test.example"),
        "450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.2]"
    );
    unconfirmed.ok("QUIT", 221);
    let mut local = from([127, 0, 0, 1], &w, "helo.example.org");
    assert!(rcpt(&mut local, "a@example.org", "alice@test.example").starts_with("250"));
    local.ok("EHLO nosuchhost.example.org", 250);
    assert_eq!(
        rcpt(&mut local, "a@example.org", "alice@test.example"),
        "450 4.7.1 <nosuchhost.example.org>: Helo command rejected: Host not found"
    );
    local.ok("QUIT", 221);
    w.env.wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.2]; from=<a@example.org> to=<alice@test.example> proto=ESMTP helo=<helo.example.org>", 1);
}

/// fail2ban's own postfix filter (Debian's /etc/fail2ban/filter.d/postfix.conf) finds
/// every refused client in mailroom's log (written with `syslog_name = postfix`).
fn fail2ban_counts(log: &Path, clients: &[&str]) {
    let filter = Path::new("/etc/fail2ban/filter.d/postfix.conf");
    assert!(
        filter.exists(),
        "fail2ban is not installed (scripts/test.sh installs it)"
    );
    for client in clients {
        wait_until(&format!("a reject line for {client}"), || {
            std::fs::read_to_string(log)
                .is_ok_and(|t| t.contains(&format!("unknown[{client}]: 554")))
        });
    }
    let out = Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(log)
        .arg(filter)
        .output()
        .expect("fail2ban-regex");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    for client in clients {
        assert!(
            report.contains(&format!(
                "[{client}]: 554 5.7.1 Service unavailable; Client host [{client}] blocked"
            )),
            "fail2ban did not match the DNSBL refusal of {client}:\n{report}"
        );
    }
}
