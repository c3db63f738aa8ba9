//! Issue 16 part 1: three nodes sharing one Redis and one destination (a shared smtp-sink)
//! hold the destination's limits for the fleet, not per node. With
//! `smtp_destination_concurrency_limit = 10` the sink never sees more than 10 connections
//! from the three (each alone would open 10: 30); with `smtp_destination_rate_limit` 600
//! a minute the three together never send faster than 10 a second. Each node runs in a
//! network namespace of its own where it can (testkit's `Hosts`): the sink sees each
//! node's mail come from that node's address.

use std::time::Duration;
use testkit::fleet::{worst_rate_excess, Fleet, Hosts};
use testkit::*;

const PER_NODE: usize = 15;

#[test]
fn three_nodes_never_open_more_than_the_fleet_connection_limit() {
    // The sink waits a second before answering DATA: deliveries overlap and pile up.
    let fleet = Fleet::start(3, &["-w", "1"], "smtp_destination_concurrency_limit = 10");
    let sampler = fleet.sampler();
    for i in 0..3 {
        fleet.inject(i, PER_NODE, "someone@example.net");
    }
    wait_until("the sink to receive every message", || {
        fleet.sink.messages() == 3 * PER_NODE
    });
    fleet.wait_queues_empty();
    let samples = sampler.stop();
    let max = samples.iter().map(|s| s.connections).max().unwrap_or(0);
    assert!(
        max <= 10,
        "the sink saw {max} connections at once (fleet limit 10)"
    );
    assert!(
        max >= 4,
        "the fleet ran deliveries in parallel (saw at most {max})"
    );
    let calls = fleet.redis.command_calls();
    let evalsha = calls
        .iter()
        .find(|(c, _)| c == "evalsha")
        .map_or(0, |c| c.1);
    assert!(evalsha > 0, "the nodes asked Redis: {calls:?}");
    assert_eq!(
        fleet.messages_by_source(),
        fleet.sources_of(&[PER_NODE; 3]),
        "each node delivered its own mail, from its own address"
    );
}

#[test]
fn three_nodes_together_keep_the_fleet_message_rate() {
    let fleet = Fleet::start_with(Hosts::new(3), &[], |sink| {
        format!("smtp_destination_rate_limit = {{ \"{sink}\" = \"600/m\" }}")
    });
    let sampler = fleet.sampler();
    let started = std::time::Instant::now();
    for i in 0..3 {
        fleet.inject(i, PER_NODE, "someone@example.net");
    }
    wait_until("the sink to receive every message", || {
        fleet.sink.messages() == 3 * PER_NODE
    });
    let took = started.elapsed();
    fleet.wait_queues_empty();
    let samples = sampler.stop();
    // 45 messages spaced 100 ms apart fleet-wide take at least 4.4 s (each node alone
    // would be done in a fraction of a second).
    assert!(
        took >= Duration::from_millis(4000),
        "45 messages in {took:?}"
    );
    // In any window of a second or more, at most 10 a second, give or take the two a
    // delivery's own latency can bunch at a window's edge.
    let excess = worst_rate_excess(&samples, 10.0, Duration::from_secs(1));
    assert!(
        excess <= 3.0,
        "the fleet sent {excess:.1} messages over 10/s in some window"
    );
    assert_eq!(
        fleet.messages_by_source(),
        fleet.sources_of(&[PER_NODE; 3]),
        "each node delivered its own mail, from its own address"
    );
}
