//! The state machine driven by scripts of command lines: each step is a line and the reply
//! code (or action) expected, so a table reads like an SMTP transcript.

use super::*;
use config::Config;
use proto::command::parse;
use proto::reply::Reply;

struct Room(bool);

impl Storage for Room {
    fn has_room(&self, _size: u64) -> Result<(), Reply> {
        if self.0 {
            Ok(())
        } else {
            Err(fixed::insufficient_storage())
        }
    }
}

fn settings(role: Role, edit: impl FnOnce(&mut Config)) -> Arc<Settings> {
    let mut cfg = Config::embedded_default();
    cfg.myhostname = "mx.test".into();
    cfg.myorigin = "mx.test".into();
    cfg.mydestination = vec!["mx.test".into(), "localhost".into()];
    cfg.mynetworks = vec!["127.0.0.1/32".into()];
    cfg.relay_domains = vec!["relayed.org".into()];
    cfg.smtpd_recipient_limit = 3;
    cfg.message_size_limit = 1000;
    edit(&mut cfg);
    Arc::new(Settings::new(&SmtpdSettings::from_config(&cfg), role, true))
}

fn session_from(ip: &str, settings: Arc<Settings>) -> Session {
    Session::new(settings, Client::new(ip.parse().unwrap()))
}

/// Runs a command as the driver does: a recipient goes through the restrictions
/// (evaluated on a runtime of its own) before its reply.
fn handle(session: &mut Session, command: Command, room: bool) -> Action {
    match session.handle(command, &Room(room)) {
        Action::Rcpt(pending) => {
            let request =
                session.restriction_request(crate::restrictions::Stage::Rcpt, Some(&pending));
            let restrictions = session.settings.restrictions.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let verdict =
                runtime.block_on(restrictions.check(crate::restrictions::Stage::Rcpt, &request));
            Action::Reply(session.finish_rcpt(*pending, verdict))
        }
        Action::RcptAccepted(accepted) => Action::Reply(session.accept_rcpt(*accepted)),
        other => other,
    }
}

/// What an action amounts to in a transcript: its reply code, or a name.
fn outcome(action: Action) -> String {
    match action {
        Action::Rcpt(_) | Action::RcptAccepted(_) => "rcpt".into(),
        Action::Reply(r) => r.summary(),
        Action::Close(r) => format!("close {}", r.summary()),
        Action::StartTls => "starttls".into(),
        Action::Data => "data".into(),
        Action::Bdat { refusal: None, .. } => "bdat".into(),
        Action::Bdat {
            refusal: Some(r), ..
        } => format!("bdat refused {}", r.summary()),
        Action::Auth { mechanism, .. } => format!("auth {}", mechanism.name()),
    }
}

/// Runs `(line, expected prefix)` steps; returns the session for further checks. Replies
/// are counted as the driver counts them (`note_reply`).
fn script(mut session: Session, room: bool, steps: &[(&str, &str)]) -> Session {
    for (line, expected) in steps {
        let got = match parse(line.as_bytes()) {
            Ok(command) => {
                let action = handle(&mut session, command, room);
                if let Action::Reply(reply) | Action::Close(reply) = &action {
                    session.note_reply(reply);
                }
                outcome(action)
            }
            Err(e) => {
                session.note_reply(&e.reply);
                e.reply.summary()
            }
        };
        assert!(
            got.starts_with(expected),
            "{line:?}: expected {expected:?}, got {got:?}"
        );
    }
    session
}

#[test]
fn a_plain_transaction() {
    let s = session_from("192.0.2.1", settings(Role::Smtp, |_| {}));
    let s = script(
        s,
        true,
        &[
            // smtpd_helo_required = no (Postfix); EHLO then starts over.
            ("MAIL FROM:<a@b.org>", "250 2.1.0"),
            ("EHLO client.example", "250 mx.test"),
            ("RCPT TO:<x@mx.test>", "503 5.5.1"),
            ("DATA", "503 5.5.1"),
            ("MAIL FROM:<a@b.org> SIZE=100", "250 2.1.0"),
            ("MAIL FROM:<a@b.org>", "503 5.5.1 Error: nested"),
            ("DATA", "503 5.5.1 Error: need RCPT"),
            (
                "RCPT TO:<x@mx.test> NOTIFY=FAILURE ORCPT=rfc822;x@mx.test",
                "250 2.1.5",
            ),
            ("RCPT TO:<x@mx.test>", "250 2.1.5"),
            ("RCPT TO:<postmaster>", "250 2.1.5"),
            ("DATA", "data"),
        ],
    );
    let tx = s.tx.as_ref().expect("transaction");
    assert_eq!(tx.recipients.len(), 2, "duplicates are kept once");
    assert_eq!(tx.recipients[0].notify.as_deref(), Some("FAILURE"));
    assert_eq!(tx.recipients[0].orcpt.as_deref(), Some("rfc822;x@mx.test"));
    assert_eq!(tx.recipients[1].address, "postmaster@mx.test");
    assert!(tx.id.is_some());
    assert_eq!(s.protocol(), "ESMTP");
}

