//! The helper and its client together over a real socketpair, in one process (as whatever
//! user runs the tests; the root-only parts are tested end to end by the binary's tests).

use super::frame::{self, Frame, Incoming};
use super::server::{self, Limits};
use super::wire::Request;
use super::HelperClient;
use crate::local::LocalAgent;
use config::Config;
use envelope::{Envelope, OutcomeKind, QueueId};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn config(dir: &Path, aliases: &str) -> Config {
    // Commands from root-owned aliases run as `nobody` when the tests run as root.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
    fs::write(dir.join("aliases"), aliases).unwrap();
    let mut cfg = Config::embedded_default();
    cfg.mail_spool_directory = dir.join("mail");
    cfg.alias_maps = vec![dir.join("aliases").display().to_string()];
    cfg.local_recipient_maps = Vec::new();
    cfg.mydestination = vec!["localhost".into()];
    cfg.mailbox_size_limit = 0;
    cfg.default_privs = "nobody".into();
    cfg
}

/// A helper serving one end of a socketpair on a thread; the other end for the test.
fn start_helper(cfg: &Config) -> (UnixStream, JoinHandle<()>) {
    let (daemon_end, helper_end) = UnixStream::pair().unwrap();
    let agent = LocalAgent::new(crate::LocalSettings::from_config(cfg)).unwrap();
    let limits = Limits::from_config(cfg);
    let fresh = cfg.clone();
    let reload: server::Reloader = Box::new(move || {
        let agent = LocalAgent::new(crate::LocalSettings::from_config(&fresh))
            .map_err(|e| e.to_string())?;
        Ok((agent, Limits::from_config(&fresh)))
    });
    let thread =
        std::thread::spawn(move || server::serve(helper_end, agent, limits, reload).unwrap());
    (daemon_end, thread)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn envelope(recipients: &[&str]) -> Envelope {
    Envelope::new(
        "sender@example.org",
        recipients.iter().map(|r| r.to_string()).collect(),
        0,
    )
}

#[test]
fn concurrent_deliveries_each_get_their_own_reply() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (stream, helper) = start_helper(&cfg);
    let rt = runtime();
    rt.block_on(async {
        let client = HelperClient::start(stream).unwrap();
        let mut tasks = Vec::new();
        for n in 0..8 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let env = envelope(&[&format!("user{n}@localhost")]);
                let body = format!("Subject: {n}\n\nbody {n}\n").into_bytes();
                (
                    n,
                    client.deliver(QueueId::generate(), env, &[0], body).await,
                )
            }));
        }
        for task in tasks {
            let (n, delivery) = task.await.unwrap();
            assert_eq!(delivery.outcomes.len(), 1);
            assert_eq!(delivery.outcomes[0].kind, OutcomeKind::Sent, "{delivery:?}");
            let mbox = fs::read_to_string(dir.path().join(format!("mail/user{n}"))).unwrap();
            assert!(mbox.contains(&format!("body {n}\n")), "{mbox}");
        }
        client.close();
    });
    helper.join().unwrap();
}

#[test]
fn recipient_outside_the_helpers_mydestination_is_deferred_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (stream, helper) = start_helper(&cfg);
    runtime().block_on(async {
        let client = HelperClient::start(stream).unwrap();
        let env = envelope(&["alice@elsewhere.example", "bob@localhost"]);
        let d = client
            .deliver(QueueId::generate(), env, &[0, 1], b"\nhi\n".to_vec())
            .await;
        let kinds: Vec<_> = d
            .outcomes
            .iter()
            .map(|o| (o.recipient, o.kind.clone()))
            .collect();
        assert_eq!(kinds, [(0, OutcomeKind::Deferred), (1, OutcomeKind::Sent)]);
        assert_eq!(d.outcomes[0].dsn, "4.3.0");
        client.close();
    });
    helper.join().unwrap();
    assert!(!dir.path().join("mail/alice").exists());
}

