//! Real SMTP clients against the real daemon: Python `smtplib` (plain, STARTTLS, AUTH PLAIN
//! and LOGIN on a submission listener), `swaks` (TLS, AUTH, pipelining), a raw pipelined
//! session, BDAT, and DSN parameters kept on the queued envelope. Mail for local users lands
//! in their mbox with our `Received:` header.

use testkit::*;

#[test]
fn smtplib_plain_starttls_and_submission_auth() {
    let submission = free_port();
    let mut smtp = World::new(&format!("submission_listen = [\"127.0.0.1:{submission}\"]"));
    smtp.start();
    smtp.add_user("alice", "correct horse");
    let out = smtplib(
        r#"
port, sub = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl._create_unverified_context()
msg = "From: bob@example.org\r\nSubject: {}\r\n\r\nbody\r\n"
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.sendmail("bob@example.org", ["alice@localhost"], msg.format("plain"))
s.starttls(context=ctx)
s.sendmail("bob@example.org", ["alice@localhost"], msg.format("starttls"))
s.quit()

s = smtplib.SMTP("127.0.0.1", sub, timeout=30)
s.ehlo()
print("auth before tls offered:", s.has_extn("auth"))
try:
    s.sendmail("alice@localhost", ["alice@localhost"], msg.format("no auth"))
except smtplib.SMTPSenderRefused as e:
    print("mail before auth:", e.smtp_code)
s.starttls(context=ctx)
s.ehlo()
print("auth after tls:", s.esmtp_features.get("auth", "").strip())
try:
    s.login("alice", "wrong")
except smtplib.SMTPAuthenticationError as e:
    print("wrong password:", e.smtp_code)
s.login("alice", "correct horse")
s.sendmail("alice@localhost", ["alice@localhost"], msg.format("auth plain"))
s.quit()

s = smtplib.SMTP("127.0.0.1", sub, timeout=30)
s.starttls(context=ctx)
s.ehlo()
s.user, s.password = "alice", "correct horse"
code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
print("auth login:", code)
s.sendmail("alice@localhost", ["alice@localhost"], msg.format("auth login"))
s.quit()
"#,
        &[&smtp.port.to_string(), &submission.to_string()],
    );
    let expected = [
        "auth before tls offered: False",
        "mail before auth: 530",
        "auth after tls: PLAIN LOGIN",
        "wrong password: 535",
        "auth login: 235",
    ];
    for line in expected {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in:\n{out}"
        );
    }
    let env = &smtp.env;
    env.wait_mbox("alice", 4);
    let messages = env.mbox_messages("alice");
    let received = |subject: &str| {
        let m = messages
            .iter()
            .find(|m| m.subject.as_deref() == Some(subject))
            .unwrap_or_else(|| panic!("no {subject}"));
        m.header("Received").unwrap_or_default()
    };
    assert!(
        received("plain").contains("with ESMTP id"),
        "{}",
        received("plain")
    );
    assert!(
        received("starttls").contains("with ESMTPS id"),
        "{}",
        received("starttls")
    );
    assert!(
        received("starttls").contains("(using TLSv1."),
        "{}",
        received("starttls")
    );
    assert!(
        received("auth plain").contains("with ESMTPSA id"),
        "{}",
        received("auth plain")
    );
    assert!(
        received("plain").starts_with("from "),
        "{}",
        received("plain")
    );
    assert!(
        received("plain").contains("(unknown [127.0.0.1])"),
        "{}",
        received("plain")
    );
    assert!(
        received("plain").contains("for <alice@localhost>"),
        "{}",
        received("plain")
    );
    let log = env.log();
    assert!(
        log.contains("sasl_method=PLAIN, sasl_username=alice"),
        "log:\n{log}"
    );
    assert!(
        log.contains("sasl_method=LOGIN, sasl_username=alice"),
        "log:\n{log}"
    );
    assert!(
        log.contains("SASL PLAIN authentication failed"),
        "log:\n{log}"
    );
    // The submission listener adds the Message-ID it was not given.
    let auth = messages
        .iter()
        .find(|m| m.subject.as_deref() == Some("auth plain"))
        .unwrap();
    assert!(auth
        .header("Message-ID")
        .is_some_and(|v| v.ends_with("@test.example>")));
}

