//! A fleet on one machine for the fleet tests: one [`Redis`], one shared [`Sink`] as the
//! destination, and N mailroom nodes ([`World`]s) on [`Hosts`] of their own (a network
//! namespace and address each, or a loopback address each where namespaces cannot be
//! made) relaying to it, each with `fleet_redis_url` and its own `fleet_node_name`
//! (`node1` …). The sink writes each message to a file of its own, so the test can count
//! who sent what ([`Fleet::messages_by_source`]). A [`Sampler`] watches a sink meanwhile:
//! connections open to it (as the nodes see them) and messages received, sampled every
//! millisecond.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use crate::hosts::{Host, Hosts};

use crate::env::{assert_success, TestEnv};
use crate::machine::{free_port, run_with_input};
use crate::redis::Redis;
use crate::sink::{messages_by_client, Sink, SinkView};
use crate::wait::wait_until;
use crate::world::World;

pub struct Fleet {
    pub nodes: Vec<World>,
    pub sink: Sink,
    pub redis: Redis,
    /// Holds the sink's counters and dumps, Redis's directory and the nodes' API token.
    pub root: TestEnv,
    /// The token of every node's `http_admin_token_file`.
    pub token: String,
    dumps: PathBuf,
    /// Last: removed once the daemons, the sink and Redis are gone.
    pub hosts: Hosts,
}

impl Fleet {
    /// `n` nodes started with `extra` configuration lines, the sink run with `sink_args`;
    /// returns once every node's heartbeat is in Redis (each knows the node count).
    pub fn start(n: usize, sink_args: &[&str], extra: &str) -> Fleet {
        Fleet::start_with(Hosts::new(n), sink_args, |_| extra.to_string())
    }

    /// A fleet on `hosts` (made first when the test starts another destination on their
    /// gateway); `extra` is given the sink's next hop, `[ADDRESS]:PORT`, as the nodes'
    /// `relayhost` names it (the key of a limit on it).
    pub fn start_with(
        hosts: Hosts,
        sink_args: &[&str],
        extra: impl FnOnce(&str) -> String,
    ) -> Fleet {
        let root = TestEnv::new();
        let redis = Redis::start_at(&root.root, hosts.gateway);
        let (sink, dumps) = Sink::start_dumping(&root.root, hosts.gateway, free_port(), sink_args);
        let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let token_file = root.root.join("admin.token");
        std::fs::write(&token_file, format!("{token}\n")).expect("token file");
        let common = format!(
            "mynetworks = [\"127.0.0.0/8\", \"{network}\"]\nfleet_redis_url = \"{url}\"\n\
             http_admin_token_file = \"{token}\"\nhttp_allow_remote = {remote}\n{extra}",
            network = hosts.network,
            url = redis.url(),
            token = token_file.display(),
            remote = hosts.separated(),
            extra = extra(&format!("[{}]:{}", sink.host, sink.port)),
        );
        let nodes = hosts.nodes.iter().enumerate();
        let nodes = nodes
            .map(|(i, host)| node(i, host, &sink, &common))
            .collect();
        let fleet = Fleet {
            nodes,
            sink,
            redis,
            root,
            token,
            dumps,
            hosts,
        };
        fleet.wait_live_nodes(fleet.nodes.len());
        fleet
    }

    /// The address node `i` listens on (SMTP at its world's port).
    pub fn address(&self, i: usize) -> String {
        format!("{}:{}", self.hosts.nodes[i].address, self.nodes[i].port)
    }

    /// Node `i`'s HTTP API, `HOST:PORT` (the `http_listen` of its configuration).
    pub fn http(&self, i: usize) -> String {
        let config = std::fs::read_to_string(&self.nodes[i].env.config).expect("node config");
        let line = config.lines().rev().find(|l| l.starts_with("http_listen"));
        let address = line.and_then(|l| l.split('"').nth(1));
        address.expect("the node has an http_listen").to_string()
    }

