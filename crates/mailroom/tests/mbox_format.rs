//! mbox output as Python's `mailbox.mbox` reads it: one message per separator, bodies with
//! `From ` lines, `>From ` lines, no final newline and 8-bit text come back exactly.
//!
//! The local agent writes mboxrd: every line matching `^>*From ` gets one more `>`. Python's
//! `mailbox.mbox` splits on separators and returns the stored bytes without undoing the
//! quoting, so the test checks both: the stored body is the mboxrd quoting of the message,
//! and removing one `>` from each `^>+From ` line gives the message back exactly.

use testkit::*;

struct Case {
    subject: &'static str,
    body: &'static [u8],
}

const CASES: &[Case] = &[
    Case {
        subject: "from-lines",
        body: b"From the first line of the body\nFrom me to you\nFrom\nFrom: not a separator\n From indented\nfrom lower case\nlast line\n",
    },
    Case {
        subject: "quoted-from-lines",
        body: b">From already quoted\n>>From quoted twice\n> From not quite\n>\n>>>From deep\n",
    },
    Case {
        subject: "no-trailing-newline",
        body: b"line one\nFrom the end, and no newline",
    },
    Case {
        subject: "eight-bit",
        body: "Gr\u{fc}\u{df}e aus K\u{f6}ln \u{2014} na\u{ef}ve caf\u{e9} \u{2713}\n\u{65e5}\u{672c}\u{8a9e}\n".as_bytes(),
    },
    Case {
        subject: "latin1-bytes",
        body: b"caf\xe9 cr\xe8me br\xfbl\xe9e\n\xff\xfe raw bytes\nFrom \xe9t\xe9\n",
    },
    Case {
        subject: "blank-lines",
        body: b"\n\nFrom after blank lines\n\n\nFrom \n\n",
    },
    Case {
        subject: "crlf",
        body: b"windows line\r\nFrom windows\r\nend\r\n",
    },
];

/// What cleanup stores: CRLF becomes LF and a missing final newline is added.
fn stored(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(body[i]);
        i += 1;
    }
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// mboxrd quoting of whole lines: `^>*From ` gets one more `>`.
fn mboxrd_quote(body: &[u8]) -> Vec<u8> {
    map_lines(body, |line, out| {
        let gt = line.iter().take_while(|&&b| b == b'>').count();
        if line[gt..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    })
}

/// Reading mboxrd: `^>+From ` loses one `>`.
fn mboxrd_unquote(body: &[u8]) -> Vec<u8> {
    map_lines(body, |line, out| {
        let gt = line.iter().take_while(|&&b| b == b'>').count();
        if gt > 0 && line[gt..].starts_with(b"From ") {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    })
}

fn map_lines(body: &[u8], f: impl Fn(&[u8], &mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        f(line, &mut out);
    }
    out
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}

#[test]
fn python_mailbox_reads_back_every_body_exactly() {
    let env = TestEnv::new();
    let _daemon = env.start();
    for case in CASES {
        let mut msg = format!(
            "Subject: {}\nFrom: Sender <sender@test.example>\n\n",
            case.subject
        )
        .into_bytes();
        msg.extend_from_slice(case.body);
        env.send_ok(
            &["-i", "-f", "sender@test.example", "alice@localhost"],
            &msg,
        );
    }
    // An 8-bit header too.
    let subject8 = "Gr\u{fc}\u{df}e \u{2014} 8-bit subject";
    env.send_ok(
        &["-i", "-f", "sender@test.example", "alice@localhost"],
        format!("Subject: {subject8}\n\nplain body\n").as_bytes(),
    );
    let total = CASES.len() + 1;
    env.wait_mbox("alice", total);
    env.wait_queue_empty();

    let raw_file = std::fs::read(env.mbox("alice")).unwrap();
    assert!(
        raw_file.starts_with(b"From sender@test.example "),
        "mbox starts with a separator"
    );
    assert!(
        raw_file.ends_with(b"\n\n"),
        "every message ends with an empty line"
    );

    let messages = env.mbox_messages("alice");
    assert_eq!(
        messages.len(),
        total,
        "Python's mailbox.mbox sees {} messages",
        messages.len()
    );
    for m in &messages {
        // get_from(): envelope sender and an asctime date.
        assert!(
            m.from_line.starts_with("sender@test.example "),
            "separator {:?}",
            m.from_line
        );
        let date = &m.from_line["sender@test.example ".len()..];
        assert_eq!(
            date.split_whitespace().count(),
            5,
            "asctime date in {:?}",
            m.from_line
        );
        assert_eq!(
            m.header("Return-Path").as_deref(),
            Some("<sender@test.example>")
        );
    }
    for case in CASES {
        let m = messages
            .iter()
            .find(|m| m.subject.as_deref() == Some(case.subject))
            .unwrap_or_else(|| panic!("no message {:?} in the mbox", case.subject));
        let expected = stored(case.body);
        assert_eq!(
            show(m.body()),
            show(&mboxrd_quote(&expected)),
            "{}: the stored body is not the mboxrd quoting of the message",
            case.subject
        );
        assert_eq!(
            show(&mboxrd_unquote(m.body())),
            show(&expected),
            "{}: unquoting does not give the message back",
            case.subject
        );
    }
    // mboxrd, not mboxo: an already quoted line gets one more '>'.
    let quoted = messages
        .iter()
        .find(|m| m.subject.as_deref() == Some("quoted-from-lines"))
        .unwrap();
    assert!(quoted
        .body()
        .starts_with(b">>From already quoted\n>>>From quoted twice\n"));
    // No body line can pass for a separator.
    for m in &messages {
        assert!(!m.body().starts_with(b"From ") && find(m.body(), b"\nFrom ").is_none());
    }
    let eight = messages
        .iter()
        .find(|m| m.body() == b"plain body\n")
        .expect("8-bit subject message");
    assert_eq!(
        eight.subject.as_deref(),
        Some(subject8),
        "as Python decodes it"
    );
    assert_eq!(
        eight.header("Subject").as_deref(),
        Some(subject8),
        "the stored bytes"
    );
}
