//! The DNS questions restrictions ask: DNSBL/RHSBL listings (A, then TXT for the reason),
//! whether a mail domain or HELO name exists (MX, A/AAAA), and the client's reverse name.
//!
//! Each answer is [`Found`], [`Lookup::NotFound`] (NXDOMAIN or no such record) or
//! [`Lookup::TempFail`]: a temporary failure is never read as "not listed" by a caller that
//! would refuse on "not found" (they defer instead, Postfix's `defer_if_permit`).
//!
//! The resolver is `dns_nameservers` (or /etc/resolv.conf), built at the first question, so
//! a configuration without DNS restrictions costs nothing. Security stance: answers are
//! untrusted; they only decide refusals, and TXT reasons appear as printable text.
//!
//! [`Found`]: Lookup::Found

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

/// The outcome of one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    NotFound,
    TempFail(String),
}

/// What the DNS says about a mail domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailDomain {
    Exists,
    /// RFC 7505: an MX of `.`.
    NullMx,
    NotFound,
    TempFail,
}

pub struct Dns {
    nameservers: Vec<String>,
    resolver: OnceLock<Result<TokioResolver, String>>,
}

impl Dns {
    pub fn new(nameservers: &[String]) -> Dns {
        Dns {
            nameservers: nameservers.to_vec(),
            resolver: OnceLock::new(),
        }
    }

    fn resolver(&self) -> Result<&TokioResolver, String> {
        self.resolver
            .get_or_init(|| build(&self.nameservers))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The A records of `name` (a DNSBL query).
    pub async fn a(&self, name: &str) -> Lookup<Vec<Ipv4Addr>> {
        let resolver = match self.resolver() {
            Ok(r) => r,
            Err(why) => return Lookup::TempFail(why),
        };
        match resolver.ipv4_lookup(absolute(name)).await {
            Ok(lookup) => found(
                lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(a.0),
                        _ => None,
                    })
                    .collect(),
            ),
            Err(e) => failed(&e),
        }
    }

    /// The TXT strings of `name`, joined (a DNSBL's reason); empty when there is none.
    pub async fn txt(&self, name: &str) -> String {
        let Ok(resolver) = self.resolver() else {
            return String::new();
        };
        let Ok(lookup) = resolver.txt_lookup(absolute(name)).await else {
            return String::new();
        };
        let texts: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect();
        texts.join(" ")
    }

    /// Whether `domain` can receive mail: an MX (a null MX says it cannot), else an address.
    pub async fn mail_domain(&self, domain: &str) -> MailDomain {
        let resolver = match self.resolver() {
            Ok(r) => r,
            Err(_) => return MailDomain::TempFail,
        };
        match resolver.mx_lookup(absolute(domain)).await {
            Ok(lookup) => {
                let exchanges: Vec<bool> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some(mx.exchange.is_root()),
                        _ => None,
                    })
                    .collect();
                if exchanges.contains(&true) {
                    return MailDomain::NullMx;
                }
                if !exchanges.is_empty() {
                    return MailDomain::Exists;
                }
            }
            Err(e) if e.is_nx_domain() => return MailDomain::NotFound,
            Err(e) if !e.is_no_records_found() => return MailDomain::TempFail,
            Err(_) => {}
        }
        match self.addresses(domain).await {
            Lookup::Found(_) => MailDomain::Exists,
            Lookup::NotFound => MailDomain::NotFound,
            Lookup::TempFail(_) => MailDomain::TempFail,
        }
    }

    /// Whether a host name exists (Postfix's `reject_unknown_helo_hostname`: an address or
    /// an MX).
    pub async fn host(&self, name: &str) -> Lookup<()> {
        match self.addresses(name).await {
            Lookup::Found(_) => Lookup::Found(()),
            Lookup::TempFail(why) => Lookup::TempFail(why),
            Lookup::NotFound => match self.mail_domain(name).await {
                MailDomain::Exists | MailDomain::NullMx => Lookup::Found(()),
                MailDomain::NotFound => Lookup::NotFound,
                MailDomain::TempFail => Lookup::TempFail("MX lookup failed".into()),
            },
        }
    }

    /// The A and AAAA addresses of `name`.
    pub async fn addresses(&self, name: &str) -> Lookup<Vec<IpAddr>> {
        let resolver = match self.resolver() {
            Ok(r) => r,
            Err(why) => return Lookup::TempFail(why),
        };
        match resolver.lookup_ip(absolute(name)).await {
            Ok(lookup) => found(lookup.iter().collect()),
            Err(e) => failed(&e),
        }
    }

    /// The PTR names of `ip`, without their trailing dots.
    pub async fn reverse(&self, ip: IpAddr) -> Lookup<Vec<String>> {
        let resolver = match self.resolver() {
            Ok(r) => r,
            Err(why) => return Lookup::TempFail(why),
        };
        match resolver.reverse_lookup(reverse_name(ip)).await {
            Ok(lookup) => found(
                lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::PTR(ptr) => Some(ptr.0.to_ascii().trim_end_matches('.').into()),
                        _ => None,
                    })
                    .collect(),
            ),
            Err(e) => failed(&e),
        }
    }
}

