//! Signals, waiting without reaping, and the limits and priority a process or thread runs
//! with.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

pub use nix::sys::signal::Signal;

fn pid(raw: u32) -> io::Result<Pid> {
    i32::try_from(raw)
        .map(Pid::from_raw)
        .map_err(|_| crate::io_error(Errno::ESRCH))
}

/// kill(2): sends `signal` to process `pid`.
pub fn kill(process: u32, signal: Signal) -> io::Result<()> {
    nix::sys::signal::kill(pid(process)?, signal).map_err(crate::io_error)
}

/// killpg(2): sends `signal` to every process of group `group` (a pipeline whose leader
/// was started with `process_group(0)`).
pub fn kill_group(group: u32, signal: Signal) -> io::Result<()> {
    nix::sys::signal::killpg(pid(group)?, signal).map_err(crate::io_error)
}

/// False only when no process `pid` exists (`kill(pid, 0)` fails with ESRCH). A process we
/// may not signal (EPERM) exists.
pub fn process_exists(process: i32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(process), None) != Err(Errno::ESRCH)
}

/// Waits until child `pid` has exited but leaves it a zombie (`WNOWAIT`), so its pid cannot
/// be reused while something may still signal it; `Child::wait` reaps it afterwards.
/// Returns at once if there is no such child.
pub fn wait_exit_keeping_zombie(child: u32) {
    let Ok(child) = pid(child) else { return };
    while waitid(Id::Pid(child), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) == Err(Errno::EINTR) {
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to `want` (the hard limit too when allowed,
/// else the soft limit to the hard one); returns the soft limit now in force. Children
/// inherit it.
pub fn raise_open_file_limit(want: u64) -> io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(crate::io_error)?;
    #[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux, narrower elsewhere
    let (soft, hard, want) = (u64::from(soft), u64::from(hard), want);
    if soft >= want {
        return Ok(soft);
    }
    let limit = |n: u64| n as libc::rlim_t;
    if setrlimit(Resource::RLIMIT_NOFILE, limit(want), limit(hard.max(want))).is_err() {
        // Not allowed past the hard limit: take what it permits.
        let _ = setrlimit(Resource::RLIMIT_NOFILE, limit(hard), limit(hard));
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).map_err(crate::io_error)?;
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(soft))
}

/// Makes the command's process start with `RLIMIT_FSIZE` (soft and hard) at `bytes`: a write
/// past it raises SIGXFSZ, which ends the process unless it ignores the signal, and then
/// fails with EFBIG.
pub fn limit_file_size(command: &mut Command, bytes: u64) {
    let limit = bytes as libc::rlim_t;
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it calls setrlimit(2) and builds an io::Error
    // from an errno, which allocates nothing.
    unsafe {
        command.pre_exec(move || {
            setrlimit(Resource::RLIMIT_FSIZE, limit, limit).map_err(crate::io_error)
        });
    }
}

/// Lowers the calling thread's CPU priority to `nice` (Linux keeps priorities per thread).
/// A failure leaves the priority as it was: this is a courtesy, not a guarantee.
pub fn lower_thread_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        let thread = nix::unistd::gettid().as_raw();
        // SAFETY: setpriority takes plain integers and touches no memory of ours; with
        // PRIO_PROCESS and a thread id it changes that thread only.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, nice);
        }
    }
}

/// Makes the command's process a session leader without a controlling terminal (setsid(2)
/// between fork and exec), so closing the terminal it was started from sends it no SIGHUP.
pub fn new_session_on_exec(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: setsid(2) and building an io::Error from an
    // errno, which allocates nothing.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(crate::io_error));
    }
}

/// Points this process's standard error at `file` (dup2(2) onto descriptor 2).
pub fn redirect_standard_error(file: &std::fs::File) -> io::Result<()> {
    nix::unistd::dup2_stderr(file).map_err(crate::io_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    #[test]
    fn a_killed_child_is_waited_for_but_stays_a_zombie_until_reaped() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(process_exists(child.id() as i32));
        kill(child.id(), Signal::SIGKILL).unwrap();
        wait_exit_keeping_zombie(child.id());
        // Not reaped yet: the pid still names our (dead) child.
        assert!(process_exists(child.id() as i32));
        assert!(!child.wait().unwrap().success());
        assert!(!process_exists(child.id() as i32));
    }

    /// The nice value of thread `tid`: field 19 of /proc/self/task/<tid>/stat.
    fn nice_of(tid: i32) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn a_lowered_priority_is_the_calling_threads_only() {
        let main = nix::unistd::gettid().as_raw();
        let before = nice_of(main);
        let (sender, receiver) = std::sync::mpsc::channel();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            lower_thread_priority(10);
            sender.send(nix::unistd::gettid().as_raw()).unwrap();
            let _ = wait.recv(); // stay alive while its stat is read
        });
        let tid = receiver.recv().unwrap();
        // Root may also raise a priority (from a `nice`d test run); others only lower it.
        let expected = if crate::effective_uid() == 0 {
            10
        } else {
            before.max(10)
        };
        assert_eq!(nice_of(tid), expected);
        assert_eq!(nice_of(main), before);
        drop(done);
        worker.join().unwrap();
    }

    #[test]
    fn a_file_size_limit_makes_big_writes_fail() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg("trap '' XFSZ; head -c 10000 /dev/zero > \"$0\"")
            .arg(&out)
            .stderr(Stdio::null());
        limit_file_size(&mut command, 4096);
        assert!(!command.status().unwrap().success());
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 4096);
    }
}
