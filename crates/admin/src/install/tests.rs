//! The install plan under a prefix (no root needed): idempotence, dry runs, the
//! written-once files, the MTA guard and the uninstall that walks the same plan back.

use super::*;
use crate::check::layout::queue_layout;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sources: Sources,
}

/// A prefix and a directory of stand-in binaries (their bytes are copied, never run).
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("build");
    fs::create_dir(&bin).unwrap();
    for name in BINARIES {
        fs::write(bin.join(name), format!("stand-in {name}\n")).unwrap();
    }
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    World {
        root,
        sources: Sources {
            bin_dir: bin,
            unit: "[Unit]\n".to_string(),
            logrotate: "/var/log/mailroom.log {}\n".to_string(),
        },
        _dir: dir,
    }
}

impl World {
    fn options(&self) -> Options {
        Options {
            prefix: Some(self.root.clone()),
            ..Options::default()
        }
    }

    fn install(&self, options: &Options) -> (Outcome, String) {
        let cfg = installed_config(Some(&self.root)).unwrap();
        let plan = plan(&cfg, options, Some(&self.sources));
        let mut out = Vec::new();
        let outcome = run(&plan, options, &mut out);
        (outcome, String::from_utf8(out).unwrap())
    }

    fn uninstall(&self, options: &Options) -> Outcome {
        let cfg = installed_config(Some(&self.root)).unwrap();
        let plan = plan(&cfg, options, Some(&self.sources));
        uninstall(&plan, &cfg.queue_directory, options, &mut Vec::new())
    }

    /// Every path under the prefix with its type, mode, size, link target and mtime.
    fn tree(&self) -> BTreeMap<PathBuf, String> {
        let mut tree = BTreeMap::new();
        walk(&self.root, &self.root, &mut tree);
        tree
    }
}

fn walk(base: &Path, dir: &Path, tree: &mut BTreeMap<PathBuf, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let link = fs::read_link(&path).ok();
        let state = format!(
            "{:o} {} {:?} {}.{}",
            meta.mode(),
            meta.len(),
            link,
            meta.mtime(),
            meta.mtime_nsec()
        );
        tree.insert(path.strip_prefix(base).unwrap().to_path_buf(), state);
        if meta.is_dir() {
            walk(base, &path, tree);
        }
    }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn second_install_changes_nothing_and_says_so() {
    let w = world();
    let (first, _) = w.install(&w.options());
    assert!(
        matches!(first, Outcome::Done { changed } if changed > 0),
        "{first:?}"
    );
    let before = w.tree();
    let (second, text) = w.install(&w.options());
    assert_eq!(second, Outcome::Done { changed: 0 }, "{text}");
    assert_eq!(w.tree(), before, "a second install touched the tree");
}

#[test]
fn dry_run_lists_every_step_and_creates_nothing() {
    let w = world();
    let options = Options {
        dry_run: true,
        ..w.options()
    };
    let (outcome, text) = w.install(&options);
    assert!(matches!(outcome, Outcome::Done { changed } if changed > 0));
    assert!(w.tree().is_empty(), "dry run created {:?}", w.tree());
    let maildrop = w.root.join("var/spool/mailroom/maildrop");
    assert!(
        text.contains(&format!("would create {} (0730)", maildrop.display())),
        "{text}"
    );
    assert!(
        text.contains("would create") && text.contains("/usr/sbin/sendmail -> mailroom-sendmail")
    );
}

#[test]
fn queue_directories_get_the_modes_check_expects() {
    let w = world();
    w.install(&w.options());
    let cfg = Config::system_default();
    let rows = queue_layout(&crate::Settings::from_config(&cfg))
        .into_iter()
        .filter(|row| row.kind == Kind::Directory);
    for row in rows {
        let real = under(Some(&w.root), &row.path);
        // Exactly the created mode, not merely an acceptable one (no umask cut).
        assert_eq!(mode(&real), row.mode, "{}", real.display());
    }
}

#[test]
fn configuration_is_written_once_and_never_overwritten() {
    let w = world();
    w.install(&w.options());
    let path = w.root.join("etc/mailroom/mailroom.toml");
    assert_eq!(fs::read_to_string(&path).unwrap(), CONFIG_TEXT);
    let edited = "profile = \"system\"\nmyhostname = \"mx.example.com\"\n";
    fs::write(&path, edited).unwrap();
    let (outcome, _) = w.install(&w.options());
    assert_eq!(outcome, Outcome::Done { changed: 0 });
    assert_eq!(fs::read_to_string(&path).unwrap(), edited);
}

