//! Delivery to `|command` and `mailbox_command`: the message on stdin, a clean
//! environment, its own process group (so a timeout kills the whole pipeline), a time limit
//! (`command_time_limit`), and, when we are root, the rights of the user it is run for.
//! As Postfix's `exec_command`, a command of plain words (letters, digits, `!@%-_=+:,./`,
//! spaces) is executed directly; one with any other character goes through `/bin/sh -c`.
//!
//! Exit status → verdict, as Postfix's `pipe_command` and `sys_exits`: 0 delivered; death
//! by a signal → deferred 4.3.0; output that starts with an enhanced status code (`5.2.2
//! mailbox full`) → that status; a sysexits(3) code → its status (EX_TEMPFAIL 75 and
//! EX_OSERR 71 defer with 4.3.0, EX_NOUSER 67 bounces 5.1.1, EX_DATAERR 65 5.6.0,
//! EX_CANTCREAT 73 5.2.0, EX_NOPERM 77 5.7.0, EX_CONFIG 78 5.3.5 …); any other status →
//! bounced 5.3.0 with the command's first line of output as the reason.
//!
//! Where mailroom differs from Postfix, so that a broken installation keeps mail queued
//! instead of returning it: a command that cannot be started (procmail not installed), or
//! that the shell cannot find or execute (`/bin/sh` exit 127 or 126), is deferred 4.3.0;
//! and a command killed at `command_time_limit` is deferred (Postfix bounces it 5.3.0).

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::users::Account;
use super::Verdict;
use envelope::sysexits::EX_TEMPFAIL;

/// How much of the command's stdout and stderr is kept for the bounce reason.
const OUTPUT_KEPT: usize = 4096;

/// One command delivery.
#[derive(Debug)]
pub(crate) struct CommandJob<'a> {
    pub command: &'a str,
    /// What the command reads: `From ` line, trace headers, message.
    pub input: Arc<Vec<u8>>,
    /// The whole environment of the command (nothing is inherited from the daemon).
    pub env: Vec<(&'static str, String)>,
    /// Run with this user's uid and gid (only when we are root).
    pub run_as: Option<&'a Account>,
    pub timeout: Duration,
    /// mailbox_size_limit, applied as RLIMIT_FSIZE like Postfix (0 = none).
    pub file_size_limit: u64,
}

/// Runs the command and turns its fate into a verdict.
pub(crate) fn run(job: &CommandJob<'_>) -> Verdict {
    let spawned = match build(job, false).spawn() {
        // Perhaps a shell built-in (`exit 0`): Postfix retries those with the shell.
        Err(e) if e.kind() == io::ErrorKind::NotFound && is_bare_word_command(job.command) => {
            build(job, true).spawn()
        }
        other => other,
    };
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let text = format!("cannot run command \"{}\": {e}", job.command);
            return Verdict::deferred("4.3.0", text);
        }
    };
    if let Some(stdin) = child.stdin.take() {
        feed(stdin, Arc::clone(&job.input));
    }
    let stderr = child.stderr.take().map(capture);
    let stdout = child.stdout.take().map(capture);
    let Some(status) = wait_with_timeout(&mut child, job.timeout) else {
        let text = format!("command time limit exceeded: \"{}\"", job.command);
        return Verdict::deferred("4.3.0", text);
    };
    let output = first_line(stderr).or_else(|| first_line(stdout));
    verdict_for(job.command, status, output)
}

/// The characters of a command Postfix runs without a shell (besides space and tab).
const PLAIN: &str = "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The words of a command that needs no shell, or `None`.
fn plain_words(command: &str) -> Option<Vec<&str>> {
    let plain = command
        .chars()
        .all(|c| PLAIN.contains(c) || c == ' ' || c == '\t');
    let words: Vec<&str> = command
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect();
    (plain && !words.is_empty()).then_some(words)
}

/// A plain command whose program is named without a `/` (looked up in `PATH`).
fn is_bare_word_command(command: &str) -> bool {
    plain_words(command).is_some_and(|words| !words[0].contains('/'))
}

fn build(job: &CommandJob<'_>, force_shell: bool) -> Command {
    let words = plain_words(job.command).filter(|_| !force_shell);
    let mut command = match words {
        Some(words) => {
            let mut direct = Command::new(words[0]);
            direct.args(&words[1..]);
            direct
        }
        None => {
            let mut shell = Command::new("/bin/sh");
            shell.arg("-c").arg(job.command);
            shell
        }
    };
    command
        .env_clear()
        .envs(job.env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(account) = job.run_as {
        // std also drops root's supplementary groups when it changes the uid as root.
        command.uid(account.uid).gid(account.gid);
    }
    if job.file_size_limit > 0 {
        sys::limit_file_size(&mut command, job.file_size_limit);
    }
    command
}

/// Writes the message to the command's stdin from a detached thread: a command that does
/// not read its input must not block us (a broken pipe is its business, not an error).
fn feed(mut stdin: ChildStdin, input: Arc<Vec<u8>>) {
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
}

/// Reads a stream to its end from a detached thread, keeping the first [`OUTPUT_KEPT`] bytes.
/// Detached because a background process may inherit the pipe and hold it open for ever.
fn capture(mut stream: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = OUTPUT_KEPT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        let _ = sender.send(kept);
    });
    receiver
}

