//! The small `mailroom-sendmail` binary submits exactly like `mailroom sendmail`: a durable
//! maildrop file and exit 0, without any daemon; usage errors give sysexits 64, an option Postfix does not know 75.

use std::io::Write;
use std::process::{Command, Stdio};

fn run(config: &std::path::Path, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailroom-sendmail"))
        .args(args)
        .env("MAILROOM_CONFIG", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mailroom-sendmail");
    // A refused command line exits before reading its input: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

#[test]
fn submits_a_durable_maildrop_file_without_a_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("mailroom.toml");
    let queue = tmp.path().join("queue");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{}\"\nmail_spool_directory = \"{}\"\nqueue_minfree = 0\n",
            queue.display(),
            tmp.path().join("mail").display()
        ),
    )
    .unwrap();
    let out = run(
        &config,
        &["-t", "-i"],
        b"To: alice@localhost\nSubject: hi\n\nbody\n",
    );
    assert!(out.status.success(), "{out:?}");
    let files = submit::maildrop::ready_files(&queue.join("maildrop")).unwrap();
    assert_eq!(files.len(), 1);
    let drop = submit::maildrop::read(&files[0].1).unwrap();
    assert_eq!(drop.recipients, vec!["alice@localhost".to_string()]);
    assert!(String::from_utf8_lossy(&drop.message).contains("Subject: hi"));

    let out = run(&config, &["-i"], b"Subject: nobody\n\nx\n");
    assert_eq!(
        out.status.code(),
        Some(64),
        "no recipients is a usage error"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

/// Issue 8, defect 11: the small binary refuses a letter Postfix does not know exactly as
/// `mailroom sendmail` does (one parser), instead of queueing its value as a recipient.
#[test]
fn unknown_flag_is_refused_with_75_and_nothing_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("mailroom.toml");
    let queue = tmp.path().join("queue");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{}\"\nqueue_minfree = 0\n",
            queue.display()
        ),
    )
    .unwrap();
    let out = run(&config, &["-s", "disk full", "root"], b"x\n");
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sendmail: invalid option -- 's'\nsendmail: fatal: usage: sendmail [options]\n"
    );
    let maildrop = queue.join("maildrop");
    let queued = std::fs::read_dir(&maildrop).map_or(0, |d| d.count());
    assert_eq!(queued, 0, "nothing queued in {}", maildrop.display());
    let out = run(
        &config,
        &["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
        b"x\n",
    );
    assert!(out.status.success(), "Debian cron's flags: {out:?}");
}
