//! TLS configuration tests: the self-signed default (made once, then reused), operator PEM
//! pairs in each key encoding, errors that name the file, real handshakes over an in-memory
//! pipe, and no protocol older than TLS 1.2.

use super::*;
use rustls::{ClientConnection, ServerConnection};
use std::os::unix::fs::MetadataExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Test-only keys and certificates made with openssl (public: never use them for real).
const RSA_PKCS1_KEY: &str = include_str!("testdata/rsa-pkcs1.key");
const RSA_CERT: &str = include_str!("testdata/rsa.crt");
const EC_SEC1_KEY: &str = include_str!("testdata/ec-sec1.key");
const EC_CERT: &str = include_str!("testdata/ec.crt");

fn test_config(data: &Path) -> ServerTlsSettings {
    ServerTlsSettings {
        cert_file: String::new(),
        key_file: String::new(),
        self_signed_directory: data.join("tls"),
        hostname: "mx.example.test".into(),
    }
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A client that trusts exactly the certificate(s) in `ca`.
fn client_trusting(ca: &Path) -> Arc<ClientConfig> {
    client_config_verify(Some(ca)).unwrap()
}

/// Handshakes over an in-memory pipe with tokio-rustls (as smtpd will), sends a line each way,
/// and returns the negotiated protocol version.
fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: &str,
) -> Result<rustls::ProtocolVersion, String> {
    let name = ServerName::try_from(name.to_string()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let connector = tokio_rustls::TlsConnector::from(client);
        let server_side = tokio::spawn(async move {
            let mut tls = acceptor
                .accept(server_io)
                .await
                .map_err(|e| e.to_string())?;
            let mut line = [0u8; 6];
            tls.read_exact(&mut line).await.map_err(|e| e.to_string())?;
            assert_eq!(&line, b"EHLO\r\n");
            tls.write_all(b"250 ok\r\n")
                .await
                .map_err(|e| e.to_string())?;
            tls.shutdown().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        });
        let mut tls = connector
            .connect(name, client_io)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"EHLO\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        tls.read_to_end(&mut reply)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(reply, b"250 ok\r\n");
        server_side.await.unwrap()?;
        Ok(tls.get_ref().1.protocol_version().unwrap())
    })
}

#[test]
fn first_start_makes_a_self_signed_pair_and_later_starts_reuse_it() {
    let data = tempfile::tempdir().unwrap();
    let cfg = test_config(data.path());
    server_config(&cfg).unwrap();
    let tls_dir = data.path().join("tls");
    let cert = std::fs::read(tls_dir.join(SELF_SIGNED_CERT_FILE)).unwrap();
    let key = std::fs::read(tls_dir.join(SELF_SIGNED_KEY_FILE)).unwrap();
    let mode = |name: &str| std::fs::metadata(tls_dir.join(name)).unwrap().mode() & 0o777;
    assert_eq!(mode(SELF_SIGNED_KEY_FILE), 0o600);
    assert_eq!(mode(SELF_SIGNED_CERT_FILE), 0o644);
    assert_eq!(std::fs::metadata(&tls_dir).unwrap().mode() & 0o777, 0o700);

    server_config(&cfg).unwrap();
    assert_eq!(
        std::fs::read(tls_dir.join(SELF_SIGNED_CERT_FILE)).unwrap(),
        cert
    );
    assert_eq!(
        std::fs::read(tls_dir.join(SELF_SIGNED_KEY_FILE)).unwrap(),
        key
    );
    let leftovers: Vec<_> = std::fs::read_dir(&tls_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "unexpected files: {leftovers:?}");
}

#[test]
fn a_lone_key_from_an_interrupted_first_start_is_replaced_by_a_full_pair() {
    let data = tempfile::tempdir().unwrap();
    let tls_dir = data.path().join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    write_file(&tls_dir, SELF_SIGNED_KEY_FILE, "half-written");
    server_config(&test_config(data.path())).unwrap();
    assert!(tls_dir.join(SELF_SIGNED_CERT_FILE).exists());
}

#[test]
fn a_broken_self_signed_pair_is_reported_not_overwritten() {
    let data = tempfile::tempdir().unwrap();
    let tls_dir = data.path().join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    write_file(&tls_dir, SELF_SIGNED_CERT_FILE, "garbage\n");
    write_file(&tls_dir, SELF_SIGNED_KEY_FILE, "garbage\n");
    let error = server_config(&test_config(data.path())).unwrap_err();
    assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
    assert!(error.to_string().contains("tls/cert.pem"), "{error}");
    let cert = std::fs::read_to_string(tls_dir.join(SELF_SIGNED_CERT_FILE)).unwrap();
    assert_eq!(cert, "garbage\n");
}

#[test]
fn the_self_signed_certificate_works_in_a_real_handshake_for_each_of_its_names() {
    let data = tempfile::tempdir().unwrap();
    let server = server_config(&test_config(data.path())).unwrap();
    let client = client_trusting(&data.path().join("tls").join(SELF_SIGNED_CERT_FILE));
    for name in ["mx.example.test", "localhost", "127.0.0.1", "::1"] {
        let version = handshake(server.clone(), client.clone(), name).unwrap();
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_3, "{name}");
    }
    let wrong = handshake(server, client, "other.example.test").unwrap_err();
    assert!(wrong.contains("not valid for name"), "{wrong}");
}

#[test]
fn a_tls12_only_client_still_connects() {
    let data = tempfile::tempdir().unwrap();
    let server = server_config(&test_config(data.path())).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(
        load_certificates(&data.path().join("tls").join(SELF_SIGNED_CERT_FILE)).unwrap(),
    );
    let client = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let version = handshake(server, Arc::new(client), "localhost").unwrap();
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
}

