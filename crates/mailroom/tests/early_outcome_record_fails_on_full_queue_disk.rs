//! A message to two destinations on a full queue disk. The fast destination answers while
//! the slow one still has the message, so its outcome is recorded on its own first (the
//! early record, `sched/src/carry.rs`), and that write fails: ENOSPC. The outcome must then
//! go with the rest of the message. While the disk stays full, the fast recipient must not
//! be delivered again, not even by a flush, and its delivery must not be logged twice. The
//! slow destination's answer then meets a disk that is still full too: the message's final
//! removal is retried until there is space. Each recipient ends with exactly one copy and
//! one `status=sent` line, and the queue is empty.
//!
//! Real pieces: `serve` with its queue on a 16 MB tmpfs (`queue_minfree = 0`), two Postfix
//! smtp-sinks by transport_maps, the slow one answering each final dot after 3 s. The
//! messages are deferred while both sinks are down, then the file system is filled to the
//! last page and `postqueue -f` runs.

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use testkit::fault::*;
use testkit::*;

const SCENARIO: &str = "early-outcome-record-on-full-disk";
/// Enough that the records written after the fill outgrow the last page the store's
/// segment already has (a write into it still succeeds on a full tmpfs).
const MESSAGES: usize = 30;
const EARLY_FAILED: &str = "it is recorded with the rest of the message";
const FINAL_RETRIED: &str = "cannot remove the delivered message from the queue";
const FAST: &str = "rcpt@fast.example";
const SLOW: &str = "rcpt@slow.example";

/// `status=sent` lines for `rcpt`.
fn sent_lines(world: &World, rcpt: &str) -> usize {
    world
        .lines_with(&[&format!("to=<{rcpt}>"), "status=sent"])
        .len()
}

#[test]
fn a_failed_early_record_waits_for_the_message_and_delivers_nothing_twice() {
    if skip_unless_peers(SCENARIO) {
        return;
    }
    let (fast_port, slow_port) = (free_port(), free_port());
    let mut world = World::builder().smtp().build();
    let transport = world.env.root.join("transport");
    fs::write(
        &transport,
        format!(
            "fast.example smtp:[127.0.0.1]:{fast_port}\nslow.example smtp:[127.0.0.1]:{slow_port}\n"
        ),
    )
    .unwrap();
    world.configure(&format!(
        "queue_minfree = 0\n\
         minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n\
         transport_maps = [\"{}\"]\n",
        transport.display()
    ));
    let tmpfs = match Tmpfs::mount(&world.env.queue_dir(), "16m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED {SCENARIO}: {why}");
            return;
        }
    };
    world.start();
    let tags: Vec<String> = (0..MESSAGES).map(|m| format!("early-{m}")).collect();
    for tag in &tags {
        world.submit("sender@client.test", &[FAST, SLOW], &tagged_message(tag, 2));
    }
    world.wait_lines(&["status=deferred"], 2 * MESSAGES);

    tmpfs.fill("filler");
    let filler = tmpfs.dir.join("filler");
    let fast = DumpSink::start(&world.env, fast_port);
    let slow = DumpSink::start_with(&world.env, slow_port, &["-W", ".:3"]);
    world.run_ok(&["postqueue", "-f"]);

    // The fast destination has every message, and early records failed once the last
    // page was used up.
    fast.wait_for(&tags, DEADLINE);
    world.wait_lines(&[EARLY_FAILED], 1);
    // Not logged as sent yet (the line comes with the record), and not sent again by a
    // second flush while the slow destination is still out.
    let flushes = world.lines_with(&["flush requested"]).len();
    world.run_ok(&["postqueue", "-f"]);
    world.wait_lines(&["flush requested"], flushes + 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        fast.copies().duplicated(),
        0,
        "the fast recipient was delivered again while its outcome was unrecorded"
    );

    // The slow destination answers onto a disk that is still full: the messages' removals
    // fail and are retried.
    slow.wait_for(&tags, DEADLINE);
    world.wait_lines(&[FINAL_RETRIED, "will retry in"], 1);
    assert_eq!(
        fast.copies().duplicated(),
        0,
        "the fast recipient was delivered again during the retries"
    );
    // Nothing logged as removed is still queued, and every message is one or the other (a
    // snapshot in which the log did not move while the queue was read).
    let (queued, removed) = (0..20)
        .find_map(|_| {
            let log = world.env.log();
            let queued: BTreeSet<String> = world.queue().into_iter().map(|(_, id, _)| id).collect();
            (world.env.log() == log).then(|| (queued, world.removed_ids()))
        })
        .expect("the log kept moving while the queue was read");
    assert!(queued.is_disjoint(&removed), "logged as removed yet queued");
    assert_eq!(queued.len() + removed.len(), MESSAGES);
    assert!(
        !queued.is_empty(),
        "every record went through: the test proves nothing"
    );

    // Space again: the retried records go through and the queue empties.
    fs::remove_file(&filler).unwrap();
    world.env.wait_queue_empty();
    world.wait_lines(&[": removed"], MESSAGES);
    for (name, sink) in [("fast", &fast), ("slow", &slow)] {
        let copies = sink.copies();
        assert!(copies.incomplete.is_empty(), "{name}: torn copies");
        for tag in &tags {
            let n = copies.by_tag.get(tag).map_or(0, Vec::len);
            assert_eq!(n, 1, "{name}: {tag} delivered {n} times");
        }
    }
    assert_eq!(sent_lines(&world, FAST), MESSAGES, "fast status=sent lines");
    assert_eq!(sent_lines(&world, SLOW), MESSAGES, "slow status=sent lines");
    say(&format!(
        "{SCENARIO}: {} early records failed, {} removals retried, each recipient once",
        world.lines_with(&[EARLY_FAILED]).len(),
        world.lines_with(&[FINAL_RETRIED, "will retry in"]).len()
    ));
    drop(world.daemon.take());
    drop(tmpfs);
}
