//! Issue 16 part 2: `postqueue -S` on one node of a fleet suspends the destination on every
//! node within a second (each node reads the shared table every 250 ms), durably in Redis;
//! mail to it waits on all three without a connection; `postqueue -U` on another node
//! resumes all three, and `mailroom fleet status` lists the nodes and the suspension.

use std::io::{Read, Write};
use std::time::{Duration, Instant};
use testkit::fleet::Fleet;
use testkit::*;

const THROUGH_FLEET: &str = "deliveries to example.net suspended through the fleet";

#[test]
fn a_suspension_on_one_node_holds_the_mail_of_all_three_until_resumed_on_another() {
    let fleet = Fleet::start(3, &[], "");
    let out = fleet.nodes[0]
        .env
        .run(&["postqueue", "-S", "example.net"], b"");
    assert_success(&out, "postqueue -S on node1");
    let started = Instant::now(); // in force on node1 now
    for node in &fleet.nodes[1..] {
        node.env.wait_log(THROUGH_FLEET, 1);
    }
    let took = started.elapsed();
    assert!(
        took <= scaled_by_load(Duration::from_secs(1)),
        "the other nodes suspended it {took:?} after postqueue -S"
    );
    let shared = fleet.redis.cli(&["HKEYS", "mailroom:suspended"]);
    assert_eq!(shared, "example.net", "the suspension is kept in Redis");

    for i in 0..3 {
        fleet.inject(i, 2, "someone@example.net");
    }
    for node in &fleet.nodes {
        node.wait_lines(
            &["held in the queue: delivery suspended by the operator"],
            2,
        );
    }
    assert_eq!(
        fleet.sink.sessions(),
        0,
        "no node connected to the destination"
    );
    let status = fleet.nodes[1].run_ok(&["fleet", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let names: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node1", "node2", "node3"]);
    assert_eq!(status["suspensions"][0]["destination"], "example.net");
    let text = fleet.nodes[2].run_ok(&["fleet", "status"]);
    assert!(text.contains("suspended: example.net"), "{text}");

    // The fleet views: every node's queue through its API, merged.
    let listed = fleet.nodes[0].run_ok(&["mailq", "--fleet", "--json"]);
    let rows: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6, "{listed}");
    let mut nodes: Vec<&str> = rows.iter().map(|r| r["node"].as_str().unwrap()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    assert_eq!(nodes, ["node1", "node2", "node3"]);
    let text = fleet.nodes[1].run_ok(&["mailq", "--fleet"]);
    assert!(text.contains("in 6 Requests."), "{text}");
    let shape = fleet.nodes[2].run_ok(&["qshape", "--fleet", "all"]);
    let total = shape.lines().find(|l| l.trim_start().starts_with("TOTAL"));
    let total = total.and_then(|l| l.split_whitespace().nth(1));
    assert_eq!(total, Some("6"), "{shape}");
    let metrics = metrics_of(&fleet, 1);
    assert!(
        metrics.contains("node=\"node2\""),
        "/metrics names the node:\n{metrics}"
    );

    let out = fleet.nodes[2]
        .env
        .run(&["postqueue", "-U", "example.net"], b"");
    assert_success(&out, "postqueue -U on node3");
    wait_until("every node to deliver its two messages", || {
        fleet.sink.messages() == 6
    });
    fleet.wait_queues_empty();
    assert_eq!(
        fleet.messages_by_source(),
        fleet.sources_of(&[2; 3]),
        "each node delivered its own mail, from its own address"
    );
    for node in &fleet.nodes[..2] {
        node.env
            .wait_log("deliveries to example.net resumed through the fleet", 1);
    }
    assert_eq!(fleet.redis.cli(&["HLEN", "mailroom:suspended"]), "0");
}

/// `GET /metrics` of node `i` (its `http_listen` address is in its configuration).
fn metrics_of(fleet: &Fleet, i: usize) -> String {
    let config = std::fs::read_to_string(&fleet.nodes[i].env.config).unwrap();
    let line = config
        .lines()
        .rev()
        .find(|l| l.starts_with("http_listen"))
        .unwrap();
    let address = line.split('"').nth(1).unwrap();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}
