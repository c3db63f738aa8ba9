//! logrotate keeps the log: after `maillog_file` is renamed, SIGUSR1 or `mailroom
//! logrotate` (Postfix: `postfix logrotate`) makes the daemon reopen it by name, so new
//! lines go to the new file, the old ones stay in the renamed file, and no line is lost —
//! also while mail is flowing during the rotation. The shipped `dist/mailroom.logrotate`
//! does this with the real logrotate.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use testkit::*;

const MESSAGES: usize = 40;

fn sent_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains("status=sent"))
        .map(str::to_string)
        .collect()
}

#[test]
fn sigusr1_after_a_rename_moves_new_lines_to_the_new_file_and_loses_none() {
    let env = TestEnv::new();
    let daemon = env.start();
    let rotated = env.root.join("mail.log.1");
    thread::scope(|s| {
        let sender = s.spawn(|| {
            for i in 0..MESSAGES {
                let message = format!("Subject: rotate-{i}\n\nx\n");
                env.send_ok(&["-f", "a@localhost", "root@localhost"], message.as_bytes());
            }
        });
        env.wait_mbox("root", MESSAGES / 4);
        fs::rename(env.log_file(), &rotated).unwrap();
        daemon.signal(libc::SIGUSR1);
        env.wait_log("logrotate -- maillog_file reopened", 1);
        sender.join().unwrap();
    });
    env.wait_mbox("root", MESSAGES);
    wait_until("every delivery logged", || {
        let both = fs::read_to_string(&rotated).unwrap() + &env.log();
        sent_lines(&both).len() >= MESSAGES
    });
    let old = fs::read_to_string(&rotated).unwrap();
    let new = env.log();
    assert!(!sent_lines(&old).is_empty(), "nothing before the rotation");
    assert!(!sent_lines(&new).is_empty(), "nothing after the rotation");
    assert!(!old.contains("maillog_file reopened"));
    // Exactly one line per delivery, in one file or the other.
    let all: Vec<String> = [sent_lines(&old), sent_lines(&new)].concat();
    assert_eq!(all.len(), MESSAGES, "old:\n{old}\nnew:\n{new}");
    // Every line is whole: each file ends with a newline, none starts mid-line.
    for text in [&old, &new] {
        assert!(text.ends_with('\n'));
        assert!(text.lines().all(|l| l.contains(" mailroom/")), "{text}");
    }
}

#[test]
fn shipped_logrotate_snippet_rotates_and_mailroom_logrotate_reopens() {
    if Command::new("logrotate").arg("--version").output().is_err() {
        eprintln!("skipped: logrotate is not installed");
        return;
    }
    let env = TestEnv::new();
    let _daemon = env.start();
    env.send_ok(
        &["-f", "a@localhost", "root@localhost"],
        b"Subject: before\n\nx\n",
    );
    env.wait_log("status=sent", 1);

    let snippet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/mailroom.logrotate");
    let command = format!("{} -c {} logrotate", bin(), env.config.display());
    let text = fs::read_to_string(snippet)
        .unwrap()
        .replace(
            "/var/log/mailroom.log",
            &env.log_file().display().to_string(),
        )
        .replace("/usr/sbin/mailroom logrotate", &command);
    let conf = env.root.join("logrotate.conf");
    fs::write(&conf, text).unwrap();
    let out = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(env.root.join("logrotate.state"))
        .arg(&conf)
        .output()
        .expect("logrotate");
    assert_success(&out, "logrotate");

    // delaycompress: the first rotation is mail.log.1, uncompressed.
    let rotated = fs::read_to_string(env.root.join("mail.log.1")).expect("rotated log");
    assert_eq!(sent_lines(&rotated).len(), 1);
    env.wait_log("logrotate -- maillog_file reopened", 1);
    env.send_ok(
        &["-f", "a@localhost", "root@localhost"],
        b"Subject: after\n\nx\n",
    );
    env.wait_log("status=sent", 1);
    assert_eq!(
        sent_lines(&fs::read_to_string(env.root.join("mail.log.1")).unwrap()).len(),
        1,
        "the daemon still writes to the rotated file"
    );
}
