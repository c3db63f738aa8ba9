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

mod common;
mod fault_common;
mod issue4_common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use common::*;
use fault_common::*;
use issue4_common::*;

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
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// Regular files in `corrupt/` whose bytes contain `needle` (the FIFO moved there must not
/// be opened: that would block until a writer comes).
fn saved_with(env: &TestEnv, needle: &str) -> Vec<String> {
    list_dir(&env.corrupt_dir())
        .into_iter()
        .filter(|n| {
            let path = env.corrupt_dir().join(n);
            let regular = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
            regular && find(&fs::read(&path).unwrap_or_default(), needle.as_bytes()).is_some()
        })
        .collect()
}

#[test]
fn damaged_segments_and_maildrop_files_go_to_corrupt_and_every_intact_message_survives() {
    if skip_unless_peers(SCENARIO) {
        return;
    }
    let sink_port = free_port(); // down at first: the messages stay in the log, deferred
    let mut world = World::new(&format!("relayhost = \"[127.0.0.1]:{sink_port}\"\n"));
    world.start();
    let tags: Vec<String> = (0..MESSAGES).map(|k| format!("store-{k}")).collect();
    for tag in &tags {
        let sent = send_tagged(world.port, tag, "someone@example.net", 2);
        assert_eq!(sent, Sent::Acked, "{tag}");
    }
    world.wait_lines(&["status=deferred"], MESSAGES);
    world.daemon.take().unwrap().kill9();

    let mut rng = Rng::from_env();
    let mut damage = damage_the_log(&world.env.queue_dir(), &mut rng);
    let drop_ok = "drop-ok".to_string();
    let junk = damage_the_maildrop(&world.env);
    let text = tagged_message(&drop_ok, 2).replace("\r\n", "\n");
    world
        .env
        .send_ok(&["-i", "someone@example.net"], text.as_bytes());
    damage.push(format!("maildrop: {junk:?}"));

    let sink = DumpSink::start(&world.env, sink_port);
    world.start();
    let intact: Vec<String> = tags
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != MIDDLE && *k != NEWEST)
        .map(|(_, t)| t.clone())
        .chain([drop_ok])
        .collect();
    sink.wait_for(&intact, DEADLINE);
    world.env.wait_queue_empty();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let copies = sink.copies();
    let lost = copies.lost(&intact);
    let unexpected: Vec<&String> = copies
        .by_tag
        .keys()
        .filter(|t| !intact.contains(t))
        .collect();
    let damaged_saved: Vec<(usize, Vec<String>)> = [MIDDLE, NEWEST]
        .iter()
        .map(|k| (*k, saved_with(&world.env, &format!("Subject: store-{k}"))))
        .collect();
    let corrupt = list_dir(&world.env.corrupt_dir());
    let log = world.env.log();
    let lines_per_file: Vec<(String, usize)> = corrupt
        .iter()
        .map(|n| {
            (
                n.clone(),
                log.lines().filter(|l| l.contains(n.as_str())).count(),
            )
        })
        .collect();
    Summary {
        scenario: SCENARIO,
        runs: 1,
        acknowledged: MESSAGES + 1,
        lost: lost.len(),
        duplicated: copies.duplicated(),
        notes: format!(
            "intact={} damaged=2 corrupt_files={} seed={}",
            intact.len(),
            corrupt.len(),
            rng.seed()
        ),
    }
    .print();
    say(&format!("  damage: {damage:?}"));
    say(&format!(
        "  corrupt/ and log lines naming each: {lines_per_file:?}"
    ));

    assert!(lost.is_empty(), "intact messages never delivered: {lost:?}");
    assert_eq!(copies.duplicated(), 0, "delivered twice");
    assert!(
        unexpected.is_empty(),
        "delivered from damage: {unexpected:?}"
    );
    for name in &junk {
        let saved = format!("maildrop-{name}");
        assert!(
            corrupt.contains(&saved),
            "{saved} not in corrupt/: {corrupt:?}"
        );
    }
    for (k, saved) in &damaged_saved {
        assert!(
            !saved.is_empty(),
            "the damaged record of acknowledged message store-{k} was dropped without a copy in corrupt/ ({corrupt:?}); log:\n{}",
            tail(&log, 15)
        );
    }
    for (name, lines) in &lines_per_file {
        assert_eq!(*lines, 1, "log lines naming corrupt/{name}");
    }
}
