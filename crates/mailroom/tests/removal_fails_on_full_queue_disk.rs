//! Issue 8, defect 1: deliveries on a full queue file system. The mail goes out, but the
//! removal records cannot be written. A removal that failed must not be logged as done,
//! must be retried until it works, and the message must not be delivered again while the
//! daemon runs; after a crash at most `default_process_limit` (the in-flight bound) may be.
//!
//! Real pieces: `serve` with its queue on a 16 MB tmpfs (`queue_minfree = 0`), Postfix's
//! smtp-sink as the relay, 200 messages deferred while the sink is down, the file system
//! filled to the last page, then `postqueue -f`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use testkit::*;

const MESSAGES: usize = 200;
const PROCESS_LIMIT: usize = 10;
const REMOVAL_FAILED: &str = "cannot remove the delivered message from the queue";

/// A daemon whose 200 messages wait for a relay that is down, on a queue disk that is
/// full; the sink is up now. Returns the world, the sink, the mount and the filler.
fn deferred_mail_on_a_full_queue_disk(test: &str) -> Option<(World, Sink, Tmpfs, PathBuf)> {
    let port = free_port(); // nothing listens yet
    let mut world = World::builder()
        .smtp()
        .peer(&port)
        .config(&format!(
            "queue_minfree = 0\n\
         default_process_limit = {PROCESS_LIMIT}\n\
         minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n"
        ))
        .build();
    let tmpfs = match Tmpfs::mount(&world.env.queue_dir(), "16m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            return None;
        }
    };
    world.start();
    for i in 0..MESSAGES {
        world.submit(
            "sender@test.example",
            &["someone@far.example"],
            &message(&format!("full-{i}")),
        );
    }
    world.wait_lines(&["to=<someone@far.example>", "status=deferred"], MESSAGES);
    tmpfs.fill("filler");
    let filler = tmpfs.dir.join("filler");
    let sink = Sink::start_on(&world.env.root, port, &[]);
    world.run_ok(&["postqueue", "-f"]);
    world.wait_lines(&[REMOVAL_FAILED], 1);
    Some((world, sink, tmpfs, filler))
}

