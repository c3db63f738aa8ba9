//! Relay control (Postfix's `permit_mynetworks, permit_sasl_authenticated,
//! reject_unauth_destination`): a recipient in `mydestination` or `relay_domains` is
//! accepted from anyone; any other domain only from a client in `mynetworks` or an
//! authenticated one. Otherwise `554 5.7.1 <addr>: Relay access denied`.
//!
//! No open relay, ever: an address whose domain cannot be determined, an address literal
//! (`user@[1.2.3.4]`) and an address with sender-specified routing in its local part
//! (`a%b@local`, `"a!b"@local`, `"a@b"@local`) count as remote, so they too need a
//! trusted client. This is Postfix's `allow_untrusted_routing = no` (its default): its
//! resolver flags any `@`, `!` or `%` before the final `@domain` as routed, whatever
//! `swap_bangpath` and `allow_percent_hack` say, so a backup MX cannot be made to relay.
//! mailroom never honours such routing (as with `allow_percent_hack = no` and
//! `swap_bangpath = no`): from a trusted client the local part is looked up as it is,
//! and no user or mailbox has such a name (550 5.1.1 at RCPT).
//!
//! `mynetworks` entries are `1.2.3.4`, `1.2.3.0/24`, `[::1]`, `[2001:db8::]/32`, `::1/128`;
//! IPv4-mapped IPv6 clients (`::ffff:1.2.3.4`) match IPv4 entries.

use std::net::IpAddr;

use proto::address::domain_of;

/// One `mynetworks` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses one entry; `None` if it is not an address or CIDR block.
    pub fn parse(entry: &str) -> Option<Network> {
        let (addr, prefix) = match entry.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (entry, None),
        };
        let addr = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let address: IpAddr = addr.parse().ok()?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Network { address, prefix })
    }

    pub fn contains(&self, client: IpAddr) -> bool {
        let client = canonical(client);
        match (self.address, client) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32)
                    == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// `::ffff:a.b.c.d` → `a.b.c.d`, so dual-stack listeners match IPv4 entries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn masked(value: u128, prefix: u8, bits: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let mask = (!0u128) << (bits - prefix);
    let mask = if bits == 128 {
        mask
    } else {
        mask & ((1u128 << bits) - 1)
    };
    value & mask
}

/// The relay decision inputs for one session, parsed once from the configuration.
#[derive(Debug, Clone, Default)]
pub struct RelayPolicy {
    networks: Vec<Network>,
    local_domains: Vec<String>,
    relay_domains: Vec<String>,
}

impl RelayPolicy {
    /// Unparsable `mynetworks` entries are skipped (and reported by `invalid_networks`):
    /// skipping can only make the policy stricter.
    pub fn new(
        mynetworks: &[String],
        mydestination: &[String],
        relay_domains: &[String],
    ) -> RelayPolicy {
        let lower = |list: &[String]| list.iter().map(|d| d.trim().to_ascii_lowercase()).collect();
        RelayPolicy {
            networks: mynetworks
                .iter()
                .filter_map(|e| Network::parse(e.trim()))
                .collect(),
            local_domains: lower(mydestination),
            relay_domains: lower(relay_domains),
        }
    }

    /// `mynetworks` entries that are not addresses or CIDR blocks.
    pub fn invalid_networks(mynetworks: &[String]) -> Vec<String> {
        mynetworks
            .iter()
            .filter(|e| Network::parse(e.trim()).is_none())
            .cloned()
            .collect()
    }

