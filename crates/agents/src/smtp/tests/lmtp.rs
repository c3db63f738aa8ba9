//! The LMTP dialect against a scripted LMTP server on a unix socket: LHLO, one reply per
//! accepted recipient after the final dot, a connection lost between those replies, and
//! connection reuse for the next message. (The end-to-end tests use real Dovecot.)

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use envelope::{OutcomeKind, QueueId};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::{envelope, kinds, settings, MESSAGE};
use crate::smtp::{Dialect, LmtpNexthop, SmtpClient, SmtpSettings};

/// What the server answers after the dot, one reply per accepted recipient; `None` closes
/// the connection instead.
type Verdicts = Vec<Option<&'static str>>;

fn lmtp_settings() -> SmtpSettings {
    SmtpSettings {
        dialect: Dialect::Lmtp,
        ..settings(24)
    }
}

/// Serves LMTP sessions on `path`; counts connections and records each command line.
fn serve(
    path: &Path,
    verdicts: Verdicts,
) -> (Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = UnixListener::bind(path).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (count, log) = (connections.clone(), lines.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(session(stream, verdicts.clone(), log.clone()));
        }
    });
    (connections, lines)
}

async fn session(
    stream: tokio::net::UnixStream,
    verdicts: Verdicts,
    log: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let _ = write.write_all(b"220 lmtp.test LMTP ready\r\n").await;
    let mut line = String::new();
    let mut in_data = false;
    loop {
        line.clear();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_string();
        if in_data {
            if command == "." {
                in_data = false;
                for verdict in &verdicts {
                    match verdict {
                        Some(reply) => {
                            let _ = write.write_all(format!("{reply}\r\n").as_bytes()).await;
                        }
                        None => return,
                    }
                }
            }
            continue;
        }
        log.lock().unwrap().push(command.clone());
        let reply: &[u8] = match command.split(' ').next().unwrap_or("") {
            "LHLO" => b"250-lmtp.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n",
            "DATA" => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            "QUIT" => return,
            _ => b"250 2.1.0 ok\r\n",
        };
        let _ = write.write_all(reply).await;
    }
}

async fn send(client: &SmtpClient, hop: &LmtpNexthop) -> envelope::DeliveryReport {
    let env = envelope("s@a.example", &["ok@b.example", "full@b.example"]);
    client
        .deliver_lmtp(hop, QueueId::generate(), &env, &[0, 1], MESSAGE)
        .await
}

#[tokio::test]
async fn each_recipient_gets_its_own_reply_after_the_dot_and_the_session_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lmtp");
    let verdicts = vec![
        Some("250 2.0.0 <ok@b.example> Saved"),
        Some("552 5.2.2 <full@b.example> Quota exceeded (mailbox for user is full)"),
    ];
    let (connections, lines) = serve(&path, verdicts);
    let client = SmtpClient::new(lmtp_settings()).unwrap();
    let hop = LmtpNexthop::Unix(path.clone());
    let report = send(&client, &hop).await;
    assert_eq!(kinds(&report), [OutcomeKind::Sent, OutcomeKind::Bounced]);
    let (ok, full) = (&report.outcomes[0], &report.outcomes[1]);
    assert_eq!(full.dsn, "5.2.2");
    let relay = format!("client.test[{}]", path.display());
    assert_eq!(
        (ok.relay.as_str(), full.relay.as_str()),
        (relay.as_str(), relay.as_str())
    );
    assert_eq!(
        full.text,
        format!("host {relay} said: 552 5.2.2 <full@b.example> Quota exceeded (mailbox for user is full) (in reply to end of DATA command)")
    );
    assert_eq!(lines.lock().unwrap()[0], "LHLO client.test");
    let again = send(&client, &hop).await;
    assert_eq!(kinds(&again), [OutcomeKind::Sent, OutcomeKind::Bounced]);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "the second message reused the session"
    );
}

#[tokio::test]
async fn a_connection_lost_between_the_replies_defers_only_the_unanswered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lmtp");
    serve(&path, vec![Some("250 2.0.0 Saved"), None]);
    let mut settings = lmtp_settings();
    settings.timeouts = super::Timeouts::uniform(Duration::from_secs(30));
    let client = SmtpClient::new(settings).unwrap();
    let report = send(&client, &LmtpNexthop::Unix(path)).await;
    assert_eq!(kinds(&report), [OutcomeKind::Sent, OutcomeKind::Deferred]);
    let lost = &report.outcomes[1];
    assert_eq!(lost.dsn, "4.4.2");
    assert!(
        lost.text
            .ends_with("while sending end of data -- message may be sent more than once"),
        "{}",
        lost.text
    );
}

#[tokio::test]
async fn a_missing_socket_defers_as_a_destination_failure() {
    let dir = tempfile::tempdir().unwrap();
    let client = SmtpClient::new(lmtp_settings()).unwrap();
    let report = send(&client, &LmtpNexthop::Unix(dir.path().join("absent"))).await;
    assert_eq!(
        kinds(&report),
        [OutcomeKind::Deferred, OutcomeKind::Deferred]
    );
    assert_eq!(report.outcomes[0].dsn, "4.4.1");
    assert!(report.destination_failure.is_some());
}

/// Postfix's `lmtp:unix:private/dovecot-lmtp`: a relative socket path is under
/// `queue_directory` (not the process's working directory), and logged as written.
#[tokio::test]
async fn a_relative_socket_path_is_under_the_queue_directory() {
    let queue = tempfile::tempdir().unwrap();
    std::fs::create_dir(queue.path().join("private")).unwrap();
    let path = queue.path().join("private/dovecot-lmtp");
    let verdicts = vec![Some("250 2.0.0 Saved"), Some("250 2.0.0 Saved")];
    let (connections, _) = serve(&path, verdicts);
    let client = SmtpClient::new(SmtpSettings {
        queue_directory: queue.path().to_path_buf(),
        ..lmtp_settings()
    })
    .unwrap();
    let hop = LmtpNexthop::parse("unix:private/dovecot-lmtp").unwrap();
    assert_ne!(
        std::env::current_dir().unwrap(),
        queue.path(),
        "the working directory is elsewhere"
    );
    let report = send(&client, &hop).await;
    assert_eq!(kinds(&report), [OutcomeKind::Sent, OutcomeKind::Sent]);
    assert_eq!(
        report.outcomes[0].relay,
        "client.test[private/dovecot-lmtp]"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    // Elsewhere it is not found (the path is not taken relative to the working directory).
    let elsewhere = SmtpClient::new(lmtp_settings()).unwrap();
    let report = send(&elsewhere, &hop).await;
    assert_eq!(report.outcomes[0].dsn, "4.4.1");
    assert!(
        report.outcomes[0]
            .text
            .contains("connect to client.test[private/dovecot-lmtp]"),
        "{}",
        report.outcomes[0].text
    );
}
