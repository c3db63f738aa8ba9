//! A milter's `SMFIR_SHUTDOWN` does what it does in Postfix: smtpd answers the command
//! it came at with `421 4.7.0 Server closing connection` and ends the session (at connect
//! the greeting is `421 HOST Service unavailable - try again later`); a message refused
//! that way is not queued. For `non_smtpd_milters` (pickup, Postfix's cleanup) it is a
//! tempfail: the message stays in `maildrop/`.
//!
//! Why not pymilter here, as the other milter tests use: Sendmail's libmilter (under
//! pymilter) has no callback return that sends `SMFIR_SHUTDOWN` (its `SMFIS_*` codes are
//! continue, reject, discard, accept, tempfail, noreply, skip), so no libmilter milter can
//! send it. The milter here is a small server in the test speaking the wire protocol over a
//! real TCP socket: it negotiates version 6 asking for every stage, continues at each one,
//! and answers `SMFIR_SHUTDOWN` (`'4'`) at the one stage it is told.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use testkit::*;

/// A wire-protocol milter that shuts down at the command byte `at` (`b'C'` connect,
/// `b'M'` MAIL, `b'E'` end of message); records every command byte it got (macros too).
struct ShutdownMilter {
    port: u16,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl ShutdownMilter {
    fn start(at: u8) -> ShutdownMilter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = record.clone();
                std::thread::spawn(move || serve(stream, at, &record));
            }
        });
        ShutdownMilter { port, seen }
    }

    fn seen(&self) -> Vec<u8> {
        self.seen.lock().unwrap().clone()
    }
}

fn packet(code: u8, data: &[u8]) -> Vec<u8> {
    let mut out = ((data.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(code);
    out.extend_from_slice(data);
    out
}

fn serve(mut stream: TcpStream, at: u8, seen: &Mutex<Vec<u8>>) {
    loop {
        let mut header = [0u8; 4];
        if stream.read_exact(&mut header).is_err() {
            return;
        }
        let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
        if body.is_empty() || stream.read_exact(&mut body).is_err() {
            return;
        }
        let code = body[0];
        seen.lock().unwrap().push(code);
        let reply = match code {
            // Version 6, no actions, protocol flags 0: every stage, every reply.
            b'O' => {
                let mut data = 6u32.to_be_bytes().to_vec();
                data.extend_from_slice(&0u32.to_be_bytes());
                data.extend_from_slice(&0u32.to_be_bytes());
                packet(b'O', &data)
            }
            // Macros and abort are not answered.
            b'D' | b'A' => continue,
            b'Q' => return,
            c if c == at => packet(b'4', &[]),
            b'E' => packet(b'a', &[]),
            _ => packet(b'c', &[]),
        };
        if stream.write_all(&reply).is_err() {
            return;
        }
    }
}

fn smtp_world(milter: &ShutdownMilter) -> (Peer, World) {
    let peer = Peer::start();
    let config = format!("smtpd_milters = [\"inet:127.0.0.1:{}\"]", milter.port);
    let world = World::builder().smtp().peer(&peer).config(&config).start();
    (peer, world)
}

#[test]
fn a_shutdown_at_mail_is_a_421_and_the_session_ends() {
    let milter = ShutdownMilter::start(b'M');
    let (peer, world) = smtp_world(&milter);
    let mut c = world.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    let reply = c.cmd("MAIL FROM:<a@client.test>");
    assert!(
        reply.code == 421 && reply.text().contains("4.7.0 Server closing connection"),
        "{}",
        reply.text()
    );
    assert!(c.is_closed(), "the session goes on after the 421");
    world.wait_lines(
        &["NOQUEUE: milter-reject: MAIL from unknown[127.0.0.1]: 421 4.7.0 Server closing connection; from=<a@client.test> proto=ESMTP helo=<client.test>"],
        1,
    );
    world.wait_lines(&["disconnect from unknown[127.0.0.1]"], 1);
    // Negotiation, connect, HELO, MAIL (macros left out); nothing after the shutdown but
    // the abort of that transaction and the goodbye.
    let commands: Vec<u8> = milter.seen().into_iter().filter(|&c| c != b'D').collect();
    assert!(commands.starts_with(b"OCHM"), "{commands:?}");
    assert!(
        commands[4..].iter().all(|c| b"AQ".contains(c)),
        "{commands:?}"
    );
    assert!(peer.messages().is_empty());
}

#[test]
fn a_shutdown_at_connect_is_a_421_greeting_and_the_session_ends() {
    let milter = ShutdownMilter::start(b'C');
    let (_peer, world) = smtp_world(&milter);
    let mut c = world.client();
    c.expect(421, "Service unavailable - try again later");
    assert!(c.is_closed(), "the session goes on after the 421 greeting");
    world.wait_lines(
        &["NOQUEUE: milter-reject: CONNECT from unknown[127.0.0.1]: 421 4.7.0 Server closing connection"],
        1,
    );
}

#[test]
fn a_shutdown_at_the_end_of_the_message_refuses_it_with_421_and_queues_nothing() {
    let milter = ShutdownMilter::start(b'E');
    let (peer, world) = smtp_world(&milter);
    let mut c = world.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<a@client.test>", 250);
    c.ok("RCPT TO:<b@far.example>", 250);
    c.ok("DATA", 354);
    c.send(b"Subject: shut\r\n\r\nbody\r\n.\r\n");
    c.expect(421, "4.7.0 Server closing connection");
    assert!(c.is_closed(), "the session goes on after the 421");
    world.wait_lines(
        &[
            "milter-reject: END-OF-MESSAGE from unknown[127.0.0.1]: 4.7.0 Server closing connection",
            "from=<a@client.test>",
        ],
        1,
    );
    world.wait_lines(&["disconnect from unknown[127.0.0.1]"], 1);
    assert!(world.queue().is_empty(), "{:?}", world.queue());
    assert!(peer.messages().is_empty());
}

#[test]
fn a_shutdown_for_locally_submitted_mail_is_a_tempfail_that_keeps_it_in_maildrop() {
    let milter = ShutdownMilter::start(b'E');
    let peer = Peer::start();
    let config = format!("non_smtpd_milters = [\"inet:127.0.0.1:{}\"]", milter.port);
    let world = World::builder().smtp().peer(&peer).config(&config).start();
    let out = world.env.sendmail(
        &["-f", "alice@example.com", "bob@far.example"],
        b"Subject: local\n\nbody\n",
    );
    assert_success(&out, "sendmail");
    world.wait_lines(
        &["milter: 421 4.7.0 Service unavailable", "stays in maildrop"],
        1,
    );
    assert_eq!(
        world.env.maildrop_files().len(),
        1,
        "the message waits in maildrop"
    );
    assert!(milter.seen().contains(&b'E'), "{:?}", milter.seen());
    assert!(peer.messages().is_empty());
}
