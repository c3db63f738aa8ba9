//! Agent-level tests: a real temp directory for the spool, real alias files, real commands.
//! They run as whatever user runs `cargo test`; where root matters (commands run as
//! `default_privs`), the temp directory is made world-writable so both cases work.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use config::Config;
use envelope::{Envelope, OutcomeKind, QueueId};

use super::*;

mod aliases;
mod dotforward;
mod mailbox_command;
mod mailbox_names;
mod recipient_delimiter;

struct Setup {
    dir: tempfile::TempDir,
    cfg: Config,
}

impl Setup {
    fn new(aliases: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        // Commands and files from root-owned aliases run as `nobody` when tests run as root.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(dir.path().join("aliases"), aliases).unwrap();
        let mut cfg = Config::embedded_default();
        cfg.mail_spool_directory = dir.path().join("mail");
        cfg.alias_maps = vec![format!("hash:{}", dir.path().join("aliases").display())];
        cfg.local_recipient_maps = Vec::new();
        cfg.myhostname = "mx.example.org".into();
        cfg.myorigin = "mx.example.org".into();
        cfg.mydestination = vec!["mx.example.org".into(), "localhost".into()];
        cfg.home_mailbox = String::new();
        cfg.mailbox_size_limit = 0;
        cfg.default_privs = "nobody".into();
        cfg.allow_mail_to_commands = vec!["alias".into(), "forward".into()];
        cfg.allow_mail_to_files = vec!["alias".into(), "forward".into()];
        Setup { dir, cfg }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn agent(&self) -> LocalAgent {
        let mut agent = LocalAgent::new(LocalSettings::from_config(&self.cfg)).unwrap();
        agent.lock_timeout = Duration::from_secs(10);
        agent.command_timeout = Duration::from_secs(10);
        agent
    }

    fn mbox(&self, user: &str) -> Vec<u8> {
        fs::read(self.path("mail").join(user)).unwrap_or_default()
    }
}

fn send(agent: &LocalAgent, sender: &str, rcpts: &[&str], message: &[u8]) -> Delivery {
    let env = Envelope::new(sender, rcpts.iter().map(|r| r.to_string()).collect(), 0);
    let all: Vec<usize> = (0..rcpts.len()).collect();
    agent.deliver(QueueId::generate(), &env, &all, message)
}

/// Splits an mboxrd file into messages (without the `From ` line and the separating empty
/// line), undoing the `>From` quoting.
fn parse_mbox(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let text = String::from_utf8_lossy(bytes);
    let mut messages: Vec<(String, Vec<String>)> = Vec::new();
    let mut previous_blank = true;
    for line in text.split_inclusive('\n') {
        if previous_blank && line.starts_with("From ") {
            messages.push((line.trim_end().to_string(), Vec::new()));
        } else if let Some((_, lines)) = messages.last_mut() {
            lines.push(line.to_string());
        } else {
            panic!("mbox does not start with a From line: {line:?}");
        }
        previous_blank = line == "\n";
    }
    messages
        .into_iter()
        .map(|(from, mut lines)| {
            assert_eq!(
                lines.pop().as_deref(),
                Some("\n"),
                "message ends with an empty line"
            );
            let body: String = lines.iter().map(|l| unquote_from(l)).collect();
            (from, body.into_bytes())
        })
        .collect()
}

fn unquote_from(line: &str) -> &str {
    let quotes = line.len() - line.trim_start_matches('>').len();
    if quotes > 0 && line[quotes..].starts_with("From ") {
        &line[1..]
    } else {
        line
    }
}

fn only_outcome(delivery: &Delivery) -> &envelope::Outcome {
    assert_eq!(delivery.outcomes.len(), 1, "{delivery:?}");
    &delivery.outcomes[0]
}

#[test]
fn mbox_round_trip_with_from_quoting() {
    let setup = Setup::new("");
    let agent = setup.agent();
    let bodies: [&[u8]; 3] = [
        b"Subject: one\n\nFrom the start\n>From quoted\n",
        b"Subject: two\n\nno final newline",
        b"",
    ];
    for body in bodies {
        let d = send(&agent, "sender@example.net", &["Alice@LocalHost"], body);
        let outcome = only_outcome(&d);
        assert_eq!(outcome.kind, OutcomeKind::Sent, "{outcome:?}");
        assert_eq!(
            (outcome.text.as_str(), outcome.relay.as_str()),
            ("delivered to mailbox", "local")
        );
    }
    let messages = parse_mbox(&setup.mbox("alice"));
    assert_eq!(messages.len(), 3);
    let trace = "Return-Path: <sender@example.net>\nX-Original-To: Alice@LocalHost\nDelivered-To: alice@localhost\n";
    assert!(messages[0].0.starts_with("From sender@example.net "));
    assert_eq!(messages[0].1, [trace.as_bytes(), bodies[0]].concat());
    assert_eq!(messages[1].1, [trace.as_bytes(), bodies[1], b"\n"].concat());
    assert_eq!(messages[2].1, trace.as_bytes());
}

#[test]
fn null_sender_is_mailer_daemon() {
    let setup = Setup::new("");
    send(&setup.agent(), "", &["bob"], b"Subject: bounce\n\nx\n");
    let messages = parse_mbox(&setup.mbox("bob"));
    assert!(
        messages[0].0.starts_with("From MAILER-DAEMON "),
        "{}",
        messages[0].0
    );
    assert!(messages[0].1.starts_with(b"Return-Path: <>\n"));
}

#[test]
fn two_threads_two_hundred_messages_each() {
    let setup = Setup::new("");
    let mut agent = setup.agent();
    // The locks are polled: one thread can take the mailbox back-to-back while the other
    // sleeps between tries, and on a loaded box (slow fsync) that lasts past 10 s, which
    // defers the delivery (as it should). This test is about the two writers never tearing
    // each other's messages, so no attempt may time out.
    agent.lock_timeout = Duration::from_secs(600);
    std::thread::scope(|scope| {
        for thread in 0..2 {
            let agent = &agent;
            scope.spawn(move || {
                for n in 0..200 {
                    let body = format!("Subject: {thread}-{n}\n\nFrom me\nline {n}\n");
                    let d = send(agent, "s@example.net", &["carol"], body.as_bytes());
                    assert_eq!(only_outcome(&d).kind, OutcomeKind::Sent);
                }
            });
        }
    });
    let messages = parse_mbox(&setup.mbox("carol"));
    assert_eq!(messages.len(), 400);
    let mut subjects = std::collections::HashSet::new();
    for (_, body) in &messages {
        let text = String::from_utf8(body.clone()).unwrap();
        let subject = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap();
        let n = subject.split('-').nth(1).unwrap();
        assert!(
            text.ends_with(&format!("\n\nFrom me\nline {n}\n")),
            "{text:?}"
        );
        subjects.insert(subject.to_string());
    }
    assert_eq!(subjects.len(), 400);
    assert!(!setup.path("mail/carol.lock").exists());
}

#[test]
fn python_mailbox_reads_our_mbox() {
    let setup = Setup::new("");
    let agent = setup.agent();
    for n in 0..3 {
        let body = format!("Subject: m{n}\n\nFrom here\nbye\n");
        send(&agent, "s@example.net", &["dave"], body.as_bytes());
    }
    let script = "import mailbox,sys\nm=mailbox.mbox(sys.argv[1])\nprint(len(m))\nfor x in m: print(x['Subject'], x.get_from().split()[0])";
    let path = setup.path("mail/dave");
    let output = match std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
    {
        Ok(output) if output.status.success() => output,
        _ => return eprintln!("skipped: python3 with the mailbox module is not available"),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text,
        "3\nm0 s@example.net\nm1 s@example.net\nm2 s@example.net\n"
    );
}

#[test]
fn mailbox_size_limit_bounces_with_postfix_text() {
    let mut setup = Setup::new("");
    setup.cfg.mailbox_size_limit = 300;
    let agent = setup.agent();
    assert_eq!(
        only_outcome(&send(&agent, "s@x", &["erin"], b"Subject: a\n\nsmall\n")).kind,
        OutcomeKind::Sent
    );
    let before = setup.mbox("erin");
    let d = send(&agent, "s@x", &["erin"], &[b'x'; 400]);
    let outcome = only_outcome(&d);
    let path = setup.path("mail/erin");
    assert_eq!(
        (outcome.kind.clone(), outcome.dsn.as_str()),
        (OutcomeKind::Bounced, "5.2.2")
    );
    let expected = format!(
        "cannot update mailbox {} for user erin. error writing message: File too large",
        path.display()
    );
    assert_eq!(outcome.text, expected);
    assert_eq!(setup.mbox("erin"), before);
}

#[test]
fn maildir_delivery_without_passwd_entry_uses_the_spool() {
    let mut setup = Setup::new("");
    setup.cfg.home_mailbox = "Maildir/".into();
    let d = send(&setup.agent(), "s@x", &["liam"], b"Subject: md\n\nhello\n");
    let outcome = only_outcome(&d);
    assert_eq!(
        (outcome.kind.clone(), outcome.text.as_str()),
        (OutcomeKind::Sent, "delivered to maildir")
    );
    let new = setup.path("mail/liam/new");
    let files: Vec<_> = fs::read_dir(&new)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let content = fs::read_to_string(&files[0]).unwrap();
    assert!(content.starts_with("Return-Path: <s@x>\n"), "{content}");
    assert!(content.ends_with("Delivered-To: liam@mx.example.org\nSubject: md\n\nhello\n"));
    assert_eq!(
        fs::read_dir(setup.path("mail/liam/tmp")).unwrap().count(),
        0
    );
}

#[test]
fn hostile_addresses_and_messages_do_not_panic() {
    let setup = Setup::new("");
    let agent = setup.agent();
    let rcpts = [
        "",
        "@localhost",
        "../etc@localhost",
        "a/b",
        ".x",
        "\"\"@localhost",
        "x\r\ny",
        "é@localhost",
        "a@remote.example",
    ];
    let d = send(&agent, "evil\nFrom forged", &rcpts, b"\xff\xfe\n\n\x00");
    assert_eq!(d.outcomes.len(), rcpts.len());
    for (outcome, rcpt) in d.outcomes.iter().zip(rcpts) {
        if rcpt == "é@localhost" {
            assert_eq!(outcome.kind, OutcomeKind::Sent, "{outcome:?}");
        } else {
            assert_eq!(outcome.kind, OutcomeKind::Bounced, "{rcpt:?}: {outcome:?}");
        }
    }
    let env = Envelope::new("s@x", vec!["a".into()], 0);
    let d = agent.deliver(QueueId::generate(), &env, &[5], &vec![b'x'; 1 << 20]);
    assert_eq!(d.outcomes[0].kind, OutcomeKind::Deferred);
    let mbox = setup.mbox("é");
    assert_eq!(
        parse_mbox(&mbox).len(),
        1,
        "the forged From line stayed inside the first line"
    );
}

#[test]
fn local_domains() {
    let setup = Setup::new("");
    let agent = setup.agent();
    assert!(agent.is_local_domain(""));
    assert!(agent.is_local_domain("LocalHost"));
    assert!(agent.is_local_domain("mx.example.org."));
    assert!(!agent.is_local_domain("example.org"));
}

#[test]
fn held_lock_defers() {
    let setup = Setup::new("");
    let mut agent = setup.agent();
    agent.lock_timeout = Duration::from_millis(100);
    fs::create_dir_all(setup.path("mail")).unwrap();
    fs::write(setup.path("mail/olga.lock"), "").unwrap();
    let d = send(&agent, "s@x", &["olga"], b"");
    let outcome = only_outcome(&d);
    assert_eq!(
        (outcome.kind.clone(), outcome.dsn.as_str()),
        (OutcomeKind::Deferred, "4.2.0")
    );
    assert!(outcome.text.contains("unable to lock mailbox"));
}

/// The daemon shares one agent between blocking threads.
#[test]
fn agent_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LocalAgent>();
}

