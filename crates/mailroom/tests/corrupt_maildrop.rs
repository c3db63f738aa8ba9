//! Nothing crashes the daemon (DESIGN invariant 4): garbage in `maildrop/` — a damaged file
//! under a queue ID name, or a file with any other name — is moved to `corrupt/` with exactly
//! one log line each, and the daemon keeps delivering the good mail around it.

use std::fs;

use testkit::*;

#[test]
fn garbage_in_maildrop_goes_to_corrupt_with_one_log_line_and_mail_keeps_flowing() {
    let env = TestEnv::new();
    // Four real submissions with the daemon down; two of them get damaged.
    for i in 0..4 {
        env.send_ok(
            &["-i", "alice@localhost"],
            format!("Subject: real-{i}\n\nbody {i}\n").as_bytes(),
        );
    }
    let ids = env.maildrop_files();
    assert_eq!(ids.len(), 4);
    let (truncated, flipped) = (&ids[1], &ids[2]);
    let path = |name: &str| env.maildrop_dir().join(name);

    // A copy cut short (no END record, message shorter than announced).
    let bytes = fs::read(path(truncated)).unwrap();
    fs::write(path(truncated), &bytes[..bytes.len() - 20]).unwrap();
    // A copy with one body byte flipped (crc mismatch).
    let mut bytes = fs::read(path(flipped)).unwrap();
    let at = find(&bytes, b"body 2").unwrap();
    bytes[at] ^= 0x20;
    fs::write(path(flipped), &bytes).unwrap();
    // Random junk under a name that is no queue ID.
    let junk = "garbage-Xq7.txt";
    fs::write(path(junk), b"\x00\x01 this is not mail \xff\n").unwrap();

    let _daemon = env.start();
    env.wait_mbox("alice", 2);
    wait_until("3 files in corrupt/", || {
        list_dir(&env.corrupt_dir())
            .iter()
            .filter(|n| n.starts_with("maildrop-"))
            .count()
            >= 3
    });

    let mut expected: Vec<String> = [truncated, flipped, &junk.to_string()]
        .iter()
        .map(|n| format!("maildrop-{n}"))
        .collect();
    expected.sort();
    let moved: Vec<String> = list_dir(&env.corrupt_dir())
        .into_iter()
        .filter(|n| n.starts_with("maildrop-"))
        .collect();
    assert_eq!(moved, expected);
    assert_eq!(
        fs::read(env.corrupt_dir().join(format!("maildrop-{junk}"))).unwrap(),
        b"\x00\x01 this is not mail \xff\n"
    );
    for name in [truncated.as_str(), flipped.as_str(), junk] {
        // The line is written once the rename is done: after the file shows in corrupt/.
        let lines = env.wait_log(&format!("maildrop/{name}"), 1);
        assert_eq!(lines.len(), 1, "one log line for {name}, got {lines:#?}");
        assert!(lines[0].contains("corrupt"), "{}", lines[0]);
    }

    // The daemon is alive and still delivering: new mail, and more garbage on the way.
    fs::write(path("another junk file"), b"junk").unwrap();
    env.send_ok(
        &["-i", "alice@localhost"],
        b"Subject: after-garbage\n\nstill works\n",
    );
    env.wait_mbox("alice", 3);
    wait_until("the second junk file in corrupt/", || {
        env.corrupt_dir()
            .join("maildrop-another junk file")
            .exists()
    });
    env.wait_queue_empty();
    let mut subjects: Vec<String> = env
        .mbox_messages("alice")
        .into_iter()
        .filter_map(|m| m.subject)
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["after-garbage", "real-0", "real-3"]);
    assert!(
        env.maildrop_files().is_empty(),
        "maildrop: {:?}",
        env.maildrop_files()
    );
    assert_eq!(env.log_lines("maildrop/another junk file").len(), 1);
}
