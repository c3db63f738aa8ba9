//! A real DNSSEC-validating resolver for the DANE tests ([`Validator`]): Debian's `unbound`
//! on a free loopback port, serving each test zone as an `auth-zone` it resolves through
//! its validator. Signed zones are signed with `ldns-keygen` / `ldns-signzone` (Debian's
//! ldnsutils) under a fresh key per test, and that key is unbound's trust anchor for the
//! zone, so their answers carry AD; unsigned zones have no anchor and are insecure (no AD),
//! as an unsigned domain on the Internet is. Mailroom points `dns_nameservers` at it.
//!
//! Zones are written as zone-file lines relative to their origin (`mx IN A 127.0.0.1`);
//! the SOA and NS records are added here. unbound runs in the foreground with its own
//! configuration (no system files, no chroot, no privilege change) and is killed on drop.

use std::fs;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::machine::free_port;
use crate::wait::wait_until;

/// One test zone: its origin (`dane.example`) and records, signed or not.
pub struct TestZone {
    pub origin: String,
    pub records: Vec<String>,
    pub signed: bool,
    /// Text replaced in the signed file after signing (`from`, `to`): a record whose
    /// signature no longer matches, which a validating resolver calls bogus (SERVFAIL).
    pub tamper: Option<(String, String)>,
}

impl TestZone {
    /// A zone whose records unbound validates (AD set in answers).
    pub fn signed(origin: &str, records: &[&str]) -> TestZone {
        TestZone::new(origin, records, true)
    }

    /// A zone without signatures or trust anchor (insecure answers).
    pub fn unsigned(origin: &str, records: &[&str]) -> TestZone {
        TestZone::new(origin, records, false)
    }

    /// A signed zone in which `from` is replaced by `to` after signing (bogus data).
    pub fn tampered(origin: &str, records: &[&str], from: &str, to: &str) -> TestZone {
        TestZone {
            tamper: Some((from.to_string(), to.to_string())),
            ..TestZone::new(origin, records, true)
        }
    }

    fn new(origin: &str, records: &[&str], signed: bool) -> TestZone {
        TestZone {
            origin: origin.trim_end_matches('.').to_string(),
            records: records.iter().map(|r| r.to_string()).collect(),
            signed,
            tamper: None,
        }
    }
}

/// The running resolver.
pub struct Validator {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Validator {
    /// Writes (and signs) `zones`, then starts unbound and waits until it answers for the
    /// first zone.
    pub fn start(zones: &[TestZone]) -> Validator {
        let dir = tempfile::tempdir().expect("unbound dir");
        let mut conf = String::new();
        let mut anchors = String::new();
        for zone in zones {
            let file = write_zone(dir.path(), zone);
            if zone.signed {
                let key = sign(dir.path(), zone);
                if let Some((from, to)) = &zone.tamper {
                    let text = fs::read_to_string(&file).expect("signed zone");
                    assert!(
                        text.contains(from.as_str()),
                        "{from:?} not in the signed zone"
                    );
                    fs::write(&file, text.replace(from.as_str(), to)).expect("tampered zone");
                }
                anchors.push_str(&format!("  trust-anchor-file: \"{key}\"\n"));
            }
            conf.push_str(&format!(
                "auth-zone:\n  name: \"{}.\"\n  zonefile: \"{file}\"\n  for-upstream: yes\n  for-downstream: no\n  fallback-enabled: no\n",
                zone.origin
            ));
        }
        let first = zones.first().map_or("test", |z| z.origin.as_str());
        // The port is free for TCP when picked; if another process takes it first, unbound
        // exits and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            let path = dir.path().join("unbound.conf");
            fs::write(&path, server_conf(dir.path(), port, &anchors) + &conf).expect("conf");
            let log = dir.path().join("unbound.log");
            let mut child = Command::new("unbound")
                .arg("-d")
                .arg("-c")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start unbound (Debian package unbound)");
            let mut exited = false;
            wait_until("unbound answering or exited", || {
                exited = matches!(child.try_wait(), Ok(Some(_)));
                exited || answers(port, first)
            });
            if !exited {
                return Validator {
                    child,
                    port,
                    _dir: dir,
                };
            }
            let text = fs::read_to_string(&log).unwrap_or_default();
            assert!(
                text.contains("could not open ports"),
                "unbound failed: {text}"
            );
        }
        panic!("unbound found no free port");
    }

    /// The `dns_nameservers` entry.
    pub fn nameserver(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Validator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_conf(dir: &Path, port: u16, anchors: &str) -> String {
    let dir = dir.display();
    // "test." and the like are unbound's built-in empty zones (RFC 6761): "nodefault"
    // lets a test zone live under them.
    format!(
        "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  do-daemonize: no\n  \
         username: \"\"\n  chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"\"\n  \
         use-syslog: no\n  logfile: \"{dir}/unbound.log\"\n  verbosity: 1\n  \
         access-control: 127.0.0.0/8 allow\n  module-config: \"validator iterator\"\n  \
         so-reuseport: no\n  num-threads: 1\n  local-zone: \"test.\" nodefault\n  \
         local-zone: \"invalid.\" nodefault\n  val-log-level: 2\n{anchors}"
    )
}

/// The zone file (SOA and NS added); its path.
fn write_zone(dir: &Path, zone: &TestZone) -> String {
    let origin = &zone.origin;
    let mut text = format!(
        "$ORIGIN {origin}.\n$TTL 300\n@ IN SOA ns.{origin}. root.{origin}. 1 3600 600 86400 300\n\
         @ IN NS ns.{origin}.\nns IN A 127.0.0.1\n"
    );
    for record in &zone.records {
        text.push_str(record);
        text.push('\n');
    }
    let path = dir.join(format!("{origin}.zone"));
    fs::write(&path, text).expect("zone file");
    match zone.signed {
        true => format!("{}.signed", path.display()),
        false => path.display().to_string(),
    }
}

/// Makes a key for the zone, signs its file (`ORIGIN.zone.signed`); the trust anchor file.
fn sign(dir: &Path, zone: &TestZone) -> String {
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("run {program} (Debian package ldnsutils): {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let key = run(
        "ldns-keygen",
        &["-a", "ECDSAP256SHA256", "-k", &zone.origin],
    );
    run("ldns-signzone", &[&format!("{}.zone", zone.origin), &key]);
    dir.join(format!("{key}.key")).display().to_string()
}

/// True when a SOA question for `origin` gets an answer (any rcode) on `port`.
fn answers(port: u16, origin: &str) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let mut query = vec![0x4d, 0x52, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in origin.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 6, 0, 1]);
    if socket.send_to(&query, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    matches!(socket.recv(&mut buf), Ok(n) if n >= 12 && buf[..2] == [0x4d, 0x52])
}
