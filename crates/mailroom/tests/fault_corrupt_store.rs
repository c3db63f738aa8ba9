//! Fault suite: damaged queue files. The queue log and `maildrop/` are damaged while the
//! daemon is down (after a `kill -9`), the way a bad disk, a crash mid-write or a hostile
//! local user would, and the daemon is started on them:
//! - a bit flipped at a random place in a message record in the middle of the log;
//! - the newest record complete but with a bit flipped (issue 8 defect 9: it must not be cut
//!   as if it were a torn write, without a copy);
//! - a torn tail: half a record appended after it, as a crash mid-batch leaves it;
//! - in `maildrop/`: garbage under a queue ID's name, a file cut in half, a FIFO (reading it
//!   would block forever), and a symlink to a well-formed message outside the queue (following
//!   it would deliver whatever a local user points it at).
//!
//! The daemon must start, save each damaged record to `corrupt/` with one log line, and
//! deliver every intact message exactly once. The log format is documented in
//! `crates/queue/src/record.rs`: a 16-byte header (magic `MRQ1`, kind, length, CRC-32) and
//! the payload; a message record's payload holds the message text, so its tag finds it.

use std::fs;
use std::path::{Path, PathBuf};

use testkit::fault::*;
use testkit::*;

const SCENARIO: &str = "corrupt-queue-files";
const MESSAGES: usize = 30;
/// The message whose record is damaged in the middle of the log.
const MIDDLE: usize = 5;
/// The last message: its record becomes the newest one, then is damaged.
const NEWEST: usize = MESSAGES - 1;

/// One record of a segment file: where it starts, how long it is, and the tag of the message
/// it holds (message records only).
#[derive(Debug)]
struct Frame {
    offset: usize,
    len: usize,
    tag: Option<String>,
}

/// Walks the records of an undamaged segment.
fn frames(data: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= data.len() {
        assert_eq!(&data[at..at + 4], b"MRQ1", "record magic at {at}");
        let len = 16 + u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        let tag = match data[at + 4] {
            1 => tag_of(&data[at..at + len]),
            _ => None,
        };
        out.push(Frame {
            offset: at,
            len,
            tag,
        });
        at += len;
    }
    assert_eq!(at, data.len(), "the log ends with a whole record");
    out
}

fn segments(queue: &Path) -> Vec<PathBuf> {
    let store = queue.join("store");
    list_dir(&store)
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .map(|n| store.join(n))
        .collect()
}

/// Damages the log as the module doc says; returns a description of each damage.
fn damage_the_log(queue: &Path, rng: &mut Rng) -> Vec<String> {
    let newest = segments(queue).pop().expect("a segment");
    let mut data = fs::read(&newest).unwrap();
    let all = frames(&data);
    let find = |k: usize| {
        let tag = format!("store-{k}");
        all.iter()
            .find(|f| f.tag.as_deref() == Some(&tag))
            .unwrap_or_else(|| panic!("no record of {tag} in {}", newest.display()))
    };
    let (middle, last) = (find(MIDDLE), find(NEWEST));
    // Drop what follows the last message record (its deferral updates): the log as it was
    // just after that message was acknowledged.
    data.truncate(last.offset + last.len);
    let mut flip = |frame: &Frame| {
        let at = frame.offset + rng.between(0, frame.len as u64) as usize;
        let bit = rng.between(0, 8);
        data[at] ^= 1 << bit;
        format!("bit {bit} at {at} (record {}+{})", frame.offset, frame.len)
    };
    let mut done = vec![
        format!("middle: {}", flip(middle)),
        format!("newest: {}", flip(last)),
    ];
    // Half of a record, as a batch cut off by a crash before its fdatasync returned.
    let torn = all[0].len / 2;
    let head = data[all[0].offset..all[0].offset + torn].to_vec();
    data.extend_from_slice(&head);
    done.push(format!("torn tail: {torn} bytes"));
    fs::write(&newest, &data).unwrap();
    done
}

