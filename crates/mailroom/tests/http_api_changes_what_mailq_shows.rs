//! Issue 14, the HTTP API: what it lists is what `mailq` lists, and what it changes is what
//! `mailq` then shows — hold, release, delete by selector, flush — because it runs the same
//! admin operations as postsuper and postqueue; suspend / resume are `postqueue -S/-U`'s
//! levers. Listing pages follow a cursor and see every
//! message once; message detail shows headers, per-recipient state and the next retry.

use testkit::*;

/// Long enough that nothing is retried on its own while a test runs.
const BACKOFF: &str = "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n";

/// A daemon relaying to a dead port, with `far` messages to far.example and one to
/// other.example, all deferred.
fn deferred_world(api: &HttpApi, far: usize) -> (World, u16) {
    let port = free_port(); // nothing listens: every attempt is deferred
    let config = format!("{BACKOFF}{}", api.config());
    let world = World::builder().smtp().peer(&port).config(&config).start();
    for i in 0..far {
        world.submit(
            "sender@test.example",
            &["someone@far.example"],
            &message(&format!("far-{i}")),
        );
    }
    world.submit(
        "sender@test.example",
        &["else@other.example"],
        &message("other"),
    );
    world.wait_lines(&["status=deferred"], far + 1);
    (world, port)
}

fn ids(reply: &HttpReply) -> Vec<String> {
    let page = reply.json();
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["queue_id"].as_str().expect("queue_id").to_string())
        .collect()
}

fn state_in_mailq(world: &World, id: &str) -> Option<String> {
    world
        .queue()
        .into_iter()
        .find(|(_, qid, _)| qid == id)
        .map(|(queue, _, _)| queue)
}