/// Seed 002: an administrator empties a spool mailbox with `touch` as root; the user's mail
/// reader can no longer open it. As root we give new and root-owned mailboxes to the user,
/// and refuse one that another user owns.
#[test]
fn root_gives_mailboxes_to_their_user() {
    use std::os::unix::fs::MetadataExt;
    if !users::running_as_root() {
        return eprintln!("skipped: needs root");
    }
    let Ok(Some(nobody)) = users::user_by_name("nobody") else {
        return eprintln!("skipped: no user nobody");
    };
    let setup = Setup::new("");
    let agent = setup.agent();
    let expected_gid = users::group_id("mail").unwrap().unwrap_or(nobody.gid);
    let mbox = setup.path("mail/nobody");
    assert_eq!(
        only_outcome(&send(&agent, "s@x", &["nobody"], b"")).kind,
        OutcomeKind::Sent
    );
    let meta = fs::metadata(&mbox).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (nobody.uid, expected_gid, 0o600)
    );

    fs::remove_file(&mbox).unwrap();
    fs::write(&mbox, "").unwrap(); // the administrator's `touch`, as root, mode 0644
    fs::set_permissions(&mbox, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        only_outcome(&send(&agent, "s@x", &["nobody"], b"")).kind,
        OutcomeKind::Sent
    );
    let meta = fs::metadata(&mbox).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (nobody.uid, 0o600));

    std::os::unix::fs::chown(&mbox, Some(nobody.uid + 1), None).unwrap();
    let d = send(&agent, "s@x", &["nobody"], b"");
    assert_eq!(only_outcome(&d).kind, OutcomeKind::Deferred, "{d:?}");
}
