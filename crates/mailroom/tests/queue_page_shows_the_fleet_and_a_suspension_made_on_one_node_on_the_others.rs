//! Issue 16 part 3: the queue page shows the fleet. Two nodes sharing a real redis-server
//! (testkit's fleet: each in a network namespace of its own where it can, so the test,
//! its browser and the other node reach its API remotely, with the fleet's token; on
//! loopback addresses the listings are open to them), node1 holding three deferred
//! messages (their destination's port is closed), node2 none:
//!
//! * `GET /api/v1/fleet` on node2 lists both nodes with the counts `postqueue -j` gives
//!   on each, the live nodes' totals, their API addresses, Redis answering, and the same
//!   nodes and counts as `mailroom fleet status --json`; every property it sends is in
//!   the OpenAPI document.
//! * node1's page (headless Chromium, Playwright) shows both rows, live, with those
//!   counts, the total and a link to each node's own page; a suspension made with its
//!   form reaches node2 through Redis: `mailroom suspend --list` on node2 lists it, and
//!   node2's page shows it made on node1 (its reason, which carries markup, as text).
//! * node2 killed goes stale within its heartbeat expiry (the API says so within
//!   `LIVE_SECONDS` and a little, not before), and node1's page marks it stale.
//! * Redis killed: node1's API says Redis does not answer, that it applies its share of
//!   the limits, and shows the last status it read.
//!
//! And a node alone answers `{"fleet": false}` and its page shows no Fleet panel.

use ::fleet::status::LIVE_SECONDS;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use testkit::fleet::Fleet;
use testkit::*;

const BACKOFF: &str = "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n";
const DEST: &str = "paused.example";
const REASON: &str = "MX move <b>tonight</b> <img src=x onerror=\"window.pwned=1\">";

#[test]
fn fleet_panel_lists_both_nodes_shares_a_suspension_and_marks_a_killed_node_stale() {
    let dir = tempfile::tempdir().expect("temp dir");
    let transport = dir.path().join("transport");
    let closed = free_port();
    std::fs::write(
        &transport,
        format!("slow.example smtp:[127.0.0.1]:{closed}\n"),
    )
    .expect("transport map");
    let extra = format!("{BACKOFF}transport_maps = [\"{}\"]\n", transport.display());
    let mut fleet = Fleet::start(2, &[], &extra);
    fleet.inject(0, 3, "someone@slow.example");
    wait_until("three deferred messages on node1", || {
        let queue = fleet.nodes[0].queue();
        queue.len() == 3 && queue.iter().all(|m| m.0 == "deferred")
    });
    assert!(fleet.nodes[1].queue().is_empty());

    let view = the_api_shows_both_nodes_and_their_counts(&fleet);
    let page: Vec<String> = (0..2)
        .map(|i| format!("http://{}/", fleet.http(i)))
        .collect();
    let nodes = json!([
        { "name": "node1", "deferred": 3, "link": page[0] },
        { "name": "node2", "deferred": 0, "link": page[1] },
    ]);
    let nodes = nodes.to_string();
    let Some(out) = browser::run_script(
        "fleet-page.js",
        &with_read_token(
            &fleet,
            &[
                ("PAGE_URL", &page[0]),
                ("MODE", "nodes"),
                ("NODES", &nodes),
                ("TOTAL", &view["totals"]["deferred"].to_string()),
                ("TOKEN", &fleet.token),
                ("DEST", DEST),
                ("REASON", REASON),
                ("ME", "node1"),
            ],
        ),
    ) else {
        return;
    };
    assert_script_ok(&out, "nodes");

    the_suspension_reaches_node2(&fleet);
    let out = browser::run_script(
        "fleet-page.js",
        &with_read_token(
            &fleet,
            &[
                ("PAGE_URL", &page[1]),
                ("MODE", "suspended"),
                ("DEST", DEST),
                ("REASON", REASON),
                ("SETBY", "node1"),
            ],
        ),
    );
    assert_script_ok(&out.expect("the browser ran before"), "suspended");

    // How long node2 has been silent just before the kill: the least time it may then take
    // to go stale (whole seconds, so one less).
    let asked = Instant::now();
    let before = fleet_view(&fleet, 0);
    assert_eq!(before["nodes"][1]["live"], true, "{before}");
    let silent = before["nodes"][1]["seen_seconds_ago"]
        .as_u64()
        .expect("age");
    let killed = Instant::now();
    fleet.nodes[1].daemon.take().expect("node2 runs").kill9();
    let mut last = Value::Null;
    let stale = poll_for(DEADLINE, || {
        last = fleet_view(&fleet, 0);
        last["nodes"][1]["live"] == false
    });
    let took = killed.elapsed();
    assert!(stale, "node2 never went stale: {last}");
    let least = Duration::from_secs(LIVE_SECONDS.saturating_sub(silent + 1));
    assert!(
        asked.elapsed() >= least,
        "node2 went stale before its heartbeat expired (silent {silent} s, then {:?}): {last}",
        asked.elapsed()
    );
    let expiry = scaled_by_load(Duration::from_secs(LIVE_SECONDS + 3));
    assert!(
        took <= expiry,
        "node2 went stale {took:?} after it was killed (heartbeat expiry {LIVE_SECONDS} s): {last}"
    );
    assert_eq!(last["nodes"][0]["live"], true, "{last}");
    let out = browser::run_script(
        "fleet-page.js",
        &with_read_token(
            &fleet,
            &[
                ("PAGE_URL", &page[0]),
                ("MODE", "stale"),
                ("STALE", "node2"),
                ("LIVE", "node1"),
            ],
        ),
    );
    assert_script_ok(&out.expect("the browser ran before"), "stale");
    redis_away_is_said_with_the_last_status(&mut fleet);
}

