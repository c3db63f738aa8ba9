use super::*;

fn limits(count: u64, size: u64) -> Limits {
    Limits {
        queue_minfree: 0,
        queue_minfree_inodes: 0,
        maildrop_size_limit: size,
        maildrop_count_limit: count,
    }
}

fn fill(dir: &Path, files: usize, bytes: usize) {
    for i in 0..files {
        fs::write(dir.join(format!("f{i}")), vec![b'x'; bytes]).unwrap();
    }
}

#[test]
fn count_cap_refuses_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 2, 10);
    assert!(check_maildrop(dir.path(), &limits(3, 0), 10).is_ok());
    fill(dir.path(), 3, 10);
    let err = check_maildrop(dir.path(), &limits(3, 0), 10).unwrap_err();
    assert_eq!(
        err.to_string(),
        "maildrop holds 3 files (maildrop_count_limit 3): is the mailroom daemon down?"
    );
}

#[test]
fn size_cap_counts_the_new_message() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 2, 1000);
    assert!(check_maildrop(dir.path(), &limits(0, 3000), 1000).is_ok());
    let err = check_maildrop(dir.path(), &limits(0, 3000), 1001).unwrap_err();
    assert!(matches!(
        err,
        GuardError::Refused(Refusal::MaildropSize { limit: 3000, .. })
    ));
    assert!(
        err.to_string().contains("maildrop_size_limit 2 kB"),
        "{err}"
    );
}

#[test]
fn zero_means_no_limit_and_directories_do_not_count() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 5, 100);
    fs::create_dir(dir.path().join("sub")).unwrap();
    assert!(check_maildrop(dir.path(), &limits(0, 0), 1 << 30).is_ok());
    assert!(check_maildrop(dir.path(), &limits(6, 0), 1).is_ok());
}

#[test]
fn low_space_is_refused_with_a_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let free = free_space(dir.path()).unwrap();
    let mut limits = limits(0, 0);
    limits.queue_minfree = free.bytes + (1 << 40);
    let err = check_free_space(dir.path(), &limits, 0).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("queue file system has only ") && text.contains("below queue_minfree"),
        "{text}"
    );
    limits.queue_minfree = 0;
    assert!(check_free_space(dir.path(), &limits, 0).is_ok());
    let err = check_free_space(dir.path(), &limits, free.bytes + (1 << 40)).unwrap_err();
    assert!(err.to_string().contains("no room for a"), "{err}");
}

#[test]
fn missing_maildrop_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = check(dir.path(), &dir.path().join("nope"), &limits(1, 1), 0).unwrap_err();
    assert!(matches!(err, GuardError::Io { .. }));
    assert!(!err.is_permission_denied());
}

#[test]
fn refusal_texts() {
    let low = Refusal::LowSpace {
        free: 12 << 20,
        minfree: 100 << 20,
        message: 10,
    };
    assert_eq!(
        low.to_string(),
        "queue file system has only 12 MB free, below queue_minfree (100 MB)"
    );
    let inodes = Refusal::LowInodes {
        free: 5,
        minfree: 1000,
    };
    assert_eq!(
        inodes.to_string(),
        "queue file system has only 5 free inodes, below queue_minfree_inodes (1000)"
    );
    assert_eq!(human(512), "512 bytes");
}
