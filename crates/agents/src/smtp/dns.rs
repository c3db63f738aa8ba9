//! Where to connect for a nexthop: MX records sorted by preference (equal preferences in
//! random order), their addresses, the A/AAAA fallback when a domain has no MX, and the
//! DNS verdicts that end a delivery before any connection (RFC 5321 5.1, RFC 7505).
//!
//! Inputs → outputs: a [`Nexthop`] → the [`Peer`]s to try, in order, at most
//! `smtp_mx_address_limit` of them; or a [`Failure`]: NXDOMAIN → bounced 5.1.2, null MX →
//! bounced 5.1.10, a temporary DNS error → deferred 4.4.3.
//! Invariants: names are looked up fully qualified (no search-list surprises); a temporary
//! error never turns into a bounce; an MX host without addresses is skipped, and only when
//! no host has any is the delivery deferred (a DNS mistake at the destination should not
//! lose mail).
//! Security stance: DNS answers are untrusted input; they only choose addresses to connect
//! to (the SMTP conversation is what decides delivery) and appear in texts as printable names.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use hickory_resolver::config::{ConnectionConfig, LookupIpStrategy, NameServerConfig};
use hickory_resolver::config::{ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;

use super::answers::{Answers, Servers};
use super::conn::Peer;
use super::failure::Failure;
use super::settings::InetProtocols;
use super::SmtpError;
use envelope::Nexthop;

/// The resolver, or why there is none (no usable /etc/resolv.conf): then only IP nexthops
/// work and everything else is deferred with that reason.
pub(crate) struct Dns {
    resolver: Result<TokioResolver, String>,
    /// Each nexthop's servers while their answers are valid ([`super::answers`]).
    answers: Answers,
    /// `inet_protocols`: the families asked for and connected to.
    families: InetProtocols,
}

impl Dns {
    /// `nameservers` (`ip`, `ip:port`, `[ip6]:port`) or, when empty, /etc/resolv.conf.
    pub fn new(nameservers: &[String], families: InetProtocols) -> Result<Dns, SmtpError> {
        let builder = if nameservers.is_empty() {
            match TokioResolver::builder_tokio() {
                Ok(builder) => builder,
                Err(e) => {
                    return Ok(Dns {
                        resolver: Err(format!("cannot read the system DNS configuration: {e}")),
                        answers: Answers::default(),
                        families,
                    })
                }
            }
        } else {
            let servers = nameservers
                .iter()
                .map(|s| name_server(s))
                .collect::<Result<Vec<_>, _>>()?;
            let config = ResolverConfig::from_parts(None, Vec::new(), servers);
            TokioResolver::builder_with_config(config, Default::default())
        };
        // mail-auth's `ring` feature turns on hickory's DNS-over-TLS support, whose default
        // client configuration loads the system's CA store when the resolver is built and
        // fails where there is none (a minimal system without ca-certificates): the daemon
        // would not start. mailroom never asks over TLS, so the resolver gets a configuration
        // that trusts nothing.
        let mut builder = builder.with_tls_config(no_dns_over_tls()?);
        set_options(builder.options_mut());
        let resolver = builder
            .build()
            .map_err(|e| SmtpError::Resolver(e.to_string()))?;
        Ok(Dns {
            resolver: Ok(resolver),
            answers: Answers::default(),
            families,
        })
    }

    /// The resolver itself (MTA-STS looks up TXT records with it); `None` without one.
    pub fn resolver(&self) -> Option<&TokioResolver> {
        self.resolver.as_ref().ok()
    }

    /// The addresses to try for `nexthop`, best first, each at `port`.
    pub async fn peers(
        &self,
        nexthop: &Nexthop,
        port: u16,
        limit: usize,
    ) -> Result<Vec<Peer>, Failure> {
        if let Ok(ip) = nexthop.host.parse::<IpAddr>() {
            // Postfix skips an address of a family inet_protocols leaves out ("host not
            // found"); a `[address]` nexthop is the operator's word, so the mail waits.
            if !self.families.allows(ip) {
                return Err(Failure::deferred(
                    "4.4.4",
                    format!("{ip}: host not found: its address family is not in inet_protocols"),
                ));
            }
            return Ok(vec![peer(&nexthop.host, ip, port)]);
        }
        let resolver = self
            .resolver
            .as_ref()
            .map_err(|why| Failure::deferred("4.4.3", why.clone()))?;
        let limit = if limit == 0 { usize::MAX } else { limit };
        let (name, by_mx) = (nexthop.host.as_str(), nexthop.mx_lookup);
        if let Some(servers) = self.answers.get(name, by_mx, Instant::now()) {
            return Ok(kept_peers(&servers, port, limit, fastrand::u64(..)));
        }
        let mx = if by_mx {
            mx_hosts(resolver, name).await?
        } else {
            MxHosts {
                hosts: vec![(0, name.to_string())],
                from_mx: false,
                valid_until: None,
            }
        };
        let resolved =
            addresses(resolver, self.families, &mx.hosts, port, limit, !mx.from_mx).await;
        // Kept only when every answer behind it was positive: an MX RRset (or a `[host]`)
        // and the addresses of every one of its hosts. An implicit MX (no MX records) is not
        // kept: the negative answer's TTL is not known here.
        if let (Some(servers), true) = (resolved.complete, mx.from_mx || !by_mx) {
            let until = mx
                .valid_until
                .into_iter()
                .chain(servers.iter().map(|s| s.1));
            if let Some(until) = until.min() {
                let servers: Servers = servers.into_iter().map(|s| s.0).collect();
                self.answers.put(name, by_mx, servers, until);
            }
        }
        // A `[host]` nexthop is the operator's word (relayhost, transport_maps): a name that
        // does not resolve is a configuration mistake to fix, not a reason to bounce mail.
        match resolved.peers {
            Err(failure) if !by_mx => Err(Failure::deferred("4.4.3", failure.text)),
            other => other,
        }
    }
}

/// A name server from `dns_nameservers`: UDP, plus TCP for truncated answers.
fn name_server(text: &str) -> Result<NameServerConfig, SmtpError> {
    let addr = server_address(text).ok_or_else(|| SmtpError::Nameserver(text.to_string()))?;
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    Ok(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]))
}

