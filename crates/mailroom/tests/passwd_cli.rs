//! `mailroom passwd add|del|list` end to end: the password comes from standard input, the
//! file is `smtpd_sasl_password_file` with mode 0600, and each failure has its sysexits code
//! (64 usage, 67 unknown user, 78 a broken file) and one line naming the problem.

use security::passwd::PasswordFile;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use testkit::*;

fn env_with_passwd() -> (TestEnv, std::path::PathBuf) {
    let env = TestEnv::new();
    let passwd = env.root.join("etc/passwd");
    env.write_config(&format!(
        "smtpd_sasl_password_file = \"{}\"\n",
        passwd.display()
    ));
    (env, passwd)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn add_list_replace_and_delete_users() {
    let (env, passwd) = env_with_passwd();
    assert_success(
        &env.run(&["passwd", "add", "alice"], b"two words\nignored\n"),
        "add alice",
    );
    assert_success(
        &env.run(&["passwd", "add", "bob@example.org"], b"hunter2\r\n"),
        "add bob",
    );
    assert_eq!(
        fs::metadata(&passwd).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let out = env.run(&["passwd", "list"], b"");
    assert_success(&out, "list");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "alice\nbob@example.org\n"
    );
    let users = PasswordFile::load(&passwd).unwrap();
    assert!(users.verify("alice", "two words"));
    assert!(users.verify("bob@example.org", "hunter2"));

    assert_success(
        &env.run(&["passwd", "add", "alice"], b"new one\n"),
        "replace alice",
    );
    let users = PasswordFile::load(&passwd).unwrap();
    assert!(users.verify("alice", "new one") && !users.verify("alice", "two words"));

    assert_success(&env.run(&["passwd", "del", "alice"], b""), "del alice");
    let out = env.run(&["passwd", "del", "alice"], b"");
    assert_eq!(out.status.code(), Some(67), "{}", stderr(&out));
    assert!(stderr(&out).contains("no such user: alice"));
    let out = env.run(&["passwd", "list"], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bob@example.org\n");
}

#[test]
fn bad_input_is_a_usage_error_and_changes_nothing() {
    let (env, passwd) = env_with_passwd();
    for (args, input) in [
        (&["passwd", "add", "two names"][..], &b"pw\n"[..]),
        (&["passwd", "add", "a:b"], b"pw\n"),
        (&["passwd", "add", "alice"], b""),
        (&["passwd", "add", "alice"], b"\n"),
        (&["passwd"], b""),
        (&["passwd", "add"], b""),
    ] {
        let out = env.run(args, input);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
    }
    assert!(!passwd.exists());
}

#[test]
fn a_broken_or_too_open_file_is_a_configuration_error() {
    let (env, passwd) = env_with_passwd();
    assert_success(&env.run(&["passwd", "add", "alice"], b"pw\n"), "add alice");

    fs::set_permissions(&passwd, fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.run(&["passwd", "list"], b"");
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));

    fs::set_permissions(&passwd, fs::Permissions::from_mode(0o600)).unwrap();
    let mut text = fs::read_to_string(&passwd).unwrap();
    text.push_str("bob\n");
    fs::write(&passwd, text).unwrap();
    let out = env.run(&["passwd", "list"], b"");
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 2"), "{}", stderr(&out));
    let out = env.run(&["passwd", "add", "carol"], b"pw\n");
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
}
