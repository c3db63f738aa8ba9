//! Outcomes that cannot be recorded (a full queue file system, for real: a tiny tmpfs) are
//! retried, not logged as done, and the mail is not delivered again meanwhile.

use crate::tests::{config, mbox_count};
use crate::{QueueManager, Shared};
use agents::LocalAgent;
use envelope::{Envelope, QueueId};
use queue::{Store, StoreOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// A size-limited tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .map_err(|e| e.to_string())?
            .success();
        ok.then(|| Tmpfs(dir.to_path_buf()))
            .ok_or_else(|| "mount failed".to_string())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes pages into `path` until the file system is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    while f.write_all(&[0u8; 4096]).is_ok() {}
}

const PAGE: u64 = 4096;

/// Queues two messages for alice so the log ends exactly on a page: the next record then
/// needs a page of its own, which a full tmpfs refuses.
fn two_messages_ending_on_a_page(store: &Store) -> [QueueId; 2] {
    let env = || Envelope::new("s@test.example", vec!["alice@localhost".into()], 1);
    let first = QueueId::generate();
    store.enqueue(first, env(), b"x").unwrap();
    let len = store.get(first).unwrap().location.record_len;
    let overhead = len - 1;
    let pad = (PAGE - (len + overhead) % PAGE) % PAGE;
    let second = QueueId::generate();
    store
        .enqueue(second, env(), &vec![b'y'; pad as usize])
        .unwrap();
    [first, second]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_removal_is_retried_not_logged_as_done_and_not_delivered_again() {
    if !is_root() {
        eprintln!("SKIPPED failed_removal_is_retried_not_logged_as_done_and_not_delivered_again: not running as root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let _tmpfs = Tmpfs::mount(&cfg.queue_directory, "1m").expect("mount tmpfs");
    let (store, _) = Store::open(&cfg.queue_directory, StoreOptions::default()).unwrap();
    let ids = two_messages_ending_on_a_page(&store);
    let filler = cfg.queue_directory.join("filler");
    fill(&filler);

    let agent = LocalAgent::new(&cfg).unwrap();
    let shared = Arc::new(Shared::new(store.clone(), cfg, agent).unwrap());
    let qmgr = QueueManager::new(shared);
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = tokio::spawn(qmgr.clone().run(stop_rx, Duration::from_secs(5)));

    let delivered = wait(Duration::from_secs(10), || {
        mbox_count(tmp.path(), "alice") == 2
    })
    .await;
    assert!(delivered, "both messages delivered");
    tokio::time::sleep(Duration::from_secs(4)).await; // several retries of the removal
    assert_eq!(mbox_count(tmp.path(), "alice"), 2, "not delivered again");
    for id in ids {
        assert!(
            store.contains(id),
            "{id}: the removal cannot be durable yet"
        );
        assert!(
            qmgr.is_active(id),
            "{id}: still being finished, not forgotten"
        );
    }

    std::fs::remove_file(&filler).unwrap();
    let drained = wait(Duration::from_secs(40), || store.is_empty()).await;
    assert!(
        drained,
        "the retried removals went through once space was back"
    );
    assert_eq!(mbox_count(tmp.path(), "alice"), 2, "each delivered once");
    stop_tx.send(true).unwrap();
    run.await.unwrap();
}

async fn wait(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}
