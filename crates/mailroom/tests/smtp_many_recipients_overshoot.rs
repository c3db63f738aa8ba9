//! `smtpd_recipient_overshoot_limit` (Postfix, 1000): a client that pipelines more
//! recipients than `smtpd_recipient_limit` (1000) gets 452 for the excess, which does not
//! count towards `smtpd_hard_error_limit`, so the transaction completes and the client can
//! send the rest in the next one. Before, the 21st excess recipient ended the session with
//! `421 too many errors`.

use testkit::*;

fn pipelined_rcpts(range: std::ops::Range<usize>) -> String {
    range
        .map(|n| format!("RCPT TO:<user{n}@example.net>\r\n"))
        .collect()
}

#[test]
fn fifteen_hundred_pipelined_recipients_complete_in_two_transactions() {
    // Relayed (the client is in mynetworks) to a relayhost that is not there: the mail
    // waits in the queue; only the SMTP dialogue matters here.
    let dead = free_port();
    let smtp = World::builder().smtp().peer(&dead).start();
    let mut c = smtp.client();
    c.expect(220, "");
    c.ok("EHLO bulk.example", 250);
    c.send(b"MAIL FROM:<list@example.org>\r\n");
    c.send(pipelined_rcpts(0..1500).as_bytes());
    c.send(b"DATA\r\n");
    c.expect(250, "2.1.0");
    let (mut accepted, mut deferred) = (0, Vec::new());
    for n in 0..1500 {
        let reply = c.reply();
        match reply.code {
            250 => accepted += 1,
            452 => deferred.push(n),
            _ => panic!("recipient {n}: {}", reply.text()),
        }
    }
    assert_eq!(accepted, 1000);
    assert_eq!(deferred.len(), 500);
    assert_eq!(deferred[0], 1000, "the excess is the tail");
    c.expect(354, "");
    c.send(b"Subject: first half\r\n\r\nhi\r\n.\r\n");
    c.expect(250, "queued as");
    // The rest, in a second transaction on the same session.
    c.send(b"MAIL FROM:<list@example.org>\r\n");
    c.send(pipelined_rcpts(1000..1500).as_bytes());
    c.send(b"DATA\r\n");
    c.expect(250, "2.1.0");
    for n in 1000..1500 {
        let reply = c.reply();
        assert_eq!(reply.code, 250, "recipient {n}: {}", reply.text());
    }
    c.expect(354, "");
    c.send(b"Subject: second half\r\n\r\nhi\r\n.\r\n");
    c.expect(250, "queued as");
    c.ok("QUIT", 221);
    assert!(smtp.env.log_lines("too many errors").is_empty());
    smtp.env.wait_log(
        "disconnect from unknown[127.0.0.1] ehlo=1 mail=2 rcpt=1500/2000 data=2 quit=1",
        1,
    );
}
