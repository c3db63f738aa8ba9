use super::*;
use crate::maildrop;
use crate::testing::{config, names, SharedBuffer};
use std::path::PathBuf;

struct Run {
    handled: Handled,
    stdout: String,
    stderr: String,
    maildrop: PathBuf,
}

impl Run {
    fn code(&self) -> u8 {
        match self.handled {
            Handled::Exit(code) => code,
            ref other => panic!("not an exit: {other:?}"),
        }
    }

    /// The one file written, parsed.
    fn only_file(&self) -> MaildropFile {
        let names = names(&self.maildrop);
        assert_eq!(names.len(), 1, "{names:?}");
        maildrop::read(&self.maildrop.join(&names[0])).unwrap()
    }
}

fn run_with(cfg: Config, line: &[&str], stdin: &str) -> Run {
    let maildrop = queue::Layout::new(&cfg.queue_directory).maildrop();
    let (stdout, stderr) = (SharedBuffer::default(), SharedBuffer::default());
    let mut io = SendmailIo {
        stdin: Box::new(std::io::Cursor::new(stdin.as_bytes().to_vec())),
        stdout: Box::new(stdout.clone()),
        stderr: Box::new(stderr.clone()),
        uid: 1000,
        username: "alice".into(),
        name_env: None,
        load_config: Box::new(move |path| match path {
            Some(path) if path == Path::new("/broken") => Err("/broken: cannot read".into()),
            _ => Ok(cfg.clone()),
        }),
        exit_on_timeout: false,
    };
    let args: Vec<OsString> = line.iter().map(OsString::from).collect();
    let handled = run_sendmail(&args, &mut io);
    Run {
        handled,
        stdout: stdout.text(),
        stderr: stderr.text(),
        maildrop,
    }
}

fn sendmail(line: &[&str], stdin: &str) -> (Run, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (run_with(config(dir.path()), line, stdin), dir)
}

#[test]
fn plain_submission() {
    let (run, _dir) = sendmail(
        &["-F", "Alice L", "bob", "carol@example.net"],
        "Subject: x\r\n\r\nhi\r\n.\r\nlost\r\n",
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    let file = run.only_file();
    assert_eq!(file.sender, "alice");
    assert_eq!((file.uid, file.username.as_str()), (1000, "alice"));
    assert_eq!(file.fullname.as_deref(), Some("Alice L"));
    assert_eq!(file.recipients, ["bob", "carol@example.net"]);
    assert_eq!(file.message, b"Subject: x\n\nhi\n");
}

#[test]
fn dash_i_keeps_dot_lines() {
    let (run, _dir) = sendmail(&["-oi", "bob"], "a\n.\nb\n");
    assert_eq!(run.code(), 0);
    assert_eq!(run.only_file().message, b"a\n.\nb\n");
}

#[test]
fn extract_recipients_adds_command_line_and_drops_bcc() {
    let stdin = "To: Bob <bob@x>,\n  carol@y\nBcc: secret@z\nSubject: s\n\nbody\n";
    let (run, _dir) = sendmail(&["-t", "-f", "<>", "extra@w"], stdin);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let file = run.only_file();
    assert_eq!(file.recipients, ["bob@x", "carol@y", "secret@z", "extra@w"]);
    assert_eq!(file.sender, "");
    assert_eq!(
        file.message,
        b"To: Bob <bob@x>,\n  carol@y\nSubject: s\n\nbody\n"
    );
}

#[test]
fn no_recipients_is_a_usage_error() {
    let (run, _dir) = sendmail(&[], "Subject: x\n\n");
    assert_eq!(run.code(), 64);
    assert_eq!(run.stderr, "sendmail: fatal: no recipients specified\n");
    let (run, _dir) = sendmail(&["-t"], "Subject: x\n\n");
    assert_eq!(run.code(), 64);
    assert_eq!(
        run.stderr,
        "sendmail: fatal: No recipient addresses found in message header\n"
    );
    assert!(names(&run.maildrop).is_empty());
}

#[test]
fn too_big_is_69_like_postfix() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.message_size_limit = 10;
    let run = run_with(cfg, &["bob"], "0123456789abcdef\n");
    assert_eq!(run.code(), 69);
    assert!(run
        .stderr
        .starts_with("sendmail: fatal: message file too big"));
    assert_eq!(run.stderr.lines().count(), 1);
}

