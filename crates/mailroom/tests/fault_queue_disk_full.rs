//! Fault suite: the queue file system fills up (a size-limited tmpfs under `queue/`).
//!
//! - During intake: below `queue_minfree` the daemon answers `452 4.3.1` (DESIGN invariant
//!   3); with the guard off (`queue_minfree = 0`) and the disk really full, the failed group
//!   commit answers a temporary error too. Every acknowledged message is delivered once
//!   space returns and the relay comes up; no refused message is delivered (its client will
//!   send it again); the daemon never drops a client.
//! - During deliveries (issue 8 defect 1): 200 deferred messages, the disk filled to the
//!   last page, then the relay comes back. The deliveries succeed but their outcomes cannot
//!   be recorded: they must be retried (not logged as done and forgotten), and nothing may
//!   go out twice while the disk is full. Two runs: space returns to the running daemon
//!   (the queue drains, nothing is sent again, not even after a later `kill -9` and
//!   restart), or the daemon is killed while the disk is full (after the restart only the
//!   messages in flight at the kill go out again: at most `default_process_limit`).

use std::collections::BTreeSet;
use std::fs;
use std::thread;
use std::time::Duration;

use testkit::fault::*;
use testkit::*;

const PROCESS_LIMIT: usize = 10;
/// Lines of padding: a message of about 5 KB.
const PAD: usize = 64;

