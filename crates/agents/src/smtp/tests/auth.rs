//! Client SASL against the scripted server: AUTH PLAIN inside TLS, LOGIN when it is all the
//! server has, a refused password defers (never bounces), no plaintext mechanism outside TLS
//! unless `smtp_sasl_security_options` allows it, and a password file others can read is
//! refused before any connection.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use envelope::OutcomeKind::{Deferred, Sent};

use super::server::{reply, Behaviour, StartTls, TestServer};
use super::*;

fn server_tls() -> Arc<rustls::ServerConfig> {
    let dir = tempfile::tempdir().unwrap();
    let ca = testkit::TestCa::new("auth test CA");
    let files = ca.issue(&["smarthost.test"], dir.path(), "server");
    security::tls::server_config_from_files(&files.cert, &files.key).unwrap()
}

/// A smarthost accepting user `u`, password `secret`, offering `mechanisms`.
fn smarthost(tls: bool, mechanisms: &str) -> Behaviour {
    let mut ehlo = vec!["PIPELINING", mechanisms];
    if tls {
        ehlo.push("STARTTLS");
    }
    Behaviour {
        starttls: if tls {
            StartTls::On(server_tls())
        } else {
            StartTls::Off
        },
        auth: Arc::new(|user, password| match (user, password) {
            ("u", "secret") => reply("235 2.7.0 Authentication successful"),
            _ => reply("535 5.7.8 Error: authentication failed: authentication failure"),
        }),
        ..Behaviour::default().with_ehlo(&ehlo)
    }
}

/// Delivers through `server` with SASL on and `line` as the password table (mode `mode`).
async fn deliver_authenticated(
    server: &TestServer,
    line: &str,
    mode: u32,
    tweak: impl FnOnce(&mut SmtpSettings),
) -> DeliveryReport {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("sasl_passwd");
    std::fs::write(&table, line.replace("PORT", &server.port().to_string())).unwrap();
    std::fs::set_permissions(&table, std::fs::Permissions::from_mode(mode)).unwrap();
    let mut s = settings(25);
    s.tls_level = SmtpTlsLevel::May;
    s.sasl = SaslSettings {
        enabled: true,
        password_maps: vec![table.display().to_string()],
        security_options: vec!["noplaintext".into(), "noanonymous".into()],
        tls_security_options: vec!["noanonymous".into()],
        sender_dependent: false,
    };
    tweak(&mut s);
    let env = envelope("f@a.example", &["one@b.example"]);
    deliver_all(&client(s), &loopback(server.port()), &env, MESSAGE).await
}

#[tokio::test]
async fn auth_plain_inside_tls_delivers() {
    let server = TestServer::start(smarthost(true, "AUTH PLAIN LOGIN")).await;
    let report = deliver_authenticated(&server, "[127.0.0.1]:PORT u:secret\n", 0o600, |_| {}).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    let t = server.transcript();
    let auth = [(
        "PLAIN".to_string(),
        "u".to_string(),
        "secret".to_string(),
        true,
    )];
    assert_eq!(t.auth, auth);
    let starttls = t.commands.iter().position(|c| c == "STARTTLS").unwrap();
    let first_auth = t
        .commands
        .iter()
        .position(|c| c.starts_with("AUTH"))
        .unwrap();
    assert!(
        starttls < first_auth,
        "AUTH only after STARTTLS: {:?}",
        t.commands
    );
}

#[tokio::test]
async fn a_refused_password_defers_with_the_servers_reply() {
    let server = TestServer::start(smarthost(true, "AUTH PLAIN LOGIN")).await;
    let report = deliver_authenticated(&server, "[127.0.0.1]:PORT u:wrong\n", 0o600, |_| {}).await;
    assert_eq!(kinds(&report), [Deferred]);
    assert_eq!(report.outcomes[0].dsn, "4.7.8", "5.7.8 softened");
    assert_eq!(
        report.outcomes[0].text,
        "SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535 5.7.8 Error: authentication failed: authentication failure"
    );
    assert_eq!(server.transcript().count("MAIL"), 0);
}

