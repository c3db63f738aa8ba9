//! Issue 13 part 3: `smtpd_milters` are consulted at each SMTP stage, as Postfix does it,
//! with a real milter library as the peer: a pymilter script (Debian's python3-milter, on
//! Sendmail's libmilter). It rejects one HELO name, one sender and one recipient (with its
//! own reply text), tempfails another recipient, discards at a third, and records each
//! callback with the macros it got. A refused connect changes the greeting (554) and
//! answers MAIL; a refused recipient is refused alone (its reply comes
//! before DATA, the other recipient is delivered); a refused HELO answers every later
//! command; two messages on one session, with RSET between, are separate transactions; a
//! milter that dies mid-session leaves its default action (tempfail) for the rest of it,
//! and the message queued before is delivered; a milter that negotiated `SMFIP_RCPT_REJ`
//! hears of the recipients mailroom refused.

use serde_json::Value;
use testkit::*;

const SCRIPT: &str = r#"
import os
class TestMilter(Recording):
    def connect(self, hostname, family, hostaddr):
        record(self, "connect", host=hostname, addr=hostaddr[0],
               macros=self.macros("j", "{client_addr}", "{daemon_name}"))
        return Milter.CONTINUE
    def hello(self, name):
        record(self, "helo", name=name)
        return Milter.REJECT if name == "bad.helo.test" else Milter.CONTINUE
    def envfrom(self, sender, *params):
        record(self, "mail", sender=sender, macros=self.macros("{mail_addr}"))
        return Milter.REJECT if sender == "<spammer@bad.test>" else Milter.CONTINUE
    def envrcpt(self, to, *params):
        record(self, "rcpt", to=to, macros=self.macros("{rcpt_addr}"))
        if to.startswith("<refused@"):
            self.setreply("550", "5.7.1", "Recipient refused by the test milter")
            return Milter.REJECT
        if to.startswith("<later@"):
            return Milter.TEMPFAIL
        if to.startswith("<discard@"):
            return Milter.DISCARD
        if to.startswith("<crash@"):
            os._exit(1)
        return Milter.CONTINUE
    def data(self):
        record(self, "data")
        return Milter.CONTINUE
    def eom(self):
        record(self, "eom", macros=self.macros("i"))
        self.addheader("X-Test-Milter", "seen")
        return Milter.CONTINUE
    def abort(self):
        record(self, "abort")
        return Milter.CONTINUE
    def close(self):
        record(self, "close")
        return Milter.CONTINUE
"#;

fn setup() -> Option<(PyMilter, Peer, World)> {
    setup_with(SCRIPT, "")
}

fn setup_with(script: &str, extra: &str) -> Option<(PyMilter, Peer, World)> {
    if !PyMilter::available() {
        eprintln!(
            "skipped: Debian's python3-milter is not installed (scripts/test.sh installs it)"
        );
        return None;
    }
    let peer = Peer::start();
    let mut world = World::builder().smtp().peer(&peer).build();
    let milter = PyMilter::start(&world.env.root, script);
    let config = format!(
        "smtpd_milters = [\"inet:127.0.0.1:{}\"]\n\
         milter_connect_macros = [\"j\", \"{{daemon_name}}\", \"v\", \"_\", \"{{client_addr}}\"]\n{extra}",
        milter.port
    );
    world.configure(&config);
    world.start();
    Some((milter, peer, world))
}

/// The events of the one milter connection whose `connect` came from this session.
fn of_connection(events: &[Value], conn: &Value) -> Vec<Value> {
    events
        .iter()
        .filter(|e| &e["conn"] == conn)
        .cloned()
        .collect()
}

fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("").to_string())
        .collect()
}

fn message(subject: &str) -> String {
    format!("From: a@client.test\r\nSubject: {subject}\r\n\r\nbody {subject}\r\n.\r\n")
}

