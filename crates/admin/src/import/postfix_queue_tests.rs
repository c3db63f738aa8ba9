use super::*;
use std::os::unix::fs::PermissionsExt;

fn record(out: &mut Vec<u8>, kind: u8, data: &str) {
    out.push(kind);
    let mut rest = data.len();
    loop {
        let byte = (rest & 0x7f) as u8;
        rest >>= 7;
        out.push(if rest != 0 { byte | 0x80 } else { byte });
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(data.as_bytes());
}

/// A Postfix queue file: sender alice, `pending` recipients, `done` recipients.
fn queue_file(pending: &[&str], done: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    record(&mut out, b'T', "1700000000 5");
    record(&mut out, b'S', "alice@example.com");
    for r in done {
        record(&mut out, b'D', r);
    }
    for r in pending {
        record(&mut out, b'R', r);
    }
    for (kind, data) in [
        (b'M', ""),
        (b'N', "Subject: t"),
        (b'N', ""),
        (b'N', "hi"),
        (b'X', ""),
        (b'E', ""),
    ] {
        record(&mut out, kind, data);
    }
    out
}

fn place(root: &Path, relative: &str, bytes: &[u8], mode: u32) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

struct World {
    _dir: tempfile::TempDir,
    postfix: PathBuf,
    store: Store,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let postfix = dir.path().join("postfix");
    let (store, _) = Store::open(&dir.path().join("mailroom"), Default::default()).unwrap();
    World {
        _dir: dir,
        postfix,
        store,
    }
}

fn import_all(w: &World) -> Vec<FileReport> {
    let target = Target::Store(&w.store);
    list(&w.postfix)
        .unwrap()
        .iter()
        .map(|f| import_one(&w.postfix, f, &target))
        .collect()
}

#[test]
fn done_recipients_are_dropped_and_unreported_bounces_kept_as_bounced() {
    let w = world();
    let file = queue_file(&["b@example.net"], &["a@example.net", "x@example.net"]);
    place(&w.postfix, "deferred/A/A1234", &file, 0o700);
    place(
        &w.postfix,
        "defer/A/A1234",
        b"recipient=b@example.net\nstatus=4.4.1\nreason=connection refused\n\n",
        0o600,
    );
    place(
        &w.postfix,
        "bounce/A/A1234",
        b"recipient=x@example.net\nstatus=5.1.1\nreason=no such user\n\n",
        0o600,
    );
    let reports = import_all(&w);
    assert_eq!(reports.len(), 1);
    assert_eq!(
        (reports[0].pending, reports[0].done, reports[0].bounced),
        (1, 1, 1)
    );
    let id = mailroom_id("A1234", (1_700_000_000, 5));
    let entry = w.store.get(id).unwrap();
    assert_eq!(entry.meta.queue, QueueName::Deferred);
    let states: Vec<(&str, &RecipientState)> = entry
        .meta
        .envelope
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), &r.state))
        .collect();
    assert_eq!(
        states,
        [
            (
                "b@example.net",
                &RecipientState::Deferred {
                    reason: "connection refused".into()
                }
            ),
            (
                "x@example.net",
                &RecipientState::Bounced {
                    status: "5.1.1".into(),
                    reason: "no such user".into()
                }
            ),
        ]
    );
    assert_eq!(w.store.read_message(id).unwrap(), b"Subject: t\n\nhi\n");
    assert!(!w.postfix.join("deferred/A/A1234").exists());
    assert!(!w.postfix.join("defer/A/A1234").exists());
    assert!(!w.postfix.join("bounce/A/A1234").exists());
}

#[test]
fn a_held_file_stays_held_and_its_hashed_defer_log_is_found() {
    let w = world();
    place(
        &w.postfix,
        "hold/B9876",
        &queue_file(&["d@example.net"], &[]),
        0o700,
    );
    place(
        &w.postfix,
        "defer/B/B9876",
        b"recipient=d@example.net\nreason=refused\n\n",
        0o600,
    );
    let reports = import_all(&w);
    assert_eq!(reports[0].action, Action::Imported);
    let entry = w
        .store
        .get(mailroom_id("B9876", (1_700_000_000, 5)))
        .unwrap();
    assert_eq!(entry.meta.queue, QueueName::Hold);
    assert!(matches!(
        entry.meta.envelope.recipients[0].state,
        RecipientState::Deferred { .. }
    ));
    assert!(!w.postfix.join("defer/B/B9876").exists());
}

