//! `mailroom check [--fix]` (Postfix's `postfix check` and `set-permissions`): the store's
//! directories and files against the owner, group and mode the profile expects, plus the
//! mailboxes, the setgid helper, the users and groups, and the listeners.
//!
//! Expected layout (O = `mail_owner`, G = `setgid_group`; embedded profile: O is the user
//! running mailroom and groups are not checked). The queue's rows come from one table,
//! [`layout::queue_layout`], which `serve` also creates from: a mode passes when it has the
//! needed bits and nothing beyond what `serve` creates, and `--fix` sets exactly that mode.
//! ```text
//! queue_directory        O        0755 (needs u=rwx; system: o+x too)
//! maildrop/              O:G      0730 (needs u=rwx; system: g+wx for the setgid helper)
//! store/, corrupt/       O        0700
//! store/*.seg, corrupt/* O        0600 (they hold mail)
//! store/lock             O        0644
//! control.sock           O        0600
//! showq.sock             O        0666 (any user may list the queue through it, nothing else)
//! mail_spool_directory   root (system) / O 0755    not world-writable unless sticky
//! <spool>/<user>         user     not readable by others (system: seed 002's root-owned mailbox)
//! postdrop_path          root:G   setgid, not setuid (system)
//! dkim_sign keys         O        0600 or 0400 (secrets; the daemon refuses others)
//! ```
//! Each problem is reported once, with its path and the command that fixes it; files of one
//! directory with the same problem are reported together. `--fix` makes exactly those
//! changes (never following symbolic links) and reports what it could not fix.
//!
//! Security stance: run as root (or O) to fix; only changes owner and mode bits, never
//! content, and never through a symbolic link.

mod ids;
pub mod layout;

pub use ids::{group, group_name, repair, user, user_name};

use crate::Settings;
use config::Profile;
use serde::Serialize;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One problem: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// A path, or `dir/* (N files)` for a group of files.
    pub path: String,
    pub what: String,
    /// The shell command that fixes it, or advice.
    pub fix: String,
    #[serde(skip)]
    repair: Option<Repair>,
}

impl Problem {
    /// Whether `check --fix` repairs it (owner and mode problems); others need the operator.
    pub fn fixable(&self) -> bool {
        self.repair.is_some()
    }

