//! `mailbox_command` with Debian's real procmail: a `.procmailrc` that files by subject
//! into two mailboxes (and by `$EXTENSION`, passed as `-a "$EXTENSION"`, into a third),
//! run as the recipient — under privilege separation by the root helper, and by an
//! unprivileged daemon (the embedded default) as itself. A procmail that is not installed
//! defers the mail with the reason instead of bouncing it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use testkit::privsep::{self, local_user, write_as};
use testkit::*;

const PROCMAIL: &str = "/usr/bin/procmail";

fn have_procmail() -> bool {
    let found = Path::new(PROCMAIL).exists();
    if !found {
        eprintln!("skipped: {PROCMAIL} is not installed (apt-get install procmail)");
    }
    found
}

/// The rc file (outside any home, named on procmail's command line) filing into `out`.
fn procmailrc(root: &Path, out: &Path, ids: (u32, u32)) -> PathBuf {
    let rc = root.join("procmailrc");
    let text = format!(
        "MAILDIR={o}\nDEFAULT={o}/default.mbox\nEXT=$1\n\n\
         :0:\n* ^Subject:.*invoice\ninvoices.mbox\n\n\
         :0:\n* ^Subject:.*newsletter\nnews.mbox\n\n\
         :0:\n* EXT ?? ^^lists^^\nlists.mbox\n",
        o = out.display()
    );
    write_as(&rc, &text, ids, 0o644);
    rc
}

fn mailbox_command(rc: &Path) -> String {
    format!(
        "mailbox_command = '{PROCMAIL} -a \"$EXTENSION\" {}'\n",
        rc.display()
    )
}

/// The subjects in one procmail mailbox.
fn subjects(path: &Path) -> Vec<String> {
    read_mboxes_with_python(&[path.to_path_buf()])
        .remove(0)
        .into_iter()
        .filter_map(|m| m.subject)
        .collect()
}

/// Three messages: two filed by subject, one by extension; all as the user.
fn send_three(port: u16, user: &str) {
    let to = format!("{user}@localhost");
    let ext = format!("{user}+lists@localhost");
    for (rcpt, subject) in [
        (&to, "your invoice 7"),
        (&to, "the newsletter"),
        (&ext, "hello"),
    ] {
        smtp_send(
            port,
            "sender@example.org",
            "",
            &plain(&[rcpt.as_str()]),
            &message(subject),
        )
        .unwrap_or_else(|e| panic!("SMTP refused: {e}"));
    }
}

fn check_filed(out: &Path, uid: u32) {
    for (file, subject) in [
        ("invoices.mbox", "your invoice 7"),
        ("news.mbox", "the newsletter"),
        ("lists.mbox", "hello"),
    ] {
        let path = out.join(file);
        assert_eq!(subjects(&path), [subject], "{file}");
        assert_eq!(
            fs::metadata(&path).unwrap().uid(),
            uid,
            "{file} written as the user"
        );
    }
    assert!(!out.join("default.mbox").exists());
}

#[test]
fn privsep_procmail_files_by_subject_as_the_user() {
    if !have_procmail() {
        return;
    }
    let Some(p) = privsep::setup("recipient_delimiter = \"+\"\n") else {
        return;
    };
    let out = privsep::user_dir(&p, "out");
    let rc = procmailrc(&p.env.root, &out, p.user);
    p.env.write_config(&format!(
        "mail_owner = \"{}\"\nsmtpd_listen = [\"127.0.0.1:{}\"]\nlocal_recipient_maps = []\nrecipient_delimiter = \"+\"\n{}",
        privsep::OWNER,
        p.port,
        mailbox_command(&rc)
    ));
    let _daemon = p.env.start();
    send_three(p.port, privsep::USER);
    p.env.wait_log("status=sent", 3);
    check_filed(&out, p.user.0);
    assert!(
        !p.env.mbox(privsep::USER).exists(),
        "procmail, not mailroom, delivered"
    );
}

#[test]
fn unprivileged_daemon_runs_procmail_as_itself() {
    if !have_procmail() {
        return;
    }
    let Some((user, ids)) = local_user() else {
        return;
    };
    let mut world = World::builder().smtp().build();
    let out = world.env.root.join("out");
    fs::create_dir(&out).unwrap();
    let rc = procmailrc(&world.env.root, &out, ids);
    world.configure(&format!(
        "recipient_delimiter = \"+\"\n{}",
        mailbox_command(&rc)
    ));
    // As root, the whole world is given to the unprivileged user that runs the daemon.
    let run_as = is_root().then(|| {
        let status = std::process::Command::new("chown")
            .args(["-R", &format!("{}:{}", ids.0, ids.1)])
            .arg(&world.env.root)
            .status()
            .expect("chown");
        assert!(status.success());
        ids
    });
    world.run_ok(&["config", "-n"]);
    world.daemon = Some(world.env.start_as(run_as));
    world.env.wait_log("listening on", 1);
    send_three(world.port, &user);
    world.env.wait_log("status=sent", 3);
    check_filed(&out, ids.0);
}

#[test]
fn a_missing_procmail_defers_with_the_reason() {
    let world = World::started("mailbox_command = '/usr/bin/no-such-procmail -a \"$EXTENSION\"'\n");
    world.submit("sender@example.org", &["alice@localhost"], &message("kept"));
    let deferred = world.wait_lines(&["to=<alice@localhost>", "status=deferred"], 1);
    assert!(
        deferred[0].contains("/usr/bin/no-such-procmail"),
        "{deferred:?}"
    );
    assert!(deferred[0].contains("not found"), "{deferred:?}");
    assert!(world.lines_with(&["status=bounced"]).is_empty());
    assert_eq!(world.queue().len(), 1, "the message stays queued");
}
