//! Fault suite: `kill -9` of `serve` at random moments while SMTP clients keep sending and
//! the daemon relays everything to Postfix's `smtp-sink` — ten times in a row, then one last
//! restart drains the queue.
//!
//! `kill9_during_delivery.rs` kills once, with local delivery of mail staged in `maildrop/`;
//! this scenario extends it to the network path on both sides: acknowledgements are counted
//! per message by the clients (a tag is "acknowledged" only once the 250 after DATA was
//! read), arrivals per message by the sink's dump files. Then:
//! - lost: an acknowledged tag with no whole copy at the sink — must be 0 (DESIGN
//!   invariant 1: acknowledge only what is durable);
//! - duplicated: a copy beyond the first. Only a message in flight at a kill (the sink said
//!   250, the daemon died before recording it) may go out twice, so each kill may cause at
//!   most `default_process_limit` duplicates, and no duplicate may arrive without a kill in
//!   between its copies.
//!
//! The same again with the store's journaled-file-system options on
//! (`queue_prezero_segments`, `queue_dsync_writes`): segments prepared full of zeros and
//! written `O_DSYNC`, so a commit is durable when its write returns and recovery must find
//! the end of the data among zeros.
//!
//! `FAULT_SEED=N` replays the kill moments of a run (the seed is printed).

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::Duration;

use testkit::fault::*;
use testkit::*;

const SCENARIO: &str = "kill9-relay";
const SCENARIO_PREZERO: &str = "kill9-relay-prezero-dsync";
const KILLS: usize = 10;
const CLIENTS: usize = 6;
/// The delivery concurrency, smaller than `smtp_destination_concurrency_limit` (20), so it is
/// the bound on messages in flight.
const PROCESS_LIMIT: usize = 10;

#[test]
fn kill_dash_nine_under_smtp_load_ten_times_loses_nothing_and_duplicates_only_in_flight_mail() {
    // The plain store, whatever file system the test runs on (the default, auto, turns
    // the options on over a journaled ext4).
    let options = "queue_prezero_segments = false\nqueue_dsync_writes = false\n";
    kill_ten_times_under_load(SCENARIO, options);
}

#[test]
fn the_same_with_prezeroed_segments_and_o_dsync_writes() {
    let options = "queue_prezero_segments = true\nqueue_dsync_writes = true\n";
    if let Some(world) = kill_ten_times_under_load(SCENARIO_PREZERO, options) {
        // The options reached the store: the newest segment was made whole, full of zeros,
        // before any record was written to it (a plain one grows with its records).
        let dir = world.env.queue_dir().join("store");
        let mut segments: Vec<(String, u64)> = std::fs::read_dir(&dir)
            .expect("store directory")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".seg"))
            .map(|name| {
                (
                    name.clone(),
                    std::fs::metadata(dir.join(&name)).unwrap().len(),
                )
            })
            .collect();
        segments.sort();
        let newest = segments.last().expect("a segment");
        assert_eq!(newest.1, SEGMENT, "not preallocated: {segments:?}");
    }
}

/// The store's segment size (queue's `StoreOptions::default`).
const SEGMENT: u64 = 16 << 20;

/// Ten kills under load, the drain, the checks (see the module doc); the world at the end,
/// or `None` when the peers are missing.
fn kill_ten_times_under_load(scenario: &'static str, extra: &str) -> Option<World> {
    if skip_unless_peers(scenario) {
        return None;
    }
    let sink_port = free_port();
    let mut world = World::builder()
        .smtp()
        .peer(&sink_port)
        .config(&format!("default_process_limit = {PROCESS_LIMIT}\n{extra}"))
        .build();
    let sink = DumpSink::start(&world.env, sink_port);
    let mut rng = Rng::from_env();
    world.start();

    let load = Load::start(world.port, CLIENTS, "k9", "someone@example.net", 2);
    // snapshots[k]: the sink's files just after kill k (the killed daemon can add no more).
    let mut snapshots: Vec<BTreeSet<String>> = Vec::new();
    let mut delays = Vec::new();
    for _ in 0..KILLS {
        let delay = rng.between(50, 1500);
        delays.push(delay);
        thread::sleep(Duration::from_millis(delay));
        world.daemon.take().expect("daemon running").kill9();
        // The sink must have read everything the dead daemon sent (a final dot still in its
        // socket becomes a file, an unfinished transaction is unlinked) before the snapshot;
        // a file written after it would be filed under the next epoch.
        sink.sink.wait_sessions_closed();
        snapshots.push(sink.files().into_iter().collect());
        world.start();
    }
    thread::sleep(Duration::from_millis(500));
    let tally = load.stop();

    sink.wait_for(&tally.acked, DEADLINE);
    world.env.wait_queue_empty();
    // Anything redelivered late would show up now (the sink only adds files).
    thread::sleep(Duration::from_secs(2));
    let copies = sink.copies();
    report(scenario, &tally, &copies, &snapshots, &delays, rng.seed());
    Some(world)
}

