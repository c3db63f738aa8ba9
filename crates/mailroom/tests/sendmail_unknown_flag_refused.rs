//! Issue 8, defect 11: `sendmail -s "disk full" root` ignored the unknown `-s`, made its
//! value a recipient and queued mail to `diskfull` and `root`. Postfix's sendmail knows a fixed
//! list of option letters and refuses any other: `sendmail: invalid option -- 's'`,
//! `sendmail: fatal: usage: sendmail [options]`, exit 75, nothing queued. Checked through
//! `mailroom sendmail` and a `sendmail` symlink (the small `mailroom-sendmail` binary shares
//! the parser; crates/submit/tests/sendmail_binary.rs runs it).

use std::os::unix::fs::symlink;
use std::process::Output;

use testkit::*;

const REFUSED_S: &str =
    "sendmail: invalid option -- 's'\nsendmail: fatal: usage: sendmail [options]\n";

fn assert_refused(out: &Output, stderr: &str, env: &TestEnv, what: &str) {
    assert_eq!(out.status.code(), Some(75), "{what}: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), stderr, "{what}");
    assert!(env.maildrop_files().is_empty(), "{what}: nothing queued");
}

#[test]
fn unknown_flag_is_refused_and_nothing_is_queued() {
    let env = TestEnv::new();
    let out = env.sendmail(&["-s", "disk full", "root"], b"x\n");
    assert_refused(&out, REFUSED_S, &env, "mailroom sendmail -s");
    let out = env.sendmail(&["-Z", "root"], b"x\n");
    let refused_z = "sendmail: invalid option -- 'Z'\nsendmail: fatal: usage: sendmail [options]\n";
    assert_refused(&out, refused_z, &env, "mailroom sendmail -Z");

    let link = env.root.join("sendmail");
    symlink(bin(), &link).unwrap();
    let out = run_with_input(
        command_with_config(&link, &env.config).args(["-s", "disk full", "root"]),
        b"x\n",
    );
    assert_refused(&out, REFUSED_S, &env, "sendmail symlink -s");
}

#[test]
fn flags_postfix_ignores_still_queue_the_mail() {
    let env = TestEnv::new();
    // Debian cron's command line, and -c, which clap's global `-c FILE` must not take.
    env.send_ok(
        &["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
        b"Subject: cron\n\nout\n",
    );
    env.send_ok(
        &["-c", "-U", "-h", "30", "-XV", "bob"],
        b"Subject: ignored flags\n\nx\n",
    );
    assert_eq!(env.maildrop_files().len(), 2, "both messages queued");
}
