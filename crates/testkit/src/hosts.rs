//! The machines of a fleet test on one box ([`Hosts`]): each node in a network namespace of
//! its own with its own address, or, where namespaces cannot be made, on a loopback address
//! of its own.
//!
//! Namespaces (root, `ip netns` works, `MAILROOM_TEST_FLEET_HOSTS` is not `loopback`): a
//! bridge in the root namespace holding the first address of a /29 in 10.128.0.0/9 (the
//! *gateway*: Redis, the sink, the test's own clients), and per node a namespace with a veth
//! pair, its end in the namespace holding the next address. The namespaces have their
//! loopback and that one link, no default route, no NAT: nothing leaves the box. The nodes'
//! daemons run under `ip netns exec`; their listeners are reached from the root namespace
//! through the bridge, and each node connects to the sink from its own address.
//!
//! Loopback (not root, or the namespaces failed): node `i` listens on 127.0.0.(i+2), the
//! gateway is 127.0.0.1; each node connects to the sink from its own address too, through
//! `smtp_bind_address` (the kernel would pick 127.0.0.1 for every loopback connection).
//!
//! One line on stderr says which mode each fleet runs in. Names carry the test process's id
//! and a counter (`mr<pid>x<n>` then `b` for the bridge, `v<i>` for a node's veth, `n<i>`
//! for its namespace: at most 15 characters, the kernel's limit for a link); the /29 comes
//! from the pid and a slot (at most [`SLOTS`] fleets of one process at once), so parallel
//! tests and parallel test processes do not share addresses. Everything made is removed on
//! drop (also while a failing test unwinds), and the first fleet of a process removes what
//! dead test processes left behind (killing the daemons still running in their
//! namespaces). Every `ip` run is bounded in time.

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use crate::fault::say;
use crate::machine::{is_root, read_all};

/// Fleets of one test process with namespaces at the same time (each has its own /29).
pub const SLOTS: usize = 8;

/// How long one `ip` command may take.
const IP_LIMIT: Duration = Duration::from_secs(20);

/// Nodes per fleet: a /29 holds the gateway and five more.
const MAX_NODES: usize = 5;

/// One node's host: the address it listens on, the one it connects to others from, and the
/// network namespace its daemon runs in (None: the test's own).
#[derive(Debug, Clone)]
pub struct Host {
    pub address: Ipv4Addr,
    pub source: Ipv4Addr,
    pub netns: Option<String>,
}

/// The hosts of one fleet (see the module's text); what was made is removed on drop.
#[derive(Debug)]
pub struct Hosts {
    /// Where Redis, the sink and any other destination listen, in the root namespace.
    pub gateway: Ipv4Addr,
    /// The network the nodes trust as clients (`mynetworks`): the /29, or 127.0.0.0/8.
    pub network: String,
    pub nodes: Vec<Host>,
    /// Links and namespaces made (to remove), and the slot held.
    links: Vec<String>,
    namespaces: Vec<String>,
    slot: Option<usize>,
}

static SLOTS_HELD: Mutex<[bool; SLOTS]> = Mutex::new([false; SLOTS]);

impl Hosts {
    /// `n` hosts: namespaces where they can be made, else loopback addresses; says which.
    pub fn new(n: usize) -> Hosts {
        assert!((1..=MAX_NODES).contains(&n), "1 to {MAX_NODES} nodes");
        let forced = std::env::var("MAILROOM_TEST_FLEET_HOSTS").ok();
        let why = if forced.as_deref() == Some("loopback") {
            "MAILROOM_TEST_FLEET_HOSTS=loopback".to_string()
        } else if !is_root() {
            "not root".to_string()
        } else {
            match Hosts::namespaces(n) {
                Ok(hosts) => return hosts,
                Err(why) => why,
            }
        };
        let hosts = Hosts::loopback(n);
        say(&format!(
            "fleet hosts: loopback addresses 127.0.0.2-{}, each connecting from its own \
             through smtp_bind_address (no network namespaces: {why})",
            hosts.nodes[n - 1].address
        ));
        hosts
    }