/// Prints the figures, then asserts them.
fn report(
    scenario: &'static str,
    tally: &Tally,
    copies: &Copies,
    snapshots: &[BTreeSet<String>],
    delays: &[u64],
    seed: u64,
) {
    let lost = copies.lost(&tally.acked);
    let acked: BTreeSet<&String> = tally.acked.iter().collect();
    let unacked_arrived = copies.by_tag.keys().filter(|t| !acked.contains(t)).count();
    let per_kill = duplicates_per_kill(copies, snapshots);
    let worst = per_kill.values().map(Vec::len).max().unwrap_or(0);
    Summary {
        scenario,
        runs: KILLS,
        acknowledged: tally.acked.len(),
        lost: lost.len(),
        duplicated: copies.duplicated(),
        notes: format!(
            "in_flight_limit={PROCESS_LIMIT} worst_kill={worst} refused={} broken={} \
             unacked_arrived={unacked_arrived} seed={seed} kill_after_ms={delays:?}",
            tally.refused.len(),
            tally.broken.len(),
        ),
    }
    .print();
    for (kill, tags) in &per_kill {
        say(&format!(
            "  kill {kill}: {} duplicates {tags:?}",
            tags.len()
        ));
    }

    assert!(
        tally.acked.len() > KILLS * 10,
        "only {} messages acknowledged: the load proves nothing",
        tally.acked.len()
    );
    assert!(lost.is_empty(), "acknowledged but never received: {lost:?}");
    assert!(
        copies.incomplete.is_empty(),
        "sink files without a whole message: {:?}",
        copies.incomplete
    );
    for (kill, tags) in &per_kill {
        assert!(
            *kill < KILLS,
            "duplicates with no kill between their copies (our own bookkeeping): {tags:?}"
        );
        assert!(
            tags.len() <= PROCESS_LIMIT,
            "kill {kill} caused {} duplicates > default_process_limit {PROCESS_LIMIT}",
            tags.len()
        );
    }
}

/// For each duplicated tag, the kill its redelivery is owed to: the one that ended the epoch
/// of its first copy (the first copy arrived, the kill came before the daemon recorded it).
/// Copies that arrived in the same epoch are filed under `KILLS` (no kill to blame).
fn duplicates_per_kill(
    copies: &Copies,
    snapshots: &[BTreeSet<String>],
) -> BTreeMap<usize, Vec<String>> {
    let epoch = |file: &String| {
        snapshots
            .iter()
            .position(|s| s.contains(file))
            .unwrap_or(snapshots.len())
    };
    let mut per_kill: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (tag, files) in copies.by_tag.iter().filter(|(_, f)| f.len() > 1) {
        let mut epochs: Vec<usize> = files.iter().map(epoch).collect();
        epochs.sort_unstable();
        for pair in epochs.windows(2) {
            let blame = match pair[0] < pair[1] {
                true => pair[0],
                false => KILLS,
            };
            per_kill.entry(blame).or_default().push(tag.clone());
        }
    }
    per_kill
}

#[test]
fn tags_are_read_back_only_from_whole_messages() {
    let whole = tagged_message("t-1-2", 3).replace("\r\n", "\n");
    assert_eq!(tag_of(whole.as_bytes()).as_deref(), Some("t-1-2"));
    let cut = &whole[..whole.len() - 12];
    assert_eq!(tag_of(cut.as_bytes()), None);
    // Cut inside the END line: "END t-1" must not pass for message t-1.
    let cut = &whole[..whole.len() - 3];
    assert_eq!(tag_of(cut.as_bytes()), None);
    let cut = &whole[..whole.len() - 1];
    assert_eq!(tag_of(cut.as_bytes()), None);
}
