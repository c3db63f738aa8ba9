//! Fault suite: clients that try to exhaust the SMTP server (issue 8 defects 2 and 4), piled
//! up one on top of the other while a normal client keeps sending mail:
//! 1. 1,000 idle connections (50 from each of 20 loopback addresses), held to the end;
//! 2. 100 slow-drip clients (from 2 addresses) sending one byte a second, held to the end;
//! 3. a connect/disconnect storm (4 threads, bounded in time and count);
//! 4. 100 clients (Python `smtplib`, 100 addresses) repeating a wrong `AUTH PLAIN` after
//!    STARTTLS on the submission listener.
//!
//! In each phase the normal client (127.0.0.1, in `mynetworks`) must get a whole transaction
//! done — greeting to the 250 after DATA — within 1 s on an idle machine (stretched by the
//! load average per CPU measured around the probe, `testkit::scaled_by_load`: CI runs this on
//! a loaded 2-core box where every process gets a fraction of a CPU), and the daemon's peak
//! resident size (`VmHWM`) must stay bounded. Every probe message is relayed to `smtp-sink`
//! and counted.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use testkit::fault::*;
use testkit::*;

const SCENARIO: &str = "smtp-exhaustion";
const IDLE: usize = 1000;
const DRIP: usize = 100;
const AUTH_CLIENTS: usize = 100;
const PROBES_PER_PHASE: usize = 3;
const PROBE_LIMIT: Duration = Duration::from_secs(1);
/// Peak RSS allowed: two argon2 checks (19 MiB each), ~1,100 sessions' buffers, and room;
/// measured 63 MiB. Freed argon2 blocks kept by glibc (~310 MiB) would fail it.
const RSS_LIMIT_MIB: u64 = 160;

/// A TCP connection to 127.0.0.1:`port` from `source` (any 127/8 address works on Linux).
fn connect_from(source: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    sys::connect_from(
        SocketAddrV4::new(source, 0),
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
    )
}

/// The normal client's timings and outcomes.
#[derive(Default)]
struct Probes {
    acked: Vec<String>,
    /// (phase, milliseconds from connect to the 250 after DATA, or the failure, and the
    /// load factor around the probe).
    results: Vec<(&'static str, Result<u128, String>, f64)>,
    /// The daemon's peak RSS (MiB) at the end of each phase.
    peaks: Vec<String>,
}

impl Probes {
    /// Probes `port`, then notes the daemon's peak RSS so far (MiB) for the phase.
    fn run(&mut self, port: u16, phase: &'static str, pid: i32) {
        self.probe(port, phase);
        let peak = peak_rss_kib(pid).unwrap_or(0) / 1024;
        self.peaks.push(format!("{phase}:{peak}"));
    }

    fn probe(&mut self, port: u16, phase: &'static str) {
        for i in 0..PROBES_PER_PHASE {
            let tag = format!("probe-{phase}-{i}");
            let load = load_factor();
            let started = Instant::now();
            let result = match send_tagged(port, &tag, "someone@example.net", 2) {
                Sent::Acked => {
                    self.acked.push(tag);
                    Ok(started.elapsed().as_millis())
                }
                other => Err(format!("{other:?} after {:?}", started.elapsed())),
            };
            self.results.push((phase, result, load.max(load_factor())));
            thread::sleep(Duration::from_millis(200));
        }
    }

    fn worst_ms(&self, phase: &str) -> String {
        let times = self.results.iter().filter(|(p, _, _)| *p == phase);
        match times.clone().any(|(_, r, _)| r.is_err()) {
            true => "failed".into(),
            false => times
                .filter_map(|(_, r, _)| r.as_ref().ok())
                .max()
                .map_or("-".into(), |ms| ms.to_string()),
        }
    }
}

/// Opens `n` connections from `sources` addresses starting at `base`; failed connects are
/// counted, not fatal (a refusing server is what some of them should meet).
fn open_many(port: u16, n: usize, base: [u8; 3], sources: usize) -> (Vec<TcpStream>, usize) {
    let mut held = Vec::with_capacity(n);
    let mut failed = 0;
    for i in 0..n {
        let source = Ipv4Addr::new(base[0], base[1], base[2], 1 + (i % sources) as u8);
        match connect_from(source, port) {
            Ok(s) => held.push(s),
            Err(_) => failed += 1,
        }
    }
    (held, failed)
}

/// Slow-drip clients: each sends `EHLO drip.test` one byte a second until stopped.
fn drip(port: u16, stop: Arc<AtomicBool>) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let (mut conns, _) = open_many(port, DRIP, [127, 0, 3], 2);
        let line = b"EHLO drip.test\r\n";
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            for c in conns.iter_mut() {
                let _ = c.set_nonblocking(true);
                let _ = c.write(&line[sent % line.len()..][..1]);
                let mut sink = [0u8; 512];
                let _ = c.read(&mut sink);
            }
            sent += 1;
            for _ in 0..10 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        conns.len()
    })
}

