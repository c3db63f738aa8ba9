//! Certificate verification per TLS level, against certificates of a CA each test makes:
//! `verify` (trusted chain naming the MX host), `secure` (trusted chain naming the nexthop or
//! a subdomain), `may`/`encrypt` (any certificate), `smtp_tls_policy_maps` per destination.
//! A failed check defers with Postfix's "Server certificate not verified" and never falls back
//! to plaintext.

use std::sync::Arc;

use envelope::OutcomeKind::{Deferred, Sent};
use testkit::{Dns, TestCa, Zone};

use super::server::{Behaviour, StartTls, TestServer};
use super::*;

/// A STARTTLS server presenting a certificate of `ca` for `names`.
pub(super) async fn server_for(ca: &TestCa, names: &[&str], dir: &std::path::Path) -> TestServer {
    let files = ca.issue(names, dir, "server");
    let config = security::tls::server_config_from_files(&files.cert, &files.key).unwrap();
    TestServer::start(tls_behaviour(config)).await
}

fn tls_behaviour(config: Arc<rustls::ServerConfig>) -> Behaviour {
    Behaviour {
        starttls: StartTls::On(config),
        ..Behaviour::default().with_ehlo(&["PIPELINING", "STARTTLS"])
    }
}

/// One delivery to `hop` at `level`, trusting `ca_file`, names resolved by `zone`.
async fn deliver_at(
    level: SmtpTlsLevel,
    ca_file: &std::path::Path,
    zone: Zone,
    hop: Nexthop,
    tweak: impl FnOnce(&mut SmtpSettings),
) -> DeliveryReport {
    let dns = Dns::start(zone);
    let mut s = settings(hop.port.unwrap_or(25));
    s.tls_level = level;
    s.ca_file = ca_file.display().to_string();
    s.dns_nameservers = vec![dns.nameserver()];
    tweak(&mut s);
    let env = envelope("f@a.example", &["one@b.example"]);
    deliver_all(&client(s), &hop, &env, MESSAGE).await
}

fn relay_hop(port: u16) -> Nexthop {
    Nexthop {
        host: "relay.test.example".into(),
        port: Some(port),
        mx_lookup: false,
    }
}

fn relay_zone() -> Zone {
    Zone::default().a("relay.test.example", "127.0.0.1")
}

fn not_verified(report: &DeliveryReport, server: &TestServer) {
    assert_eq!(kinds(report), [Deferred], "{report:?}");
    assert_eq!(report.outcomes[0].dsn, "4.7.5");
    assert_eq!(report.outcomes[0].text, "Server certificate not verified");
    let t = server.transcript();
    assert_eq!(
        (t.connections, t.count("MAIL"), t.tls_sessions),
        (1, 0, 0),
        "no second, plaintext try: {t:?}"
    );
}

#[tokio::test]
async fn secure_delivers_when_the_certificate_names_the_nexthop() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mailroom test CA");
    let server = server_for(&ca, &["relay.test.example"], dir.path()).await;
    let ca_file = ca.write(dir.path(), "ca.pem");
    let hop = relay_hop(server.port());
    let report = deliver_at(SmtpTlsLevel::Secure, &ca_file, relay_zone(), hop, |_| {}).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    assert_eq!(server.transcript().tls_sessions, 1);
}

#[tokio::test]
async fn secure_with_a_wrong_name_defers_and_never_falls_back_to_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mailroom test CA");
    let server = server_for(&ca, &["other.example"], dir.path()).await;
    let ca_file = ca.write(dir.path(), "ca.pem");
    let hop = relay_hop(server.port());
    let report = deliver_at(SmtpTlsLevel::Secure, &ca_file, relay_zone(), hop, |_| {}).await;
    not_verified(&report, &server);
}

#[tokio::test]
async fn verify_with_an_untrusted_ca_defers() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_for(
        &TestCa::new("someone else"),
        &["relay.test.example"],
        dir.path(),
    )
    .await;
    let ca_file = TestCa::new("the CA we trust").write(dir.path(), "ca.pem");
    let hop = relay_hop(server.port());
    let report = deliver_at(SmtpTlsLevel::Verify, &ca_file, relay_zone(), hop, |_| {}).await;
    not_verified(&report, &server);
}