#[test]
fn a_refused_recipient_is_refused_alone_before_data_and_the_other_is_delivered() {
    let Some((milter, peer, world)) = setup() else {
        return;
    };
    let mut c = world.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<a@client.test>", 250);
    c.ok("RCPT TO:<ok@far.example>", 250);
    c.cmd_expect(
        "RCPT TO:<refused@far.example>",
        550,
        "5.7.1 Recipient refused by the test milter",
    );
    c.cmd_expect(
        "RCPT TO:<later@far.example>",
        451,
        "4.7.1 Service unavailable",
    );
    // The milter saw each RCPT when it came, before any DATA.
    let events = milter.events();
    assert!(
        names(&events).ends_with(&["rcpt".into(), "rcpt".into(), "rcpt".into()]),
        "{events:?}"
    );
    c.ok("DATA", 354);
    c.send(message("first").as_bytes());
    let queued = c.expect(250, "queued as");
    c.ok("QUIT", 221);
    wait_until("the delivered copy", || peer.messages().len() == 1);
    let got = &peer.messages()[0];
    assert_eq!(got.recipients, ["ok@far.example"], "{got:?}");
    assert!(got.data.contains("X-Test-Milter: seen"), "{}", got.data);
    world.wait_lines(
        // The transaction has its queue ID since the first recipient (Postfix logs it too).
        &["milter-reject: RCPT from unknown[127.0.0.1]: 550 5.7.1 Recipient refused by the test milter; from=<a@client.test> to=<refused@far.example> proto=ESMTP helo=<client.test>"],
        1,
    );
    world.wait_lines(
        &[
            "milter-reject: RCPT from",
            "451 4.7.1",
            "to=<later@far.example>",
        ],
        1,
    );

    let events = milter.wait_events("the session's close", |e| {
        names(e).contains(&"close".into())
    });
    let session = of_connection(&events, &events[0]["conn"]);
    let seen = names(&session);
    assert_eq!(
        &seen[..8],
        ["connect", "helo", "mail", "rcpt", "rcpt", "rcpt", "data", "eom"],
        "{session:?}"
    );
    let connect = &session[0];
    assert_eq!(connect["addr"], "127.0.0.1", "{connect}");
    assert_eq!(connect["macros"]["{client_addr}"], "127.0.0.1", "{connect}");
    assert!(
        connect["macros"]["j"]
            .as_str()
            .is_some_and(|j| !j.is_empty()),
        "{connect}"
    );
    assert_eq!(session[2]["macros"]["{mail_addr}"], "a@client.test");
    assert_eq!(session[3]["macros"]["{rcpt_addr}"], "ok@far.example");
    // `i` at the end of the message is the queue ID the client was given.
    let id = session[7]["macros"]["i"].as_str().unwrap_or("").to_string();
    assert!(
        !id.is_empty() && queued.text().contains(&id),
        "{id} vs {}",
        queued.text()
    );
}

#[test]
fn a_refused_helo_answers_every_later_command() {
    let Some((milter, peer, world)) = setup() else {
        return;
    };
    let mut c = world.client();
    c.expect(220, "");
    // As Postfix (and Sendmail): HELO itself is answered, the refusal stands from then on.
    c.ok("EHLO bad.helo.test", 250);
    c.cmd_expect("MAIL FROM:<a@client.test>", 550, "5.7.1 Command rejected");
    c.cmd_expect("VRFY someone", 550, "5.7.1 Command rejected");
    c.ok("RSET", 250);
    c.ok("EHLO client.test", 250);
    c.cmd_expect("MAIL FROM:<a@client.test>", 550, "5.7.1 Command rejected");
    c.ok("QUIT", 221);
    world.wait_lines(
        &["NOQUEUE: milter-reject: HELO from unknown[127.0.0.1]: 550 5.7.1 Command rejected; proto=ESMTP helo=<bad.helo.test>"],
        1,
    );
    world.wait_lines(
        &["NOQUEUE: milter-reject: MAIL from unknown[127.0.0.1]: 550 5.7.1 Command rejected; from=<a@client.test> proto=ESMTP"],
        2,
    );
    // The milter was not asked again after its refusal.
    let events = milter.wait_events("the session's close", |e| {
        names(e).contains(&"close".into())
    });
    assert_eq!(names(&events), ["connect", "helo", "close"], "{events:?}");
    assert!(peer.messages().is_empty());
}

#[test]
fn a_refused_sender_refuses_that_mail_only_and_rset_separates_two_messages() {
    let Some((milter, peer, world)) = setup() else {
        return;
    };
    let mut c = world.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.cmd_expect(
        "MAIL FROM:<spammer@bad.test>",
        550,
        "5.7.1 Command rejected",
    );
    world.wait_lines(
        &["NOQUEUE: milter-reject: MAIL from unknown[127.0.0.1]: 550 5.7.1 Command rejected; from=<spammer@bad.test> proto=ESMTP helo=<client.test>"],
        1,
    );
    // A transaction abandoned with RSET, then a message, then another on the same session.
    c.ok("MAIL FROM:<first@client.test>", 250);
    c.ok("RCPT TO:<one@far.example>", 250);
    c.ok("RSET", 250);
    for (sender, subject) in [
        ("second@client.test", "second"),
        ("third@client.test", "third"),
    ] {
        c.ok(&format!("MAIL FROM:<{sender}>"), 250);
        c.ok("RCPT TO:<two@far.example>", 250);
        c.ok("DATA", 354);
        c.send(message(subject).as_bytes());
        c.expect(250, "queued as");
    }
    c.ok("QUIT", 221);
    wait_until("both messages", || peer.messages().len() == 2);
    let senders: Vec<String> = peer.messages().iter().map(|m| m.sender.clone()).collect();
    assert_eq!(senders, ["second@client.test", "third@client.test"]);

    let events = milter.wait_events("the session's close", |e| {
        names(e).contains(&"close".into())
    });
    let seen = names(&events);
    // One connection; each transaction on its own (libmilter calls `abort` only for a
    // message in progress: here the one RSET ended).
    assert_eq!(
        seen,
        [
            "connect", "helo", "mail", // the refused sender
            "mail", "rcpt", "abort", // RSET
            "mail", "rcpt", "data", "eom", // the second message
            "mail", "rcpt", "data", "eom", // the third
            "close"
        ],
        "{events:?}"
    );
    let senders: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "mail")
        .map(|e| e["macros"]["{mail_addr}"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        senders,
        [
            "spammer@bad.test",
            "first@client.test",
            "second@client.test",
            "third@client.test"
        ]
    );
}

