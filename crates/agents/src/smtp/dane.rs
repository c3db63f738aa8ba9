//! DANE for SMTP (RFC 7672): the TLS policy of one MX host at the `dane` and `dane-only`
//! levels, from DNSSEC-validated MX, address and TLSA records.
//!
//! Like Postfix, mailroom does not validate DNSSEC itself: it asks the configured resolver
//! (`dns_nameservers`, else /etc/resolv.conf; a validating resolver such as unbound on
//! loopback, the path Postfix's DANE documentation asks for) with the DO and AD bits set and
//! trusts an answer only when the resolver set AD (RFC 4035 3.2.3, RFC 6840 5.8). A bogus
//! answer is a SERVFAIL from a validating resolver.
//!
//! Per host (Postfix's `dane_init`, with its words for each outcome):
//! ```text
//! MX RRset insecure, or host addresses insecure ─► "non DNSSEC destination"   dane: may        dane-only: 4.7.5
//! TLSA lookup failed (SERVFAIL, timeout)       ─► 4.7.5 "TLSA lookup error for host:port" (both)
//! no TLSA records, or an insecure answer       ─► "no TLSA records found"     dane: may        dane-only: 4.7.5
//! only unusable records (PKIX-TA/EE, unknown)  ─► "TLSA records unusable"     dane: encrypt    dane-only: 4.7.5
//! usable DANE-TA(2) / DANE-EE(3) records       ─► DANE: the certificate must match one (tls.rs)
//! ```
//! Invariants: no TLSA record is used unless its RRset, the MX RRset (when there was an MX
//! lookup) and the host's address RRset were all validated; a TLSA lookup error never
//! downgrades, it defers. Security stance: every answer is untrusted input; the AD bit is
//! only as good as the path to the resolver (use one on loopback).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_resolver::proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::failure::Failure;
use super::policy::TlsPolicy;
use super::settings::{InetProtocols, SmtpTlsLevel};

/// One usable TLSA record: DANE-TA(2) or DANE-EE(3), selector 0 (certificate) or 1 (public
/// key), matching 0 (exact), 1 (SHA-256) or 2 (SHA-512).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tlsa {
    /// True for DANE-TA(2): the record names a trust anchor of the chain.
    pub trust_anchor: bool,
    /// True for selector 1 (SubjectPublicKeyInfo), false for 0 (the whole certificate).
    pub spki: bool,
    pub matching: Matching,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// The record if mailroom can use it (RFC 7672 3.1: PKIX-TA/PKIX-EE are unusable in SMTP).
    fn usable(
        usage: CertUsage,
        selector: Selector,
        matching: Matching,
        data: &[u8],
    ) -> Option<Self> {
        let trust_anchor = match usage {
            CertUsage::DaneTa => true,
            CertUsage::DaneEe => false,
            _ => return None,
        };
        let spki = match selector {
            Selector::Full => false,
            Selector::Spki => true,
            _ => return None,
        };
        let length_ok = match matching {
            Matching::Raw => !data.is_empty(),
            Matching::Sha256 => data.len() == 32,
            Matching::Sha512 => data.len() == 64,
            _ => false,
        };
        length_ok.then(|| Tlsa {
            trust_anchor,
            spki,
            matching,
            data: data.to_vec(),
        })
    }

    /// True when the selected part of `der` (a certificate) matches this record.
    pub fn matches(&self, der: &[u8]) -> bool {
        let selected = if self.spki {
            let cert = rustls::pki_types::CertificateDer::from(der);
            match webpki::EndEntityCert::try_from(&cert) {
                Ok(parsed) => parsed.subject_public_key_info().as_ref().to_vec(),
                Err(_) => return false,
            }
        } else {
            der.to_vec()
        };
        match self.matching {
            Matching::Raw => selected == self.data,
            Matching::Sha256 => digest(&ring::digest::SHA256, &selected) == self.data,
            Matching::Sha512 => digest(&ring::digest::SHA512, &selected) == self.data,
            _ => false,
        }
    }
}

fn digest(algorithm: &'static ring::digest::Algorithm, data: &[u8]) -> Vec<u8> {
    ring::digest::digest(algorithm, data).as_ref().to_vec()
}

/// What the resolver said, and whether it vouched for it (AD).
#[derive(Debug)]
pub(crate) struct Answer {
    pub secure: bool,
    pub rcode: ResponseCode,
    pub records: Vec<Record>,
}

/// DNSSEC-aware queries to the configured resolver (see the module docs).
pub(crate) struct SecureDns {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    /// `inet_protocols`: only the address records of these families are checked.
    families: InetProtocols,
}

impl SecureDns {
    /// The servers of `dns_nameservers` (already checked by [`super::dns::Dns::new`]), else
    /// those of /etc/resolv.conf; none when neither gives any (every query then fails).
    pub fn new(nameservers: &[String], families: InetProtocols) -> SecureDns {
        let servers = if nameservers.is_empty() {
            system_servers()
        } else {
            nameservers
                .iter()
                .filter_map(|s| super::dns::server_address(s))
                .collect()
        };
        SecureDns {
            servers,
            timeout: Duration::from_secs(5),
            families,
        }
    }