    /// Node `i` on 127.0.0.(i+2) (and connecting from there), everything else on 127.0.0.1.
    pub fn loopback(n: usize) -> Hosts {
        let nodes = (0..n)
            .map(|i| {
                let address = Ipv4Addr::new(127, 0, 0, i as u8 + 2);
                Host {
                    address,
                    source: address,
                    netns: None,
                }
            })
            .collect();
        Hosts {
            gateway: Ipv4Addr::LOCALHOST,
            network: "127.0.0.0/8".to_string(),
            nodes,
            links: Vec::new(),
            namespaces: Vec::new(),
            slot: None,
        }
    }

    /// True when the nodes run in namespaces of their own.
    pub fn separated(&self) -> bool {
        !self.namespaces.is_empty()
    }

    /// The links and namespaces made for these hosts (none on loopback).
    pub fn names(&self) -> Vec<String> {
        self.links.iter().chain(&self.namespaces).cloned().collect()
    }

    /// Removes the links and namespaces named by test processes that are gone (the first
    /// fleet of a process does it).
    pub fn remove_stale() {
        remove_stale();
    }

    fn namespaces(n: usize) -> Result<Hosts, String> {
        // One fleet made at a time in a process (`ip netns add` mounts /run/netns once).
        static MAKING: Mutex<()> = Mutex::new(());
        let _making = MAKING.lock().unwrap_or_else(|p| p.into_inner());
        static STALE: Once = Once::new();
        STALE.call_once(remove_stale);
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        if count >= 1000 {
            return Err("more than 1000 fleets in one test process".into());
        }
        let slot = take_slot().ok_or(format!("{SLOTS} fleets of this process already"))?;
        let mut hosts = Hosts {
            gateway: Ipv4Addr::UNSPECIFIED,
            network: String::new(),
            nodes: Vec::new(),
            links: Vec::new(),
            namespaces: Vec::new(),
            slot: Some(slot),
        };
        let base = format!("mr{}x{count}", std::process::id());
        let net = free_network(slot)?;
        let at = |k: u32| Ipv4Addr::from(net + k);
        hosts.gateway = at(1);
        hosts.network = format!("{}/29", at(0));
        // Named before they are made: whatever exists when something fails goes on drop.
        let bridge = format!("{base}b");
        hosts.links.push(bridge.clone());
        let mut root = format!(
            "link add {bridge} type bridge\naddr add {}/29 dev {bridge}\nlink set {bridge} up\n",
            hosts.gateway
        );
        for i in 0..n {
            let (veth, netns) = (format!("{base}v{i}"), format!("{base}n{i}"));
            hosts.namespaces.push(netns.clone());
            hosts.links.push(veth.clone());
            root += &format!(
                "netns add {netns}\nlink add {veth} type veth peer name eth0 netns {netns}\n\
                 link set {veth} master {bridge}\nlink set {veth} up\n"
            );
            hosts.nodes.push(Host {
                address: at(i as u32 + 2),
                source: at(i as u32 + 2),
                netns: Some(netns),
            });
        }
        ip(&["-batch", "-"], &root)?;
        for node in &hosts.nodes {
            let netns = node.netns.as_deref().unwrap_or_default();
            let inside = format!(
                "link set lo up\naddr add {}/29 dev eth0\nlink set eth0 up\n",
                node.address
            );
            ip(&["-n", netns, "-batch", "-"], &inside)?;
        }
        // What starts the daemons works here too (a container may refuse its mounts).
        let first = hosts.nodes[0].netns.as_deref().unwrap_or_default();
        ip(&["netns", "exec", first, "true"], "")?;
        say(&format!(
            "fleet hosts: network namespaces {base}n0-{} on bridge {bridge}, {} \
             (Redis and the sink on {}, nodes from {})",
            n - 1,
            hosts.network,
            hosts.gateway,
            hosts.nodes[0].address
        ));
        Ok(hosts)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // A veth goes with its peer; a namespace goes once its last process has.
        let mut batch: String = self
            .links
            .iter()
            .map(|l| format!("link del {l}\n"))
            .collect();
        for netns in &self.namespaces {
            batch += &format!("netns del {netns}\n");
        }
        if !batch.is_empty() {
            let _ = ip(&["-force", "-batch", "-"], &batch);
        }
        if let Some(slot) = self.slot.take() {
            SLOTS_HELD.lock().unwrap_or_else(|p| p.into_inner())[slot] = false;
        }
    }
}