/// Replaces three fresh maildrop files with faults; returns their names.
fn damage_the_maildrop(env: &TestEnv) -> Vec<String> {
    let mut names = Vec::new();
    for kind in ["garbage", "torn", "fifo", "symlink"] {
        let before = env.maildrop_files();
        let text = tagged_message(&format!("drop-{kind}"), 2).replace("\r\n", "\n");
        env.send_ok(&["-i", "someone@example.net"], text.as_bytes());
        let name = env
            .maildrop_files()
            .into_iter()
            .find(|n| !before.contains(n))
            .expect("a new maildrop file");
        let path = env.maildrop_dir().join(&name);
        let bytes = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        match kind {
            "garbage" => fs::write(&path, b"\x00\xffnot a maildrop file\n\x01").unwrap(),
            "torn" => fs::write(&path, &bytes[..bytes.len() / 2]).unwrap(),
            "fifo" => mkfifo(&path),
            _ => {
                // A well-formed message outside the queue: following the link delivers it.
                let outside = env.root.join("outside-the-queue");
                fs::write(&outside, &bytes).unwrap();
                std::os::unix::fs::symlink(&outside, &path).unwrap();
            }
        }
        names.push(name);
    }
    names
}

fn mkfifo(path: &Path) {
    sys::mkfifo(path, 0o644).expect("mkfifo");
}

/// Regular files in `corrupt/` holding the record of message `store-K`, found by any of
/// three lines of its text (one flipped bit can spoil only one of them). The FIFO moved
/// there must not be opened: that would block until a writer comes.
fn saved_with(env: &TestEnv, k: usize) -> Vec<String> {
    // Each line ends in CR or LF, so store-2 does not match store-29.
    let needles: Vec<String> = ["Subject: store-", "body of store-", "END store-"]
        .iter()
        .flat_map(|line| ["\r", "\n"].map(|end| format!("{line}{k}{end}")))
        .collect();
    list_dir(&env.corrupt_dir())
        .into_iter()
        .filter(|n| {
            let path = env.corrupt_dir().join(n);
            let regular = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
            let bytes = match regular {
                true => fs::read(&path).unwrap_or_default(),
                false => Vec::new(),
            };
            let found = |needle: &String| find(&bytes, needle.as_bytes()).is_some();
            needles.iter().any(found)
        })
        .collect()
}

/// What one run found.
struct CorruptRun {
    intact: usize,
    lost: Vec<String>,
    duplicated: usize,
    /// Tags delivered that were not intact (from damaged records or maildrop files).
    unexpected: Vec<String>,
    /// Damaged maildrop files not moved to `corrupt/`.
    junk_left: Vec<String>,
    /// Damaged acknowledged messages whose record is nowhere in `corrupt/`.
    unsaved: Vec<usize>,
    /// `corrupt/` files not named by exactly one log line, with the count.
    lines: Vec<(String, usize)>,
    corrupt_files: usize,
    damage: Vec<String>,
    log_tail: String,
}

