//! A tiny authoritative DNS server over UDP on loopback for tests: answers MX, A and AAAA
//! questions from a fixed zone, NXDOMAIN for unknown names, SERVFAIL where told to.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;

const MX: u16 = 15;
const A: u16 = 1;

/// The zone: names (lower case, no trailing dot) and what they hold.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    mx: HashMap<String, Vec<(u16, String)>>,
    a: HashMap<String, Vec<Ipv4Addr>>,
    servfail: Vec<String>,
}

impl Zone {
    /// `exchange` "." is a null MX.
    pub fn mx(mut self, name: &str, preference: u16, exchange: &str) -> Self {
        let list = self.mx.entry(name.to_string()).or_default();
        list.push((preference, exchange.to_string()));
        self
    }

    pub fn a(mut self, name: &str, ip: &str) -> Self {
        let list = self.a.entry(name.to_string()).or_default();
        list.push(ip.parse().unwrap());
        self
    }

    pub fn servfail(mut self, name: &str) -> Self {
        self.servfail.push(name.to_string());
        self
    }

    fn exists(&self, name: &str) -> bool {
        self.mx.contains_key(name) || self.a.contains_key(name)
    }
}

/// Starts the server; returns its address for `dns_nameservers`.
pub async fn start(zone: Zone) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let zone = Arc::new(zone);
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            if let Some(answer) = respond(&zone, &buf[..len]) {
                let _ = socket.send_to(&answer, from).await;
            }
        }
    });
    addr
}

/// The answer to one query, or None for garbage.
fn respond(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let (name, question_end) = read_name(query, 12)?;
    let qtype = u16::from_be_bytes([*query.get(question_end)?, *query.get(question_end + 1)?]);
    let question = query.get(12..question_end + 4)?;
    let lower = name.to_ascii_lowercase();
    let (rcode, answers) = if zone.servfail.contains(&lower) {
        (2, Vec::new())
    } else if !zone.exists(&lower) {
        (3, Vec::new())
    } else {
        (0, records(zone, &lower, qtype))
    };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[..2]); // ID
    let rd = query[2] & 0x01;
    out.push(0x84 | rd); // QR, AA, RD echoed
    out.push(0x80 | rcode); // RA, RCODE
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // NSCOUNT, ARCOUNT
    out.extend_from_slice(question);
    for (rtype, rdata) in answers {
        out.extend_from_slice(&[0xc0, 12]); // pointer to the question name
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&60u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}

fn records(zone: &Zone, name: &str, qtype: u16) -> Vec<(u16, Vec<u8>)> {
    match qtype {
        MX => zone
            .mx
            .get(name)
            .into_iter()
            .flatten()
            .map(|(pref, exchange)| {
                let mut rdata = pref.to_be_bytes().to_vec();
                rdata.extend(encode_name(exchange));
                (MX, rdata)
            })
            .collect(),
        A => zone
            .a
            .get(name)
            .into_iter()
            .flatten()
            .map(|ip| (A, ip.octets().to_vec()))
            .collect(),
        _ => Vec::new(), // AAAA and the rest: the name exists, no data
    }
}

/// Reads an uncompressed question name starting at `at`; returns it and the offset after.
fn read_name(packet: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    loop {
        let len = *packet.get(at)? as usize;
        at += 1;
        if len == 0 {
            return Some((labels.join("."), at));
        }
        let label = packet.get(at..at + len)?;
        labels.push(String::from_utf8_lossy(label).to_string());
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
