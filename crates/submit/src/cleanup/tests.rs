use super::*;
use crate::maildrop::DsnOptions;
use crate::testing::config;
use envelope::QueueId;

fn drop_with(message: &str) -> MaildropFile {
    MaildropFile {
        id: QueueId::generate(),
        arrival_time: 1_700_000_000,
        uid: 1000,
        username: "alice".into(),
        fullname: Some("Alice Liddell".into()),
        sender: "alice".into(),
        recipients: vec!["bob".into(), "carol@example.net".into(), "bob".into()],
        dsn: DsnOptions {
            notify: Some("NEVER".into()),
            envid: None,
            ret: Some("HDRS".into()),
        },
        message: message.as_bytes().to_vec(),
    }
}

fn clean(message: &str) -> (Cleaned, String) {
    let dir = tempfile::tempdir().unwrap();
    let cleaned = cleanup(
        &CleanupSettings::from_config(&config(dir.path())),
        &drop_with(message),
    )
    .unwrap();
    let text = String::from_utf8(cleaned.message.clone()).unwrap();
    (cleaned, text)
}

#[test]
fn envelope_is_qualified_and_deduplicated() {
    let (cleaned, _) = clean("Subject: x\n\nbody\n");
    let envelope = cleaned.envelope;
    assert_eq!(envelope.sender, "alice@example.org");
    let addresses: Vec<&str> = envelope
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(addresses, ["bob@example.org", "carol@example.net"]);
    assert_eq!(envelope.recipients[0].notify.as_deref(), Some("NEVER"));
    assert_eq!(envelope.ret.as_deref(), Some("HDRS"));
    assert_eq!(envelope.origin, "pickup");
    assert_eq!(envelope.arrival_time, 1_700_000_000);
}

#[test]
fn missing_headers_are_added() {
    let (_, text) = clean("Subject: x\r\n\r\nbody");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("Received: by host.example (mailroom, from userid 1000)"));
    assert!(lines[1].starts_with("\tid "));
    assert_eq!(lines[2], "Subject: x");
    assert!(lines[3].starts_with("Date: "), "{text}");
    assert!(lines[4].starts_with("Message-ID: <") && lines[4].ends_with("@host.example>"));
    assert_eq!(lines[5], "From: Alice Liddell <alice@example.org>");
    assert_eq!(&lines[6..], ["", "body"]);
    assert!(text.ends_with("body\n") && !text.contains('\r'));
}

#[test]
fn existing_headers_are_kept_and_bcc_removed() {
    let message = "From: Boss <boss@corp>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <x@y>\nBcc: hidden@z\nReturn-Path: <x>\nSubject: folded\n  line\n\nbody\n";
    let (_, text) = clean(message);
    let headers: Vec<&str> = text.lines().skip(2).take_while(|l| !l.is_empty()).collect();
    assert_eq!(
        headers,
        [
            "From: Boss <boss@corp>",
            "Date: Mon, 1 Jan 2024 00:00:00 +0000",
            "Message-ID: <x@y>",
            "Subject: folded",
            "  line"
        ]
    );
}

#[test]
fn headerless_message_gets_a_separator() {
    let (_, text) = clean("no headers here\n");
    assert!(text.ends_with("\n\nno headers here\n"), "{text}");
    let (_, text) = clean("");
    assert!(text.ends_with(">\n\n"), "{text:?}");
}

#[test]
fn hop_count_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.hopcount_limit = 3;
    let two = "Received: a\nDelivered-To: b\n\nbody\n";
    assert!(cleanup(&CleanupSettings::from_config(&cfg), &drop_with(two)).is_ok());
    let three = "Received: a\nReceived: b\nDelivered-To: c\n\nbody\n";
    let rejected = cleanup(&CleanupSettings::from_config(&cfg), &drop_with(three)).unwrap_err();
    assert_eq!(
        (rejected.dsn.as_str(), rejected.reason.as_str()),
        ("5.4.6", "too many hops")
    );
}

#[test]
fn size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.message_size_limit = 20;
    let rejected = cleanup(
        &CleanupSettings::from_config(&cfg),
        &drop_with("Subject: x\n\n0123456789012345\n"),
    )
    .unwrap_err();
    assert_eq!(
        rejected.to_string(),
        "5.3.4 message size exceeds fixed limit"
    );
    cfg.message_size_limit = 0;
    cfg.header_size_limit = 30;
    let long = format!("Subject: {}\n\nbody\n", "y".repeat(40));
    let rejected = cleanup(&CleanupSettings::from_config(&cfg), &drop_with(&long)).unwrap_err();
    assert_eq!(
        rejected.to_string(),
        "5.3.4 message header size exceeds limit"
    );
}

#[test]
fn non_utf8_headers_do_not_panic() {
    let mut drop = drop_with("");
    drop.message = b"Subject: \xff\xfe\nTo: \x80\n\n\xc3\x28\n".to_vec();
    let dir = tempfile::tempdir().unwrap();
    let cleaned = cleanup(&CleanupSettings::from_config(&config(dir.path())), &drop).unwrap();
    assert!(cleaned.message.ends_with(b"\n\n\xc3\x28\n"));
}

#[test]
fn from_header_forms() {
    assert_eq!(from_header(None, "a@b", "o"), "a@b");
    assert_eq!(
        from_header(None, "", "o.example"),
        "MAILER-DAEMON@o.example"
    );
    assert_eq!(
        from_header(Some("Doe, J."), "a@b", "o"),
        "\"Doe, J.\" <a@b>"
    );
    assert_eq!(
        from_header(Some("Jörg"), "a@b", "o"),
        "=?UTF-8?B?SsO2cmc=?= <a@b>"
    );
    assert_eq!(base64(b"Ma"), "TWE=");
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(b"M"), "TQ==");
}

#[test]
fn qualification() {
    assert_eq!(qualify("bob", "o.org"), "bob@o.org");
    assert_eq!(qualify("bob@x", "o.org"), "bob@x");
    assert_eq!(qualify("bob@", "o.org"), "bob@o.org");
    assert_eq!(qualify("", "o.org"), "");
    assert_eq!(qualify("\"u@evil\"", "o.org"), "\"u@evil\"@o.org");
    assert_eq!(qualify("\"u@evil\"@x", "o.org"), "\"u@evil\"@x");
}

#[test]
fn arrival_time_past_the_year_9999_does_not_panic_cleanup() {
    // `T 253402300800` (10000-01-01) in a maildrop file took the daemon's pickup down.
    for arrival_time in [253_402_300_800, i64::MAX as u64, u64::MAX] {
        let dir = tempfile::tempdir().unwrap();
        let mut drop = drop_with("Subject: x\n\nbody\n");
        drop.arrival_time = arrival_time;
        let cleaned = cleanup(&CleanupSettings::from_config(&config(dir.path())), &drop).unwrap();
        let text = String::from_utf8(cleaned.message).unwrap();
        assert!(
            text.contains("Date: Thu, 1 Jan 1970 00:00:00 +0000\n"),
            "{text}"
        );
    }
}

#[test]
fn dates_are_rfc5322() {
    let date = rfc5322_date(0);
    assert!(date.contains("1970") || date.contains("1969"), "{date}");
    assert!(date.contains(", "), "{date}");
}
