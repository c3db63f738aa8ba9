use super::*;
use crate::maildrop::DsnOptions;
use std::cell::RefCell;

fn sample() -> MaildropFile {
    MaildropFile {
        id: QueueId::generate(),
        arrival_time: 1_700_000_000,
        uid: 1000,
        username: "alice".into(),
        fullname: None,
        sender: "alice".into(),
        recipients: vec!["bob@example.org".into()],
        dsn: DsnOptions::default(),
        message: b"Subject: hi\n\nbody\n".to_vec(),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn write_then_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let drop = sample();
    let id = write(dir.path(), &drop).unwrap();
    assert_eq!(id, drop.id);
    assert_eq!(names(dir.path()), vec![id.to_string()], "temp name removed");
    let path = dir.path().join(id.to_string());
    assert_eq!(read(&path).unwrap(), drop);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, FILE_MODE);
}

/// Fails at one chosen stage, recording every stage it saw.
struct FailAt {
    stage: usize,
    seen: RefCell<Vec<String>>,
}

impl WriteHooks for FailAt {
    fn checkpoint(&self, stage: Stage<'_>) -> Result<(), MaildropError> {
        let mut seen = self.seen.borrow_mut();
        seen.push(format!("{stage:?}"));
        if seen.len() == self.stage {
            return Err(MaildropError::Interrupted("injected".into()));
        }
        Ok(())
    }
}

#[test]
fn injected_failure_at_any_stage_leaves_no_file() {
    for stage in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let hooks = FailAt {
            stage,
            seen: RefCell::new(Vec::new()),
        };
        let result = write_with(dir.path(), &sample(), &hooks);
        assert!(matches!(result, Err(MaildropError::Interrupted(_))));
        assert_eq!(names(dir.path()), Vec::<String>::new(), "stage {stage}");
    }
}

#[test]
fn invalid_envelope_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut drop = sample();
    drop.sender = "a\nb".into();
    assert!(write(dir.path(), &drop).is_err());
    assert!(names(dir.path()).is_empty());
}

#[test]
fn existing_name_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let drop = sample();
    let taken = dir.path().join(drop.id.to_string());
    fs::write(&taken, b"someone else's message").unwrap();
    let id = write(dir.path(), &drop).unwrap();
    assert_ne!(id, drop.id);
    assert_eq!(fs::read(&taken).unwrap(), b"someone else's message");
    let mut expected = drop.clone();
    expected.id = id;
    assert_eq!(read(&dir.path().join(id.to_string())).unwrap(), expected);
}

#[test]
fn missing_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = write(&dir.path().join("nope"), &sample()).unwrap_err();
    assert!(matches!(err, MaildropError::Io { .. }), "{err}");
}

#[test]
fn scan_sorts_and_separates() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(dir.path(), &sample()).unwrap();
    let second = write(dir.path(), &sample()).unwrap();
    fs::write(dir.path().join("tmp.1.2"), b"partial").unwrap();
    fs::write(dir.path().join("junk"), b"?").unwrap();
    let found = scan(dir.path()).unwrap();
    let ids: Vec<QueueId> = found.ready.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![first, second]);
    assert_eq!(found.foreign, vec![dir.path().join("junk")]);
    assert_eq!(ready_files(dir.path()).unwrap(), found.ready);
}

#[test]
fn stale_temp_files_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let temp = dir.path().join("tmp.9.9");
    fs::write(&temp, b"x").unwrap();
    write(dir.path(), &sample()).unwrap();
    assert!(stale_temp_files(dir.path(), Duration::from_secs(3600))
        .unwrap()
        .is_empty());
    let old = SystemTime::now() - Duration::from_secs(7200);
    File::options()
        .write(true)
        .open(&temp)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(
        stale_temp_files(dir.path(), Duration::from_secs(3600)).unwrap(),
        vec![temp]
    );
}

#[test]
fn reader_refuses_symlinks_fifos_big_files_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let id = write(dir.path(), &sample()).unwrap();
    let real = dir.path().join(id.to_string());

    let link = dir.path().join(QueueId::generate().to_string());
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(matches!(read(&link), Err(MaildropError::Corrupt(_))));

    let fifo = dir.path().join(QueueId::generate().to_string());
    sys::mkfifo(&fifo, 0o600).unwrap();
    assert!(matches!(read(&fifo), Err(MaildropError::Corrupt(_))));

    assert!(matches!(
        read_capped(&real, 10),
        Err(MaildropError::Corrupt(_))
    ));
    let renamed = dir.path().join("not-an-id");
    fs::copy(&real, &renamed).unwrap();
    assert!(matches!(read(&renamed), Err(MaildropError::Corrupt(_))));
}

#[test]
fn truncated_file_on_disk_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let id = write(dir.path(), &sample()).unwrap();
    let path = dir.path().join(id.to_string());
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    assert!(matches!(read(&path), Err(MaildropError::Corrupt(_))));
}
