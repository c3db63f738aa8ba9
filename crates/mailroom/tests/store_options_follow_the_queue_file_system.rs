//! `queue_prezero_segments` and `queue_dsync_writes` default to `auto`: on where the queue is
//! on an ext4 with a journal (where they save each group commit's journal commit), off on
//! one without (and on other file systems); `yes`/`no` win over what is found. Each case
//! mounts a small ext4 of its own on the queue directory, starts the daemon, reads its
//! start line, queues a message, and looks at the segment files: a pre-zeroed segment is
//! made whole (16 MiB of zeros) before any record is written to it, a plain one grows with
//! its records.

use std::path::Path;

use testkit::*;

/// The store's segment size (queue's `StoreOptions::default`).
const SEGMENT: u64 = 16 << 20;

/// Starts the daemon with its queue on a fresh ext4, queues one message; the start line and
/// the segment sizes, or `None` (printed) when the file system cannot be made.
fn run(case: &str, journal: bool, extra: &str) -> Option<(String, Vec<u64>)> {
    let mut world = World::new(&format!("queue_minfree = \"1M\"\n{extra}"));
    let fs = match LoopExt4::mount(&world.env.queue_dir(), 64, journal) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED {case}: cannot make a loop-mounted ext4: {why}");
            return None;
        }
    };
    world.start();
    let line = world.env.wait_log("queue store: pre-zeroed segments", 1)[0].clone();
    let mut c = world.client();
    c.send_mail(
        "a@example.org",
        "",
        &[("alice@localhost", "")],
        "Subject: one\n\nx\n",
    )
    .expect("queued");
    world.env.wait_mbox("alice", 1);
    let sizes = segment_sizes(&world.env.queue_dir().join("store"));
    drop(world);
    drop(fs);
    Some((line, sizes))
}

fn segment_sizes(dir: &Path) -> Vec<u64> {
    let mut segments: Vec<(String, u64)> = std::fs::read_dir(dir)
        .expect("store directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".seg"))
        .map(|name| {
            let len = std::fs::metadata(dir.join(&name)).unwrap().len();
            (name, len)
        })
        .collect();
    segments.sort();
    segments.into_iter().map(|(_, len)| len).collect()
}

#[test]
fn on_a_journaled_ext4_auto_turns_both_options_on() {
    let Some((line, sizes)) = run("on_a_journaled_ext4_auto_turns_both_options_on", true, "")
    else {
        return;
    };
    assert!(
        line.ends_with("queue store: pre-zeroed segments on, O_DSYNC writes on (queue_prezero_segments = auto, queue_dsync_writes = auto; the queue is on a journaled ext4)"),
        "{line}"
    );
    assert!(sizes.iter().all(|&len| len == SEGMENT), "{sizes:?}");
}

#[test]
fn without_a_journal_auto_leaves_them_off_and_yes_or_no_win() {
    let case = "without_a_journal_auto_leaves_them_off_and_yes_or_no_win";
    let Some((line, sizes)) = run(case, false, "") else {
        return;
    };
    assert!(
        line.ends_with("queue store: pre-zeroed segments off, O_DSYNC writes off (queue_prezero_segments = auto, queue_dsync_writes = auto; the queue is not on a journaled ext4)"),
        "{line}"
    );
    assert!(sizes.iter().all(|&len| len < SEGMENT), "{sizes:?}");

    // `yes` without a journal, `no` with one: the setting wins, nothing is detected.
    let (line, sizes) = run(case, false, "queue_prezero_segments = true\n").unwrap();
    assert!(
        line.ends_with("queue store: pre-zeroed segments on, O_DSYNC writes on (queue_prezero_segments = yes, queue_dsync_writes = auto)"),
        "{line}"
    );
    assert!(sizes.iter().all(|&len| len == SEGMENT), "{sizes:?}");
    let (line, sizes) = run(case, true, "queue_prezero_segments = \"no\"\n").unwrap();
    assert!(
        line.ends_with("queue store: pre-zeroed segments off, O_DSYNC writes off (queue_prezero_segments = no, queue_dsync_writes = auto)"),
        "{line}"
    );
    assert!(sizes.iter().all(|&len| len < SEGMENT), "{sizes:?}");
}