/// Sends tagged messages from `clients` threads until each has `per_client` outcomes or
/// `stop_when_refused` refusals in a row.
fn push(port: u16, prefix: &str, clients: usize, per_client: usize, refusals: usize) -> Tally {
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let prefix = format!("{prefix}-{c}");
            thread::spawn(move || {
                let mut tally = Tally::default();
                let mut in_a_row = 0;
                for n in 0..per_client {
                    let tag = format!("{prefix}-{n}");
                    match send_tagged(port, &tag, "someone@example.net", PAD) {
                        Sent::Acked => {
                            in_a_row = 0;
                            tally.acked.push(tag);
                        }
                        Sent::Refused(line) => {
                            in_a_row += 1;
                            tally.refused.push((tag, line));
                        }
                        Sent::Broken(why) => tally.broken.push(format!("{tag}: {why}")),
                    }
                    if in_a_row >= refusals {
                        break;
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for h in handles {
        let t = h.join().expect("client thread");
        total.acked.extend(t.acked);
        total.refused.extend(t.refused);
        total.broken.extend(t.broken);
    }
    total
}

#[test]
fn queue_disk_full_during_intake_refuses_with_4xx_and_loses_nothing() {
    const SCENARIO: &str = "queue-disk-full-intake";
    if skip_unless_root(SCENARIO) || skip_unless_peers(SCENARIO) {
        return;
    }
    let sink_port = free_port(); // nothing listens yet: everything queued stays queued
    let relay = format!("relayhost = \"[127.0.0.1]:{sink_port}\"\n");
    let mut world = World::new(&format!("{relay}queue_minfree = \"4M\"\n"));
    let tmpfs =
        Tmpfs::mount(&world.env.queue_dir(), "24m").unwrap_or_else(|e| panic!("mount tmpfs: {e}"));
    world.start();

    // 1. The guard: leave ~3 MB above queue_minfree, then push until refused.
    let room = tmpfs.free_bytes();
    fs::write(
        tmpfs.dir.join("filler-1"),
        vec![0u8; (room - (7 << 20)) as usize],
    )
    .unwrap();
    let guarded = push(world.port, "guard", 4, 400, 5);
    let guard_replies: BTreeSet<String> =
        guarded.refused.iter().map(|(_, l)| reply_code(l)).collect();

    // 2. Past the guard: queue_minfree = 0 and the disk filled to the last page.
    world.configure(&format!("{relay}queue_minfree = 0\n"));
    world.daemon.take().unwrap().kill9();
    world.start();
    tmpfs.fill("filler-2");
    let full = push(world.port, "full", 2, 10, 10);
    let full_replies: BTreeSet<String> = full.refused.iter().map(|(_, l)| reply_code(l)).collect();

    // 3. Space returns: intake works again; the relay comes up; everything acked arrives.
    fs::remove_file(tmpfs.dir.join("filler-1")).unwrap();
    fs::remove_file(tmpfs.dir.join("filler-2")).unwrap();
    let after = push(world.port, "after", 2, 10, 1);
    let sink = DumpSink::start(&world.env, sink_port);
    world.run_ok(&["postqueue", "-f"]);
    let acked: Vec<String> = [&guarded, &full, &after]
        .iter()
        .flat_map(|t| t.acked.iter().cloned())
        .collect();
    sink.wait_for(&acked, DEADLINE);
    world.env.wait_queue_empty();
    thread::sleep(Duration::from_secs(1));
    let copies = sink.copies(); // the sink only adds files: this reading has everything

    let lost = copies.lost(&acked);
    let refused: Vec<&String> = [&guarded, &full]
        .iter()
        .flat_map(|t| t.refused.iter().map(|(tag, _)| tag))
        .filter(|tag| copies.by_tag.contains_key(*tag))
        .collect();
    Summary {
        scenario: SCENARIO,
        runs: 1,
        acknowledged: acked.len(),
        lost: lost.len(),
        duplicated: copies.duplicated(),
        notes: format!(
            "refused={} refused_but_delivered={} guard_replies={guard_replies:?} \
             full_disk_replies={full_replies:?} dropped_sessions={}",
            guarded.refused.len() + full.refused.len(),
            refused.len(),
            guarded.broken.len() + full.broken.len() + after.broken.len()
        ),
    }
    .print();

    assert!(
        guarded.acked.len() >= 20,
        "the guard refused too early: {} acked",
        guarded.acked.len()
    );
    assert!(
        guard_replies.contains("452 4.3.1"),
        "below queue_minfree: {guard_replies:?}"
    );
    assert!(
        !full.refused.is_empty(),
        "a full disk refused nothing (acked {})",
        full.acked.len()
    );
    for code in guard_replies.iter().chain(&full_replies) {
        assert!(code.starts_with('4'), "a refusal must be temporary: {code}");
    }
    let broken: Vec<&String> = [&guarded, &full, &after]
        .iter()
        .flat_map(|t| &t.broken)
        .collect();
    assert!(broken.is_empty(), "sessions dropped: {broken:?}");
    assert_eq!(
        after.acked.len(),
        20,
        "intake after space returned: {after:?}"
    );
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {lost:?}"
    );
    assert!(refused.is_empty(), "refused yet delivered: {refused:?}");
    assert_eq!(copies.duplicated(), 0, "no crash, yet duplicates");
    drop(world);
    drop(tmpfs);
}

/// `452 4.3.1` from a reply line.
fn reply_code(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Messages deferred before the disk fills, per run.
const DEFERRED: usize = 200;

/// What one run of the deliveries scenario measured.
struct DeliveriesRun {
    lost: Vec<String>,
    received_while_full: usize,
    duplicated_while_full: usize,
    listed_while_full: usize,
    /// Still queued DEADLINE after space returned to a running daemon (None: killed while full).
    stuck: Option<usize>,
    duplicated_before_restart: usize,
    duplicated: usize,
}

impl DeliveriesRun {
    fn notes(&self, name: &str) -> String {
        format!(
            "{name}:received_while_full={},duplicated_while_full={},listed_while_full={},\
             stuck_after_space_returned={},duplicated_before_restart={},duplicated={}",
            self.received_while_full,
            self.duplicated_while_full,
            self.listed_while_full,
            self.stuck.map_or("-".to_string(), |n| n.to_string()),
            self.duplicated_before_restart,
            self.duplicated
        )
    }
}

/// 200 deferred messages; the disk filled to the last page; the relay comes back and a
/// flush starts deliveries whose outcomes cannot be recorded. Then either space returns to
/// the running daemon (which must write the pending outcomes, deliver the rest once, and
/// send nothing again after a later kill -9 and restart), or the daemon is killed while the
/// disk is still full (only the messages in flight then may go out again: at most
/// `default_process_limit`).
fn deliveries_run(kill_while_full: bool) -> DeliveriesRun {
    let sink_port = free_port();
    let mut world = World::builder()
        .smtp()
        .peer(&sink_port)
        .config(&format!(
            "queue_minfree = 0\ndefault_process_limit = {PROCESS_LIMIT}\n"
        ))
        .build();
    let tmpfs =
        Tmpfs::mount(&world.env.queue_dir(), "16m").unwrap_or_else(|e| panic!("mount tmpfs: {e}"));
    world.start();
    let queued = push(world.port, "dd", 4, DEFERRED / 4, 1);
    assert_eq!(queued.acked.len(), DEFERRED, "intake: {queued:?}");
    world.wait_lines(&["status=deferred"], DEFERRED);

    // Once every delivery slot holds a message whose outcome is pending, deliveries stop:
    // wait until the sink gets nothing new for 3 s.
    tmpfs.fill("filler");
    let sink = DumpSink::start(&world.env, sink_port);
    world.run_ok(&["postqueue", "-f"]);
    let while_full = until_quiet(&world, &sink, DEFERRED);
    let listed_while_full = world.env.queue_json().len();

    let mut stuck = None;
    if kill_while_full {
        world.daemon.take().unwrap().kill9();
        fs::remove_file(tmpfs.dir.join("filler")).unwrap();
        world.start();
        world.run_ok(&["postqueue", "-f"]);
    } else {
        fs::remove_file(tmpfs.dir.join("filler")).unwrap();
    }
    sink.wait_for(&queued.acked, DEADLINE);
    poll_for(DEADLINE, || world.env.queue_json().is_empty());
    let duplicated_before_restart = sink.copies().duplicated();
    if !kill_while_full {
        stuck = Some(world.env.queue_json().len());
        world.daemon.take().unwrap().kill9();
        world.start();
        world.run_ok(&["postqueue", "-f"]);
    }
    world.env.wait_queue_empty();
    let after = all_counted(&world, &sink);
    drop(world);
    drop(tmpfs);
    DeliveriesRun {
        lost: after.lost(&queued.acked),
        received_while_full: while_full.by_tag.len(),
        duplicated_while_full: while_full.duplicated(),
        listed_while_full,
        stuck,
        duplicated_before_restart,
        duplicated: after.duplicated(),
    }
}

#[test]
fn queue_disk_full_during_deliveries_retries_the_outcome_and_sends_nothing_twice() {
    const SCENARIO: &str = "queue-disk-full-deliveries";
    if skip_unless_root(SCENARIO) || skip_unless_peers(SCENARIO) {
        return;
    }
    let space_returns = deliveries_run(false);
    let killed_while_full = deliveries_run(true);
    let runs = [&space_returns, &killed_while_full];
    Summary {
        scenario: SCENARIO,
        runs: 2,
        acknowledged: 2 * DEFERRED,
        lost: runs.iter().map(|r| r.lost.len()).sum(),
        duplicated: runs.iter().map(|r| r.duplicated).sum(),
        notes: format!(
            "in_flight_limit={PROCESS_LIMIT} {} {}",
            space_returns.notes("space_returns"),
            killed_while_full.notes("killed_while_full")
        ),
    }
    .print();

    for run in runs {
        assert!(
            run.lost.is_empty(),
            "acknowledged, never delivered: {:?}",
            run.lost
        );
        assert_eq!(run.duplicated_while_full, 0, "delivered twice while full");
    }
    assert_eq!(
        space_returns.stuck,
        Some(0),
        "delivered messages still queued {DEADLINE:?} after space returned: their outcome was never retried"
    );
    assert_eq!(
        space_returns.duplicated, 0,
        "space returned before the kill: nothing may go out twice"
    );
    assert!(
        killed_while_full.duplicated <= PROCESS_LIMIT,
        "{} delivered twice after a kill while full > in-flight bound {PROCESS_LIMIT}",
        killed_while_full.duplicated
    );
}

/// What the sink holds once deliveries have stopped because every delivery slot holds a
/// message whose outcome could not be recorded (logged `status=sent`, never `removed`:
/// `PROCESS_LIMIT` of them) and the sink has counted each logged delivery — or once it has
/// `all` messages. (A quiet spell of the sink would be a proxy: a loaded machine can pause
/// the daemon longer than any spell.)
fn until_quiet(world: &World, sink: &DumpSink, all: usize) -> Copies {
    wait_until("every delivery slot held by an unrecorded outcome", || {
        let sent = world.lines_with(&["status=sent"]).len();
        let removed = world.lines_with(&[": removed"]).len().min(sent);
        let counted = sink.sink.messages() == sent;
        counted && (sent - removed == PROCESS_LIMIT || sink.copies().by_tag.len() >= all)
    });
    sink.copies()
}

/// Waits until the sink has counted every delivery the daemon logged (`status=sent` is
/// logged after the sink's 250); returns what it holds then.
fn all_counted(world: &World, sink: &DumpSink) -> Copies {
    wait_until("the sink to count every logged delivery", || {
        sink.sink.messages() == world.lines_with(&["status=sent"]).len()
    });
    sink.copies()
}
