//! Issue 12 part 4, DKIM signing: mail relayed through mailroom for a `dkim_sign` domain
//! carries a signature that an outside verifier accepts — Python's dkimpy (PyPI, the
//! library behind `dkimverify`), fetching the public key over real DNS from the test's DNS
//! server (testkit's `Dns`), where the record `mailroom dkim keygen` printed is published.
//! The same verifier refuses the message once its body or a signed header is changed, so
//! these tests can fail. Mail from other domains is not signed; mail through the content
//! filter is signed once, after the filter, when it leaves.

use std::sync::Arc;

use testkit::*;

/// dkimpy's `verify` with a `dnsfunc` that asks the test's DNS server (argv[1] = its port)
/// over UDP with dnspython; prints `pass` or `fail` (and dkimpy's reason on stderr).
const VERIFY_PY: &str = r#"
import logging, sys
import dkim, dns.message, dns.query
port = int(sys.argv[1])
def txt(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    answer = dns.query.udp(dns.message.make_query(name, "TXT"), "127.0.0.1", port=port, timeout=timeout)
    for rrset in answer.answer:
        for record in rrset:
            return b"".join(record.strings)
    return None
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
ok = dkim.verify(sys.stdin.buffer.read(), logger=logging.getLogger("dkim"), dnsfunc=txt)
print("pass" if ok else "fail")
"#;

/// What dkimpy says about `message` (LF line ends, as the peer stored it).
fn dkimpy(dns: &Dns, message: &str) -> String {
    let wire = message.replace('\n', "\r\n");
    let out = python(VERIFY_PY, &[&dns.port.to_string()], wire.as_bytes());
    String::from_utf8_lossy(&out).trim().to_string()
}

/// Runs `mailroom dkim keygen example.com SELECTOR --type TYPE` in `world`; returns the
/// key file and the TXT record's value (the quoted strings joined, as resolvers join them).
fn keygen(world: &World, selector: &str, kind: &str) -> (String, String) {
    let dir = world.env.root.join("dkim");
    let out = world.env.run(
        &[
            "dkim",
            "keygen",
            "example.com",
            selector,
            "--type",
            kind,
            "--dir",
            dir.to_str().unwrap(),
        ],
        b"",
    );
    assert_success(&out, "mailroom dkim keygen");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let owner = format!("{selector}._domainkey.example.com. IN TXT ");
    let strings = line
        .strip_prefix(&owner)
        .unwrap_or_else(|| panic!("zone line: {line}"));
    let value: String = strings.split('"').skip(1).step_by(2).collect();
    let key = dir.join(format!("example.com.{selector}.key"));
    (key.display().to_string(), value)
}

/// `builder`'s world with a new example.com key (`mailroom dkim keygen`, of `kind`, under
/// `selector`) in `dkim_sign`, started; and the key's TXT record value.
fn signing_world(builder: WorldBuilder, selector: &str, kind: &str) -> (World, String) {
    let mut world = builder.build();
    let (key, value) = keygen(&world, selector, kind);
    world.configure(&format!(
        "dkim_sign = [{{ domain = \"example.com\", selector = \"{selector}\", key = \"{key}\" }}]"
    ));
    world.start();
    (world, value)
}

fn from_example(subject: &str) -> String {
    format!("From: Alice <alice@example.com>\nTo: bob@far.example\nSubject: {subject}\nMessage-ID: <{subject}@example.com>\n\nbody of {subject}\n.line starting with a dot\n")
}

/// One message from example.com relayed through a signing world: the peer's copy and a
/// DNS server publishing the key.
fn relay_signed(kind: &str) -> (Dns, Received) {
    let peer = Peer::start();
    let (world, value) = signing_world(World::builder().smtp().peer(&peer), "mail2026", kind);
    let dns = Dns::start(Zone::default().txt("mail2026._domainkey.example.com", &value));
    world.submit(
        "alice@example.com",
        &["bob@far.example"],
        &from_example("signed"),
    );
    wait_until("the relayed copy", || !peer.messages().is_empty());
    world.wait_lines(
        &["DKIM-Signature field added (s=mail2026, d=example.com"],
        1,
    );
    (dns, peer.messages().remove(0))
}

#[test]
fn rsa_signed_mail_verifies_with_dkimpy_and_fails_once_altered() {
    let (dns, received) = relay_signed("rsa");
    let signature = received.header("DKIM-Signature").expect("signed");
    assert!(signature.contains("a=rsa-sha256"), "{signature}");
    assert!(signature.contains("c=relaxed/relaxed"), "{signature}");
    assert_eq!(dkimpy(&dns, &received.data), "pass", "{}", received.data);

    let body_changed = received.data.replace("body of signed", "body of forged");
    assert_ne!(body_changed, received.data);
    assert_eq!(dkimpy(&dns, &body_changed), "fail");
    let subject_changed = received.data.replace("Subject: signed", "Subject: forged");
    assert_ne!(subject_changed, received.data);
    assert_eq!(dkimpy(&dns, &subject_changed), "fail");
    // From is oversigned: a second From: added on top breaks the signature too.
    let second_from = format!("From: mallory@example.com\n{}", received.data);
    assert_eq!(dkimpy(&dns, &second_from), "fail");
}

#[test]
fn ed25519_signed_mail_verifies_with_dkimpy_and_fails_once_altered() {
    let (dns, received) = relay_signed("ed25519");
    let signature = received.header("DKIM-Signature").expect("signed");
    assert!(signature.contains("a=ed25519-sha256"), "{signature}");
    assert_eq!(dkimpy(&dns, &received.data), "pass", "{}", received.data);
    let body_changed = received.data.replace("body of signed", "body of forged");
    assert_eq!(dkimpy(&dns, &body_changed), "fail");
}

#[test]
fn mail_from_other_domains_is_not_signed() {
    let peer = Peer::start();
    let (world, _) = signing_world(World::builder().smtp().peer(&peer), "s1", "ed25519");
    world.submit(
        "sender@test.example",
        &["bob@far.example"],
        &message("other-domain"),
    );
    wait_until("the relayed copy", || !peer.messages().is_empty());
    let received = peer.messages().remove(0);
    assert_eq!(received.header("DKIM-Signature"), None, "{}", received.data);
}

/// A dot rule that re-injects the message into `port`, as amavis does.
fn reinject_to(port: u16) -> DotRule {
    Arc::new(move |m: &Received| {
        let rcpts: Vec<&str> = m.recipients.iter().map(String::as_str).collect();
        let text = format!("X-Filtered: yes\n{}", m.data);
        match smtp_send(port, &m.sender, "", &plain(&rcpts), &text) {
            Ok(()) => "250 2.0.0 Ok: filtered and re-injected".to_string(),
            Err(e) => format!("451 4.3.0 filter could not re-inject: {e}"),
        }
    })
}

#[test]
fn filtered_mail_is_signed_once_after_the_filter() {
    let (filter, peer) = (Peer::start(), Peer::start());
    let builder = World::builder().smtp().filter(&filter).peer(&peer);
    let (world, value) = signing_world(builder, "f1", "ed25519");
    let dns = Dns::start(Zone::default().txt("f1._domainkey.example.com", &value));
    filter.set_dot(reinject_to(world.reinject.expect("re-injection listener")));
    world.submit(
        "alice@example.com",
        &["bob@far.example"],
        &from_example("filtered"),
    );
    wait_until("the relayed copy", || !peer.messages().is_empty());

    let seen = filter.messages();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("DKIM-Signature"),
        None,
        "the filter gets it unsigned"
    );
    let received = peer.messages().remove(0);
    let head = received.data.split("\n\n").next().unwrap_or_default();
    let signatures = head
        .lines()
        .filter(|l| l.starts_with("DKIM-Signature:"))
        .count();
    assert_eq!(signatures, 1, "{}", received.data);
    assert_eq!(received.header("X-Filtered").as_deref(), Some("yes"));
    assert_eq!(dkimpy(&dns, &received.data), "pass", "{}", received.data);
}