#[test]
fn full_maildrop_refuses_with_75_and_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.maildrop_count_limit = 1;
    assert_eq!(run_with(cfg.clone(), &["bob"], "x\n").code(), 0);
    let run = run_with(cfg, &["bob"], "y\n");
    assert_eq!(run.code(), 75);
    assert_eq!(
        run.stderr,
        "sendmail: fatal: maildrop holds 1 files (maildrop_count_limit 1): is the mailroom daemon down? message not queued\n"
    );
    assert_eq!(names(&run.maildrop).len(), 1);
}

#[test]
fn usage_and_config_errors() {
    let (run, _dir) = sendmail(&["-bd"], "");
    assert_eq!(run.code(), 64);
    assert_eq!(run.stderr, "sendmail: fatal: unsupported: -bd\n");
    let (run, _dir) = sendmail(&["-C", "/broken", "bob"], "x\n");
    assert_eq!(run.code(), 78);
    assert_eq!(run.stderr, "sendmail: fatal: /broken: cannot read\n");
}

#[test]
fn modes_handed_back_to_the_binary() {
    let (run, _dir) = sendmail(&["-bp"], "");
    assert!(matches!(run.handled, Handled::ListQueue(_)));
    let (run, _dir) = sendmail(&["-qRexample.org"], "");
    assert!(matches!(
        run.handled,
        Handled::Flush(_, FlushScope::Site(ref site)) if site == "example.org"
    ));
    let (run, _dir) = sendmail(&["-bi"], "");
    assert_eq!(run.code(), 0);
}

#[test]
fn smtp_on_stdio_queues_after_data() {
    let session = "EHLO me\r\nMAIL FROM:<>\r\nRCPT TO:<bob@x>\r\nDATA\r\nSubject: s\r\n\r\n..dot\r\n.\r\nQUIT\r\n";
    let (run, _dir) = sendmail(&["-bs"], session);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let replies: Vec<&str> = run.stdout.lines().map(|l| &l[..3]).collect();
    assert_eq!(
        replies,
        ["220", "250", "250", "250", "250", "250", "250", "354", "250", "221"]
    );
    let file = run.only_file();
    assert_eq!(file.sender, "");
    assert_eq!(file.recipients, ["bob@x"]);
    assert_eq!(file.message, b"Subject: s\n\n.dot\n");
    assert!(run.stdout.contains(&format!("queued as {}", file.id)));
}

#[test]
fn full_name_is_sanitized() {
    assert_eq!(full_name(Some(" A\nB\t ")).as_deref(), Some("A B"));
    assert_eq!(full_name(Some(" \r ")), None);
    assert_eq!(full_name(None), None);
}

/// Defect 11: Postfix's two lines and exit 75, and nothing queued.
#[test]
fn unknown_flag_is_refused_like_postfix_and_nothing_queued() {
    let (run, _dir) = sendmail(&["-s", "disk full", "root"], "x\n");
    assert_eq!(run.code(), 75);
    assert_eq!(
        run.stderr,
        "sendmail: invalid option -- 's'\nsendmail: fatal: usage: sendmail [options]\n"
    );
    assert!(names(&run.maildrop).is_empty());
}

#[test]
fn debian_cron_command_line_is_queued() {
    let (run, _dir) = sendmail(
        &["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
        "Subject: cron\n\n.\nout\n",
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let file = run.only_file();
    assert_eq!(file.recipients, ["root"]);
    assert_eq!(file.fullname.as_deref(), Some("CronDaemon"));
    assert!(
        file.message.ends_with(b"\n.\nout\n"),
        "-i keeps the lone dot"
    );
}
