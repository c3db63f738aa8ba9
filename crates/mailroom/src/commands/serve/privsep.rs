//! Privilege separation at start: what a daemon started as root does before it gives up
//! root, and the giving up. The design and its argument are in `agents::local::helper`.
//!
//! The sequence (as root, before the runtime starts):
//! 1. [`decide`]: separate when running as root and `mail_owner` is a user other than root;
//!    a `mail_owner` that does not exist is fatal (78), never a reason to stay root;
//! 2. [`separate`]: bind the SMTP listeners and load the TLS key (`smtpd::prepare`), create
//!    a missing mail spool ([`make_spool`]), give the queue to `mail_owner`
//!    ([`adopt_queue`]: a missing queue directory is made for it, and queue files that an
//!    earlier daemon wrote as root become its), start the local delivery helper
//!    (`mailroom local-helper`, the re-executed binary, the socketpair on its stdin);
//! 3. [`drop_privileges`]: `setgroups([gid])`, `setresgid`, `setresuid` to `mail_owner`,
//!    `PR_SET_NO_NEW_PRIVS`, then verify from `/proc/self/status` that every uid and gid is
//!    `mail_owner`'s and that the permitted and effective capability sets are empty, and that
//!    root cannot be had back. Anything else is fatal: the daemon never runs half-dropped.
//!
//! After that the same process opens the store (so every queue file is `mail_owner`'s),
//! and runs smtpd, pickup, the queue manager and the SMTP client as `mail_owner`. It keeps
//! its pid: the pid an admin (or a pid file) signals is the daemon's, as before.
//!
//! Not root (the embedded default, a user's private daemon), or root with `mail_owner`
//! root (the embedded default started by root): no separation is possible; one process as
//! before. The system profile refuses a root `mail_owner`, as Postfix does.

