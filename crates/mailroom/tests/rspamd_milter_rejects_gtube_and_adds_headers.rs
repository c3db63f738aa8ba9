//! Issue 13 part 3: real rspamd (Debian's `rspamd`, its proxy worker in milter mode on
//! loopback, scanning itself) as `smtpd_milters`. A message carrying rspamd's GTUBE test
//! string gets rspamd's reject action — `554 5.7.1 Spam message rejected` at the end of
//! DATA, Postfix's `milter-reject: END-OF-MESSAGE` log line, nothing queued — and a normal
//! message is delivered with the headers rspamd's `milter_headers` module adds.

use testkit::*;

/// rspamd's GTUBE string (its reject test pattern).
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

const MILTER_HEADERS: &str = "use = [\"x-spamd-result\", \"x-spam-status\", \"authentication-results\"];\nextended_spam_headers = true;\nskip_local = false;\nskip_authenticated = false;\n";

#[test]
fn gtube_is_rejected_and_a_normal_message_gets_rspamd_headers() {
    let peer = Peer::start();
    let world = World::builder().smtp().peer(&peer).build();
    let rspamd = Rspamd::start(&world.env.root, &[("milter_headers.conf", MILTER_HEADERS)]);
    let mut world = world;
    world.configure(&format!(
        "smtpd_milters = [\"inet:127.0.0.1:{}\"]",
        rspamd.port
    ));
    world.start();

    let spam = format!("From: s@spam.example\nTo: b@far.example\nSubject: buy\n\n{GTUBE}\n");
    let refused = smtp_send(
        world.port,
        "s@spam.example",
        "",
        &plain(&["b@far.example"]),
        &spam,
    )
    .unwrap_err();
    assert!(refused.contains("554 5.7.1"), "{refused}");
    let lines = world.wait_lines(
        &["milter-reject: END-OF-MESSAGE from unknown[127.0.0.1]: 5.7.1"],
        1,
    );
    assert!(
        lines[0]
            .contains("; from=<s@spam.example> to=<b@far.example> proto=ESMTP helo=<client.test>"),
        "{lines:?}"
    );
    assert!(world.queue().is_empty(), "{:?}", world.queue());

    let ham = "From: a@client.test\nTo: b@far.example\nSubject: lunch\nMessage-ID: <lunch@client.test>\nDate: Tue, 1 Dec 2026 12:00:00 +0000\n\nShall we have lunch tomorrow?\n";
    world.submit("a@client.test", &["b@far.example"], ham);
    wait_until("the delivered copy", || !peer.messages().is_empty());
    let received = &peer.messages()[0];
    let result = received
        .header("X-Spamd-Result")
        .unwrap_or_else(|| panic!("no rspamd header: {}", received.data));
    assert!(result.contains("default:"), "{result}");
    assert!(received.data.contains("Shall we have lunch tomorrow?"));
}
