//! Issue 13 part 1: `check_policy_service` speaks Postfix's policy delegation protocol to a
//! real policy server, Debian's `postgrey` (started on a loopback port with its own
//! database directory and a short `--delay`): the first attempt is greylisted (450, from
//! its `DEFER_IF_PERMIT`), a retry after the delay is accepted and delivered. The connection
//! to it is kept and reused by later sessions, and closed after
//! `smtpd_policy_service_max_idle`. A policy server that is down is tried
//! `smtpd_policy_service_try_limit` times, then answers Postfix's `451 4.3.5 Server
//! configuration problem`.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use testkit::*;

/// postgrey on `port`, killed on drop.
struct Postgrey(Child);

impl Postgrey {
    fn start(port: u16, dbdir: &Path) -> Option<Postgrey> {
        let program = Path::new("/usr/sbin/postgrey");
        if !program.exists() {
            return None;
        }
        let child = Command::new(program)
            .arg(format!("--inet=127.0.0.1:{port}"))
            .arg(format!("--dbdir={}", dbdir.display()))
            .args(["--delay=2", "--user=root", "--group=root"])
            .arg(format!("--pidfile={}/postgrey.pid", dbdir.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgrey");
        let server = Postgrey(child);
        wait_until("postgrey listening", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(server)
    }
}

impl Drop for Postgrey {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn world(policy_port: u16) -> World {
    world_with(policy_port, "smtpd_policy_service_timeout = \"10s\"\n")
}

fn world_with_timeout(policy_port: u16, timeout: &str) -> World {
    world_with(
        policy_port,
        &format!("smtpd_policy_service_timeout = \"{timeout}\"\n"),
    )
}

fn world_with(policy_port: u16, extra: &str) -> World {
    World::started(&format!(
        "smtpd_recipient_restrictions = \"permit_sasl_authenticated, reject_unauth_destination, check_policy_service inet:127.0.0.1:{policy_port}\"\n{extra}"
    ))
}

/// The local ports of our established connections to `port` (/proc/net/tcp, IPv4).
fn connections_to(port: u16) -> Vec<u16> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let hex_port = |address: &str| {
        let port = address.rsplit(':').next().unwrap_or("");
        u16::from_str_radix(port, 16).unwrap_or(0)
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let established = fields.get(3) == Some(&"01");
            (established && hex_port(fields[2]) == port).then(|| hex_port(fields[1]))
        })
        .collect()
}

fn postgrey(dbdir: &Path, port: u16) -> Option<Postgrey> {
    if !is_root() {
        eprintln!("skipped: postgrey is started as root here (its --user=root)");
        return None;
    }
    let Some(server) = Postgrey::start(port, dbdir) else {
        panic!("postgrey is not installed (scripts/test.sh installs it)");
    };
    Some(server)
}

/// One attempt from a stranger: the RCPT reply, and with 250 the message is sent.
fn attempt(w: &World, subject: &str) -> Reply {
    attempt_as(w, "sender", subject)
}

/// The same from `sender`@example.org: a new sender is a new greylist triplet, so
/// postgrey defers it whatever time has passed since an earlier attempt (its delay
/// being over must not turn an expected 450 into a 250 on a slow machine).
fn attempt_as(w: &World, sender: &str, subject: &str) -> Reply {
    let mut c = Client::connect_from(Ipv4Addr::new(127, 0, 0, 2), w.port);
    c.expect(220, "");
    c.ok("EHLO client.example.org", 250);
    c.ok(&format!("MAIL FROM:<{sender}@example.org>"), 250);
    let reply = c.cmd("RCPT TO:<alice@test.example>");
    if reply.code == 250 {
        c.ok("DATA", 354);
        c.send(format!("Subject: {subject}\r\n\r\nbody\r\n.\r\n").as_bytes());
        c.expect(250, "queued as");
    }
    c.ok("QUIT", 221);
    reply
}

#[test]
fn postgrey_defers_the_first_attempt_and_accepts_a_retry_after_the_delay() {
    if !is_root() {
        eprintln!("skipped: postgrey is started as root here (its --user=root)");
        return;
    }
    let dbdir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(_postgrey) = Postgrey::start(port, dbdir.path()) else {
        panic!("postgrey is not installed (scripts/test.sh installs it)");
    };
    let w = world(port);
    let first = attempt(&w, "first");
    assert_eq!(first.code, 450, "{}", first.text());
    assert!(
        first
            .text()
            .contains("<alice@test.example>: Recipient address rejected: Greylisted"),
        "{}",
        first.text()
    );
    w.env
        .wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 450 4.", 1);
    // A retry before the delay is greylisted again; after it, postgrey lets it through.
    let mut tries = 0;
    let accepted = poll_every(Duration::from_millis(500), DEADLINE, || {
        tries += 1;
        attempt(&w, "retry").code == 250
    });
    assert!(accepted, "never accepted after {tries} retries");
    w.env.wait_mbox("alice", 1);
    let messages = w.env.mbox_messages("alice");
    assert_eq!(messages[0].subject.as_deref(), Some("retry"));
    // postgrey's PREPEND of its delay header reached the message.
    assert!(
        messages[0].headers().contains("X-Greylist: delayed"),
        "{}",
        messages[0].headers()
    );
}

#[test]
fn a_policy_server_that_is_down_answers_451_4_3_5() {
    let w = world(free_port());
    let reply = attempt(&w, "never");
    assert_eq!(
        reply.text(),
        "451 4.3.5 <alice@test.example>: Recipient address rejected: Server configuration problem"
    );
    w.env
        .wait_log("warning: problem talking to server inet:127.0.0.1:", 1);
    w.env.wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 451 4.3.5 <alice@test.example>: Recipient address rejected: Server configuration problem; from=<sender@example.org> to=<alice@test.example> proto=ESMTP helo=<client.example.org>", 1);
    assert!(w.queue().is_empty());
}

#[test]
fn a_policy_server_that_never_answers_times_out_to_451_4_3_5() {
    // Connections are queued by the kernel but never accepted nor answered.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let w = world_with_timeout(silent.local_addr().unwrap().port(), "1s");
    let reply = attempt(&w, "never");
    assert_eq!(
        reply.text(),
        "451 4.3.5 <alice@test.example>: Recipient address rejected: Server configuration problem"
    );
    w.env
        .wait_log("problem talking to server inet:127.0.0.1:", 1);
    let warning = &w.env.log_lines("problem talking to server")[0];
    assert!(warning.ends_with(": timeout"), "{warning}");
}

#[test]
fn the_policy_connection_is_kept_across_sessions() {
    let dbdir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(_postgrey) = postgrey(dbdir.path(), port) else {
        return;
    };
    let w = world(port);
    assert_eq!(attempt(&w, "one").code, 450);
    // One connection stays open after the session (a connection per query would be
    // closed by now), and the next sessions use that same one.
    wait_until("one kept policy connection", || {
        connections_to(port).len() == 1
    });
    let kept = connections_to(port);
    for subject in ["two", "three"] {
        assert_eq!(attempt_as(&w, subject, subject).code, 450);
    }
    assert_eq!(
        connections_to(port),
        kept,
        "the kept connection was not reused"
    );
}

#[test]
fn an_idle_policy_connection_is_closed_after_max_idle() {
    let dbdir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(_postgrey) = postgrey(dbdir.path(), port) else {
        return;
    };
    let w = world_with(port, "smtpd_policy_service_max_idle = \"1s\"\n");
    assert_eq!(attempt(&w, "one").code, 450);
    wait_until("the idle policy connection closed", || {
        connections_to(port).is_empty()
    });
    // The next query opens a new one and is answered as usual.
    assert_eq!(attempt_as(&w, "two", "two").code, 450);
}

#[test]
fn a_policy_server_that_is_down_is_tried_try_limit_times() {
    let port = free_port();
    let w = world_with(
        port,
        "smtpd_policy_service_try_limit = 3\nsmtpd_policy_service_retry_delay = \"0s\"\n",
    );
    let reply = attempt(&w, "never");
    assert_eq!(reply.code, 451, "{}", reply.text());
    w.env.wait_log(
        &format!("warning: problem talking to server inet:127.0.0.1:{port}: Connection refused"),
        1,
    );
    w.env.wait_log(
        &format!("warning: policy server inet:127.0.0.1:{port}: no answer after 3 attempts"),
        1,
    );
    w.env.wait_log(
        "NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 451 4.3.5",
        1,
    );
}
