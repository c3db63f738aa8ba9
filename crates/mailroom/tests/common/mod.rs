//! Shared harness of the end-to-end tests: the real `mailroom` binary on a temp data
//! directory with its own TOML configuration, a daemon that is always killed on drop, and
//! helpers to submit, wait (by polling with a deadline, never by sleeping blindly), read
//! the log and parse mailboxes (with Python's `mailbox` module where the format matters).
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mailroom");

/// How long any wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Polling interval of the waits.
const POLL: Duration = Duration::from_millis(50);

/// One test's world: a temp directory holding the configuration, the queue, the mail
/// spool, the aliases file and the log.
pub struct TestEnv {
    /// Removed when the test ends (after every daemon the test holds, which it outlives),
    /// unless `MAILROOM_E2E_KEEP` is set: then it is kept and its path printed.
    pub dir: Option<TempDir>,
    pub root: PathBuf,
    pub config: PathBuf,
}

/// The configuration every test starts from; `extra` (TOML lines) is appended, so a test
/// may add any parameter that is not one of these. No SMTP listener unless `extra` sets
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

    /// Rewrites the configuration file (base plus `extra`).
    pub fn write_config(&self, extra: &str) {
        let text = base_config(&self.root, &self.queue_dir(), extra);
        fs::write(&self.config, text).expect("write config");
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
        command_with_config(BIN, &self.config)
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
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let out_path = self.root.join(format!("serve-{n}.out"));
        let out = fs::File::create(&out_path).expect("serve output file");
        let child = self
            .command()
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
        // Ready once the control socket is bound (the signal handlers follow at once).
        let socket = self.queue_dir().join("control.sock");
        wait_until(&format!("{} to appear", socket.display()), || {
            socket.exists()
        });
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
    pub fn count_mbox(&self, user: &str) -> usize {
        fs::read(self.mbox(user))
            .map(|b| count_separators(&b))
            .unwrap_or(0)
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
        let deadline = Instant::now() + DEADLINE;
        loop {
            last = self.mailq_or(last);
            if last.trim() == "Mail queue is empty" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the queue did not drain within {DEADLINE:?}; mailq says (first lines):\n{}\nlog tail:\n{}",
                last.lines().take(20).collect::<Vec<_>>().join("\n"),
                tail(&self.log(), 30)
            );
            thread::sleep(Duration::from_millis(200));
        }
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

    /// Queues `sessions * per_session` messages without the daemon, fast: each `sendmail
    /// -bs` session submits into a staging queue of its own, then the staged maildrop files
    /// are moved (link, never replace, then unlink) into this queue's `maildrop/`.
    ///
    /// Why staging: sendmail's maildrop guard stats every file already in `maildrop/` (up to
    /// `maildrop_count_limit`), so filling one maildrop with N files costs O(N²) stats —
    /// about 3× slower for 5,000 files. The files are the same bytes sendmail writes; queue
    /// IDs are globally unique, so they can move between queues.
    ///
    /// `message(session, index)` gives the recipient and the message text (LF line ends,
    /// no line starting with `.`). Returns the number of messages queued.
    pub fn stage_messages(
        &self,
        sessions: usize,
        per_session: usize,
        message: impl Fn(usize, usize) -> (String, String) + Sync,
    ) -> usize {
        let message = &message;
        let results: Vec<(usize, String)> = thread::scope(|scope| {
            let handles: Vec<_> = (0..sessions)
                .map(|k| {
                    scope.spawn(move || {
                        let stage = self.root.join(format!("stage-{k}"));
                        fs::create_dir_all(&stage).expect("stage dir");
                        let cfg = stage.join("mailroom.toml");
                        fs::write(&cfg, base_config(&self.root, &stage.join("queue"), ""))
                            .expect("stage config");
                        let mut script = String::from("EHLO stage.test\r\n");
                        for i in 0..per_session {
                            let (rcpt, text) = message(k, i);
                            script += "MAIL FROM:<sender@test.example>\r\n";
                            script += &format!("RCPT TO:<{rcpt}>\r\nDATA\r\n");
                            for line in text.lines() {
                                assert!(!line.starts_with('.'), "no dot-stuffing here");
                                script += line;
                                script += "\r\n";
                            }
                            script += ".\r\n";
                        }
                        script += "QUIT\r\n";
                        let out = run_with_input(
                            command_with_config(BIN, &cfg).args(["sendmail", "-bs"]),
                            script.as_bytes(),
                        );
                        assert_success(&out, "sendmail -bs");
                        let replies = String::from_utf8_lossy(&out.stdout).into_owned();
                        let queued = replies.matches("250 2.0.0 Ok: queued as").count();
                        (queued, replies)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (queued, replies) in &results {
            assert_eq!(
                *queued,
                per_session,
                "a sendmail -bs session did not queue every message; its replies end with:\n{}",
                tail(replies, 10)
            );
        }
        let target = self.maildrop_dir();
        fs::create_dir_all(&target).expect("maildrop dir");
        let mut moved = 0;
        for k in 0..sessions {
            let drop = self.root.join(format!("stage-{k}/queue/maildrop"));
            for name in list_dir(&drop) {
                assert!(!name.starts_with("tmp."), "left-over temp file {name}");
                let (from, to) = (drop.join(&name), target.join(&name));
                fs::hard_link(&from, &to)
                    .unwrap_or_else(|e| panic!("move {name} into maildrop: {e}"));
                fs::remove_file(&from).expect("unlink staged file");
                moved += 1;
            }
        }
        assert_eq!(moved, sessions * per_session, "staged files");
        moved
    }
}

/// A message as Python's `mailbox.mbox` returns it.
#[derive(Debug, Clone)]
pub struct MboxMessage {
    /// `get_from()`: the separator line without `From `.
    pub from_line: String,
    /// `get_bytes()`: headers and body as stored (mbox quoting is not undone).
    pub raw: Vec<u8>,
    /// `msg["Subject"]` as Python's email package decodes it.
    pub subject: Option<String>,
}

impl MboxMessage {
    /// The header block (without the empty line that ends it).
    pub fn headers(&self) -> String {
        let end = find(&self.raw, b"\n\n").unwrap_or(self.raw.len());
        String::from_utf8_lossy(&self.raw[..end]).into_owned()
    }

    /// The first header named `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        header_value(&self.headers(), name)
    }

    /// Every header named `name`.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        unfold(&self.headers())
            .into_iter()
            .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
            .collect()
    }

    /// The body bytes after the empty line.
    pub fn body(&self) -> &[u8] {
        match find(&self.raw, b"\n\n") {
            Some(p) => &self.raw[p + 2..],
            None => &[],
        }
    }
}

const READ_MBOX_PY: &str = r#"
import json, mailbox, os, sys
from email.header import Header, decode_header
boxes = []
for path in sys.argv[1:]:
    out = []
    if os.path.exists(path):
        box = mailbox.mbox(path, create=False)
        for key in box.iterkeys():
            msg = box.get_message(key)
            subject = msg["Subject"]
            if isinstance(subject, Header):
                # Raw 8-bit header bytes come back as an unknown-8bit Header: show them as UTF-8.
                subject = "".join(
                    p.decode("utf-8" if c in (None, "unknown-8bit") else c, "replace")
                    if isinstance(p, bytes) else p
                    for p, c in decode_header(subject))
            out.append({
                "from": msg.get_from(),
                "raw": box.get_bytes(key).hex(),
                "subject": None if subject is None else str(subject),
            })
    boxes.append(out)
json.dump(boxes, sys.stdout)
"#;

/// Reads mboxes with Python's `mailbox.mbox` (one process for all); a missing file reads
/// as an empty mailbox.
pub fn read_mboxes_with_python(paths: &[PathBuf]) -> Vec<Vec<MboxMessage>> {
    let args: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
    let out = python(READ_MBOX_PY, &args, b"");
    let boxes: Vec<Vec<serde_json::Value>> = serde_json::from_slice(&out).expect("python JSON");
    boxes
        .into_iter()
        .map(|list| {
            list.into_iter()
                .map(|v| MboxMessage {
                    from_line: v["from"].as_str().unwrap_or_default().to_string(),
                    raw: from_hex(v["raw"].as_str().unwrap_or_default()),
                    subject: v["subject"].as_str().map(str::to_string),
                })
                .collect()
        })
        .collect()
}

/// Runs `python3 -c script args...` with `input`; fails the test on a non-zero exit.
pub fn python(script: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let out = run_with_input(
        Command::new("python3").arg("-c").arg(script).args(args),
        input,
    );
    assert!(
        out.status.success(),
        "python3 failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
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
        // SAFETY: kill(2) on our own child, which is not reaped yet (so the pid is ours).
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// kill -9, then reap.
    pub fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        let status = self.child.take().unwrap().wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }

    /// Waits up to `limit` for the daemon to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("daemon running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
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

pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `done` every 50 ms until it is true; fails the test after [`DEADLINE`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        thread::sleep(POLL);
    }
}

/// Number of mbox separator lines (`From ` at the start of a line).
pub fn count_separators(mbox: &[u8]) -> usize {
    let mut n = usize::from(mbox.starts_with(b"From "));
    n += mbox.windows(6).filter(|w| w == b"\nFrom ").count();
    n
}

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

/// Header lines with continuation lines joined.
pub fn unfold(headers: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in headers.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
                continue;
            }
        }
        out.push(line.to_string());
    }
    out
}

pub fn header_value(headers: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    unfold(headers)
        .into_iter()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_string())
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How many times each value occurs.
pub fn multiset<I: IntoIterator<Item = String>>(items: I) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

/// `users` u0..u{n-1}.
pub fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{i}")).collect()
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
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
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
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Reads all of `r` (for child pipes).
pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    // A port is free only until someone binds it: a test that picks two ports (a dead
    // destination now, the daemon's listener later) must never get the same one twice, or
    // the daemon relays to itself. Remember what this process handed out.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
