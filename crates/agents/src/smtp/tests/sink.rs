//! End to end with a real peer: Postfix's `smtp-sink` (Debian package `postfix`). Skipped,
//! with a message, when it is not installed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use envelope::OutcomeKind::{Bounced, Deferred, Sent};

use super::*;

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// A running smtp-sink, killed (by its own process handle) when dropped.
struct Sink {
    child: Child,
    port: u16,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `smtp-sink [extra] 127.0.0.1:PORT 64`; None (and a note) when not installed.
fn start_sink(extra: &[&str]) -> Option<Sink> {
    if !Path::new(SMTP_SINK).exists() {
        eprintln!("skipped: {SMTP_SINK} not installed (apt-get install postfix)");
        return None;
    }
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut command = Command::new(SMTP_SINK);
    // As root smtp-sink insists on dropping privileges.
    if sys::effective_uid() == 0 {
        command.args(["-u", "nobody"]);
    }
    command
        .args(extra)
        .arg(format!("127.0.0.1:{port}"))
        .arg("64")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = command.spawn().expect("start smtp-sink");
    let sink = Sink { child, port };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < testkit::DEADLINE,
            "smtp-sink did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(sink)
}

#[tokio::test]
async fn smtp_sink_accepts_mail_in_several_transactions_on_one_connection() {
    let Some(sink) = start_sink(&[]) else { return };
    let mut s = settings(25);
    s.recipient_limit = 2;
    let client = client(s);
    let hop = loopback(sink.port);
    let env = envelope(
        "f@a.example",
        &["a@b.example", "b@b.example", "c@b.example"],
    );
    let message = b"Subject: sink\n\n.dot line\n8bit: \xc3\xa9\n";
    for _ in 0..3 {
        let report = deliver_all(&client, &hop, &env, message).await;
        assert_eq!(kinds(&report), [Sent, Sent, Sent], "{report:?}");
        for outcome in &report.outcomes {
            assert!(outcome.text.starts_with("250 2.0.0 Ok"), "{}", outcome.text);
            assert_eq!(outcome.relay, relay(sink.port));
        }
    }
    assert_eq!(client.idle_connections(), 1);
}

#[tokio::test]
async fn smtp_sink_soft_rejects_recipients() {
    let Some(sink) = start_sink(&["-r", "rcpt"]) else {
        return;
    };
    let client = client(settings(25));
    let env = envelope("f@a.example", &["a@b.example"]);
    let report = deliver_all(&client, &loopback(sink.port), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Deferred], "{report:?}");
    assert!(report.outcomes[0].dsn.starts_with('4'));
    assert!(report.outcomes[0]
        .text
        .starts_with("host 127.0.0.1[127.0.0.1] said: 4"));
    assert!(report.outcomes[0]
        .text
        .ends_with("(in reply to RCPT TO command)"));
}

#[tokio::test]
async fn smtp_sink_hard_rejects_the_end_of_data() {
    let Some(sink) = start_sink(&["-f", "."]) else {
        return;
    };
    let client = client(settings(25));
    let env = envelope("f@a.example", &["a@b.example"]);
    let report = deliver_all(&client, &loopback(sink.port), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Bounced], "{report:?}");
    assert!(report.outcomes[0]
        .text
        .ends_with("(in reply to end of DATA command)"));
}