/// A `dns_nameservers` entry as a socket address (port 53 when it names none).
pub(crate) fn server_address(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>()
        .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .ok()
}

/// A TLS client configuration with no trust anchors (see [`Dns::new`]).
fn no_dns_over_tls() -> Result<rustls::ClientConfig, SmtpError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SmtpError::Resolver(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Ok(config)
}

fn set_options(opts: &mut ResolverOpts) {
    // IPv4 first: most MX hosts have it, and many hosts have no IPv6 route.
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.timeout = std::time::Duration::from_secs(5);
    opts.attempts = 2;
    // hickory keeps 8,192 answers by default; a delivery needs three (MX, A, AAAA), so
    // with more than ~2,700 domains in turn a domain's answers were gone by its next
    // message and every delivery asked the DNS server again.
    opts.cache_size = 65_536;
}

fn peer(host: &str, ip: IpAddr, port: u16) -> Peer {
    Peer {
        host: host.to_string(),
        addr: SocketAddr::new(ip, port).into(),
    }
}

/// `domain` as an absolute DNS name (IDNA for non-ASCII), or a bounce if it cannot be one.
fn absolute_name(domain: &str) -> Result<Name, Failure> {
    let trimmed = domain.trim_end_matches('.');
    let valid = !trimmed.is_empty() && !trimmed.contains(['\0', ' ', '\t', '\r', '\n']);
    valid
        .then(|| Name::from_utf8(format!("{trimmed}.")).ok())
        .flatten()
        .ok_or_else(|| not_found(domain, "MX", &NameError::NxDomain))
}

/// The servers kept for a nexthop as the peers of one delivery: hosts by preference (equal
/// ones shuffled with `seed`), each host's addresses, at most `limit`.
fn kept_peers(servers: &Servers, port: u16, limit: usize, seed: u64) -> Vec<Peer> {
    let records = servers.iter().map(|(pref, host, _)| (*pref, host.clone()));
    let mut peers = Vec::new();
    for (_, host) in order_records(records.collect(), seed) {
        let room = limit.saturating_sub(peers.len());
        if room == 0 {
            break;
        }
        let ips = servers.iter().find(|s| s.1 == host).map(|s| s.2.as_slice());
        let ips = ips.unwrap_or_default().iter().take(room);
        peers.extend(ips.map(|ip| peer(&host, *ip, port)));
    }
    peers
}

/// What the MX lookup said: the hosts to try, best first (with their preferences), whether
/// they came from MX records (else the domain itself, the implicit MX), and until when the
/// MX answer is valid.
struct MxHosts {
    hosts: Vec<(u16, String)>,
    from_mx: bool,
    valid_until: Option<Instant>,
}

