//! `mailroom config -e name=value` / `-# name` (postconf's edits): the TOML file is changed
//! where the setting stands, every comment and blank line kept; the result is checked with
//! the daemon's own loader first, so a value the daemon would refuse is refused (exit 64)
//! and the file is left byte for byte as it was; the replacement keeps owner and mode and
//! leaves no temp file behind.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use testkit::*;

const HEADER: &str = "# site settings, kept by hand\n\n# retry quickly on this box\n";

fn env_with_comments() -> TestEnv {
    let env = TestEnv::new();
    let text = fs::read_to_string(&env.config).unwrap();
    let text = format!("{HEADER}{text}hopcount_limit = 7   # loops are short here\n\n# end\n");
    fs::write(&env.config, text).unwrap();
    env
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn edit_changes_only_the_value_and_appends_new_parameters() {
    let env = env_with_comments();
    let before = fs::read_to_string(&env.config).unwrap();
    fs::set_permissions(&env.config, fs::Permissions::from_mode(0o640)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&env.config, Some(65534), Some(65534)).unwrap();
    }
    let names_before = files_in(&env.root);

    let out = env.run(
        &[
            "config",
            "-e",
            "hopcount_limit=12",
            "relayhost=[relay.example]:587",
            "soft_bounce=yes",
        ],
        b"",
    );
    assert_success(&out, "config -e");
    assert_eq!(out.stdout, b"", "postconf -e prints nothing");

    let after = fs::read_to_string(&env.config).unwrap();
    let expected = before.replace(
        "hopcount_limit = 7   # loops",
        "hopcount_limit = 12   # loops",
    ) + "relayhost = \"[relay.example]:587\"\nsoft_bounce = true\n";
    assert_eq!(after, expected);

    let meta = fs::metadata(&env.config).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640, "mode kept");
    if is_root() {
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "owner kept");
    }
    assert_eq!(files_in(&env.root), names_before, "no temp file left");

    // The daemon's loader reads the new values.
    let out = env.run(
        &["config", "-x", "hopcount_limit", "relayhost", "soft_bounce"],
        b"",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hopcount_limit = 12\nrelayhost = [relay.example]:587\nsoft_bounce = yes\n"
    );
    // `postconf name=value` (no -e) is an edit too, as in Postfix.
    assert_success(
        &env.run(&["config", "hopcount_limit=13"], b""),
        "config name=value",
    );
    let out = env.run(&["config", "-h", "hopcount_limit"], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "13\n");
}

#[test]
fn an_invalid_value_is_refused_and_the_file_is_untouched() {
    let env = env_with_comments();
    let before = fs::read(&env.config).unwrap();
    for (assignment, key) in [
        ("hopcount_limit=0", "hopcount_limit"),
        ("hopcount_limit=many", "hopcount_limit"),
        ("minimal_backoff_time=1h", "minimal_backoff_time"),
        ("smtpd_listen=localhost", "smtpd_listen"),
        ("no_such_parameter=1", "no_such_parameter"),
    ] {
        let out = env.run(&["config", "-e", assignment], b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{assignment}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("postconf: fatal: "), "{stderr}");
        assert!(
            stderr.contains(key) && stderr.contains("not changed"),
            "{stderr}"
        );
        assert_eq!(
            fs::read(&env.config).unwrap(),
            before,
            "{assignment}: file changed"
        );
    }
    let out = env.run(&["config", "-e", "hopcount_limit"], b"");
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "postconf: fatal: missing '=' after attribute name: \"hopcount_limit\"\n"
    );
    assert_eq!(fs::read(&env.config).unwrap(), before);
}

#[test]
fn comment_out_keeps_the_setting_as_a_comment_and_the_default_applies() {
    let env = env_with_comments();
    let before = fs::read_to_string(&env.config).unwrap();
    let out = env.run(&["config", "-#", "hopcount_limit", "relayhost"], b"");
    assert_success(&out, "config -#");
    let after = fs::read_to_string(&env.config).unwrap();
    assert_eq!(
        after,
        before.replace("\nhopcount_limit = 7", "\n#hopcount_limit = 7")
    );
    let out = env.run(&["config", "-n", "hopcount_limit"], b"");
    assert_eq!(out.stdout, b"", "no longer set in the file");
    let out = env.run(&["config", "hopcount_limit"], b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hopcount_limit = 50\n"
    );
}

#[test]
fn edit_through_a_symlink_changes_the_target_and_keeps_the_link() {
    let env = TestEnv::new();
    let target = env.root.join("real.toml");
    fs::rename(&env.config, &target).unwrap();
    std::os::unix::fs::symlink(&target, &env.config).unwrap();
    assert_success(
        &env.run(&["config", "-e", "hopcount_limit=5"], b""),
        "config -e",
    );
    assert!(fs::symlink_metadata(&env.config)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::read_to_string(&target)
        .unwrap()
        .ends_with("hopcount_limit = 5\n"));
}
