//! `mailroom mailbox archive` on Maildirs: a `home_mailbox = "Maildir/"` mailbox and a
//! virtual Maildir found by its address in `virtual_mailbox_maps`. Old messages move into
//! the `.Archive` folder, the rest stay; a run killed halfway loses and duplicates nothing
//! (each message moves by one rename).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use testkit::*;

const OLD: u64 = 1_600_000_000; // 2020: older than any --older-than below

fn names(dir: &Path) -> BTreeSet<String> {
    match fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

fn plant_old(maildir: &Path, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|i| {
            let name = format!("{}.M{i}P1Q{i}.old.example:2,S", OLD + i as u64);
            fs::write(
                maildir.join("cur").join(&name),
                format!("Subject: old {i}\n\nx\n"),
            )
            .unwrap();
            name
        })
        .collect()
}

fn archive(env: &TestEnv, who: &str) -> serde_json::Value {
    let out = env.run(
        &["mailbox", "archive", who, "--older-than", "30d", "--json"],
        b"",
    );
    assert_success(&out, "mailbox archive");
    serde_json::from_slice(&out.stdout).expect("json outcome")
}

#[test]
fn a_home_mailbox_maildir_keeps_new_mail_and_archives_old_mail() {
    let env = TestEnv::with_config("home_mailbox = \"Maildir/\"\n");
    let _daemon = env.start();
    // bob has no passwd entry: his Maildir is mail_spool_directory/bob/, as delivery says.
    for i in 0..2 {
        env.send_ok(
            &["-i", "bob@localhost"],
            format!("Subject: new {i}\n\nhi\n").as_bytes(),
        );
    }
    let maildir = env.spool_dir().join("bob");
    wait_until("two messages in bob's Maildir", || {
        names(&maildir.join("new")).len() == 2
    });
    let old = plant_old(&maildir, 3);
    let fresh = names(&maildir.join("new"));

    let outcome = archive(&env, "bob");
    assert_eq!(
        (outcome["archived"].as_u64(), outcome["kept"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(names(&maildir.join(".Archive/cur")), old);
    assert_eq!(
        names(&maildir.join("new")),
        fresh,
        "new mail stays where it was"
    );
    assert!(names(&maildir.join("cur")).is_empty());
}

#[test]
fn a_virtual_maildir_is_found_by_its_address_and_the_archive_belongs_to_its_owner() {
    let ids = match is_root() {
        true => match privsep::ensure_account(privsep::USER) {
            Some(ids) => ids,
            None => {
                eprintln!("skipped: cannot create the test account");
                return;
            }
        },
        false => (sys_ids().0, sys_ids().1),
    };
    let env = TestEnv::new();
    let base = env.root.join("vmail");
    fs::create_dir(&base).unwrap();
    std::os::unix::fs::chown(&base, Some(ids.0), Some(ids.1)).unwrap();
    fs::write(
        env.root.join("vmailbox"),
        "bob@example.com example.com/bob/\n",
    )
    .unwrap();
    env.write_config(&format!(
        "virtual_mailbox_domains = [\"example.com\"]\n\
         virtual_mailbox_maps = [\"{root}/vmailbox\"]\n\
         virtual_mailbox_base = \"{root}/vmail\"\n\
         virtual_uid_maps = [\"static:{uid}\"]\n\
         virtual_gid_maps = [\"static:{gid}\"]\n",
        root = env.root.display(),
        uid = ids.0,
        gid = ids.1
    ));
    let _daemon = env.start();
    env.send_ok(&["-i", "bob@example.com"], b"Subject: fresh\n\nhi\n");
    let maildir = base.join("example.com/bob");
    wait_until("bob's virtual Maildir has the message", || {
        names(&maildir.join("new")).len() == 1
    });
    let old = plant_old(&maildir, 2);

    let outcome = archive(&env, "Bob@Example.com");
    assert_eq!(
        (outcome["archived"].as_u64(), outcome["kept"].as_u64()),
        (Some(2), Some(1))
    );
    let archived = maildir.join(".Archive");
    assert_eq!(names(&archived.join("cur")), old);
    for dir in ["", "cur", "new", "tmp"] {
        let meta = fs::metadata(archived.join(dir)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), ids, "owner of .Archive/{dir}");
        assert_eq!(meta.mode() & 0o777, 0o700);
    }
    let out = env.run(&["mailbox", "archive", "nobody@example.com"], b"");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
}

#[test]
fn an_archive_killed_halfway_loses_and_duplicates_nothing() {
    let env = TestEnv::new();
    let maildir = env.root.join("Maildir");
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let all = plant_old(&maildir, 5_000);
    let archived = maildir.join(".Archive/cur");
    let mut run = env
        .command()
        .args(["mailbox", "archive", "x", "--mbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .spawn()
        .expect("mailbox archive");
    // Kill it once it has begun moving (if it finishes first, the check below still holds).
    wait_until("the archive run to move its first message", || {
        !names(&archived).is_empty() || run.try_wait().unwrap().is_some()
    });
    let _ = run.kill();
    let _ = run.wait();
    let (left, moved) = (names(&maildir.join("cur")), names(&archived));
    assert!(left.is_disjoint(&moved), "a message in both places");
    let union: BTreeSet<String> = left.union(&moved).cloned().collect();
    assert_eq!(union, all, "every message is in exactly one place");
    // A second run finishes the job.
    let out = env.run(
        &[
            "mailbox",
            "archive",
            "x",
            "--mbox",
            &maildir.display().to_string(),
        ],
        b"",
    );
    assert_success(&out, "second archive run");
    assert!(names(&maildir.join("cur")).is_empty());
    assert_eq!(names(&archived), all);
}

fn sys_ids() -> (u32, u32) {
    let meta = fs::metadata("/proc/self").unwrap();
    (meta.uid(), meta.gid())
}

/// Someone who may move a Maildir's messages but is neither root nor its owner used to get
/// an archive of their own without a word (the chown was best effort): the mailbox's owner
/// then could not read their old mail. The archive still happens, and says so.
#[test]
fn an_archive_that_cannot_be_given_to_the_owner_is_reported() {
    if !is_root() {
        eprintln!("skipped: needs root to run the archive as another user");
        return;
    }
    let Some(ids) = privsep::ensure_account(privsep::USER) else {
        eprintln!("skipped: cannot create the test account");
        return;
    };
    let env = TestEnv::new();
    let shared = env.root.join("shared");
    let maildir = shared.join("Maildir");
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let old = plant_old(&maildir, 2);
    for dir in [&env.root, &shared] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    for dir in ["", "cur", "new", "tmp"] {
        fs::set_permissions(maildir.join(dir), fs::Permissions::from_mode(0o777)).unwrap();
    }
    let command = env.command();
    let out = std::process::Command::new("setpriv")
        .arg(format!("--reuid={}", ids.0))
        .arg(format!("--regid={}", ids.1))
        .arg("--clear-groups")
        .arg(command.get_program())
        .args(command.get_args())
        .args([
            "mailbox",
            "archive",
            "x",
            "--older-than",
            "30d",
            "--json",
            "--mbox",
        ])
        .arg(&maildir)
        .output()
        .expect("setpriv");
    assert_success(&out, "mailbox archive as another user");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mailbox: warning:") && stderr.contains("stays owned by uid"),
        "stderr: {stderr}"
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json outcome");
    assert!(outcome["owner_warning"].is_string(), "{outcome}");
    assert_eq!(names(&maildir.join(".Archive/cur")), old);
    let meta = fs::metadata(maildir.join(".Archive")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        ids,
        "the archive is the archiver's"
    );
}
