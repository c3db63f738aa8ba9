//! Postfix's virtual(8) delivery end to end: mail over SMTP for a domain in
//! `virtual_mailbox_domains` lands in the mbox or Maildir `virtual_mailbox_maps` names under
//! `virtual_mailbox_base`, owned by the `virtual_uid_maps`/`virtual_gid_maps` ids — written
//! by the root helper of a privilege-separated daemon, never as root. Unknown users are
//! refused at RCPT, a full mailbox bounces 5.2.2 with a DSN, and a map broken by an edit
//! keeps the old one at reload.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use testkit::privsep::*;
use testkit::*;

const VMAILBOX: &str =
    "alice@example.com  example.com/alice\nbob@example.com    example.com/bob/\n";

/// The virtual parameters: base owned by the test user, whose ids the maps give.
fn virtual_setup(extra: &str) -> Option<(PrivEnv, PathBuf)> {
    let (uid, gid) = ensure_account(USER).unwrap_or((0, 0));
    let p = setup(&format!(
        "virtual_mailbox_domains = [\"example.com\"]\n\
         virtual_mailbox_maps = [\"hash:@ROOT@/vmailbox\"]\n\
         virtual_mailbox_base = \"@ROOT@/vmail\"\n\
         virtual_uid_maps = [\"static:{uid}\"]\n\
         virtual_gid_maps = [\"static:{gid}\"]\n{extra}"
    ))?;
    // setup() cannot know the root before it makes it: put it in now.
    let text = fs::read_to_string(&p.env.config).unwrap();
    fs::write(
        &p.env.config,
        text.replace("@ROOT@", &p.env.root.display().to_string()),
    )
    .unwrap();
    fs::write(p.env.root.join("vmailbox"), VMAILBOX).unwrap();
    let base = p.env.root.join("vmail");
    fs::create_dir(&base).unwrap();
    chown(&base, p.user);
    Some((p, base))
}

fn maildir_files(dir: &std::path::Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn virtual_mbox_and_maildir_users_get_their_mail_owned_by_the_mapped_ids() {
    let Some((p, base)) = virtual_setup("") else {
        return;
    };
    let _daemon = p.env.start();
    send_smtp(p.port, "alice@example.com", "for-alice-in-mbox-1");
    send_smtp(p.port, "Bob@Example.com", "for-bob-in-maildir-2");
    let sent = p.env.wait_log("status=sent", 2);
    assert!(
        sent.iter()
            .all(|l| l.contains("relay=virtual") && l.contains("/virtual[")),
        "{sent:?}"
    );

    let mbox = base.join("example.com/alice");
    let messages = read_mboxes_with_python(std::slice::from_ref(&mbox)).remove(0);
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].header("Delivered-To").as_deref(),
        Some("alice@example.com")
    );
    assert!(String::from_utf8_lossy(messages[0].body()).contains("for-alice-in-mbox-1"));
    let meta = fs::metadata(&mbox).unwrap();
    assert_eq!((meta.uid(), meta.gid()), p.user, "mbox owner");
    assert_eq!(meta.mode() & 0o777, 0o600);

    let new = maildir_files(&base.join("example.com/bob/new"));
    assert_eq!(new.len(), 1, "{new:?}");
    let text = fs::read_to_string(&new[0]).unwrap();
    assert!(text.contains("for-bob-in-maildir-2"), "{text}");
    assert!(text.contains("Delivered-To: Bob@Example.com\n"), "{text}");
    let meta = fs::metadata(&new[0]).unwrap();
    assert_eq!((meta.uid(), meta.gid()), p.user, "Maildir file owner");
    let dir = fs::metadata(base.join("example.com")).unwrap();
    assert_eq!((dir.uid(), dir.gid()), p.user, "created directory owner");
    assert!(maildir_files(&base.join("example.com/bob/tmp")).is_empty());
}

