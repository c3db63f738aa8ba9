//! MX routing against the test DNS server: preference order, the next MX when one is down,
//! A fallback, null MX, NXDOMAIN, temporary DNS failure.

use std::net::SocketAddr;

use envelope::OutcomeKind::{Bounced, Deferred, Sent};

use super::server::{Behaviour, TestServer};
use super::*;
use testkit::{free_port, Dns, Zone};

/// Two SMTP servers on the same port at 127.0.0.2 and 127.0.0.3 (MX hosts share a port).
async fn two_servers() -> (TestServer, TestServer) {
    for _ in 0..20 {
        let first = TestServer::start_on(addr("127.0.0.2", 0), Behaviour::default()).await;
        let second = addr("127.0.0.3", first.port());
        if std::net::TcpListener::bind(second).is_ok() {
            let second = TestServer::start_on(second, Behaviour::default()).await;
            return (first, second);
        }
    }
    panic!("no common free port on 127.0.0.2 and 127.0.0.3");
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

async fn deliver_via_dns(zone: Zone, port: u16, domain: &str) -> DeliveryReport {
    let mut s = settings(port);
    let dns = Dns::start(zone); // answers until dropped, after the delivery
    s.dns_nameservers = vec![dns.nameserver()];
    let client = client(s);
    let env = envelope("f@a.example", &[&format!("user@{domain}")]);
    let hop = Nexthop {
        host: domain.into(),
        port: Some(port),
        mx_lookup: true,
    };
    deliver_all(&client, &hop, &env, MESSAGE).await
}

#[tokio::test]
async fn lowest_preference_wins() {
    let (a, b) = two_servers().await;
    let zone = Zone::default()
        .mx("example.net", 20, "mx-b.example.net")
        .mx("example.net", 10, "mx-a.example.net")
        .a("mx-a.example.net", "127.0.0.2")
        .a("mx-b.example.net", "127.0.0.3");
    let report = deliver_via_dns(zone, a.port(), "example.net").await;
    assert_eq!(kinds(&report), [Sent]);
    let relay = format!("mx-a.example.net[127.0.0.2]:{}", a.port());
    assert_eq!(report.outcomes[0].relay, relay);
    assert_eq!(
        (a.transcript().messages.len(), b.transcript().messages.len()),
        (1, 0)
    );
}

#[tokio::test]
async fn a_dead_mx_host_moves_on_to_the_next() {
    let (_a, b) = two_servers().await;
    // 127.0.0.4 has nothing listening on the port: connection refused.
    let zone = Zone::default()
        .mx("example.net", 5, "dead.example.net")
        .mx("example.net", 10, "mx-b.example.net")
        .a("dead.example.net", "127.0.0.4")
        .a("mx-b.example.net", "127.0.0.3");
    let report = deliver_via_dns(zone, b.port(), "example.net").await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    assert!(report.outcomes[0]
        .relay
        .starts_with("mx-b.example.net[127.0.0.3]"));
    assert_eq!(report.destination_failure, None);
}

#[tokio::test]
async fn every_mx_host_down_is_a_destination_failure() {
    let zone = Zone::default()
        .mx("example.net", 10, "dead.example.net")
        .a("dead.example.net", "127.0.0.4")
        .a("dead.example.net", "127.0.0.5");
    let port = free_port();
    let report = deliver_via_dns(zone, port, "example.net").await;
    assert_eq!(kinds(&report), [Deferred]);
    let text = format!("connect to dead.example.net[127.0.0.5]:{port}: Connection refused");
    assert_eq!(report.outcomes[0].text, text);
    assert_eq!(report.destination_failure, Some(text));
}

#[tokio::test]
async fn no_mx_falls_back_to_the_address_record() {
    let (a, _b) = two_servers().await;
    let zone = Zone::default().a("example.org", "127.0.0.2");
    let report = deliver_via_dns(zone, a.port(), "example.org").await;
    assert_eq!(kinds(&report), [Sent]);
    assert!(report.outcomes[0]
        .relay
        .starts_with("example.org[127.0.0.2]"));
}

#[tokio::test]
async fn null_mx_bounces_without_connecting() {
    let zone = Zone::default()
        .mx("nomail.example", 0, ".")
        .a("nomail.example", "127.0.0.2");
    let report = deliver_via_dns(zone, free_port(), "nomail.example").await;
    assert_eq!(kinds(&report), [Bounced]);
    assert_eq!(report.outcomes[0].dsn, "5.1.10");
    assert!(report.outcomes[0]
        .text
        .starts_with("recipient address has null MX"));
    assert_eq!(report.outcomes[0].relay, "none");
    assert_eq!(report.destination_failure, None);
}

#[tokio::test]
async fn nxdomain_bounces() {
    let report = deliver_via_dns(Zone::default(), free_port(), "nowhere.example").await;
    assert_eq!(kinds(&report), [Bounced]);
    assert_eq!(report.outcomes[0].dsn, "5.1.2");
    assert_eq!(
        report.outcomes[0].text,
        "Host or domain name not found. Name service error for name=nowhere.example type=MX: Host not found"
    );
    assert_eq!(report.destination_failure, None);
}

#[tokio::test]
async fn servfail_defers_and_marks_the_destination() {
    let zone = Zone::default().servfail("broken.example");
    let report = deliver_via_dns(zone, free_port(), "broken.example").await;
    assert_eq!(kinds(&report), [Deferred]);
    assert_eq!(report.outcomes[0].dsn, "4.4.3");
    assert!(report.outcomes[0]
        .text
        .ends_with("Host not found, try again"));
    assert!(report.destination_failure.is_some());
}

#[tokio::test]
async fn mx_host_without_address_defers() {
    let zone = Zone::default()
        .mx("example.net", 10, "ghost.example.net")
        .a("other.example.net", "127.0.0.9");
    let report = deliver_via_dns(zone, free_port(), "example.net").await;
    assert_eq!(kinds(&report), [Deferred]);
    assert_eq!(report.outcomes[0].dsn, "4.4.3");
}

#[tokio::test]
async fn bracketed_name_uses_its_address_without_mx() {
    let (a, _b) = two_servers().await;
    let zone = Zone::default()
        .mx("relay.example", 10, "elsewhere.example")
        .a("relay.example", "127.0.0.2");
    let mut s = settings(a.port());
    let dns = Dns::start(zone);
    s.dns_nameservers = vec![dns.nameserver()];
    let client = client(s);
    let env = envelope("f@a.example", &["user@far.example"]);
    let hop = Nexthop::parse(&format!("[relay.example]:{}", a.port())).unwrap();
    let report = deliver_all(&client, &hop, &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Sent]);
    // A relayhost that does not resolve is the operator's mistake: defer, never bounce.
    let missing = Nexthop::parse("[typo.example]").unwrap();
    let report = deliver_all(&client, &missing, &env, MESSAGE).await;
    assert_eq!(
        (kinds(&report), report.outcomes[0].dsn.as_str()),
        (vec![Deferred], "4.4.3")
    );
}

