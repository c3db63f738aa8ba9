//! One test's world on disk ([`TestEnv`]): a temp directory holding the configuration,
//! the queue, the mail spool, the aliases file and the log, and the real `mailroom` binary
//! run against it — one-shot commands, or `mailroom serve` as a [`Daemon`] that is always
//! killed on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use crate::machine::{list_dir, run_with_input};
use crate::mbox::{
    count_separators, lock_for_reading, read_locked, read_mboxes_with_python, MboxMessage,
};
use crate::text::later_keys_win;
use crate::text::tail;
use crate::wait::{poll_every, poll_for, wait_until, DEADLINE};

/// The binary under test: `$CARGO_BIN_EXE_mailroom` when cargo sets it at run time, else
/// `mailroom` beside the test's own `deps/` directory (where `cargo test -p mailroom` has
/// just built it). A library cannot read the variable at compile time as a test can.
pub fn bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("CARGO_BIN_EXE_mailroom") {
            return path.to_string_lossy().into_owned();
        }
        let exe = std::env::current_exe().expect("the test's own path");
        let mut dir = exe.parent().expect("test binary directory").to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let path = dir.join("mailroom");
        assert!(path.exists(), "no mailroom binary at {}", path.display());
        path.to_string_lossy().into_owned()
    })
}

/// One test's world: a temp directory holding the configuration, the queue, the mail
/// spool, the aliases file and the log.
pub struct TestEnv {
    /// Removed when the test ends (after every daemon the test holds, which it outlives),
    /// unless `MAILROOM_E2E_KEEP` is set: then it is kept and its path printed.
    pub dir: Option<TempDir>,
    pub root: PathBuf,
    pub config: PathBuf,
}

/// The configuration every test starts from; `extra` (TOML lines) is appended (a
/// [`TestEnv`] then drops the base's line for any key `extra` sets again). No SMTP listener unless `extra` sets
/// `smtpd_listen` (the default, 127.0.0.1:2525, would clash between parallel tests).
pub fn base_config(root: &Path, queue: &Path, extra: &str) -> String {
    let listen = match extra.contains("smtpd_listen") {
        true => "",
        false => "smtpd_listen = []\n",
    };
    // Keep everything a daemon writes (the self-signed TLS pair, ...) inside the test's root,
    // never in the running user's $HOME.
    let data = match extra.contains("data_directory") {
        true => String::new(),
        false => format!("data_directory = \"{}\"\n", root.display()),
    };
    format!(
        r#"# mailroom end-to-end test configuration
queue_directory = "{queue}"
mail_spool_directory = "{root}/mail"
alias_maps = ["{root}/aliases"]
maillog_file = "{root}/mail.log"
myhostname = "test.example"
mydestination = ["localhost", "test.example"]
postdrop_path = "{root}/no-such-postdrop"
minimal_backoff_time = "1s"
maximal_backoff_time = "2s"
queue_run_delay = "1s"
{listen}{data}{extra}
"#,
        queue = queue.display(),
        root = root.display(),
    )
}

impl Default for TestEnv {
    fn default() -> TestEnv {
        TestEnv::new()
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv::with_config("")
    }

    /// A fresh environment whose configuration is [`base_config`] plus `extra`.
    pub fn with_config(extra: &str) -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("mailroom-e2e-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().to_path_buf();
        let dir = match std::env::var_os("MAILROOM_E2E_KEEP") {
            Some(_) => {
                eprintln!("keeping the test directory {}", root.display());
                let _ = dir.keep();
                None
            }
            None => Some(dir),
        };
        let config = root.join("mailroom.toml");
        let env = TestEnv { dir, root, config };
        env.write_config(extra);
        fs::write(env.aliases_file(), "").expect("aliases file");
        env
    }

    /// Rewrites the configuration file (base plus `extra`; a key in `extra` replaces the
    /// base's, e.g. a longer `minimal_backoff_time`).
    pub fn write_config(&self, extra: &str) {
        let text = base_config(&self.root, &self.queue_dir(), extra);
        fs::write(&self.config, later_keys_win(&text)).expect("write config");
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.root.join("queue")
    }

    pub fn maildrop_dir(&self) -> PathBuf {
        self.queue_dir().join("maildrop")
    }

    pub fn corrupt_dir(&self) -> PathBuf {
        self.queue_dir().join("corrupt")
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.root.join("mail")
    }

