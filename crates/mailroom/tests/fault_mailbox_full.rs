//! Fault suite: the mailbox file system fills up during local delivery (the mail spool on a
//! 2 MB tmpfs, filled to the last page while mail keeps arriving).
//!
//! Each message is bigger than a page, so an append that starts in the slack of a mailbox's
//! last page runs out of space halfway: the agent must cut the mailbox back to where it was
//! (no torn message for the reader, no half copy that a retry would double), report the
//! delivery as deferred, and deliver it whole exactly once when space returns. A mailbox
//! that does not exist yet (its first message) must not be left behind as a torn file or a
//! stale dotlock either.

use std::collections::BTreeMap;
use std::fs;

use testkit::fault::*;
use testkit::*;

const SCENARIO: &str = "mailbox-disk-full";
const BEFORE: usize = 4;
const WHILE_FULL: usize = 24;
/// Lines of padding: about 6 KB, more than a page.
const PAD: usize = 80;

/// What one run measured.
struct MailboxRun {
    acked: usize,
    lost: Vec<String>,
    duplicated: usize,
    deferred_lines: usize,
    torn_while_full: usize,
    torn_after: usize,
    sizes: Vec<u64>,
    sizes_while_full: Vec<u64>,
}

fn mailbox_run() -> MailboxRun {
    let env = TestEnv::new();
    let tmpfs = Tmpfs::mount(&env.spool_dir(), "2m").unwrap_or_else(|e| panic!("mount tmpfs: {e}"));
    let users: Vec<String> = ["alice", "bob", "carol"].map(String::from).to_vec();
    let daemon = env.start();
    let submit = |tag: &str, user: &str| {
        let text = tagged_message(tag, PAD).replace("\r\n", "\n");
        env.send_ok(&["-i", &format!("{user}@localhost")], text.as_bytes());
        tag.to_string()
    };

    // Mailboxes with mail in them (carol has none yet).
    let mut acked: Vec<String> = (0..BEFORE)
        .map(|i| submit(&format!("before-{i}"), &users[i % 2]))
        .collect();
    env.wait_all(&users, BEFORE);
    env.wait_queue_empty();

    // Full to the last page; the mail keeps coming.
    tmpfs.fill("filler");
    let sizes: Vec<u64> = users.iter().map(|u| file_len(&env, u)).collect();
    acked.extend((0..WHILE_FULL).map(|i| submit(&format!("full-{i}"), &users[i % 3])));
    let deferred_lines = env.wait_log("status=deferred", WHILE_FULL).len();
    let sizes_while_full: Vec<u64> = users.iter().map(|u| file_len(&env, u)).collect();
    let torn_while_full = whole_copies(&env, &users).1;

    // Space returns: everything arrives, once, whole.
    fs::remove_file(tmpfs.dir.join("filler")).unwrap();
    env.wait_all(&users, BEFORE + WHILE_FULL);
    env.wait_queue_empty();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (copies, torn_after) = whole_copies(&env, &users);
    drop(daemon);
    drop(tmpfs);
    MailboxRun {
        acked: acked.len(),
        lost: acked
            .into_iter()
            .filter(|t| !copies.contains_key(t))
            .collect(),
        duplicated: copies.values().map(|n| n - 1).sum(),
        deferred_lines,
        torn_while_full,
        torn_after,
        sizes,
        sizes_while_full,
    }
}

#[test]
fn mailbox_disk_full_defers_without_tearing_or_doubling_and_delivers_once_space_returns() {
    const RUNS: usize = 3;
    if skip_unless_root(SCENARIO) {
        return;
    }
    let runs: Vec<MailboxRun> = (0..RUNS).map(|_| mailbox_run()).collect();
    let sum = |f: fn(&MailboxRun) -> usize| runs.iter().map(f).sum::<usize>();
    Summary {
        scenario: SCENARIO,
        runs: RUNS,
        acknowledged: sum(|r| r.acked),
        lost: sum(|r| r.lost.len()),
        duplicated: sum(|r| r.duplicated),
        notes: format!(
            "deferred_lines={} torn_while_full={} torn_after={} mbox_bytes_before={:?} \
             while_full={:?}",
            sum(|r| r.deferred_lines),
            sum(|r| r.torn_while_full),
            sum(|r| r.torn_after),
            runs[0].sizes,
            runs[0].sizes_while_full
        ),
    }
    .print();

    for run in &runs {
        assert!(
            run.lost.is_empty(),
            "acknowledged, never delivered: {:?}",
            run.lost
        );
        assert_eq!(run.duplicated, 0, "delivered twice");
        assert_eq!(
            run.torn_while_full, 0,
            "a torn message was left in a mailbox"
        );
        assert_eq!(run.torn_after, 0, "a torn message is in a mailbox");
        assert_eq!(
            run.sizes_while_full, run.sizes,
            "a failed append must leave the mailbox as it was"
        );
    }
}
/// Read under the mailbox lock: a retried append in progress (written, not yet cut back)
/// is not what the mailbox holds.
fn file_len(env: &TestEnv, user: &str) -> u64 {
    env.mbox_len(user)
}

/// Whole tagged messages in the mailboxes (tag → copies) and the number of messages that
/// are not whole, as Python's `mailbox` module splits them.
fn whole_copies(env: &TestEnv, users: &[String]) -> (BTreeMap<String, usize>, usize) {
    let mut copies = BTreeMap::new();
    let mut torn = 0;
    for message in env.mboxes(users).into_iter().flatten() {
        match tag_of(&message.raw) {
            Some(tag) if message.subject.as_deref() == Some(tag.as_str()) => {
                *copies.entry(tag).or_insert(0) += 1;
            }
            _ => torn += 1,
        }
    }
    (copies, torn)
}
