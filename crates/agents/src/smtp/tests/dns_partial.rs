//! Regression: a temporary AAAA failure while the A lookup succeeds must not be kept in the
//! next-hop answer table. The host's only listening server is on its IPv6 address (its IPv4
//! address refuses connections); a small DNS server of this test answers A at once and
//! AAAA with SERVFAIL until told otherwise (testkit's DNS server has no AAAA records). Once
//! AAAA answers, the next delivery must find the IPv6 server — before the fix, the A-only
//! set was kept for the A record's 60 s TTL and the mail was deferred meanwhile.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use envelope::OutcomeKind::{Deferred, Sent};
use tokio::net::UdpSocket;

use super::server::{Behaviour, TestServer};
use super::*;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// The DNS server: `mx.test` has A 127.0.0.1 and, once `aaaa_ok`, AAAA ::1 (SERVFAIL
/// before); every other name is NXDOMAIN. Counts the AAAA questions.
struct PartialDns {
    addr: SocketAddr,
    aaaa_ok: Arc<AtomicBool>,
    aaaa_questions: Arc<AtomicUsize>,
}

impl PartialDns {
    async fn start() -> PartialDns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let aaaa_ok = Arc::new(AtomicBool::new(false));
        let aaaa_questions = Arc::new(AtomicUsize::new(0));
        let (ok, asked) = (aaaa_ok.clone(), aaaa_questions.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                if let Some(answer) = answer(&buf[..n], &ok, &asked) {
                    let _ = socket.send_to(&answer, from).await;
                }
            }
        });
        PartialDns {
            addr,
            aaaa_ok,
            aaaa_questions,
        }
    }
}

/// The reply to one query (None for anything unreadable).
fn answer(query: &[u8], aaaa_ok: &AtomicBool, asked: &AtomicUsize) -> Option<Vec<u8>> {
    // The question: labels from byte 12, then type and class.
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question = query.get(12..at + 4)?;
    let known = labels.join(".") == "mx.test";
    let (rcode, rdata): (u8, Option<(u16, Vec<u8>)>) = match (known, qtype) {
        (false, _) => (3, None),
        (true, TYPE_A) => (0, Some((TYPE_A, Ipv4Addr::LOCALHOST.octets().to_vec()))),
        (true, TYPE_AAAA) => {
            asked.fetch_add(1, Ordering::SeqCst);
            match aaaa_ok.load(Ordering::SeqCst) {
                true => (0, Some((TYPE_AAAA, Ipv6Addr::LOCALHOST.octets().to_vec()))),
                false => (2, None),
            }
        }
        (true, _) => (0, None),
    };
    let mut out = query.get(..2)?.to_vec(); // ID
    out.push(0x84 | (query[2] & 0x01)); // QR, AA, RD echoed
    out.push(0x80 | rcode); // RA, RCODE
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&u16::from(rdata.is_some()).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // NSCOUNT, ARCOUNT
    out.extend_from_slice(question);
    if let Some((rtype, rdata)) = rdata {
        out.extend_from_slice(&[0xc0, 12]); // the question's name
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&60u32.to_be_bytes()); // TTL
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}

/// A server on [::1] at a port where nothing listens on 127.0.0.1.
async fn ipv6_only_server() -> TestServer {
    for _ in 0..20 {
        let server = TestServer::start_on("[::1]:0".parse().unwrap(), Behaviour::default()).await;
        if std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, server.port())).is_err() {
            return server;
        }
    }
    panic!("no port free on 127.0.0.1 beside one on ::1");
}

#[tokio::test]
async fn a_temporary_aaaa_failure_is_not_kept_and_the_ipv6_server_is_found_once_it_answers() {
    let dns = PartialDns::start().await;
    let server = ipv6_only_server().await;
    let mut s = settings(server.port());
    s.dns_nameservers = vec![dns.addr.to_string()];
    let client = client(s);
    let hop = Nexthop {
        host: "mx.test".into(),
        port: Some(server.port()),
        mx_lookup: false,
    };
    let env = envelope("f@a.example", &["user@mx.test"]);

    let report = deliver_all(&client, &hop, &env, MESSAGE).await;
    assert_eq!(kinds(&report), [Deferred], "only 127.0.0.1, which refuses");
    assert!(dns.aaaa_questions.load(Ordering::SeqCst) >= 1);

    dns.aaaa_ok.store(true, Ordering::SeqCst);
    let report = deliver_all(&client, &hop, &env, MESSAGE).await;
    assert_eq!(
        kinds(&report),
        [Sent],
        "the AAAA answer is asked again, not the partial set reused: {report:?}"
    );
    assert_eq!(
        report.outcomes[0].relay,
        format!("mx.test[::1]:{}", server.port())
    );
    assert_eq!(server.transcript().messages.len(), 1);
}