#[test]
fn an_unknown_virtual_user_is_refused_at_rcpt() {
    let Some((p, _base)) = virtual_setup("") else {
        return;
    };
    let _daemon = p.env.start();
    let mut c = Client::connect(p.port);
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<someone@example.org>", 250);
    let r = c.cmd("RCPT TO:<carol@example.com>");
    assert_eq!(r.code, 550);
    assert_eq!(
        r.lines[0],
        "5.1.1 <carol@example.com>: Recipient address rejected: User unknown in virtual mailbox table"
    );
    c.ok("RCPT TO:<alice@example.com>", 250);
    c.ok("QUIT", 221);
}

#[test]
fn a_message_past_virtual_mailbox_limit_bounces_with_a_5_2_2_dsn() {
    let Some((p, base)) =
        virtual_setup("message_size_limit = 2000\nvirtual_mailbox_limit = 3000\n")
    else {
        return;
    };
    let _daemon = p.env.start();
    let sender = format!("{USER}@localhost");
    let filler = "x".repeat(70);
    let body: String = (0..20).map(|i| format!("{i} {filler}\n")).collect();
    // Each copy fits the limit alone; the second would take the mbox past it.
    for n in 1..=2 {
        let message = format!("Subject: fill {n}\n\n{body}");
        smtp_send(
            p.port,
            &sender,
            "",
            &plain(&["alice@example.com"]),
            &message,
        )
        .unwrap();
    }
    let bounced = p.env.wait_log("status=bounced", 1);
    assert!(bounced[0].contains("dsn=5.2.2"), "{bounced:?}");
    let mbox = base.join("example.com/alice");
    assert_eq!(
        read_mboxes_with_python(std::slice::from_ref(&mbox))[0].len(),
        1,
        "the second copy was not appended"
    );
    // The notice's delivery line comes after its fsync: the mbox is whole by then (its
    // separator alone could be read earlier).
    let to_sender = format!("to=<{sender}>");
    wait_until("the notice delivered to the sender", || {
        p.env
            .log_lines(&to_sender)
            .iter()
            .any(|l| l.contains("status=sent"))
    });
    let notice = &p.env.mbox_messages(USER)[0];
    let report = String::from_utf8_lossy(notice.body()).into_owned();
    assert!(report.contains("Status: 5.2.2"), "{report}");
    assert!(report.contains("alice@example.com"), "{report}");
}

#[test]
fn a_broken_virtual_map_at_reload_keeps_the_old_one() {
    let Some((p, _base)) = virtual_setup("") else {
        return;
    };
    let _daemon = p.env.start();
    // The root helper reads the maps itself once started: edit only after that, or the
    // broken table is what it starts with (a fatal start, rightly).
    p.env.wait_log("local delivery helper started", 1);
    let carol = "carol@example.com  example.com/carol/\n";
    let map = p.env.root.join("vmailbox");
    // An edit that adds carol and breaks line 4: the whole new table is refused.
    fs::write(&map, format!("{VMAILBOX}{carol}this-line-has-no-value\n")).unwrap();
    request_reload(&p.env);
    let warned = p.env.wait_log("reload failed", 1);
    assert!(warned[0].contains("vmailbox:4:"), "{warned:?}");
    assert_eq!(
        rcpt_code(p.port, "carol@example.com"),
        550,
        "old table in use"
    );
    assert_eq!(
        rcpt_code(p.port, "alice@example.com"),
        250,
        "old table kept"
    );
    // Fixed: the next reload takes it.
    fs::write(&map, format!("{VMAILBOX}{carol}")).unwrap();
    request_reload(&p.env);
    p.env.wait_log("reload -- configuration", 1);
    assert_eq!(rcpt_code(p.port, "carol@example.com"), 250);
}

/// Through the control socket (`newaliases` asks the daemon to reload), not SIGHUP: the
/// socket is bound before the signal handlers, and a request waits in its channel while a
/// signal that early would end the daemon.
fn request_reload(env: &TestEnv) {
    let out = env.run(&["newaliases"], b"");
    assert_success(&out, "newaliases");
}

/// The reply code to `RCPT TO:<to>` in a fresh session.
fn rcpt_code(port: u16, to: &str) -> u16 {
    let mut c = Client::connect(port);
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<someone@example.org>", 250);
    let code = c.cmd(&format!("RCPT TO:<{to}>")).code;
    c.ok("QUIT", 221);
    code
}
