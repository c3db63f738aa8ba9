//! Seed 001: someone "cleaning up" left the submission directory owned by root with the
//! wrong mode, and every sendmail run by the queue owner failed with "Permission denied".
//! `mailroom check` must find it (path, what is wrong, the fix), `check --fix` must repair
//! it, and then `sendmail` run as that ordinary user must work again.
//!
//! Needs root (to chown, and to run sendmail as `nobody` with setpriv); skipped otherwise.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use testkit::*;

#[test]
fn check_finds_and_fixes_a_root_owned_maildrop() {
    if !is_root() {
        eprintln!("skipped: needs root to chown the store and run sendmail as nobody");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: setpriv is not installed");
        return;
    }
    let extra = "profile = \"system\"\nmail_owner = \"nobody\"\nsetgid_group = \"nogroup\"\n\
                 smtpd_listen = []\ndata_directory = \"DATA\"\n";
    let env = TestEnv::with_config("");
    let extra = extra.replace("DATA", &env.root.join("data").display().to_string());
    env.write_config(&extra);
    open_up(&env.root);
    fs::set_permissions(&env.config, fs::Permissions::from_mode(0o644)).unwrap();
    let maildrop = env.maildrop_dir();
    fs::create_dir_all(&maildrop).unwrap();
    fs::create_dir_all(env.spool_dir()).unwrap();

    // A fresh layout: check --fix gives it to mail_owner with Postfix's maildrop mode.
    let out = env.run(&["check", "--fix"], b"");
    assert_success(&out, "check --fix on a new layout");
    let out = env.run(&["check"], b"");
    assert_success(&out, "check after --fix");
    let meta = fs::metadata(&maildrop).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o730);

    // Break it the seed-001 way.
    std::os::unix::fs::chown(&maildrop, Some(0), Some(0)).unwrap();
    fs::set_permissions(&maildrop, fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = || {
        run_with_input(
            command_with_config("setpriv", &env.config).args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                bin(),
                "sendmail",
                "-i",
                "root@localhost",
            ]),
            b"Subject: cron output\n\nfreemem.py says hi\n",
        )
    };
    let out = as_nobody();
    assert!(
        !out.status.success(),
        "sendmail as nobody must fail on a root-owned maildrop"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{:?}",
        out
    );

    let out = env.run(&["check"], b"");
    assert_eq!(out.status.code(), Some(1), "check must fail: {out:?}");
    let report = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = report
        .lines()
        .filter(|l| l.contains(&maildrop.display().to_string()))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one line for the maildrop problem:\n{report}"
    );
    assert!(
        lines[0].contains("owner root:root, expected nobody:nogroup"),
        "{report}"
    );
    assert!(lines[0].contains("mode 0755, expected 0730"), "{report}");
    assert!(
        lines[0].contains(&format!("chown nobody:nogroup {}", maildrop.display())),
        "{report}"
    );

    let out = env.run(&["check", "--fix"], b"");
    assert_success(&out, "check --fix");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("fixed"),
        "{out:?}"
    );
    let meta = fs::metadata(&maildrop).unwrap();
    assert_eq!(
        (meta.uid() != 0, meta.permissions().mode() & 0o7777),
        (true, 0o730)
    );
    assert_success(&env.run(&["check"], b""), "check after the repair");

    let out = as_nobody();
    assert_success(&out, "sendmail as nobody after check --fix");
    assert_eq!(env.maildrop_files().len(), 1, "{:?}", env.maildrop_files());
}
