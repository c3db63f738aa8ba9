//! The fleet tests' hosts (testkit's `Hosts`, issue 16's "three nodes on one machine"):
//! as root, each node gets a network namespace of its own with its own address; two fleets
//! made at once (tests in parallel) get different networks and names no longer than a
//! link's 15 characters; a node reaches the gateway from its own address and nothing
//! else (no default route); everything is gone after drop, also when the test holding it
//! panicked; and what a dead test process left behind is removed, with the daemons still
//! running in its namespaces.

use std::io::Read;
use std::net::TcpListener;
use std::process::Command;
use testkit::fleet::Hosts;
use testkit::*;

/// True (and one line) when namespaces cannot be made here: the fleet tests then run on
/// loopback addresses, and there is nothing of this to check.
fn skipped(hosts: &Hosts) -> bool {
    if hosts.separated() {
        return false;
    }
    eprintln!("skipped: the fleet's hosts are loopback addresses here (not root or no ip netns)");
    true
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The links and the namespaces that exist now.
fn existing() -> Vec<String> {
    let links = ip(&["-o", "link", "show"]);
    let links = links.lines().filter_map(|l| l.split(": ").nth(1));
    let links = links.map(|n| n.split('@').next().unwrap_or(n).to_string());
    let namespaces = ip(&["netns", "list"]);
    let namespaces = namespaces
        .lines()
        .filter_map(|l| l.split_whitespace().next());
    links.chain(namespaces.map(str::to_string)).collect()
}

/// Runs `program args` in namespace `netns`; its stdout.
fn inside(netns: &str, program: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", netns])
        .args(program)
        .output()
        .expect("ip netns exec")
}

#[test]
fn two_fleets_at_once_get_their_own_networks_and_nodes_their_own_addresses() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Hosts::new(3));
        let b = s.spawn(|| Hosts::new(3));
        (a.join().unwrap(), b.join().unwrap())
    });
    if skipped(&a) {
        return;
    }
    assert_ne!(a.network, b.network);
    let names: Vec<String> = a.names().into_iter().chain(b.names()).collect();
    let mut distinct = names.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        2 * (1 + 3 + 3),
        "a bridge, 3 veths, 3 namespaces each: {names:?}"
    );
    assert!(names.iter().all(|n| n.len() <= 15), "{names:?}");
    let now = existing();
    assert!(
        names.iter().all(|n| now.contains(n)),
        "made: {names:?}; there: {now:?}"
    );
    let mut addresses: Vec<_> = a.nodes.iter().chain(&b.nodes).map(|n| n.address).collect();
    addresses.extend([a.gateway, b.gateway]);
    addresses.sort_unstable();
    addresses.dedup();
    assert_eq!(addresses.len(), 8, "every address once: {addresses:?}");

    // A node connects to its gateway from its own address; nowhere else is routed.
    let listener = TcpListener::bind((a.gateway, 0)).expect("bind on the gateway");
    let port = listener.local_addr().unwrap().port();
    let node = &a.nodes[1];
    let netns = node.netns.as_deref().unwrap();
    let script = format!(
        "import socket; c = socket.create_connection(('{}', {port}), timeout=10); c.sendall(b'hi')",
        a.gateway
    );
    let client = std::thread::spawn({
        let netns = netns.to_string();
        move || inside(&netns, &["python3", "-c", &script])
    });
    listener.set_nonblocking(true).unwrap();
    let mut accepted = None;
    let came = poll_for(DEADLINE, || {
        accepted = listener.accept().ok();
        accepted.is_some()
    });
    assert!(came, "the node's connection: {:?}", client.join());
    let (mut stream, from) = accepted.unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut got = String::new();
    stream.read_to_string(&mut got).unwrap();
    assert!(client.join().unwrap().status.success());
    assert_eq!((from.ip(), got.as_str()), (node.address.into(), "hi"));
    let routes = inside(netns, &["ip", "-4", "route", "show"]);
    let routes = String::from_utf8_lossy(&routes.stdout).to_string();
    assert!(!routes.contains("default"), "no way out: {routes}");
    let out = inside(
        netns,
        &[
            "python3",
            "-c",
            "import socket; socket.create_connection(('192.0.2.1', 25), timeout=5)",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Network is unreachable"),
        "{err}"
    );

    drop((a, b));
    let now = existing();
    assert!(
        names.iter().all(|n| !now.contains(n)),
        "left after drop: {now:?}"
    );
}

#[test]
fn what_a_panicking_test_made_is_removed_and_so_is_what_a_dead_process_left() {
    let held = std::sync::Mutex::new(Vec::new());
    let failed = std::thread::scope(|s| {
        s.spawn(|| {
            let hosts = Hosts::new(2);
            *held.lock().unwrap() = hosts.names();
            assert!(!hosts.separated(), "a failing test holding namespaces");
        })
        .join()
    });
    let held = held.into_inner().unwrap();
    if failed.is_ok() {
        eprintln!(
            "skipped: the fleet's hosts are loopback addresses here (not root or no ip netns)"
        );
        return;
    }
    assert_eq!(held.len(), 1 + 2 + 2, "{held:?}");
    let now = existing();
    assert!(held.iter().all(|n| !now.contains(n)), "left: {now:?}");

    // A process that died (kill -9) without removing its namespace and link.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let stale = format!("mr{}x7", gone.id());
    let made = Command::new("ip")
        .args(["netns", "add", &format!("{stale}n0")])
        .status();
    assert!(made.unwrap().success());
    let bridge = format!("{stale}b");
    let made = Command::new("ip")
        .args(["link", "add", &bridge, "type", "bridge"])
        .status();
    assert!(made.unwrap().success());
    // A daemon it started in there, still running.
    let mut daemon = Command::new("ip")
        .args(["netns", "exec", &format!("{stale}n0"), "sleep", "600"])
        .spawn()
        .unwrap();
    let pid = daemon.id();
    let inside = poll_for(DEADLINE, || {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.starts_with("sleep"))
    });
    assert!(inside, "the daemon runs in the namespace");
    Hosts::remove_stale();
    let left = existing();
    assert!(
        left.iter().all(|n| !n.starts_with(&stale)),
        "removed: {left:?}"
    );
    let mut status = None;
    let ended = poll_for(DEADLINE, || {
        status = daemon.try_wait().unwrap();
        status.is_some()
    });
    if !ended {
        let _ = daemon.kill();
        let _ = daemon.wait();
    }
    let signal = status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s));
    assert_eq!(
        signal,
        Some(9),
        "the dead test's daemon was killed with its namespace"
    );
}