    pub fn mbox(&self, user: &str) -> PathBuf {
        self.spool_dir().join(user)
    }

    pub fn aliases_file(&self) -> PathBuf {
        self.root.join("aliases")
    }

    pub fn log_file(&self) -> PathBuf {
        self.root.join("mail.log")
    }

    /// `mailroom` with this environment's configuration in `MAILROOM_CONFIG`.
    pub fn command(&self) -> Command {
        command_with_config(bin(), &self.config)
    }

    /// Runs `mailroom ARGS` with `input` on standard input.
    pub fn run(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_input(self.command().args(args), input)
    }

    /// Runs `mailroom sendmail ARGS` with `message` on standard input.
    pub fn sendmail(&self, args: &[&str], message: &[u8]) -> Output {
        run_with_input(self.command().arg("sendmail").args(args), message)
    }

    /// Like [`TestEnv::sendmail`], failing the test unless it exits 0 silently.
    pub fn send_ok(&self, args: &[&str], message: &[u8]) {
        let out = self.sendmail(args, message);
        assert_success(&out, &format!("sendmail {args:?}"));
    }

    /// `mailroom mailq` output.
    pub fn mailq(&self) -> String {
        let out = self.run(&["mailq"], b"");
        assert_success(&out, "mailq");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `mailroom postqueue -j`: one JSON object per queued message.
    pub fn queue_json(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["postqueue", "-j"], b"");
        assert_success(&out, "postqueue -j");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("postqueue -j line is JSON"))
            .collect()
    }

    /// Starts `mailroom serve`; it is killed (SIGKILL) when the returned value is dropped.
    pub fn start(&self) -> Daemon {
        self.start_as(None)
    }

    /// Starts `mailroom serve` with these (uid, gid) when given (a root test running an
    /// unprivileged daemon: the caller gives it the test root first), else as we are.
    pub fn start_as(&self, ids: Option<(u32, u32)>) -> Daemon {
        use std::os::unix::process::CommandExt;
        let mut command = self.command();
        if let Some((uid, gid)) = ids {
            command.uid(uid).gid(gid);
        }
        self.serve(command)
    }

    /// Starts `mailroom serve` in the network namespace `netns` (`ip netns exec`, which
    /// becomes the daemon: the pid is the daemon's).
    pub fn start_in_netns(&self, netns: &str) -> Daemon {
        let mut command = command_with_config("ip", &self.config);
        command.args(["netns", "exec", netns, bin()]);
        self.serve(command)
    }

    /// Runs `command serve` as the daemon, once it is ready.
    fn serve(&self, mut command: Command) -> Daemon {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let out_path = self.root.join(format!("serve-{n}.out"));
        let out = fs::File::create(&out_path).expect("serve output file");
        let child = command
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn mailroom serve");
        let daemon = Daemon {
            child: Some(child),
            output: out_path,
        };
        // Ready once the control socket is bound and the signal handlers are in place: they
        // are installed just after the socket, and a SIGHUP or SIGTERM sent in between (a
        // loaded box can stop the daemon there for a while) would kill it by default.
        let socket = self.queue_dir().join("control.sock");
        wait_until(&format!("{} to appear", socket.display()), || {
            socket.exists()
        });
        let pid = daemon.pid();
        wait_until("the daemon's signal handlers", || catches_signals(pid));
        daemon
    }

    /// The log file (empty if it does not exist yet).
    pub fn log(&self) -> String {
        fs::read(self.log_file())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Log lines containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Waits until at least `n` log lines contain `needle`.
    pub fn wait_log(&self, needle: &str, n: usize) -> Vec<String> {
        wait_until(&format!("{n} log lines with {needle:?}"), || {
            self.log_lines(needle).len() >= n
        });
        self.log_lines(needle)
    }

    /// Messages in `user`'s mbox, counted by their separator lines (mboxrd quoting makes
    /// every body line starting with `From ` start with `>From `, so this is exact).
    /// Read under the mailbox's lock, so a message being appended is not counted yet.
    pub fn count_mbox(&self, user: &str) -> usize {
        count_separators(&read_locked(&self.mbox(user)))
    }

    /// Length of `user`'s mbox (0 if missing), read under its lock: never a half-done append.
    pub fn mbox_len(&self, user: &str) -> u64 {
        lock_for_reading(&self.mbox(user))
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len())
    }

    /// Total of [`TestEnv::count_mbox`] over `users`.
    pub fn count_all(&self, users: &[String]) -> usize {
        users.iter().map(|u| self.count_mbox(u)).sum()
    }

    /// Waits until `user`'s mbox holds at least `n` messages; returns the count.
    pub fn wait_mbox(&self, user: &str, n: usize) -> usize {
        wait_until(&format!("{n} messages in mbox {user}"), || {
            self.count_mbox(user) >= n
        });
        self.count_mbox(user)
    }

    /// Waits until the mboxes of `users` hold at least `n` messages together.
    pub fn wait_all(&self, users: &[String], n: usize) -> usize {
        wait_until(&format!("{n} messages in the mboxes {users:?}"), || {
            self.count_all(users) >= n
        });
        self.count_all(users)
    }

    /// Waits until `mailq` says `Mail queue is empty` (maildrop included).
    pub fn wait_queue_empty(&self) {
        let mut last = String::new();
        // Each check starts a `mailq` process: every 200 ms is enough.
        let drained = poll_every(Duration::from_millis(200), DEADLINE, || {
            last = self.mailq_or(std::mem::take(&mut last));
            last.trim() == "Mail queue is empty"
        });
        assert!(
            drained,
            "the queue did not drain within {DEADLINE:?}; mailq says (first lines):\n{}\nlog tail:\n{}",
            last.lines().take(20).collect::<Vec<_>>().join("\n"),
            tail(&self.log(), 30)
        );
    }

    fn mailq_or(&self, previous: String) -> String {
        let out = self.run(&["mailq"], b"");
        if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            previous
        }
    }

    /// `user`'s mbox as Python's `mailbox.mbox` reads it.
    pub fn mbox_messages(&self, user: &str) -> Vec<MboxMessage> {
        read_mboxes_with_python(&[self.mbox(user)]).remove(0)
    }

    /// Several users' mboxes, read by one Python process.
    pub fn mboxes(&self, users: &[String]) -> Vec<Vec<MboxMessage>> {
        let paths: Vec<PathBuf> = users.iter().map(|u| self.mbox(u)).collect();
        read_mboxes_with_python(&paths)
    }

    /// Files in `maildrop/` (temp files included).
    pub fn maildrop_files(&self) -> Vec<String> {
        list_dir(&self.maildrop_dir())
    }
}