/// A client asking `dns`, keeping no idle connection (each delivery needs the next hop's
/// DNS answers), and a delivery to `user@domain` by MX.
fn uncached_client(dns: &Dns, port: u16) -> SmtpClient {
    let mut s = settings(port);
    s.dns_nameservers = vec![dns.nameserver()];
    s.connection_cache_time = std::time::Duration::ZERO;
    client(s)
}

async fn deliver_by_mx(client: &SmtpClient, domain: &str, port: u16) -> DeliveryReport {
    let env = envelope("f@a.example", &[&format!("user@{domain}")]);
    let hop = Nexthop {
        host: domain.into(),
        port: Some(port),
        mx_lookup: true,
    };
    deliver_all(client, &hop, &env, MESSAGE).await
}

/// Waits (real time) until answers with a TTL of `seconds`, given before now, ran out.
async fn outlive_ttl(seconds: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(seconds * 1000 + 300)).await;
}

#[tokio::test]
async fn mx_and_address_answers_are_kept_for_their_ttl_then_asked_again() {
    let (a, _b) = two_servers().await;
    let zone = |ttl| {
        Zone::default()
            .ttl(ttl)
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", "127.0.0.2")
    };
    let dns = Dns::start(zone(3600));
    let client = uncached_client(&dns, a.port());
    for _ in 0..3 {
        let report = deliver_by_mx(&client, "example.net", a.port()).await;
        assert_eq!(kinds(&report), [Sent], "{report:?}");
    }
    assert_eq!(a.transcript().messages.len(), 3);
    let asked = |dns: &Dns, question: &str| dns.queries().iter().filter(|q| *q == question).count();
    assert_eq!(asked(&dns, "example.net 15"), 1, "{:?}", dns.queries());
    assert_eq!(asked(&dns, "mx.example.net 1"), 1, "{:?}", dns.queries());

    // With a TTL of one second, the next delivery after it ran out asks again.
    let dns = Dns::start(zone(1));
    let client = uncached_client(&dns, a.port());
    let report = deliver_by_mx(&client, "example.net", a.port()).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    outlive_ttl(1).await;
    let report = deliver_by_mx(&client, "example.net", a.port()).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    assert_eq!(asked(&dns, "example.net 15"), 2, "{:?}", dns.queries());
    assert_eq!(asked(&dns, "mx.example.net 1"), 2, "{:?}", dns.queries());
}

