//! The machine the tests run on: who we are (root or not), free loopback ports, directory
//! listings and modes, size-limited tmpfs mounts for the disk-full scenarios, and how
//! loaded the CPUs are (a latency bound is stated for an idle box: [`scaled_by_load`]).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;

/// Names in a directory, sorted (empty if it does not exist).
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Makes `path` (a directory) world-searchable, for tests that run a command as `nobody`.
pub fn open_up(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The effective user's login name (the mailbox a local name like `postmaster` can be
/// aliased to when `local_recipient_maps` requires a passwd entry).
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn is_root() -> bool {
    sys::effective_uid() == 0
}

/// A size-limited tmpfs (the disk-full tests), unmounted on drop (lazily if still busy).
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`16m`) on `dir` (created if missing); Err(why) if not root
    /// or the mount fails, so a test can skip with one line.
    pub fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// Fills the file system with `name` until a write fails (ENOSPC); returns the bytes
    /// written. Small writes at the end, so the last free pages go too.
    pub fn fill(&self, name: &str) -> u64 {
        let path = self.dir.join(name);
        let mut file = fs::File::create(&path).expect("filler");
        let mut written = 0u64;
        for chunk in [1 << 20, 4096, 512] {
            let buf = vec![0x5au8; chunk];
            while file.write_all(&buf).is_ok() {
                written += chunk as u64;
            }
        }
        let _ = file.sync_all();
        written
    }

    /// Free bytes on the file system (statvfs, as the daemon's guard sees them).
    pub fn free_bytes(&self) -> u64 {
        sys::free_space(&self.dir).expect("statvfs").bytes
    }
}

/// Unmounts `dir`, lazily if it is still busy.
fn unmount(dir: &Path) {
    let ok = Command::new("umount")
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let _ = Command::new("umount").arg("-l").arg(dir).status();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        unmount(&self.dir);
    }
}

/// A small ext4 made in an image file and mounted through a loop device, with or without a
/// journal (the store's `auto` options follow it); unmounted and removed on drop.
pub struct LoopExt4 {
    pub dir: PathBuf,
    image: PathBuf,
}

impl LoopExt4 {
    /// Makes a `size_mb` MiB ext4 (`journal`: mkfs's default journal, else `-O ^has_journal`)
    /// and mounts it on `dir` (created if missing), leaving it empty (no `lost+found`).
    /// Err(why) if not root or a step fails, so a test can skip with one line.
    pub fn mount(dir: &Path, size_mb: u64, journal: bool) -> Result<LoopExt4, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd
                .output()
                .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{cmd:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let image = dir.with_extension("ext4.img");
        let file = fs::File::create(&image).map_err(|e| e.to_string())?;
        file.set_len(size_mb << 20).map_err(|e| e.to_string())?;
        let mut mkfs = Command::new("mkfs.ext4");
        mkfs.args(["-q", "-F"]);
        if !journal {
            mkfs.args(["-O", "^has_journal"]);
        }
        run(mkfs.arg(&image))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(dir))?;
        let mounted = LoopExt4 {
            dir: dir.to_path_buf(),
            image,
        };
        let _ = fs::remove_dir(dir.join("lost+found"));
        Ok(mounted)
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        unmount(&self.dir);
        let _ = fs::remove_file(&self.image);
    }
}

/// Reads all of `r` (for child pipes).
pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

/// A loopback port nobody listens on right now, and that no other test process is handed.
///
/// A port is free only until someone binds it, and the peers (pymilter, dovecot, unbound,
/// the daemon itself) bind theirs later. So the port is taken below the kernel's ephemeral
/// range (32768–60999 by default: an outgoing connection of any parallel test can take a
/// port from there), and a lock on a file named after it, held until this process exits,
/// keeps the other test binaries running in parallel from handing it out too. Within the
/// process the lock is already ours, so a list of what was given keeps a test from getting
/// the same port twice (a dead destination now, the daemon's listener later).
pub fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const COUNT: u16 = 12_000;
    static GIVEN: std::sync::Mutex<Vec<(u16, std::fs::File)>> = std::sync::Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("mailroom-testkit-ports");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let offset = fastrand::u16(0..COUNT);
    for i in 0..COUNT {
        let port = FIRST + (offset + i) % COUNT;
        if given.iter().any(|(p, _)| *p == port) {
            continue;
        }
        let Ok(lock) = std::fs::File::create(dir.join(port.to_string())) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push((port, lock));
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT);
}

/// Runs `cmd` with `input` written on a separate thread (so a large input cannot deadlock
/// against a full output pipe) and collects its output.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

/// How many times over the CPUs are wanted: the 1-minute load average divided by the CPUs,
/// never below 1 (an idle or lightly used box).
pub fn load_factor() -> f64 {
    let load: f64 = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let cpus = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    (load / cpus).max(1.0)
}

/// A latency bound stated for an idle machine (a client served within 1 s), stretched by
/// [`load_factor`]: with 15 runnable tasks on 2 CPUs every process gets about an eighth of
/// a CPU, and so does the daemon's answer. On an idle box the bound is exactly `limit`.
/// Only for latency requirements; a test waiting for something uses a `wait_until` with
/// [`crate::DEADLINE`] instead.
pub fn scaled_by_load(limit: std::time::Duration) -> std::time::Duration {
    limit.mul_f64(load_factor())
}