#[test]
fn no_open_relay() {
    let outsider = session_from("192.0.2.1", settings(Role::Smtp, |_| {}));
    script(
        outsider,
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<a@b.org>", "250"),
            (
                "RCPT TO:<victim@elsewhere.com>",
                "454 4.7.1 <victim@elsewhere.com>: Relay access denied",
            ),
            ("RCPT TO:<a%victim@mx.test>", "454 4.7.1"),
            ("RCPT TO:<a@[192.0.2.9]>", "454 4.7.1"),
            ("RCPT TO:<a@sub.relayed.org>", "250"),
            ("RCPT TO:<a@localhost>", "250"),
        ],
    );
    // Postfix's usual main.cf: a permanent refusal in the recipient restrictions.
    let permanent = settings(Role::Smtp, |c| {
        c.smtpd_recipient_restrictions = vec!["reject_unauth_destination".into()];
    });
    script(
        session_from("192.0.2.1", permanent),
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<a@b.org>", "250"),
            ("RCPT TO:<a@localhost>", "250"),
            ("RCPT TO:<v@elsewhere.com>", "454 4.7.1"),
        ],
    );
    let open_relay_list = settings(Role::Smtp, |c| {
        c.smtpd_relay_restrictions.clear();
        c.smtpd_recipient_restrictions = vec![
            "permit_mynetworks".into(),
            "reject_unauth_destination".into(),
        ];
    });
    script(
        session_from("192.0.2.1", open_relay_list),
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<a@b.org>", "250"),
            (
                "RCPT TO:<v@elsewhere.com>",
                "554 5.7.1 <v@elsewhere.com>: Relay access denied",
            ),
        ],
    );
    let insider = session_from("127.0.0.1", settings(Role::Smtp, |_| {}));
    script(
        insider,
        true,
        &[
            ("HELO x", "250"),
            ("MAIL FROM:<a@b.org>", "250"),
            ("RCPT TO:<v@elsewhere.com>", "250"),
        ],
    );
    let mapped = session_from("::ffff:127.0.0.1", settings(Role::Smtp, |_| {}));
    script(
        mapped,
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<>", "250"),
            ("RCPT TO:<v@elsewhere.com>", "250"),
        ],
    );
}

#[test]
fn virtual_mailbox_domains_are_ours_and_unknown_users_there_are_refused() {
    let mut settings = Arc::try_unwrap(settings(Role::Smtp, |_| {})).unwrap();
    let known = |address: &str| match address.rsplit_once('@') {
        Some((user, "virtual.test")) => Some(user == "alice"),
        _ => None,
    };
    settings.virtual_recipient = Some(VirtualRecipientCheck(Arc::new(known)));
    let outsider = session_from("192.0.2.1", Arc::new(settings));
    script(
        outsider,
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<a@b.org>", "250"),
            ("RCPT TO:<alice@virtual.test>", "250"),
            (
                "RCPT TO:<carol@virtual.test>",
                "550 5.1.1 <carol@virtual.test>: Recipient address rejected: User unknown in virtual mailbox table",
            ),
            ("RCPT TO:<victim@elsewhere.com>", "454 4.7.1"),
        ],
    );
}

#[test]
fn denied_recipients_make_data_say_no_valid_recipients() {
    let s = session_from("192.0.2.1", settings(Role::Smtp, |_| {}));
    script(
        s,
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<a@b.org>", "250"),
            ("RCPT TO:<v@elsewhere.com>", "454"),
            ("DATA", "554 5.5.1 Error: no valid recipients"),
        ],
    );
}

