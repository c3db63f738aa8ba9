//! The conversation and its outcomes: pipelining or not, EHLO → HELO, ESMTP parameters,
//! per-recipient replies, recipient limits, connection reuse, unreachable destinations.

use envelope::OutcomeKind::{Bounced, Deferred, Sent};
use envelope::QueueId;

use super::server::{reply, Action, Behaviour, TestServer};
use super::*;

#[tokio::test]
async fn pipelined_delivery_sends_one_batch_and_transparent_body() {
    let server = TestServer::start(Behaviour::default()).await;
    let client = client(settings(25));
    let env = envelope("from@a.example", &["one@b.example", "two@b.example"]);
    let message = b"Subject: dots\n\n.leading dot\nplain\n..two\n";
    let report = deliver_all(&client, &loopback(server.port()), &env, message).await;

    assert_eq!(kinds(&report), [Sent, Sent]);
    let first = &report.outcomes[0];
    assert_eq!(first.text, "250 2.0.0 Ok: queued as Q1");
    assert_eq!((first.dsn.as_str(), first.recipient), ("2.0.0", 0));
    assert_eq!(first.relay, relay(server.port()));
    assert_eq!(report.destination_failure, None);

    let t = server.transcript();
    assert_eq!(
        t.batched_with_mail[0],
        ["RCPT TO:<one@b.example>", "RCPT TO:<two@b.example>", "DATA"],
        "MAIL, RCPTs and DATA must go out in one write"
    );
    assert_eq!(
        t.messages[0].data,
        b"Subject: dots\r\n\r\n..leading dot\r\nplain\r\n...two\r\n"
    );
    assert!(t.commands[0].starts_with("EHLO client.test"));
}

#[tokio::test]
async fn without_pipelining_each_command_waits_for_its_reply() {
    let server = TestServer::start(Behaviour::default().with_ehlo(&["8BITMIME"])).await;
    let client = client(settings(25));
    let env = envelope("from@a.example", &["one@b.example", "two@b.example"]);
    let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Sent, Sent]);
    let t = server.transcript();
    assert!(
        t.batched_with_mail[0].is_empty(),
        "{:?}",
        t.batched_with_mail
    );
    assert_eq!(t.messages[0].rcpts.len(), 2);
}

#[tokio::test]
async fn ehlo_refused_falls_back_to_helo_without_extensions() {
    let behaviour = Behaviour {
        ehlo: Err(reply("502 5.5.2 Error: command not recognized")),
        ..Behaviour::default()
    };
    let server = TestServer::start(behaviour).await;
    let client = client(settings(25));
    let env = envelope("from@a.example", &["one@b.example"]);
    let report = deliver_all(&client, &loopback(server.port()), &env, "é\n".as_bytes()).await;
    assert_eq!(kinds(&report), [Sent]);
    let t = server.transcript();
    assert!(
        t.commands[1].starts_with("HELO client.test"),
        "{:?}",
        t.commands
    );
    assert_eq!(t.messages[0].mail, "MAIL FROM:<from@a.example>");
}

#[tokio::test]
async fn esmtp_parameters_follow_what_the_server_offers() {
    let keywords = ["PIPELINING", "SIZE 100000", "8BITMIME", "DSN", "SMTPUTF8"];
    let server = TestServer::start(Behaviour::default().with_ehlo(&keywords)).await;
    let client = client(settings(25));
    let mut env = envelope("from@a.example", &["jö@b.example"]);
    env.envid = Some("env 1".into());
    env.ret = Some("HDRS".into());
    env.recipients[0].notify = Some("FAILURE,DELAY".into());
    env.recipients[0].orcpt = Some("rfc822;jö@b.example".into());
    let report = deliver_all(&client, &loopback(server.port()), &env, "é\n".as_bytes()).await;
    assert_eq!(kinds(&report), [Sent]);
    let m = &server.transcript().messages[0];
    assert_eq!(
        m.mail,
        "MAIL FROM:<from@a.example> SIZE=4 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=env+201"
    );
    assert_eq!(
        m.rcpts[0],
        "RCPT TO:<jö@b.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;j+C3+B6@b.example"
    );
}

#[tokio::test]
async fn server_size_limit_bounces_before_mail() {
    let server = TestServer::start(Behaviour::default().with_ehlo(&["SIZE 10"])).await;
    let client = client(settings(25));
    let env = envelope("from@a.example", &["one@b.example"]);
    let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Bounced]);
    assert_eq!(report.outcomes[0].dsn, "5.3.4");
    assert_eq!(
        report.outcomes[0].text,
        "message size 24 exceeds size limit 10 of server 127.0.0.1[127.0.0.1]"
    );
    assert_eq!(server.transcript().count("MAIL"), 0);
}