/// The client keeps a nexthop's servers for their TTL (`answers.rs`): the next delivery asks
/// no DNS at all, yet equal-preference MX hosts are still tried in a new random order each
/// time (RFC 5321 5.1), not frozen in the order of the first delivery.
#[tokio::test]
async fn kept_answers_still_spread_mail_over_equal_preference_mx_hosts() {
    let (a, b) = two_servers().await;
    let zone = Zone::default()
        .ttl(3600)
        .mx("example.net", 10, "mx-a.example.net")
        .mx("example.net", 10, "mx-b.example.net")
        .a("mx-a.example.net", "127.0.0.2")
        .a("mx-b.example.net", "127.0.0.3");
    let dns = Dns::start(zone);
    let client = uncached_client(&dns, a.port());
    for _ in 0..24 {
        let report = deliver_by_mx(&client, "example.net", a.port()).await;
        assert_eq!(kinds(&report), [Sent], "{report:?}");
    }
    let counts = (a.transcript().messages.len(), b.transcript().messages.len());
    assert_eq!(counts.0 + counts.1, 24);
    assert!(
        counts.0 > 0 && counts.1 > 0,
        "both MX hosts get mail: {counts:?}"
    );
    let asked = dns.queries();
    assert_eq!(
        asked.iter().filter(|q| *q == "example.net 15").count(),
        1,
        "{asked:?}"
    );
    assert_eq!(
        asked.iter().filter(|q| *q == "mx-a.example.net 1").count(),
        1,
        "{asked:?}"
    );
}

#[tokio::test]
async fn a_changed_address_is_used_once_the_old_answer_expired() {
    let (a, b) = two_servers().await;
    let zone = |ip| {
        Zone::default()
            .ttl(1)
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", ip)
    };
    let dns = Dns::start(zone("127.0.0.2"));
    let client = uncached_client(&dns, a.port());
    let report = deliver_by_mx(&client, "example.net", a.port()).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    assert!(report.outcomes[0]
        .relay
        .starts_with("mx.example.net[127.0.0.2]"));
    dns.set_zone(zone("127.0.0.3"));
    outlive_ttl(1).await;
    let report = deliver_by_mx(&client, "example.net", a.port()).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    assert!(report.outcomes[0]
        .relay
        .starts_with("mx.example.net[127.0.0.3]"));
    let counts = (a.transcript().messages.len(), b.transcript().messages.len());
    assert_eq!(counts, (1, 1));
}

#[tokio::test]
async fn negative_answers_are_kept_for_their_negative_ttl() {
    let (a, _b) = two_servers().await;
    let missing = |negative_ttl| {
        Zone::default()
            .negative_ttl(negative_ttl)
            .mx("example.net", 10, "mx.example.net")
            .a("other.example.net", "127.0.0.9")
    };
    let present = |negative_ttl| missing(negative_ttl).a("mx.example.net", "127.0.0.2");
    let mx_host_queries = |dns: &Dns| {
        let queries = dns.queries();
        queries
            .iter()
            .filter(|q| q.starts_with("mx.example.net "))
            .count()
    };

    // No such name in the SOA's hour: not asked again, the address added meanwhile unseen.
    let dns = Dns::start(missing(3600));
    let client = uncached_client(&dns, a.port());
    let report = deliver_by_mx(&client, "example.net", a.port()).await;
    assert_eq!(kinds(&report), [Deferred], "{report:?}");
    let asked = mx_host_queries(&dns);
    assert!(asked >= 1, "{:?}", dns.queries());
    dns.set_zone(present(3600));
    let report = deliver_by_mx(&client, "example.net", a.port()).await;
    assert_eq!(kinds(&report), [Deferred], "{report:?}");
    assert!(report.outcomes[0].text.ends_with("MX host has no address"));
    assert_eq!(mx_host_queries(&dns), asked, "{:?}", dns.queries());

    // Kept for one second: the address added is found once that second is over.
    let dns = Dns::start(missing(1));
    let client = uncached_client(&dns, a.port());
    let report = deliver_by_mx(&client, "example.net", a.port()).await;
    assert_eq!(kinds(&report), [Deferred], "{report:?}");
    dns.set_zone(present(1));
    outlive_ttl(1).await;
    let report = deliver_by_mx(&client, "example.net", a.port()).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    assert_eq!(a.transcript().messages.len(), 1);
}

