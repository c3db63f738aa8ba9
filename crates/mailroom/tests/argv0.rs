//! One binary, many names: symlinks named `sendmail`, `mailq`, `postqueue` and `newaliases`
//! behave like the `mailroom` subcommands, so the binary is a drop-in for scripts and cron.

use std::os::unix::fs::symlink;
use std::path::PathBuf;

use testkit::*;

fn link(env: &TestEnv, name: &str) -> PathBuf {
    let dir = env.root.join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    symlink(bin(), &path).unwrap();
    path
}

#[test]
fn symlinks_named_sendmail_and_mailq_work_like_the_subcommands() {
    let env = TestEnv::new();
    std::fs::write(env.aliases_file(), "team: alice, bob\n").unwrap();
    let sendmail = link(&env, "sendmail");
    let mailq = link(&env, "mailq");
    let postqueue = link(&env, "postqueue");
    let newaliases = link(&env, "newaliases");

    // sendmail -t -i: recipients from the header, Bcc removed.
    let out = run_with_input(
        command_with_config(&sendmail, &env.config).args(["-t", "-i"]),
        b"To: alice@localhost\nBcc: carol@localhost\nSubject: via symlink\n\nhello\n.\nstill the body\n",
    );
    assert_success(&out, "sendmail (symlink) -t -i");
    // Classic flags Postfix ignores are ignored; -f sets the sender.
    let out = run_with_input(
        command_with_config(&sendmail, &env.config).args([
            "-oi",
            "-oem",
            "-f",
            "cron@test.example",
            "team@localhost",
        ]),
        b"Subject: from cron\n\nnightly\n",
    );
    assert_success(&out, "sendmail (symlink) -oi -oem -f");

    let out = run_with_input(&mut command_with_config(&mailq, &env.config), b"");
    assert_success(&out, "mailq (symlink)");
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(listed.contains("in 2 Requests."), "{listed}");
    assert!(
        listed.contains("cron@test.example") && listed.contains("team@localhost"),
        "{listed}"
    );
    assert_eq!(listed, env.mailq(), "symlink and subcommand agree");
    let out = run_with_input(command_with_config(&sendmail, &env.config).arg("-bp"), b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        listed,
        "sendmail -bp is mailq"
    );
    let out = run_with_input(command_with_config(&postqueue, &env.config).arg("-j"), b"");
    assert_success(&out, "postqueue (symlink) -j");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);

    let out = run_with_input(&mut command_with_config(&newaliases, &env.config), b"");
    assert_success(&out, "newaliases (symlink)");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "newaliases: 1 aliases"
    );

    let _daemon = env.start();
    env.wait_mbox("alice", 2);
    env.wait_mbox("bob", 1);
    env.wait_queue_empty();
    assert_eq!(env.count_mbox("carol"), 1, "-t takes Bcc recipients too");
    let alice = env.mbox_messages("alice");
    let first = alice
        .iter()
        .find(|m| m.subject.as_deref() == Some("via symlink"))
        .unwrap();
    assert_eq!(
        first.body(),
        b"hello\n.\nstill the body\n",
        "-i: a lone dot is data"
    );
    assert!(first.header("Bcc").is_none(), "Bcc removed");
    let cron = alice
        .iter()
        .find(|m| m.subject.as_deref() == Some("from cron"))
        .unwrap();
    assert!(
        cron.from_line.starts_with("cron@test.example "),
        "{:?}",
        cron.from_line
    );

    let out = run_with_input(&mut command_with_config(&mailq, &env.config), b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Mail queue is empty"
    );
    // postqueue -f reaches the running daemon through the symlink too.
    let out = run_with_input(command_with_config(&postqueue, &env.config).arg("-f"), b"");
    assert_success(&out, "postqueue (symlink) -f");
}

#[test]
fn a_symlink_named_postconf_is_mailroom_config() {
    let env = TestEnv::with_config("hopcount_limit = 7\n");
    let postconf = link(&env, "postconf");
    let run = |cmd: &mut std::process::Command| {
        let out = run_with_input(cmd, b"");
        assert_success(&out, &format!("{cmd:?}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let via_link = run(command_with_config(&postconf, &env.config).arg("-n"));
    assert_eq!(
        via_link,
        String::from_utf8_lossy(&env.run(&["config", "-n"], b"").stdout)
    );
    assert!(
        via_link.lines().any(|l| l == "hopcount_limit = 7"),
        "{via_link}"
    );

    // Postfix's -c names the configuration directory: its mailroom.toml.
    let out = run(std::process::Command::new(&postconf)
        .env_remove("MAILROOM_CONFIG")
        .args(["-c", env.root.to_str().unwrap(), "-h", "hopcount_limit"]));
    assert_eq!(out, "7\n");
    let out = run(command_with_config(&postconf, &env.config).args(["-e", "hopcount_limit=9"]));
    assert_eq!(out, "");
    let out = run(command_with_config(&postconf, &env.config).args(["-h", "hopcount_limit"]));
    assert_eq!(out, "9\n");
}