/// The child's exit status, or `None` after killing its process group at the deadline.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => break,
        }
    }
    // The child leads its own process group (process_group(0)): kill the whole pipeline.
    let _ = sys::kill_group(child.id(), sys::Signal::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The first non-empty line of captured output, waiting a moment for the reader thread.
fn first_line(receiver: Option<mpsc::Receiver<Vec<u8>>>) -> Option<String> {
    let bytes = receiver?.recv_timeout(Duration::from_secs(1)).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(super::headers::one_line(line))
}

fn verdict_for(command: &str, status: ExitStatus, output: Option<String>) -> Verdict {
    let with_output = |text: String| match &output {
        Some(line) => format!("{text}. Command output: {line}"),
        None => text,
    };
    let by_class = |dsn: &str, text: String| match dsn.starts_with('4') {
        true => Verdict::deferred(dsn, text),
        false => Verdict::bounced(dsn, text),
    };
    let code = match (status.code(), status.signal()) {
        (Some(0), _) => return Verdict::sent(format!("delivered to command: {command}")),
        (Some(code), _) => code,
        (None, signal) => {
            let text = format!(
                "Command died with signal {}: \"{command}\"",
                signal.unwrap_or(0)
            );
            return Verdict::deferred("4.3.0", with_output(text));
        }
    };
    if let Some((dsn, text)) = output.as_deref().and_then(leading_status) {
        return by_class(&dsn, text.to_string());
    }
    if let Some((dsn, meaning)) = sysexit(code) {
        return by_class(dsn, with_output(format!("{meaning}: \"{command}\"")));
    }
    if plain_words(command).is_none() && (code == 126 || code == 127) {
        let text =
            format!("Command died with status {code}: \"{command}\" (the shell could not run it)");
        return Verdict::deferred("4.3.0", with_output(text));
    }
    let text = format!("Command died with status {code}: \"{command}\"");
    Verdict::bounced("5.3.0", with_output(text))
}

/// Postfix's `sys_exits` table: the status and meaning of each sysexits(3) code.
fn sysexit(code: i32) -> Option<(&'static str, &'static str)> {
    Some(match code {
        64 => ("5.3.0", "command line usage error"),
        65 => ("5.6.0", "data format error"),
        66 => ("5.3.0", "cannot open input"),
        67 => ("5.1.1", "user unknown"),
        68 => ("5.1.2", "host name unknown"),
        69 => ("5.3.0", "service unavailable"),
        70 => ("5.3.0", "internal software error"),
        71 => ("4.3.0", "system resource problem"),
        72 => ("5.3.0", "critical OS file missing"),
        73 => ("5.2.0", "can't create user output file"),
        74 => ("5.3.0", "input/output error"),
        c if c == i32::from(EX_TEMPFAIL) => ("4.3.0", "temporary failure"),
        76 => ("5.5.0", "remote error in protocol"),
        77 => ("5.7.0", "permission denied"),
        78 => ("5.3.5", "local configuration error"),
        _ => return None,
    })
}

/// `4.2.2 mailbox full` → (`4.2.2`, the line): a status the command reports itself, which
/// takes precedence over its exit code (Postfix 2.3 and later).
fn leading_status(line: &str) -> Option<(String, &str)> {
    let word = line.split_whitespace().next()?;
    let parts: Vec<&str> = word.split('.').collect();
    let numeric = |p: &&str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
    };
    let valid = parts.len() == 3
        && matches!(parts[0], "4" | "5")
        && numeric(&parts[1], 3)
        && numeric(&parts[2], 3);
    valid.then(|| (word.to_string(), line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope::OutcomeKind;

    fn job(command: &str) -> CommandJob<'_> {
        CommandJob {
            command,
            input: Arc::new(b"Subject: hi\n\nbody\n".to_vec()),
            env: vec![
                ("RECIPIENT", "alice@localhost".into()),
                ("PATH", "/usr/bin:/bin".into()),
            ],
            run_as: None,
            timeout: Duration::from_secs(10),
            file_size_limit: 0,
        }
    }

    #[test]
    fn exit_zero_delivers_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let command = format!(
            "cat > {} && echo \"$RECIPIENT\" >> {}",
            out.display(),
            out.display()
        );
        let v = run(&job(&command));
        assert_eq!(v.kind, OutcomeKind::Sent, "{v:?}");
        assert_eq!(v.text, format!("delivered to command: {command}"));
        let written = std::fs::read_to_string(&out).unwrap();
        assert_eq!(written, "Subject: hi\n\nbody\nalice@localhost\n");
    }

    #[test]
    fn exit_75_defers() {
        let v = run(&job("exit 75"));
        assert_eq!((v.kind, v.dsn.as_str()), (OutcomeKind::Deferred, "4.3.0"));
    }

    #[test]
    fn other_exit_bounces_with_first_output_line() {
        let v = run(&job(
            "echo; echo 'no such list' >&2; echo second >&2; exit 1",
        ));
        assert_eq!((v.kind, v.dsn.as_str()), (OutcomeKind::Bounced, "5.3.0"));
        assert!(
            v.text.ends_with("Command output: no such list"),
            "{}",
            v.text
        );
    }

    #[test]
    fn command_that_ignores_stdin_still_works() {
        let mut j = job("exit 0");
        j.input = Arc::new(vec![b'x'; 1 << 20]);
        assert_eq!(run(&j).kind, OutcomeKind::Sent);
    }

    #[test]
    fn timeout_kills_the_pipeline_and_defers() {
        let mut j = job("sleep 30 | cat");
        j.timeout = Duration::from_millis(200);
        let started = Instant::now();
        let v = run(&j);
        assert_eq!((v.kind, v.dsn.as_str()), (OutcomeKind::Deferred, "4.3.0"));
        assert!(v.text.contains("time limit"), "{}", v.text);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