#[tokio::test]
async fn a_domain_that_did_not_exist_is_found_after_the_negative_ttl() {
    let (a, _b) = two_servers().await;
    let dns = Dns::start(Zone::default().negative_ttl(1));
    let client = uncached_client(&dns, a.port());
    let report = deliver_by_mx(&client, "new.example", a.port()).await;
    assert_eq!(kinds(&report), [Bounced], "{report:?}");
    assert_eq!(report.outcomes[0].dsn, "5.1.2");
    let zone = Zone::default()
        .negative_ttl(1)
        .mx("new.example", 10, "mx.new.example")
        .a("mx.new.example", "127.0.0.2");
    dns.set_zone(zone);
    outlive_ttl(1).await;
    let report = deliver_by_mx(&client, "new.example", a.port()).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
}

#[test]
fn clients_build_outside_a_runtime_and_refuse_bad_nameservers() {
    let mut s = settings(25);
    s.dns_nameservers = vec!["127.0.0.1:5353".into()];
    assert!(SmtpClient::new(s.clone()).is_ok());
    s.dns_nameservers = Vec::new(); // /etc/resolv.conf, or a resolver that defers if absent
    assert!(SmtpClient::new(s.clone()).is_ok());
    s.dns_nameservers = vec!["dns.example".into()];
    let error = SmtpClient::new(s)
        .err()
        .expect("a bad name server is refused");
    assert!(error.to_string().contains("dns.example"), "{error}");
}

/// `inet_protocols`: with both families (Postfix's default `all`) an MX host's A and AAAA
/// records are asked for; with `ipv4` only its A records (no AAAA question reaches the
/// server) and the mail still goes; with `ipv6` only, an MX host with nothing but A records
/// has no usable address, so the mail waits without an A question or a connection.
#[tokio::test]
async fn inet_protocols_decides_which_address_records_are_asked_for() {
    let (a, _b) = two_servers().await;
    let zone = || {
        Zone::default()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", "127.0.0.2")
    };
    let asked = |dns: &Dns, question: &str| dns.queries().iter().filter(|q| *q == question).count();
    let run = |families: InetProtocols| {
        let dns = Dns::start(zone());
        let mut s = settings(a.port());
        s.dns_nameservers = vec![dns.nameserver()];
        s.inet_protocols = families;
        (dns, client(s))
    };

    let (dns, both) = run(InetProtocols::default());
    let report = deliver_by_mx(&both, "example.net", a.port()).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    assert_eq!(asked(&dns, "mx.example.net 28"), 1, "{:?}", dns.queries());

    let ipv4 = InetProtocols {
        ipv4: true,
        ipv6: false,
    };
    let (dns, v4) = run(ipv4);
    let report = deliver_by_mx(&v4, "example.net", a.port()).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    assert_eq!(asked(&dns, "mx.example.net 1"), 1, "{:?}", dns.queries());
    assert_eq!(asked(&dns, "mx.example.net 28"), 0, "{:?}", dns.queries());
    assert_eq!(a.transcript().messages.len(), 2);

    let ipv6 = InetProtocols {
        ipv4: false,
        ipv6: true,
    };
    let (dns, v6) = run(ipv6);
    let report = deliver_by_mx(&v6, "example.net", a.port()).await;
    assert_eq!(kinds(&report), [Deferred], "{report:?}");
    assert!(
        report.outcomes[0].text.contains("has no address"),
        "{report:?}"
    );
    assert_eq!(asked(&dns, "mx.example.net 1"), 0, "{:?}", dns.queries());
    assert_eq!(asked(&dns, "mx.example.net 28"), 1, "{:?}", dns.queries());
    assert_eq!(a.transcript().messages.len(), 2, "nothing sent over IPv4");

    // A `[address]` nexthop of a family left out waits (4.4.4) without a connection.
    let env = envelope("f@a.example", &["user@example.net"]);
    let hop = Nexthop {
        host: "127.0.0.2".into(),
        port: Some(a.port()),
        mx_lookup: false,
    };
    let report = deliver_all(&v6, &hop, &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Deferred], "{report:?}");
    assert_eq!(report.outcomes[0].dsn, "4.4.4", "{report:?}");
    assert!(
        report.outcomes[0].text.contains("inet_protocols"),
        "{report:?}"
    );
    assert_eq!(a.transcript().messages.len(), 2);
}

#[tokio::test]
async fn dane_checks_only_the_address_records_of_the_families_in_inet_protocols() {
    // mx.example.net has an A record: with IPv6 alone the DNSSEC check of its addresses
    // asks for AAAA only (before, A was asked first whatever inet_protocols said).
    let dns = Dns::start(Zone::default().a("mx.example.net", "127.0.0.2"));
    let ipv6 = InetProtocols {
        ipv4: false,
        ipv6: true,
    };
    let secure = super::super::dane::SecureDns::new(&[dns.nameserver()], ipv6);
    assert!(!secure.addresses_are_secure("mx.example.net").await);
    assert_eq!(dns.queries(), ["mx.example.net 28"]);
}
