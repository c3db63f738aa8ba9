//! Password file tests: the add/verify/replace/delete round trip, modes, comments kept across
//! rewrites, and malformed lines reported by number.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn file_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("passwd")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o777
}

fn load_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(&dir);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    PasswordFile::load(&path).unwrap_err().to_string()
}

#[test]
fn add_verify_replace_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(&dir);
    PasswordFile::add(&path, "alice", "first secret").unwrap();
    PasswordFile::add(&path, "bob@example.org", "hunter2").unwrap();
    let file = PasswordFile::load(&path).unwrap();
    assert_eq!(file.users(), ["alice", "bob@example.org"]);
    assert!(file.verify("alice", "first secret"));
    assert!(!file.verify("alice", "First secret"));
    assert!(!file.verify("alice", ""));
    assert!(!file.verify("carol", "first secret"));

    PasswordFile::add(&path, "alice", "second secret").unwrap();
    let file = PasswordFile::load(&path).unwrap();
    assert_eq!(file.users(), ["alice", "bob@example.org"]);
    assert!(file.verify("alice", "second secret"));
    assert!(!file.verify("alice", "first secret"));
    assert!(file.verify("bob@example.org", "hunter2"));

    assert!(PasswordFile::delete(&path, "alice").unwrap());
    assert!(!PasswordFile::delete(&path, "alice").unwrap());
    let file = PasswordFile::load(&path).unwrap();
    assert_eq!(file.users(), ["bob@example.org"]);
    assert!(!file.verify("alice", "second secret"));
}

#[test]
fn the_file_holds_argon2id_phc_strings_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(&dir);
    PasswordFile::add(&path, "alice", "secret").unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("alice:$argon2id$v=19$m=19456,t=2,p=1$"),
        "{text}"
    );
    assert!(!text.contains("secret"));
    assert_eq!(text.lines().count(), 1);
}

#[test]
fn a_missing_file_is_an_empty_set_of_users() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/passwd");
    let file = PasswordFile::load(&path).unwrap();
    assert!(file.is_empty());
    assert!(!file.verify("alice", "anything"));
    assert!(!PasswordFile::delete(&path, "alice").unwrap());
}

#[test]
fn add_creates_the_file_and_its_directory_with_mode_0600_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc/passwd");
    PasswordFile::add(&path, "alice", "secret").unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn rewrites_keep_0640_and_tighten_anything_looser() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(&dir);
    PasswordFile::add(&path, "alice", "secret").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    PasswordFile::add(&path, "bob", "secret").unwrap();
    assert_eq!(mode(&path), 0o640);
    PasswordFile::load(&path).unwrap();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = PasswordFile::load(&path).unwrap_err();
    assert!(
        matches!(error, PasswdError::Permissions { mode: 0o644, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("chmod 600"), "{error}");
    PasswordFile::delete(&path, "bob").unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(PasswordFile::load(&path).unwrap().users(), ["alice"]);
}

#[test]
fn a_group_writable_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(&dir);
    PasswordFile::add(&path, "alice", "secret").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
    assert!(matches!(
        PasswordFile::load(&path),
        Err(PasswdError::Permissions { mode: 0o660, .. })
    ));
}

#[test]
fn comments_and_blank_lines_survive_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(&dir);
    PasswordFile::add(&path, "alice", "secret").unwrap();
    let alice = std::fs::read_to_string(&path).unwrap();
    let text = format!("# SMTP AUTH users\n\n{alice}  # bob left in May\n");
    std::fs::write(&path, &text).unwrap();
    PasswordFile::add(&path, "bob", "secret").unwrap();
    PasswordFile::delete(&path, "bob").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn malformed_lines_are_reported_with_their_number() {
    let hash = DUMMY_HASH;
    let cases = [
        ("alice\n".to_string(), "line 1: expected name:argon2-hash"),
        (
            format!("# users\n\nalice:{hash}\nbob:plaintext\n"),
            "line 4: not a PHC hash string",
        ),
        (
            format!("alice:{hash}\nalice:{hash}\n"),
            "line 2: user \"alice\" already defined on line 1",
        ),
        (
            format!("al ice:{hash}\n"),
            "line 1: invalid user name \"al ice\": contains white space",
        ),
        (
            format!(":{hash}\n"),
            "line 1: invalid user name \"\": empty",
        ),
        (
            "alice:$scrypt$ln=15,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n".to_string(),
            "line 1: unsupported hash algorithm \"scrypt\"",
        ),
        (
            "alice:$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n".to_string(),
            "line 1: bad argon2 parameters",
        ),
        (
            "alice:$argon2id$v=19$m=19456,t=2,p=1\n".to_string(),
            "line 1: argon2 hash without salt or output",
        ),
    ];
    for (text, expected) in cases {
        let error = load_error(&text);
        assert!(
            error.contains("passwd, ") && error.contains(expected),
            "{text:?}: {error}"
        );
    }
}

#[test]
fn add_refuses_to_rewrite_a_malformed_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(&dir);
    std::fs::write(&path, "garbage\n").unwrap();
    let error = PasswordFile::add(&path, "alice", "secret").unwrap_err();
    assert!(
        matches!(error, PasswdError::Malformed { line: 1, .. }),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "garbage\n");
}

#[test]
fn bad_names_and_empty_passwords_are_rejected_before_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(&dir);
    let long = "a".repeat(MAX_NAME_LEN + 1);
    for name in [
        "",
        "a:b",
        "a b",
        "a\tb",
        "a\u{7}b",
        "#alice",
        "a\u{a0}b",
        long.as_str(),
    ] {
        let error = PasswordFile::add(&path, name, "secret").unwrap_err();
        assert!(
            matches!(error, PasswdError::BadName { .. }),
            "{name:?}: {error}"
        );
    }
    assert!(matches!(
        PasswordFile::add(&path, "alice", ""),
        Err(PasswdError::EmptyPassword)
    ));
    assert!(!path.exists());
    check_name("alice@example.org").unwrap();
    check_name("jürgen").unwrap();
}

#[test]
fn the_dummy_hash_costs_what_a_real_one_costs() {
    let dummy = dummy_hash();
    assert_eq!(dummy.algorithm.as_str(), "argon2id");
    let params = argon2::Params::try_from(dummy).unwrap();
    let default = argon2::Params::default();
    assert_eq!(
        (params.m_cost(), params.t_cost(), params.p_cost()),
        (default.m_cost(), default.t_cost(), default.p_cost())
    );
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(&dir);
    PasswordFile::add(&path, "alice", "secret").unwrap();
    let real = PasswordFile::load(&path).unwrap().users["alice"].clone();
    assert_eq!(real.params, dummy.params);
}

#[test]
fn debug_output_shows_names_not_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(&dir);
    PasswordFile::add(&path, "alice", "secret").unwrap();
    let shown = format!("{:?}", PasswordFile::load(&path).unwrap());
    assert_eq!(shown, "PasswordFile { users: [\"alice\"] }");
}
