//! Slow clients cannot hold every connection slot (issue 8, defect 4). 100 connections from
//! two IPs sending one byte every 5 s used to hold all `smtpd_process_limit` slots, and
//! everyone else got 421. Now, from 80 % of the limit, Postfix's stress-adaptive limits
//! apply (a whole command line within `${stress?{10}:{300}}s`, one error, one junk
//! command), a client that finds every slot taken gets the slot of the session that has
//! stalled longest, and every session ends at `smtpd_session_deadline`. The daemon's peak
//! RSS is printed (VmHWM) and bounded.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::*;

/// 100 connections (50 from 127.0.0.2, 50 from 127.0.0.3), each reading the greeting and
/// then writing one byte of `NOOP\r\n` every 5 s and reconnecting when the server drops it, for `seconds`. Prints
/// how many connections were made.
const DRIP_PY: &str = r#"
import socket, sys, threading, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
end = time.time() + seconds
made = [0]
lock = threading.Lock()
def drip(n):
    while time.time() < end:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                         source_address=("127.0.0.%d" % (2 + n % 2), 0))
            with lock:
                made[0] += 1
            s.recv(1024)  # the greeting (talking first would be a pipelining violation)
            i = 0
            while time.time() < end:
                time.sleep(5)
                s.sendall(b"NOOP\r\n"[i % 6:i % 6 + 1])
                i += 1
            s.close()
        except OSError:
            time.sleep(0.2)
threads = [threading.Thread(target=drip, args=(n,)) for n in range(100)]
for t in threads: t.start()
for t in threads: t.join()
print(made[0])
"#;

fn peak_rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Sends one message as a normal client, retrying a refused connection; returns how long
/// it took until the message was queued.
fn normal_client(smtp: &World, subject: &str) -> Duration {
    let started = Instant::now();
    loop {
        let mut c = Client::connect(smtp.port);
        let greeting = c.reply();
        if greeting.code == 220 {
            c.ok("EHLO normal.example", 250);
            c.ok("MAIL FROM:<normal@example.org>", 250);
            c.ok("RCPT TO:<alice@localhost>", 250);
            c.ok("DATA", 354);
            c.send(format!("Subject: {subject}\r\n\r\nhi\r\n.\r\n").as_bytes());
            c.expect(250, "queued as");
            c.ok("QUIT", 221);
            return started.elapsed();
        }
        assert_eq!(greeting.code, 421, "{}", greeting.text());
        assert!(
            started.elapsed() < DEADLINE,
            "never served during the attack"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn slow_drip_clients_do_not_lock_out_a_normal_client() {
    let mut smtp = World::new("");
    smtp.start();
    let pid = smtp.daemon.as_ref().expect("daemon").pid();
    let drip = Command::new("python3")
        .args(["-c", DRIP_PY, &smtp.port.to_string(), "16"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    smtp.env.wait_log("stress-adaptive limits on", 1);
    std::thread::sleep(Duration::from_secs(3));
    let first = normal_client(&smtp, "during the attack");
    // Later, after the stress deadline (10 s) has cut the first wave of drippers.
    std::thread::sleep(Duration::from_secs(8));
    let second = normal_client(&smtp, "later in the attack");
    let out = drip.wait_with_output().expect("drip");
    let made: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("count");
    let peak = peak_rss_kb(pid);
    println!(
        "normal client served in {first:?} and {second:?} during the attack; {made} drip connections; daemon peak RSS (VmHWM) {peak} kB"
    );
    // 5 s on an idle box, stretched by the load (CI's 2 cores are shared).
    let limit = scaled_by_load(Duration::from_secs(5));
    assert!(first < limit, "first normal client waited {first:?}");
    assert!(second < limit, "second normal client waited {second:?}");
    assert!(made >= 100, "the attack did not run: {made} connections");
    assert!(peak < 200 * 1024, "peak RSS {peak} kB");
    smtp.env.wait_mbox("alice", 2);
    // Both lines are written after the 421 to the dripper: wait for them.
    // A stalled session made room:
    smtp.env
        .wait_log("slot given to a new client under stress", 1);
    // The stress deadline cut drippers:
    smtp.env.wait_log("timeout after", 1);
}

/// `smtpd_per_request_deadline`: one byte a second never times out a read of 3 s, but the
/// whole command line must arrive within `smtpd_timeout`.
#[test]
fn a_per_request_deadline_cuts_a_trickled_command() {
    let smtp = World::started("smtpd_timeout = 3\nsmtpd_per_request_deadline = true");
    let mut c = smtp.client();
    c.expect(220, "");
    let started = Instant::now();
    let mut closed = false;
    for byte in b"NOOP\r\n" {
        if c.try_send(&[*byte]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let reply = c.try_reply();
    assert!(
        closed || matches!(&reply, Ok(r) if r.code == 421),
        "trickled NOOP was answered: {reply:?}"
    );
    if let Ok(reply) = reply {
        assert!(reply.text().contains("4.4.2"), "{}", reply.text());
    }
    assert!(started.elapsed() < scaled_by_load(Duration::from_secs(10)));
    smtp.env
        .wait_log("timeout after CONNECT from unknown[127.0.0.1]", 1);
}

/// `smtpd_session_deadline`: a client that keeps a message going slowly but steadily (a
/// line a second, each read well within `smtpd_timeout`) is ended at the deadline.
#[test]
fn a_session_ends_at_its_deadline_whatever_it_sends() {
    let smtp = World::started("smtpd_session_deadline = 3");
    let mut c = smtp.client();
    c.start_transaction("slow@example.org", &["alice@localhost"]);
    c.ok("DATA", 354);
    let started = Instant::now();
    // The deadline is 3 s; on a loaded box the daemon's timer and close come later.
    let (give_up, ended_by) = (
        scaled_by_load(Duration::from_secs(10)),
        scaled_by_load(Duration::from_secs(8)),
    );
    while started.elapsed() < give_up {
        if c.try_send(b"a line of a slow message\r\n").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(started.elapsed() < ended_by, "not ended at the deadline");
    smtp.env
        .wait_log("timeout after DATA from unknown[127.0.0.1]", 1);
    assert_eq!(
        smtp.env.count_mbox("alice"),
        0,
        "nothing half-received is queued"
    );
}
