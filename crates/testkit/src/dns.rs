//! A tiny authoritative DNS server over UDP on loopback ([`Dns`]): answers MX, A and TXT
//! questions from a fixed [`Zone`], NXDOMAIN for unknown names, an empty NOERROR for a known
//! name without records of the asked type (AAAA, say), SERVFAIL where told to. Mailroom's
//! MX tests point `dns_nameservers` at it; `agents`' SMTP client tests use it too. It runs
//! on its own thread (so it serves async and blocking tests alike) until dropped. Records
//! carry the zone's TTL (60 s unless [`Zone::ttl`]); negative answers carry an SOA (whose
//! minimum is the negative TTL, RFC 2308) only with [`Zone::negative_ttl`]; the zone can be
//! replaced while the server runs ([`Dns::set_zone`]: a changed record).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::peer::lock;

const TYPE_A: u16 = 1;
const TYPE_MX: u16 = 15;
const TYPE_TXT: u16 = 16;
const TYPE_SOA: u16 = 6;

/// The zone: names (lower case, no trailing dot) and their MX and A records. Unknown names
/// get NXDOMAIN; a known name without records of the asked type gets an empty NOERROR; a
/// name marked [`Zone::servfail`] gets SERVFAIL (a temporary DNS failure).
#[derive(Clone, Debug, Default)]
pub struct Zone {
    mx: HashMap<String, Vec<(u16, String)>>,
    a: HashMap<String, Vec<Ipv4Addr>>,
    txt: HashMap<String, Vec<String>>,
    servfail: Vec<String>,
    ttl: Option<u32>,
    negative_ttl: Option<u32>,
}

impl Zone {
    /// The TTL of every record (60 s if not set).
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.ttl = Some(seconds);
        self
    }

    /// NXDOMAIN and no-data answers carry an SOA for the zone's apex whose TTL and minimum
    /// are `seconds` (the negative TTL a resolver may keep them for).
    pub fn negative_ttl(mut self, seconds: u32) -> Self {
        self.negative_ttl = Some(seconds);
        self
    }

    /// `exchange` "." is a null MX (RFC 7505).
    pub fn mx(mut self, name: &str, preference: u16, exchange: &str) -> Self {
        self.mx
            .entry(name.to_string())
            .or_default()
            .push((preference, exchange.to_string()));
        self
    }

    pub fn a(mut self, name: &str, ip: &str) -> Self {
        self.a
            .entry(name.to_string())
            .or_default()
            .push(ip.parse().expect("IPv4 address"));
        self
    }

    /// A TXT record (a DKIM key, an MTA-STS record); a long value is sent as several
    /// strings of at most 255 bytes, as in a zone file, which resolvers join back.
    pub fn txt(mut self, name: &str, value: &str) -> Self {
        self.txt
            .entry(name.to_string())
            .or_default()
            .push(value.to_string());
        self
    }

    pub fn servfail(mut self, name: &str) -> Self {
        self.servfail.push(name.to_string());
        self
    }

    fn exists(&self, name: &str) -> bool {
        self.mx.contains_key(name) || self.a.contains_key(name) || self.txt.contains_key(name)
    }
}