    /// An error `check --fix` cannot repair (a bad line in a map, found by the caller).
    pub fn unrepairable(
        path: impl Into<String>,
        what: impl Into<String>,
        fix: impl Into<String>,
    ) -> Problem {
        Problem {
            severity: Severity::Error,
            path: path.into(),
            what: what.into(),
            fix: fix.into(),
            repair: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Repair {
    paths: Vec<PathBuf>,
    owner: Option<(u32, u32)>,
    mode: Option<u32>,
}

/// What a path should look like.
#[derive(Clone, Copy)]
struct Rule {
    uid: Option<u32>,
    gid: Option<u32>,
    allowed: Allowed,
    severity: Severity,
}

/// Which modes pass, and what `--fix` sets otherwise.
#[derive(Clone, Copy)]
enum Allowed {
    /// A layout row: the needed bits and nothing beyond `mode`; the fix is `mode`.
    Within { mode: u32, needed: u32 },
    /// One of these (permission bits incl. setgid); the fix is the first.
    OneOf(&'static [u32]),
    /// `required` set and `forbidden` clear; the fix adds and removes just those bits
    /// (mailboxes, whose modes belong to their users).
    Bits { required: u32, forbidden: u32 },
}

impl Rule {
    fn within(uid: Option<u32>, mode: u32, needed: u32) -> Rule {
        Rule {
            uid,
            gid: None,
            allowed: Allowed::Within { mode, needed },
            severity: Severity::Error,
        }
    }
}

/// The outcome of `check`.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub problems: Vec<Problem>,
    /// Lines describing what `--fix` changed.
    pub fixed: Vec<String>,
}

/// Checks everything; the daemon's state (`daemon_up`) decides whether busy listeners are ours.
pub fn check(cfg: &Settings, daemon_up: bool) -> Report {
    let mut problems = Vec::new();
    let system = cfg.profile == Profile::System;
    let owner = ids::user(&cfg.mail_owner);
    let gid = ids::group(&cfg.setgid_group);
    if owner.is_none() {
        problems.push(manual(
            Severity::Error,
            &cfg.mail_owner,
            "mail_owner is not a user on this system",
            &format!("useradd --system {} (or set mail_owner)", cfg.mail_owner),
        ));
    }
    if system && gid.is_none() {
        problems.push(manual(
            Severity::Error,
            &cfg.setgid_group,
            "setgid_group is not a group on this system",
            &format!(
                "groupadd --system {} (or set setgid_group)",
                cfg.setgid_group
            ),
        ));
    }
    let uid = owner.map(|o| o.0);
    for row in layout::queue_layout(cfg) {
        let rule = Rule {
            gid: if row.setgid_group { gid } else { None },
            ..Rule::within(uid, row.mode, row.needed)
        };
        expect(&mut problems, &row.path, rule, row.must_exist);
    }
    let layout = &cfg.layout;
    group_files(&mut problems, &layout.store(), uid, |n| n.ends_with(".seg"));
    group_files(&mut problems, &layout.corrupt(), uid, |_| true);
    spool(&mut problems, cfg, system);
    locks_holding_mail(&mut problems, &cfg.mail_spool_directory);
    if system {
        helper(&mut problems, &cfg.postdrop_path, gid);
    }
    listeners(&mut problems, cfg, daemon_up);
    for secret in &cfg.secret_files {
        let rule = Rule {
            uid,
            gid: None,
            allowed: Allowed::OneOf(&[0o600, 0o400]),
            severity: Severity::Error,
        };
        expect(&mut problems, secret, rule, true);
    }
    Report {
        problems: dedup(problems),
        fixed: Vec::new(),
    }
}

/// Applies every automatic fix of `report`; problems that remain stay in it.
pub fn fix(report: &mut Report) {
    let mut left = Vec::new();
    for p in report.problems.drain(..) {
        let Some(r) = &p.repair else {
            left.push(p);
            continue;
        };
        let mut failed = None;
        for path in &r.paths {
            if let Err(e) = ids::repair(path, r.owner, r.mode) {
                failed = Some(format!("{}: {e}", path.display()));
            }
        }
        match failed {
            None => report.fixed.push(format!("{}: fixed ({})", p.path, p.fix)),
            Some(why) => left.push(Problem {
                what: format!("{} (fix failed: {why})", p.what),
                ..p
            }),
        }
    }
    report.problems = left;
}

fn manual(severity: Severity, path: &str, what: &str, fix: &str) -> Problem {
    Problem {
        severity,
        path: path.to_string(),
        what: what.to_string(),
        fix: fix.to_string(),
        repair: None,
    }
}

fn dedup(mut problems: Vec<Problem>) -> Vec<Problem> {
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert((p.path.clone(), p.what.clone())));
    problems
}

/// Compares one path with its rule; a missing path is a problem only if `required`.
fn expect(problems: &mut Vec<Problem>, path: &Path, rule: Rule, required: bool) {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) if !required => return,
        Err(e) => {
            let fix = "mailroom check --fix after the daemon's first start, or mkdir it";
            problems.push(manual(
                Severity::Error,
                &path.display().to_string(),
                &format!("missing ({e})"),
                fix,
            ));
            return;
        }
    };
    if meta.file_type().is_symlink() {
        let what = "is a symbolic link where a real directory or file is expected";
        problems.push(manual(
            Severity::Error,
            &path.display().to_string(),
            what,
            "replace it with the real thing",
        ));
        return;
    }
    if let Some(p) = judge(path, &meta, &rule) {
        problems.push(p);
    }
}

/// The problem with one existing path, if any: owner, group and mode in one line.
fn judge(path: &Path, meta: &fs::Metadata, rule: &Rule) -> Option<Problem> {
    let mode = meta.permissions().mode() & 0o7777;
    let mut wrong = Vec::new();
    let mut owner_fix = None;
    let uid_bad = rule.uid.is_some_and(|u| u != meta.uid());
    let gid_bad = rule.gid.is_some_and(|g| g != meta.gid());
    if uid_bad || gid_bad {
        let (uid, gid) = (
            rule.uid.unwrap_or(meta.uid()),
            rule.gid.unwrap_or(meta.gid()),
        );
        wrong.push(format!(
            "owner {}:{}, expected {}:{}",
            user_name(meta.uid()),
            group_name(meta.gid()),
            user_name(uid),
            group_name(gid)
        ));
        owner_fix = Some((uid, gid));
    }
    let want = wanted_mode(mode, rule);
    let mode_fix = (want != mode).then_some(want);
    if mode_fix.is_some() {
        wrong.push(format!("mode {mode:04o}, expected {want:04o}"));
    }
    if wrong.is_empty() {
        return None;
    }
    let shown = path.display().to_string();
    let mut fix = Vec::new();
    if let Some((u, g)) = owner_fix {
        fix.push(format!("chown {}:{} {shown}", user_name(u), group_name(g)));
    }
    if let Some(m) = mode_fix {
        fix.push(format!("chmod {m:04o} {shown}"));
    }
    Some(Problem {
        severity: rule.severity,
        path: shown,
        what: wrong.join(", "),
        fix: fix.join(" && "),
        repair: Some(Repair {
            paths: vec![path.to_path_buf()],
            owner: owner_fix,
            mode: mode_fix,
        }),
    })
}

fn wanted_mode(mode: u32, rule: &Rule) -> u32 {
    match rule.allowed {
        Allowed::Within {
            mode: created,
            needed,
        } => match layout::acceptable(mode, created, needed) {
            true => mode,
            false => created,
        },
        Allowed::OneOf(modes) if modes.contains(&mode) => mode,
        Allowed::OneOf(modes) => modes[0],
        Allowed::Bits {
            required,
            forbidden,
        } => (mode | required) & !forbidden,
    }
}