#[test]
fn limits() {
    let s = session_from("127.0.0.1", settings(Role::Smtp, |_| {}));
    script(
        s,
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<a@b.org> SIZE=1001", "552 5.3.4"),
            ("MAIL FROM:<a@b.org> SIZE=1000", "250"),
            ("RCPT TO:<a@mx.test>", "250"),
            ("RCPT TO:<b@mx.test>", "250"),
            ("RCPT TO:<c@mx.test>", "250"),
            ("RCPT TO:<d@mx.test>", "452 4.5.3"),
            ("RSET", "250"),
            ("RCPT TO:<a@mx.test>", "503"),
        ],
    );
    let full = session_from("127.0.0.1", settings(Role::Smtp, |_| {}));
    script(
        full,
        false,
        &[
            ("EHLO x", "250"),
            (
                "MAIL FROM:<a@b.org>",
                "452 4.3.1 Insufficient system storage",
            ),
        ],
    );
}

#[test]
fn helo_sessions_refuse_esmtp_parameters() {
    let s = session_from("127.0.0.1", settings(Role::Smtp, |_| {}));
    let s = script(
        s,
        true,
        &[
            ("HELO x", "250 mx.test"),
            ("MAIL FROM:<a@b.org> SIZE=10", "555 5.5.4"),
            ("MAIL FROM:<a@b.org>", "250"),
        ],
    );
    assert_eq!(s.protocol(), "SMTP");
}

#[test]
fn smtputf8_must_be_declared() {
    let s = session_from("127.0.0.1", settings(Role::Smtp, |_| {}));
    script(
        s,
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<δ@b.org>", "553 5.6.7"),
            ("MAIL FROM:<δ@b.org> SMTPUTF8", "250"),
            ("RCPT TO:<δοκιμή@mx.test>", "250"),
        ],
    );
}

#[test]
fn submission_needs_tls_then_auth_before_mail() {
    let s = session_from("127.0.0.1", settings(Role::Submission, |_| {}));
    let mut s = script(
        s,
        true,
        &[
            ("EHLO x", "250"),
            ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "538 5.7.11"),
            ("MAIL FROM:<a@b.org>", "530 5.7.0 Authentication required"),
            ("STARTTLS", "starttls"),
        ],
    );
    s.tls_started("TLSv1.3 with cipher X".into());
    let mut s = script(
        s,
        true,
        &[
            ("MAIL FROM:<a@b.org>", "530 5.7.0"),
            ("EHLO x", "250"),
            ("STARTTLS", "554 5.5.1"),
            ("AUTH CRAM-MD5", "504 5.5.4"),
            ("AUTH PLAIN", "auth PLAIN"),
            ("MAIL FROM:<a@b.org>", "530 5.7.0"),
        ],
    );
    s.authenticated(Mechanism::Plain, "alice".into());
    let s = script(
        s,
        true,
        &[
            ("AUTH LOGIN", "503 5.5.1"),
            ("MAIL FROM:<a@b.org>", "250"),
            ("RCPT TO:<anyone@elsewhere.com>", "250"),
        ],
    );
    assert_eq!(s.protocol(), "ESMTPSA");
}

#[test]
fn ehlo_advertises_what_the_state_allows() {
    let lines = |s: &mut Session| match s.handle(Command::Ehlo("x".into()), &Room(true)) {
        Action::Reply(r) => r.lines,
        other => panic!("{other:?}"),
    };
    let mut s = session_from("127.0.0.1", settings(Role::Submission, |_| {}));
    let before = lines(&mut s);
    assert!(before.contains(&"STARTTLS".to_string()));
    assert!(!before.iter().any(|l| l.starts_with("AUTH")));
    for ext in [
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "DSN",
    ] {
        assert!(
            before.contains(&ext.to_string()),
            "{ext} missing from {before:?}"
        );
    }
    s.tls_started("t".into());
    let after = lines(&mut s);
    assert!(after.contains(&"AUTH PLAIN LOGIN".to_string()), "{after:?}");
    assert!(!after.contains(&"STARTTLS".to_string()));

    let mut smtp = session_from("127.0.0.1", settings(Role::Smtp, |_| {}));
    smtp.tls_started("t".into());
    assert!(
        !lines(&mut smtp).iter().any(|l| l.starts_with("AUTH")),
        "AUTH off on smtp by default"
    );
    let mut reinject = session_from("127.0.0.1", settings(Role::Reinject, |_| {}));
    assert!(!lines(&mut reinject).contains(&"STARTTLS".to_string()));
}

#[test]
fn encrypt_level_requires_starttls() {
    let s = session_from(
        "127.0.0.1",
        settings(Role::Smtp, |c| {
            c.smtpd_tls_security_level = config::TlsLevel::Encrypt
        }),
    );
    script(
        s,
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<a@b.org>", "530 5.7.0 Must issue a STARTTLS"),
        ],
    );
}

