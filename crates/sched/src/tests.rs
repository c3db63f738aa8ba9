//! The queue manager over a real store and the real local agent in a temp directory.

use crate::{QueueManager, Shared};
use agents::LocalAgent;
use config::Config;
use envelope::{Envelope, QueueId, RecipientState};
use queue::{QueueName, Store, StoreOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

fn config(dir: &Path) -> Config {
    let mut cfg = Config::embedded_default();
    cfg.queue_directory = dir.join("queue");
    cfg.mail_spool_directory = dir.join("mail");
    cfg.alias_maps = vec![dir.join("aliases").display().to_string()];
    cfg.myhostname = "test.example".into();
    cfg.myorigin = "test.example".into();
    cfg.mydestination = vec!["localhost".into(), "test.example".into()];
    cfg.local_recipient_maps = vec![];
    cfg.minimal_backoff_time = Duration::from_secs(1);
    cfg.maximal_backoff_time = Duration::from_secs(2);
    cfg
}

fn mbox_count(dir: &Path, user: &str) -> usize {
    std::fs::read_to_string(dir.join("mail").join(user))
        .map(|t| t.lines().filter(|l| l.starts_with("From ")).count())
        .unwrap_or(0)
}

async fn wait_until(mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached in 5s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_touches_only_the_recipients_still_open() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let (store, _) = Store::open(&cfg.queue_directory, StoreOptions::default()).unwrap();
    let agent = LocalAgent::new(&cfg).unwrap();
    let shared = Arc::new(Shared::new(store.clone(), cfg, agent));
    let qmgr = QueueManager::new(shared);
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = tokio::spawn(qmgr.clone().run(stop_rx, Duration::from_secs(5)));

    let id = QueueId::generate();
    let rcpts = vec![
        "alice@localhost".into(),
        "bob@test.example".into(),
        "far@remote.example".into(),
    ];
    let env = Envelope::new("s@test.example", rcpts, crate::manager::unix_now());
    store.enqueue(id, env, b"Subject: t\n\nhello\n").unwrap();
    qmgr.schedule(id, 0);

    wait_until(|| store.get(id).is_some_and(|e| e.meta.attempts >= 1)).await;
    let e = store.get(id).unwrap();
    assert_eq!(e.meta.queue, QueueName::Deferred);
    assert_eq!(e.meta.envelope.recipients[0].state, RecipientState::Sent);
    assert_eq!(e.meta.envelope.recipients[1].state, RecipientState::Sent);
    assert!(matches!(
        e.meta.envelope.recipients[2].state,
        RecipientState::Deferred { .. }
    ));

    // The retry (backoff 1 s) re-tries only the remote recipient: no second local copy.
    wait_until(|| store.get(id).is_some_and(|e| e.meta.attempts >= 2)).await;
    assert_eq!(mbox_count(tmp.path(), "alice"), 1);
    assert_eq!(mbox_count(tmp.path(), "bob"), 1);
    stop_tx.send(true).unwrap();
    run.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_bounces_to_the_sender_and_the_original_leaves() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.local_recipient_maps = vec!["unix:passwd.byname".into()];
    std::fs::write(
        tmp.path().join("aliases"),
        "sender: alice\nalice: /dev/null\n",
    )
    .unwrap();
    let (store, _) = Store::open(&cfg.queue_directory, StoreOptions::default()).unwrap();
    let agent = LocalAgent::new(&cfg).unwrap();
    let shared = Arc::new(Shared::new(store.clone(), cfg, agent));
    let qmgr = QueueManager::new(shared);
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = tokio::spawn(qmgr.clone().run(stop_rx, Duration::from_secs(5)));

    let id = QueueId::generate();
    let env = Envelope::new(
        "sender@localhost",
        vec!["nosuchuser-xyz@localhost".into()],
        crate::manager::unix_now(),
    );
    store.enqueue(id, env, b"Subject: t\n\nhello\n").unwrap();
    qmgr.schedule(id, 0);
    // The original is replaced by a bounce, which is delivered (to /dev/null via aliases).
    wait_until(|| !store.contains(id) && store.is_empty()).await;
    let log_free = store.is_empty();
    assert!(log_free);
    stop_tx.send(true).unwrap();
    run.await.unwrap();
}