/// The MX hosts of `domain`, best first; or the domain itself when it has no MX (RFC 5321
/// 5.1: the implicit MX).
async fn mx_hosts(resolver: &TokioResolver, domain: &str) -> Result<MxHosts, Failure> {
    let name = absolute_name(domain)?;
    let lookup = match resolver.mx_lookup(name).await {
        Ok(lookup) => lookup,
        Err(e) => {
            return match classify(&e) {
                NameError::NoData => Ok(implicit_mx(domain)),
                kind => Err(not_found(domain, "MX", &kind)),
            }
        }
    };
    let records: Vec<(u16, Name)> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return Ok(implicit_mx(domain));
    }
    // RFC 7505: an MX of "." says the domain accepts no mail at all.
    if records.iter().any(|(_, exchange)| exchange.is_root()) {
        return Err(Failure::bounced(
            "5.1.10",
            format!(
                "recipient address has null MX: domain {domain} does not accept mail (RFC 7505)"
            ),
        ));
    }
    let named = records
        .into_iter()
        .map(|(pref, exchange)| (pref, host_name(&exchange)))
        .collect();
    Ok(MxHosts {
        hosts: order_records(named, fastrand::u64(..)),
        from_mx: true,
        valid_until: Some(lookup.valid_until()),
    })
}

fn implicit_mx(domain: &str) -> MxHosts {
    MxHosts {
        hosts: vec![(0, domain.to_string())],
        from_mx: false,
        valid_until: None,
    }
}

/// A DNS name as we print it: no trailing dot, printable ASCII.
fn host_name(name: &Name) -> String {
    let text = name.to_ascii();
    super::reply::printable(text.trim_end_matches('.').as_bytes())
}

/// Sorts by preference; hosts of equal preference are shuffled (RFC 5321 5.1) with `seed`.
/// A host named twice keeps its best preference.
fn order_records(mut hosts: Vec<(u16, String)>, seed: u64) -> Vec<(u16, String)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    rng.shuffle(&mut hosts);
    // A stable sort keeps the shuffled order within each preference.
    hosts.sort_by_key(|(pref, _)| *pref);
    let mut ordered: Vec<(u16, String)> = Vec::with_capacity(hosts.len());
    for (pref, host) in hosts {
        if !ordered.iter().any(|(_, h)| *h == host) {
            ordered.push((pref, host));
        }
    }
    ordered
}

/// The outcome of looking up a nexthop's hosts: the peers to try (or why there are none),
/// and, when every host was looked up and had addresses, each host with its preference and
/// addresses and until when that answer is valid (what [`Answers`] may keep).
struct Resolved {
    peers: Result<Vec<Peer>, Failure>,
    complete: Option<Vec<KeptHost>>,
}

type KeptHost = ((u16, String, Vec<IpAddr>), Instant);

/// The addresses of `hosts` in order, at most `limit`. When none has any: a bounce if
/// `missing_is_final` (the domain itself has no address) and the name does not exist, else
/// a deferral.
async fn addresses(
    resolver: &TokioResolver,
    families: InetProtocols,
    hosts: &[(u16, String)],
    port: u16,
    limit: usize,
    missing_is_final: bool,
) -> Resolved {
    let mut peers = Vec::new();
    let mut last_error = None;
    let mut kept = Some(Vec::with_capacity(hosts.len()));
    for (pref, host) in hosts {
        if peers.len() >= limit {
            // The hosts after this one were not asked: not a whole answer to keep.
            kept = None;
            break;
        }
        match host_addresses(resolver, families, host).await {
            Ok(found) => {
                let room = limit - peers.len();
                let ips = found.ips;
                peers.extend(ips.iter().take(room).map(|ip| peer(host, *ip, port)));
                // One family's lookup failed for now: usable for this delivery, but not a
                // whole answer to keep (the missing addresses must be asked for next time).
                if found.partial {
                    kept = None;
                }
                if let Some(kept) = kept.as_mut() {
                    kept.push(((*pref, host.clone(), ips), found.valid_until));
                }
            }
            Err(kind) => {
                kept = None;
                last_error = Some((host.clone(), kind));
            }
        }
    }
    if !peers.is_empty() {
        return Resolved {
            peers: Ok(peers),
            complete: kept,
        };
    }
    Resolved {
        peers: Err(no_addresses(last_error, missing_is_final)),
        complete: None,
    }
}

