use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::keygen::{self, KeyType};
use super::*;

fn key_file(dir: &Path, domain: &str, mode: u32) -> PathBuf {
    let key = keygen::generate(KeyType::Ed25519, 0).unwrap();
    let path = keygen::write_key(dir, domain, "sel", &key.pem).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn signer_for(dir: &Path, domain: &str) -> Signer {
    let key = key_file(dir, domain, 0o600);
    let settings = DkimSettings {
        keys: vec![config::DkimSign {
            domain: domain.into(),
            selector: "sel".into(),
            key,
        }],
    };
    Signer::load(&settings).unwrap()
}

const MESSAGE: &[u8] =
    b"From: Alice <alice@Example.COM>\r\nTo: bob@far.example\r\nSubject: hi\r\n\r\nbody\r\n";

#[test]
fn mail_from_a_signing_domain_gets_one_signature() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer_for(dir.path(), "example.com");
    let field = signer
        .sign(QueueId::generate(), "bounce@other.example", MESSAGE)
        .expect("signed");
    let text = String::from_utf8(field).unwrap();
    assert!(
        text.starts_with(
            "DKIM-Signature: v=1; a=ed25519-sha256; s=sel; d=example.com; c=relaxed/relaxed;"
        ),
        "{text}"
    );
    assert!(text.ends_with("\r\n"));
    assert!(text.lines().all(|l| l.len() < 998));
    let unfolded: String = text.split("\r\n").collect::<Vec<_>>().concat();
    let h = unfolded
        .split("h=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let fields: Vec<String> = h
        .split(':')
        .map(|f| f.trim().to_ascii_lowercase())
        .collect();
    assert_eq!(
        fields.iter().filter(|f| *f == "from").count(),
        2,
        "From oversigned: {h}"
    );
    assert!(
        fields.contains(&"cc".to_string()),
        "absent fields are signed too: {h}"
    );
}

#[test]
fn the_envelope_sender_domain_is_used_when_from_is_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer_for(dir.path(), "far.example");
    let message = b"From: someone@elsewhere.example\r\nSubject: x\r\n\r\nb\r\n";
    assert!(signer
        .sign(QueueId::generate(), "list@far.example", message)
        .is_some());
    assert!(signer
        .sign(QueueId::generate(), "list@near.example", message)
        .is_none());
    assert!(signer.sign(QueueId::generate(), "", message).is_none());
}

#[test]
fn a_message_already_signed_for_the_domain_is_not_signed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer_for(dir.path(), "example.com");
    let first = signer.sign(QueueId::generate(), "", MESSAGE).unwrap();
    let signed = [first.as_slice(), MESSAGE].concat();
    assert!(signer.sign(QueueId::generate(), "", &signed).is_none());
    // Another domain's signature does not count.
    let other = b"DKIM-Signature: v=1; a=rsa-sha256; d=\r\n\tother.example; s=x; b=abc\r\n";
    let foreign = [other.as_slice(), MESSAGE].concat();
    assert!(signer.sign(QueueId::generate(), "", &foreign).is_some());
}

#[test]
fn group_or_world_readable_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o640, 0o604, 0o644] {
        let path = key_file(dir.path(), &format!("m{mode:o}.example"), mode);
        let e = check_key_file(&path).unwrap_err();
        assert!(matches!(e, DkimError::Exposed { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("(mode {mode:04o}); chmod 600 {}", path.display())),
            "{text}"
        );
    }
    let ok = key_file(dir.path(), "ok.example", 0o400);
    check_key_file(&ok).unwrap();
}

#[test]
fn missing_and_garbage_keys_are_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.key");
    let e = check_key_file(&missing).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "dkim_sign: cannot read key file {}: No such file or directory",
            missing.display()
        )
    );
    let garbage = dir.path().join("garbage.key");
    fs::write(&garbage, "not a key\n").unwrap();
    fs::set_permissions(&garbage, fs::Permissions::from_mode(0o600)).unwrap();
    let e = check_key_file(&garbage).unwrap_err();
    assert!(matches!(e, DkimError::NotAKey { .. }), "{e}");
}

#[test]
fn a_domain_listed_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "example.com", 0o600);
    let entry = config::DkimSign {
        domain: "example.com".into(),
        selector: "sel".into(),
        key,
    };
    let settings = DkimSettings {
        keys: vec![entry.clone(), entry],
    };
    assert!(matches!(Signer::load(&settings), Err(DkimError::Twice(_))));
}

#[test]
fn malformed_messages_get_no_signature_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer_for(dir.path(), "example.com");
    for message in [
        &b""[..],
        b"\r\n",
        b"no header at all",
        b"From: <@>\r\n\r\n",
        b"\xff\xfe: x\r\n",
    ] {
        let _ = signer.sign(QueueId::generate(), "x@example.com", message);
    }
}