fn take_slot() -> Option<usize> {
    let mut held = SLOTS_HELD.lock().unwrap_or_else(|p| p.into_inner());
    let slot = held.iter().position(|h| !h)?;
    held[slot] = true;
    Some(slot)
}

/// The /29 for `slot` of this process (10.128.0.0/9 holds 2^20 of them: 2^17 pids times
/// [`SLOTS`]), or random ones while it overlaps a network this machine already has.
fn free_network(slot: usize) -> Result<u32, String> {
    let base = u32::from(Ipv4Addr::new(10, 128, 0, 0));
    let used = networks_in_use()?;
    let index = (std::process::id() % (1 << 17)) * SLOTS as u32 + slot as u32;
    let candidates = std::iter::once(index).chain((0..16).map(|_| fastrand::u32(..1 << 20)));
    for index in candidates {
        let net = base + index * 8;
        if !used.iter().any(|&(n, len)| overlaps(net, 29, n, len)) {
            return Ok(net);
        }
    }
    Err("no free /29 in 10.128.0.0/9".into())
}

fn overlaps(a: u32, a_len: u32, b: u32, b_len: u32) -> bool {
    let len = a_len.min(b_len);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a & mask == b & mask
}

/// The IPv4 networks of this namespace's addresses and routes (default route aside).
fn networks_in_use() -> Result<Vec<(u32, u32)>, String> {
    let mut text = ip_output(&["-4", "-o", "addr", "show"])?;
    text += &ip_output(&["-4", "route", "show", "table", "all"])?;
    let networks = text.split_whitespace().filter_map(|word| {
        let (address, len) = word.split_once('/')?;
        let address: Ipv4Addr = address.parse().ok()?;
        let len: u32 = len.parse().ok().filter(|l| (1..=32).contains(l))?;
        Some((u32::from(address), len))
    });
    Ok(networks.collect())
}

/// Removes the links and namespaces named by test processes that are gone.
fn remove_stale() {
    let links = ip_output(&["-o", "link", "show"]).unwrap_or_default();
    let links = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name));
    let namespaces = ip_output(&["netns", "list"]).unwrap_or_default();
    let namespaces = namespaces
        .lines()
        .filter_map(|l| l.split_whitespace().next());
    let mut batch = String::new();
    for link in links.filter(|name| left_by_a_dead_process(name)) {
        batch += &format!("link del {link}\n");
    }
    for netns in namespaces.filter(|name| left_by_a_dead_process(name)) {
        // The daemons the dead test started there outlived it: they go first.
        let pids = ip_output(&["netns", "pids", netns]).unwrap_or_default();
        for pid in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
            let _ = sys::kill(pid, sys::Signal::SIGKILL);
        }
        batch += &format!("netns del {netns}\n");
    }
    if !batch.is_empty() {
        say(&format!(
            "fleet hosts: removing what dead test processes left: {}",
            batch.replace('\n', "; ")
        ));
        let _ = ip(&["-force", "-batch", "-"], &batch);
    }
}

/// `mr<pid>x<n>…` whose process no longer runs.
fn left_by_a_dead_process(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("mr") else {
        return false;
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let named = !digits.is_empty() && rest[digits.len()..].starts_with('x');
    named && !std::path::Path::new(&format!("/proc/{digits}")).exists()
}

/// `ip ARGS` with `input` on its standard input, within [`IP_LIMIT`]; Err(its stderr).
fn ip(args: &[&str], input: &str) -> Result<(), String> {
    run_ip(args, input).map(drop)
}

fn ip_output(args: &[&str]) -> Result<String, String> {
    run_ip(args, "")
}

fn run_ip(args: &[&str], input: &str) -> Result<String, String> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    // A batch is a few lines: the pipe's buffer holds it. The output is read meanwhile.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || pipe.map(read_all).unwrap_or_default())
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < IP_LIMIT => thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("ip {args:?} did not finish within {IP_LIMIT:?}"));
            }
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status.success() {
        true => Ok(String::from_utf8_lossy(&stdout).into_owned()),
        false => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&stderr).trim()
        )),
    }
}
