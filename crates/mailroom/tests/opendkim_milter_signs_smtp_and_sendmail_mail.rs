//! Issue 13 part 3: real OpenDKIM (Debian's `opendkim`, signing mode, key from
//! `opendkim-genkey`) as `smtpd_milters` for SMTP mail and `non_smtpd_milters` for mail
//! from sendmail. The relayed copy carries OpenDKIM's DKIM-Signature (inserted through the
//! milter protocol), and Python's dkimpy verifies it against the key published by the
//! test's DNS server — and refuses it once the body is changed, so the test can fail.

use testkit::*;

/// dkimpy's `verify`, the key fetched from the test's DNS server (argv[1] = its port).
const VERIFY_PY: &str = r#"
import sys
import dkim, dns.message, dns.query
port = int(sys.argv[1])
def txt(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    answer = dns.query.udp(dns.message.make_query(name, "TXT"), "127.0.0.1", port=port, timeout=timeout)
    for rrset in answer.answer:
        for record in rrset:
            return b"".join(record.strings)
    return None
print("pass" if dkim.verify(sys.stdin.buffer.read(), dnsfunc=txt) else "fail")
"#;

fn dkimpy(dns: &Dns, message: &str) -> String {
    let wire = message.replace('\n', "\r\n");
    let out = python(VERIFY_PY, &[&dns.port.to_string()], wire.as_bytes());
    String::from_utf8_lossy(&out).trim().to_string()
}

fn message(subject: &str) -> String {
    format!("From: Alice <alice@example.com>\nTo: bob@far.example\nSubject: {subject}\nMessage-ID: <{subject}@example.com>\n\nbody of {subject}\n.a line starting with a dot\n")
}

/// A world relaying to a peer with OpenDKIM as the milter named by `parameter`.
fn signing_world(parameter: &str) -> (World, OpenDkim, Dns, Peer) {
    let peer = Peer::start();
    let world = World::builder().smtp().peer(&peer).build();
    let opendkim = OpenDkim::start(&world.env.root, "example.com", "milter");
    let dns = Dns::start(Zone::default().txt("milter._domainkey.example.com", &opendkim.txt));
    let mut world = world;
    world.configure(&format!(
        "{parameter} = [\"inet:127.0.0.1:{}\"]",
        opendkim.port
    ));
    world.start();
    (world, opendkim, dns, peer)
}

fn assert_signed_and_verified(dns: &Dns, received: &Received) {
    let signature = received
        .header("DKIM-Signature")
        .unwrap_or_else(|| panic!("not signed: {}", received.data));
    assert!(signature.contains("d=example.com"), "{signature}");
    assert!(signature.contains("s=milter"), "{signature}");
    assert_eq!(dkimpy(dns, &received.data), "pass", "{}", received.data);
    let forged = received.data.replace("body of", "body of forged");
    assert_ne!(forged, received.data);
    assert_eq!(dkimpy(dns, &forged), "fail");
}

#[test]
fn smtp_mail_is_signed_by_opendkim_and_verifies() {
    let (world, _opendkim, dns, peer) = signing_world("smtpd_milters");
    world.submit("alice@example.com", &["bob@far.example"], &message("smtp"));
    wait_until("the relayed copy", || !peer.messages().is_empty());
    assert_signed_and_verified(&dns, &peer.messages()[0]);
}

#[test]
fn sendmail_mail_is_signed_by_opendkim_and_verifies() {
    let (world, _opendkim, dns, peer) = signing_world("non_smtpd_milters");
    world.env.send_ok(
        &["-f", "alice@example.com", "bob@far.example"],
        message("local").as_bytes(),
    );
    wait_until("the relayed copy", || !peer.messages().is_empty());
    assert_signed_and_verified(&dns, &peer.messages()[0]);
}

#[test]
fn smtpd_milters_leave_sendmail_mail_alone() {
    let (world, _opendkim, _dns, peer) = signing_world("smtpd_milters");
    world.env.send_ok(
        &["-f", "alice@example.com", "bob@far.example"],
        message("unsigned").as_bytes(),
    );
    wait_until("the relayed copy", || !peer.messages().is_empty());
    let received = &peer.messages()[0];
    assert_eq!(received.header("DKIM-Signature"), None, "{}", received.data);
}