#[test]
fn swaks_with_tls_auth_and_pipelining() {
    let submission = free_port();
    let mut smtp = World::new(&format!("submission_listen = [\"127.0.0.1:{submission}\"]"));
    smtp.start();
    smtp.add_user("carol", "s3cret pass");
    let plain = smtp.swaks(&[
        "--to",
        "alice@localhost",
        "--from",
        "x@example.org",
        "--pipeline",
    ]);
    assert_success(&plain, "swaks --pipeline");
    let tls = smtp.swaks(&[
        "--to",
        "alice@localhost",
        "--from",
        "x@example.org",
        "--tls",
    ]);
    assert_success(&tls, "swaks --tls");
    let server = format!("127.0.0.1:{submission}");
    let mut cmd = std::process::Command::new("swaks");
    cmd.args([
        "--server",
        &server,
        "--timeout",
        "30",
        "--tls",
        "--auth",
        "LOGIN",
    ])
    .args(["--auth-user", "carol", "--auth-password", "s3cret pass"])
    .args([
        "--to",
        "somebody@elsewhere.example",
        "--from",
        "carol@test.example",
    ]);
    let auth = run_with_input(&mut cmd, b"");
    assert_success(&auth, "swaks --tls --auth LOGIN");
    for out in [&plain, &tls, &auth] {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("250 2.0.0 Ok: queued as"),
            "swaks output:\n{text}"
        );
    }
    assert!(String::from_utf8_lossy(&auth.stdout).contains("235 2.7.0 Authentication successful"));
    smtp.env.wait_mbox("alice", 2);
}

#[test]
fn a_pipelined_session_gets_every_reply_in_order() {
    let smtp = World::started("");
    let mut c = smtp.client();
    c.expect(220, "ESMTP");
    let ehlo = c.cmd("EHLO pipeliner.test");
    for ext in [
        "PIPELINING",
        "SIZE 10240000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "DSN",
        "STARTTLS",
    ] {
        assert!(
            ehlo.lines.iter().any(|l| l == ext),
            "{ext} not in {:?}",
            ehlo.lines
        );
    }
    c.send(
        b"MAIL FROM:<p@example.org>\r\nRCPT TO:<alice@localhost>\r\nRCPT TO:<bad address>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n",
    );
    for (code, needle) in [
        (250, "2.1.0"),
        (250, "2.1.5"),
        (501, "5.1.3"),
        (250, "2.1.5"),
        (354, "End data"),
    ] {
        c.expect(code, needle);
    }
    c.send(b"Subject: one\r\n\r\n..dot stuffed\r\n.\r\nRSET\r\nMAIL FROM:<>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n");
    for (code, needle) in [
        (250, "queued as"),
        (250, "2.0.0"),
        (250, "2.1.0"),
        (250, "2.1.5"),
        (354, ""),
    ] {
        c.expect(code, needle);
    }
    // RSET, not NOOP: NOOP must end a pipelined group (RFC 2920 section 3.1), and
    // smtpd_forbid_unauth_pipelining disconnects a client that sends more after it.
    c.send(b"Subject: two\r\n\r\nnull sender\r\n.\r\nRSET\r\nQUIT\r\n");
    c.expect(250, "queued as");
    c.expect(250, "Ok");
    c.expect(221, "Bye");
    assert!(c.is_closed());
    let env = &smtp.env;
    env.wait_mbox("alice", 2);
    env.wait_mbox("bob", 1);
    let one = env.mbox_messages("bob");
    assert!(
        one[0].body().starts_with(b".dot stuffed"),
        "{:?}",
        String::from_utf8_lossy(one[0].body())
    );
    let lines = env.wait_log("disconnect from unknown[127.0.0.1]", 1);
    assert!(
        lines[0].ends_with("ehlo=1 mail=2 rcpt=3/4 data=2 rset=2 quit=1 commands=11/12"),
        "{}",
        lines[0]
    );
}

#[test]
fn bdat_chunks_are_queued_as_one_message() {
    let smtp = World::started("");
    let mut c = smtp.client();
    c.start_transaction("chunky@example.org", &["alice@localhost"]);
    let first = b"Subject: chunked\r\n\r\n.not a terminator\r\n";
    c.send(format!("BDAT {}\r\n", first.len()).as_bytes());
    c.send(first);
    c.expect(250, &format!("{} bytes", first.len()));
    let last = b"second chunk\r\n.\r\nstill content\r\n";
    c.send(format!("BDAT {} LAST\r\n", last.len()).as_bytes());
    c.send(last);
    c.expect(250, "queued as");
    // BDAT without a transaction: the chunk is still read (the session stays in sync).
    c.send(b"BDAT 5 LAST\r\nhello");
    c.expect(503, "need MAIL");
    c.ok("QUIT", 221);
    smtp.env.wait_mbox("alice", 1);
    let m = &smtp.env.mbox_messages("alice")[0];
    assert_eq!(m.subject.as_deref(), Some("chunked"));
    assert_eq!(
        m.body(),
        b".not a terminator\nsecond chunk\n.\nstill content\n"
    );
}

