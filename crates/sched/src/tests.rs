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

pub(crate) fn config(dir: &Path) -> Config {
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

pub(crate) fn mbox_count(dir: &Path, user: &str) -> usize {
    std::fs::read_to_string(dir.join("mail").join(user))
        .map(|t| t.lines().filter(|l| l.starts_with("From ")).count())
        .unwrap_or(0)
}

/// Polls `f` every 25 ms; fails after 120 s (generous: a loaded 2-core CI box).
async fn wait_until(mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached in 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_touches_only_the_recipients_still_open() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let (store, _) = Store::open(&cfg.queue_directory, StoreOptions::default()).unwrap();
    let agent = LocalAgent::new(agents::LocalSettings::from_config(&cfg)).unwrap();
    let shared =
        Arc::new(Shared::new(store.clone(), crate::Settings::from_config(&cfg), agent).unwrap());
    let qmgr = QueueManager::new(shared);
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = tokio::spawn(qmgr.clone().run(stop_rx, Duration::from_secs(5)));

    let id = QueueId::generate();
    let rcpts = vec![
        "alice@localhost".into(),
        "bob@test.example".into(),
        "far@remote.example".into(),
    ];
    let env = Envelope::new("s@test.example", rcpts, crate::clock::unix_now());
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
    let agent = LocalAgent::new(agents::LocalSettings::from_config(&cfg)).unwrap();
    let shared =
        Arc::new(Shared::new(store.clone(), crate::Settings::from_config(&cfg), agent).unwrap());
    let qmgr = QueueManager::new(shared);
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = tokio::spawn(qmgr.clone().run(stop_rx, Duration::from_secs(5)));

    let id = QueueId::generate();
    let env = Envelope::new(
        "sender@localhost",
        vec!["nosuchuser-xyz@localhost".into()],
        crate::clock::unix_now(),
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

mod remote_scenarios {
    use super::*;
    use crate::remote::{BoxFuture, RemoteAgent};
    use envelope::{DeliveryReport, Nexthop, Outcome};

    /// A scripted remote agent: per host, a verdict; counts calls per host.
    struct Script {
        calls: Mutex<HashMap<String, usize>>,
        delay_ms: u64,
        /// `stall.example` answers only once a permit is added here.
        stall: tokio::sync::Semaphore,
    }
    use std::collections::HashMap;
    use std::sync::Mutex;

    impl RemoteAgent for Script {
        fn deliver<'a>(
            &'a self,
            nexthop: &'a Nexthop,
            _id: QueueId,
            env: &'a Envelope,
            recipients: &'a [usize],
            _message: &'a [u8],
        ) -> BoxFuture<'a, DeliveryReport> {
            *self
                .calls
                .lock()
                .unwrap()
                .entry(nexthop.host.clone())
                .or_default() += 1;
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(self.delay_ms)).await;
                let relay = format!("{}[127.0.0.1]:25", nexthop.host);
                let mut r = DeliveryReport::default();
                if nexthop.host == "stall.example" {
                    self.stall.acquire().await.expect("open").forget();
                }
                match nexthop.host.as_str() {
                    "dead.example" => {
                        r.destination_failure = Some(
                            "connect to dead.example[127.0.0.1]:25: Connection refused".into(),
                        );
                        r.outcomes = recipients
                            .iter()
                            .map(|&i| Outcome::deferred(i, "4.4.1", &relay, "connection refused"))
                            .collect();
                    }
                    _ => {
                        for &i in recipients {
                            let a = &env.recipients[i].address;
                            r.outcomes.push(if a.starts_with("bad") {
                                Outcome::bounced(i, "5.1.1", &relay, "host said: 550 5.1.1 no such user (in reply to RCPT TO command)")
                            } else if a.starts_with("later") {
                                Outcome::deferred(i, "4.2.0", &relay, "host said: 450 4.2.0 try later")
                            } else {
                                Outcome::sent(i, &relay, "250 2.0.0 Ok")
                            });
                        }
                    }
                }
                r
            })
        }
    }

    fn states(e: &queue::Entry) -> Vec<RecipientState> {
        let recipients = e.meta.envelope.recipients.iter();
        recipients.map(|x| x.state.clone()).collect()
    }

    struct Rig {
        _tmp: tempfile::TempDir,
        store: Store,
        qmgr: Arc<QueueManager>,
        script: Arc<Script>,
        stop: watch::Sender<bool>,
    }

    fn rig(tune: impl FnOnce(&mut Config), delay_ms: u64) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = config(tmp.path());
        tune(&mut cfg);
        let (store, _) = Store::open(&cfg.queue_directory, StoreOptions::default()).unwrap();
        let agent = LocalAgent::new(agents::LocalSettings::from_config(&cfg)).unwrap();
        let shared = Arc::new(
            Shared::new(store.clone(), crate::Settings::from_config(&cfg), agent).unwrap(),
        );
        let script = Arc::new(Script {
            calls: Mutex::new(HashMap::new()),
            delay_ms,
            stall: tokio::sync::Semaphore::new(0),
        });
        shared.set_remote(script.clone());
        let qmgr = QueueManager::new(shared);
        let (stop, rx) = watch::channel(false);
        tokio::spawn(qmgr.clone().run(rx, Duration::from_secs(5)));
        Rig {
            _tmp: tmp,
            store,
            qmgr,
            script,
            stop,
        }
    }

    impl Rig {
        fn send(&self, sender: &str, rcpts: &[&str]) -> QueueId {
            let id = QueueId::generate();
            let env = Envelope::new(
                sender,
                rcpts.iter().map(|s| s.to_string()).collect(),
                crate::clock::unix_now(),
            );
            self.store
                .enqueue(id, env, b"Subject: t\n\nhello\n")
                .unwrap();
            self.qmgr.schedule(id, 0);
            id
        }
        fn calls(&self, host: &str) -> usize {
            self.script
                .calls
                .lock()
                .unwrap()
                .get(host)
                .copied()
                .unwrap_or(0)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_destination_costs_a_few_attempts_not_one_per_message() {
        let r = rig(|c| c.minimal_backoff_time = Duration::from_secs(60), 50);
        let ids: Vec<QueueId> = (0..1000)
            .map(|i| r.send("s@test.example", &[&format!("u{i}@dead.example")]))
            .collect();
        wait_until(|| {
            ids.iter()
                .all(|id| r.store.get(*id).is_some_and(|e| e.meta.attempts >= 1))
        })
        .await;
        let calls = r.calls("dead.example");
        eprintln!("1000 messages to a dead destination cost {calls} connection attempts");
        assert!(calls <= 5, "{calls} attempts");
        let e = r.store.get(ids[999]).unwrap();
        let RecipientState::Deferred { reason } = &e.meta.envelope.recipients[0].state else {
            panic!()
        };
        assert!(reason.contains("Connection refused"), "{reason}");
        r.stop.send(true).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_active_queue_holds_at_most_qmgr_message_active_limit_messages() {
        let r = rig(
            |c| {
                c.qmgr_message_active_limit = 10;
                c.default_process_limit = 100;
                c.smtp_destination_concurrency_limit = 100;
            },
            200,
        );
        let ids: Vec<QueueId> = (0..100)
            .map(|i| r.send("s@test.example", &[&format!("u{i}@far{}.example", i % 7)]))
            .collect();
        let mut peak = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !r.store.is_empty() && std::time::Instant::now() < deadline {
            peak = peak.max(r.qmgr.active_count());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(r.store.is_empty(), "{} left", r.store.len());
        eprintln!("peak active: {peak}");
        assert!(peak <= 10, "{peak} messages active, limit 10");
        assert!(
            peak >= 5,
            "the limit was never reached ({peak}): the test saw nothing"
        );
        let calls: usize = (0..7).map(|d| r.calls(&format!("far{d}.example"))).sum();
        assert_eq!(calls, ids.len(), "each message delivered exactly once");
        r.stop.send(true).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_destination_does_not_starve_the_others() {
        let r = rig(
            |c| {
                c.default_process_limit = 4;
                c.smtp_destination_concurrency_limit = 2;
            },
            300,
        );
        let slow: Vec<QueueId> = (0..20)
            .map(|i| r.send("s@test.example", &[&format!("u{i}@slow.example")]))
            .collect();
        let fast = r.send("s@test.example", &["x@fast.example"]);
        wait_until(|| !r.store.contains(fast)).await;
        // 20 slow deliveries, 2 at a time, 300 ms each: had fast.example waited behind them,
        // they would all be done by now. Most must still be queued.
        let still_queued = slow.iter().filter(|id| r.store.contains(**id)).count();
        assert!(
            still_queued >= 10,
            "fast.example waited behind slow.example ({still_queued} slow left)"
        );
        r.stop.send(true).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mixed_outcomes_keep_only_the_deferred_recipient_and_bounce_the_failed_one() {
        let r = rig(|_| {}, 0);
        let id = r.send(
            "sender@localhost",
            &["ok@far.example", "bad@far.example", "later@far.example"],
        );
        wait_until(|| r.store.get(id).is_some_and(|e| e.meta.attempts >= 1)).await;
        let e = r.store.get(id).unwrap();
        let states = states(&e);
        assert_eq!(states[0], RecipientState::Sent);
        assert!(matches!(&states[1], RecipientState::Bounced { status, .. } if status == "5.1.1"));
        assert!(matches!(states[2], RecipientState::Deferred { .. }));
        assert_eq!(e.meta.queue, QueueName::Deferred);
        r.stop.send(true).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expiry_bounces_and_notify_never_suppresses_the_bounce() {
        let r = rig(|c| c.maximal_queue_lifetime = Duration::ZERO, 0);
        let id = r.send("sender@localhost", &["later@far.example"]);
        // Expired at the first failure: bounced, a bounce queued to sender@localhost (local),
        // delivered, and nothing left.
        wait_until(|| !r.store.contains(id) && r.store.is_empty()).await;
        let mbox = std::fs::read_to_string(r._tmp.path().join("mail/sender")).unwrap();
        assert!(
            mbox.contains("Status: 4.4.7") && mbox.contains("message expired"),
            "{mbox}"
        );

        let id = QueueId::generate();
        let mut env = Envelope::new(
            "sender@localhost",
            vec!["bad@far.example".into()],
            crate::clock::unix_now(),
        );
        env.recipients[0].notify = Some("NEVER".into());
        r.store.enqueue(id, env, b"Subject: quiet\n\nx\n").unwrap();
        r.qmgr.schedule(id, 0);
        // A bounce, had one been made, replaces the message in the store atomically and is
        // then delivered: an empty store means whatever was queued has reached the mbox.
        wait_until(|| !r.store.contains(id) && r.store.is_empty()).await;
        let mbox = std::fs::read_to_string(r._tmp.path().join("mail/sender")).unwrap();
        assert_eq!(
            mbox.matches("\nFrom MAILER-DAEMON").count()
                + usize::from(mbox.starts_with("From MAILER-DAEMON")),
            1,
            "NOTIFY=NEVER: no second bounce"
        );
        r.stop.send(true).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn soft_bounce_defers_instead() {
        let r = rig(|c| c.soft_bounce = true, 0);
        let id = r.send("sender@localhost", &["bad@far.example"]);
        wait_until(|| r.store.get(id).is_some_and(|e| e.meta.attempts >= 1)).await;
        let e = r.store.get(id).unwrap();
        assert!(matches!(
            e.meta.envelope.recipients[0].state,
            RecipientState::Deferred { .. }
        ));
        r.stop.send(true).unwrap();
    }

    /// A message to nine domains, one of which stalls: the other eight items' outcomes are
    /// in the store (what a restart would see) while the stalled one is still out, without
    /// touching the message's queue or retry time; the success notice they call for is
    /// queued then, once; the final item records the message's fate; nothing is counted
    /// twice, and the recipients done early are not tried again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_back_before_a_stalled_one_are_durable_before_it_returns() {
        let r = rig(|_| {}, 0);
        let mut rcpts: Vec<String> = (0..6).map(|i| format!("u{i}@fast{i}.example")).collect();
        rcpts.push("bad@fast6.example".into());
        rcpts.push("later@fast7.example".into());
        rcpts.push("u@stall.example".into());
        let id = QueueId::generate();
        let mut env = Envelope::new("sender@localhost", rcpts, crate::clock::unix_now());
        env.recipients[0].notify = Some("SUCCESS".into());
        r.store.enqueue(id, env, b"Subject: t\n\nhello\n").unwrap();
        r.qmgr.schedule(id, 0);

        let done_early = |e: &queue::Entry| {
            e.meta.envelope.recipients[..8]
                .iter()
                .all(|x| !matches!(x.state, RecipientState::Pending))
        };
        wait_until(|| r.store.get(id).is_some_and(|e| done_early(&e))).await;
        assert!(r.qmgr.is_active(id), "the stalled item is still out");
        assert_eq!(r.calls("stall.example"), 1);
        let e = r.store.get(id).unwrap();
        let states = states(&e);
        assert!(
            states[..6].iter().all(|s| *s == RecipientState::Sent),
            "{states:?}"
        );
        assert!(matches!(&states[6], RecipientState::Bounced { status, .. } if status == "5.1.1"));
        assert!(matches!(states[7], RecipientState::Deferred { .. }));
        assert_eq!(states[8], RecipientState::Pending);
        assert_eq!((e.meta.queue, e.meta.attempts), (QueueName::Incoming, 0));
        let mbox =
            || std::fs::read_to_string(r._tmp.path().join("mail/sender")).unwrap_or_default();
        let reports = |who: &str| {
            mbox()
                .matches(&format!("Final-Recipient: rfc822; {who}"))
                .count()
        };
        wait_until(|| reports("u0@fast0.example") == 1).await;

        r.script.stall.add_permits(1);
        // Retried twice since (backoff 1 s): only later@ is open.
        wait_until(|| r.store.get(id).is_some_and(|e| e.meta.attempts >= 2)).await;
        let e = r.store.get(id).unwrap();
        assert_eq!(e.meta.queue, QueueName::Deferred);
        assert_eq!(e.meta.envelope.recipients[8].state, RecipientState::Sent);
        for host in (0..7).map(|i| format!("fast{i}.example")) {
            assert_eq!(r.calls(&host), 1, "{host} tried again");
        }
        assert_eq!(r.calls("stall.example"), 1);
        // Six fast ones, the stalled one and the success notice (delivered here); one bounce.
        wait_until(|| r.qmgr.outcome_totals() == (8, 1)).await;
        assert_eq!(reports("u0@fast0.example"), 1, "one success notice");
        assert_eq!(
            reports("bad@fast6.example"),
            0,
            "no bounce before the message is done"
        );
        r.stop.send(true).unwrap();
    }

    /// The common case pays nothing: a message with one destination is recorded once, by
    /// its removal (the store's commit counters count every record written).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_with_one_destination_writes_only_its_removal() {
        let r = rig(|_| {}, 0);
        let before = r.store.commit_stats().records;
        let id = r.send("s@test.example", &["a@far.example", "b@far.example"]);
        wait_until(|| !r.store.contains(id)).await;
        assert_eq!(
            r.store.commit_stats().records - before,
            2,
            "enqueue and removal"
        );
        let id = r.send("s@test.example", &["a@far.example", "b@stall.example"]);
        let sent = |e: queue::Entry| e.meta.envelope.recipients[0].state == RecipientState::Sent;
        wait_until(|| r.store.get(id).is_some_and(sent)).await;
        r.script.stall.add_permits(1);
        wait_until(|| !r.store.contains(id)).await;
        assert_eq!(
            r.store.commit_stats().records - before,
            5,
            "two destinations: one early record more"
        );
        r.stop.send(true).unwrap();
    }

    /// `postsuper -h` while a destination is still out, after another's outcomes were
    /// recorded early: the hold stands, and the last item's record keeps the message held.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hold_made_while_a_destination_is_out_stands() {
        let r = rig(|_| {}, 0);
        let id = r.send("s@test.example", &["a@far.example", "later@stall.example"]);
        let sent = |e: &queue::Entry| e.meta.envelope.recipients[0].state == RecipientState::Sent;
        wait_until(|| r.store.get(id).is_some_and(|e| sent(&e))).await;
        let meta = r.store.get(id).unwrap().meta;
        let hold = queue::Update {
            queue: QueueName::Hold,
            ..queue::Update::keep(&meta)
        };
        r.store.update(id, hold).unwrap();
        r.script.stall.add_permits(1);
        wait_until(|| !r.qmgr.is_active(id)).await;
        let e = r.store.get(id).unwrap();
        assert_eq!(e.meta.queue, QueueName::Hold);
        assert!(sent(&e));
        assert!(matches!(
            e.meta.envelope.recipients[1].state,
            RecipientState::Deferred { .. }
        ));
        r.stop.send(true).unwrap();
    }
}
