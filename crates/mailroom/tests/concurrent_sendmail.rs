//! 1,000 `sendmail` processes at once, with the daemon running: every one exits 0 and
//! every message is delivered exactly once.

use std::fs;
use std::io::Write;
use std::process::Stdio;
use std::time::Instant;

use testkit::*;

const PROCESSES: usize = 1000;
const USERS: usize = 10;

#[test]
fn a_thousand_concurrent_sendmails_all_succeed_and_are_all_delivered_once() {
    let env = TestEnv::new();
    let _daemon = env.start();
    let users = users(USERS);
    // All processes share one stderr file, so the test holds one pipe per live child only
    // until its input is written.
    let stderr_path = env.root.join("sendmail.stderr");
    let stderr = fs::File::create(&stderr_path).unwrap();

    // Spawn all of them first: each blocks reading its standard input, so all 1,000 are
    // alive at the same time; then feed them and let them race.
    let started = Instant::now();
    let mut children = Vec::with_capacity(PROCESSES);
    for i in 0..PROCESSES {
        let child = env
            .command()
            .args(["sendmail", "-i", &format!("{}@localhost", users[i % USERS])])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr.try_clone().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn sendmail #{i}: {e}"));
        children.push(child);
    }
    for (i, child) in children.iter_mut().enumerate() {
        let mut stdin = child.stdin.take().unwrap();
        let msg = format!("Subject: concurrent-{i}\n\nmessage {i}\n");
        stdin.write_all(msg.as_bytes()).unwrap();
    }
    let mut failed = Vec::new();
    for (i, mut child) in children.into_iter().enumerate() {
        let status = child.wait().unwrap();
        if !status.success() {
            failed.push((i, status));
        }
    }
    let submitted = started.elapsed();
    assert!(
        failed.is_empty(),
        "{} sendmails failed, e.g. {:?}; stderr:\n{}",
        failed.len(),
        &failed[..failed.len().min(5)],
        tail(&fs::read_to_string(&stderr_path).unwrap(), 10)
    );
    assert_eq!(
        fs::read_to_string(&stderr_path).unwrap(),
        "",
        "sendmail stderr"
    );

    env.wait_all(&users, PROCESSES);
    env.wait_queue_empty();
    eprintln!(
        "{PROCESSES} concurrent sendmails: all exited 0 after {submitted:.1?}, all delivered after {:.1?}",
        started.elapsed()
    );

    let boxes = env.mboxes(&users);
    let subjects = boxes
        .iter()
        .flatten()
        .map(|m| m.subject.clone().unwrap_or_default());
    let counts = multiset(subjects);
    let duplicated: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "delivered more than once: {duplicated:?}"
    );
    let missing: Vec<usize> = (0..PROCESSES)
        .filter(|i| !counts.contains_key(&format!("concurrent-{i}")))
        .collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert_eq!(counts.len(), PROCESSES);
    // Each message went to the user it was addressed to.
    for (k, user) in users.iter().enumerate() {
        for m in &boxes[k] {
            let subject = m.subject.as_deref().unwrap();
            let i: usize = subject.trim_start_matches("concurrent-").parse().unwrap();
            assert_eq!(i % USERS, k, "message {i} in the wrong mailbox {user}");
        }
    }
}