#[test]
fn dsn_parameters_are_kept_on_the_envelope() {
    // A relayhost that refuses connections keeps the message queued (deferred) to look at.
    let dead = free_port();
    let mut smtp = World::builder().smtp().peer(&dead).start();
    let mut c = smtp.client();
    c.expect(220, "");
    c.ok("EHLO dsn.test", 250);
    c.ok("MAIL FROM:<s@example.org> RET=HDRS ENVID=QQ+2B314", 250);
    c.ok(
        "RCPT TO:<r@remote.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig+2Br@remote.example",
        250,
    );
    c.ok("RCPT TO:<n@remote.example> NOTIFY=NEVER", 250);
    c.ok("DATA", 354);
    let queued = c.cmd("Subject: dsn\r\n\r\nx\r\n.");
    assert_eq!(queued.code, 250, "{}", queued.text());
    let id = queued.text().rsplit(' ').next().unwrap().to_string();
    c.ok("QUIT", 221);
    smtp.env
        .wait_log(&format!("{id}: to=<r@remote.example>"), 1);
    let entries = queue::scan_readonly(&smtp.env.queue_dir()).expect("scan queue");
    let entry = entries
        .iter()
        .find(|e| e.id.to_string() == id)
        .expect("message still queued");
    let envelope = &entry.meta.envelope;
    assert_eq!(envelope.envid.as_deref(), Some("QQ+314"));
    assert_eq!(envelope.ret.as_deref(), Some("HDRS"));
    assert_eq!(envelope.origin, "smtpd");
    assert_eq!(
        envelope.recipients[0].notify.as_deref(),
        Some("SUCCESS,FAILURE")
    );
    assert_eq!(
        envelope.recipients[0].orcpt.as_deref(),
        Some("rfc822;orig+r@remote.example")
    );
    assert_eq!(envelope.recipients[1].notify.as_deref(), Some("NEVER"));
    assert_eq!(envelope.recipients[1].orcpt, None);
    smtp.daemon.take();
}

#[test]
fn ipv6_and_reinject_listeners() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let (v6, reinject) = (free_port(), free_port());
    let mut smtp = World::builder().smtp().build();
    let port = smtp.port;
    // Later lines replace the builder's smtpd_listen and mynetworks.
    smtp.configure(&format!(
        "smtpd_listen = [\"127.0.0.1:{port}\", \"[::1]:{v6}\"]\n\
         reinject_listen = [\"127.0.0.1:{reinject}\"]\n\
         mynetworks = [\"127.0.0.1/32\", \"[::1]/128\"]"
    ));
    smtp.start();
    smtp.env.wait_log("listening on", 3);
    let mut c = Client::connect_to((std::net::Ipv6Addr::LOCALHOST, v6).into());
    c.start_transaction(
        "six@example.org",
        &["alice@localhost", "far@elsewhere.example"],
    );
    c.ok("DATA", 354);
    c.send(b"Subject: over ipv6\r\n\r\nx\r\n.\r\n");
    c.expect(250, "queued as");
    c.ok("QUIT", 221);
    let mut r = Client::connect(reinject);
    r.expect(220, "");
    let ehlo = r.cmd("EHLO filter.test");
    assert!(
        !ehlo
            .lines
            .iter()
            .any(|l| l == "STARTTLS" || l.starts_with("AUTH")),
        "{:?}",
        ehlo.lines
    );
    r.ok("MAIL FROM:<filtered@example.org>", 250);
    r.ok("RCPT TO:<alice@localhost>", 250);
    r.ok("DATA", 354);
    r.send(b"Subject: reinjected\r\n\r\nx\r\n.\r\n");
    r.expect(250, "queued as");
    r.ok("QUIT", 221);
    smtp.env.wait_mbox("alice", 2);
    let messages = smtp.env.mbox_messages("alice");
    let six = messages
        .iter()
        .find(|m| m.subject.as_deref() == Some("over ipv6"))
        .expect("ipv6 message");
    let received = six.header("Received").unwrap_or_default();
    assert!(received.contains("(unknown [IPv6:::1])"), "{received}");
    smtp.env.wait_log("connect from unknown[::1]", 1);
}