/// A connect/disconnect storm for `time`; returns the connections made.
fn storm(port: u16, time: Duration) -> usize {
    let made = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + time;
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let made = made.clone();
            thread::spawn(move || {
                let mut i = 0u32;
                while Instant::now() < deadline && i < 5000 {
                    let source = Ipv4Addr::new(127, 0, 4, 1 + t * 50 + (i % 50) as u8);
                    if connect_from(source, port).is_ok() {
                        made.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    made.load(Ordering::Relaxed)
}

const AUTH_ATTACK_PY: &str = r#"
import collections, smtplib, ssl, sys, threading, time, json
port, clients, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
ctx = ssl._create_unverified_context()
codes, lock = collections.Counter(), threading.Lock()
deadline = time.time() + seconds
def count(key):
    with lock:
        codes[str(key)] += 1
def attack(i):
    source = ("127.0.1.%d" % (i % 250 + 1), 0)
    while time.time() < deadline:
        try:
            s = smtplib.SMTP("127.0.0.1", port, timeout=15, source_address=source)
            s.starttls(context=ctx)
            s.ehlo()
            s.user, s.password = "alice", "wrong-%d" % i
            while time.time() < deadline:
                try:
                    code = s.auth("PLAIN", s.auth_plain)[0]
                except smtplib.SMTPResponseException as e:
                    code = e.smtp_code
                count(code)
                if code != 535:
                    break
            s.close()
        except Exception as e:
            count(type(e).__name__)
            time.sleep(0.1)
threads = [threading.Thread(target=attack, args=(i,)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(codes))
"#;

#[test]
fn idle_drip_storm_and_auth_failures_leave_a_normal_client_served_within_a_second() {
    if skip_unless_peers(SCENARIO) {
        return;
    }
    let nofile = raise_nofile(8192);
    let sink_port = free_port();
    let submission = free_port();
    let mut world = World::builder()
        .smtp()
        .peer(&sink_port)
        .config(&format!(
            "submission_listen = [\"127.0.0.1:{submission}\"]\n"
        ))
        .build();
    let sink = DumpSink::start(&world.env, sink_port);
    world.start_with_listeners(2);
    let out = world
        .env
        .run(&["passwd", "add", "alice"], b"correct horse\n");
    assert_success(&out, "passwd add");
    let pid = world.daemon.as_ref().unwrap().pid();
    let port = world.port;
    let mut probes = Probes::default();
    probes.run(port, "quiet", pid);

    let (idle, idle_failed) = open_many(port, IDLE, [127, 0, 2], 20);
    thread::sleep(Duration::from_millis(2500));
    probes.run(port, "idle", pid);

    let stop = Arc::new(AtomicBool::new(false));
    let dripper = drip(port, stop.clone());
    thread::sleep(Duration::from_secs(3));
    probes.run(port, "drip", pid);

    let stormer = thread::spawn(move || storm(port, Duration::from_secs(4)));
    thread::sleep(Duration::from_millis(500));
    probes.run(port, "storm", pid);
    let stormed = stormer.join().unwrap();

    let attack_args = [
        submission.to_string(),
        AUTH_CLIENTS.to_string(),
        "8".to_string(),
    ];
    let attacker = thread::spawn(move || {
        let args: Vec<&str> = attack_args.iter().map(String::as_str).collect();
        String::from_utf8_lossy(&python(AUTH_ATTACK_PY, &args, b"")).into_owned()
    });
    thread::sleep(Duration::from_secs(3));
    probes.run(port, "auth", pid);
    let auth_codes = attacker.join().unwrap();
    let peak = peak_rss_kib(pid).unwrap_or(0) / 1024;

    stop.store(true, Ordering::Relaxed);
    let dripped = dripper.join().unwrap();
    drop(idle);
    thread::sleep(Duration::from_secs(1));
    let rss_after = rss_kib(pid).unwrap_or(0) / 1024;
    probes.run(port, "after", pid);

    sink.wait_for(&probes.acked, DEADLINE);
    let copies = sink.copies();
    let attempted = probes.results.len();
    let phases = ["quiet", "idle", "drip", "storm", "auth", "after"];
    let worst: Vec<String> = phases
        .iter()
        .map(|p| format!("{p}:{}", probes.worst_ms(p)))
        .collect();
    Summary {
        scenario: SCENARIO,
        runs: phases.len(),
        acknowledged: probes.acked.len(),
        lost: copies.lost(&probes.acked).len(),
        duplicated: copies.duplicated(),
        notes: format!(
            "probes={attempted} worst_probe_ms=[{}] peak_rss_mib={peak} peak_by_phase=[{}] \
             rss_after_mib={rss_after} \
             idle_open={} idle_connect_failed={idle_failed} drip={dripped} storm_connections={stormed} \
             auth_replies={} nofile={nofile} max_load_factor={:.1}",
            worst.join(","),
            probes.peaks.join(","),
            IDLE - idle_failed,
            auth_codes.trim(),
            probes.results.iter().map(|r| r.2).fold(1.0, f64::max),
        ),
    }
    .print();

    // Each probe against its own bound: 1 s times the load factor around it.
    let failures: Vec<&(&str, Result<u128, String>, f64)> = probes
        .results
        .iter()
        .filter(|(_, r, load)| {
            let limit = PROBE_LIMIT.mul_f64(*load).as_millis();
            r.as_ref().map_or(true, |ms| *ms > limit)
        })
        .collect();
    assert!(
        failures.is_empty(),
        "the normal client was not served within {PROBE_LIMIT:?} x load factor: {failures:?}"
    );
    assert!(
        peak <= RSS_LIMIT_MIB,
        "peak RSS {peak} MiB > {RSS_LIMIT_MIB} MiB"
    );
    assert!(copies.lost(&probes.acked).is_empty(), "probe mail lost");
    assert!(
        auth_codes.contains("535"),
        "the AUTH attack never got a check: {auth_codes}"
    );
}
