//! Issue 4, RFC 3461 DSN requests honoured end to end. Mail is submitted with Python's
//! `smtplib` and real MAIL/RCPT parameters; the notifications land in the local sender's
//! mbox and are read with Python's `email` module:
//! - NOTIFY=SUCCESS → a success notice (relayed), with ENVID and ORCPT echoed;
//! - NOTIFY=NEVER → no bounce at all; RET=HDRS → a bounce with the headers only;
//! - `delay_warning_time` → exactly one "delayed" notice for a message retried many times.

use std::sync::Arc;
use std::time::Duration;

use testkit::*;

const SMTPLIB_PY: &str = r#"
import json, smtplib, sys
spec = json.loads(sys.argv[1])
s = smtplib.SMTP("127.0.0.1", spec["port"], timeout=30)
s.ehlo("dsn.test")
assert s.has_extn("dsn"), s.esmtp_features
code, resp = s.mail(spec["from"], spec["mail_options"])
assert code == 250, (code, resp)
for rcpt, opts in spec["rcpts"]:
    code, resp = s.rcpt(rcpt, opts)
    assert code == 250, (rcpt, code, resp)
code, resp = s.data(spec["message"])  # str: smtplib makes the line ends CRLF
assert code == 250, (code, resp)
s.quit()
"#;

/// Submits `message` with smtplib: MAIL options, and (recipient, RCPT options) pairs.
fn smtplib(port: u16, mail_options: &[&str], rcpts: &[(&str, &[&str])], message: &str) {
    let spec = serde_json::json!({
        "port": port,
        "from": "sender@test.example",
        "mail_options": mail_options,
        "rcpts": rcpts,
        "message": message,
    });
    python(SMTPLIB_PY, &[&spec.to_string()], b"");
}

/// The recipient block of `dsn` whose Final-Recipient is `address`.
fn block<'a>(dsn: &'a serde_json::Value, address: &str) -> &'a serde_json::Value {
    let want = format!("rfc822; {address}");
    dsn["recipients"]
        .as_array()
        .and_then(|b| b.iter().find(|b| field(b, "Final-Recipient") == want))
        .unwrap_or_else(|| panic!("no block for {address}: {dsn}"))
}

#[test]
fn notify_success_gives_a_success_notice_with_envid_and_orcpt() {
    let peer = Peer::start();
    let world = World::builder().smtp().peer(&peer).start();
    smtplib(
        world.port,
        &["ENVID=env-success-42"],
        &[(
            "someone@far.example",
            &["NOTIFY=SUCCESS", "ORCPT=rfc822;Original@far.example"],
        )],
        &message("wants-a-receipt"),
    );
    world.env.wait_mbox("sender", 1);
    world.env.wait_queue_empty();
    assert_eq!(peer.delivered_to(), ["someone@far.example"]);

    let notices = world.env.mbox_messages("sender");
    assert_eq!(notices.len(), 1, "one success notice");
    assert!(notices[0].from_line.starts_with("MAILER-DAEMON "));
    let dsn = parse_dsn(&notices[0].raw);
    assert_eq!(dsn["content_type"], "multipart/report", "{dsn}");
    assert_eq!(dsn["report_type"], "delivery-status", "{dsn}");
    assert!(
        field(&dsn, "subject").contains("Successful"),
        "subject: {dsn}"
    );
    assert_eq!(
        field(&dsn["per_message"], "Original-Envelope-Id"),
        "env-success-42",
        "{dsn}"
    );
    assert_eq!(
        field(&dsn["per_message"], "Reporting-MTA"),
        "dns; test.example"
    );
    let b = block(&dsn, "someone@far.example");
    assert_eq!(field(b, "Action"), "relayed", "{dsn}");
    assert!(field(b, "Status").starts_with("2."), "{dsn}");
    assert_eq!(
        field(b, "Original-Recipient"),
        "rfc822;Original@far.example",
        "{dsn}"
    );
    assert_eq!(field(b, "Remote-MTA"), "dns; 127.0.0.1", "{dsn}");
    // A success notice returns no content, at most the headers.
    assert!(!field(&dsn, "returned").contains("body of wants-a-receipt"));
}

