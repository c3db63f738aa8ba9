//! Issue 16: per-destination limits through `transport_maps`. A named transport
//! (`transports = { slow = "smtp" }`, Postfix's master.cf service running smtp(8)) routes
//! `slow.example` to its own sink with its own `transport_destination_concurrency_limit`
//! and `transport_destination_rate_limit`; mail to another destination keeps the default
//! limits. Held fleet-wide (three nodes, one Redis) and on a node alone (no Redis).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::fleet::{worst_rate_excess, Fleet, Hosts, Sampler};
use testkit::*;

const PER_NODE: usize = 5;

/// The transport map and the named transport's settings: `slow.example` to `sink` by
/// `slow`, with `limits` lines.
fn slow_transport(dir: &Path, sink: &Sink, limits: &str) -> String {
    let map = dir.join("transport");
    let hop = format!("[{}]:{}", sink.host, sink.port);
    std::fs::write(&map, format!("slow.example slow:{hop}\n")).unwrap();
    format!(
        "transports = {{ slow = \"smtp\" }}\ntransport_maps = [\"{}\"]\n{limits}",
        map.display()
    )
}

#[test]
fn three_nodes_hold_a_transport_maps_destination_to_its_own_fleet_limits() {
    let maps = TestEnv::new();
    let hosts = Hosts::new(3);
    let slow = Sink::start_at(&maps.root, hosts.gateway, free_port(), &["-w", "1"]);
    let limits = "transport_destination_concurrency_limit = { slow = \"3\" }\n\
                  transport_destination_rate_limit = { slow = \"240/m\" }";
    let extra = slow_transport(&maps.root, &slow, limits);
    // The default destination (relayhost, the fleet's sink) answers DATA a second late too.
    let fleet = Fleet::start_with(hosts, &["-w", "1"], |_| extra);
    let slow_samples = Sampler::start(fleet.view(&slow));
    let default_samples = fleet.sampler();
    let started = Instant::now();
    for i in 0..3 {
        fleet.inject(i, PER_NODE, "someone@slow.example");
        fleet.inject(i, PER_NODE, "someone@fast.example");
    }
    wait_until("the slow sink to receive its messages", || {
        slow.messages() == 3 * PER_NODE
    });
    let took = started.elapsed();
    wait_until("the default sink to receive its messages", || {
        fleet.sink.messages() == 3 * PER_NODE
    });
    fleet.wait_queues_empty();
    let samples = slow_samples.stop();
    let max = samples.iter().map(|s| s.connections).max().unwrap_or(0);
    assert!(
        max <= 3,
        "the slow destination saw {max} connections (limit 3)"
    );
    // 15 messages 250 ms apart fleet-wide: at least 3.5 s (per node alone: about 1.2 s).
    assert!(
        took >= Duration::from_millis(3000),
        "15 messages in {took:?}"
    );
    let excess = worst_rate_excess(&samples, 4.0, Duration::from_secs(1));
    assert!(
        excess <= 3.0,
        "{excess:.1} messages over 4/s in some window"
    );
    let default_max = default_samples.max_connections();
    assert!(
        default_max > 3,
        "the other destination kept the default limit (saw at most {default_max})"
    );
    // (Shared, not per node: each node alone would allow 3 connections and 4/s, 9 and 12/s
    // for the three.)
}

/// `count` messages to `to` into the node listening on `port` (Postfix's smtp-source).
fn smtp_source(port: u16, count: usize, to: &str) {
    let count = count.to_string();
    let args = [
        "-s",
        "5",
        "-m",
        &count,
        "-f",
        "sender@test.example",
        "-t",
        to,
    ];
    let out = run_with_input(
        Command::new("smtp-source")
            .args(args)
            .arg(format!("127.0.0.1:{port}")),
        b"",
    );
    assert_success(&out, "smtp-source");
}

#[test]
fn a_node_alone_holds_a_transport_maps_destination_to_its_own_limits() {
    let maps = TestEnv::new();
    let slow = Sink::start(&maps.root, &["-w", "1"]);
    let fast = Sink::start(&maps.root, &["-w", "1"]);
    let limits = "transport_destination_concurrency_limit = { slow = \"2\" }\n\
                  transport_destination_rate_limit = { slow = \"300/m\" }";
    let extra = slow_transport(&maps.root, &slow, limits);
    let world = World::builder().smtp().peer(&fast).config(&extra).start();
    let slow_samples = Sampler::start(slow.view());
    let fast_samples = Sampler::start(fast.view());
    let started = Instant::now();
    smtp_source(world.port, 10, "someone@slow.example");
    smtp_source(world.port, 10, "someone@fast.example");
    wait_until("the slow sink to receive its messages", || {
        slow.messages() == 10
    });
    let took = started.elapsed();
    wait_until("the fast sink to receive its messages", || {
        fast.messages() == 10
    });
    world.env.wait_queue_empty();
    let samples = slow_samples.stop();
    let max = samples.iter().map(|s| s.connections).max().unwrap_or(0);
    assert!(
        max <= 2,
        "the slow destination saw {max} connections (limit 2)"
    );
    // 10 messages 200 ms apart: at least 1.8 s.
    assert!(
        took >= Duration::from_millis(1500),
        "10 messages in {took:?}"
    );
    let excess = worst_rate_excess(&samples, 5.0, Duration::from_secs(1));
    assert!(
        excess <= 3.0,
        "{excess:.1} messages over 5/s in some window"
    );
    let fast_max = fast_samples.max_connections();
    assert!(
        fast_max > 2,
        "the other destination kept the default limit (saw {fast_max})"
    );
}

#[test]
fn check_reports_a_transport_maps_entry_naming_an_undeclared_transport() {
    let env = TestEnv::new();
    let map = env.root.join("transport");
    std::fs::write(&map, "slow.example slwo:[127.0.0.1]:2525\n").unwrap();
    env.write_config(&format!(
        "transports = {{ slow = \"smtp\" }}\ntransport_maps = [\"{}\"]\n",
        map.display()
    ));
    let out = env.run(&["check"], b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(":1: unknown transport \"slwo\""),
        "check names the bad line: {stdout}"
    );
    env.write_config(&format!(
        "transports = {{ slwo = \"smtp\" }}\ntransport_maps = [\"{}\"]\n",
        map.display()
    ));
    let stdout = String::from_utf8_lossy(&env.run(&["check"], b"").stdout).to_string();
    assert!(!stdout.contains("unknown transport"), "{stdout}");
}