/// Why no host had an address: `last_error` is the last host's failure.
fn no_addresses(last_error: Option<(String, NameError)>, missing_is_final: bool) -> Failure {
    let (host, kind) = last_error.unwrap_or((String::new(), NameError::NoData));
    match kind {
        NameError::NxDomain | NameError::NoData if missing_is_final => {
            not_found(&host, "A", &kind)
        }
        NameError::NxDomain | NameError::NoData => Failure::deferred(
            "4.4.3",
            format!("Host or domain name not found. Name service error for name={host} type=A: MX host has no address"),
        ),
        NameError::Temporary(_) => not_found(&host, "A", &kind),
    }
}

/// A host's addresses: IPv4 first (most MX hosts have it, and many hosts have no IPv6
/// route), until when the answers are valid, and whether one family's lookup failed for now.
#[derive(Debug, PartialEq)]
struct HostAddresses {
    ips: Vec<IpAddr>,
    valid_until: Instant,
    /// The A or the AAAA lookup failed temporarily (the other had addresses): the set is
    /// incomplete, so it is not kept ([`Answers`]).
    partial: bool,
}

/// `host`'s addresses. A and AAAA are asked apart (at once), not with hickory's
/// `lookup_ip`, which answers with one family's addresses when the other's lookup fails and
/// so hides the failure: such a set was kept until the A record expired, without the
/// host's IPv6 addresses. A family `inet_protocols` leaves out is not asked for at all.
async fn host_addresses(
    resolver: &TokioResolver,
    families: InetProtocols,
    host: &str,
) -> Result<HostAddresses, NameError> {
    let name = absolute_name(host).map_err(|_| NameError::NxDomain)?;
    match (families.ipv4, families.ipv6) {
        (true, true) => {
            let (v4, v6) = tokio::join!(
                family(resolver, name.clone(), RecordType::A),
                family(resolver, name, RecordType::AAAA)
            );
            combine(v4, v6)
        }
        // One family: its answer is the whole answer (its error, when it has none).
        (false, true) => combine(
            family(resolver, name, RecordType::AAAA).await,
            Err(NameError::NoData),
        ),
        _ => combine(
            family(resolver, name, RecordType::A).await,
            Err(NameError::NoData),
        ),
    }
}

/// One family's addresses and until when the answer is valid (no addresses: NoData).
async fn family(
    resolver: &TokioResolver,
    name: Name,
    kind: RecordType,
) -> Result<(Vec<IpAddr>, Instant), NameError> {
    let lookup = resolver
        .lookup(name, kind)
        .await
        .map_err(|e| classify(&e))?;
    let ips: Vec<IpAddr> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) if kind == RecordType::A => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) if kind == RecordType::AAAA => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect();
    match ips.is_empty() {
        true => Err(NameError::NoData),
        false => Ok((ips, lookup.valid_until())),
    }
}

/// The A and AAAA outcomes as one: the addresses of both (IPv4 first) until the earlier
/// expiry; one family with addresses and the other without any (NXDOMAIN, no data) is a
/// whole answer, with the other failing temporarily a partial one. With no address at all,
/// a temporary failure of either lookup wins, so a name is never bounced as unknown while
/// one of its lookups could not be made.
fn combine(
    v4: Result<(Vec<IpAddr>, Instant), NameError>,
    v6: Result<(Vec<IpAddr>, Instant), NameError>,
) -> Result<HostAddresses, NameError> {
    let found = |ips, valid_until, partial| HostAddresses {
        ips,
        valid_until,
        partial,
    };
    match (v4, v6) {
        (Ok((mut ips, until4)), Ok((ips6, until6))) => {
            ips.extend(ips6);
            Ok(found(ips, until4.min(until6), false))
        }
        (Ok((ips, until)), Err(other)) | (Err(other), Ok((ips, until))) => {
            let partial = matches!(other, NameError::Temporary(_));
            Ok(found(ips, until, partial))
        }
        (Err(e4), Err(e6)) => Err(match (e4, e6) {
            (NameError::Temporary(why), _) | (_, NameError::Temporary(why)) => {
                NameError::Temporary(why)
            }
            (e4, _) => e4,
        }),
    }
}

/// What a failed lookup means for the mail.
#[derive(Debug, PartialEq)]
enum NameError {
    NxDomain,
    /// The name exists but has no record of that type.
    NoData,
    Temporary(String),
}

fn classify(error: &NetError) -> NameError {
    if error.is_nx_domain() {
        NameError::NxDomain
    } else if error.is_no_records_found() {
        NameError::NoData
    } else {
        NameError::Temporary(error.to_string())
    }
}

