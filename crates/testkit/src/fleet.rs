//! A fleet on one machine for the fleet tests: one [`Redis`], one shared [`Sink`] as the
//! destination, and N mailroom nodes ([`World`]s) on their own loopback addresses
//! (127.0.0.2, .3, …) relaying to it, each with `fleet_redis_url` and its own
//! `fleet_node_name` (`node1` …). A [`Sampler`] watches the sink meanwhile: connections
//! open to it (as clients see them) and messages received, sampled every millisecond.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::env::{assert_success, TestEnv};
use crate::machine::{free_port, run_with_input};
use crate::redis::Redis;
use crate::sink::Sink;
use crate::wait::wait_until;
use crate::world::World;

pub struct Fleet {
    pub nodes: Vec<World>,
    pub sink: Sink,
    pub redis: Redis,
    /// Holds the sink's counters and Redis's directory.
    pub root: TestEnv,
}

impl Fleet {
    /// `n` nodes started with `extra` configuration lines, the sink run with `sink_args`;
    /// returns once every node's heartbeat is in Redis (each knows the node count).
    pub fn start(n: usize, sink_args: &[&str], extra: &str) -> Fleet {
        Fleet::start_with_sink_port(n, free_port(), sink_args, extra)
    }

    /// [`Fleet::start`] with the sink on `port` (a test that names the sink's next hop
    /// in the configuration picks the port first).
    pub fn start_with_sink_port(n: usize, port: u16, sink_args: &[&str], extra: &str) -> Fleet {
        let root = TestEnv::new();
        let redis = Redis::start(&root.root);
        let sink = Sink::start_on(&root.root, port, sink_args);
        let nodes = (0..n).map(|i| node(i, &redis, &sink, extra)).collect();
        let fleet = Fleet {
            nodes,
            sink,
            redis,
            root,
        };
        fleet.wait_live_nodes(n);
        fleet
    }

    /// The address node `i` listens on (SMTP at its world's port).
    pub fn address(&self, i: usize) -> String {
        format!("127.0.0.{}:{}", i + 2, self.nodes[i].port)
    }

    /// Node `i`'s HTTP API, `HOST:PORT` (the `http_listen` of its configuration).
    pub fn http(&self, i: usize) -> String {
        let config = std::fs::read_to_string(&self.nodes[i].env.config).expect("node config");
        let line = config.lines().rev().find(|l| l.starts_with("http_listen"));
        let address = line.and_then(|l| l.split('"').nth(1));
        address.expect("the node has an http_listen").to_string()
    }

    /// Waits until `n` nodes have a heartbeat in Redis, each saying it counts `n` nodes
    /// (what it divides the limits by without Redis).
    pub fn wait_live_nodes(&self, n: usize) {
        wait_until(
            &format!("{n} fleet heartbeats in Redis, each counting {n}"),
            || {
                let reports = self.redis.cli(&["HVALS", "mailroom:nodes"]);
                let counted = reports
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
                let counted: Vec<u64> = counted
                    .map(|r| r["fleet_nodes"].as_u64().unwrap_or(0))
                    .collect();
                counted.len() == n && counted.iter().all(|&c| c == n as u64)
            },
        );
    }

    /// `count` messages to `recipient` into node `i`, over SMTP (Postfix's smtp-source).
    pub fn inject(&self, i: usize, count: usize, recipient: &str) {
        let out = run_with_input(
            Command::new("smtp-source").args([
                "-s",
                "4",
                "-m",
                &count.to_string(),
                "-f",
                "sender@test.example",
                "-t",
                recipient,
                &self.address(i),
            ]),
            b"",
        );
        assert_success(&out, "smtp-source");
    }

    /// Waits until every node's queue is empty.
    pub fn wait_queues_empty(&self) {
        for node in &self.nodes {
            node.env.wait_queue_empty();
        }
    }
}

fn node(i: usize, redis: &Redis, sink: &Sink, extra: &str) -> World {
    let ip = format!("127.0.0.{}", i + 2);
    let mut world = World::builder().smtp().peer(sink).build();
    let api = free_port();
    world.configure(&format!(
        "smtpd_listen = [\"{ip}:{port}\"]\nmynetworks = [\"127.0.0.0/8\"]\n\
         http_listen = [\"{ip}:{api}\"]\nfleet_redis_url = \"{url}\"\n\
         fleet_node_name = \"node{n}\"\n{extra}",
        port = world.port,
        url = redis.url(),
        n = i + 1,
    ));
    world.start();
    world
}

/// One sample of the sink: when, connections open to it, messages it received.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub connections: usize,
    pub messages: usize,
}

/// Samples a sink in a thread until dropped or [`Sampler::stop`]ped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sampler {
    /// Connections every millisecond; messages every 20 ms (the counters file is re-read).
    pub fn start(port: u16, dir: &std::path::Path) -> Sampler {
        let probe = Sink::watch(dir, port);
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let thread = thread::spawn(move || {
            let mut messages = 0;
            let mut read_at = Instant::now() - Duration::from_secs(1);
            while !s.load(Ordering::Relaxed) {
                if read_at.elapsed() >= Duration::from_millis(20) {
                    messages = probe.messages();
                    read_at = Instant::now();
                }
                let sample = Sample {
                    at: Instant::now(),
                    connections: probe.client_connections(),
                    messages,
                };
                out.lock().unwrap().push(sample);
                thread::sleep(Duration::from_millis(1));
            }
        });
        Sampler {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns the samples.
    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap())
    }

    /// The most connections seen so far.
    pub fn max_connections(&self) -> usize {
        let samples = self.samples.lock().unwrap();
        samples.iter().map(|s| s.connections).max().unwrap_or(0)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The worst excess over `per_second` in any window of at least `window` between two
/// samples: the largest `messages(j) - messages(i) - per_second * (t(j) - t(i))`.
pub fn worst_rate_excess(samples: &[Sample], per_second: f64, window: Duration) -> f64 {
    let mut worst = f64::MIN;
    let thinned: Vec<&Sample> = samples.iter().step_by(10).collect();
    for (i, a) in thinned.iter().enumerate() {
        for b in &thinned[i..] {
            let span = b.at.duration_since(a.at);
            if span < window {
                continue;
            }
            let excess = b.messages as f64 - a.messages as f64 - per_second * span.as_secs_f64();
            worst = worst.max(excess);
        }
    }
    worst
}
