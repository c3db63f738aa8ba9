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