/// True when process `pid` catches SIGHUP, SIGUSR1 and SIGTERM (`SigCgt` in its
/// `/proc/PID/status`, a mask with bit N-1 for signal N); also true once it has exited, so
/// that the caller goes on to report what happened instead of waiting.
fn catches_signals(pid: i32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    if status.contains("State:\tZ") {
        return true;
    }
    let caught = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    [
        sys::Signal::SIGHUP,
        sys::Signal::SIGUSR1,
        sys::Signal::SIGTERM,
    ]
    .iter()
    .all(|&sig| caught & (1u64 << (sig as i32 - 1)) != 0)
}

/// A running `mailroom serve`, SIGKILLed and reaped on drop if still running.
pub struct Daemon {
    child: Option<Child>,
    pub output: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("daemon running").id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // Our own child, not reaped yet, so the pid is ours.
        let sent = sys::Signal::try_from(signal)
            .map_err(std::io::Error::from)
            .and_then(|signal| sys::kill(self.pid() as u32, signal));
        assert!(sent.is_ok(), "kill({}, {signal}): {sent:?}", self.pid());
    }

    /// kill -9, then reap.
    pub fn kill9(mut self) {
        self.signal(sys::Signal::SIGKILL as i32);
        let status = self.child.take().unwrap().wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(sys::Signal::SIGKILL as i32)
        );
    }

    /// Waits up to `limit` for the daemon to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("daemon running");
        let mut status = None;
        poll_for(limit, || {
            status = child.try_wait().expect("try_wait");
            status.is_some()
        });
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// What the daemon printed on stdout/stderr.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `program` with `MAILROOM_CONFIG=config` and none of the variables that would move the
/// embedded default elsewhere.
pub fn command_with_config(program: impl AsRef<std::ffi::OsStr>, config: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("MAILROOM_CONFIG", config)
        .env_remove("MAILROOM_DATA")
        .env_remove("NAME");
    cmd
}

pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