    /// Asks each server in turn until one answers; the answer's records of `rtype`.
    pub async fn query(&self, name: &str, rtype: RecordType) -> Result<Answer, String> {
        let qname = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
            .map_err(|e| format!("bad name {name}: {e}"))?;
        let mut last = "no DNS servers configured".to_string();
        for server in &self.servers {
            match ask(*server, &qname, rtype, self.timeout).await {
                Ok(reply) => {
                    let records = reply
                        .answers
                        .into_iter()
                        .filter(|r| r.record_type() == rtype)
                        .collect();
                    return Ok(Answer {
                        secure: reply.metadata.authentic_data,
                        rcode: reply.metadata.response_code,
                        records,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Whether the resolver vouches for the MX RRset of `domain`; `None` when the domain
    /// has no MX records (its implicit MX is the domain itself, RFC 5321 5.1).
    pub async fn mx_is_secure(&self, domain: &str) -> Option<bool> {
        match self.query(domain, RecordType::MX).await {
            Ok(answer) if answer.records.is_empty() => None,
            Ok(answer) => Some(answer.secure),
            Err(_) => Some(false),
        }
    }

    /// True when the address records of `host` (A, else AAAA; only the families
    /// `inet_protocols` names, the ones the session could connect to) are validated.
    pub(super) async fn addresses_are_secure(&self, host: &str) -> bool {
        let families = [
            (self.families.ipv4, RecordType::A),
            (self.families.ipv6, RecordType::AAAA),
        ];
        for rtype in families.into_iter().filter(|f| f.0).map(|f| f.1) {
            if let Ok(answer) = self.query(host, rtype).await {
                if !answer.records.is_empty() {
                    return answer.secure;
                }
            }
        }
        false
    }
}

fn system_servers() -> Vec<SocketAddr> {
    match hickory_resolver::system_conf::read_system_conf() {
        Ok((config, _)) => config
            .name_servers()
            .iter()
            .map(|ns| {
                let port = ns.connections.first().map_or(53, |c| c.port);
                SocketAddr::new(ns.ip, port)
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// One query with DO and AD set, over UDP; again over TCP when the answer is truncated.
async fn ask(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    limit: Duration,
) -> Result<Message, String> {
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.metadata.authentic_data = true;
    query.add_query(Query::query(name.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true).set_max_payload(1232);
    query.set_edns(edns);
    let bytes = query.to_vec().map_err(|e| e.to_string())?;
    let id = query.metadata.id;
    let exchange = async {
        let reply = udp(server, &bytes, id).await?;
        if reply.metadata.truncation {
            return tcp(server, &bytes, id).await;
        }
        Ok(reply)
    };
    let reply = tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("DNS query to {server} timed out"))??;
    let same_question = reply
        .queries
        .first()
        .is_some_and(|q| q.query_type() == rtype && q.name() == name);
    if reply.metadata.message_type != MessageType::Response || !same_question {
        return Err(format!("DNS server {server} answered another question"));
    }
    Ok(reply)
}

async fn udp(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, String> {
    let local: SocketAddr = match server.ip() {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("address literal"),
        IpAddr::V6(_) => "[::]:0".parse().expect("address literal"),
    };
    let socket = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    socket.send(bytes).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
        // Anything but the answer to our query (a late or forged datagram) is skipped.
        if let Ok(reply) = Message::from_vec(&buf[..n]) {
            if reply.metadata.id == id {
                return Ok(reply);
            }
        }
    }
}

async fn tcp(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, String> {
    let mut stream = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let length = u16::try_from(bytes.len()).map_err(|e| e.to_string())?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.map_err(|e| e.to_string())?;
    let mut length = [0u8; 2];
    stream
        .read_exact(&mut length)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| e.to_string())?;
    let reply = Message::from_vec(&buf).map_err(|e| e.to_string())?;
    match reply.metadata.id == id {
        true => Ok(reply),
        false => Err(format!("DNS server {server} answered another query")),
    }
}

/// What resolving a DANE level per MX host needs: the queries, and whether the MX RRset
/// the hosts came from was validated (`None`: no MX lookup, or no MX records).
#[derive(Clone, Copy)]
pub(crate) struct Dane<'a> {
    pub dns: &'a SecureDns,
    pub mx_secure: Option<bool>,
}

/// Why DANE does not apply to a host (Postfix's three kinds).
enum Incompatible {
    /// The destination is not DNSSEC-signed, or publishes no TLSA records.
    NonDane(&'static str),
    /// TLSA records exist but none can authenticate the server.
    CannotAuthenticate(&'static str),
}

/// The TLS policy for the MX host `host` (port `port`) of a destination at a DANE level;
/// `mx_secure` is `Some(validated)` when `host` came from an MX lookup. A dane-only host
/// DANE cannot apply to, or a TLSA lookup error, is a deferral.
pub(crate) async fn host_policy(
    dns: &SecureDns,
    policy: &TlsPolicy,
    mx_secure: Option<bool>,
    host: &str,
    port: u16,
) -> Result<TlsPolicy, Failure> {
    let outcome = tlsa_records(dns, mx_secure, host, port).await?;
    let why = match outcome {
        Ok(records) => {
            return Ok(TlsPolicy {
                matches: vec!["hostname".into()],
                tlsa: records,
                ..policy.clone()
            })
        }
        Err(why) => why,
    };
    if policy.level == SmtpTlsLevel::DaneOnly {
        let text = match why {
            Incompatible::NonDane(text) | Incompatible::CannotAuthenticate(text) => text,
        };
        return Err(Failure::deferred("4.7.5", text));
    }
    let level = match why {
        Incompatible::NonDane(_) if policy.sts_enforced => SmtpTlsLevel::Verify,
        Incompatible::NonDane(_) => SmtpTlsLevel::May,
        Incompatible::CannotAuthenticate(_) => SmtpTlsLevel::Encrypt,
    };
    let matches = match level {
        SmtpTlsLevel::Verify => vec!["hostname".into()],
        _ => Vec::new(),
    };
    Ok(TlsPolicy {
        level,
        matches,
        tlsa: Vec::new(),
        ..policy.clone()
    })
}

/// The usable TLSA records of `host`, or why there are none; a lookup error is a deferral.
async fn tlsa_records(
    dns: &SecureDns,
    mx_secure: Option<bool>,
    host: &str,
    port: u16,
) -> Result<Result<Vec<Tlsa>, Incompatible>, Failure> {
    const NON_DNSSEC: Incompatible = Incompatible::NonDane("non DNSSEC destination");
    if mx_secure == Some(false) || host.parse::<IpAddr>().is_ok() {
        return Ok(Err(NON_DNSSEC));
    }
    if !dns.addresses_are_secure(host).await {
        return Ok(Err(NON_DNSSEC));
    }
    let lookup_error =
        || Failure::deferred("4.7.5", format!("TLSA lookup error for {host}:{port}"));
    let answer = dns
        .query(&format!("_{port}._tcp.{host}"), RecordType::TLSA)
        .await
        .map_err(|why| {
            tracing::debug!(target: "smtp", "TLSA lookup of {host}:{port} failed: {why}");
            lookup_error()
        })?;
    match answer.rcode {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        _ => return Err(lookup_error()),
    }
    if !answer.secure || answer.records.is_empty() {
        return Ok(Err(Incompatible::NonDane("no TLSA records found")));
    }
    let usable: Vec<Tlsa> = answer
        .records
        .iter()
        .filter_map(|r| match &r.data {
            RData::TLSA(t) => Tlsa::usable(t.cert_usage, t.selector, t.matching, &t.cert_data),
            _ => None,
        })
        .collect();
    match usable.is_empty() {
        true => Ok(Err(Incompatible::CannotAuthenticate(
            "TLSA records unusable",
        ))),
        false => Ok(Ok(usable)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dane_ta_and_dane_ee_records_are_usable() {
        let sha = [7u8; 32];
        assert!(Tlsa::usable(CertUsage::DaneEe, Selector::Spki, Matching::Sha256, &sha).is_some());
        assert!(Tlsa::usable(CertUsage::DaneTa, Selector::Full, Matching::Sha256, &sha).is_some());
        assert!(Tlsa::usable(CertUsage::PkixEe, Selector::Spki, Matching::Sha256, &sha).is_none());
        assert!(Tlsa::usable(CertUsage::PkixTa, Selector::Full, Matching::Sha256, &sha).is_none());
        // A digest of the wrong length can match nothing.
        assert!(Tlsa::usable(CertUsage::DaneEe, Selector::Spki, Matching::Sha512, &sha).is_none());
        assert!(Tlsa::usable(
            CertUsage::DaneEe,
            Selector::Unassigned(9),
            Matching::Raw,
            &sha
        )
        .is_none());
    }

    #[test]
    fn records_match_the_certificate_or_its_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["mx.example".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der().to_vec();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let record = |spki_selector: bool, matching: Matching, data: Vec<u8>| Tlsa {
            trust_anchor: false,
            spki: spki_selector,
            matching,
            data,
        };
        assert!(record(false, Matching::Raw, der.clone()).matches(&der));
        assert!(record(true, Matching::Sha256, digest(&ring::digest::SHA256, &spki)).matches(&der));
        assert!(record(false, Matching::Sha512, digest(&ring::digest::SHA512, &der)).matches(&der));
        assert!(!record(true, Matching::Sha256, vec![0; 32]).matches(&der));
        assert!(
            !record(true, Matching::Raw, der.clone()).matches(&der),
            "the key, not the certificate"
        );
    }
}
