//! Issue 12, DANE (RFC 7672) with `smtp_tls_security_level = dane` / `dane-only` (also as a
//! tls_policy(5) entry): mailroom asks a real DNSSEC-validating resolver (Debian's unbound,
//! testkit's [`Validator`]) for the MX, address and `_PORT._tcp.mx.dane.example` TLSA
//! records of a zone signed with ldns-signzone, and trusts them only when unbound vouches
//! for them (AD). The MX is a second mailroom offering STARTTLS with a certificate from a
//! per-test CA that the sending mailroom does not trust otherwise.
//!
//! DANE-EE (3 1 1) of the MX key → delivered, "Verified TLS connection established";
//! DANE-TA (2 0 1) of the CA, level from smtp_tls_policy_maps → delivered and Verified;
//! a TLSA digest matching nothing → deferred 4.7.5 "Server certificate not verified";
//! an unsigned zone → `dane` delivers over unauthenticated TLS ("Untrusted"), `dane-only`
//! defers with Postfix's "non DNSSEC destination"; a TLSA record altered after signing
//! (bogus: unbound answers SERVFAIL) → deferred "TLSA lookup error", even at `dane`.

use std::fs;
use std::path::Path;
use std::process::Command;

use testkit::*;

/// The sending mailroom, the MX, the resolver and the certificates' directory.
struct Scenario {
    world: World,
    mx: World,
    _validator: Validator,
    _certs: tempfile::TempDir,
}

/// The hex SHA-256 of `pem`'s certificate (`spki` false) or public key (true), by openssl.
fn sha256(pem: &Path, spki: bool) -> String {
    let pem = pem.display();
    let script = match spki {
        true => format!("openssl x509 -in {pem} -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r"),
        false => format!("openssl x509 -in {pem} -outform DER | openssl dgst -sha256 -r"),
    };
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(hex.len(), 64, "digest of {pem}: {text}");
    hex
}

/// An MX for dane.example (mailroom with STARTTLS; certificate for mx.dane.example, sent
/// with its CA certificate in the chain, as RFC 7672 3.2.2 asks for DANE-TA).
fn start_mx(certs: &Path, ca: &TestCa) -> World {
    let files = ca.issue(&["mx.dane.example"], certs, "mx");
    let chain = certs.join("chain.pem");
    let leaf = fs::read_to_string(&files.cert).unwrap();
    fs::write(&chain, format!("{leaf}{}", ca.pem())).unwrap();
    World::started(&format!(
        "smtpd_tls_cert_file = \"{}\"\nsmtpd_tls_key_file = \"{}\"\n\
         smtpd_tls_security_level = \"may\"\nmydestination = [\"dane.example\"]\n",
        chain.display(),
        files.key.display()
    ))
}

/// dane.example's zone (signed or not) with the TLSA record `tlsa(certs dir)`, mailroom
/// sending one message to user@dane.example with `config` added.
fn scenario(signed: bool, tlsa: impl Fn(&Path) -> String, config: &str) -> Scenario {
    scenario_with_policy(signed, tlsa, config, None)
}

/// [`scenario`] with `policy` as the smtp_tls_policy_maps file.
fn scenario_with_policy(
    signed: bool,
    tlsa: impl Fn(&Path) -> String,
    config: &str,
    policy: Option<&str>,
) -> Scenario {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mailroom DANE test CA");
    ca.write(certs.path(), "ca.pem");
    let mx = start_mx(certs.path(), &ca);
    let tlsa_line = format!("_{}._tcp.mx IN TLSA {}", mx.port, tlsa(certs.path()));
    let records = [
        "@ IN MX 10 mx.dane.example.",
        "mx IN A 127.0.0.1",
        &tlsa_line,
    ];
    let zone = match signed {
        true => TestZone::signed("dane.example", &records),
        false => TestZone::unsigned("dane.example", &records),
    };
    start_sender(certs, mx, zone, config, policy)
}

/// Starts the resolver serving `zone` and the sending mailroom, and submits the message.
fn start_sender(
    certs: tempfile::TempDir,
    mx: World,
    zone: TestZone,
    config: &str,
    policy: Option<&str>,
) -> Scenario {
    let validator = Validator::start(&[zone]);
    let mut config = config.to_string();
    if let Some(policy) = policy {
        let path = certs.path().join("tls_policy");
        fs::write(&path, policy).unwrap();
        config.push_str(&format!(
            "smtp_tls_policy_maps = [\"{}\"]\n",
            path.display()
        ));
    }
    let world = World::builder()
        .smtp()
        .config(&format!(
            "dns_nameservers = [\"{}\"]\nsmtp_default_port = {}\n{config}",
            validator.nameserver(),
            mx.port
        ))
        .start();
    world.submit(
        "sender@test.example",
        &["user@dane.example"],
        &message("dane"),
    );
    Scenario {
        world,
        mx,
        _validator: validator,
        _certs: certs,
    }
}

