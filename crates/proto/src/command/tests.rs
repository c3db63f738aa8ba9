//! Input → expected tables for the command parser.

use super::*;

fn mail(sender: &str) -> Command {
    Command::Mail {
        sender: sender.into(),
        params: MailParams::default(),
    }
}

fn rcpt(recipient: &str) -> Command {
    Command::Rcpt {
        recipient: recipient.into(),
        params: RcptParams::default(),
    }
}

#[test]
fn accepted_commands() {
    let table: Vec<(&str, Command)> = vec![
        (
            "EHLO client.example",
            Command::Ehlo("client.example".into()),
        ),
        ("ehlo [127.0.0.1]", Command::Ehlo("[127.0.0.1]".into())),
        ("HELO MY_PC", Command::Helo("MY_PC".into())),
        ("MAIL FROM:<a@b.org>", mail("a@b.org")),
        ("mail from:<>", mail("")),
        ("MAIL FROM: <a@b.org>", mail("a@b.org")),
        (
            "MAIL FROM:<a@b.org> SIZE=42 BODY=8BITMIME",
            Command::Mail {
                sender: "a@b.org".into(),
                params: MailParams {
                    size: Some(42),
                    eight_bit: Some(true),
                    ..Default::default()
                },
            },
        ),
        ("RCPT TO:<c@d.org>", rcpt("c@d.org")),
        ("RCPT TO:<postmaster>", rcpt("postmaster")),
        ("rcpt to:<@relay.org:c@d.org>", rcpt("c@d.org")),
        (
            "RCPT TO:<c@d.org> NOTIFY=FAILURE ORCPT=rfc822;c@d.org",
            Command::Rcpt {
                recipient: "c@d.org".into(),
                params: RcptParams {
                    notify: Some("FAILURE".into()),
                    orcpt: Some("rfc822;c@d.org".into()),
                },
            },
        ),
        ("DATA", Command::Data),
        ("data", Command::Data),
        (
            "BDAT 100",
            Command::Bdat {
                size: 100,
                last: false,
            },
        ),
        (
            "BDAT 0 LAST",
            Command::Bdat {
                size: 0,
                last: true,
            },
        ),
        (
            "bdat 7 last",
            Command::Bdat {
                size: 7,
                last: true,
            },
        ),
        ("RSET", Command::Rset),
        ("NOOP", Command::Noop),
        ("NOOP anything at all", Command::Noop),
        ("QUIT", Command::Quit),
        ("VRFY root", Command::Vrfy("root".into())),
        ("HELP", Command::Help),
        ("HELP MAIL", Command::Help),
        ("STARTTLS", Command::StartTls),
        (
            "AUTH PLAIN AGEAYg==",
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGEAYg==".into()),
            },
        ),
        (
            "auth login",
            Command::Auth {
                mechanism: "LOGIN".into(),
                initial: None,
            },
        ),
        ("EXPN staff", Command::NotImplemented("expn")),
        ("ETRN example.org", Command::NotImplemented("etrn")),
    ];
    for (line, expected) in table {
        assert_eq!(parse(line.as_bytes()), Ok(expected), "line {line:?}");
    }
}

#[test]
fn refused_commands() {
    let table: &[(&[u8], &str, &str)] = &[
        (b"", "unknown", "500 5.5.2"),
        (b"FOO", "unknown", "500 5.5.2"),
        (b" MAIL FROM:<a@b>", "unknown", "500 5.5.2"),
        (b"MAIL\x00 FROM:<a@b>", "unknown", "500 5.5.2"),
        (b"MAIL FROM:<a@b>\r", "unknown", "500 5.5.2"),
        (b"NOOP \xff\xfe", "unknown", "500 5.5.2"),
        (b"EHLO", "ehlo", "501 5.5.4"),
        (b"EHLO ", "ehlo", "501 5.5.4"),
        (b"HELO a b", "helo", "501 5.5.4"),
        (b"MAIL", "mail", "501 5.5.4"),
        (b"MAIL TO:<a@b>", "mail", "501 5.5.4"),
        (b"MAIL FROM:a@b.org", "mail", "501 5.5.4"),
        (b"MAIL FROM:<a@b.org>junk", "mail", "501 5.5.4"),
        (b"MAIL FROM:<a@@b.org>", "mail", "501 5.1.7"),
        (b"MAIL FROM:<a@b.org> FOO=1", "mail", "555 5.5.4"),
        (b"RCPT TO:<>", "rcpt", "501 5.1.3"),
        (b"RCPT TO:<a b@c>", "rcpt", "501 5.1.3"),
        (b"RCPT FROM:<a@b>", "rcpt", "501 5.5.4"),
        (b"RCPT TO:<a@b> NOTIFY=SOMETIMES", "rcpt", "501 5.5.4"),
        (b"DATA now", "data", "501 5.5.4"),
        (b"BDAT", "bdat", "501 5.5.4"),
        (b"BDAT x", "bdat", "501 5.5.4"),
        (b"BDAT -1", "bdat", "501 5.5.4"),
        (b"BDAT 1 FIRST", "bdat", "501 5.5.4"),
        (b"BDAT 1 LAST more", "bdat", "501 5.5.4"),
        (b"BDAT 123456789012345678901", "bdat", "501 5.5.4"),
        (b"QUIT now", "quit", "501 5.5.4"),
        (b"RSET x", "rset", "501 5.5.4"),
        (b"STARTTLS x", "starttls", "501 5.5.4"),
        (b"VRFY", "vrfy", "501 5.5.4"),
        (b"AUTH", "auth", "501 5.5.4"),
        (b"AUTH PLAIN a b", "auth", "501 5.5.4"),
    ];
    for (line, verb, reply) in table {
        let err =
            parse(line).expect_err(&format!("{:?} should fail", String::from_utf8_lossy(line)));
        assert_eq!(err.verb, *verb, "line {:?}", String::from_utf8_lossy(line));
        assert!(
            err.reply.summary().starts_with(reply),
            "line {:?}: got {}",
            String::from_utf8_lossy(line),
            err.reply.summary()
        );
    }
}