    /// The token a listing of a node's API needs from here: none from loopback, the
    /// nodes' token from the gateway (their APIs are remote then).
    pub fn listing_token(&self) -> Option<&str> {
        self.hosts.separated().then_some(self.token.as_str())
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

    /// Messages the fleet's sink received, per client address it saw them come from.
    pub fn messages_by_source(&self) -> BTreeMap<String, usize> {
        messages_by_client(&self.dumps)
    }

    /// What [`Fleet::messages_by_source`] is when node `i` sent `sent[i]` messages: each
    /// from its own address (its namespace's, or its loopback address via `smtp_bind_address`).
    pub fn sources_of(&self, sent: &[usize]) -> BTreeMap<String, usize> {
        let mut by = BTreeMap::new();
        for (host, &n) in self.hosts.nodes.iter().zip(sent) {
            *by.entry(host.source.to_string()).or_insert(0) += n;
        }
        by.retain(|_, n| *n > 0);
        by
    }

    /// A view of `sink` (the fleet's or another on its gateway) counting the nodes'
    /// connections to it: in each node's namespace (its daemon's TCP table), or here.
    pub fn view(&self, sink: &Sink) -> SinkView {
        if !self.hosts.separated() {
            return sink.view();
        }
        let pids = self.nodes.iter().filter_map(|n| n.daemon.as_ref());
        sink.view_from(
            pids.map(|d| PathBuf::from(format!("/proc/{}/net/tcp", d.pid())))
                .collect(),
        )
    }

    /// A [`Sampler`] of the fleet's sink.
    pub fn sampler(&self) -> Sampler {
        Sampler::start(self.view(&self.sink))
    }
}

/// Node `i` on `host`: SMTP and its HTTP API on its address, relaying to `sink`.
fn node(i: usize, host: &Host, sink: &Sink, common: &str) -> World {
    let ip = host.address;
    let mut world = World::builder().smtp().peer(sink).build();
    world.netns = host.netns.clone();
    let api = free_port();
    // In a namespace the node's one link gives the source; on loopback it must be asked for.
    let bind = match host.netns {
        None => format!("smtp_bind_address = \"{}\"\n", host.source),
        Some(_) => String::new(),
    };
    world.configure(&format!(
        "smtpd_listen = [\"{ip}:{port}\"]\nhttp_listen = [\"{ip}:{api}\"]\n\
         fleet_node_name = \"node{n}\"\n{bind}{common}",
        port = world.port,
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

/// When each client socket was seen open: from the end of the first read that listed it to
/// the start of the last one (it was open all that time), or the one moment it was seen.
type Lifetimes = HashMap<String, (Instant, Instant)>;

/// Samples a sink in a thread until dropped or [`Sampler::stop`]ped.
///
/// Connections are counted from the sockets' lifetimes as seen, not by adding up what each
/// read listed: the TCP tables (one per node namespace) are read one after the other, and
/// a connection that closes while a table is read and one that opens before the next is
/// read would otherwise both count. A connection is counted at the instants it was surely
/// open, so a count is never more than the connections open at that instant.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<(Vec<Sample>, Lifetimes)>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sampler {
    /// Connections every millisecond; messages every 20 ms (the counters file is re-read).
    pub fn start(probe: SinkView) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new((Vec::new(), Lifetimes::new())));
        let (s, out) = (stop.clone(), seen.clone());
        let thread = thread::spawn(move || {
            let mut messages = 0;
            let mut read_at = Instant::now() - Duration::from_secs(1);
            while !s.load(Ordering::Relaxed) {
                if read_at.elapsed() >= Duration::from_millis(20) {
                    messages = probe.messages();
                    read_at = Instant::now();
                }
                let at = Instant::now();
                let tables = probe.client_sockets();
                let mut seen = out.lock().unwrap_or_else(|p| p.into_inner());
                for (began, ended, sockets) in tables {
                    for socket in sockets {
                        let span = seen.1.entry(socket).or_insert((ended, ended));
                        span.1 = span.1.max(began);
                    }
                }
                seen.0.push(Sample {
                    at,
                    connections: 0,
                    messages,
                });
                drop(seen);
                thread::sleep(Duration::from_millis(1));
            }
        });
        Sampler {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns the samples; each sample's `connections` is the most
    /// open at once from its instant to the next sample's.
    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let (mut samples, lifetimes) = std::mem::take(&mut *self.lock());
        let spans: Vec<(Instant, Instant)> = lifetimes.into_values().collect();
        let open_at = |t: Instant| spans.iter().filter(|(a, b)| *a <= t && t <= *b).count();
        // The count changes only where a lifetime begins: the most in a sample's stretch
        // is at its instant or at a beginning within it.
        let mut starts: Vec<Instant> = spans.iter().map(|s| s.0).collect();
        starts.sort_unstable();
        let ends: Vec<Instant> = samples.iter().skip(1).map(|s| s.at).collect();
        for (sample, end) in samples
            .iter_mut()
            .zip(ends.into_iter().map(Some).chain([None]))
        {
            let within = starts
                .iter()
                .filter(|&&t| t >= sample.at && end.is_none_or(|e| t < e));
            let most = within.map(|&t| open_at(t)).max().unwrap_or(0);
            sample.connections = most.max(open_at(sample.at));
        }
        samples
    }

    /// The most connections open at once so far.
    pub fn max_connections(&self) -> usize {
        let seen = self.lock();
        let spans: Vec<&(Instant, Instant)> = seen.1.values().collect();
        let open_at = |t: Instant| spans.iter().filter(|(a, b)| *a <= t && t <= *b).count();
        spans.iter().map(|s| open_at(s.0)).max().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<Sample>, Lifetimes)> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
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