#[test]
fn the_opportunistic_client_accepts_an_untrusted_certificate() {
    let data = tempfile::tempdir().unwrap();
    let server = server_config(&test_config(data.path())).unwrap();
    let version = handshake(server, client_config_may(), "any.name.example").unwrap();
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);
}

#[test]
fn the_verifying_client_rejects_a_certificate_it_does_not_trust() {
    let data = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let server = server_config(&test_config(data.path())).unwrap();
    server_config(&test_config(other.path())).unwrap();
    let client = client_trusting(&other.path().join("tls").join(SELF_SIGNED_CERT_FILE));
    let error = handshake(server, client, "localhost").unwrap_err();
    assert!(
        error.contains("UnknownIssuer") || error.contains("BadSignature"),
        "{error}"
    );
}

#[test]
fn configured_pairs_load_in_pkcs1_sec1_and_pkcs8_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let pkcs8 = {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    };
    let pairs = [
        ("rsa", RSA_CERT.to_string(), RSA_PKCS1_KEY.to_string()),
        ("ec", EC_CERT.to_string(), EC_SEC1_KEY.to_string()),
        ("pkcs8", pkcs8.0, pkcs8.1),
    ];
    for (name, cert, key) in pairs {
        let mut cfg = test_config(dir.path());
        let cert = write_file(dir.path(), &format!("{name}.crt"), &cert);
        let key = write_file(dir.path(), &format!("{name}.key"), &key);
        cfg.cert_file = cert.display().to_string();
        cfg.key_file = key.display().to_string();
        let server = server_config(&cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let client = client_trusting(&cert);
        handshake(server, client, "localhost").unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(!dir.path().join("tls").exists(), "made a self-signed pair");
}

#[test]
fn one_combined_file_can_hold_both_certificate_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let combined = write_file(
        dir.path(),
        "combined.pem",
        &format!("{EC_SEC1_KEY}{EC_CERT}"),
    );
    server_config_from_files(&combined, &combined).unwrap();
}

#[test]
fn errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cert = write_file(dir.path(), "cert.pem", RSA_CERT);
    let key = write_file(dir.path(), "key.pem", EC_SEC1_KEY);
    let missing = dir.path().join("missing.pem");
    let no_key = write_file(dir.path(), "nokey.pem", RSA_CERT);
    let truncated = write_file(dir.path(), "trunc.pem", &RSA_CERT[..RSA_CERT.len() / 2]);

    let error = server_config_from_files(&cert, &key).unwrap_err();
    assert!(matches!(error, TlsError::BadPair { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("cert.pem") && text.contains("key.pem"),
        "{text}"
    );

    let error = server_config_from_files(&missing, &key).unwrap_err();
    assert!(matches!(error, TlsError::Read { .. }), "{error}");
    assert!(
        error.to_string().contains("missing.pem: cannot read"),
        "{error}"
    );

    let error = server_config_from_files(&cert, &no_key).unwrap_err();
    assert!(matches!(error, TlsError::NoPrivateKey { .. }), "{error}");
    assert!(error.to_string().starts_with(&no_key.display().to_string()));

    let error = server_config_from_files(&truncated, &key).unwrap_err();
    assert!(matches!(error, TlsError::Pem { .. }), "{error}");
    assert!(
        error.to_string().contains("trunc.pem: not valid PEM"),
        "{error}"
    );
}

#[test]
fn setting_only_one_of_cert_and_key_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.cert_file = "/etc/ssl/mail.pem".into();
    let error = server_config(&cfg).unwrap_err();
    assert!(matches!(
        error,
        TlsError::HalfConfigured {
            set: "smtpd_tls_cert_file"
        }
    ));
}

#[test]
fn only_tls12_and_tls13_are_configured() {
    let data = tempfile::tempdir().unwrap();
    let server = server_config(&test_config(data.path())).unwrap();
    let client = client_config_may();
    let allowed = [
        rustls::ProtocolVersion::TLSv1_2,
        rustls::ProtocolVersion::TLSv1_3,
    ];
    for provider in [server.crypto_provider(), client.crypto_provider()] {
        for suite in &provider.cipher_suites {
            assert!(allowed.contains(&suite.version().version), "{suite:?}");
        }
    }
    let versions: Vec<_> = PROTOCOL_VERSIONS.iter().map(|v| v.version).collect();
    assert_eq!(
        versions,
        allowed[..].iter().rev().copied().collect::<Vec<_>>()
    );
}

/// A TLS 1.1 ClientHello (legacy_version 3.2, no supported_versions extension): the server
/// must refuse it with an alert rather than negotiate.
#[test]
fn a_tls11_client_hello_is_refused_with_an_alert() {
    let data = tempfile::tempdir().unwrap();
    let server = server_config(&test_config(data.path())).unwrap();
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // empty session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // two CBC suites
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8];
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);

    let mut connection = ServerConnection::new(server).unwrap();
    connection.read_tls(&mut record.as_slice()).unwrap();
    let error = connection.process_new_packets().unwrap_err();
    let mut alert = Vec::new();
    connection.write_tls(&mut alert).unwrap();
    assert_eq!(alert.first(), Some(&0x15), "no alert record for {error}");
    assert!(!connection.is_handshaking() || connection.protocol_version().is_none());
}

/// The client side: our ClientHello's version field says TLS 1.2 (1.3 rides in the
/// supported_versions extension), never 1.1 or lower.
#[test]
fn the_client_hello_offers_no_version_below_tls12() {
    let mut connection = ClientConnection::new(
        client_config_may(),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut hello = Vec::new();
    connection.write_tls(&mut hello).unwrap();
    // legacy_version in the ClientHello body is 3.3 (TLS 1.2); 1.3 is in supported_versions.
    assert_eq!(&hello[9..11], &[0x03, 0x03]);
}