use config::{Config, Profile};
use envelope::sysexits::{EX_CONFIG, EX_OSERR};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// The user the daemon becomes.
#[derive(Debug, Clone)]
pub struct Owner {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

pub enum Mode {
    /// One process, as the user who started it.
    Single,
    Separated(Owner),
}

/// What the root part of the start hands to the unprivileged daemon.
pub struct Separated {
    pub smtpd: smtpd::Prepared,
    /// The daemon's end of the socketpair.
    pub helper: UnixStream,
    pub child: Child,
}

fn fatal(text: &str, code: u8) -> u8 {
    error!(target: "master", "fatal: {text}");
    eprintln!("mailroom: fatal: {text}");
    code
}

/// Whether (and as whom) to separate; exit 78 when `mail_owner` rules it out.
pub fn decide(cfg: &Config) -> Result<Mode, u8> {
    if sys::effective_uid() != 0 {
        return Ok(Mode::Single);
    }
    let name = &cfg.mail_owner;
    match admin::check::user(name) {
        None => Err(fatal(
            &format!("mail_owner {name:?} is not a user on this system; refusing to run as root (useradd --system {name}, or set mail_owner)"),
            EX_CONFIG,
        )),
        Some((0, _)) if cfg.profile == Profile::System => Err(fatal(
            &format!("mail_owner {name:?} has privileged user ID 0; refusing to run the SMTP server as root"),
            EX_CONFIG,
        )),
        Some((0, _)) => Ok(Mode::Single),
        Some((uid, gid)) => {
            if admin::check::user(&cfg.default_privs).map(|u| u.0) == Some(uid) {
                warn!(target: "master", "default_privs {:?} is the same user as mail_owner: commands from root's aliases could touch the queue; use another user", cfg.default_privs);
            }
            Ok(Mode::Separated(Owner {
                name: name.clone(),
                uid,
                gid,
            }))
        }
    }
}

/// Steps 2 and 3 of the module doc; on return this process is `mail_owner`.
pub fn separate(cfg: &Config, source: Option<&Path>, owner: &Owner) -> Result<Separated, u8> {
    adopt_queue(&cfg.queue_directory, owner).map_err(|e| fatal(&e, EX_CONFIG))?;
    make_spool(cfg, owner).map_err(|e| fatal(&e, EX_CONFIG))?;
    let smtpd = smtpd::prepare(&smtpd::SmtpdSettings::from_config(cfg));
    let (helper, child) = spawn_helper(source).map_err(|e| {
        fatal(
            &format!("cannot start the local delivery helper: {e}"),
            EX_OSERR,
        )
    })?;
    if let Err(e) = drop_privileges(owner) {
        return Err(fatal(
            &format!("cannot drop privileges to mail_owner {}: {e}", owner.name),
            EX_OSERR,
        ));
    }
    info!(target: "master", "privileges dropped to mail_owner {} (uid {}, gid {}); local delivery helper pid {} keeps root",
        owner.name, owner.uid, owner.gid, child.id());
    Ok(Separated {
        smtpd,
        helper,
        child,
    })
}

/// Makes the queue `owner`'s. Only what root owns is changed (what an earlier daemon running
/// as root wrote), never through a symbolic link (`lchown`) nor a file with other links: the
/// directories are writable by `mail_owner`, who must not be able to make root chown
/// anything outside them. A queue directory owned by another user is an error (`check`).
fn adopt_queue(queue: &Path, owner: &Owner) -> Result<(), String> {
    let ids = (Some(owner.uid), Some(owner.gid));
    let fail =
        |path: &Path, e: io::Error| format!("cannot give {} to mail_owner: {e}", path.display());
    if !queue.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(queue)
            .map_err(|e| fail(queue, e))?;
    }
    let meta = fs::symlink_metadata(queue).map_err(|e| fail(queue, e))?;
    if !meta.is_dir() || (meta.uid() != 0 && meta.uid() != owner.uid) {
        return Err(format!(
            "queue_directory {} is not a directory of mail_owner {} (uid {}): fix its owner (mailroom check --fix)",
            queue.display(), owner.name, owner.uid
        ));
    }
    let mut adopted = 0;
    if meta.uid() == 0 {
        // A root-owned directory with anything but a queue in it is a wrong
        // queue_directory (`/var/spool`, say), not one to give away.
        if let Some(other) = foreign_entry(queue) {
            return Err(format!(
                "queue_directory {} belongs to root and holds {other:?}, which is not part of a mailroom queue; refusing to give it to mail_owner {}",
                queue.display(), owner.name
            ));
        }
        std::os::unix::fs::lchown(queue, ids.0, ids.1).map_err(|e| fail(queue, e))?;
        adopted += 1;
    }
    // maildrop keeps its group (setgid_group) and its files (the submitters').
    let layout = queue::Layout::new(queue);
    adopted += adopt_one(&layout.maildrop(), (ids.0, None)).map_err(|e| fail(queue, e))?;
    // What root's CLI wrote while no daemon ran (it writes as the directory's owner, so
    // this only matters for a queue directory that was root's until now).
    for file in [layout.suspended(), layout.history()] {
        adopted += adopt_one(&file, ids).map_err(|e| fail(&file, e))?;
    }
    // pid/ too: the pid file was taken as root, before this.
    for dir in [layout.store(), layout.corrupt(), layout.pid_directory()] {
        adopted += adopt_one(&dir, ids).map_err(|e| fail(&dir, e))?;
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            adopted += adopt_one(&path, ids).map_err(|e| fail(&path, e))?;
        }
    }
    if adopted > 0 {
        info!(target: "master", "gave {adopted} queue files and directories written by root to mail_owner {}", owner.name);
    }
    Ok(())
}

/// The first name in `queue` that a mailroom queue does not have.
fn foreign_entry(queue: &Path) -> Option<String> {
    const QUEUE_NAMES: [&str; 9] = [
        "suspended",
        "history",
        "store",
        "maildrop",
        "corrupt",
        "control.sock",
        "showq.sock",
        "pid",
        submit::guard::REFUSAL_FILE,
    ];
    let entries = fs::read_dir(queue).ok()?;
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| !QUEUE_NAMES.contains(&name.as_str()) && !name.starts_with('.'))
}

/// Chowns one root-owned directory or singly-linked regular file; 1 if it did.
fn adopt_one(path: &Path, (uid, gid): (Option<u32>, Option<u32>)) -> io::Result<usize> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let plain = meta.is_dir() || (meta.is_file() && meta.nlink() == 1);
    if meta.uid() != 0 || !plain {
        return Ok(0);
    }
    std::os::unix::fs::lchown(path, uid, gid)?;
    Ok(1)
}