#[test]
fn hold_release_and_delete_through_the_api_are_what_mailq_shows() {
    let api = HttpApi::new();
    let (world, _port) = deferred_world(&api, 3);
    let listed = api.get("/api/v1/queue?queue=deferred&domain=far.example");
    assert_eq!(listed.status, 200, "{}", listed.body);
    let far = ids(&listed);
    assert_eq!(far.len(), 3, "{}", listed.body);

    let held = api.post(&format!("/api/v1/queue/{}/hold", far[0]), None);
    assert_eq!(
        (held.status, held.json()["count"].as_u64()),
        (200, Some(1)),
        "{}",
        held.body
    );
    assert_eq!(state_in_mailq(&world, &far[0]).as_deref(), Some("hold"));
    assert_eq!(
        ids(&api.get("/api/v1/queue?queue=hold")),
        vec![far[0].clone()]
    );

    let released = api.post("/api/v1/actions/release", Some(r#"{"all": true}"#));
    assert_eq!(
        released.json()["count"].as_u64(),
        Some(1),
        "{}",
        released.body
    );
    assert_eq!(state_in_mailq(&world, &far[0]).as_deref(), Some("deferred"));

    let deleted = api.post(
        "/api/v1/actions/delete",
        Some(r#"{"domain": "other.example"}"#),
    );
    assert_eq!(
        deleted.json()["count"].as_u64(),
        Some(1),
        "{}",
        deleted.body
    );
    let left: Vec<String> = world.queue().into_iter().map(|(_, id, _)| id).collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(far.iter().all(|id| left.contains(id)), "{left:?}");
    assert_eq!(
        world.lines_with(&["postsuper", "Deleted: 1 message"]).len(),
        1
    );

    let gone = api.post("/api/v1/queue/0000000000000000/hold", None);
    assert_eq!(gone.status, 404, "{}", gone.body);
    let nothing_named = api.post("/api/v1/actions/delete", Some("{}"));
    assert_eq!(nothing_named.status, 400, "{}", nothing_named.body);
    assert_eq!(world.queue().len(), 3, "an empty selector deleted nothing");
}

#[test]
fn listing_pages_follow_the_cursor_and_see_every_message_once() {
    let api = HttpApi::new();
    let (world, _port) = deferred_world(&api, 4);
    let mut seen = Vec::new();
    let mut path = "/api/v1/queue?limit=2".to_string();
    let mut pages = 0;
    loop {
        let reply = api.get(&path);
        assert_eq!(reply.status, 200, "{}", reply.body);
        pages += 1;
        seen.extend(ids(&reply));
        match reply.json()["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/queue?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10, "the cursor does not advance: {seen:?}");
    }
    let mut in_mailq: Vec<String> = world.queue().into_iter().map(|(_, id, _)| id).collect();
    in_mailq.sort();
    assert_eq!(seen, in_mailq, "pages in queue-ID order, each message once");
    assert_eq!(pages, 3);
}

#[test]
fn message_detail_shows_headers_recipient_state_and_the_next_retry() {
    let api = HttpApi::new();
    let (world, _port) = deferred_world(&api, 1);
    let id = ids(&api.get("/api/v1/queue?domain=far.example"))[0].clone();
    let without_token = api.get(&format!("/api/v1/queue/{id}"));
    assert_eq!(
        without_token.status, 401,
        "headers are contents: the token is needed"
    );
    let detail = api.get_with_token(&format!("/api/v1/queue/{id}"));
    assert_eq!(detail.status, 200, "{}", detail.body);
    let d = detail.json();
    let headers = d["headers"].as_array().expect("headers");
    assert!(
        headers.iter().any(|h| h[0] == "Subject" && h[1] == "far-0"),
        "{headers:?}"
    );
    let rcpt = &d["envelope_recipients"][0];
    assert_eq!(rcpt["address"], "someone@far.example");
    assert_eq!(rcpt["state"], "deferred");
    let reason = rcpt["reason"].as_str().unwrap_or_default();
    let logged = world.lines_with(&[&id, "status=deferred"]);
    assert!(
        !reason.is_empty() && logged[0].contains(reason),
        "{reason:?} vs {logged:?}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let next = d["next_retry"]
        .as_u64()
        .expect("a deferred message has a next retry");
    assert!(next > now + 1800, "backoff is an hour: {next} vs now {now}");
}

#[test]
fn flush_through_the_api_sends_deferred_mail_at_once() {
    let api = HttpApi::new();
    let (world, port) = deferred_world(&api, 2);
    let sink = Sink::start_on(&world.env.root, port, &[]);
    let flushed = api.post("/api/v1/actions/flush", Some(r#"{"all": true}"#));
    assert_eq!(flushed.status, 200, "{}", flushed.body);
    assert_eq!(flushed.json()["count"].as_u64(), Some(3));
    wait_until("the flushed mail at the sink", || sink.messages() >= 3);
    world.env.wait_queue_empty();
    assert!(api.get("/api/v1/queue").json()["messages"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// Suspend and resume through the API are the CLI's levers: mailq shows the operator's
/// reason, no connection is opened, `/metrics` and the listing show the suspension, and a
/// resume delivers at once. Without the token, nothing is suspended.
#[test]
fn a_destination_suspended_through_the_api_keeps_its_mail_until_resumed() {
    let api = HttpApi::new();
    let port = free_port();
    let config = format!("{BACKOFF}{}", api.config());
    let mut world = World::builder().smtp().peer(&port).config(&config).build();
    let sink = Sink::start_on(&world.env.root, port, &[]);
    world.start();

    let refused = http_request(
        api.port,
        "POST",
        "/api/v1/destinations/example.net/suspend",
        None,
        None,
    );
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(!world.run_ok(&["suspend", "--list"]).contains("example.net"));

    let made = api.post(
        "/api/v1/destinations/Example.NET/suspend",
        Some(r#"{"reason": "their MX asked us to wait"}"#),
    );
    assert_eq!(made.status, 200, "{}", made.body);
    assert_eq!(made.json()["destination"], "example.net", "{}", made.body);
    let bad = api.post("/api/v1/destinations/a%20b/suspend", None);
    assert_eq!(bad.status, 400, "{}", bad.body);

    world.submit(
        "s@test.example",
        &["a@example.net"],
        "Subject: one\r\n\r\nbody\r\n",
    );
    world.wait_lines(
        &[
            "held in the queue: delivery suspended by the operator",
            "their MX asked us to wait",
        ],
        1,
    );
    assert_eq!(
        sink.sessions(),
        0,
        "no connection for a suspended destination"
    );
    let mailq = world.env.mailq();
    assert!(
        mailq.contains(
            "delivery suspended by the operator until resumed: their MX asked us to wait"
        ),
        "{mailq}"
    );
    let listed = api.get("/api/v1/destinations/suspended");
    assert_eq!(
        listed.json()["suspended"][0]["destination"],
        "example.net",
        "{}",
        listed.body
    );
    let cli = world.run_ok(&["suspend", "--list", "--json"]);
    assert!(
        cli.contains("example.net"),
        "the CLI sees the API's suspension: {cli}"
    );
    let metrics = api.get("/metrics").body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mailroom_destination_state{")
                && l.contains("destination=\"example.net\"")
                && l.contains("state=\"suspended\"")),
        "{metrics}"
    );

    let resumed = api.post("/api/v1/destinations/example.net/resume", None);
    assert_eq!(resumed.json()["resumed"], true, "{}", resumed.body);
    world.wait_lines(&["to=<a@example.net>", "status=sent"], 1);
    wait_until("the sink to count it", || sink.messages() == 1);
    let again = api.post("/api/v1/destinations/example.net/resume", None);
    assert_eq!(again.json()["resumed"], false, "{}", again.body);
}