/// Checks the files of a directory; files with the same problem become one report.
fn group_files(
    problems: &mut Vec<Problem>,
    dir: &Path,
    uid: Option<u32>,
    wanted: impl Fn(&str) -> bool,
) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let rule = Rule::within(uid, layout::MAIL_FILE_MODE, layout::MAIL_FILE_MODE);
    let mut groups: Vec<(String, Problem)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "lock" || !wanted(&name) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let Some(p) = judge(&entry.path(), &meta, &rule) else {
            continue;
        };
        let key = p.what.clone();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => {
                if let Some(r) = g.repair.as_mut() {
                    r.paths.push(entry.path());
                }
            }
            None => groups.push((key, p)),
        }
    }
    for (_, mut p) in groups {
        let n = p.repair.as_ref().map(|r| r.paths.len()).unwrap_or(1);
        if n > 1 {
            let glob = format!("{}/*", dir.display());
            p.fix = p.fix.replace(&p.path, &glob);
            p.path = format!("{glob} ({n} files)");
        }
        problems.push(p);
    }
}

/// The system profile's mail spool: the directory, and each mailbox against its user.
fn spool(problems: &mut Vec<Problem>, cfg: &Settings, system: bool) {
    if !system {
        return; // the embedded spool is a row of the layout table
    }
    let dir = &cfg.mail_spool_directory;
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        let shown = dir.display().to_string();
        problems.push(Problem {
            severity: Severity::Error,
            path: shown.clone(),
            what: format!("mode {mode:04o}: world-writable without the sticky bit"),
            fix: format!("chmod {:04o} {shown}", mode | 0o1000),
            repair: Some(Repair {
                paths: vec![dir.clone()],
                owner: None,
                mode: Some(mode | 0o1000),
            }),
        });
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".lock") || name.contains(".archive") {
            continue;
        }
        let Some((user_uid, _)) = ids::user(&name) else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let rule = Rule {
            uid: Some(user_uid),
            gid: None,
            allowed: Allowed::Bits {
                required: 0o600,
                forbidden: 0o007,
            },
            severity: Severity::Warning,
        };
        if let Some(p) = judge(&entry.path(), &meta, &rule) {
            problems.push(p);
        }
    }
}

/// A `<user>.lock` in the spool too big to be a lock is mail (an mbox named so before mailbox
/// names were checked, or a file an operator left): local delivery keeps it and every delivery
/// to that mailbox waits behind it. Moving it is for the operator (check changes modes only).
fn locks_holding_mail(problems: &mut Vec<Problem>, dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(mailbox) = name.strip_suffix(".lock").filter(|m| !m.is_empty()) else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if !agents::local::lock_file_holds_mail(&meta) {
            continue;
        }
        let shown = entry.path().display().to_string();
        let saved = dir.join(format!("{mailbox}.held-mail"));
        problems.push(manual(
            Severity::Error,
            &shown,
            &format!(
                "holds {} bytes: mail, not a lock; deliveries to {mailbox}'s mailbox wait behind it",
                meta.len()
            ),
            &format!(
                "mv -n {shown} {} (deliveries resume; the mail in it is kept, readable with mail -f)",
                saved.display()
            ),
        ));
    }
}

/// The setgid helper that lets ordinary users submit into a 0730 maildrop.
fn helper(problems: &mut Vec<Problem>, path: &Path, gid: Option<u32>) {
    let shown = path.display().to_string();
    let Ok(meta) = fs::metadata(path) else {
        problems.push(manual(
            Severity::Warning,
            &shown,
            "missing: sendmail from users other than mail_owner will fail (EX_NOPERM)",
            "install mailroom-postdrop there, or set postdrop_path",
        ));
        return;
    };
    let rule = Rule {
        uid: Some(0),
        gid,
        allowed: Allowed::OneOf(&[0o2755, 0o2711, 0o2555]),
        severity: Severity::Error,
    };
    if let Some(p) = judge(path, &meta, &rule) {
        problems.push(p);
    }
}

/// Every configured listener must be bindable, unless our own daemon holds it.
fn listeners(problems: &mut Vec<Problem>, cfg: &Settings, daemon_up: bool) {
    if daemon_up {
        return;
    }
    for addr in &cfg.listeners {
        if let Err(e) = std::net::TcpListener::bind(addr) {
            let fix = match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "stop the program using it (ss -ltnp), or change the listener"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "ports below 1024 need root: start the daemon as root"
                }
                _ => "check the address in the configuration",
            };
            problems.push(manual(
                Severity::Error,
                &addr.to_string(),
                &format!("listener cannot bind: {e}"),
                fix,
            ));
        }
    }
}

/// True when `path` is a socket (control.sock).
pub fn is_socket(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[cfg(test)]
mod tests;
