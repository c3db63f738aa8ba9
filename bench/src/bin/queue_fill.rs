//! `queue_fill`: fills a mailroom queue store with N deferred messages for
//! `bench/queue-tools-bench.sh`, writing through the queue crate (`Store::enqueue` from many
//! threads, so intakes share fdatasyncs by group commit, then `apply_many` for the deferral
//! records) — the same records, in the same log, that pickup and the scheduler write.
//!
//! Why not sendmail: a million `sendmail` runs at a few hundred per second would take an
//! hour or more before the tools could be timed; the tools only see the store, and the store
//! holds the same bytes either way.
//!
//! Each message: ~1 KiB, one recipient `root@dN.example` (1,000 domains), one of 50 cron
//! senders, arrival spread over the last two days, deferred with a realistic reason and a
//! retry time 1-2 hours ahead (so a running daemon leaves them alone while being measured).
//!
//! Run: `queue_fill QUEUE_DIR COUNT [THREADS]`. Needs no daemon running on QUEUE_DIR.

#![forbid(unsafe_code)]

use envelope::{Envelope, QueueId, RecipientState};
use queue::{Op, QueueName, Store, StoreOptions, Update};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: queue_fill QUEUE_DIR COUNT [THREADS]");
        std::process::exit(64);
    }
    let dir = PathBuf::from(&args[1]);
    let count: usize = args[2].parse().expect("COUNT");
    let threads: usize = args
        .get(3)
        .map(|t| t.parse().expect("THREADS"))
        .unwrap_or(64);
    let (store, _) = Store::open(&dir, StoreOptions::default()).expect("open store");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = body();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let start = next.fetch_add(1000, Ordering::Relaxed);
                if start >= count {
                    return;
                }
                let end = (start + 1000).min(count);
                let mut ops = Vec::with_capacity(end - start);
                for i in start..end {
                    let id = QueueId::generate();
                    let env = envelope(i, now);
                    store.enqueue(id, env, &body).expect("enqueue");
                    ops.push(deferral(id, i, now));
                }
                store.apply_many(ops).expect("defer");
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let stats = store.commit_stats();
    println!(
        "queue_fill: {count} messages in {secs:.1}s ({:.0}/s), {} records in {} fdatasyncs",
        count as f64 / secs,
        stats.records,
        stats.batches
    );
}

fn body() -> Vec<u8> {
    let mut b = b"Received: by host.example (mailroom)\nSubject: Cron <root@host> /usr/local/bin/report\nFrom: cron@host.example\n\n".to_vec();
    while b.len() < 1024 {
        b.extend_from_slice(b"report line: everything is fine, nothing to see here.\n");
    }
    b.truncate(1023);
    b.push(b'\n');
    b
}

fn envelope(i: usize, now: u64) -> Envelope {
    let sender = format!("cron@host{}.example", i % 50);
    let rcpt = format!("root@d{}.example", (i * 7919) % 1000);
    let mut env = Envelope::new(sender, vec![rcpt], now - (i as u64 * 7) % 172_800);
    env.origin = "pickup".into();
    env
}

fn deferral(id: QueueId, i: usize, now: u64) -> Op {
    let d = (i * 7919) % 1000;
    let reason = format!(
        "connect to mx.d{d}.example[192.0.2.{}]:25: Connection refused",
        d % 250
    );
    Op::Update(
        id,
        Update {
            recipients: vec![(0, RecipientState::Deferred { reason })],
            queue: QueueName::Deferred,
            next_attempt: now + 3600 + (i as u64 % 3600),
            attempts: 1,
            delay_warned: false,
        },
    )
}