#[tokio::test]
async fn may_and_encrypt_accept_a_certificate_nobody_vouches_for() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_for(&TestCa::new("someone else"), &["wrong.example"], dir.path()).await;
    let ca_file = TestCa::new("the CA we trust").write(dir.path(), "ca.pem");
    for level in [SmtpTlsLevel::May, SmtpTlsLevel::Encrypt] {
        let hop = relay_hop(server.port());
        let report = deliver_at(level, &ca_file, relay_zone(), hop, |_| {}).await;
        assert_eq!(kinds(&report), [Sent], "{level:?}: {report:?}");
    }
    assert_eq!(server.transcript().tls_sessions, 2);
}

/// The MX host `mx1.<mx_domain>` of `example.test` presents a certificate for its own name.
async fn via_mx(level: SmtpTlsLevel, mx_domain: &str) -> (DeliveryReport, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mailroom test CA");
    let mx = format!("mx1.{mx_domain}");
    let server = server_for(&ca, &[&mx], dir.path()).await;
    let ca_file = ca.write(dir.path(), "ca.pem");
    let zone = Zone::default()
        .mx("example.test", 10, &mx)
        .a(&mx, "127.0.0.1");
    let hop = Nexthop {
        host: "example.test".into(),
        port: Some(server.port()),
        mx_lookup: true,
    };
    (deliver_at(level, &ca_file, zone, hop, |_| {}).await, server)
}

#[tokio::test]
async fn verify_trusts_the_mx_name_secure_only_names_under_the_nexthop() {
    let (report, _) = via_mx(SmtpTlsLevel::Verify, "elsewhere.test").await;
    assert_eq!(
        kinds(&report),
        [Sent],
        "verify: hostname matches: {report:?}"
    );
    let (report, _) = via_mx(SmtpTlsLevel::Secure, "example.test").await;
    assert_eq!(
        kinds(&report),
        [Sent],
        "secure: dot-nexthop matches: {report:?}"
    );
    let (report, server) = via_mx(SmtpTlsLevel::Secure, "elsewhere.test").await;
    not_verified(&report, &server);
}

#[tokio::test]
async fn policy_maps_set_the_level_and_names_per_destination() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mailroom test CA");
    let server = server_for(&ca, &["relay.test.example"], dir.path()).await;
    let ca_file = ca.write(dir.path(), "ca.pem");
    let port = server.port();
    let policy = dir.path().join("tls_policy");
    let with_policy = |line: String| {
        std::fs::write(&policy, line).unwrap();
        let path = policy.display().to_string();
        move |s: &mut SmtpSettings| s.tls_policy_maps = vec![path]
    };
    let line = format!("[relay.test.example]:{port} secure match=nothing.example\n");
    let hop = relay_hop(port);
    let report = deliver_at(
        SmtpTlsLevel::May,
        &ca_file,
        relay_zone(),
        hop.clone(),
        with_policy(line),
    )
    .await;
    not_verified(&report, &server);
    let line = format!("[relay.test.example]:{port} secure match=.example:relay.test.example\n");
    let report = deliver_at(
        SmtpTlsLevel::May,
        &ca_file,
        relay_zone(),
        hop,
        with_policy(line),
    )
    .await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
}

#[tokio::test]
async fn a_missing_ca_file_defers_verification_but_not_opportunistic_tls() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_for(&TestCa::new("ca"), &["relay.test.example"], dir.path()).await;
    let missing = dir.path().join("no-such-ca.pem");
    let hop = relay_hop(server.port());
    let report = deliver_at(
        SmtpTlsLevel::Secure,
        &missing,
        relay_zone(),
        hop.clone(),
        |_| {},
    )
    .await;
    assert_eq!(kinds(&report), [Deferred]);
    let text = &report.outcomes[0].text;
    assert!(
        text.starts_with("TLS is required, but our TLS engine is unavailable: "),
        "{text}"
    );
    assert!(text.contains("no-such-ca.pem"), "{text}");
    let report = deliver_at(SmtpTlsLevel::May, &missing, relay_zone(), hop, |_| {}).await;
    assert_eq!(kinds(&report), [Sent]);
}