#[test]
fn bdat_chunks() {
    let s = session_from("127.0.0.1", settings(Role::Smtp, |_| {}));
    let mut s = script(
        s,
        true,
        &[
            ("EHLO x", "250"),
            ("BDAT 5", "bdat refused 503 5.5.1"),
            ("MAIL FROM:<a@b.org>", "250"),
            ("RCPT TO:<a@mx.test>", "250"),
            ("BDAT 5", "bdat"),
        ],
    );
    s.chunk_sink().expect("sink").feed(b"Subje");
    assert!(matches!(s.end_chunk(5, false, None), ChunkEnd::Reply(r) if r.code == 250));
    let mut s = script(s, true, &[("DATA", "503 5.5.1 Error: mixing")]);
    let _ = s.handle(
        Command::Bdat {
            size: 9,
            last: true,
        },
        &Room(true),
    );
    s.chunk_sink().expect("sink").feed(b"ct: x\r\n\r\n");
    match s.end_chunk(9, true, None) {
        ChunkEnd::Message(tx, Ok(body)) => {
            assert_eq!(body, b"Subject: x\n\n");
            assert_eq!(tx.recipients.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(s.tx.is_none());
}

#[test]
fn a_failed_chunk_ends_the_transaction() {
    let s = session_from(
        "127.0.0.1",
        settings(Role::Smtp, |c| c.message_size_limit = 4),
    );
    let mut s = script(
        s,
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<a@b.org>", "250"),
            ("RCPT TO:<a@mx.test>", "250"),
            ("BDAT 10", "bdat"),
        ],
    );
    s.chunk_sink().expect("sink").feed(b"0123456789");
    assert!(matches!(s.end_chunk(10, false, None), ChunkEnd::Reply(r) if r.code == 552));
    assert!(s.tx.is_none());
}

#[test]
fn starttls_forgets_the_plaintext_state() {
    let s = session_from("127.0.0.1", settings(Role::Smtp, |_| {}));
    let mut s = script(
        s,
        true,
        &[("EHLO x", "250"), ("MAIL FROM:<a@b.org>", "250")],
    );
    s.tls_started("t".into());
    assert!(s.helo.is_none() && s.tx.is_none());
}

#[test]
fn error_limits() {
    let s = session_from(
        "127.0.0.1",
        settings(Role::Smtp, |c| {
            c.smtpd_soft_error_limit = 2;
            c.smtpd_hard_error_limit = config::Stressed::fixed(3);
        }),
    );
    let mut s = s;
    for _ in 0..2 {
        s.note_reply(&fixed::unknown_command());
    }
    assert!(s.slow_down() && !s.too_many_errors());
    s.note_reply(&fixed::ok());
    assert!(!s.too_many_errors());
    s.note_reply(&fixed::unknown_command());
    assert!(s.too_many_errors());
}

#[test]
fn misc_commands() {
    let s = session_from("127.0.0.1", settings(Role::Smtp, |_| {}));
    script(
        s,
        true,
        &[
            ("NOOP", "250 2.0.0"),
            ("VRFY root", "252 2.0.0"),
            ("HELP", "214 2.0.0"),
            ("EXPN staff", "502 5.5.1"),
            ("BOGUS", "500 5.5.2"),
            ("QUIT", "close 221 2.0.0"),
        ],
    );
}

#[test]
fn mail_without_helo_is_accepted_unless_helo_required() {
    let s = session_from("192.0.2.1", settings(Role::Smtp, |_| {}));
    let s = script(
        s,
        true,
        &[
            ("MAIL FROM:<a@b.org> SIZE=10", "555 5.5.4"),
            ("MAIL FROM:<a@b.org>", "250 2.1.0"),
            ("RCPT TO:<x@mx.test>", "250 2.1.5"),
            ("DATA", "data"),
        ],
    );
    assert_eq!(s.protocol(), "SMTP");
    let strict = session_from(
        "192.0.2.1",
        settings(Role::Smtp, |c| c.smtpd_helo_required = true),
    );
    script(
        strict,
        true,
        &[
            (
                "MAIL FROM:<a@b.org>",
                "503 5.5.1 Error: send HELO/EHLO first",
            ),
            ("HELO x", "250"),
            ("MAIL FROM:<a@b.org>", "250"),
        ],
    );
}

#[test]
fn recipients_over_the_limit_are_errors_only_past_the_overshoot_limit() {
    let s = session_from(
        "127.0.0.1",
        settings(Role::Smtp, |c| c.smtpd_recipient_overshoot_limit = 2),
    );
    let mut s = script(
        s,
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<a@b.org>", "250"),
            ("RCPT TO:<a@mx.test>", "250"),
            ("RCPT TO:<b@mx.test>", "250"),
            ("RCPT TO:<c@mx.test>", "250"),
            (
                "RCPT TO:<d@mx.test>",
                "452 4.5.3 Error: too many recipients",
            ),
            ("RCPT TO:<e@mx.test>", "452 4.5.3"),
        ],
    );
    assert_eq!(s.errors, 0, "within the overshoot limit");
    s = script(s, true, &[("RCPT TO:<f@mx.test>", "452 4.5.3")]);
    assert_eq!(s.errors, 1, "past the overshoot limit");
    // The next transaction starts a new overshoot count.
    s = script(
        s,
        true,
        &[
            ("RSET", "250"),
            ("MAIL FROM:<a@b.org>", "250"),
            ("RCPT TO:<a@mx.test>", "250"),
            ("RCPT TO:<b@mx.test>", "250"),
            ("RCPT TO:<c@mx.test>", "250"),
            ("RCPT TO:<d@mx.test>", "452"),
        ],
    );
    assert_eq!(s.errors, 1);
}

#[test]
fn two_thousand_recipients_with_postfix_defaults_never_hit_the_error_limit() {
    let s = session_from(
        "127.0.0.1",
        settings(Role::Smtp, |c| c.smtpd_recipient_limit = 1000),
    );
    let mut s = script(
        s,
        true,
        &[("EHLO x", "250"), ("MAIL FROM:<a@b.org>", "250")],
    );
    let mut refused = 0;
    for n in 0..2000 {
        let command = parse(format!("RCPT TO:<r{n}@mx.test>").as_bytes()).unwrap();
        if let Action::Reply(reply) = handle(&mut s, command, true) {
            refused += usize::from(reply.code == 452);
            s.note_reply(&reply);
        }
        assert!(
            !s.too_many_errors(),
            "hard error limit after {n} recipients"
        );
    }
    assert_eq!(refused, 1000);
    script(s, true, &[("DATA", "data")]);
}

#[test]
fn bare_postmaster_is_accepted_from_anyone() {
    let settings = settings(Role::Smtp, |c| {
        c.myorigin = "elsewhere.org".into();
        c.smtpd_recipient_limit = 10;
    });
    assert_eq!(settings.postmaster, "postmaster@mx.test");
    let outsider = session_from("192.0.2.1", settings);
    let s = script(
        outsider,
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<a@b.org>", "250"),
            ("RCPT TO:<someone>", "454 4.7.1"),
            ("RCPT TO:<postmaster@elsewhere.com>", "454 4.7.1"),
            ("RCPT TO:<postmaster>", "250 2.1.5"),
            ("RCPT TO:<PostMaster>", "250 2.1.5"),
            ("DATA", "data"),
        ],
    );
    let tx = s.tx.as_ref().expect("transaction");
    let addresses: Vec<&str> = tx.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addresses, ["postmaster@mx.test"]);
    // With no myhostname among the local domains, the first local domain's postmaster.
    let mut cfg = Config::embedded_default();
    cfg.myhostname = "mx.test".into();
    cfg.mydestination = vec!["Local.Example".into(), "localhost".into()];
    assert_eq!(
        Settings::new(&SmtpdSettings::from_config(&cfg), Role::Smtp, false).postmaster,
        "postmaster@local.example"
    );
}