#[test]
fn a_changed_binary_is_replaced() {
    let w = world();
    w.install(&w.options());
    fs::write(w.sources.bin_dir.join("mailroom"), "new build\n").unwrap();
    let (outcome, text) = w.install(&w.options());
    assert_eq!(outcome, Outcome::Done { changed: 1 }, "{text}");
    let installed = fs::read_to_string(w.root.join("usr/sbin/mailroom")).unwrap();
    assert_eq!(installed, "new build\n");
}

#[test]
fn another_mtas_sendmail_is_refused_before_any_change() {
    let w = world();
    let sendmail = w.root.join("usr/sbin/sendmail");
    fs::create_dir_all(sendmail.parent().unwrap()).unwrap();
    fs::write(&sendmail, "#!/bin/sh\necho other MTA\n").unwrap();
    let before = w.tree();
    let (outcome, _) = w.install(&w.options());
    let Outcome::Refused(reasons) = outcome else {
        panic!("not refused: {outcome:?}")
    };
    assert!(
        reasons.iter().any(|r| r.contains("--replace-mta")),
        "{reasons:?}"
    );
    assert_eq!(w.tree(), before, "a refused install changed something");
}

#[test]
fn replace_mta_moves_the_other_file_aside_and_uninstall_puts_it_back() {
    let w = world();
    let sendmail = w.root.join("usr/sbin/sendmail");
    fs::create_dir_all(sendmail.parent().unwrap()).unwrap();
    fs::write(&sendmail, "other MTA\n").unwrap();
    let options = Options {
        replace_mta: true,
        ..w.options()
    };
    let (outcome, text) = w.install(&options);
    assert!(
        matches!(outcome, Outcome::Done { .. }),
        "{outcome:?} {text}"
    );
    assert_eq!(
        fs::read_link(&sendmail).unwrap(),
        Path::new("mailroom-sendmail")
    );
    let aside = w.root.join("usr/sbin/sendmail.before-mailroom");
    assert_eq!(fs::read_to_string(&aside).unwrap(), "other MTA\n");
    assert!(matches!(w.uninstall(&w.options()), Outcome::Done { .. }));
    assert_eq!(fs::read_to_string(&sendmail).unwrap(), "other MTA\n");
    assert!(!aside.exists());
}

#[test]
fn a_symlink_where_the_queue_belongs_is_refused() {
    let w = world();
    let spool = w.root.join("var/spool");
    fs::create_dir_all(&spool).unwrap();
    std::os::unix::fs::symlink("/tmp", spool.join("mailroom")).unwrap();
    let (outcome, _) = w.install(&w.options());
    assert!(matches!(outcome, Outcome::Refused(_)), "{outcome:?}");
}

#[test]
fn uninstall_keeps_the_queue_and_purge_leaves_only_the_aliases() {
    let w = world();
    w.install(&w.options());
    assert!(matches!(w.uninstall(&w.options()), Outcome::Done { .. }));
    assert!(!w.root.join("usr/sbin/mailroom").exists());
    assert!(w.root.join("var/spool/mailroom/maildrop").is_dir());
    assert!(w.root.join("etc/mailroom/mailroom.toml").is_file());
    let purge = Options {
        purge: true,
        ..w.options()
    };
    assert!(matches!(w.uninstall(&purge), Outcome::Done { .. }));
    let files: Vec<_> = w
        .tree()
        .into_iter()
        .filter(|(path, _)| !w.root.join(path).is_dir())
        .map(|(path, _)| path)
        .collect();
    assert_eq!(files, [PathBuf::from("etc/aliases")]);
    assert_eq!(w.uninstall(&purge), Outcome::Done { changed: 0 });
}

#[test]
fn a_refused_dry_run_still_lists_every_step() {
    let w = world();
    let sendmail = w.root.join("usr/sbin/sendmail");
    fs::create_dir_all(sendmail.parent().unwrap()).unwrap();
    fs::write(&sendmail, "other MTA\n").unwrap();
    let options = Options {
        dry_run: true,
        ..w.options()
    };
    let (outcome, text) = w.install(&options);
    assert!(matches!(outcome, Outcome::Refused(_)), "{outcome:?}");
    assert!(
        text.contains("would refuse: ") && text.contains("would create"),
        "{text}"
    );
    assert_eq!(fs::read_to_string(&sendmail).unwrap(), "other MTA\n");
}