#[tokio::test]
async fn utf8_addresses_need_smtputf8() {
    let server = TestServer::start(Behaviour::default()).await;
    let client = client(settings(25));
    let env = envelope("from@a.example", &["jö@b.example", "jo@b.example"]);
    let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Bounced, Sent]);
    assert_eq!(report.outcomes[0].dsn, "5.6.7");
    assert_eq!(
        report.outcomes[0].text,
        "SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    );
    let utf8_sender = envelope("frö@a.example", &["jo@b.example"]);
    let report = deliver_all(&client, &loopback(server.port()), &utf8_sender, MESSAGE).await;
    assert_eq!(
        (kinds(&report), report.outcomes[0].dsn.as_str()),
        (vec![Bounced], "5.6.7")
    );
}

#[tokio::test]
async fn each_recipient_gets_its_own_reply() {
    let behaviour = Behaviour::default().with_rcpt(|address| match address {
        "busy@b.example" => reply("450 4.2.0 <busy@b.example>: Mailbox busy"),
        "gone@b.example" => {
            reply("550-5.1.1 <gone@b.example>: no such user\r\n550 5.1.1 try another")
        }
        _ => reply("250 2.1.5 Ok"),
    });
    let server = TestServer::start(behaviour).await;
    let client = client(settings(25));
    let env = envelope(
        "f@a.example",
        &["ok@b.example", "busy@b.example", "gone@b.example"],
    );
    let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Sent, Deferred, Bounced]);
    assert_eq!(report.outcomes[1].dsn, "4.2.0");
    assert_eq!(
        report.outcomes[1].text,
        "host 127.0.0.1[127.0.0.1] said: 450 4.2.0 <busy@b.example>: Mailbox busy (in reply to RCPT TO command)"
    );
    assert_eq!(report.outcomes[2].dsn, "5.1.1");
    assert_eq!(
        report.outcomes[2].text,
        "host 127.0.0.1[127.0.0.1] said: 550-5.1.1 <gone@b.example>: no such user 550 5.1.1 try another (in reply to RCPT TO command)"
    );
    assert_eq!(server.transcript().messages[0].rcpts.len(), 1);
}

#[tokio::test]
async fn refused_sender_bounces_everyone_and_resets() {
    let behaviour = Behaviour {
        mail: reply("553 5.7.1 <f@a.example>: Sender address rejected"),
        rcpt: std::sync::Arc::new(|_| reply("503 5.5.1 Error: need MAIL command")),
        data: reply("503 5.5.1 Error: need RCPT command"),
        ..Behaviour::default()
    };
    let server = TestServer::start(behaviour).await;
    let client = client(settings(25));
    let env = envelope("f@a.example", &["one@b.example", "two@b.example"]);
    let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Bounced, Bounced]);
    assert!(report.outcomes[0]
        .text
        .ends_with("Sender address rejected (in reply to MAIL FROM command)"));
    assert_eq!(server.transcript().count("RSET"), 1);
}

#[tokio::test]
async fn no_accepted_recipient_with_pipelining_still_resyncs() {
    // A sloppy server that says 354 although every RCPT was refused.
    let behaviour = Behaviour::default().with_rcpt(|_| reply("550 5.1.1 no"));
    let server = TestServer::start(behaviour).await;
    let client = client(settings(25));
    let env = envelope("f@a.example", &["one@b.example"]);
    let hop = loopback(server.port());
    let report = deliver_all(&client, &hop, &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Bounced]);
    let t = server.transcript();
    assert_eq!(
        t.messages.len(),
        1,
        "the empty message was ended with a dot"
    );
    assert!(t.messages[0].data.is_empty());
    assert_eq!(t.count("RSET"), 1);
    assert_eq!(
        client.idle_connections(),
        1,
        "the session is in step and reusable"
    );
}

