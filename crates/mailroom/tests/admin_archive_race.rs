//! Seed 002 done safely: `mailroom mailbox archive` runs again and again while 1,000
//! messages are delivered to the same mailbox. Every message ends up exactly once, either in
//! an archive or in the mailbox, and the mailbox keeps its mode.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use testkit::*;

const N: usize = 1000;

fn archived_subjects(dir: &std::path::Path, into: &mut BTreeMap<String, usize>) {
    for name in list_dir(dir) {
        let mut text = String::new();
        let file = fs::File::open(dir.join(&name)).unwrap();
        flate2_read(file, &mut text);
        for line in text.lines().filter(|l| l.starts_with("Subject: race-")) {
            *into.entry(line.to_string()).or_insert(0) += 1;
        }
    }
}

/// gunzip through the system's gzip, so the test checks the archive format independently.
fn flate2_read(file: fs::File, out: &mut String) {
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child.stdout.take().unwrap().read_to_string(out).unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn archive_racing_a_thousand_deliveries_loses_nothing() {
    let env = TestEnv::with_config("smtpd_listen = []\n");
    fs::create_dir_all(env.spool_dir()).unwrap();
    fs::write(env.mbox("alice"), "").unwrap();
    fs::set_permissions(env.mbox("alice"), fs::Permissions::from_mode(0o640)).unwrap();
    env.stage_messages(4, N / 4, |k, i| {
        (
            "alice@localhost".into(),
            format!("Subject: race-{k}-{i}\n\nbody {k} {i}\n"),
        )
    });
    let archives = env.root.join("archives");
    let _daemon = env.start();
    let mut runs = 0;
    let mut archived = 0;
    loop {
        let done = env.count_mbox("alice") + archived >= N;
        let out = env.run(
            &[
                "mailbox",
                "archive",
                "alice",
                "--older-than",
                "0s",
                "--json",
                "--output",
                &archives
                    .join(format!("{runs}.mbox.gz"))
                    .display()
                    .to_string(),
            ],
            b"",
        );
        assert_success(&out, "mailbox archive");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        archived += v["archived"].as_u64().unwrap() as usize;
        runs += 1;
        if done {
            break;
        }
        assert!(runs < 5000, "deliveries did not finish");
    }
    env.wait_queue_empty();
    let mut subjects = BTreeMap::new();
    archived_subjects(&archives, &mut subjects);
    for m in env.mbox_messages("alice") {
        *subjects
            .entry(format!("Subject: {}", m.subject.unwrap_or_default()))
            .or_insert(0) += 1;
    }
    assert_eq!(
        subjects.len(),
        N,
        "{} distinct messages after {runs} archive runs",
        subjects.len()
    );
    assert!(
        subjects.values().all(|&n| n == 1),
        "duplicates: {:?}",
        subjects
            .iter()
            .filter(|(_, &n)| n > 1)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(runs > 2, "the archive runs raced the deliveries");
    assert_eq!(
        fs::metadata(env.mbox("alice"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o640
    );
    assert!(!env.spool_dir().join("alice.lock").exists());
}
