//! Issue 4, MX routing with a DNS server the test runs (`dns_nameservers`), no relayhost,
//! and `smtp_default_port` pointing at a scripted peer on 127.0.0.1:
//! - a domain whose MX points at 127.0.0.1 is delivered there;
//! - a domain without MX falls back to its A record (RFC 5321 5.1);
//! - a backup MX is used when the preferred one refuses connections;
//! - a null MX (`0 .`, RFC 7505) bounces with 5.1.10, a name that does not exist with 5.1.2.

use std::time::Duration;

use testkit::*;

#[test]
fn mx_a_fallback_backup_mx_null_mx_and_nxdomain() {
    let peer = Peer::start();
    let dns = Dns::start(
        Zone::default()
            .mx("mx.example", 10, "mail.mx.example")
            .a("mail.mx.example", "127.0.0.1")
            .a("aonly.example", "127.0.0.1")
            .mx("backup.example", 10, "down.backup.example")
            .mx("backup.example", 20, "mail.mx.example")
            .a("down.backup.example", "127.0.0.2") // nothing listens there
            .mx("nullmx.example", 0, "."),
    );
    let world = World::builder()
        .smtp()
        .dns(&dns)
        .config(&format!("smtp_default_port = {}\n", peer.port))
        .start();
    world.submit(
        "sender@test.example",
        &[
            "a@mx.example",
            "b@aonly.example",
            "c@backup.example",
            "d@nullmx.example",
            "e@nxdomain.example",
        ],
        &message("mx-routing"),
    );
    world.env.wait_mbox("sender", 1);
    world.env.wait_queue_empty();

    let mut delivered = peer.delivered_to();
    delivered.sort();
    assert_eq!(
        delivered,
        ["a@mx.example", "b@aonly.example", "c@backup.example"],
        "log:\n{}",
        tail(&world.env.log(), 20)
    );
    let queries = dns.queries();
    for q in [
        "mx.example 15",
        "mail.mx.example 1",
        "aonly.example 15",
        "aonly.example 1",
    ] {
        assert!(queries.iter().any(|x| x == q), "asked {q:?}: {queries:?}");
    }
    let relay = format!("relay=mail.mx.example[127.0.0.1]:{}", peer.port);
    for rcpt in ["a@mx.example", "c@backup.example"] {
        let sent = world.lines_with(&[&format!("to=<{rcpt}>"), "status=sent"]);
        assert_eq!(sent.len(), 1, "{rcpt}");
        assert!(sent[0].contains(&relay), "{}", sent[0]);
    }
    let sent = world.lines_with(&["to=<b@aonly.example>", "status=sent"]);
    assert!(
        sent[0].contains(&format!("relay=aonly.example[127.0.0.1]:{}", peer.port)),
        "{}",
        sent[0]
    );

    // One bounce naming the two undeliverable recipients.
    let bounces = world.env.mbox_messages("sender");
    assert_eq!(bounces.len(), 1);
    let dsn = parse_dsn(&bounces[0].raw);
    let blocks = dsn["recipients"].as_array().unwrap();
    let find = |addr: &str| {
        blocks
            .iter()
            .find(|b| field(b, "Final-Recipient") == format!("rfc822; {addr}"))
            .unwrap_or_else(|| panic!("no block for {addr}: {dsn}"))
    };
    assert_eq!(blocks.len(), 2, "{dsn}");
    let null = find("d@nullmx.example");
    assert_eq!(field(null, "Action"), "failed");
    assert_eq!(field(null, "Status"), "5.1.10", "{dsn}");
    assert!(field(null, "Diagnostic-Code").contains("null MX"), "{dsn}");
    let nx = find("e@nxdomain.example");
    assert_eq!(field(nx, "Status"), "5.1.2", "{dsn}");
    assert!(
        field(nx, "Diagnostic-Code").contains("Host or domain name not found"),
        "{dsn}"
    );
    std::thread::sleep(Duration::from_millis(300));
    // One transaction per destination (mx.example, aonly.example, backup.example), once each.
    assert_eq!(peer.messages().len(), 3, "no duplicates");
}
