//! What the privilege-separation tests share: two real accounts (made with `useradd` when
//! missing: a `mail_owner` and an ordinary local user), a test environment whose queue
//! belongs to the `mail_owner`, SMTP through swaks, and `/proc` readers. Root only: each
//! test skips with one line otherwise.

use crate::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

/// The `mail_owner` of these tests (a system account without a home or a shell).
pub const OWNER: &str = "mailroom-t-owner";
/// An ordinary local user who receives mail and owns an alias file.
pub const USER: &str = "mailroom-t-user";

/// A test environment whose daemon separates privileges.
pub struct PrivEnv {
    pub env: TestEnv,
    pub port: u16,
    pub owner: (u32, u32),
    pub user: (u32, u32),
}

/// uid and gid of an account, made with useradd when missing; `None` if that fails.
pub fn ensure_account(name: &str) -> Option<(u32, u32)> {
    // Concurrent useradds (tests run in parallel) can both "succeed" with different ids:
    // one lock for every test binary.
    let lock = fs::File::create("/tmp/mailroom-test-accounts.lock").ok()?;
    lock.lock().ok()?;
    if ids(name).is_none() {
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .output();
    }
    ids(name)
}

fn ids(name: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// `None` (after one line on stderr) when the test cannot run here.
pub fn setup(extra: &str) -> Option<PrivEnv> {
    if !is_root() {
        eprintln!("skipped: privilege separation needs root");
        return None;
    }
    let (Some(owner), Some(user)) = (ensure_account(OWNER), ensure_account(USER)) else {
        eprintln!("skipped: cannot create the test accounts with useradd");
        return None;
    };
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "mail_owner = \"{OWNER}\"\nsmtpd_listen = [\"127.0.0.1:{port}\"]\nlocal_recipient_maps = []\n{extra}"
    ));
    // The daemon, once it is mail_owner, must reach its queue; the rest stays root's.
    open_up(&env.root);
    fs::create_dir(env.queue_dir()).expect("queue dir");
    chown(&env.queue_dir(), owner);
    Some(PrivEnv {
        env,
        port,
        owner,
        user,
    })
}

pub fn chown(path: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
}

/// A directory the test user may write into (for command and file deliveries).
pub fn user_dir(p: &PrivEnv, name: &str) -> std::path::PathBuf {
    let dir = p.env.root.join(name);
    fs::create_dir(&dir).expect("mkdir");
    chown(&dir, p.user);
    dir
}

/// Writes the aliases file, owned by the test user (so its commands run as that user).
pub fn user_aliases(p: &PrivEnv, text: &str) {
    fs::write(p.env.aliases_file(), text).expect("aliases");
    chown(&p.env.aliases_file(), p.user);
}

/// One message over SMTP; fails the test unless swaks succeeds.
pub fn send_smtp(port: u16, to: &str, body: &str) {
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "--from",
            "sender@example.org",
        ])
        .args(["--to", to, "--body", body, "--timeout", "60"])
        .output()
        .expect("swaks");
    assert_success(&out, &format!("swaks --to {to}"));
}

/// One field of /proc/PID/status, whitespace-normalized.
pub fn status_field(pid: i32, name: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"));
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The pid of the daemon's `local-helper` child.
pub fn helper_pid(daemon: i32) -> Option<i32> {
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let is_helper = cmdline.split(|&b| b == 0).any(|arg| arg == b"local-helper");
        let ppid = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PPid:")?.trim().parse().ok())
            });
        if is_helper && ppid == Some(daemon) {
            return Some(pid);
        }
    }
    None
}

/// Runs a program as the test user with no supplementary groups (setpriv).
pub fn as_user(p: &PrivEnv, program: &[&str]) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={}", p.user.0))
        .arg(format!("--regid={}", p.user.1))
        .arg("--clear-groups")
        .args(program)
        .output()
        .expect("setpriv")
}

pub fn owner_of(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").uid()
}

/// The ordinary local user of the `.forward` and `mailbox_command` tests, as (name, uid,
/// gid): [`USER`] when the tests run as root (made with useradd when missing), else the
/// user running them (whose own files an unprivileged daemon obeys). `None` after one line
/// on stderr when root cannot make the account.
pub fn local_user() -> Option<(String, (u32, u32))> {
    if !is_root() {
        let name = current_user();
        return ids(&name).map(|ids| (name, ids));
    }
    match ensure_account(USER) {
        Some(ids) => Some((USER.to_string(), ids)),
        None => {
            eprintln!("skipped: cannot create the test account {USER} with useradd");
            None
        }
    }
}

/// Writes a file the user owns (chowned when we are root) with the given mode.
pub fn write_as(path: &Path, text: &str, ids: (u32, u32), mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    if is_root() {
        chown(path, ids);
    }
}
