//! What `smtpd_milters` hear besides the commands of a transaction, as Postfix tells them,
//! with a real milter library as the peer (a pymilter script on Debian's python3-milter,
//! Sendmail's libmilter under it):
//! * `SMFIC_CONNECT` carries the client's real source port, its address, and for a client
//!   without a name the host name `[address]` (Postfix's Sendmail form of `unknown`);
//! * an unknown or unimplemented SMTP command goes to the milter (`SMFIC_UNKNOWN`, the
//!   whole line): its 4xx replaces mailroom's 500/502, its 5xx does not (Postfix keeps its
//!   own reply then);
//! * a bare `RCPT TO:<postmaster>` is reported too, and a milter may refuse it;
//! * after a milter's 4xx at connect, STARTTLS and AUTH get `454 4.3.0 Try again later`
//!   (Postfix's Sendmail compatibility), VRFY the milter's own reply.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use testkit::*;

fn setup(script: &str) -> Option<(PyMilter, World)> {
    if !PyMilter::available() {
        eprintln!(
            "skipped: Debian's python3-milter is not installed (scripts/test.sh installs it)"
        );
        return None;
    }
    let mut world = World::builder().smtp().build();
    let milter = PyMilter::start(&world.env.root, script);
    world.configure(&format!(
        "smtpd_milters = [\"inet:127.0.0.1:{}\"]\n",
        milter.port
    ));
    world.start();
    Some((milter, world))
}

fn events_named(events: &[Value], name: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["event"] == name)
        .cloned()
        .collect()
}

#[test]
fn connect_tells_the_milter_the_clients_real_port_and_address() {
    let script = r#"
class TestMilter(Recording):
    def connect(self, hostname, family, hostaddr):
        record(self, "connect", host=hostname, family=int(family),
               addr=hostaddr[0], port=hostaddr[1])
        return Milter.CONTINUE
"#;
    let Some((milter, world)) = setup(script) else {
        return;
    };
    // A plain socket, so the test knows its own source port.
    let stream = TcpStream::connect(local(world.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let port = stream.local_addr().unwrap().port();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");
    (&stream).write_all(b"QUIT\r\n").unwrap();
    let mut bye = String::new();
    reader.read_line(&mut bye).unwrap();
    assert!(bye.starts_with("221 "), "{bye}");

    let events = milter.wait_events("the connect", |e| !e.is_empty());
    let connect = &events_named(&events, "connect")[0];
    assert_eq!(connect["port"], port, "{connect}");
    assert_eq!(connect["addr"], "127.0.0.1", "{connect}");
    // libmilter's family for SMFIA_INET is AF_INET.
    assert_eq!(connect["family"], 2, "{connect}");
    // No reverse name here: Postfix sends `[address]` for its `unknown`.
    assert_eq!(connect["host"], "[127.0.0.1]", "{connect}");
}

#[test]
fn unknown_commands_go_to_the_milter_and_its_tempfail_replaces_the_reply() {
    let script = r#"
class TestMilter(Recording):
    def unknown(self, cmd):
        cmd = cmd.decode() if isinstance(cmd, bytes) else cmd
        record(self, "unknown", cmd=cmd)
        if cmd.startswith("XTEMP") or cmd.startswith("EXPN"):
            self.setreply("450", "4.7.0", "Not now, says the milter")
            return Milter.TEMPFAIL
        self.setreply("550", "5.7.1", "Never, says the milter")
        return Milter.REJECT
"#;
    let Some((milter, world)) = setup(script) else {
        return;
    };
    let mut c = world.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.cmd_expect("XTEMP some args", 450, "4.7.0 Not now, says the milter");
    // Postfix does not let a milter's 5xx replace its own reply.
    c.cmd_expect("XREJ other", 500, "5.5.2 Error: command not recognized");
    // Unimplemented (502) is reported the same way.
    c.cmd_expect("EXPN root", 450, "4.7.0 Not now, says the milter");
    // A syntax error in a known command is not an unknown command.
    c.cmd_expect("MAIL FROM:<bad", 501, "");
    c.ok("QUIT", 221);
    let events = milter.wait_events("three unknown commands", |e| {
        events_named(e, "unknown").len() == 3
    });
    let lines: Vec<String> = events_named(&events, "unknown")
        .iter()
        .map(|e| e["cmd"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(lines, ["XTEMP some args", "XREJ other", "EXPN root"]);
}

#[test]
fn a_bare_postmaster_recipient_goes_to_the_milter_which_may_refuse_it() {
    let script = r#"
class TestMilter(Recording):
    def envrcpt(self, to, *params):
        record(self, "rcpt", to=to, addr=self.getsymval("{rcpt_addr}"))
        if to == "<postmaster>":
            self.setreply("550", "5.7.1", "Not even the postmaster")
            return Milter.REJECT
        return Milter.CONTINUE
"#;
    let Some((milter, world)) = setup(script) else {
        return;
    };
    let mut c = world.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<a@client.test>", 250);
    c.cmd_expect("RCPT TO:<postmaster>", 550, "5.7.1 Not even the postmaster");
    // Nothing was taken: DATA has no recipient.
    let data = c.cmd("DATA");
    assert_eq!(data.code / 100, 5, "{}", data.text());
    c.ok("QUIT", 221);
    let events = milter.wait_events("the RCPT", |e| !events_named(e, "rcpt").is_empty());
    let rcpt = &events_named(&events, "rcpt")[0];
    assert_eq!(rcpt["to"], "<postmaster>", "{rcpt}");
    assert!(
        rcpt["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("postmaster@")),
        "{rcpt}"
    );
    world.wait_lines(
        &["milter-reject: RCPT from unknown[127.0.0.1]: 550 5.7.1 Not even the postmaster; from=<a@client.test> to=<postmaster@"],
        1,
    );
}

#[test]
fn after_a_tempfail_at_connect_starttls_and_auth_get_454_and_vrfy_the_milters_reply() {
    let script = r#"
class TestMilter(Recording):
    def connect(self, hostname, family, hostaddr):
        return Milter.TEMPFAIL
"#;
    let Some((_milter, world)) = setup(script) else {
        return;
    };
    let mut c = world.client();
    // A 4xx at connect keeps the 220 (Postfix); the refusal stands.
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.cmd_expect("STARTTLS", 454, "4.3.0 Try again later");
    c.cmd_expect(
        "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
        454,
        "4.3.0 Try again later",
    );
    c.cmd_expect("VRFY someone", 451, "4.7.1 Service unavailable");
    c.cmd_expect(
        "MAIL FROM:<a@client.test>",
        451,
        "4.7.1 Service unavailable",
    );
    c.ok("QUIT", 221);
}