#[tokio::test]
async fn plaintext_mechanisms_stay_off_outside_tls_unless_allowed() {
    let server = TestServer::start(smarthost(false, "AUTH LOGIN")).await;
    let table = "[127.0.0.1]:PORT u:secret\n";
    let report = deliver_authenticated(&server, table, 0o600, |_| {}).await;
    assert_eq!(kinds(&report), [Deferred]);
    assert_eq!(
        report.outcomes[0].text,
        "SASL authentication failed; cannot authenticate to server 127.0.0.1[127.0.0.1]: no mechanism available"
    );
    assert!(
        server.transcript().auth.is_empty(),
        "no password sent in the clear"
    );
    let allow = |s: &mut SmtpSettings| s.sasl.security_options = vec!["noanonymous".into()];
    let report = deliver_authenticated(&server, table, 0o600, allow).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    let auth = [(
        "LOGIN".to_string(),
        "u".to_string(),
        "secret".to_string(),
        false,
    )];
    assert_eq!(server.transcript().auth, auth);
}

#[tokio::test]
async fn a_password_file_others_can_read_defers_before_connecting() {
    let server = TestServer::start(smarthost(true, "AUTH PLAIN")).await;
    let report = deliver_authenticated(&server, "[127.0.0.1]:PORT u:secret\n", 0o644, |_| {}).await;
    assert_eq!(kinds(&report), [Deferred]);
    let text = &report.outcomes[0].text;
    assert!(
        text.contains("is readable by group or others (mode 0644)"),
        "{text}"
    );
    assert_eq!(server.transcript().connections, 0);
}

#[tokio::test]
async fn no_auth_offered_or_no_entry_sends_unauthenticated() {
    let server = TestServer::start(smarthost(true, "X-NOTHING")).await;
    let report = deliver_authenticated(&server, "[127.0.0.1]:PORT u:secret\n", 0o600, |_| {}).await;
    assert_eq!(kinds(&report), [Sent]);
    let server = TestServer::start(smarthost(true, "AUTH PLAIN")).await;
    let report = deliver_authenticated(&server, "[elsewhere]:PORT u:secret\n", 0o600, |_| {}).await;
    assert_eq!(kinds(&report), [Sent]);
    assert!(server.transcript().auth.is_empty());
}

/// With `smtp_sender_dependent_authentication` each sender authenticates as itself, so a
/// session authenticated for one sender is never reused for another.
#[tokio::test]
async fn sender_dependent_credentials_are_not_shared_through_the_connection_cache() {
    let server = TestServer::start(Behaviour {
        auth: Arc::new(|user, password| match (user, password) {
            ("u", "secret") | ("boss", "pw") => reply("235 2.7.0 Authentication successful"),
            _ => reply("535 5.7.8 Error: authentication failed"),
        }),
        ..smarthost(true, "AUTH PLAIN")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("sasl_passwd");
    let lines = format!(
        "boss@corp.example boss:pw\n[127.0.0.1]:{} u:secret\n",
        server.port()
    );
    std::fs::write(&table, lines).unwrap();
    std::fs::set_permissions(&table, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut s = settings(25);
    s.tls_level = SmtpTlsLevel::May;
    s.sasl = SaslSettings {
        enabled: true,
        password_maps: vec![table.display().to_string()],
        security_options: vec!["noplaintext".into()],
        tls_security_options: vec!["noanonymous".into()],
        sender_dependent: true,
    };
    let client = client(s);
    for sender in ["boss@corp.example", "other@corp.example"] {
        let env = envelope(sender, &["one@b.example"]);
        let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
        assert_eq!(kinds(&report), [Sent], "{sender}: {report:?}");
    }
    let t = server.transcript();
    let users: Vec<&str> = t.auth.iter().map(|a| a.1.as_str()).collect();
    assert_eq!(users, ["boss", "u"]);
    assert_eq!(t.connections, 2);
    assert_eq!(client.idle_connections(), 0);
}