#[test]
fn unusable_files_are_left_in_place_and_the_rest_imported() {
    let w = world();
    place(
        &w.postfix,
        "incoming/C0001",
        &queue_file(&["e@example.net"], &[]),
        0o600,
    );
    let mut truncated = queue_file(&["f@example.net"], &[]);
    truncated.truncate(truncated.len() - 2);
    place(&w.postfix, "deferred/C/C0002", &truncated, 0o700);
    place(
        &w.postfix,
        "active/C0003",
        &queue_file(&["g@example.net"], &[]),
        0o700,
    );
    place(&w.postfix, "maildrop/C0004", b"raw postdrop input", 0o700);
    let reports = import_all(&w);
    let by_id = |id: &str| reports.iter().find(|r| r.postfix_id == id).unwrap();
    assert_eq!(by_id("C0001").action, Action::Left);
    assert!(by_id("C0001")
        .why
        .as_deref()
        .unwrap()
        .contains("incomplete"));
    assert_eq!(by_id("C0002").action, Action::Left);
    assert!(by_id("C0002")
        .why
        .as_deref()
        .unwrap()
        .contains("cannot parse"));
    assert_eq!(by_id("C0003").action, Action::Imported);
    assert_eq!(by_id("C0003").queue, Some("incoming"));
    assert!(by_id("C0004").why.as_deref().unwrap().contains("maildrop"));
    assert_eq!(by_id("C0004").action, Action::Left);
    assert!(w.postfix.join("maildrop/C0004").exists());
    assert!(w.postfix.join("incoming/C0001").exists());
    assert!(w.postfix.join("deferred/C/C0002").exists());
    assert!(!w.postfix.join("active/C0003").exists());
    assert_eq!(w.store.len(), 1);
}

#[test]
fn a_file_copied_before_a_crash_is_not_queued_twice() {
    let w = world();
    let file = queue_file(&["h@example.net"], &[]);
    place(&w.postfix, "deferred/D/D0001", &file, 0o700);
    assert_eq!(import_all(&w)[0].action, Action::Imported);
    // As if the unlink had not happened: the same file again.
    place(&w.postfix, "deferred/D/D0001", &file, 0o700);
    let again = import_all(&w);
    assert_eq!(again[0].action, Action::AlreadyImported);
    assert_eq!(w.store.len(), 1);
    assert!(!w.postfix.join("deferred/D/D0001").exists());
}

#[test]
fn a_file_with_every_recipient_done_is_finished_not_queued() {
    let w = world();
    place(
        &w.postfix,
        "deferred/E/E0001",
        &queue_file(&[], &["a@example.net"]),
        0o700,
    );
    let reports = import_all(&w);
    assert_eq!(reports[0].action, Action::Finished);
    assert!(w.store.is_empty());
    assert!(!w.postfix.join("deferred/E/E0001").exists());
}

#[test]
fn dry_run_changes_nothing() {
    let w = world();
    place(
        &w.postfix,
        "deferred/F/F0001",
        &queue_file(&["i@example.net"], &[]),
        0o700,
    );
    let target = Target::DryRun(None);
    let files = list(&w.postfix).unwrap();
    let report = import_one(&w.postfix, &files[0], &target);
    assert_eq!(report.action, Action::Imported);
    assert!(w.postfix.join("deferred/F/F0001").exists());
    assert!(w.store.is_empty());
}

#[test]
fn derived_ids_differ_per_postfix_id_and_sort_by_arrival() {
    let a = mailroom_id("ABC", (1_700_000_000, 0));
    let b = mailroom_id("ABD", (1_700_000_000, 0));
    let later = mailroom_id("ABC", (1_700_000_001, 0));
    assert_ne!(a, b);
    assert!(a < later && b < later);
    assert_eq!(a.unix_time(), 1_700_000_000);
}

#[test]
fn an_address_verification_probe_is_not_delivered_as_mail() {
    let w = world();
    let mut file = Vec::new();
    record(&mut file, b'T', "1700000000 5");
    record(&mut file, b'A', "trace_flags=256");
    record(&mut file, b'S', "double-bounce@example.com");
    record(&mut file, b'R', "probed@example.net");
    for (kind, data) in [(b'M', ""), (b'N', "Subject: probe"), (b'X', ""), (b'E', "")] {
        record(&mut file, kind, data);
    }
    place(&w.postfix, "deferred/G/G0001", &file, 0o700);
    let reports = import_all(&w);
    assert_eq!(reports[0].action, Action::Finished);
    assert!(reports[0].warning.as_deref().unwrap().contains("probe"));
    assert!(w.store.is_empty());
}

#[test]
fn an_operators_shell_in_the_queue_directory_is_not_a_running_postfix() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = std::process::Command::new("sleep")
        .arg("30")
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    let running = crate::import::postfix_running(dir.path());
    let _ = shell.kill();
    let _ = shell.wait();
    assert_eq!(running.unwrap(), None);
}