fn found<T>(items: Vec<T>) -> Lookup<Vec<T>> {
    match items.is_empty() {
        true => Lookup::NotFound,
        false => Lookup::Found(items),
    }
}

fn failed<T>(error: &NetError) -> Lookup<T> {
    if error.is_nx_domain() || error.is_no_records_found() {
        Lookup::NotFound
    } else {
        Lookup::TempFail(error.to_string())
    }
}

/// Names are asked fully qualified: no search list turns `example` into `example.lan`.
fn absolute(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// `4.3.2.1.in-addr.arpa.`, or the nibble form under `ip6.arpa.`.
pub fn reverse_name(ip: IpAddr) -> String {
    format!(
        "{}.{}",
        reversed(ip),
        match ip {
            IpAddr::V4(_) => "in-addr.arpa.",
            IpAddr::V6(_) => "ip6.arpa.",
        }
    )
}

/// The client address reversed for a DNSBL query: `4.3.2.1` for `1.2.3.4`, 32 nibbles
/// for IPv6.
pub fn reversed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut parts = Vec::with_capacity(32);
            for byte in v6.octets().iter().rev() {
                parts.push(format!("{:x}", byte & 0xf));
                parts.push(format!("{:x}", byte >> 4));
            }
            parts.join(".")
        }
    }
}

/// Whether a DNSBL reply filter (`127.0.0.2`, `127.0.0.[2..11;20]`) is well formed.
pub fn valid_filter(filter: &str) -> bool {
    let octets = octets(filter);
    octets.len() == 4 && octets.iter().all(|o| octet_set(o).is_some())
}

/// Whether `answer` matches the filter (Postfix's `ip_match`).
pub fn filter_matches(filter: &str, answer: Ipv4Addr) -> bool {
    let octets = octets(filter);
    octets.len() == 4
        && octets
            .iter()
            .zip(answer.octets())
            .all(|(pattern, value)| octet_set(pattern).is_some_and(|set| set(value)))
}

/// The four octet patterns: split at dots outside `[...]` (ranges are written `2..4`).
fn octets(filter: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut depth) = (0, 0usize);
    for (i, c) in filter.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                parts.push(&filter[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&filter[start..]);
    parts
}

/// One octet pattern: `7` or `[1;3..5]`.
fn octet_set(pattern: &str) -> Option<impl Fn(u8) -> bool> {
    let ranges: Vec<(u8, u8)> = match pattern.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
        Some(list) => list
            .split(';')
            .map(|item| match item.split_once("..") {
                Some((low, high)) => Some((low.parse().ok()?, high.parse().ok()?)),
                None => item.parse().ok().map(|v| (v, v)),
            })
            .collect::<Option<_>>()?,
        None => vec![(pattern.parse().ok()?, pattern.parse().ok()?)],
    };
    Some(move |value: u8| {
        ranges
            .iter()
            .any(|(low, high)| (*low..=*high).contains(&value))
    })
}

fn build(nameservers: &[String]) -> Result<TokioResolver, String> {
    let builder = if nameservers.is_empty() {
        TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?
    } else {
        let servers = nameservers
            .iter()
            .map(|s| name_server(s))
            .collect::<Result<Vec<_>, _>>()?;
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        TokioResolver::builder_with_config(config, Default::default())
    };
    // As in the SMTP client (agents' dns.rs): hickory's DNS-over-TLS default would load the
    // system CA store, which a minimal system lacks; mailroom never asks over TLS.
    let mut builder = builder.with_tls_config(no_dns_over_tls()?);
    builder.options_mut().timeout = Duration::from_secs(5);
    builder.options_mut().attempts = 2;
    builder.build().map_err(|e| e.to_string())
}

fn name_server(text: &str) -> Result<NameServerConfig, String> {
    let addr = text
        .parse::<SocketAddr>()
        .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("dns_nameservers: {text:?} is not an IP address or IP:port"))?;
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    Ok(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]))
}

fn no_dns_over_tls() -> Result<rustls::ClientConfig, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_addresses_and_filters() {
        assert_eq!(reversed("192.0.2.10".parse().unwrap()), "10.2.0.192");
        assert!(reversed("2001:db8::1".parse().unwrap()).starts_with("1.0.0.0.0.0.0.0"));
        assert_eq!(
            reverse_name("127.0.0.2".parse().unwrap()),
            "2.0.0.127.in-addr.arpa."
        );
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(filter_matches("127.0.0.2", ip("127.0.0.2")));
        assert!(!filter_matches("127.0.0.2", ip("127.0.0.3")));
        assert!(filter_matches("127.0.0.[2..4;10]", ip("127.0.0.10")));
        assert!(!filter_matches("127.0.0.[2..4;10]", ip("127.0.0.5")));
        assert!(valid_filter("127.0.[0..1].[2;3]"));
        for bad in ["127.0.0", "127.0.0.x", "127.0.0.[2..]", "127.0.0.256"] {
            assert!(!valid_filter(bad), "{bad}");
        }
    }
}
