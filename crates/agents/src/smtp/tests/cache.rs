//! The connection cache's labels and its two ways in: domains whose MX hosts share an
//! address share idle connections; a different TLS policy, SASL, verification identity or
//! dialect does not.

use std::net::SocketAddr;

use envelope::OutcomeKind::Sent;
use testkit::{Dns, TestCa, Zone};

use super::super::cache::{By, ConnectionCache, SessionKind};
use super::super::conn::{Connection, Endpoint, Peer};
use super::super::policy::TlsPolicy;
use super::super::settings::Dialect;
use super::server::TestServer;
use super::*;

fn peer(host: &str, addr: &str) -> Peer {
    Peer {
        host: host.into(),
        addr: Endpoint::Tcp(addr.parse::<SocketAddr>().unwrap()),
    }
}

fn policy(level: SmtpTlsLevel) -> TlsPolicy {
    TlsPolicy {
        level,
        ..TlsPolicy::none()
    }
}

fn kind<'a>(destination: &'a str, policy: &'a TlsPolicy, sasl: bool) -> SessionKind<'a> {
    SessionKind {
        dialect: Dialect::Smtp,
        helo_name: "client.test",
        policy,
        destination,
        sasl,
    }
}

#[test]
fn two_domains_whose_mx_share_an_address_share_an_endpoint_label() {
    let may = policy(SmtpTlsLevel::May);
    let (a, b) = (
        kind("inet:a.example:25", &may, false),
        kind("inet:b.example:25", &may, false),
    );
    let (pa, pb) = (
        peer("mx.a.example", "192.0.2.1:25"),
        peer("mx.b.example", "192.0.2.1:25"),
    );
    assert_eq!(a.endpoint_label(&pa), b.endpoint_label(&pb));
    assert_ne!(a.destination_label(), b.destination_label());
    let elsewhere = peer("mx.a.example", "192.0.2.2:25");
    assert_ne!(a.endpoint_label(&pa), a.endpoint_label(&elsewhere));
    let other_port = peer("mx.a.example", "192.0.2.1:587");
    assert_ne!(a.endpoint_label(&pa), a.endpoint_label(&other_port));
}

#[test]
fn a_different_tls_policy_gets_its_own_endpoint_label() {
    let at = |level| {
        let policy = policy(level);
        let label =
            kind("inet:a.example:25", &policy, false).endpoint_label(&peer("mx", "192.0.2.1:25"));
        label
    };
    assert_ne!(at(SmtpTlsLevel::May), at(SmtpTlsLevel::Encrypt));
    assert_ne!(at(SmtpTlsLevel::None), at(SmtpTlsLevel::May));
    let may = policy(SmtpTlsLevel::May);
    let sni = TlsPolicy {
        servername: "mail.example".into(),
        ..policy(SmtpTlsLevel::May)
    };
    let p = peer("mx", "192.0.2.1:25");
    assert_ne!(
        kind("inet:a.example:25", &may, false).endpoint_label(&p),
        kind("inet:a.example:25", &sni, false).endpoint_label(&p)
    );
}

#[test]
fn sessions_authenticated_or_verified_for_one_destination_are_not_shared() {
    let p = peer("mx.shared.example", "192.0.2.1:25");
    let may = policy(SmtpTlsLevel::May);
    let sasl = |d| kind(d, &may, true).endpoint_label(&p);
    assert_ne!(sasl("inet:a.example:25"), sasl("inet:b.example:25"));
    assert_ne!(
        sasl("inet:a.example:25"),
        kind("inet:a.example:25", &may, false).endpoint_label(&p)
    );
    for level in [
        SmtpTlsLevel::Verify,
        SmtpTlsLevel::Secure,
        SmtpTlsLevel::Dane,
    ] {
        let policy = policy(level);
        let verified = |d| kind(d, &policy, false).endpoint_label(&p);
        assert_ne!(
            verified("inet:a.example:25"),
            verified("inet:b.example:25"),
            "{level:?}"
        );
        let other_host = peer("mx.other.example", "192.0.2.1:25");
        let label = kind("inet:a.example:25", &policy, false).endpoint_label(&other_host);
        assert_ne!(verified("inet:a.example:25"), label, "{level:?}");
    }
}

#[test]
fn smtp_and_lmtp_sessions_do_not_share() {
    let none = policy(SmtpTlsLevel::None);
    let p = peer("h", "192.0.2.1:24");
    let smtp = kind("inet:[h]:24", &none, false);
    let lmtp = SessionKind {
        dialect: Dialect::Lmtp,
        ..kind("inet:[h]:24", &none, false)
    };
    assert_ne!(smtp.endpoint_label(&p), lmtp.endpoint_label(&p));
}

