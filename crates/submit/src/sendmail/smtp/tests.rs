use super::*;
use crate::testing::config;

#[test]
fn command_table() {
    let mail = |sender: &str, size| Command::Mail {
        sender: sender.into(),
        size,
    };
    let cases = [
        ("HELO client", Command::Helo("client".into())),
        (
            "ehlo client.example\r\n",
            Command::Ehlo("client.example".into()),
        ),
        ("EHLO", Command::Syntax("501 5.5.4 Syntax: EHLO hostname")),
        ("MAIL FROM:<a@b>", mail("a@b", None)),
        (
            "mail from: <a@b> SIZE=42 BODY=8BITMIME",
            mail("a@b", Some(42)),
        ),
        ("MAIL FROM:<>", mail("", None)),
        ("MAIL FROM:a@b", mail("a@b", None)),
        (
            "MAIL TO:<a@b>",
            Command::Syntax("501 5.5.4 Syntax: MAIL FROM:<address>"),
        ),
        (
            "MAIL FROM:<a b@c>",
            Command::Syntax("501 5.5.4 Syntax: MAIL FROM:<address>"),
        ),
        ("RCPT TO:<@relay:c@d>", Command::Rcpt("c@d".into())),
        (
            "RCPT TO:<>",
            Command::Syntax("501 5.5.4 Syntax: RCPT TO:<address>"),
        ),
        (
            "RCPT",
            Command::Syntax("501 5.5.4 Syntax: RCPT TO:<address>"),
        ),
        ("DATA", Command::Data),
        ("rset", Command::Rset),
        ("NOOP", Command::Noop),
        ("QUIT", Command::Quit),
        ("VRFY root", Command::Unknown),
        ("", Command::Unknown),
        (
            "MAIL FROM:<\u{e9}\u{e9}",
            Command::Syntax("501 5.5.4 Syntax: MAIL FROM:<address>"),
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(parse_command(line), expected, "{line:?}");
    }
}

fn data(input: &str, limit: u64) -> Option<Option<Vec<u8>>> {
    read_data(&mut input.as_bytes(), limit).unwrap()
}

#[test]
fn data_unstuffing_and_limits() {
    assert_eq!(
        data("a\r\n..b\r\n.\r\n", 100),
        Some(Some(b"a\n.b\n".to_vec()))
    );
    assert_eq!(data("a\r\n", 100), None, "end of input before the dot");
    assert_eq!(data("0123456789\r\n.\r\nNEXT\r\n", 5), Some(None));
    let long = format!("{}\r\n.\r\n", "x".repeat(200_000));
    assert_eq!(data(&long, 1000), Some(None));
}

fn session(input: &str, submit: Submit<'_>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut reader = input.as_bytes();
    let mut output = Vec::new();
    let mut session = Session {
        cfg: &cfg,
        uid: 7,
        username: "u",
        input: &mut reader,
        output: &mut output,
        transaction: Transaction::default(),
        submit,
    };
    session.run().unwrap();
    String::from_utf8(output).unwrap()
}

#[test]
fn sequence_errors_and_refusals() {
    let mut calls = 0;
    let mut refuse = |_: &MaildropFile| {
        calls += 1;
        Err("452 4.3.1 Insufficient system storage")
    };
    let input = "RCPT TO:<a@b>\r\nDATA\r\nMAIL FROM:<x@y>\r\nMAIL FROM:<x@y>\r\nRCPT TO:<a@b>\r\nDATA\r\nhi\r\n.\r\nBOGUS\r\n";
    let output = session(input, &mut refuse);
    let codes: Vec<&str> = output.lines().map(|l| &l[..3]).collect();
    assert_eq!(
        codes,
        ["220", "503", "503", "250", "503", "250", "354", "452", "500"]
    );
    assert_eq!(calls, 1);
}

#[test]
fn rset_clears_and_long_lines_are_refused() {
    let mut accept = |drop: &MaildropFile| {
        assert_eq!(drop.recipients, ["c@d"]);
        Ok(drop.id)
    };
    let long = "x".repeat(5000);
    let input = format!(
        "MAIL FROM:<a@b>\r\nRCPT TO:<z@z>\r\nRSET\r\n{long}\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n"
    );
    let output = session(&input, &mut accept);
    let codes: Vec<&str> = output.lines().map(|l| &l[..3]).collect();
    assert_eq!(
        codes,
        ["220", "250", "250", "250", "500", "250", "250", "354", "250", "221"]
    );
}