/// Queue IDs of the `QUEUEID: to=<...>, ... status=sent` lines (logged before the removal
/// is tried), with the number of lines each has: a message delivered twice has two.
fn logged_sent(world: &World) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for line in world.lines_with(&["to=<someone@far.example>", "status=sent"]) {
        if let Some(id) = line
            .split(": to=<")
            .next()
            .and_then(|l| l.rsplit(' ').next())
        {
            *ids.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    ids
}

/// Waits until the sink has counted every delivery the daemon logged (it may have one more
/// per slot: a 250 the daemon had not logged yet, or never did when it was killed); returns
/// the count.
fn all_counted(world: &World, sink: &Sink) -> usize {
    wait_until("the sink to count every logged delivery", || {
        sink.messages() >= logged_sent(world).values().sum::<usize>()
    });
    sink.messages()
}

/// Messages logged as delivered whose removal is not logged: they hold delivery slots.
fn unrecorded(world: &World) -> usize {
    let removed = world.removed_ids();
    logged_sent(world)
        .keys()
        .filter(|id| !removed.contains(*id))
        .count()
}

fn queued_ids(world: &World) -> BTreeSet<String> {
    world.queue().into_iter().map(|(_, id, _)| id).collect()
}

/// While the disk is full: nothing is logged `removed` that is still queued, the mail
/// whose removal failed is not delivered again (not even by another flush), and no more
/// than the in-flight bound is delivered but unrecorded. Each is checked on the log and
/// the queue, which hold at any moment: deliveries need not have stopped (a retried
/// removal can succeed while the disk is full, freeing a slot for another delivery).
fn check_while_full(world: &World, sink: &Sink) {
    // Every slot held by a failed removal at least once: the bound is reached.
    wait_until("every delivery slot held by a failed removal", || {
        unrecorded(world) == PROCESS_LIMIT
    });
    // A retried removal may succeed between reading the queue and reading the log: take a
    // snapshot in which the log did not move while the queue was read.
    let (queued, removed, held) = (0..20)
        .find_map(|_| {
            let log = world.env.log();
            let queued = queued_ids(world);
            (world.env.log() == log).then(|| (queued, world.removed_ids(), unrecorded(world)))
        })
        .expect("the log kept moving while the queue was read");
    let lies: Vec<&String> = removed.intersection(&queued).collect();
    assert!(
        lies.is_empty(),
        "logged as removed yet still queued: {lies:?}"
    );
    eprintln!(
        "full queue disk: {} delivered, {} removals durable, {held} retried, {} queued",
        removed.len() + held,
        removed.len(),
        queued.len()
    );
    assert!(
        !world.lines_with(&[REMOVAL_FAILED]).is_empty(),
        "no removal failed: the test proves nothing"
    );
    assert!(
        held <= PROCESS_LIMIT,
        "{held} delivered but unrecorded messages exceed default_process_limit {PROCESS_LIMIT}"
    );
    assert_eq!(queued.len(), MESSAGES - removed.len());
    // The second flush: once the daemon has logged it, give it time to (wrongly) send the
    // held messages again. A message sent again has a second status=sent line.
    let flushes = world.lines_with(&["flush requested"]).len();
    world.run_ok(&["postqueue", "-f"]);
    world.wait_lines(&["flush requested"], flushes + 1);
    std::thread::sleep(Duration::from_secs(3));
    let twice: Vec<String> = logged_sent(world)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(
        twice.is_empty(),
        "a second flush delivered mail again: {twice:?}"
    );
    all_counted(world, sink);
}

#[test]
fn failed_removal_is_retried_not_logged_as_done_and_not_delivered_again() {
    let test = "failed_removal_is_retried_not_logged_as_done_and_not_delivered_again";
    let Some((mut world, sink, tmpfs, filler)) = deferred_mail_on_a_full_queue_disk(test) else {
        return;
    };
    check_while_full(&world, &sink);

    // Space again: the retried removals go through, the rest is delivered, each once.
    std::fs::remove_file(&filler).unwrap();
    let all = poll_for(DEADLINE, || sink.messages() >= MESSAGES);
    assert!(
        all,
        "only {} delivered; log:\n{}",
        sink.messages(),
        tail(&world.env.log(), 30)
    );
    world.env.wait_queue_empty();
    // `removed` is logged once the removal is durable: after the queue is seen empty.
    world.wait_lines(&[": removed"], MESSAGES);
    assert_eq!(
        all_counted(&world, &sink),
        MESSAGES,
        "each message delivered exactly once"
    );
    assert_eq!(world.removed_ids().len(), MESSAGES);
    assert_eq!(
        world
            .lines_with(&["to=<someone@far.example>", "status=sent"])
            .len(),
        MESSAGES
    );
    drop(world.daemon.take());
    drop(tmpfs);
}

#[test]
fn after_a_crash_with_unrecorded_removals_at_most_the_in_flight_bound_goes_out_twice() {
    let test = "after_a_crash_with_unrecorded_removals_at_most_the_in_flight_bound_goes_out_twice";
    let Some((mut world, sink, tmpfs, filler)) = deferred_mail_on_a_full_queue_disk(test) else {
        return;
    };
    check_while_full(&world, &sink);
    world.daemon.take().expect("running").kill9();
    // The dead daemon's log is final: what it delivered without recording the removal.
    let unrecorded = unrecorded(&world);

    std::fs::remove_file(&filler).unwrap();
    world.start();
    world.run_ok(&["postqueue", "-f"]);
    world.env.wait_queue_empty();
    let total = all_counted(&world, &sink);
    eprintln!(
        "after the crash: {total} deliveries of {MESSAGES} messages, {} duplicates ({unrecorded} were unrecorded at the kill)",
        total - MESSAGES
    );
    assert!(total >= MESSAGES, "lost mail: {total} of {MESSAGES}");
    // Each duplicate held a delivery slot at the kill: logged sent but not removed, or sent
    // and not logged yet (so the log's count of unrecorded ones is not the bound).
    assert!(
        total - MESSAGES <= PROCESS_LIMIT,
        "{} duplicates > default_process_limit {PROCESS_LIMIT} ({unrecorded} were logged sent, not removed, at the kill)",
        total - MESSAGES
    );
    drop(world.daemon.take());
    drop(tmpfs);
}