/// Redis killed: node1's view says it does not answer, that the node applies its share of
/// the limits, and still shows the nodes Redis listed last, with their age.
fn redis_away_is_said_with_the_last_status(fleet: &mut Fleet) {
    wait_until("node1's heartbeat to count itself alone", || {
        fleet_view(fleet, 0)["nodes"][0]["fleet_nodes"] == 1
    });
    fleet.redis.kill();
    let mut view = Value::Null;
    wait_until("node1 to say Redis is away", || {
        view = fleet_view(fleet, 0);
        view["redis"]["reachable"] == false && view["redis"]["limits"] == "local share"
    });
    let redis = &view["redis"];
    assert!(
        redis["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{view}"
    );
    assert_eq!(redis["fallback_nodes"], 1, "node2 was gone: {view}");
    assert!(redis["status_age_seconds"].is_u64(), "{view}");
    let names: Vec<&str> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node1", "node2"], "the last status read: {view}");
}

#[test]
fn a_node_alone_answers_not_in_a_fleet_and_its_page_shows_no_fleet_panel() {
    let api = HttpApi::new();
    let _world = World::builder().smtp().config(&api.config()).start();
    let answer = api.get("/api/v1/fleet");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json(), json!({ "fleet": false }));
    let url = format!("http://127.0.0.1:{}/", api.port);
    let Some(out) = browser::run_script("fleet-page.js", &[("PAGE_URL", &url), ("MODE", "single")])
    else {
        return;
    };
    assert_script_ok(&out, "single");
}

/// The script's variables, and `READ_TOKEN` (entered before anything is read) when the
/// nodes' listings need the token from here.
fn with_read_token<'a>(fleet: &'a Fleet, vars: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let token = fleet.listing_token().map(|t| ("READ_TOKEN", t));
    vars.iter().copied().chain(token).collect()
}

