//! Postfix's anvil limits per client (smtpd_client_*_rate_limit): a client past each limit
//! gets Postfix's reply and warning line, a client in smtpd_client_event_limit_exceptions
//! (by default $mynetworks) is never limited, and the counts start again after
//! anvil_rate_time_unit. Clients are 127.0.0.x source addresses on real loopback sockets.

use std::net::Ipv4Addr;

use testkit::*;

const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A long time unit, so no window can pass while a loaded machine runs the test.
const LONG_UNIT: &str = "anvil_rate_time_unit = \"1h\"\nmynetworks = [\"127.0.0.1\"]\n";

fn greeted(port: u16, source: Ipv4Addr) -> Client {
    let mut c = Client::connect_from(source, port);
    c.expect(220, "ESMTP");
    c.ok("EHLO client.test", 250);
    c
}

#[test]
fn connections_over_the_rate_get_421_and_mynetworks_is_exempt() {
    let smtp = World::started(&format!(
        "{LONG_UNIT}smtpd_client_connection_rate_limit = 2"
    ));
    for _ in 0..2 {
        greeted(smtp.port, FLOODER).ok("QUIT", 221);
    }
    let mut refused = Client::connect_from(FLOODER, smtp.port);
    refused.expect(
        421,
        "4.7.0 test.example Error: too many connections from 127.0.0.2",
    );
    assert!(refused.is_closed(), "connection left open after 421");
    smtp.env.wait_log(
        "warning: Connection rate limit exceeded: 3 from unknown[127.0.0.2] for service smtp",
        1,
    );
    for _ in 0..5 {
        greeted(smtp.port, Ipv4Addr::LOCALHOST).ok("QUIT", 221);
    }
    // swaks, a real client, from another address: its own count.
    let out = smtp.swaks(&[
        "--local-interface",
        "127.0.0.3",
        "--to",
        "root@test.example",
        "--quit-after",
        "EHLO",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn mail_and_recipients_over_their_rates_get_450_before_data() {
    let smtp = World::started(&format!(
        "{LONG_UNIT}smtpd_client_message_rate_limit = 2\nsmtpd_client_recipient_rate_limit = 3"
    ));
    let mut c = greeted(smtp.port, FLOODER);
    c.ok("MAIL FROM:<a@flood.example>", 250);
    for n in 1..=3 {
        c.ok(&format!("RCPT TO:<u{n}@test.example>"), 250);
    }
    c.cmd_expect(
        "RCPT TO:<u4@test.example>",
        450,
        "4.7.1 Error: too many recipients from 127.0.0.2",
    );
    c.ok("RSET", 250);
    c.ok("MAIL FROM:<a@flood.example>", 250);
    c.ok("RSET", 250);
    c.cmd_expect(
        "MAIL FROM:<a@flood.example>",
        450,
        "4.7.1 Error: too much mail from 127.0.0.2",
    );
    c.ok("QUIT", 221);
    smtp.env.wait_log("warning: Recipient address rate limit exceeded: 4 from unknown[127.0.0.2] for service smtp", 1);
    smtp.env.wait_log("warning: Message delivery request rate limit exceeded: 3 from unknown[127.0.0.2] for service smtp", 1);

    // The exempt client sends more than either limit, and it is delivered.
    let mut ok = greeted(smtp.port, Ipv4Addr::LOCALHOST);
    for n in 0..3 {
        ok.ok("MAIL FROM:<friend@test.example>", 250);
        for r in 0..2 {
            ok.ok(&format!("RCPT TO:<root+{n}x{r}@test.example>"), 250);
        }
        ok.ok("DATA", 354);
        ok.send(format!("Subject: legit {n}\r\n\r\nhello\r\n.\r\n").as_bytes());
        ok.expect(250, "queued as");
    }
    ok.ok("QUIT", 221);
}

#[test]
fn starttls_past_the_new_session_rate_gets_454() {
    let smtp = World::started(&format!(
        "{LONG_UNIT}smtpd_client_new_tls_session_rate_limit = 1"
    ));
    let tls = |source: &str| {
        smtp.swaks(&[
            "--local-interface",
            source,
            "--to",
            "root@test.example",
            "--tls",
            "--quit-after",
            "EHLO",
        ])
    };
    let first = tls("127.0.0.2");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let second = tls("127.0.0.2");
    let said = String::from_utf8_lossy(&second.stdout);
    assert!(
        !second.status.success(),
        "second TLS session allowed: {said}"
    );
    assert!(
        said.contains("454 4.7.0 Error: too many new TLS sessions from unknown[127.0.0.2]"),
        "{said}"
    );
    smtp.env.wait_log(
        "warning: Refusing STARTTLS request from unknown[127.0.0.2] for service smtp",
        1,
    );
    for _ in 0..2 {
        let exempt = tls("127.0.0.1");
        assert!(
            exempt.status.success(),
            "{}",
            String::from_utf8_lossy(&exempt.stdout)
        );
    }
}

#[test]
fn the_counts_start_again_after_the_time_unit() {
    let smtp = World::started(
        "anvil_rate_time_unit = \"2s\"\nmynetworks = [\"127.0.0.1\"]\nsmtpd_client_connection_rate_limit = 1",
    );
    // Connect until refused (on a loaded machine a window may pass between two connects).
    wait_until("a connection over the rate is refused", || {
        let mut c = Client::connect_from(FLOODER, smtp.port);
        let reply = c.reply();
        reply.code == 421
    });
    wait_until("the flooder is admitted again after the time unit", || {
        let mut c = Client::connect_from(FLOODER, smtp.port);
        c.reply().code == 220
    });
}

#[test]
fn a_network_counts_as_one_client_under_smtpd_client_ipv4_prefix_length() {
    // 127.0.0.1 is the only exempt address; .2, .3 and .4 are clients of one /24 here.
    let smtp = World::started(&format!(
        "{LONG_UNIT}smtpd_client_connection_count_limit = 2\nsmtpd_client_ipv4_prefix_length = 24"
    ));
    let mut a = greeted(smtp.port, FLOODER);
    let _b = greeted(smtp.port, Ipv4Addr::new(127, 0, 0, 3));
    let mut refused = Client::connect_from(Ipv4Addr::new(127, 0, 0, 4), smtp.port);
    refused.expect(
        421,
        "4.7.0 test.example Error: too many connections from 127.0.0.4",
    );
    smtp.env.wait_log(
        "warning: Connection concurrency limit exceeded: 3 from unknown[127.0.0.4] for service smtp",
        1,
    );
    // The network's count falls when a session ends (the server sees the close a moment
    // later, so the new client tries a few times).
    a.ok("QUIT", 221);
    let readmitted = (0..100).any(|_| {
        let mut c = Client::connect_from(Ipv4Addr::new(127, 0, 0, 4), smtp.port);
        let code = c.reply().code;
        if code != 220 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        code == 220
    });
    assert!(
        readmitted,
        "the /24 stayed at its limit after a session ended"
    );

    // With the default prefix length (32) each address is a client of its own.
    let each = World::started(&format!(
        "{LONG_UNIT}smtpd_client_connection_count_limit = 2"
    ));
    let _held: Vec<Client> = [2, 2, 3, 3, 4, 4]
        .into_iter()
        .map(|last| greeted(each.port, Ipv4Addr::new(127, 0, 0, last)))
        .collect();
}