#[tokio::test]
async fn a_connection_taken_by_its_address_is_gone_under_its_destination() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
    let target = peer("mx.a.example", &addr.to_string());
    let conn = Connection::connect(target.clone(), Duration::from_secs(30), None)
        .await
        .unwrap();
    let _server_end = accept.await.unwrap().unwrap();
    let may = policy(SmtpTlsLevel::May);
    let a = kind("inet:a.example:25", &may, false);
    let labels = a.labels(&target);
    let cache = std::sync::Arc::new(ConnectionCache::default());
    let long = Duration::from_secs(3600);
    cache.put(labels.clone(), conn, long, Duration::from_secs(1), 20);
    assert_eq!(cache.len(), 1);
    let b = kind("inet:b.example:25", &may, false);
    assert!(cache
        .take(By::Destination, &b.destination_label())
        .is_none());
    let shared = b.endpoint_label(&peer("mx.b.example", &addr.to_string()));
    assert!(cache.take(By::Endpoint, &shared).is_some());
    assert_eq!(cache.len(), 0);
    assert!(
        cache.take(By::Destination, &labels.destination).is_none(),
        "handed out once"
    );
}

/// Connects to a fresh listener; returns the connection, its peer and the server's end.
async fn connected(host: &str) -> (Connection, Peer, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
    let target = peer(host, &addr.to_string());
    let conn = Connection::connect(target.clone(), Duration::from_secs(30), None)
        .await
        .unwrap();
    (conn, target, accept.await.unwrap().unwrap())
}

/// What the server end read until the client closed (or the deadline passed).
async fn read_to_close(mut server_end: tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(testkit::DEADLINE, server_end.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn the_closer_quits_every_expired_connection_and_wakes_again_for_later_ones() {
    let may = policy(SmtpTlsLevel::May);
    let cache = std::sync::Arc::new(ConnectionCache::default());
    let short = Duration::from_millis(100);
    for wave in 0..2 {
        let mut ends = Vec::new();
        for i in 0..3 {
            let destination = format!("inet:w{wave}d{i}.example:25");
            let (conn, target, end) = connected("mx.example").await;
            let labels = kind(&destination, &may, false).labels(&target);
            cache.put(labels, conn, short, Duration::from_secs(1), 20);
            ends.push(end);
        }
        assert_eq!(cache.len(), 3, "wave {wave}");
        // The second wave comes after the cache was empty: the closer, then waiting for a
        // first connection, must be woken by it.
        for end in ends {
            assert_eq!(read_to_close(end).await, "QUIT\r\n", "wave {wave}");
        }
        assert_eq!(cache.len(), 0, "wave {wave}");
    }
}

/// Settings resolving through `dns`, trusting `ca_file`, default level `may`, and
/// `tls_policy` as smtp_tls_policy_maps.
fn shared_settings(
    port: u16,
    dns: &Dns,
    ca_file: &std::path::Path,
    policy: &std::path::Path,
) -> SmtpSettings {
    let mut s = settings(port);
    s.dns_nameservers = vec![dns.nameserver()];
    s.tls_level = SmtpTlsLevel::May;
    s.ca_file = ca_file.display().to_string();
    s.tls_policy_maps = vec![policy.display().to_string()];
    s.connection_cache_time = Duration::from_secs(3600); // nothing expires on a slow box
    s
}

#[tokio::test]
async fn domains_whose_mx_share_an_address_reuse_one_connection_unless_their_tls_policy_differs() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mailroom test CA");
    let server: TestServer = super::verify::server_for(&ca, &["mx.test.example"], dir.path()).await;
    let ca_file = ca.write(dir.path(), "ca.pem");
    let policy = dir.path().join("tls_policy");
    std::fs::write(&policy, "strict.example encrypt\n").unwrap();
    let mut zone = Zone::default();
    let domains: Vec<String> = (0..5)
        .map(|i| format!("d{i}.example"))
        .chain(["strict.example".into()])
        .collect();
    for domain in &domains {
        let mx = format!("mx.{domain}");
        zone = zone.mx(domain, 10, &mx).a(&mx, "127.0.0.1");
    }
    let dns = Dns::start(zone);
    let client = client(shared_settings(server.port(), &dns, &ca_file, &policy));
    for domain in &domains {
        let hop = Nexthop {
            host: domain.clone(),
            port: None,
            mx_lookup: true,
        };
        let env = envelope("f@a.example", &[&format!("user@{domain}")]);
        let report = deliver_all(&client, &hop, &env, MESSAGE).await;
        assert_eq!(kinds(&report), [Sent], "{domain}: {report:?}");
        // A reused session is logged under the host this delivery looked up.
        let relay = format!("mx.{domain}[127.0.0.1]:{}", server.port());
        assert_eq!(report.outcomes[0].relay, relay, "{report:?}");
    }
    let t = server.transcript();
    assert_eq!(t.messages.len(), 6);
    assert_eq!(
        t.connections, 2,
        "one for the five `may` domains, one for the `encrypt` one"
    );
    assert_eq!(client.idle_connections(), 2);
}