#[test]
fn commands_that_must_end_a_pipelining_group() {
    let parsed = |line: &str| parse(line.as_bytes()).unwrap();
    let ends_group = |s: &Session, line: &str| s.must_end_group(&parsed(line));
    let mut s = session_from("192.0.2.1", settings(Role::Smtp, |_| {}));
    for line in ["EHLO x", "HELO x", "MAIL FROM:<a@b.org>", "NOOP", "QUIT"] {
        assert!(ends_group(&s, line), "{line} before EHLO");
    }
    s = script(s, true, &[("EHLO x", "250")]);
    for (line, expected) in [
        ("EHLO x", true),
        ("HELO x", true),
        ("DATA", true),
        ("NOOP", true),
        ("VRFY x", true),
        ("MAIL FROM:<a@b.org>", false),
        ("RCPT TO:<a@mx.test>", false),
        ("RSET", false),
        ("BDAT 10 LAST", false),
        ("QUIT", false),
    ] {
        assert_eq!(ends_group(&s, line), expected, "{line} after EHLO");
    }
    s = script(s, true, &[("HELO x", "250")]);
    assert!(
        ends_group(&s, "MAIL FROM:<a@b.org>"),
        "HELO clients may not pipeline"
    );
    let submission = session_from("192.0.2.1", settings(Role::Submission, |_| {}));
    assert!(!ends_group(&submission, "DATA"), "submission is exempt");
    let off = session_from(
        "192.0.2.1",
        settings(Role::Smtp, |c| c.smtpd_forbid_unauth_pipelining = false),
    );
    assert!(!ends_group(&off, "EHLO x"));
}

