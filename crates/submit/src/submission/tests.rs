use super::*;
use crate::maildrop::DsnOptions;
use crate::testing::{config, names};

fn sample() -> MaildropFile {
    MaildropFile {
        id: QueueId::generate(),
        arrival_time: 1_700_000_000,
        uid: 1000,
        username: "alice".into(),
        fullname: None,
        sender: "alice".into(),
        recipients: vec!["bob".into()],
        dsn: DsnOptions::default(),
        message: b"Subject: hi\n\nbody\n".to_vec(),
    }
}

fn how(cfg: &Config) -> Submission<'static> {
    Submission {
        settings: SubmitSettings::from_config(cfg),
        program: "sendmail",
        exit_on_timeout: false,
        use_helper: true,
        create_layout: true,
    }
}

#[test]
fn creates_the_store_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let id = submit(&how(&cfg), &sample()).unwrap();
    let maildrop_dir = queue::Layout::new(&cfg.queue_directory).maildrop();
    assert_eq!(names(&maildrop_dir), vec![id.to_string()]);
    let mode = fs::metadata(&maildrop_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn missing_store_is_not_created_when_not_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut how = how(&cfg);
    how.create_layout = false;
    let err = submit(&how, &sample()).unwrap_err();
    assert_eq!(err.exit_code(), 75);
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!cfg.queue_directory.exists());
}

#[test]
fn count_cap_refuses_with_75_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.maildrop_count_limit = 2;
    submit(&how(&cfg), &sample()).unwrap();
    submit(&how(&cfg), &sample()).unwrap();
    let err = submit(&how(&cfg), &sample()).unwrap_err();
    assert_eq!(err.exit_code(), 75);
    assert_eq!(
        err.to_string(),
        "maildrop holds 2 files (maildrop_count_limit 2): is the mailroom daemon down? message not queued"
    );
    assert_eq!(
        err.smtp_reply().summary(),
        "452 4.3.1 Insufficient system storage"
    );
    assert_eq!(
        names(&queue::Layout::new(&cfg.queue_directory).maildrop()).len(),
        2
    );
    assert_eq!(guard::take_refusal_count(&cfg.queue_directory).unwrap(), 1);
}

#[test]
fn free_space_guard_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.queue_minfree = u64::MAX / 2;
    let err = submit(&how(&cfg), &sample()).unwrap_err();
    assert_eq!(err.exit_code(), 75);
    let text = err.to_string();
    assert!(text.contains("below queue_minfree"), "{text}");
    assert!(text.ends_with("; message not queued"), "{text}");
    assert!(names(&queue::Layout::new(&cfg.queue_directory).maildrop()).is_empty());
}

#[test]
fn a_fired_watchdog_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let watchdog = Watchdog::arm(Duration::ZERO, OnTimeout::FailWrite);
    // It fires on its own thread, whenever that runs: wait for it, not 50 ms.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !watchdog.fired() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let err = maildrop::write_with(dir.path(), &sample(), &watchdog).unwrap_err();
    assert!(matches!(err, MaildropError::Interrupted(_)));
    assert!(names(dir.path()).is_empty());
}

#[test]
fn zero_timeout_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.submit_timeout = Duration::ZERO;
    for _ in 0..20 {
        let result = submit(&how(&cfg), &sample());
        if let Err(e) = &result {
            assert!(matches!(e, SubmitError::TimedOut(_)), "{e}");
        }
    }
    let maildrop_dir = queue::Layout::new(&cfg.queue_directory).maildrop();
    for name in names(&maildrop_dir) {
        assert!(!name.starts_with("tmp."), "left {name}");
        maildrop::read(&maildrop_dir.join(name)).unwrap();
    }
}

/// Writes a fake helper script; returns its path.
fn fake_helper(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake-postdrop");
    fs::write(
        &path,
        format!("#!/bin/sh\ncat > {}/input\n{body}\n", dir.display()),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn helper_gets_the_maildrop_bytes_and_its_id_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.postdrop_path = fake_helper(dir.path(), "echo 0123456789ABCDEF");
    let watchdog = Watchdog::arm(Duration::from_secs(30), OnTimeout::FailWrite);
    let drop = sample();
    let id = run_helper(&SubmitSettings::from_config(&cfg), &drop, &watchdog).unwrap();
    assert_eq!(id.to_string(), "0123456789ABCDEF");
    let input = fs::read(dir.path().join("input")).unwrap();
    assert_eq!(maildrop::decode(drop.id, &input).unwrap(), drop);
}

#[test]
fn helper_failure_keeps_its_code_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let script = "echo 'mailroom-postdrop: fatal: queue file system is full' >&2; exit 75";
    cfg.postdrop_path = fake_helper(dir.path(), script);
    let watchdog = Watchdog::arm(Duration::from_secs(30), OnTimeout::FailWrite);
    let err = run_helper(&SubmitSettings::from_config(&cfg), &sample(), &watchdog).unwrap_err();
    assert_eq!(err.exit_code(), 75);
    assert_eq!(err.to_string(), "queue file system is full");
}

#[test]
fn hung_helper_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.postdrop_path = fake_helper(dir.path(), "exec sleep 30");
    let watchdog = Watchdog::arm(Duration::from_millis(200), OnTimeout::FailWrite);
    let started = std::time::Instant::now();
    let err = run_helper(&SubmitSettings::from_config(&cfg), &sample(), &watchdog).unwrap_err();
    assert!(matches!(err, SubmitError::TimedOut(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn helper_usability() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!helper_usable(&dir.path().join("none")));
    let plain = dir.path().join("plain");
    fs::write(&plain, "").unwrap();
    assert!(!helper_usable(&plain));
    assert!(helper_usable(&fake_helper(dir.path(), "")));
}