/// `GET /api/v1/fleet` of node `i`: without a token from loopback (open there, like the
/// listing), with the fleet's token from another namespace.
fn fleet_view(fleet: &Fleet, i: usize) -> Value {
    let token = fleet.listing_token();
    let answer = http_request_at(&fleet.http(i), "GET", "/api/v1/fleet", token, None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

/// Node2's view, once node1's heartbeat counts its three deferred messages: both nodes,
/// their counts and addresses, the totals, as `fleet status --json` has them too.
fn the_api_shows_both_nodes_and_their_counts(fleet: &Fleet) -> Value {
    let mut view = Value::Null;
    wait_until(
        "node1's heartbeat to count its three deferred messages",
        || {
            view = fleet_view(fleet, 1);
            let queues = &view["nodes"][0]["queues"];
            queues["deferred"] == 3 && queues["active"] == 0 && queues["incoming"] == 0
        },
    );
    assert_eq!(view["fleet"], true, "{view}");
    assert_eq!(view["node"], "node2", "{view}");
    let redis = &view["redis"];
    assert_eq!(redis["reachable"], true, "{view}");
    assert_eq!(redis["limits"], "shared", "{view}");
    assert_eq!(redis["fallback_nodes"], 2, "{view}");
    assert_eq!(redis["status_age_seconds"], 0, "{view}");
    let nodes = view["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{view}");
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node["name"], format!("node{}", i + 1), "{view}");
        assert_eq!(node["api"], format!("http://{}", fleet.http(i)), "{view}");
        assert_eq!(node["live"], true, "{view}");
    }
    let node2 = &nodes[1]["queues"];
    for queue in ["incoming", "active", "deferred", "hold"] {
        assert_eq!(node2[queue], 0, "node2 has no mail: {view}");
    }
    let total = |q: &str| {
        nodes
            .iter()
            .map(|n| n["queues"][q].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(view["totals"]["deferred"], total("deferred"), "{view}");
    assert_eq!(view["totals"]["deferred"], 3, "{view}");

    let cli: Value =
        serde_json::from_str(&fleet.nodes[0].run_ok(&["fleet", "status", "--json"])).unwrap();
    let of = |v: &Value| -> Vec<(Value, Value)> {
        let nodes = v["nodes"].as_array().unwrap().iter();
        nodes
            .map(|n| (n["name"].clone(), n["queues"].clone()))
            .collect()
    };
    assert_eq!(of(&cli), of(&view), "the API and fleet status agree");
    assert_eq!(cli["totals"], view["totals"]);
    documented(fleet, &view);
    view
}

/// Every property of the answer is in the OpenAPI document, and the document's required
/// properties are all there (schemathesis checks the API of a node alone).
fn documented(fleet: &Fleet, view: &Value) {
    let answer = http_request_at(&fleet.http(1), "GET", "/api/v1/openapi.json", None, None);
    let doc = answer.json();
    let schemas = &doc["components"]["schemas"];
    let check = |value: &Value, schema: &Value, what: &str| {
        let properties = schema["properties"].as_object().expect("properties");
        for key in value.as_object().expect("an object").keys() {
            assert!(
                properties.contains_key(key),
                "{what}.{key} is not documented"
            );
        }
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap();
            assert!(
                value.get(key).is_some(),
                "{what}.{key} is required: {value}"
            );
        }
    };
    let fleet_schema = &schemas["Fleet"];
    check(view, fleet_schema, "Fleet");
    for key in fleet_schema["properties"].as_object().unwrap().keys() {
        assert!(view.get(key).is_some(), "in a fleet, {key} is sent: {view}");
    }
    check(
        &view["redis"],
        &fleet_schema["properties"]["redis"],
        "redis",
    );
    check(&view["nodes"][0], &schemas["FleetNode"], "FleetNode");
}

/// `mailroom suspend --list` on node2 lists what node1's page suspended, and `fleet
/// status` names node1 as where it was made.
fn the_suspension_reaches_node2(fleet: &Fleet) {
    let mut listed = String::new();
    wait_until("node2 to list the suspension made on node1's page", || {
        listed = fleet.nodes[1].run_ok(&["suspend", "--list", "--json"]);
        listed.contains(DEST)
    });
    let list: Value = serde_json::from_str(&listed).expect("JSON");
    let list = list
        .as_array()
        .or_else(|| list["suspended"].as_array())
        .unwrap_or_else(|| panic!("a list: {listed}"))
        .clone();
    assert_eq!(list.len(), 1, "{listed}");
    assert_eq!(list[0]["destination"], DEST, "{listed}");
    assert_eq!(list[0]["reason"], REASON, "{listed}");
    let text = fleet.nodes[1].run_ok(&["fleet", "status"]);
    let line = format!("suspended: {DEST}: ");
    let line = text.lines().find(|l| l.starts_with(&line));
    assert!(
        line.is_some_and(|l| l.ends_with("(on node node1)")),
        "{text}"
    );
}

fn assert_script_ok(out: &std::process::Output, mode: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().last() == Some("ok"),
        "the fleet page script ({mode}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
