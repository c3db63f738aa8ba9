//! Fault suite: the mailbox file system fills up during local delivery (the mail spool on a
//! 2 MB tmpfs, filled to the last page while mail keeps arriving).
//!
//! Each message is bigger than a page, so an append that starts in the slack of a mailbox's
//! last page runs out of space halfway: the agent must cut the mailbox back to where it was
//! (no torn message for the reader, no half copy that a retry would double), report the
//! delivery as deferred, and deliver it whole exactly once when space returns. A mailbox
//! that does not exist yet (its first message) must not be left behind as a torn file or a
//! stale dotlock either.

mod common;
mod fault_common;
mod issue4_common;

use std::collections::BTreeMap;
use std::fs;

use common::*;
use fault_common::*;

const SCENARIO: &str = "mailbox-disk-full";
const BEFORE: usize = 4;
const WHILE_FULL: usize = 24;
/// Lines of padding: about 6 KB, more than a page.
const PAD: usize = 80;

#[test]
fn mailbox_disk_full_defers_without_tearing_or_doubling_and_delivers_once_space_returns() {
    if skip_unless_root(SCENARIO) {
        return;
    }
    let env = TestEnv::new();
    let tmpfs = Tmpfs::mount(&env.spool_dir(), "2m");
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
    let deferred = env.wait_log("status=deferred", WHILE_FULL).len();
    let sizes_while_full: Vec<u64> = users.iter().map(|u| file_len(&env, u)).collect();
    let torn_while_full = whole_copies(&env, &users).1;

    // Space returns: everything arrives, once, whole.
    fs::remove_file(tmpfs.dir.join("filler")).unwrap();
    env.wait_all(&users, BEFORE + WHILE_FULL);
    env.wait_queue_empty();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (copies, torn) = whole_copies(&env, &users);
    let lost: Vec<&String> = acked.iter().filter(|t| !copies.contains_key(*t)).collect();
    let duplicated: usize = copies.values().map(|n| n - 1).sum();
    Summary {
        scenario: SCENARIO,
        runs: 1,
        acknowledged: acked.len(),
        lost: lost.len(),
        duplicated,
        notes: format!(
            "deferred_lines={deferred} torn_while_full={torn_while_full} torn_after={torn} \
             mbox_bytes_before={sizes:?} while_full={sizes_while_full:?}"
        ),
    }
    .print();

    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {lost:?}"
    );
    assert_eq!(duplicated, 0, "delivered twice: {copies:?}");
    assert_eq!(torn_while_full, 0, "a torn message was left in a mailbox");
    assert_eq!(torn, 0, "a torn message is in a mailbox");
    assert_eq!(
        sizes_while_full, sizes,
        "a failed append must leave the mailbox as it was"
    );
    drop(daemon);
    drop(tmpfs);
}

fn file_len(env: &TestEnv, user: &str) -> u64 {
    fs::metadata(env.mbox(user)).map(|m| m.len()).unwrap_or(0)
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
