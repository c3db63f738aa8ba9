//! Per-phase timeouts and lost connections, with Postfix's texts (seed 004: "timed out while
//! sending end of data -- message may be sent more than once").

use std::time::{Duration, Instant};

use envelope::OutcomeKind::{Deferred, Sent};

use super::server::{reply, Action, Behaviour, TestServer};
use super::*;

const SHORT: Duration = Duration::from_millis(300);

/// Generous timeouts except the ones `shorten` makes short (a loaded test machine must not
/// time out in another phase than the one under test).
fn short(shorten: impl FnOnce(&mut Timeouts)) -> SmtpSettings {
    let mut s = settings(25);
    shorten(&mut s.timeouts);
    s
}

async fn deliver_one(server: &TestServer, settings: SmtpSettings) -> DeliveryReport {
    let client = client(settings);
    let env = envelope("f@a.example", &["one@b.example"]);
    deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await
}

#[tokio::test]
async fn regression_seed_004_timeout_after_the_final_dot() {
    let server = TestServer::start(Behaviour {
        dot: Action::Hang,
        ..Behaviour::default()
    })
    .await;
    let started = Instant::now();
    let report = deliver_one(&server, short(|t| t.data_done = SHORT)).await;
    assert!(started.elapsed() < testkit::scaled_by_load(Duration::from_secs(3)));
    let outcome = &report.outcomes[0];
    assert_eq!(
        (outcome.kind.clone(), outcome.dsn.as_str()),
        (Deferred, "4.4.2")
    );
    assert_eq!(
        outcome.text,
        "conversation with 127.0.0.1[127.0.0.1] timed out while sending end of data -- message may be sent more than once"
    );
    assert_eq!(outcome.relay, relay(server.port()));
    assert_eq!(
        report.destination_failure, None,
        "the destination answered MAIL"
    );
    assert_eq!(
        server.transcript().messages.len(),
        1,
        "the whole body was sent"
    );
}

#[tokio::test]
async fn greeting_timeout() {
    let server = TestServer::start(Behaviour {
        greeting: Action::Hang,
        ..Behaviour::default()
    })
    .await;
    let report = deliver_one(&server, short(|t| t.helo = SHORT)).await;
    assert_eq!(kinds(&report), [Deferred]);
    let text = "conversation with 127.0.0.1[127.0.0.1] timed out while receiving the initial server greeting";
    assert_eq!(report.outcomes[0].text, text);
    assert_eq!(report.destination_failure.as_deref(), Some(text));
}

#[tokio::test]
async fn mail_from_timeout_when_pipelining() {
    let server = TestServer::start(Behaviour {
        mail: Action::Hang,
        ..Behaviour::default()
    })
    .await;
    let report = deliver_one(&server, short(|t| t.mail = SHORT)).await;
    assert_eq!(
        report.outcomes[0].text,
        "conversation with 127.0.0.1[127.0.0.1] timed out while sending MAIL FROM"
    );
    assert_eq!(report.outcomes[0].dsn, "4.4.2");
}

#[tokio::test]
async fn only_the_phase_that_is_slow_times_out() {
    // A slow RCPT reply is fine when only the end-of-data timeout is short.
    let server = TestServer::start(
        Behaviour::default()
            .with_rcpt(|_| Action::Delay(Duration::from_millis(400), "250 2.1.5 Ok".into())),
    )
    .await;
    let report = deliver_one(&server, short(|t| t.data_done = SHORT)).await;
    assert_eq!(kinds(&report), [Sent]);
}

#[tokio::test]
async fn lost_connection_during_rcpt() {
    let server = TestServer::start(Behaviour::default().with_rcpt(|_| Action::Close)).await;
    let report = deliver_one(&server, settings(25)).await;
    assert_eq!(kinds(&report), [Deferred]);
    assert_eq!(
        report.outcomes[0].text,
        "lost connection with 127.0.0.1[127.0.0.1] while sending RCPT TO"
    );
}

#[tokio::test]
async fn lost_connection_after_the_dot_may_duplicate() {
    let server = TestServer::start(Behaviour {
        dot: Action::Close,
        ..Behaviour::default()
    })
    .await;
    let report = deliver_one(&server, settings(25)).await;
    assert_eq!(
        report.outcomes[0].text,
        "lost connection with 127.0.0.1[127.0.0.1] while sending end of data -- message may be sent more than once"
    );
}

#[tokio::test]
async fn a_broken_session_defers_the_later_transactions_too() {
    let server = TestServer::start(Behaviour {
        dot: Action::Close,
        ..Behaviour::default()
    })
    .await;
    let mut s = settings(25);
    s.recipient_limit = 1;
    let client = client(s);
    let env = envelope("f@a.example", &["a@b.example", "b@b.example"]);
    let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Deferred, Deferred]);
    assert_eq!(server.transcript().count("MAIL"), 1);
}

#[tokio::test]
async fn slow_data_reply() {
    let server = TestServer::start(Behaviour {
        data: Action::Delay(Duration::from_secs(2), "354 go".into()),
        ..Behaviour::default()
    })
    .await;
    let report = deliver_one(&server, short(|t| t.data_init = SHORT)).await;
    assert_eq!(
        report.outcomes[0].text,
        "conversation with 127.0.0.1[127.0.0.1] timed out while sending DATA command"
    );
}

#[tokio::test]
async fn refused_rset_probe_opens_a_new_connection() {
    let server = TestServer::start(Behaviour {
        rset: reply("421 4.3.2 shutting down"),
        ..Behaviour::default()
    })
    .await;
    let client = client(settings(25));
    let env = envelope("f@a.example", &["one@b.example"]);
    let hop = loopback(server.port());
    for _ in 0..2 {
        assert_eq!(
            kinds(&deliver_all(&client, &hop, &env, MESSAGE).await),
            [Sent]
        );
    }
    assert_eq!(server.transcript().connections, 2);
}