#[test]
fn indexes_naming_no_recipient_or_one_twice_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (stream, helper) = start_helper(&cfg);
    runtime().block_on(async {
        let client = HelperClient::start(stream).unwrap();
        for bad in [&[0usize, 0][..], &[3][..]] {
            let env = envelope(&["bob@localhost"]);
            let d = client
                .deliver(QueueId::generate(), env, bad, b"\nhi\n".to_vec())
                .await;
            assert!(
                d.outcomes.iter().all(|o| o.kind == OutcomeKind::Deferred),
                "{d:?}"
            );
            assert_eq!(d.outcomes.len(), bad.len());
        }
        client.close();
    });
    helper.join().unwrap();
    assert!(!dir.path().join("mail/bob").exists());
}

#[test]
fn request_over_the_helpers_size_limit_bounces_and_the_next_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "");
    cfg.message_size_limit = 1000;
    let (stream, helper) = start_helper(&cfg);
    runtime().block_on(async {
        let client = HelperClient::start(stream).unwrap();
        let huge = vec![b'x'; server::ENVELOPE_ALLOWANCE + 2000];
        let d = client
            .deliver(
                QueueId::generate(),
                envelope(&["bob@localhost"]),
                &[0],
                huge,
            )
            .await;
        assert_eq!(
            (d.outcomes[0].kind.clone(), d.outcomes[0].dsn.as_str()),
            (OutcomeKind::Bounced, "5.3.4")
        );
        let d = client
            .deliver(
                QueueId::generate(),
                envelope(&["bob@localhost"]),
                &[0],
                b"\nsmall\n".to_vec(),
            )
            .await;
        assert_eq!(d.outcomes[0].kind, OutcomeKind::Sent, "{d:?}");
        client.close();
    });
    helper.join().unwrap();
}

#[test]
fn dead_helper_defers_waiting_and_later_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon_end, helper_end) = UnixStream::pair().unwrap();
    let _ = dir;
    runtime().block_on(async {
        let client = HelperClient::start(daemon_end).unwrap();
        let waiting = {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .deliver(
                        QueueId::generate(),
                        envelope(&["bob@localhost"]),
                        &[0],
                        b"\nhi\n".to_vec(),
                    )
                    .await
            })
        };
        // The "helper" reads the request, then dies without answering.
        let request = tokio::task::spawn_blocking(move || {
            let read = frame::read_frame(&mut &helper_end, 1 << 20).unwrap();
            drop(helper_end);
            read
        })
        .await
        .unwrap();
        assert!(matches!(request, Some(Incoming::Frame(_))));
        let d = waiting.await.unwrap();
        assert_eq!(
            (d.outcomes[0].kind.clone(), d.outcomes[0].dsn.as_str()),
            (OutcomeKind::Deferred, "4.3.0")
        );
        let mut dead = client.dead();
        dead.wait_for(Option::is_some).await.unwrap();
        let later = client
            .deliver(
                QueueId::generate(),
                envelope(&["bob@localhost"]),
                &[0],
                b"\nhi\n".to_vec(),
            )
            .await;
        assert_eq!(later.outcomes[0].kind, OutcomeKind::Deferred);
        assert!(later.outcomes[0].text.contains("not running"), "{later:?}");
    });
}

#[test]
fn garbage_from_the_daemon_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (mut stream, helper) = start_helper(&cfg);
    let garbage = Frame {
        id: 1,
        meta: b"not json".to_vec(),
        blobs: vec![],
    };
    frame::write_frame(&mut stream, &garbage).unwrap();
    // serve returns although our end is still open.
    helper.join().unwrap();
}

#[test]
fn helper_finishes_deliveries_in_flight_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let aliases = format!("slow: \"|sleep 1; cat > {}\"\n", out.display());
    let cfg = config(dir.path(), &aliases);
    let (mut stream, helper) = start_helper(&cfg);
    let request = Request::Deliver {
        queue_id: QueueId::generate(),
        envelope: envelope(&["slow@localhost"]),
        recipients: vec![0],
        message: b"Subject: x\n\nslow body\n".to_vec(),
    };
    frame::write_frame(&mut stream, &request.into_frame(1)).unwrap();
    let started = Instant::now();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    helper.join().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(fs::read_to_string(&out).unwrap().contains("slow body"));
}

#[test]
fn reload_is_answered_on_the_same_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (stream, helper) = start_helper(&cfg);
    runtime().block_on(async {
        let client = HelperClient::start(stream).unwrap();
        assert_eq!(client.reload().await, Ok(()));
        client.close();
    });
    helper.join().unwrap();
}