/// A missing mail spool, made as `mailroom check` expects it: root's in the system profile
/// (it stands for the distribution's `/var/mail`), `mail_owner`'s in the embedded one (one
/// user's data directory). The helper refuses links in it either way (`agents`' mbox.rs).
fn make_spool(cfg: &Config, owner: &Owner) -> Result<(), String> {
    let spool = &cfg.mail_spool_directory;
    if spool.exists() {
        return Ok(());
    }
    let fail = |e: io::Error| format!("cannot create {}: {e}", spool.display());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(spool)
        .map_err(fail)?;
    if cfg.profile != Profile::System {
        std::os::unix::fs::lchown(spool, Some(owner.uid), Some(owner.gid)).map_err(fail)?;
    }
    Ok(())
}

/// `mailroom [-c FILE] local-helper`, the binary itself, with the socketpair on stdin.
fn spawn_helper(source: Option<&Path>) -> io::Result<(UnixStream, Child)> {
    let (daemon_end, helper_end) = UnixStream::pair()?;
    // /proc/self/exe, not current_exe(): it runs this very binary even if an upgrade has
    // replaced the file on disk since the start.
    let mut command = Command::new("/proc/self/exe");
    command.arg0("mailroom");
    if let Some(path) = source {
        command.arg("-c").arg(path);
    }
    command
        .arg("local-helper")
        .stdin(Stdio::from(OwnedFd::from(helper_end)))
        .stdout(Stdio::null());
    Ok((daemon_end, command.spawn()?))
}

/// Becomes `owner` for good, or says why not.
pub fn drop_privileges(owner: &Owner) -> Result<(), String> {
    // Nothing the daemon runs (content filters, commands) may gain privileges by exec.
    sys::become_user(owner.uid, owner.gid).map_err(|(call, e)| format!("{call}: {e}"))?;
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot verify the drop in /proc/self/status: {e}"))?;
    verify(&status, owner)?;
    if sys::can_regain_root() {
        return Err("root could be regained after the drop".into());
    }
    Ok(())
}

/// Every uid and gid is the owner's, the only group its own, and no capability is left.
fn verify(status: &str, owner: &Owner) -> Result<(), String> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .ok_or_else(|| format!("no {name} line in /proc/self/status"))
    };
    let all_are = |name: &str, id: u32| -> Result<(), String> {
        let value = field(name)?;
        match value.split_whitespace().all(|v| v == id.to_string()) {
            true => Ok(()),
            false => Err(format!("{name} is {value:?}, not {id}")),
        }
    };
    all_are("Uid", owner.uid)?;
    all_are("Gid", owner.gid)?;
    all_are("Groups", owner.gid)?;
    for caps in ["CapPrm", "CapEff"] {
        let value = field(caps)?;
        if !value.trim_start_matches('0').is_empty() {
            return Err(format!("{caps} is {value}, not empty"));
        }
    }
    Ok(())
}

/// After the stop: the daemon has closed its end; wait (bounded) for the helper to finish
/// its deliveries in flight and exit.
pub fn reap(mut child: Child, grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return,
            Ok(Some(status)) => {
                warn!(target: "master", "local delivery helper pid {} ended: {status}", child.id());
                return;
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                // It is root's; we cannot kill it. It exits by itself once its deliveries end.
                warn!(target: "master", "local delivery helper pid {} is still finishing deliveries; not waiting for it", child.id());
                return;
            }
            Err(e) => {
                warn!(target: "master", "cannot wait for the local delivery helper: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            name: "mail".into(),
            uid: 8,
            gid: 8,
        }
    }

    const DROPPED: &str = "Name:\tmailroom\nUid:\t8\t8\t8\t8\nGid:\t8\t8\t8\t8\nGroups:\t8 \nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n";

    #[test]
    fn a_complete_drop_verifies() {
        assert_eq!(verify(DROPPED, &owner()), Ok(()));
    }

    #[test]
    fn a_saved_root_uid_a_root_group_or_a_capability_fails_the_drop() {
        for (from, to) in [
            ("Uid:\t8\t8\t8\t8", "Uid:\t8\t8\t0\t8"),
            ("Gid:\t8\t8\t8\t8", "Gid:\t8\t0\t8\t8"),
            ("Groups:\t8 ", "Groups:\t0 8 "),
            ("CapPrm:\t0000000000000000", "CapPrm:\t0000000000000400"),
            ("CapEff:\t0000000000000000", "CapEff:\t000001ffffffffff"),
        ] {
            let status = DROPPED.replace(from, to);
            assert!(verify(&status, &owner()).is_err(), "{to} accepted");
        }
        assert!(
            verify("Uid:\t8\t8\t8\t8\n", &owner()).is_err(),
            "missing lines accepted"
        );
    }
}