#[test]
fn notify_never_means_no_bounce_and_ret_hdrs_returns_headers_only() {
    let peer = Peer::start_with(
        OnConnect::Greet,
        Arc::new(|rcpt: &str| {
            format!("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown")
        }),
    );
    let world = World::builder().smtp().peer(&peer).start();
    // (1) NOTIFY=NEVER only: bounced in the log, nothing to the sender.
    smtplib(
        world.port,
        &[],
        &[("quiet@far.example", &["NOTIFY=NEVER"])],
        &message("never-tell-me"),
    );
    world.wait_lines(&["to=<quiet@far.example>", "status=bounced"], 1);
    // (2) RET=HDRS, ENVID, one NEVER and one FAILURE recipient with ORCPT.
    smtplib(
        world.port,
        &["RET=HDRS", "ENVID=env-hdrs-7"],
        &[
            ("quiet2@far.example", &["NOTIFY=NEVER"]),
            (
                "loud@far.example",
                &["NOTIFY=FAILURE", "ORCPT=rfc822;Loud.Original@far.example"],
            ),
        ],
        &message("headers-only"),
    );
    world.env.wait_mbox("sender", 1);
    world.env.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(500));

    let bounces = world.env.mbox_messages("sender");
    assert_eq!(
        bounces.len(),
        1,
        "only the FAILURE recipient's bounce, nothing for NOTIFY=NEVER"
    );
    let dsn = parse_dsn(&bounces[0].raw);
    let blocks = dsn["recipients"].as_array().unwrap();
    assert_eq!(
        blocks.len(),
        1,
        "the NEVER recipient is not reported: {dsn}"
    );
    let b = block(&dsn, "loud@far.example");
    assert_eq!(field(b, "Action"), "failed");
    assert_eq!(field(b, "Status"), "5.1.1");
    assert_eq!(
        field(b, "Original-Recipient"),
        "rfc822;Loud.Original@far.example"
    );
    assert_eq!(
        field(&dsn["per_message"], "Original-Envelope-Id"),
        "env-hdrs-7"
    );
    assert_eq!(
        dsn["parts"],
        serde_json::json!([
            "text/plain",
            "message/delivery-status",
            "text/rfc822-headers"
        ]),
        "RET=HDRS: headers only: {dsn}"
    );
    let returned = field(&dsn, "returned");
    assert!(returned.contains("Subject: headers-only"), "{dsn}");
    assert!(!returned.contains("body of headers-only"), "{dsn}");
    assert!(
        world
            .lines_with(&["to=<quiet2@far.example>", "status=bounced"])
            .len()
            == 1
    );
}

#[test]
fn delay_warning_time_sends_one_delayed_notice_not_two() {
    let peer = Peer::start_with(
        OnConnect::Greet,
        rcpt_reply("450 4.2.1 <slow@far.example>: mailbox busy"),
    );
    let world = World::builder()
        .smtp()
        .peer(&peer)
        .config("delay_warning_time = \"1s\"\n")
        .start();
    world.submit(
        "sender@test.example",
        &["slow@far.example"],
        &message("slow-one"),
    );
    // Attempts at about 0, 1 and 3 s: the second is past delay_warning_time and warns; the
    // third is too, and must not warn again.
    world.env.wait_mbox("sender", 1);
    world.wait_lines(&["to=<slow@far.example>", "status=deferred"], 3);
    std::thread::sleep(Duration::from_millis(300)); // a second notice would be queued by now
    world.wait_lines(&["to=<sender@test.example>", "status=sent"], 1);
    let notices = world.env.mbox_messages("sender");
    assert_eq!(notices.len(), 1, "exactly one delayed notice");
    assert_eq!(
        world
            .lines_with(&["sender delayed mail notification"])
            .len(),
        1
    );
    let d = parse_dsn(&notices[0].raw);
    assert!(notices[0].from_line.starts_with("MAILER-DAEMON "));
    assert_eq!(d["content_type"], "multipart/report", "{d}");
    assert!(field(&d, "subject").contains("Delayed"), "{d}");
    assert!(
        field(&d, "human").contains("WARNING"),
        "says it is only a warning: {d}"
    );
    let b = block(&d, "slow@far.example");
    assert_eq!(field(b, "Action"), "delayed", "{d}");
    assert!(field(b, "Status").starts_with("4."), "{d}");
    // Still queued and retried: a warning is not a bounce.
    let queue = world.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert!(
        matches!(queue[0].0.as_str(), "deferred" | "active"),
        "kept for the next retry: {queue:?}"
    );
}