#[test]
fn a_discard_at_rcpt_accepts_the_message_and_delivers_nothing() {
    let Some((_milter, peer, world)) = setup() else {
        return;
    };
    let mut c = world.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<a@client.test>", 250);
    c.ok("RCPT TO:<discard@far.example>", 250);
    c.ok("RCPT TO:<ok@far.example>", 250);
    c.ok("DATA", 354);
    c.send(message("discarded").as_bytes());
    c.expect(250, "queued as");
    c.ok("QUIT", 221);
    world.wait_lines(
        &["milter-discard: RCPT from unknown[127.0.0.1]: milter triggers DISCARD action; from=<a@client.test> to=<discard@far.example>"],
        1,
    );
    world.wait_lines(&["disconnect from unknown[127.0.0.1]"], 1);
    assert!(world.queue().is_empty(), "{:?}", world.queue());
    assert!(peer.messages().is_empty(), "{:?}", peer.messages());
}

#[test]
fn a_milter_that_dies_mid_session_tempfails_the_rest_and_queued_mail_is_kept() {
    let Some((milter, peer, world)) = setup() else {
        return;
    };
    let mut c = world.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<a@client.test>", 250);
    c.ok("RCPT TO:<ok@far.example>", 250);
    c.ok("DATA", 354);
    c.send(message("before").as_bytes());
    c.expect(250, "queued as");
    c.ok("MAIL FROM:<a@client.test>", 250);
    // The milter process exits here: milter_default_action (tempfail) stands in.
    c.cmd_expect(
        "RCPT TO:<crash@far.example>",
        451,
        "4.7.1 Service unavailable",
    );
    c.cmd_expect("RCPT TO:<ok@far.example>", 451, "4.7.1 Service unavailable");
    c.ok("RSET", 250);
    c.cmd_expect(
        "MAIL FROM:<b@client.test>",
        451,
        "4.7.1 Service unavailable",
    );
    c.ok("QUIT", 221);
    world.wait_lines(&["milter inet:127.0.0.1:", "read"], 1);
    wait_until("the message queued before", || peer.messages().len() == 1);
    assert!(peer.messages()[0].data.contains("body before"));
    world.wait_lines(&["disconnect from unknown[127.0.0.1]"], 1);
    assert!(world.queue().is_empty(), "{:?}", world.queue());
    drop(milter);
}

#[test]
fn a_milter_that_asks_for_rejected_recipients_is_told_of_them() {
    let script = r#"
@Milter.rejected_recipients
class TestMilter(Recording):
    def envrcpt(self, to, *params):
        record(self, "rcpt", to=to, macros=self.macros("{rcpt_mailer}"))
        return Milter.CONTINUE
"#;
    let restrictions = "smtpd_recipient_restrictions = \"reject_non_fqdn_recipient\"";
    let Some((milter, _peer, world)) = setup_with(script, restrictions) else {
        return;
    };
    let mut c = world.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<a@client.test>", 250);
    let refused = c.cmd("RCPT TO:<user@nodots>");
    assert_eq!(refused.code / 100, 5, "{}", refused.text());
    c.ok("RCPT TO:<ok@far.example>", 250);
    c.ok("QUIT", 221);
    let events = milter.wait_events("both recipients", |e| {
        e.iter().filter(|e| e["event"] == "rcpt").count() == 2
    });
    let rcpts: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "rcpt")
        .map(|e| {
            let mailer = e["macros"]["{rcpt_mailer}"].as_str().unwrap_or("");
            (e["to"].as_str().unwrap_or(""), mailer)
        })
        .collect();
    assert_eq!(
        rcpts,
        [("<user@nodots>", "error"), ("<ok@far.example>", "smtp")]
    );
}

#[test]
fn a_refused_connect_changes_the_greeting_and_answers_mail() {
    let script = r#"
class TestMilter(Recording):
    def connect(self, hostname, family, hostaddr):
        return Milter.REJECT
"#;
    let Some((_milter, peer, world)) = setup_with(script, "") else {
        return;
    };
    let mut c = world.client();
    c.expect(554, "ESMTP not accepting connections");
    c.ok("EHLO client.test", 250);
    c.cmd_expect("MAIL FROM:<a@client.test>", 550, "5.7.1 Command rejected");
    c.ok("QUIT", 221);
    world.wait_lines(
        &["NOQUEUE: milter-reject: CONNECT from unknown[127.0.0.1]: 550 5.7.1 Command rejected; proto=SMTP"],
        1,
    );
    world.wait_lines(&["NOQUEUE: milter-reject: MAIL from unknown[127.0.0.1]: 550 5.7.1 Command rejected; from=<a@client.test> proto=ESMTP helo=<client.test>"], 1);
    assert!(peer.messages().is_empty());
}
