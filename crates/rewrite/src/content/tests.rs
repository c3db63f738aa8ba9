use super::*;

fn checks(header: &str, body: &str) -> ContentChecks {
    let map = |text: &str| match text {
        "" => Maps::default(),
        t => Maps::from_maps(vec![maps::Map::from_regexp(t, "test").unwrap()]),
    };
    ContentChecks {
        header: map(header),
        mime: map(header),
        nested: map(header),
        body: map(body),
    }
}

const MESSAGE: &[u8] = b"Subject: cheap\n pills\nFrom: a@b\n\nhello\nbuy now\n";

#[test]
fn folded_header_is_matched_as_one_line_and_rejected_with_default_text() {
    let c = checks("/^Subject:.*cheap pills/ REJECT\n", "");
    let i = c.inspect(MESSAGE);
    assert_eq!(
        i.outcome,
        Outcome::Reject {
            status: "5.7.1".into(),
            text: "message content rejected".into()
        }
    );
    assert_eq!(i.findings[0].content, "Subject: cheap pills");
    let cx = LogContext {
        queue_id: "ID",
        origin: "unknown[192.0.2.1]",
        sender: "a@b",
        recipient: Some("c@d"),
        smtp: Some(("ESMTP", "h")),
    };
    assert_eq!(
        i.findings[0].log_line(&cx),
        "ID: reject: header Subject: cheap pills from unknown[192.0.2.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<h>: 5.7.1 message content rejected"
    );
}

#[test]
fn reject_text_with_its_own_status() {
    let c = checks("", "/buy now/ REJECT 4.7.0 try later\n");
    assert_eq!(
        c.inspect(MESSAGE).outcome,
        Outcome::Reject {
            status: "4.7.0".into(),
            text: "try later".into()
        }
    );
}

#[test]
fn ignore_removes_and_prepend_inserts() {
    let c = checks("/^From:/ IGNORE\n/^Subject:/ PREPEND X-Seen: yes\n", "");
    let i = c.inspect(MESSAGE);
    assert_eq!(i.outcome, Outcome::Accept);
    assert_eq!(
        i.message.unwrap(),
        b"X-Seen: yes\nSubject: cheap\n pills\n\nhello\nbuy now\n".to_vec()
    );
}

#[test]
fn hold_continues_and_redirect_stops_inspection() {
    let c = checks(
        "/^Subject:/ HOLD suspicious\n",
        "/hello/ REDIRECT spam@x.test\n/buy/ DISCARD\n",
    );
    let i = c.inspect(MESSAGE);
    assert_eq!(i.hold.as_deref(), Some("suspicious"));
    assert_eq!(i.redirect.as_deref(), Some("spam@x.test"));
    assert_eq!(
        i.outcome,
        Outcome::Accept,
        "DISCARD after REDIRECT not reached"
    );
    assert!(i.message.is_none());
}

#[test]
fn mime_part_headers_and_attached_message_headers_are_told_apart() {
    let message = b"Content-Type: multipart/mixed; boundary=\"b1\"\nSubject: s\n\n--b1\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n--b1--\n";
    let parts: Vec<(crate::mime::Part, String)> = crate::mime::logical_lines(message)
        .into_iter()
        .map(|(p, l)| (p, String::from_utf8_lossy(l).trim_end().to_string()))
        .collect();
    use crate::mime::Part::*;
    let expected = [
        (Mime, "Content-Type: multipart/mixed; boundary=\"b1\""),
        (Header, "Subject: s"),
        (Separator, ""),
        (Body, "--b1"),
        (Mime, "Content-Type: message/rfc822"),
        (Separator, ""),
        (Nested, "Subject: inner"),
        (Separator, ""),
        (Body, "inner body"),
        (Body, "--b1--"),
    ];
    let expected: Vec<_> = expected.iter().map(|(p, l)| (*p, l.to_string())).collect();
    assert_eq!(parts, expected);
}

#[test]
fn odd_input_does_not_panic_and_is_kept_byte_for_byte() {
    let c = checks("/x/ IGNORE\n", "/y/ WARN\n");
    for input in [
        &b""[..],
        b"\n",
        b"no header line\n",
        b":\n\n",
        b"A: x\n\xff\xfe y\n",
        b"Content-Type: multipart/x; boundary=\n\n--\n",
    ] {
        let i = c.inspect(input);
        let rebuilt: Vec<u8> = crate::mime::logical_lines(input)
            .into_iter()
            .flat_map(|(_, l)| l.to_vec())
            .collect();
        assert_eq!(rebuilt, input);
        let _ = i;
    }
}