#[test]
fn verbs_are_named_for_the_log() {
    assert_eq!(parse(b"EHLO x").unwrap().verb(), "ehlo");
    assert_eq!(parse(b"BDAT 1").unwrap().verb(), "bdat");
    assert_eq!(parse(b"EXPN x").unwrap().verb(), "expn");
}

/// `sendmail -bs`'s reading (moved here from `submit/src/sendmail/smtp/tests.rs` with the
/// parser): lenient paths, SIZE the only parameter, unknown verbs beyond the basic set.
#[test]
fn sendmail_bs_dialect() {
    let mail = |sender: &str, size| {
        Ok(Command::Mail {
            sender: sender.into(),
            params: MailParams {
                size,
                ..Default::default()
            },
        })
    };
    let table: Vec<(&str, Result<Command, &str>)> = vec![
        ("HELO client", Ok(Command::Helo("client".into()))),
        (
            "ehlo client.example\r\n",
            Ok(Command::Ehlo("client.example".into())),
        ),
        ("EHLO", Err("501 5.5.4 Syntax: EHLO hostname")),
        ("MAIL FROM:<a@b>", mail("a@b", None)),
        (
            "mail from: <a@b> SIZE=42 BODY=8BITMIME",
            mail("a@b", Some(42)),
        ),
        ("MAIL FROM:<>", mail("", None)),
        ("MAIL FROM:a@b", mail("a@b", None)),
        (
            "MAIL TO:<a@b>",
            Err("501 5.5.4 Syntax: MAIL FROM:<address>"),
        ),
        (
            "MAIL FROM:<a b@c>",
            Err("501 5.5.4 Syntax: MAIL FROM:<address>"),
        ),
        ("RCPT TO:<@relay:c@d>", Ok(rcpt("c@d"))),
        ("RCPT TO:<>", Err("501 5.5.4 Syntax: RCPT TO:<address>")),
        ("RCPT", Err("501 5.5.4 Syntax: RCPT TO:<address>")),
        ("DATA", Ok(Command::Data)),
        ("rset", Ok(Command::Rset)),
        ("NOOP", Ok(Command::Noop)),
        ("QUIT", Ok(Command::Quit)),
        ("VRFY root", Err("500 5.5.2 Error: command not recognized")),
        ("", Err("500 5.5.2 Error: command not recognized")),
        (
            "MAIL FROM:<\u{e9}\u{e9}",
            Err("501 5.5.4 Syntax: MAIL FROM:<address>"),
        ),
    ];
    for (line, expected) in table {
        let got = parse_with(line.as_bytes(), &Dialect::SENDMAIL_BS);
        let got = got.map_err(|e| e.reply.summary());
        assert_eq!(got, expected.map_err(String::from), "{line:?}");
    }
}

/// Where the dialects part ways (the table in `dialect.rs`), line by line.
#[test]
fn the_dialects_differ_only_where_documented() {
    let table: &[(&[u8], &str, &str)] = &[
        (b"HELO a b", "501 5.5.4", "helo a b"),
        (b"DATA now", "501 5.5.4", "data"),
        (b"QUIT now", "501 5.5.4", "quit"),
        (b"MAIL FROM:a@b.org", "501 5.5.4", "mail a@b.org"),
        (b"MAIL FROM:<a@b.org> XFOO=1", "555 5.5.4", "mail a@b.org"),
        (b"MAIL FROM:<a@@b.org>", "501 5.1.7", "mail a@@b.org"),
        (b"NOOP \xff\xfe", "500 5.5.2", "noop"),
        (b"HELO x\x01y", "500 5.5.2", "helo x\u{1}y"),
        (b"STARTTLS", "starttls", "500 5.5.2"),
        (b"BDAT 1 LAST", "bdat", "500 5.5.2"),
        (b"AUTH PLAIN", "auth", "500 5.5.2"),
    ];
    for (line, smtpd, sendmail_bs) in table {
        let label = String::from_utf8_lossy(line);
        let show = |got: Result<Command, ParseError>| match got {
            Ok(Command::Helo(name)) => format!("helo {name}"),
            Ok(Command::Mail { sender, .. }) => format!("mail {sender}"),
            Ok(command) => command.verb().to_string(),
            Err(error) => error.reply.summary(),
        };
        let strict = show(parse_with(line, &Dialect::SMTPD));
        assert!(strict.starts_with(smtpd), "smtpd {label:?}: {strict}");
        let lenient = show(parse_with(line, &Dialect::SENDMAIL_BS));
        assert!(lenient.starts_with(sendmail_bs), "-bs {label:?}: {lenient}");
    }
}
