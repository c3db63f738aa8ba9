//! The SMTP server across the daemon's life: a SIGTERM while sessions are open (idle ones
//! get 421 4.3.2, a DATA in progress is finished and acknowledged only once durable, and it
//! is delivered after the restart), the disk guard (452 4.3.1), and a `pflogsumm` report of
//! the log that counts what happened.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use testkit::*;

#[test]
fn sigterm_closes_idle_sessions_and_finishes_data_in_progress() {
    let mut smtp = World::started("");
    let mut idle = smtp.client();
    idle.expect(220, "");
    idle.ok("EHLO idle.test", 250);
    let mut busy = smtp.client();
    busy.start_transaction("busy@example.org", &["alice@localhost"]);
    busy.ok("DATA", 354);
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n");
    // Make sure the DATA has begun on the server before the stop.
    std::thread::sleep(Duration::from_millis(200));
    smtp.daemon.as_ref().unwrap().signal(libc::SIGTERM);
    idle.expect(421, "4.3.2 test.example Service shutting down");
    assert!(idle.is_closed());
    busy.send(b"second half\r\n.\r\n");
    let queued = busy.expect(250, "queued as");
    busy.ok("NOOP", 421);
    assert!(busy.is_closed());
    let status = smtp
        .daemon
        .as_mut()
        .unwrap()
        .wait_exit(DEADLINE)
        .expect("daemon exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", smtp.port)).is_err(),
        "port still open"
    );
    // What was acknowledged is delivered, after the restart at the latest.
    smtp.start();
    smtp.env.wait_mbox("alice", 1);
    let m = &smtp.env.mbox_messages("alice")[0];
    assert_eq!(m.subject.as_deref(), Some("in flight"));
    assert_eq!(m.body(), b"first half\nsecond half\n");
    let id = queued.text().rsplit(' ').next().unwrap().to_string();
    assert!(m.header("Received").unwrap_or_default().contains(&id));
}

#[test]
fn below_queue_minfree_mail_is_refused_temporarily() {
    let smtp = World::started("queue_minfree = \"1000000G\"");
    let mut c = smtp.client();
    c.expect(220, "");
    c.ok("EHLO full.test", 250);
    let reply = c.cmd("MAIL FROM:<a@example.org>");
    assert_eq!(reply.text(), "452 4.3.1 Insufficient system storage");
    c.ok("QUIT", 221);
    smtp.env.wait_log(
        "NOQUEUE: reject: MAIL from unknown[127.0.0.1]: 452 4.3.1 Insufficient system storage",
        1,
    );
}

#[test]
fn pflogsumm_counts_received_delivered_and_rejected() {
    let smtp = World::started("");
    for i in 0..3 {
        let mut c = smtp.client();
        c.start_transaction("counted@example.org", &["alice@localhost"]);
        c.ok("DATA", 354);
        c.send(format!("Subject: {i}\r\n\r\nbody\r\n.\r\n").as_bytes());
        c.expect(250, "queued as");
        c.ok("QUIT", 221);
    }
    let mut stranger = Client::connect_from(Ipv4Addr::new(127, 0, 0, 2), smtp.port);
    stranger.start_transaction("spam@example.org", &[]);
    stranger.ok("RCPT TO:<victim@elsewhere.example>", 454);
    stranger.ok("QUIT", 221);
    smtp.env.wait_mbox("alice", 3);
    smtp.env.wait_log("status=sent", 3);
    smtp.env.wait_log("disconnect from", 4);
    let out = Command::new("pflogsumm")
        .arg("--syslog-name=mailroom")
        .arg(smtp.env.log_file())
        .output()
        .expect("run pflogsumm (apt package pflogsumm)");
    assert_success(&out, "pflogsumm");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |label: &str| -> u64 {
        report
            .lines()
            .find(|l| {
                l.trim_start()
                    .split_once("  ")
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with(label))
            })
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} line in the pflogsumm report:\n{report}"))
    };
    assert_eq!(count("received"), 3, "{report}");
    assert_eq!(count("delivered"), 3, "{report}");
    assert_eq!(count("rejected"), 1, "{report}");
    // Not checked: `--smtpd-stats` pairs connect/disconnect lines by PID, which assumes a
    // process per session; ours are tasks of one process, so overlapping sessions mis-pair.
}
