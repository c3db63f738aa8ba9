//! Issue 8 defect 13: a DATA line over 1000 bytes was refused (`500 5.5.2 Error: message
//! line too long`), stricter than Postfix, losing real mail (HTML newsletters, base64
//! without line breaks from broken clients). Now such lines are kept: delivered locally
//! byte for byte, and relayed as Postfix relays them — broken at `smtp_line_length_limit`
//! (998) with CR LF SPACE, so the next hop gets no line over 998 bytes and can rejoin them.
//! The `sendmail` path (maildrop, pickup) keeps them too. The relay peer is Postfix's
//! `smtp-sink`, dumping each message with `-d`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use testkit::*;

/// A 6,000-byte base64 line (no breaks), a line of exactly 998 bytes, a 2,500-byte line
/// starting with a dot, and a 3,000-byte header: the message as the client means it.
fn long_message(subject: &str) -> String {
    let base64: String = (0..6000)
        .map(|i| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64] as char
        })
        .collect();
    format!(
        "From: sender@example.org\nTo: someone@far.example\nSubject: {subject}\nX-Long: {}\n\n{base64}\n{}\n.{}\nend\n",
        "h".repeat(3000),
        "e".repeat(998),
        "d".repeat(2499),
    )
}

/// The lines of `text` that are longer than 998 bytes, or exactly 998: what must survive.
fn long_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.len() >= 998)
        .map(str::to_string)
        .collect()
}

/// Message files smtp-sink dumped into `dir`, each as (wire lines, content rejoined).
fn dumped(dir: &Path) -> Vec<(Vec<String>, String)> {
    list_dir(dir)
        .into_iter()
        .map(|name| {
            let raw = fs::read(dir.join(name)).expect("dump file");
            let text = String::from_utf8_lossy(&raw).replace("\r\n", "\n");
            let lines = text.lines().map(str::to_string).collect();
            (lines, text.replace("\n ", ""))
        })
        .collect()
}

/// smtp-sink writing one file per message into a directory it may write to as `nobody`.
fn dumping_sink(root: &Path) -> (Sink, std::path::PathBuf) {
    let dumps = root.join("dumps");
    fs::create_dir(&dumps).unwrap();
    fs::set_permissions(&dumps, fs::Permissions::from_mode(0o777)).unwrap();
    open_up(root);
    let template = format!("{}/%M.", dumps.display());
    (Sink::start(root, &["-d", &template]), dumps)
}

fn python_send(port: u16, recipients: &[&str], message: &str) -> String {
    let script = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
message = sys.stdin.read()
try:
    s.sendmail("sender@example.org", sys.argv[2:], message)
    print("accepted")
except smtplib.SMTPDataError as e:
    print(e.smtp_code, e.smtp_error.decode())
s.quit()
"#;
    let mut args = vec![port.to_string()];
    args.extend(recipients.iter().map(|r| r.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    String::from_utf8_lossy(&python(script, &args, message.as_bytes()))
        .trim()
        .to_string()
}

#[test]
fn long_lines_are_accepted_delivered_whole_and_folded_when_relayed() {
    let scratch = TestEnv::new();
    let (sink, dumps) = dumping_sink(&scratch.root);
    let world = World::builder().smtp().peer(&sink).start();
    let message = long_message("over smtp");
    let reply = python_send(
        world.port,
        &["alice@localhost", "someone@far.example"],
        &message,
    );
    assert_eq!(reply, "accepted", "the server refused long lines");

    // Local delivery keeps every line as it came.
    world.env.wait_mbox("alice", 1);
    let stored = String::from_utf8_lossy(&world.env.mbox_messages("alice")[0].raw).into_owned();
    for line in long_lines(&message) {
        assert!(
            stored.lines().any(|l| l == line),
            "lost a {}-byte line",
            line.len()
        );
    }

    // Relayed: no wire line over 998 bytes, and rejoined the message is whole again.
    wait_until("smtp-sink to dump the message", || {
        dumped(&dumps).len() == 1
    });
    world.env.wait_queue_empty();
    let (lines, rejoined) = dumped(&dumps).remove(0);
    let longest = lines.iter().map(String::len).max().unwrap_or(0);
    assert!(longest <= 998, "a {longest}-byte line went out");
    assert!(
        lines.iter().any(|l| l.len() == 998),
        "no line was broken at 998"
    );
    for line in long_lines(&message) {
        assert!(
            rejoined.lines().any(|l| l == line),
            "{}-byte line not rejoined",
            line.len()
        );
    }
    assert_eq!(
        world
            .lines_with(&["breaking line > 998 bytes with <CR><LF>SPACE"])
            .len(),
        1,
        "{}",
        tail(&world.env.log(), 20)
    );
}

#[test]
fn sendmail_keeps_long_lines_through_maildrop_and_pickup() {
    let scratch = TestEnv::new();
    let (sink, dumps) = dumping_sink(&scratch.root);
    let world = World::builder().smtp().peer(&sink).start();
    let message = long_message("over sendmail");
    world
        .env
        .send_ok(&["bob", "someone@far.example"], message.as_bytes());
    world.env.wait_mbox("bob", 1);
    let stored = String::from_utf8_lossy(&world.env.mbox_messages("bob")[0].raw).into_owned();
    for line in long_lines(&message) {
        assert!(
            stored.lines().any(|l| l == line),
            "lost a {}-byte line",
            line.len()
        );
    }
    // smtp-sink creates its dump file when the transaction starts and writes it as data
    // arrives: the file is whole once it has answered the final dot, which the daemon logs.
    world.wait_lines(&["to=<someone@far.example>", "status=sent"], 1);
    wait_until("smtp-sink to dump the message", || {
        dumped(&dumps).len() == 1
    });
    let (lines, rejoined) = dumped(&dumps).remove(0);
    assert!(lines.iter().all(|l| l.len() <= 998));
    for line in long_lines(&message) {
        assert!(
            rejoined.lines().any(|l| l == line),
            "{}-byte line not rejoined",
            line.len()
        );
    }
}

#[test]
fn smtp_line_length_limit_zero_sends_lines_unbroken() {
    let scratch = TestEnv::new();
    let (sink, dumps) = dumping_sink(&scratch.root);
    let world = World::builder()
        .smtp()
        .peer(&sink)
        .config("smtp_line_length_limit = 0")
        .start();
    let message = long_message("unbroken");
    world.submit("sender@example.org", &["someone@far.example"], &message);
    // The dump is whole once the sink has answered the final dot (see above).
    world.wait_lines(&["to=<someone@far.example>", "status=sent"], 1);
    wait_until("smtp-sink to dump the message", || {
        dumped(&dumps).len() == 1
    });
    let (lines, _) = dumped(&dumps).remove(0);
    for line in long_lines(&message) {
        assert!(
            lines.contains(&line),
            "a {}-byte line was broken",
            line.len()
        );
    }
}