#[test]
fn a_group_readable_key_stops_the_daemon_from_starting() {
    let world = World::builder().smtp().build();
    let (key, _) = keygen(&world, "s2", "ed25519");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    world.configure(&format!(
        "dkim_sign = [{{ domain = \"example.com\", selector = \"s2\", key = \"{key}\" }}]"
    ));
    let out = world.env.run(&["serve"], b"");
    assert_eq!(out.status.code(), Some(78), "exit EX_CONFIG");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "dkim_sign: key file {key} is readable by group or others (mode 0640); chmod 600 {key}"
        )),
        "{stderr}"
    );
}

#[test]
fn a_long_line_broken_on_the_way_out_still_verifies() {
    // smtp_line_length_limit breaks the line with CR LF SPACE as it is sent; the signature
    // must cover the broken form, the one the receiver gets.
    let peer = Peer::start();
    let (world, value) = signing_world(World::builder().smtp().peer(&peer), "l1", "rsa");
    let dns = Dns::start(Zone::default().txt("l1._domainkey.example.com", &value));
    let long = "x".repeat(1500);
    let text = from_example("long").replace("body of long", &long);
    world.submit("alice@example.com", &["bob@far.example"], &text);
    wait_until("the relayed copy", || !peer.messages().is_empty());
    let received = peer.messages().remove(0);
    assert!(
        received.data.contains("\n x"),
        "the line was broken: {}",
        received.data
    );
    assert_eq!(dkimpy(&dns, &received.data), "pass", "{}", received.data);
}