#[tokio::test]
async fn end_of_data_replies_decide_sent_deferred_bounced() {
    for (answer, kind, dsn) in [
        ("451 4.3.0 try later", Deferred, "4.3.0"),
        ("554 5.7.1 spam", Bounced, "5.7.1"),
    ] {
        let server = TestServer::start(Behaviour {
            dot: reply(answer),
            ..Behaviour::default()
        })
        .await;
        let client = client(settings(25));
        let env = envelope("f@a.example", &["one@b.example"]);
        let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
        assert_eq!(
            (kinds(&report), report.outcomes[0].dsn.as_str()),
            (vec![kind], dsn)
        );
        let text =
            format!("host 127.0.0.1[127.0.0.1] said: {answer} (in reply to end of DATA command)");
        assert_eq!(report.outcomes[0].text, text);
    }
}

#[tokio::test]
async fn recipient_limit_splits_into_transactions_on_one_connection() {
    let server = TestServer::start(Behaviour::default()).await;
    let mut s = settings(25);
    s.recipient_limit = 2;
    let client = client(s);
    let rcpts = [
        "a@x.example",
        "b@x.example",
        "c@x.example",
        "d@x.example",
        "e@x.example",
    ];
    let env = envelope("f@a.example", &rcpts);
    let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Sent, Sent, Sent, Sent, Sent]);
    let t = server.transcript();
    let sizes: Vec<usize> = t.messages.iter().map(|m| m.rcpts.len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(t.connections, 1);
    assert_eq!(report.outcomes[4].text, "250 2.0.0 Ok: queued as Q3");
}

#[tokio::test]
async fn second_delivery_reuses_the_connection_after_rset() {
    let server = TestServer::start(Behaviour::default()).await;
    let client = client(settings(25));
    let hop = loopback(server.port());
    let env = envelope("f@a.example", &["one@b.example"]);
    for _ in 0..3 {
        let report = deliver_all(&client, &hop, &env, MESSAGE).await;
        assert_eq!(kinds(&report), [Sent]);
    }
    let t = server.transcript();
    assert_eq!(t.connections, 1);
    assert_eq!(t.messages.len(), 3);
    assert_eq!(t.count("RSET"), 2, "one probe before each reuse");
    // The probe opens the reused session's pipelined group: no round trip of its own.
    assert_eq!(t.batched_with_rset.len(), 2);
    for batch in &t.batched_with_rset {
        let verbs: Vec<&str> = batch.iter().map(|l| &l[..4]).collect();
        assert_eq!(verbs, ["MAIL", "RCPT", "DATA"], "{t:?}");
    }
    assert_eq!(t.count("EHLO"), 1);
    assert_eq!(client.idle_connections(), 1);
}

#[tokio::test]
async fn without_pipelining_the_probe_is_a_round_trip_of_its_own() {
    let server = TestServer::start(Behaviour::default().with_ehlo(&["8BITMIME"])).await;
    let client = client(settings(25));
    let hop = loopback(server.port());
    let env = envelope("f@a.example", &["one@b.example"]);
    for _ in 0..2 {
        assert_eq!(
            kinds(&deliver_all(&client, &hop, &env, MESSAGE).await),
            [Sent]
        );
    }
    let t = server.transcript();
    assert_eq!((t.connections, t.count("RSET")), (1, 1));
    assert_eq!(t.batched_with_rset, [Vec::<String>::new()], "{t:?}");
}

#[tokio::test]
async fn a_cached_session_refusing_its_pipelined_rset_is_left_for_a_new_one() {
    // A server that answers RSET with 421 (as one does that timed the idle session out)
    // gets no body over that session: the message goes out over a new connection, once.
    let server = TestServer::start(Behaviour {
        rset: reply("421 4.4.2 test.example Error: timeout exceeded"),
        ..Behaviour::default()
    })
    .await;
    let client = client(settings(25));
    let hop = loopback(server.port());
    let env = envelope("f@a.example", &["one@b.example", "two@b.example"]);
    for round in 0..2 {
        let report = deliver_all(&client, &hop, &env, MESSAGE).await;
        assert_eq!(kinds(&report), [Sent, Sent], "round {round}");
    }
    let t = server.transcript();
    assert_eq!(t.messages.len(), 2, "{t:?}");
    assert_eq!(t.connections, 2);
    assert_eq!(t.count("RSET"), 1);
}