/// The DNS server; `queries` lists `name type` of every question it got.
pub struct Dns {
    pub port: u16,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dns {
    pub fn start(zone: Zone) -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind DNS");
        let port = socket.local_addr().unwrap().port();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let zone = Arc::new(Mutex::new(zone));
        let (q, sp, z) = (queries.clone(), stop.clone(), zone.clone());
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !sp.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let answer = dns_answer(&lock(&z), &buf[..len]);
                if let Some((answer, question)) = answer {
                    lock(&q).push(question);
                    let _ = socket.send_to(&answer, from);
                }
            }
        });
        Dns {
            port,
            zone,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    /// `dns_nameservers = [...]` value.
    pub fn nameserver(&self) -> String {
        self.address().to_string()
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn queries(&self) -> Vec<String> {
        lock(&self.queries).clone()
    }

    /// From now on answers from `zone` (a record changed at the destination).
    pub fn set_zone(&self, zone: Zone) {
        *lock(&self.zone) = zone;
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The answer to one query and a `name type` description, or None for garbage.
fn dns_answer(zone: &Zone, query: &[u8]) -> Option<(Vec<u8>, String)> {
    let (name, end) = read_name(query, 12)?;
    let qtype = u16::from_be_bytes([*query.get(end)?, *query.get(end + 1)?]);
    let question = query.get(12..end + 4)?;
    let name = name.to_ascii_lowercase();
    let (rcode, answers) = if zone.servfail.contains(&name) {
        (2u8, Vec::new())
    } else if zone.exists(&name) {
        (0u8, records(zone, &name, qtype))
    } else {
        (3u8, Vec::new())
    };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[..2]); // ID
    out.push(0x84 | (query[2] & 0x01)); // QR, AA, RD echoed
    out.push(0x80 | rcode); // RA, RCODE
                            // A negative answer's SOA, in the authority section (owner: the last two labels).
    let soa = zone
        .negative_ttl
        .filter(|_| rcode != 2 && answers.is_empty())
        .map(|ttl| (apex(&name), ttl));
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&u16::from(soa.is_some()).to_be_bytes()); // NSCOUNT
    out.extend_from_slice(&[0, 0]); // ARCOUNT
    out.extend_from_slice(question);
    let ttl = zone.ttl.unwrap_or(60);
    for (rtype, rdata) in answers {
        out.extend_from_slice(&[0xc0, 12]); // the question's name
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    if let Some((apex, ttl)) = soa {
        let mut rdata = encode_name(&format!("ns.{apex}"));
        rdata.extend(encode_name(&format!("hostmaster.{apex}")));
        for field in [1u32, 3600, 600, 86400, ttl] {
            rdata.extend_from_slice(&field.to_be_bytes()); // serial .. minimum
        }
        out.extend(encode_name(&apex));
        out.extend_from_slice(&TYPE_SOA.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some((out, format!("{name} {qtype}")))
}

/// The zone apex a name's SOA is given for: its last two labels.
fn apex(name: &str) -> String {
    let labels: Vec<&str> = name.split('.').filter(|l| !l.is_empty()).collect();
    labels[labels.len().saturating_sub(2)..].join(".")
}

fn records(zone: &Zone, name: &str, qtype: u16) -> Vec<(u16, Vec<u8>)> {
    match qtype {
        TYPE_MX => zone
            .mx
            .get(name)
            .into_iter()
            .flatten()
            .map(|(pref, exchange)| {
                let mut rdata = pref.to_be_bytes().to_vec();
                rdata.extend(encode_name(exchange));
                (TYPE_MX, rdata)
            })
            .collect(),
        TYPE_A => zone
            .a
            .get(name)
            .into_iter()
            .flatten()
            .map(|ip| (TYPE_A, ip.octets().to_vec()))
            .collect(),
        TYPE_TXT => zone
            .txt
            .get(name)
            .into_iter()
            .flatten()
            .map(|value| {
                let mut rdata = Vec::new();
                for chunk in value.as_bytes().chunks(255) {
                    rdata.push(chunk.len() as u8);
                    rdata.extend_from_slice(chunk);
                }
                (TYPE_TXT, rdata)
            })
            .collect(),
        _ => Vec::new(), // AAAA and the rest: the name exists, no data
    }
}

fn read_name(packet: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    loop {
        let len = *packet.get(at)? as usize;
        at += 1;
        if len == 0 {
            return Some((labels.join("."), at));
        }
        if len > 63 {
            return None; // compression in a question: not from our resolver
        }
        labels.push(String::from_utf8_lossy(packet.get(at..at + len)?).to_string());
        at += len;
    }
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

#[test]
fn encodes_root_and_names() {
    assert_eq!(encode_name("."), vec![0]);
    assert_eq!(encode_name("a.bc"), vec![1, b'a', 2, b'b', b'c', 0]);
}
