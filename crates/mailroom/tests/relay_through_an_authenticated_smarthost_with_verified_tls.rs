//! Issue 12 parts 1, 2 and 5 against a real Postfix smarthost (Debian's, its own instance on
//! loopback ports) that requires SASL AUTH over STARTTLS, with a certificate from a CA the
//! test makes: the common "relay root's mail through the company smarthost" setup.
//!
//! * good password at `secure` → the smarthost accepts and relays the message on to a peer;
//!   the log says `Verified TLS connection established to …`;
//! * wrong password → deferred, `SASL authentication failed; server … said: 535 …` in the log
//!   and in `postqueue -j`'s delay_reason;
//! * `secure` with a certificate for another name, `verify` with a CA we do not trust →
//!   deferred "Server certificate not verified", nothing sent in plaintext;
//! * `encrypt` to the smarthost's listener without STARTTLS → deferred "TLS is required, but
//!   was not offered by host …";
//! * a password file others can read → one warning line, every message deferred with why.

use testkit::*;

const USER: &str = "alice@smarthost.test";
const PASSWORD: &str = "correct horse";

/// The smarthost (certificate for `cert_name`, signed by `ca`) relaying to `peer`.
fn smarthost(ca: &TestCa, cert_name: &str, peer: &Peer) -> (tempfile::TempDir, Smarthost) {
    let dir = tempfile::tempdir().unwrap();
    let cert = ca.issue(&[cert_name], dir.path(), "smarthost");
    let host = Smarthost::start("smarthost.test", &cert, "alice", PASSWORD, peer.port);
    (dir, host)
}