#[tokio::test]
async fn a_wave_of_deliveries_as_large_as_the_concurrency_limit_reuses_every_connection() {
    // 20 deliveries at once (the destination concurrency limit), twice: the second wave
    // finds all 20 connections of the first idle. With a cache cap below the limit (16),
    // every wave closed the surplus and opened as many anew.
    let server = TestServer::start(Behaviour::default()).await;
    let client = client(settings(25));
    let hop = loopback(server.port());
    let env = envelope("f@a.example", &["one@b.example"]);
    for wave in 1..=2 {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (client, hop, env) = (client.clone(), hop.clone(), env.clone());
            tasks.spawn(async move { kinds(&deliver_all(&client, &hop, &env, MESSAGE).await) });
        }
        while let Some(done) = tasks.join_next().await {
            assert_eq!(done.unwrap(), [Sent], "wave {wave}");
        }
        assert_eq!(client.idle_connections(), 20, "wave {wave}");
    }
    let t = server.transcript();
    assert_eq!(t.messages.len(), 40);
    assert_eq!(t.connections, 20, "the second wave opened none");
}

#[tokio::test]
async fn a_cached_connection_the_server_closed_is_replaced() {
    let server = TestServer::start(Behaviour {
        close_after_message: true,
        ..Behaviour::default()
    })
    .await;
    let client = client(settings(25));
    let hop = loopback(server.port());
    let env = envelope("f@a.example", &["one@b.example"]);
    for _ in 0..2 {
        let report = deliver_all(&client, &hop, &env, MESSAGE).await;
        assert_eq!(kinds(&report), [Sent]);
    }
    assert_eq!(server.transcript().connections, 2);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_cache_time() {
    let server = TestServer::start(Behaviour::default()).await;
    let mut s = settings(25);
    s.connection_cache_time = std::time::Duration::from_millis(100);
    let client = client(s);
    let env = envelope("f@a.example", &["one@b.example"]);
    deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
    assert_eq!(client.idle_connections(), 1);
    // The cache's closer runs when the runtime gets to it (late on a loaded box): wait for
    // the QUIT it sends rather than sleeping a fixed 400 ms.
    let deadline = std::time::Instant::now() + testkit::DEADLINE;
    while server.transcript().count("QUIT") == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(client.idle_connections(), 0);
    assert_eq!(server.transcript().count("QUIT"), 1);
}

#[tokio::test]
async fn closed_port_is_a_destination_failure() {
    let port = testkit::free_port();
    let client = client(settings(25));
    let env = envelope("f@a.example", &["one@b.example", "two@b.example"]);
    let report = deliver_all(&client, &loopback(port), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Deferred, Deferred]);
    let text = format!("connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused");
    assert_eq!(report.outcomes[0].text, text);
    assert_eq!(
        (
            report.outcomes[0].dsn.as_str(),
            report.outcomes[0].relay.as_str()
        ),
        ("4.4.1", "none")
    );
    assert_eq!(report.destination_failure, Some(text));
}

#[tokio::test]
async fn greeting_refusal_defers_and_marks_the_destination() {
    let server = TestServer::start(Behaviour {
        greeting: reply("554 5.7.1 no service for you"),
        ..Behaviour::default()
    })
    .await;
    let client = client(settings(25));
    let env = envelope("f@a.example", &["one@b.example"]);
    let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Deferred]);
    assert_eq!(report.outcomes[0].dsn, "4.7.1");
    assert_eq!(
        report.outcomes[0].text,
        "host 127.0.0.1[127.0.0.1] refused to talk to me: 554 5.7.1 no service for you"
    );
    assert!(report.destination_failure.is_some());
}

#[tokio::test]
async fn only_the_requested_recipients_are_sent() {
    let server = TestServer::start(Behaviour::default()).await;
    let client = client(settings(25));
    let env = envelope(
        "f@a.example",
        &["a@x.example", "b@x.example", "c@x.example"],
    );
    let hop = loopback(server.port());
    let report = client
        .deliver(&hop, QueueId::generate(), &env, &[2, 0], MESSAGE)
        .await;
    let indexes: Vec<usize> = report.outcomes.iter().map(|o| o.recipient).collect();
    assert_eq!(indexes, [2, 0]);
    let rcpts = &server.transcript().messages[0].rcpts;
    assert_eq!(rcpts, &["RCPT TO:<c@x.example>", "RCPT TO:<a@x.example>"]);
}

#[tokio::test]
async fn delayed_replies_within_the_timeout_are_fine() {
    let server = TestServer::start(Behaviour {
        dot: Action::Delay(
            std::time::Duration::from_millis(200),
            "250 2.0.0 Ok: late".into(),
        ),
        ..Behaviour::default()
    })
    .await;
    let client = client(settings(25));
    let env = envelope("f@a.example", &["one@b.example"]);
    let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
    assert_eq!(report.outcomes[0].text, "250 2.0.0 Ok: late");
}