/// 30 messages deferred in the log, the daemon killed, the log and `maildrop/` damaged, a
/// good submission added, the daemon started with the relay up.
fn corrupt_run(rng: &mut Rng) -> CorruptRun {
    let sink_port = free_port(); // down at first: the messages stay in the log, deferred

    // The plain store on any file system: `frames` walks segments that end at their last
    // record (`auto` would pre-zero them over a journaled ext4; that form is damaged and
    // recovered in queue's recovery tests and the kill -9 prezero scenario).
    let mut world = World::builder()
        .smtp()
        .peer(&sink_port)
        .config("queue_prezero_segments = false\n")
        .build();
    world.start();
    let tags: Vec<String> = (0..MESSAGES).map(|k| format!("store-{k}")).collect();
    for tag in &tags {
        let sent = send_tagged(world.port, tag, "someone@example.net", 2);
        assert_eq!(sent, Sent::Acked, "{tag}");
    }
    world.wait_lines(&["status=deferred"], MESSAGES);
    world.daemon.take().unwrap().kill9();

    let mut damage = damage_the_log(&world.env.queue_dir(), rng);
    let junk = damage_the_maildrop(&world.env);
    damage.push(format!("maildrop: {junk:?}"));
    let text = tagged_message("drop-ok", 2).replace("\r\n", "\n");
    let env = &world.env;
    env.send_ok(&["-i", "someone@example.net"], text.as_bytes());

    let sink = DumpSink::start(env, sink_port);
    world.start();
    let env = &world.env;
    let intact: Vec<String> = tags
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != MIDDLE && *k != NEWEST)
        .map(|(_, t)| t.clone())
        .chain(["drop-ok".to_string()])
        .collect();
    sink.wait_for(&intact, DEADLINE);
    env.wait_queue_empty();
    // mailq does not list what it cannot read, so an empty queue does not mean pickup is
    // done with the damaged maildrop files; and each file goes to corrupt/ before its log
    // line. Wait for the moves and the lines, then count.
    wait_until("the damaged maildrop files moved to corrupt/", || {
        let moved = list_dir(&env.corrupt_dir());
        junk.iter()
            .all(|n| moved.contains(&format!("maildrop-{n}")))
    });
    wait_until("a log line naming every file in corrupt/", || {
        let log = env.log();
        list_dir(&env.corrupt_dir())
            .iter()
            .all(|n| log.contains(n.as_str()))
    });
    let copies = sink.copies();
    let corrupt = list_dir(&env.corrupt_dir());
    let log = env.log();
    let lines = corrupt
        .iter()
        .map(|n| {
            (
                n.clone(),
                log.lines().filter(|l| l.contains(n.as_str())).count(),
            )
        })
        .filter(|(_, count)| *count != 1)
        .collect();
    CorruptRun {
        intact: intact.len(),
        lost: copies.lost(&intact),
        duplicated: copies.duplicated(),
        unexpected: copies
            .by_tag
            .keys()
            .filter(|t| !intact.contains(t))
            .cloned()
            .collect(),
        junk_left: junk
            .into_iter()
            .filter(|n| !corrupt.contains(&format!("maildrop-{n}")))
            .collect(),
        unsaved: [MIDDLE, NEWEST]
            .into_iter()
            .filter(|k| saved_with(env, *k).is_empty())
            .collect(),
        lines,
        corrupt_files: corrupt.len(),
        damage,
        log_tail: tail(&log, 15),
    }
}

#[test]
fn damaged_segments_and_maildrop_files_go_to_corrupt_and_every_intact_message_survives() {
    const RUNS: usize = 3;
    if skip_unless_peers(SCENARIO) {
        return;
    }
    let mut rng = Rng::from_env();
    let runs: Vec<CorruptRun> = (0..RUNS).map(|_| corrupt_run(&mut rng)).collect();
    Summary {
        scenario: SCENARIO,
        runs: RUNS,
        acknowledged: RUNS * (MESSAGES + 1),
        lost: runs.iter().map(|r| r.lost.len()).sum(),
        duplicated: runs.iter().map(|r| r.duplicated).sum(),
        notes: format!(
            "intact={} damaged={} corrupt_files={} seed={}",
            runs.iter().map(|r| r.intact).sum::<usize>(),
            2 * RUNS,
            runs.iter().map(|r| r.corrupt_files).sum::<usize>(),
            rng.seed()
        ),
    }
    .print();
    for run in &runs {
        say(&format!("  damage: {:?}", run.damage));
    }

    for run in &runs {
        assert!(
            run.lost.is_empty(),
            "intact, never delivered: {:?}",
            run.lost
        );
        assert_eq!(run.duplicated, 0, "delivered twice");
        assert!(
            run.unexpected.is_empty(),
            "delivered from damage: {:?}",
            run.unexpected
        );
        assert!(
            run.junk_left.is_empty(),
            "not moved to corrupt/: {:?}",
            run.junk_left
        );
        assert!(
            run.unsaved.is_empty(),
            "the damaged records of acknowledged messages {:?} were dropped without a copy in \
             corrupt/ ({:?}); log:\n{}",
            run.unsaved,
            run.damage,
            run.log_tail
        );
        assert!(
            run.lines.is_empty(),
            "corrupt/ files not named by exactly one log line: {:?}",
            run.lines
        );
    }
}
