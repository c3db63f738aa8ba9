//! The archive split on a real file, without concurrency (the end-to-end test races it
//! against deliveries).

use super::*;
use flate2::read::GzDecoder;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

const OLD: &str = "From a@b Tue Mar  5 07:08:09 2019\nSubject: old1\n\n>From here is quoted\n\n\
From c@d Wed Mar  6 07:08:09 2019\nSubject: old2\n\nbody\n\n";

fn new_message(now: u64) -> String {
    let t = chrono::DateTime::from_timestamp(now as i64, 0).unwrap();
    format!(
        "From e@f {}\nSubject: new\n\nfresh\n\n",
        t.format("%a %b %e %H:%M:%S %Y")
    )
}

#[test]
fn dates_parse() {
    assert_eq!(
        separator_time(b"From a@b Thu Jan  1 00:01:00 1970\n"),
        Some(60)
    );
    assert_eq!(
        separator_time(b"From MAILER-DAEMON Thu Jan 15 00:00:00 1970\n"),
        Some(14 * 86_400)
    );
    assert_eq!(separator_time(b"From nobody\n"), None);
}

#[test]
fn old_messages_move_and_the_rest_keeps_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("alice");
    let now = crate::duration::unix_now();
    let fresh = new_message(now);
    fs::write(&mbox, format!("{OLD}{fresh}")).unwrap();
    fs::set_permissions(&mbox, fs::Permissions::from_mode(0o640)).unwrap();
    let opts = Options {
        mbox: mbox.clone(),
        older_than: 30 * 86_400,
        now,
        archive: dir.path().join("archive/alice.mbox.gz"),
        lock_timeout: Duration::from_secs(5),
    };
    let out = archive(&opts).unwrap();
    assert_eq!((out.archived, out.kept), (2, 1));
    assert_eq!(fs::read_to_string(&mbox).unwrap(), fresh);
    assert_eq!(
        fs::metadata(&mbox).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    let mut text = String::new();
    GzDecoder::new(File::open(&opts.archive).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, OLD);
    assert!(!dir.path().join("alice.lock").exists());
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Nothing old left: the mailbox is not touched at all.
    let ino = fs::metadata(&mbox).unwrap().ino();
    let again = archive(&Options {
        archive: dir.path().join("archive/2.gz"),
        ..opts
    })
    .unwrap();
    assert_eq!((again.archived, again.kept), (0, 1));
    assert_eq!(fs::metadata(&mbox).unwrap().ino(), ino);
    assert!(!dir.path().join("archive/2.gz").exists());
}