    pub fn is_trusted_client(&self, client: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(client))
    }

    /// True when the domain of `address` is one we deliver locally (`mydestination`).
    pub fn is_local(&self, address: &str) -> bool {
        domain_of(address).is_some_and(|d| self.local_domains.contains(&d))
    }

    /// May `address` be accepted from this client? `trusted` = in mynetworks or
    /// authenticated.
    pub fn permits(&self, address: &str, trusted: bool) -> bool {
        trusted || self.is_our_destination(address)
    }

    fn is_our_destination(&self, address: &str) -> bool {
        let Some(domain) = domain_of(address) else {
            return false;
        };
        let local_part = &address[..address.len() - domain.len() - 1];
        // `a%b@here`, `a!b@here` and `"a@b"@here` are old relay hacks that some delivery
        // paths (a primary MX behind us, say) still honour.
        if local_part.contains(['%', '!', '@']) {
            return false;
        }
        if domain.starts_with('[') {
            return false;
        }
        self.local_domains.contains(&domain) || self.matches_relay_domain(&domain)
    }

    /// Postfix's `parent_domain_matches_subdomains` includes `relay_domains`: `example.com`
    /// also covers `sub.example.com`; `.example.com` covers only subdomains.
    fn matches_relay_domain(&self, domain: &str) -> bool {
        self.relay_domains
            .iter()
            .any(|entry| match entry.strip_prefix('.') {
                Some(parent) => domain.ends_with(&format!(".{parent}")),
                None => domain == entry || domain.ends_with(&format!(".{entry}")),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_table() {
        let table: &[(&str, &str, bool)] = &[
            ("127.0.0.0/8", "127.0.0.1", true),
            ("127.0.0.0/8", "127.255.1.2", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("127.0.0.1/32", "127.0.0.2", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("10.1.2.0/23", "10.1.3.255", true),
            ("10.1.2.0/23", "10.1.4.0", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("[::1]/128", "::1", true),
            ("[::1]", "::1", true),
            ("::1/128", "::2", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("127.0.0.0/8", "::1", false),
            ("::/0", "127.0.0.1", false),
        ];
        for (entry, client, expected) in table {
            let net = Network::parse(entry).unwrap_or_else(|| panic!("parse {entry}"));
            assert_eq!(
                net.contains(ip(client)),
                *expected,
                "{entry} contains {client}"
            );
        }
        for bad in [
            "",
            "localhost",
            "1.2.3.4/33",
            "::1/129",
            "1.2.3.4/x",
            "[1.2.3.4",
        ] {
            assert_eq!(Network::parse(bad), None, "{bad:?}");
        }
    }

    fn policy() -> RelayPolicy {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        RelayPolicy::new(
            &s(&["127.0.0.1/32", "bogus"]),
            &s(&["localhost", "Mail.Example.org"]),
            &s(&["relay.net", ".sub.org"]),
        )
    }

    #[test]
    fn relay_decisions() {
        let p = policy();
        let table: &[(&str, bool, bool)] = &[
            ("alice@localhost", false, true),
            ("alice@LOCALHOST", false, true),
            ("bob@mail.example.org", false, true),
            ("x@relay.net", false, true),
            ("x@deep.relay.net", false, true),
            ("x@sub.org", false, false),
            ("x@a.sub.org", false, true),
            ("x@elsewhere.com", false, false),
            ("x@elsewhere.com", true, true),
            ("x@notrelay.net", false, false),
            ("a%b@localhost", false, false),
            ("a!b@localhost", false, false),
            ("\"a%b\"@localhost", false, false),
            ("\"user@evil.invalid\"@localhost", false, false),
            ("\"user@evil.invalid\"@localhost", true, true),
            ("x@[127.0.0.1]", false, false),
            ("postmaster", false, false),
        ];
        for (address, trusted, expected) in table {
            assert_eq!(
                p.permits(address, *trusted),
                *expected,
                "{address} trusted={trusted}"
            );
        }
        assert!(p.is_trusted_client(ip("127.0.0.1")));
        assert!(!p.is_trusted_client(ip("127.0.0.2")));
        assert!(p.is_local("a@localhost") && !p.is_local("a@relay.net"));
        assert_eq!(
            RelayPolicy::invalid_networks(&["bogus".into(), "::1".into()]),
            ["bogus"]
        );
    }
}
