//! `mailbox_command`: Postfix's environment (which the shell expands in the command line),
//! the message as local(8) gives it, and exit statuses mapped to outcomes.

use super::*;
use std::fs;

fn with_command(command: &str) -> Setup {
    let mut setup = Setup::new("");
    setup.cfg.mailbox_command = command.to_string();
    setup.cfg.recipient_delimiter = "+".into();
    setup
}

fn deliver_one(setup: &Setup, recipient: &str) -> envelope::Outcome {
    let d = send(
        &setup.agent(),
        "sender@example.net",
        &[recipient],
        b"Subject: m\n\nbody\n",
    );
    only_outcome(&d).clone()
}

#[test]
fn the_command_gets_postfix_environment_expansion_and_message() {
    let setup = with_command("");
    let out = setup.path("out");
    let mut setup = setup;
    setup.cfg.mailbox_command = format!(
        "env > {o}.env; cat > {o}.msg; echo \"x-$EXTENSION\" > {o}.arg",
        o = out.display()
    );
    let outcome = deliver_one(&setup, "Alice+News@localhost");
    assert_eq!(outcome.kind, OutcomeKind::Sent, "{outcome:?}");
    let env = fs::read_to_string(out.with_extension("env")).unwrap();
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    assert_eq!(var("USER").as_deref(), Some("alice"));
    assert!(
        !env.contains("\nMAIL_CONFIG="),
        "nothing inherited from the daemon"
    );
    assert_eq!(var("LOGNAME").as_deref(), Some("alice"));
    assert_eq!(var("LOCAL").as_deref(), Some("alice+news"));
    assert_eq!(var("EXTENSION").as_deref(), Some("news"));
    assert_eq!(var("DOMAIN").as_deref(), Some("localhost"));
    assert_eq!(var("RECIPIENT").as_deref(), Some("alice+news@localhost"));
    assert_eq!(
        var("ORIGINAL_RECIPIENT").as_deref(),
        Some("Alice+News@localhost")
    );
    assert_eq!(var("SENDER").as_deref(), Some("sender@example.net"));
    assert_eq!(var("PATH").as_deref(), Some("/usr/bin:/bin"));
    assert!(var("HOME").is_some() && var("SHELL").is_some(), "{env}");
    let arg = fs::read_to_string(out.with_extension("arg")).unwrap();
    assert_eq!(arg.trim(), "x-news", "the expanded command line");
    let msg = fs::read_to_string(out.with_extension("msg")).unwrap();
    assert!(msg.starts_with("From sender@example.net "), "{msg}");
    assert!(
        msg.contains("\nReturn-Path: <sender@example.net>\nX-Original-To: Alice+News@localhost\nDelivered-To: alice+news@localhost\nSubject: m\n\nbody\n"),
        "{msg}"
    );
    assert!(
        setup.mbox("alice").is_empty(),
        "the command, not us, delivers"
    );
}

#[test]
fn no_extension_means_no_extension_variable() {
    let setup = with_command("");
    let out = setup.path("env");
    let mut setup = setup;
    setup.cfg.mailbox_command = format!("/bin/sh -c 'env > {}'", out.display());
    assert_eq!(
        deliver_one(&setup, "alice@localhost").kind,
        OutcomeKind::Sent
    );
    let env = fs::read_to_string(&out).unwrap();
    assert!(!env.contains("EXTENSION="), "{env}");
}

#[test]
fn exit_statuses_map_as_postfix_sys_exits() {
    let cases = [
        ("exit 0", OutcomeKind::Sent, "2.0.0"),
        ("exit 75", OutcomeKind::Deferred, "4.3.0"),
        ("exit 71", OutcomeKind::Deferred, "4.3.0"),
        ("exit 67", OutcomeKind::Bounced, "5.1.1"),
        ("exit 65", OutcomeKind::Bounced, "5.6.0"),
        ("exit 73", OutcomeKind::Bounced, "5.2.0"),
        ("exit 77", OutcomeKind::Bounced, "5.7.0"),
        ("exit 78", OutcomeKind::Bounced, "5.3.5"),
        ("exit 1", OutcomeKind::Bounced, "5.3.0"),
        ("kill -9 $$", OutcomeKind::Deferred, "4.3.0"),
        (
            "echo 4.2.2 mailbox over quota; exit 1",
            OutcomeKind::Deferred,
            "4.2.2",
        ),
        (
            "echo 5.2.2 mailbox full >&2; exit 75",
            OutcomeKind::Bounced,
            "5.2.2",
        ),
    ];
    for (command, kind, dsn) in cases {
        let setup = with_command(command);
        let outcome = deliver_one(&setup, "alice@localhost");
        assert_eq!(
            (&outcome.kind, outcome.dsn.as_str()),
            (&kind, dsn),
            "{command}: {outcome:?}"
        );
    }
}

#[test]
fn a_missing_procmail_defers_with_the_reason() {
    for command in [
        "/nonexistent/procmail -a x",
        "/nonexistent/procmail -a \"$EXTENSION\"",
    ] {
        let setup = with_command(command);
        let outcome = deliver_one(&setup, "alice+x@localhost");
        assert_eq!(
            outcome.kind,
            OutcomeKind::Deferred,
            "{command}: {outcome:?}"
        );
        assert!(
            outcome.text.contains("/nonexistent/procmail") && outcome.text.contains("not found")
                || outcome.text.contains("No such file"),
            "{command}: {}",
            outcome.text
        );
    }
}

#[test]
fn command_time_limit_kills_and_defers() {
    let mut setup = with_command("/bin/sh -c 'sleep 30 | cat'");
    setup.cfg.command_time_limit = Duration::from_millis(300);
    let mut agent = LocalAgent::new(LocalSettings::from_config(&setup.cfg)).unwrap();
    agent.lock_timeout = Duration::from_secs(10);
    let d = send(&agent, "s@example.net", &["alice@localhost"], b"x\n");
    let outcome = only_outcome(&d);
    assert_eq!(outcome.kind, OutcomeKind::Deferred, "{outcome:?}");
    assert!(outcome.text.contains("time limit"), "{}", outcome.text);
}

#[test]
fn an_extension_cannot_inject_shell_syntax_into_the_command() {
    let setup = with_command("");
    let marker = setup.path("injected");
    let out = setup.path("arg");
    let mut setup = setup;
    setup.cfg.mailbox_command = format!("echo $EXTENSION > {}", out.display());
    let rcpt = format!("alice+x;touch${{IFS}}{}@localhost", marker.display());
    let outcome = deliver_one(&setup, &rcpt);
    assert_eq!(outcome.kind, OutcomeKind::Sent, "{outcome:?}");
    assert!(!marker.exists(), "the extension ran as a command");
    assert!(fs::read_to_string(&out).unwrap().starts_with("x_touch_"));
}

#[test]
fn commands_never_run_as_mail_owner() {
    if !users::running_as_root() {
        eprintln!("skipped: needs root (whose commands get default_privs)");
        return;
    }
    // default_privs and mail_owner are the same user: the command must not get its rights.
    let mut setup = with_command("/bin/true");
    setup.cfg.mail_owner = "nobody".into();
    setup.cfg.default_privs = "nobody".into();
    let outcome = deliver_one(&setup, "no-passwd-entry@localhost");
    assert_eq!(
        (outcome.kind, outcome.dsn.as_str()),
        (OutcomeKind::Deferred, "4.3.5")
    );
    assert!(outcome.text.contains("mail_owner"), "{}", outcome.text);
}
