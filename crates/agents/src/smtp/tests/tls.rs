//! STARTTLS per `smtp_tls_security_level`: `may` uses TLS when offered and falls back to a
//! new plaintext connection after a failed handshake; `encrypt` never sends mail in the clear.

use std::sync::Arc;

use envelope::OutcomeKind::{Deferred, Sent};

use super::server::{Behaviour, StartTls, TestServer};
use super::*;

/// A self-signed server configuration, made the way mailroom's smtpd makes its own.
fn server_tls() -> Arc<rustls::ServerConfig> {
    let dir = tempfile::tempdir().unwrap();
    let settings = security::tls::ServerTlsSettings {
        cert_file: String::new(),
        key_file: String::new(),
        self_signed_directory: dir.path().join("tls"),
        hostname: "test.example".into(),
    };
    security::tls::server_config(&settings).expect("self-signed server config")
}

fn tls_server(starttls: StartTls) -> Behaviour {
    Behaviour {
        starttls,
        ..Behaviour::default().with_ehlo(&["PIPELINING", "STARTTLS", "8BITMIME"])
    }
}

async fn deliver_with(level: SmtpTlsLevel, server: &TestServer) -> DeliveryReport {
    let mut s = settings(25);
    s.tls_level = level;
    let client = client(s);
    let env = envelope("f@a.example", &["one@b.example"]);
    deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await
}

#[tokio::test]
async fn may_uses_starttls_when_offered() {
    let server = TestServer::start(tls_server(StartTls::On(server_tls()))).await;
    let report = deliver_with(SmtpTlsLevel::May, &server).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    let t = server.transcript();
    assert_eq!(t.tls_sessions, 1);
    assert_eq!(t.count("EHLO"), 2, "EHLO again after the handshake");
    assert_eq!(t.messages[0].data, b"Subject: test\r\n\r\nhello\r\n");
}

#[tokio::test]
async fn may_sends_plaintext_when_tls_is_not_offered() {
    let server = TestServer::start(Behaviour::default()).await;
    let report = deliver_with(SmtpTlsLevel::May, &server).await;
    assert_eq!(kinds(&report), [Sent]);
    assert_eq!(server.transcript().count("STARTTLS"), 0);
}

#[tokio::test]
async fn may_retries_in_plaintext_after_a_failed_handshake() {
    let server = TestServer::start(tls_server(StartTls::Broken)).await;
    let report = deliver_with(SmtpTlsLevel::May, &server).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    let t = server.transcript();
    assert_eq!(t.connections, 2);
    assert_eq!(
        t.count("STARTTLS"),
        1,
        "the second connection does not try TLS"
    );
}

#[tokio::test]
async fn none_never_sends_starttls() {
    let server = TestServer::start(tls_server(StartTls::On(server_tls()))).await;
    let report = deliver_with(SmtpTlsLevel::None, &server).await;
    assert_eq!(kinds(&report), [Sent]);
    assert_eq!(server.transcript().count("STARTTLS"), 0);
}

#[tokio::test]
async fn encrypt_delivers_over_tls() {
    let server = TestServer::start(tls_server(StartTls::On(server_tls()))).await;
    let report = deliver_with(SmtpTlsLevel::Encrypt, &server).await;
    assert_eq!(kinds(&report), [Sent]);
    assert_eq!(server.transcript().tls_sessions, 1);
}

#[tokio::test]
async fn encrypt_without_starttls_defers() {
    let server = TestServer::start(Behaviour::default()).await;
    let report = deliver_with(SmtpTlsLevel::Encrypt, &server).await;
    assert_eq!(kinds(&report), [Deferred]);
    assert_eq!(report.outcomes[0].dsn, "4.7.4");
    let text = "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]";
    assert_eq!(report.outcomes[0].text, text);
    assert_eq!(report.destination_failure.as_deref(), Some(text));
    assert_eq!(server.transcript().count("MAIL"), 0, "no mail in plaintext");
}

#[tokio::test]
async fn encrypt_after_a_failed_handshake_defers() {
    let server = TestServer::start(tls_server(StartTls::Broken)).await;
    let report = deliver_with(SmtpTlsLevel::Encrypt, &server).await;
    assert_eq!(kinds(&report), [Deferred]);
    assert_eq!(report.outcomes[0].dsn, "4.7.5");
    assert_eq!(
        report.outcomes[0].text,
        "Cannot start TLS: handshake failure"
    );
    let t = server.transcript();
    assert_eq!((t.connections, t.count("MAIL")), (1, 0));
}

#[tokio::test]
async fn tls_sessions_are_reused_too() {
    let server = TestServer::start(tls_server(StartTls::On(server_tls()))).await;
    let mut s = settings(25);
    s.tls_level = SmtpTlsLevel::Encrypt;
    let client = client(s);
    let env = envelope("f@a.example", &["one@b.example"]);
    let hop = loopback(server.port());
    for _ in 0..2 {
        assert_eq!(
            kinds(&deliver_all(&client, &hop, &env, MESSAGE).await),
            [Sent]
        );
    }
    let t = server.transcript();
    assert_eq!((t.connections, t.tls_sessions), (1, 1));
}

/// One delivery at `level` with `adjust` applied to the settings; the server's transcript.
async fn tls_session_with(
    level: SmtpTlsLevel,
    adjust: impl FnOnce(&mut SmtpSettings),
) -> super::server::Transcript {
    let server = TestServer::start(tls_server(StartTls::On(server_tls()))).await;
    let mut s = settings(25);
    s.tls_level = level;
    adjust(&mut s);
    let env = envelope("f@a.example", &["one@b.example"]);
    let report = deliver_all(&client(s), &loopback(server.port()), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    server.transcript()
}

#[tokio::test]
async fn no_sni_name_is_sent_unless_smtp_tls_servername_says_so() {
    let t = tls_session_with(SmtpTlsLevel::May, |_| {}).await;
    assert_eq!(
        t.tls_names,
        [None],
        "Postfix's default: no SNI without DANE"
    );
    let t = tls_session_with(SmtpTlsLevel::Encrypt, |s| {
        s.tls_servername = "mx.example.net".into();
    })
    .await;
    assert_eq!(t.tls_names, [Some("mx.example.net".to_string())]);
}

#[tokio::test]
async fn tls_protocol_settings_choose_the_versions_per_level() {
    let only_12 = TlsVersions::parse("!TLSv1.3").unwrap();
    // `may` follows smtp_tls_protocols, `encrypt` smtp_tls_mandatory_protocols.
    let t = tls_session_with(SmtpTlsLevel::May, |s| s.tls_protocols = only_12).await;
    assert_eq!(t.tls_versions, ["Some(TLSv1_2)"]);
    let t = tls_session_with(SmtpTlsLevel::May, |s| s.tls_mandatory_protocols = only_12).await;
    assert_eq!(t.tls_versions, ["Some(TLSv1_3)"]);
    let t = tls_session_with(SmtpTlsLevel::Encrypt, |s| {
        s.tls_mandatory_protocols = only_12
    })
    .await;
    assert_eq!(t.tls_versions, ["Some(TLSv1_2)"]);
}
