//! Issue 15, goal 4: many domains whose MX hosts resolve to one server share the SMTP
//! client's cached connections (by server address, as Postfix's connection cache), while a
//! domain with a different TLS policy gets its own. The real daemon, the test DNS server
//! and a real smtp-sink counting sessions; one message at a time and an hour of connection cache time, so every delivery
//! finds the previous one's connection idle however slow the box is.

use testkit::*;

const DOMAINS: usize = 20;

#[test]
fn twenty_domains_with_mx_at_one_sink_use_one_connection_and_a_stricter_one_its_own() {
    let root = tempfile::tempdir().unwrap();
    let sink = Sink::start(root.path(), &[]);
    let mut zone = Zone::default();
    let mut recipients: Vec<String> = (0..DOMAINS).map(|i| format!("u@d{i}.example")).collect();
    recipients.push("u@plain.example".into());
    for rcpt in &recipients {
        let domain = rcpt.split('@').nth(1).unwrap();
        let mx = format!("mx.{domain}");
        zone = zone.mx(domain, 10, &mx).a(&mx, "127.0.0.1");
    }
    let dns = Dns::start(zone);
    let policy = root.path().join("tls_policy");
    std::fs::write(&policy, "plain.example none\n").unwrap();
    let world = World::builder()
        .smtp()
        .dns(&dns)
        .config(&format!(
            "smtp_default_port = {}\nsmtp_connection_cache_time_limit = \"1h\"\n\
             smtp_tls_security_level = \"may\"\nsmtp_tls_policy_maps = [\"{}\"]\n",
            sink.port,
            policy.display()
        ))
        .start();
    // One at a time: each delivery is logged after its connection went back to the cache,
    // so the next one finds it idle.
    for (i, rcpt) in recipients.iter().enumerate() {
        world.submit(
            "sender@test.example",
            &[rcpt],
            &message(&format!("shared-mx-{i}")),
        );
        world.wait_lines(&["status=sent"], i + 1);
    }
    let all = recipients.len();
    wait_until("the sink to count every message", || sink.messages() >= all);
    assert_eq!(sink.messages(), all, "each once");
    // The connections stay cached for the hour: none has ended, so this counts each once.
    assert_eq!(
        sink.sessions(),
        2,
        "one for the {DOMAINS} `may` domains, one for the `none` one; log:\n{}",
        tail(&world.env.log(), 30)
    );
}
