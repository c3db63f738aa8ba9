//! Issue 16 part 1's failure rule: Redis killed in the middle of a fleet's run stops no
//! node. Each logs the loss once and applies its share of the limits (10 connections and
//! 600/m divided by the 3 nodes it last saw); the sink still never sees more than the fleet
//! limit, nothing is lost or sent twice; Redis started again (empty) is seeded again and
//! the nodes share through it once more (heartbeats, leases).

use std::time::Duration;
use testkit::fleet::{worst_rate_excess, Fleet, Hosts};
use testkit::*;

const LOST: &str = "fleet: cannot reach Redis";
const ANSWERS: &str = "fleet: Redis at";
const PER_NODE: usize = 20;

#[test]
fn killing_redis_mid_run_keeps_delivery_within_the_fallback_bound_and_loses_nothing() {
    let mut fleet = Fleet::start_with(Hosts::new(3), &[], |sink| {
        format!(
            "smtp_destination_concurrency_limit = 10\n\
             smtp_destination_rate_limit = {{ \"{sink}\" = \"600/m\" }}"
        )
    });
    let sampler = fleet.sampler();
    for i in 0..3 {
        fleet.inject(i, PER_NODE, "someone@example.net");
    }
    wait_until("a first part delivered through Redis", || {
        fleet.sink.messages() >= 10
    });

    // (a node on a loaded machine may have timed out on Redis before: count from here)
    let lost_before: Vec<usize> = fleet
        .nodes
        .iter()
        .map(|n| n.env.log_lines(LOST).len())
        .collect();
    let answered_before: Vec<usize> = fleet
        .nodes
        .iter()
        .map(|n| n.env.log_lines(ANSWERS).len())
        .collect();
    fleet.redis.kill();
    for (node, before) in fleet.nodes.iter().zip(&lost_before) {
        node.env.wait_log(LOST, before + 1);
    }
    let at_loss = fleet.sink.messages();
    wait_until("delivery to go on without Redis", || {
        fleet.sink.messages() >= (at_loss + 10).min(3 * PER_NODE)
    });
    for (node, before) in fleet.nodes.iter().zip(&lost_before) {
        let logged = node.env.log_lines(LOST).len() - before;
        assert_eq!(logged, 1, "the loss is logged once");
    }

    fleet.redis.restart();
    for (node, before) in fleet.nodes.iter().zip(&answered_before) {
        node.env.wait_log(ANSWERS, before + 1);
    }
    fleet.wait_live_nodes(3);
    wait_until("the sink to receive every message", || {
        fleet.sink.messages() >= 3 * PER_NODE
    });
    fleet.wait_queues_empty();
    let samples = sampler.stop();
    assert_eq!(
        fleet.sink.messages(),
        3 * PER_NODE,
        "nothing lost, nothing twice"
    );
    assert_eq!(
        fleet.messages_by_source(),
        fleet.sources_of(&[PER_NODE; 3]),
        "each node delivered its own mail, from its own address"
    );
    let max = samples.iter().map(|s| s.connections).max().unwrap_or(0);
    assert!(max <= 10, "the sink saw {max} connections at once");
    // Each node alone keeps a third of the rate: the fleet still sends 10 a second at most.
    let excess = worst_rate_excess(&samples, 10.0, Duration::from_secs(1));
    assert!(
        excess <= 4.0,
        "{excess:.1} messages over 10/s in some window"
    );
    let seeded = fleet
        .nodes
        .iter()
        .map(|n| n.env.log_lines("Redis holds no fleet state").len());
    assert!(
        seeded.sum::<usize>() >= 1,
        "the empty Redis was seeded again"
    );
    // Sharing again: a delivery now takes a lease in the restarted Redis.
    fleet.redis.cli(&["CONFIG", "RESETSTAT"]);
    fleet.inject(0, 1, "someone@example.net");
    wait_until("the last message", || {
        fleet.sink.messages() == 3 * PER_NODE + 1
    });
    // (only a lease granted by Redis is removed from it when the delivery ends)
    wait_until("the delivery's lease to leave the restarted Redis", || {
        let calls = fleet.redis.command_calls();
        calls.iter().any(|(c, n)| c == "zrem" && *n >= 1)
    });
}
