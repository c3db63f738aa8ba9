//! Connection-level limits: too many connections from one IP and in all, idle clients timing
//! out (between commands and inside DATA), TLS handshake garbage, clients that vanish. Each
//! gets its reply code or a clean close, and the daemon keeps serving the others.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use testkit::*;

fn greeted(port: u16, source: Ipv4Addr) -> Client {
    let mut c = Client::connect_from(source, port);
    c.expect(220, "ESMTP");
    c
}

fn refused(port: u16, source: Ipv4Addr, code: u16, needle: &str) {
    let mut c = Client::connect_from(source, port);
    c.expect(code, needle);
    assert!(c.is_closed(), "connection left open after {code}");
}

#[test]
fn too_many_connections_per_ip_and_in_all() {
    let smtp = World::started(
        "smtpd_client_connection_count_limit = 3\nsmtpd_process_limit = 5\nsmtpd_client_event_limit_exceptions = []",
    );
    let local = Ipv4Addr::LOCALHOST;
    let mut held: Vec<Client> = (0..3).map(|_| greeted(smtp.port, local)).collect();
    refused(
        smtp.port,
        local,
        421,
        "4.7.0 test.example Error: too many connections from 127.0.0.1",
    );
    held.push(greeted(smtp.port, Ipv4Addr::new(127, 0, 0, 2)));
    held.push(greeted(smtp.port, Ipv4Addr::new(127, 0, 0, 3)));
    refused(smtp.port, Ipv4Addr::new(127, 0, 0, 4), 421, "4.3.2");
    smtp.env.wait_log(
        "Connection concurrency limit exceeded: 4 from unknown[127.0.0.1] for service smtp",
        1,
    );
    // A session that ends gives its slot back.
    held[0].ok("QUIT", 221);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut c = Client::connect(smtp.port);
        let reply = c.reply();
        if reply.code == 220 {
            c.ok("QUIT", 221);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slot never released: {}",
            reply.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for mut c in held.drain(1..) {
        c.ok("NOOP", 250);
    }
}

#[test]
fn idle_clients_time_out() {
    let smtp = World::started("smtpd_timeout = \"2s\"");
    let mut idle = smtp.client();
    idle.expect(220, "");
    let mut in_data = smtp.client();
    in_data.start_transaction("slow@example.org", &["alice@localhost"]);
    in_data.ok("DATA", 354);
    in_data.send(b"Subject: never finished\r\n\r\npart");
    let started = Instant::now();
    idle.expect(421, "4.4.2 test.example Error: timeout exceeded");
    assert!(idle.is_closed());
    in_data.expect(421, "4.4.2");
    assert!(in_data.is_closed());
    assert!(started.elapsed() < scaled_by_load(Duration::from_secs(20)));
    smtp.env
        .wait_log("timeout after CONNECT from unknown[127.0.0.1]", 1);
    smtp.env
        .wait_log("timeout after DATA from unknown[127.0.0.1]", 1);
    let mut c = smtp.client();
    c.start_transaction("quick@example.org", &["alice@localhost"]);
    c.ok("DATA", 354);
    c.send(b"Subject: quick\r\n\r\nok\r\n.\r\n");
    c.expect(250, "queued as");
    c.ok("QUIT", 221);
    smtp.env.wait_mbox("alice", 1);
    let subjects: Vec<_> = smtp
        .env
        .mbox_messages("alice")
        .into_iter()
        .filter_map(|m| m.subject)
        .collect();
    assert_eq!(subjects, ["quick"]);
}

#[test]
fn tls_handshake_garbage_and_vanishing_clients() {
    let smtp = World::started("smtpd_timeout = \"5s\"");
    // Garbage instead of a ClientHello after STARTTLS: the server gives up on this client.
    let mut c = smtp.client();
    c.expect(220, "");
    c.ok("EHLO garbage.test", 250);
    c.ok("STARTTLS", 220);
    c.send(b"\x16\x03\x01\x00\x05garbage that is not TLS at all\r\n");
    assert!(c.is_closed());
    smtp.env
        .wait_log("TLS handshake failed from unknown[127.0.0.1]", 1);
    // A TLS client on the plain port without STARTTLS fails on its side, quickly.
    let out = smtplib(
        r#"
import socket
ctx = ssl._create_unverified_context()
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
try:
    ctx.wrap_socket(raw)
    print("handshake succeeded?!")
except (ssl.SSLError, OSError) as e:
    print("tls failed")
"#,
        &[&smtp.port.to_string()],
    );
    assert_eq!(out.trim(), "tls failed");
    // A client that drops the connection in the middle of DATA: nothing is queued.
    let mut gone = smtp.client();
    gone.start_transaction("gone@example.org", &["alice@localhost"]);
    gone.ok("DATA", 354);
    gone.send(b"Subject: half\r\n\r\nhalf a message");
    drop(gone);
    smtp.env
        .wait_log("lost connection after DATA from unknown[127.0.0.1]", 1);
    // Everyone else is still served, with TLS too.
    let out = smtplib(
        r#"
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
s.starttls(context=ssl._create_unverified_context())
s.sendmail("ok@example.org", ["alice@localhost"], "Subject: after\r\n\r\nfine\r\n")
s.quit()
print("sent")
"#,
        &[&smtp.port.to_string()],
    );
    assert_eq!(out.trim(), "sent");
    smtp.env.wait_mbox("alice", 1);
    let subjects: Vec<_> = smtp
        .env
        .mbox_messages("alice")
        .into_iter()
        .filter_map(|m| m.subject)
        .collect();
    assert_eq!(subjects, ["after"]);
}

/// A regression: the smtp and submission listeners shared one `smtpd_process_limit`, so
/// clients holding the submission port (a password-guessing flood) took every slot of port
/// 25 too. As each Postfix master.cf service has its own process limit, each listener role
/// has its own slots now.
#[test]
fn a_full_submission_service_leaves_port_25_its_own_slots() {
    let submission = free_port();
    let mut smtp = World::new(&format!(
        "smtpd_process_limit = 3\nsubmission_listen = [\"127.0.0.1:{submission}\"]"
    ));
    smtp.start();
    smtp.env.wait_log("listening on", 2);
    let held: Vec<Client> = (2..5)
        .map(|n| greeted(submission, Ipv4Addr::new(127, 0, 0, n)))
        .collect();
    refused(submission, Ipv4Addr::new(127, 0, 0, 9), 421, "4.3.2");
    let mut c = greeted(smtp.port, Ipv4Addr::LOCALHOST);
    c.ok("QUIT", 221);
    drop(held);
}