/// Postfix's "Host or domain name not found" texts: bounced 5.1.2 when the name does not
/// exist, deferred 4.4.3 when the lookup failed.
fn not_found(name: &str, kind: &str, error: &NameError) -> Failure {
    let name = super::reply::printable(name.as_bytes());
    let prefix =
        format!("Host or domain name not found. Name service error for name={name} type={kind}");
    match error {
        NameError::NxDomain | NameError::NoData => {
            Failure::bounced("5.1.2", format!("{prefix}: Host not found"))
        }
        NameError::Temporary(detail) => {
            tracing::debug!(target: "smtp", "DNS lookup of {name} type={kind} failed: {detail}");
            Failure::deferred("4.4.3", format!("{prefix}: Host not found, try again"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(list: &[(u16, &str)]) -> Vec<(u16, String)> {
        list.iter().map(|(p, h)| (*p, h.to_string())).collect()
    }

    #[test]
    fn preference_order_with_random_ties() {
        let records = mx(&[(20, "c"), (10, "a"), (10, "b"), (30, "d"), (10, "a")]);
        let mut firsts = std::collections::HashSet::new();
        for seed in 0..64 {
            let order: Vec<String> = order_records(records.clone(), seed)
                .into_iter()
                .map(|(_, host)| host)
                .collect();
            assert_eq!(order.len(), 4, "duplicates removed: {order:?}");
            assert_eq!(&order[2..], ["c", "d"]);
            firsts.insert(order[0].clone());
        }
        assert_eq!(firsts.len(), 2, "equal preferences must be shuffled");
    }

    #[test]
    fn nameserver_syntax() {
        assert_eq!(
            name_server("127.0.0.1:5353").unwrap().ip.to_string(),
            "127.0.0.1"
        );
        let v6 = name_server("[::1]:53").unwrap();
        assert_eq!(v6.connections[0].port, 53);
        assert_eq!(name_server("10.0.0.1").unwrap().connections[1].port, 53);
        assert!(name_server("resolver.example").is_err());
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn a_temporary_aaaa_failure_beside_good_a_records_is_a_partial_answer() {
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(60);
        let servfail = || Err(NameError::Temporary("SERVFAIL".into()));
        let got = combine(Ok((ips(&["192.0.2.1"]), later)), servfail()).unwrap();
        assert_eq!(got.ips, ips(&["192.0.2.1"]), "usable for this delivery");
        assert!(got.partial, "but not to be kept");
        // The same the other way round.
        let got = combine(servfail(), Ok((ips(&["2001:db8::1"]), later))).unwrap();
        assert!(got.partial && got.ips == ips(&["2001:db8::1"]));
    }

    #[test]
    fn both_families_or_one_and_a_negative_answer_are_whole() {
        let now = Instant::now();
        let (soon, later) = (
            now + std::time::Duration::from_secs(30),
            now + std::time::Duration::from_secs(60),
        );
        let both = combine(
            Ok((ips(&["192.0.2.1"]), later)),
            Ok((ips(&["2001:db8::1"]), soon)),
        )
        .unwrap();
        assert_eq!(
            both,
            HostAddresses {
                ips: ips(&["192.0.2.1", "2001:db8::1"]),
                valid_until: soon,
                partial: false,
            },
            "IPv4 first, valid until the earlier expiry"
        );
        let v4_only = combine(Ok((ips(&["192.0.2.1"]), later)), Err(NameError::NoData)).unwrap();
        assert!(!v4_only.partial, "no AAAA records is an answer");
    }

    #[test]
    fn no_address_with_a_temporary_failure_is_temporary_never_unknown() {
        let got = combine(
            Err(NameError::NxDomain),
            Err(NameError::Temporary("timed out".into())),
        );
        assert_eq!(got, Err(NameError::Temporary("timed out".into())));
        let got = combine(
            Err(NameError::Temporary("x".into())),
            Err(NameError::NoData),
        );
        assert_eq!(got, Err(NameError::Temporary("x".into())));
        let got = combine(Err(NameError::NxDomain), Err(NameError::NxDomain));
        assert_eq!(got, Err(NameError::NxDomain));
    }

    #[test]
    fn bad_domains_bounce() {
        for bad in ["", ".", "a b.example", "x\r\ny"] {
            let f = absolute_name(bad).unwrap_err();
            assert_eq!(f.dsn, "5.1.2", "{bad:?}");
        }
        assert!(absolute_name("example.com").is_ok());
        assert!(absolute_name("bücher.example").is_ok());
    }
}