#[test]
fn junk_commands_past_the_limit_count_as_errors() {
    let s = session_from(
        "127.0.0.1",
        settings(Role::Smtp, |c| {
            c.smtpd_junk_command_limit = config::Stressed::fixed(2)
        }),
    );
    let s = script(
        s,
        true,
        &[("EHLO x", "250"), ("NOOP", "250"), ("RSET", "250")],
    );
    assert_eq!(s.errors, 0);
    let mut s = script(s, true, &[("NOOP", "250"), ("MAIL FROM:<a@b.org>", "250")]);
    assert_eq!(
        s.errors, 1,
        "the 4th junk command is an error (Postfix: count > limit)"
    );
    s.delivered();
    assert_eq!((s.errors, s.junk_commands), (0, 0));
}

#[test]
fn stress_values_apply_while_the_flag_is_up() {
    let (flag, stress) = crate::stress::StressFlag::manual();
    let mut settings = Settings::new(
        &SmtpdSettings::from_config(&Config::embedded_default()),
        Role::Smtp,
        false,
    );
    settings.stress = stress;
    let mut s = session_from("192.0.2.1", Arc::new(settings));
    s.note_reply(&fixed::unknown_command());
    assert!(!s.too_many_errors(), "20 errors allowed normally");
    flag.send_replace(true);
    assert!(s.too_many_errors(), "1 error allowed under stress");
    flag.send_replace(false);
    assert!(!s.too_many_errors());
}

/// Settings whose rewriter knows `example.org` as a virtual alias domain with one address,
/// and one relocated user.
fn with_virtual_aliases(dir: &std::path::Path) -> Arc<Settings> {
    let virtual_map = dir.join("virtual");
    std::fs::write(
        &virtual_map,
        "example.org x\ninfo@example.org alice@mx.test\n",
    )
    .unwrap();
    let relocated = dir.join("relocated");
    std::fs::write(&relocated, "old@mx.test new@example.com\n").unwrap();
    let mut cfg = Config::embedded_default();
    cfg.myhostname = "mx.test".into();
    cfg.myorigin = "mx.test".into();
    cfg.mydestination = vec!["mx.test".into()];
    cfg.mynetworks = vec!["127.0.0.1/32".into()];
    cfg.virtual_alias_maps = vec![virtual_map.display().to_string()];
    cfg.virtual_alias_domains = cfg.virtual_alias_maps.clone();
    cfg.relocated_maps = vec![relocated.display().to_string()];
    let mut settings = Settings::new(&SmtpdSettings::from_config(&cfg), Role::Smtp, false);
    settings.rewriter = Arc::new(rewrite::Rewriter::from_config(&cfg).unwrap());
    Arc::new(settings)
}

#[test]
fn virtual_alias_domain_accepts_only_its_listed_addresses_from_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let s = session_from("192.0.2.1", with_virtual_aliases(dir.path()));
    let s = script(
        s,
        true,
        &[
            ("EHLO x", "250"),
            ("MAIL FROM:<a@b.org>", "250"),
            ("RCPT TO:<info@example.org>", "250"),
            (
                "RCPT TO:<nobody@example.org>",
                "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual alias table",
            ),
            ("RCPT TO:<a%b@example.org>", "550 5.1.1"),
            // Not a relay hole: other domains still need a trusted client.
            ("RCPT TO:<x@elsewhere.example>", "454 4.7.1"),
            (
                "RCPT TO:<old@mx.test>",
                "550 5.1.6 <old@mx.test>: Recipient address rejected: User has moved to new@example.com",
            ),
        ],
    );
    assert_eq!(s.tx.as_ref().unwrap().recipients.len(), 1);
}

#[test]
fn client_label_is_made_once_from_the_canonical_address() {
    let mapped: std::net::IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    assert_eq!(Client::new(mapped).label(), "unknown[192.0.2.7]");
    let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(Client::new(v6).label(), "unknown[2001:db8::1]");
}
