//! Issue 16 part 2: `postqueue -S` on one node of a fleet suspends the destination on every
//! node within a second (each node reads the shared table every 250 ms), durably in Redis;
//! mail to it waits on all three without a connection; `postqueue -U` on another node
//! resumes all three, and `mailroom fleet status` lists the nodes and the suspension.

use std::time::{Duration, Instant};
use testkit::fleet::Fleet;
use testkit::*;

const THROUGH_FLEET: &str = "deliveries to example.net suspended through the fleet";

#[test]
fn a_suspension_on_one_node_holds_the_mail_of_all_three_until_resumed_on_another() {
    let fleet = Fleet::start(3, &[], "");
    let started = Instant::now();
    let out = fleet.nodes[0]
        .env
        .run(&["postqueue", "-S", "example.net"], b"");
    assert_success(&out, "postqueue -S on node1");
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

    let out = fleet.nodes[2]
        .env
        .run(&["postqueue", "-U", "example.net"], b"");
    assert_success(&out, "postqueue -U on node3");
    wait_until("every node to deliver its two messages", || {
        fleet.sink.messages() == 6
    });
    fleet.wait_queues_empty();
    for node in &fleet.nodes[..2] {
        node.env
            .wait_log("deliveries to example.net resumed through the fleet", 1);
    }
    assert_eq!(fleet.redis.cli(&["HLEN", "mailroom:suspended"]), "0");
}
