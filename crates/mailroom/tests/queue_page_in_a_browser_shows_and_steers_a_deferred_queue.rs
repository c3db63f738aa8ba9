//! Issue 14 part 3: the queue page at `/`, in headless Chromium (Debian's, driven by
//! Playwright): with a real deferred queue (a next hop answering 451 to every recipient),
//! the page filters the list by domain, opens a message and holds it with its button, and
//! `postqueue -j` agrees; then the page releases it and `postqueue -j` agrees again; then
//! it suspends a destination with its form and resumes it with its button, and `mailroom
//! suspend --list` agrees each time.
//!
//! The queue's texts are attacker-controlled and the page shows them: the subject carries
//! a `<script>` and the remote server's 451 text an `<img onerror>`. The page must show
//! them as text and run neither (the script checks `window.pwned`, the page's scripts and
//! images, and that no dialog opened).

use testkit::*;

const BACKOFF: &str = "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n";
const SUBJECT: &str = "<script>window.pwned = 1; alert(1)</script><b>invoice</b>";
const REPLY: &str = "451 4.7.1 <img src=x onerror=\"window.pwned=2;alert(2)\"> try again later";

#[test]
fn queue_page_holds_releases_suspends_and_resumes_and_the_cli_agrees() {
    let api = HttpApi::new();
    let peer = Peer::start_with(OnConnect::Greet, rcpt_reply(REPLY));
    let world = World::builder()
        .smtp()
        .peer(&peer)
        .config(&format!("{BACKOFF}{}", api.config()))
        .start();
    let slow = ["a", "b", "c"].map(|u| format!("{u}@slow.example"));
    for (i, to) in slow.iter().enumerate() {
        let subject = if i == 1 {
            SUBJECT.to_string()
        } else {
            format!("slow-{i}")
        };
        world.submit("sender@test.example", &[to], &message(&subject));
    }
    for i in 0..2 {
        let to = format!("x{i}@other.example");
        world.submit(
            "sender@test.example",
            &[&to],
            &message(&format!("other-{i}")),
        );
    }
    world.wait_lines(&["status=deferred"], 5);
    // Logged, and out of the active set too (the counts below are exact).
    wait_until("five messages in the deferred queue", || {
        world.queue().iter().filter(|m| m.0 == "deferred").count() == 5
    });
    let target = world
        .queue()
        .into_iter()
        .find(|(_, _, rcpts)| rcpts == &[slow[1].clone()])
        .expect("the message with the markup subject is queued")
        .1;

    page_summaries_count_the_queue(&api);

    let url = format!("http://127.0.0.1:{}/", api.port);
    let run = |mode: &str| {
        browser::run_script(
            "queue-page.js",
            &[
                ("PAGE_URL", &url),
                ("TOKEN", &api.token),
                ("MODE", mode),
                ("ID", &target),
                ("DOMAIN", "slow.example"),
                ("EXPECT", "3"),
                ("SUBJECT", SUBJECT),
                ("DEST", "other.example"),
                ("REASON", "their MX is <b>moving</b>"),
            ],
        )
    };
    let Some(out) = run("hold") else {
        return;
    };
    assert_script_ok(&out, "hold");
    let state = |id: &str| world.queue().into_iter().find(|m| m.1 == id).map(|m| m.0);
    assert_eq!(
        state(&target).as_deref(),
        Some("hold"),
        "{:?}",
        world.queue()
    );
    let others: Vec<_> = world
        .queue()
        .into_iter()
        .filter(|m| m.1 != target)
        .collect();
    assert!(others.iter().all(|m| m.0 == "deferred"), "{others:?}");
    assert_eq!(others.len(), 4);

    let out = run("release").expect("the browser ran before");
    assert_script_ok(&out, "release");
    let released = state(&target);
    assert!(
        matches!(
            released.as_deref(),
            Some("deferred" | "active" | "incoming")
        ),
        "released, not held: {released:?}"
    );

    assert_script_ok(&run("suspend").expect("browser"), "suspend");
    let listed = world.run_ok(&["suspend", "--list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    let suspended = list
        .as_array()
        .or_else(|| list["suspended"].as_array())
        .unwrap_or_else(|| panic!("a list: {listed}"))
        .clone();
    assert_eq!(suspended.len(), 1, "{listed}");
    assert_eq!(suspended[0]["destination"], "other.example", "{listed}");
    assert_eq!(
        suspended[0]["reason"], "their MX is <b>moving</b>",
        "{listed}"
    );
    assert!(suspended[0]["until"].is_u64(), "for 2h: {listed}");

    assert_script_ok(&run("resume").expect("browser"), "resume");
    let listed = world.run_ok(&["suspend", "--list", "--json"]);
    assert!(!listed.contains("other.example"), "resumed: {listed}");
}

/// What the page draws from: the counts now, qshape's matrix, the reasons with their
/// destinations (open to loopback without the token, as the listing is).
fn page_summaries_count_the_queue(api: &HttpApi) {
    let history = api.get("/api/v1/history");
    assert_eq!(history.status, 200, "{}", history.body);
    assert_eq!(history.json()["now"]["deferred"], 5, "{}", history.body);
    assert_eq!(history.json()["now"]["hold"], 0, "{}", history.body);

    let shape = api.get("/api/v1/qshape?queue=deferred").json();
    let rows = shape["rows"].as_array().expect("rows");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["domain"] == name)
            .map(|r| r["counts"][0].clone())
    };
    assert_eq!(row("TOTAL"), Some(5.into()), "{shape}");
    assert_eq!(row("slow.example"), Some(3.into()), "{shape}");
    assert_eq!(row("other.example"), Some(2.into()), "{shape}");
    assert_eq!(shape["domains"], 2, "{shape}");
    let senders = api.get("/api/v1/qshape?queue=deferred&senders=true").json();
    assert_eq!(senders["rows"][1]["domain"], "test.example", "{senders}");
    assert_eq!(api.get("/api/v1/qshape?tick=0").status, 400);

    let reasons = api.get("/api/v1/reasons").json();
    let list = reasons["reasons"].as_array().expect("reasons");
    assert_eq!(list.len(), 1, "{reasons}");
    assert!(
        list[0]["reason"]
            .as_str()
            .unwrap()
            .contains("try again later"),
        "{reasons}"
    );
    assert_eq!(list[0]["recipients"], 5, "{reasons}");
    let destinations = serde_json::json!([["slow.example", 3], ["other.example", 2]]);
    assert_eq!(list[0]["destinations"], destinations, "{reasons}");
}

fn assert_script_ok(out: &std::process::Output, mode: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().last() == Some("ok"),
        "the queue page script ({mode}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
