//! Servers that send garbage, endless lines or endless replies, and envelopes that try to
//! inject commands: the client answers with outcomes, never a panic or a hang.

use std::time::{Duration, Instant};

use envelope::OutcomeKind::{Bounced, Deferred, Sent};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::server::{reply, Behaviour, TestServer};
use super::*;

/// A server that writes `bytes` as its greeting and then reads and ignores everything
/// (or hangs up, when `hang_up`).
async fn raw_server(bytes: Vec<u8>, hang_up: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let bytes = bytes.clone();
            tokio::spawn(async move {
                let _ = stream.write_all(&bytes).await;
                if hang_up {
                    return;
                }
                let mut sink = [0u8; 1024];
                while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    port
}

async fn deliver_to(port: u16) -> DeliveryReport {
    let mut s = settings(25);
    s.timeouts = Timeouts::uniform(Duration::from_secs(1));
    let client = client(s);
    let env = envelope("f@a.example", &["one@b.example"]);
    deliver_all(&client, &loopback(port), &env, MESSAGE).await
}

#[tokio::test]
async fn garbage_greeting_is_a_protocol_error() {
    let report = deliver_to(raw_server(b"hello there\r\n".to_vec(), false).await).await;
    assert_eq!(kinds(&report), [Deferred]);
    assert_eq!(report.outcomes[0].dsn, "4.5.0");
    assert!(report.outcomes[0]
        .text
        .contains("malformed reply: hello there"));
}

#[tokio::test]
async fn endless_reply_lines_are_cut() {
    let mut greeting = b"220-".to_vec();
    greeting.extend(std::iter::repeat_n(b'x', 1 << 20));
    greeting.extend_from_slice(b"\r\n220 ok\r\n");
    let report = deliver_to(raw_server(greeting, false).await).await;
    // The greeting parses (its first line cut to 4 KiB); EHLO then gets no answer.
    assert_eq!(kinds(&report), [Deferred]);
    assert!(report.outcomes[0]
        .text
        .contains("performing the EHLO handshake"));
}

#[tokio::test]
async fn endless_replies_are_refused() {
    let mut greeting = Vec::new();
    for _ in 0..10_000 {
        greeting.extend_from_slice(b"220-more\r\n");
    }
    let report = deliver_to(raw_server(greeting, false).await).await;
    assert!(
        report.outcomes[0].text.contains("reply longer than"),
        "{report:?}"
    );
}

#[tokio::test]
async fn binary_noise_never_panics() {
    let mut rng = fastrand::Rng::with_seed(4);
    for _ in 0..20 {
        let noise: Vec<u8> = (0..rng.usize(1..400)).map(|_| rng.u8(..)).collect();
        let started = Instant::now();
        let report = deliver_to(raw_server(noise, true).await).await;
        assert_eq!(kinds(&report), [Deferred]);
        assert!(started.elapsed() < testkit::scaled_by_load(Duration::from_secs(3)));
    }
}

#[tokio::test]
async fn control_characters_in_replies_are_neutralised() {
    let server = TestServer::start(
        Behaviour::default().with_rcpt(|_| reply("550 5.1.1 evil\x1b[2J\x07 text")),
    )
    .await;
    let report = deliver_to(server.port()).await;
    assert_eq!(kinds(&report), [Bounced]);
    assert!(report.outcomes[0].text.contains("evil?[2J? text"));
}

#[tokio::test]
async fn addresses_cannot_inject_commands() {
    let server = TestServer::start(Behaviour::default()).await;
    let client = client(settings(25));
    let env = envelope(
        "f@a.example",
        &["ok@b.example", "x@b.example>\r\nRCPT TO:<victim@c.example"],
    );
    let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Sent, Bounced]);
    assert_eq!(report.outcomes[1].dsn, "5.1.3");
    let t = server.transcript();
    assert!(
        t.commands.iter().all(|c| !c.contains("victim")),
        "{:?}",
        t.commands
    );

    let bad_sender = envelope("a\r\nRSET@x", &["ok@b.example"]);
    let report = deliver_all(&client, &loopback(server.port()), &bad_sender, MESSAGE).await;
    assert_eq!(
        (kinds(&report), report.outcomes[0].dsn.as_str()),
        (vec![Bounced], "5.1.7")
    );
}

#[tokio::test]
async fn empty_request_and_bad_indexes() {
    let client = client(settings(25));
    let env = envelope("f@a.example", &["one@b.example"]);
    let hop = loopback(1);
    let report = client
        .deliver(&hop, envelope::QueueId::generate(), &env, &[], MESSAGE)
        .await;
    assert!(report.outcomes.is_empty() && report.destination_failure.is_none());
    let report = client
        .deliver(&hop, envelope::QueueId::generate(), &env, &[7], MESSAGE)
        .await;
    assert_eq!(
        (kinds(&report), report.outcomes[0].dsn.as_str()),
        (vec![Deferred], "4.3.0")
    );
}