#[test]
fn replace_strip_and_bcc_edit_the_message_and_envelope() {
    let c = checks(
        "/^From:/ REPLACE From: x@y\n/^Subject:/ BCC copy@z\n",
        "/^hello/ REPLACE hi\n/^buy/ STRIP\n",
    );
    let mut i = c.inspect(MESSAGE);
    let mut env = envelope::Envelope::new("a@b", vec!["copy@z".into(), "c@d".into()], 0);
    env.recipients.remove(0);
    let mut message = MESSAGE.to_vec();
    i.apply(&mut env, &mut message);
    assert_eq!(message, b"Subject: cheap\n pills\nFrom: x@y\n\nhi\n");
    assert_eq!(env.recipients.len(), 2);
    assert_eq!(env.recipients[1].notify.as_deref(), Some("NEVER"));
    let actions: Vec<_> = i.findings.iter().map(|f| f.action).collect();
    assert_eq!(actions, ["bcc", "replace", "replace", "strip"]);
}

#[test]
fn a_bcc_already_a_recipient_is_not_added_twice() {
    let c = checks("/^Subject:/ BCC c@d\n", "");
    let mut i = c.inspect(MESSAGE);
    let mut env = envelope::Envelope::new("a@b", vec!["c@d".into()], 0);
    i.apply(&mut env, &mut MESSAGE.to_vec());
    assert_eq!(env.recipients.len(), 1);
}

#[test]
fn bad_arguments_warn_and_do_nothing() {
    let c = checks(
        "/^Subject:/ REPLACE not a header\n/^From:/ REDIRECT nobody\n",
        "",
    );
    let i = c.inspect(MESSAGE);
    assert!(i.findings.is_empty() && i.message.is_none() && i.redirect.is_none());
    assert_eq!(i.warnings.len(), 2, "{:?}", i.warnings);
}

#[test]
fn the_last_filter_wins_is_logged_and_inspection_goes_on() {
    let c = checks(
        "/^Subject:/ FILTER smtp:[127.0.0.1]:10025\n/^From:/ FILTER smtp:[127.0.0.1]:10026\n",
        "/buy now/ WARN seen\n",
    );
    let mut i = c.inspect(MESSAGE);
    assert_eq!(i.filter.as_deref(), Some("smtp:[127.0.0.1]:10026"));
    let actions: Vec<_> = i.findings.iter().map(|f| f.action).collect();
    assert_eq!(
        actions,
        ["filter", "filter", "warning"],
        "the body is still inspected"
    );
    let cx = LogContext {
        queue_id: "ID",
        origin: "unknown[192.0.2.1]",
        sender: "a@b",
        recipient: Some("c@d"),
        smtp: Some(("ESMTP", "h")),
    };
    assert_eq!(
        i.findings[0].log_line(&cx),
        "ID: filter: header Subject: cheap pills from unknown[192.0.2.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<h>: smtp:[127.0.0.1]:10025"
    );
    // It replaces a FILTER the envelope had already (an access table's, from smtpd).
    let mut env = envelope::Envelope::new("a@b", vec!["c@d".into()], 0);
    env.filter = Some("smtp:[127.0.0.1]:10099".into());
    i.apply(&mut env, &mut MESSAGE.to_vec());
    assert_eq!(env.filter.as_deref(), Some("smtp:[127.0.0.1]:10026"));
    assert!(i.message.is_none(), "the message itself is unchanged");
}

#[test]
fn a_filter_without_transport_and_destination_is_a_warning_and_ignored() {
    for value in [
        "FILTER",
        "FILTER [127.0.0.1]:10026",
        "FILTER nosuch:[127.0.0.1]",
    ] {
        let c = checks(&format!("/^Subject:/ {value}\n"), "");
        let mut i = c.inspect(MESSAGE);
        assert_eq!(i.filter, None, "{value}");
        assert!(i.findings.is_empty(), "{value}: not logged as done");
        assert_eq!(i.warnings.len(), 1, "{value}: {:?}", i.warnings);
        assert!(i.warnings[0].contains("FILTER"), "{:?}", i.warnings);
        let mut env = envelope::Envelope::new("a@b", vec!["c@d".into()], 0);
        i.apply(&mut env, &mut MESSAGE.to_vec());
        assert_eq!(env.filter, None);
    }
}
