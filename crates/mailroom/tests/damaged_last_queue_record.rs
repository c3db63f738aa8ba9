//! Issue 8, defect 9: a damaged newest record (a flipped byte) used to be cut as if it were
//! a torn, unacknowledged write, without a copy. Now a complete record failing its checksum
//! is reported as damage, an incomplete one as a torn write, and in both cases the cut
//! bytes are kept in `queue/corrupt/`.

use std::fs;
use std::path::PathBuf;

use testkit::*;

/// A daemon that queued one message and recorded its deferral (a relay that is down) as
/// the last record of the log, then was killed; returns the env and the segment.
fn deferred_then_killed() -> (TestEnv, PathBuf) {
    // The plain store, on any file system: a segment ends at its last record (with
    // `queue_prezero_segments`, which `auto` turns on over a journaled ext4, the newest
    // segment is a zeroed spare; queue's recovery tests cover that form).
    let env = TestEnv::with_config(&format!(
        "relayhost = \"[127.0.0.1]:{}\"\nqueue_prezero_segments = false\n",
        free_port()
    ));
    env.send_ok(&["-i", "someone@far.example"], b"Subject: kept\n\nbody\n");
    let daemon = env.start();
    env.wait_log("status=deferred", 1);
    // The outcome is logged before its state record is written: wait until the store (read
    // by `postqueue -j`) holds the deferral, so it is the last record when the kill lands.
    wait_until("the deferral recorded in the store", || {
        env.queue_json()
            .iter()
            .any(|m| m["queue_name"] == "deferred")
    });
    daemon.kill9();
    let store = env.queue_dir().join("store");
    let seg = list_dir(&store)
        .into_iter()
        .rfind(|n| n.ends_with(".seg"))
        .expect("a segment");
    (env, store.join(seg))
}

/// Offset of the last record: the last "MRQ1" magic in the segment.
fn last_record(data: &[u8]) -> usize {
    data.windows(4)
        .rposition(|w| w == b"MRQ1")
        .expect("a record")
}

fn corrupt_files(env: &TestEnv) -> Vec<(String, Vec<u8>)> {
    list_dir(&env.corrupt_dir())
        .into_iter()
        .filter(|n| n.starts_with("segment-"))
        .map(|n| {
            let bytes = fs::read(env.corrupt_dir().join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

#[test]
fn a_flipped_byte_in_the_newest_record_is_reported_as_damage_and_kept() {
    let (env, seg) = deferred_then_killed();
    let mut data = fs::read(&seg).unwrap();
    let at = last_record(&data);
    let original = data[at..].to_vec();
    let flip = at + (data.len() - at) / 2;
    data[flip] ^= 0x10;
    fs::write(&seg, &data).unwrap();

    let _daemon = env.start();
    let lines = env.wait_log("damaged queue log region", 1);
    assert!(
        lines[0].contains(&format!("{} bytes", original.len())),
        "{lines:?}"
    );
    assert!(env.log_lines("torn").is_empty() && env.log_lines("incomplete record").is_empty());
    let saved = corrupt_files(&env);
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(saved[0].1.len(), original.len());
    assert_eq!(
        saved[0].1[flip - at],
        original[flip - at] ^ 0x10,
        "the bytes as found"
    );
    assert_eq!(
        env.queue_json().len(),
        1,
        "the message record itself is intact"
    );
}

#[test]
fn a_truncated_newest_record_is_a_torn_write_and_kept() {
    let (env, seg) = deferred_then_killed();
    let data = fs::read(&seg).unwrap();
    let at = last_record(&data);
    let kept = data.len() - 5;
    fs::write(&seg, &data[..kept]).unwrap();

    let _daemon = env.start();
    let lines = env.wait_log("incomplete record at the end of the log", 1);
    assert!(
        lines[0].contains(&format!("cut {} bytes", kept - at)),
        "{lines:?}"
    );
    assert!(lines[0].contains("saved as corrupt/"), "{lines:?}");
    let saved = corrupt_files(&env);
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(saved[0].1, &data[at..kept]);
}
