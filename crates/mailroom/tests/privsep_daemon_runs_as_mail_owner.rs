//! Started as root, the daemon that speaks SMTP and owns the queue runs as `mail_owner`
//! with no capabilities; only its local delivery helper keeps root. The queue it writes
//! cannot be read by an ordinary user, and a `mail_owner` that does not exist stops the
//! start (78) instead of leaving everything running as root.

use std::fs;
use std::net::TcpStream;
use std::process::Stdio;
use testkit::privsep::*;
use testkit::*;

#[test]
fn smtp_facing_process_has_mail_owners_ids_and_no_capabilities() {
    let Some(p) = setup("") else { return };
    let daemon = p.env.start();
    let pid = daemon.pid();
    // The process we started is the one that answers on the SMTP port.
    let mut banner = String::new();
    let mut stream = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    std::io::Read::read_to_string(&mut std::io::Read::take(&mut stream, 3), &mut banner).unwrap();
    assert_eq!(banner, "220");
    let (uid, gid) = p.owner;
    assert_eq!(status_field(pid, "Uid"), format!("{uid} {uid} {uid} {uid}"));
    assert_eq!(status_field(pid, "Gid"), format!("{gid} {gid} {gid} {gid}"));
    assert_eq!(status_field(pid, "Groups"), gid.to_string());
    assert_eq!(status_field(pid, "CapEff"), "0000000000000000");
    assert_eq!(status_field(pid, "CapPrm"), "0000000000000000");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    // The helper is the one process that keeps root.
    let helper = helper_pid(pid).expect("a local-helper child");
    assert_eq!(status_field(helper, "Uid"), "0 0 0 0");
    let log = p.env.log();
    assert!(
        log.contains(&format!("privileges dropped to mail_owner {OWNER}")),
        "{log}"
    );
}

#[test]
fn queue_cannot_be_read_by_an_ordinary_user() {
    // Remote mail to a dead port stays queued (deferred).
    let dead = free_port();
    let Some(p) = setup(&format!("relayhost = \"[127.0.0.1]:{dead}\"\n")) else {
        return;
    };
    let _daemon = p.env.start();
    send_smtp(
        p.port,
        "someone@remote.example",
        "secret-queue-content-4711",
    );
    p.env.wait_log("status=deferred", 1);
    let store = p.env.queue_dir().join("store");
    let segments: Vec<_> = fs::read_dir(&store)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|path| path.extension().is_some_and(|x| x == "seg"))
        .collect();
    assert!(!segments.is_empty(), "no segment in {}", store.display());
    for segment in &segments {
        assert_eq!(
            owner_of(segment),
            p.owner.0,
            "{} not mail_owner's",
            segment.display()
        );
    }
    // Root sees the message in the store; the ordinary user can neither list nor read it.
    let content: Vec<u8> = segments.iter().flat_map(|s| fs::read(s).unwrap()).collect();
    assert!(find(&content, b"secret-queue-content-4711").is_some());
    let list = as_user(&p, &["ls", store.to_str().unwrap()]);
    assert!(!list.status.success(), "ls of the store succeeded");
    let read = as_user(&p, &["cat", segments[0].to_str().unwrap()]);
    assert!(!read.status.success(), "cat of a segment succeeded");
    assert!(String::from_utf8_lossy(&read.stderr).contains("Permission denied"));
    let postcat = as_user(
        &p,
        &[
            bin(),
            "-c",
            p.env.config.to_str().unwrap(),
            "postcat",
            "-q",
            "ALL",
        ],
    );
    assert!(find(&postcat.stdout, b"secret-queue-content-4711").is_none());
}

#[test]
fn missing_mail_owner_refuses_to_start_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "mail_owner = \"mailroom-no-such-user\"\nsmtpd_listen = [\"127.0.0.1:{port}\"]\n"
    ));
    let out = env
        .command()
        .arg("serve")
        .stdin(Stdio::null())
        .output()
        .expect("serve");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("mailroom: fatal: mail_owner \"mailroom-no-such-user\" is not a user")
            && stderr.contains("refusing to run as root"),
        "{stderr}"
    );
    // Nothing was started: no listener, no queue.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!env.queue_dir().join("store").exists());
}

#[test]
fn check_is_clean_after_a_separated_start_and_a_delivery() {
    let Some(p) = setup("") else { return };
    let _daemon = p.env.start();
    send_smtp(p.port, &format!("{USER}@localhost"), "check-me-8");
    p.env.wait_log("status=sent", 1);
    let out = p.env.run(&["check"], b"");
    assert_success(&out, "mailroom check");
}

#[test]
fn start_as_root_returns_once_the_separated_daemon_is_ready_and_stop_ends_it() {
    // The daemon sends READY=1 after it has become mail_owner: start's socket must let it.
    let Some(p) = setup("") else { return };
    let started = p.env.run(&["start"], b"");
    let stderr = String::from_utf8_lossy(&started.stderr).into_owned();
    let status = p.env.run(&["status"], b"");
    let stopped = p.env.run(&["stop"], b"");
    assert_eq!(started.status.code(), Some(0), "start: {stderr}");
    assert_eq!(status.status.code(), Some(0), "status after start");
    assert_eq!(stopped.status.code(), Some(0), "stop");
    assert!(
        p.env
            .log()
            .contains(&format!("privileges dropped to mail_owner {OWNER}")),
        "{}",
        p.env.log()
    );
}