const DANE: &str = "smtp_tls_security_level = \"dane\"\n";
const DANE_ONLY: &str = "smtp_tls_security_level = \"dane-only\"\n";

/// The delay reason of the one queued recipient, once it contains `needle`.
fn wait_reason(world: &World, needle: &str) -> String {
    let mut reason = String::new();
    wait_until(&format!("a recipient deferred with {needle:?}"), || {
        reason = world
            .env
            .queue_json()
            .first()
            .and_then(|m| {
                m["recipients"][0]["delay_reason"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default();
        reason.contains(needle)
    });
    match reason.strip_prefix("delivery temporarily suspended: ") {
        Some(inner) => inner.to_string(),
        None => reason,
    }
}

fn key_digest(certs: &Path) -> String {
    format!("3 1 1 {}", sha256(&certs.join("mx.crt"), true))
}

#[test]
fn a_dane_ee_record_matching_the_mx_key_delivers_verified() {
    let s = scenario(true, key_digest, DANE);
    s.mx.env.wait_mbox("user", 1);
    let relay = format!("mx.dane.example[127.0.0.1]:{}", s.mx.port);
    // Postfix 3.x's summary line, with the TLS 1.3 details (the MX has a P-256 key).
    let line = s.world.wait_lines(
        &[&format!(
            "Verified TLS connection established to {relay}: TLSv1.3 with cipher"
        )],
        1,
    );
    assert!(
        line[0].ends_with(
            " bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256"
        ),
        "{line:?}"
    );
    s.world.wait_lines(
        &[
            "to=<user@dane.example>",
            &format!("relay={relay}"),
            "status=sent",
        ],
        1,
    );
}

#[test]
fn a_dane_ta_record_of_the_ca_in_the_policy_map_delivers_verified() {
    // The level comes from a tls_policy(5) entry; the global level stays `may`.
    let s = scenario_with_policy(
        true,
        |certs| format!("2 0 1 {}", sha256(&certs.join("ca.pem"), false)),
        "",
        Some("dane.example dane-only\n"),
    );
    s.mx.env.wait_mbox("user", 1);
    s.world.wait_lines(
        &["Verified TLS connection established to mx.dane.example[127.0.0.1]"],
        1,
    );
}

#[test]
fn a_tlsa_record_matching_nothing_defers_and_never_sends_in_plaintext() {
    let s = scenario(true, |_| format!("3 1 1 {}", "ab".repeat(32)), DANE);
    let reason = wait_reason(&s.world, "Server certificate not verified");
    assert_eq!(reason, "Server certificate not verified");
    s.world.wait_lines(
        &["to=<user@dane.example>", "status=deferred", "dsn=4.7.5"],
        1,
    );
    s.world.wait_lines(
        &[
            "server certificate verification failed for mx.dane.example[127.0.0.1]",
            "no TLSA record matches",
        ],
        1,
    );
    assert_eq!(s.mx.env.count_mbox("user"), 0);
}

#[test]
fn dane_without_signed_records_delivers_over_unauthenticated_tls() {
    let s = scenario(false, key_digest, DANE);
    s.mx.env.wait_mbox("user", 1);
    // The test CA is not trusted (system store), and the TLSA record is not signed: TLS
    // without authentication, as at `may`.
    s.world.wait_lines(
        &["Untrusted TLS connection established to mx.dane.example[127.0.0.1]"],
        1,
    );
}

#[test]
fn dane_only_without_signed_records_defers() {
    let s = scenario(false, key_digest, DANE_ONLY);
    let reason = wait_reason(&s.world, "DNSSEC");
    assert_eq!(reason, "non DNSSEC destination");
    s.world.wait_lines(
        &["to=<user@dane.example>", "status=deferred", "dsn=4.7.5"],
        1,
    );
    assert_eq!(s.mx.env.count_mbox("user"), 0);
}

#[test]
fn a_bogus_tlsa_record_defers_even_at_dane() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mailroom DANE test CA");
    let mx = start_mx(certs.path(), &ca);
    let good = sha256(&certs.path().join("mx.crt"), true);
    let tlsa = format!("_{}._tcp.mx IN TLSA 3 1 1 {good}", mx.port);
    let records = ["@ IN MX 10 mx.dane.example.", "mx IN A 127.0.0.1", &tlsa];
    // The signature covers the right digest; the zone then serves another one.
    let zone = TestZone::tampered("dane.example", &records, &good, &"cd".repeat(32));
    let port = mx.port;
    let s = start_sender(certs, mx, zone, DANE, None);
    let reason = wait_reason(&s.world, "TLSA");
    assert_eq!(
        reason,
        format!("TLSA lookup error for mx.dane.example:{port}")
    );
    s.world.wait_lines(
        &["to=<user@dane.example>", "status=deferred", "dsn=4.7.5"],
        1,
    );
    assert_eq!(
        s.mx.env.count_mbox("user"),
        0,
        "never downgraded to opportunistic TLS"
    );
}
