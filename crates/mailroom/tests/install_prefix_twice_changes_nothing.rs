//! `mailroom install --prefix DIR` through the real binary: the dry run lists steps and
//! creates nothing, the install prints each change, a second run says "nothing to change",
//! another MTA's sendmail is refused with exit 73 and how to proceed, `-c` is a usage
//! error, and `uninstall --purge` leaves only the system's /etc/aliases.
//!
//! The binary is copied into a staging directory with stand-ins for mailroom-sendmail and
//! mailroom-postdrop (they belong to the `submit` package, which this test does not build;
//! install copies their bytes and never runs them). The full install as root — users,
//! owners, setgid helper, `mailroom check`, delivery — runs in a Debian chroot in
//! scripts/deb-test.sh.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Staged {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    root: PathBuf,
}

fn staged() -> Staged {
    let dir = tempfile::tempdir().unwrap();
    let build = dir.path().join("build");
    fs::create_dir(&build).unwrap();
    fs::copy(testkit::bin(), build.join("mailroom")).unwrap();
    for name in ["mailroom-sendmail", "mailroom-postdrop"] {
        fs::write(build.join(name), format!("stand-in {name}\n")).unwrap();
    }
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    Staged {
        bin: build.join("mailroom"),
        root,
        _dir: dir,
    }
}

impl Staged {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .arg("--prefix")
            .arg(&self.root)
            .env_remove("MAILROOM_CONFIG")
            .output()
            .unwrap()
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        list(&self.root, &self.root, &mut files);
        files.sort();
        files
    }
}

fn list(base: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            list(base, &path, files);
        } else {
            files.push(path.strip_prefix(base).unwrap().to_path_buf());
        }
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn install_prefix_twice_changes_nothing() {
    let s = staged();
    let dry = s.run(&["install", "--dry-run"]);
    assert!(dry.status.success(), "{dry:?}");
    assert!(
        stdout(&dry).contains("install: would create"),
        "{}",
        stdout(&dry)
    );
    assert!(s.files().is_empty(), "dry run created {:?}", s.files());

    let first = s.run(&["install"]);
    assert!(first.status.success(), "{first:?}");
    let queue = s.root.join("var/spool/mailroom");
    assert!(
        stdout(&first).contains(&format!("install: created {} (0755)", queue.display())),
        "{}",
        stdout(&first)
    );
    assert!(fs::read_link(s.root.join("usr/sbin/sendmail")).is_ok());

    let before = s.files();
    let second = s.run(&["install"]);
    assert!(second.status.success(), "{second:?}");
    assert!(
        stdout(&second).contains("nothing to change"),
        "{}",
        stdout(&second)
    );
    assert!(!stdout(&second).contains("created"), "{}", stdout(&second));
    assert_eq!(s.files(), before);

    let purge = s.run(&["uninstall", "--purge"]);
    assert!(purge.status.success(), "{purge:?}");
    assert_eq!(s.files(), [PathBuf::from("etc/aliases")]);
}

#[test]
fn install_over_another_sendmail_is_refused_with_how_to_proceed() {
    let s = staged();
    let sendmail = s.root.join("usr/sbin/sendmail");
    fs::create_dir_all(sendmail.parent().unwrap()).unwrap();
    fs::write(&sendmail, "#!/bin/sh\n").unwrap();
    let refused = s.run(&["install"]);
    assert_eq!(refused.status.code(), Some(73), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("--replace-mta") && said.contains("nothing was changed"),
        "{said}"
    );
    assert_eq!(s.files(), [PathBuf::from("usr/sbin/sendmail")]);
}

#[test]
fn install_with_a_config_flag_is_a_usage_error() {
    let s = staged();
    let output = Command::new(&s.bin)
        .args(["-c", "/nonexistent.toml", "install", "--prefix"])
        .arg(&s.root)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64), "{output:?}");
    assert!(s.files().is_empty());
}