/// A mailroom relaying through `[name]:port` (resolved by the test DNS) at `level`, with
/// `password` in a mode-0600 password file and `ca_file` as smtp_tls_CAfile.
fn world(name: &str, port: u16, level: &str, password: &str, ca_file: &str, dns: &Dns) -> World {
    let world = World::builder().smtp().dns(dns).build();
    let table = world.env.root.join("sasl_passwd");
    std::fs::write(&table, format!("[{name}]:{port} {USER}:{password}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&table, std::fs::Permissions::from_mode(0o600)).unwrap();
    world.configure(&format!(
        "relayhost = \"[{name}]:{port}\"\nsmtp_sasl_auth_enable = true\n\
         smtp_sasl_password_maps = [\"{}\"]\nsmtp_tls_security_level = \"{level}\"\n\
         smtp_tls_CAfile = \"{ca_file}\"\n",
        table.display()
    ));
    world
}

fn names() -> Dns {
    Dns::start(
        Zone::default()
            .a("smarthost.test", "127.0.0.1")
            .a("alias.test", "127.0.0.1"),
    )
}

fn skip() -> bool {
    match Smarthost::available() {
        Ok(()) => false,
        Err(why) => {
            eprintln!("skipped: {why}");
            true
        }
    }
}

/// Waits until `postqueue -j` shows the one queued message with a delay_reason containing
/// `expected` for its recipient (the log line comes first; a retry may be under way while
/// we look), and returns that reason.
fn wait_delay_reason(world: &World, expected: &str) -> String {
    let (mut seen, mut found) = (String::new(), None);
    poll_for(DEADLINE, || {
        let queue = world.env.queue_json();
        seen = format!("{queue:?}");
        let reason = queue
            .first()
            .and_then(|m| m["recipients"][0]["delay_reason"].as_str());
        found = reason
            .filter(|r| queue.len() == 1 && r.contains(expected))
            .map(str::to_string);
        found.is_some()
    });
    let found = found.unwrap_or_else(|| panic!("postqueue -j never showed {expected:?}: {seen}"));
    // A retry while the destination is marked dead says the same reason behind this prefix.
    match found.strip_prefix("delivery temporarily suspended: ") {
        Some(inner) => inner.to_string(),
        None => found,
    }
}

#[test]
fn good_password_over_verified_tls_is_relayed_bad_password_defers_with_535() {
    if skip() {
        return;
    }
    let peer = Peer::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mailroom test CA");
    let ca_file = ca.write(dir.path(), "ca.pem").display().to_string();
    let (_certs, host) = smarthost(&ca, "smarthost.test", &peer);
    let dns = names();

    let mut good = world(
        "smarthost.test",
        host.port,
        "secure",
        PASSWORD,
        &ca_file,
        &dns,
    );
    good.start();
    good.submit(
        "root@client.test",
        &["ops@far.example"],
        &message("cron says hi"),
    );
    good.wait_lines(&["to=<ops@far.example>", "status=sent"], 1);
    let established =
        good.lines_with(&["Verified TLS connection established to smarthost.test[127.0.0.1]"]);
    assert!(!established.is_empty(), "{}", good.env.log());
    assert!(established[0].contains(": TLSv1."), "{}", established[0]);
    let relayed = poll_for(DEADLINE, || !peer.messages().is_empty());
    assert!(relayed, "the smarthost relayed nothing:\n{}", host.log());
    let got = peer.messages();
    assert_eq!(got[0].recipients, ["ops@far.example"]);
    assert_eq!(got[0].header("Subject").as_deref(), Some("cron says hi"));
    // Postfix's smtpd logged the AUTH (its postlogd writes asynchronously: wait for it).
    let sasl = format!("sasl_method=PLAIN, sasl_username={USER}");
    let logged = poll_for(DEADLINE, || host.log().contains(&sasl));
    assert!(logged, "{}", host.log());

    let mut bad = world(
        "smarthost.test",
        host.port,
        "secure",
        "wrong",
        &ca_file,
        &dns,
    );
    bad.start();
    bad.submit(
        "root@client.test",
        &["ops@far.example"],
        &message("not this one"),
    );
    let deferred = bad.wait_lines(&["to=<ops@far.example>", "status=deferred"], 1);
    let said = "SASL authentication failed; server smarthost.test[127.0.0.1] said: 535 5.7.8";
    assert!(
        deferred[0].contains(said) && deferred[0].contains("dsn=4.7.8"),
        "{}",
        deferred[0]
    );
    wait_delay_reason(&bad, said);
    assert!(bad.lines_with(&["status=bounced"]).is_empty());
    assert_eq!(peer.messages().len(), 1, "nothing more was relayed");
}

#[test]
fn encrypt_logs_trusted_or_untrusted_and_still_delivers() {
    if skip() {
        return;
    }
    let peer = Peer::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mailroom test CA");
    let ca_file = ca.write(dir.path(), "ca.pem").display().to_string();
    let stranger = TestCa::new("a CA nobody here trusts");
    let other_ca = stranger
        .write(dir.path(), "other.pem")
        .display()
        .to_string();
    let (_certs, host) = smarthost(&ca, "smarthost.test", &peer);
    let dns = names();
    // Trusted: the chain is good, the name (alias.test) is not; Untrusted: unknown CA.
    let cases = [
        ("alias.test", ca_file.as_str(), "Trusted"),
        ("smarthost.test", other_ca.as_str(), "Untrusted"),
    ];
    for (n, (name, trusted, word)) in cases.into_iter().enumerate() {
        let mut w = world(name, host.port, "encrypt", PASSWORD, trusted, &dns);
        w.start();
        w.submit("root@client.test", &["ops@far.example"], &message(word));
        w.wait_lines(&["to=<ops@far.example>", "status=sent"], 1);
        let line = format!(
            "{word} TLS connection established to {name}[127.0.0.1]:{}: TLSv1.",
            host.port
        );
        assert!(
            !w.lines_with(&[&line]).is_empty(),
            "{line}: {}",
            w.env.log()
        );
        let relayed = poll_for(DEADLINE, || peer.messages().len() > n);
        assert!(
            relayed,
            "{word}: the smarthost relayed nothing:\n{}",
            host.log()
        );
    }
}

#[test]
fn wrong_name_or_untrusted_ca_defers_not_verified_and_encrypt_needs_starttls() {
    if skip() {
        return;
    }
    let peer = Peer::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mailroom test CA");
    let ca_file = ca.write(dir.path(), "ca.pem").display().to_string();
    let stranger = TestCa::new("a CA nobody here trusts");
    let other_ca = stranger
        .write(dir.path(), "other.pem")
        .display()
        .to_string();
    let (_certs, host) = smarthost(&ca, "smarthost.test", &peer);
    let dns = names();

    // alias.test reaches the same server, whose certificate names smarthost.test only.
    let cases = [
        ("alias.test", host.port, "secure", ca_file.as_str()),
        ("smarthost.test", host.port, "verify", other_ca.as_str()),
    ];
    for (name, port, level, trusted) in cases {
        let mut w = world(name, port, level, PASSWORD, trusted, &dns);
        w.start();
        w.submit(
            "root@client.test",
            &["ops@far.example"],
            &message("must wait"),
        );
        let deferred = w.wait_lines(&["to=<ops@far.example>", "status=deferred"], 1);
        assert!(
            deferred[0].contains("dsn=4.7.5")
                && deferred[0].contains("(Server certificate not verified)"),
            "{name} at {level}: {}",
            deferred[0]
        );
        let reason = wait_delay_reason(&w, "Server certificate not verified");
        assert_eq!(reason, "Server certificate not verified");
        let why = w.lines_with(&["server certificate verification failed for"]);
        assert!(!why.is_empty(), "the log says why: {}", w.env.log());
        assert!(w.lines_with(&["TLS connection established"]).is_empty());
    }

    let mut w = world(
        "smarthost.test",
        host.plain_port,
        "encrypt",
        PASSWORD,
        &ca_file,
        &dns,
    );
    w.start();
    w.submit(
        "root@client.test",
        &["ops@far.example"],
        &message("needs TLS"),
    );
    let deferred = w.wait_lines(&["to=<ops@far.example>", "status=deferred"], 1);
    let text = "TLS is required, but was not offered by host smarthost.test[127.0.0.1]";
    assert!(
        deferred[0].contains(text) && deferred[0].contains("dsn=4.7.4"),
        "{}",
        deferred[0]
    );
    assert_eq!(wait_delay_reason(&w, text), text);
    assert!(
        peer.messages().is_empty(),
        "nothing reached the smarthost's relay"
    );
}

#[test]
fn a_password_file_others_can_read_is_refused_in_one_line_and_mail_waits() {
    if skip() {
        return;
    }
    let peer = Peer::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mailroom test CA");
    let ca_file = ca.write(dir.path(), "ca.pem").display().to_string();
    let (_certs, host) = smarthost(&ca, "smarthost.test", &peer);
    let dns = names();
    let mut w = world(
        "smarthost.test",
        host.port,
        "secure",
        PASSWORD,
        &ca_file,
        &dns,
    );
    let table = w.env.root.join("sasl_passwd");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&table, std::fs::Permissions::from_mode(0o644)).unwrap();
    w.start();
    for n in 1..=2 {
        let subject = format!("waits {n}");
        w.submit("root@client.test", &["ops@far.example"], &message(&subject));
    }
    let deferred = w.wait_lines(&["to=<ops@far.example>", "status=deferred"], 2);
    let why = format!(
        "{} is readable by group or others (mode 0644)",
        table.display()
    );
    assert!(
        deferred
            .iter()
            .all(|l| l.contains(&why) && l.contains("relay=none")),
        "{deferred:?}"
    );
    let warnings = w.lines_with(&["warning: smtp_sasl_password_maps:", &why]);
    assert_eq!(
        warnings.len(),
        1,
        "one line, not one per message: {}",
        w.env.log()
    );
}
