//! Where an SMTP delivery connects, in Postfix's nexthop terms, and what it reports back.
//!
//! The router (sched) turns `relayhost`, `transport_maps`, `content_filter` and a
//! message's `FILTER` action ([`parse_filter`]) into a [`Nexthop`]; the SMTP client (agents) connects to it and answers with a
//! [`DeliveryReport`]. Both rooms speak these two types, so they live here.

use crate::Outcome;
use std::fmt;

/// Where an SMTP delivery connects. `[host]` (brackets) means no MX lookup, as in Postfix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nexthop {
    /// A domain (MX lookup), a host name or an IP address (no brackets, no `ipv6:` tag).
    pub host: String,
    /// `None` = the default SMTP port (`smtp_default_port`).
    pub port: Option<u16>,
    /// `true` for `example.com` (look up MX), `false` for `[host]` (connect to the host's
    /// own addresses).
    pub mx_lookup: bool,
}

/// A text that is not Postfix nexthop syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NexthopError(String);

impl fmt::Display for NexthopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a next hop: {:?} (use host, [host] or [host]:port)",
            self.0
        )
    }
}

impl std::error::Error for NexthopError {}

impl Nexthop {
    /// Parses `[1.2.3.4]:2526`, `[mx.example]`, `example.com`, `example.com:2525`, `[::1]:25`,
    /// `[ipv6:2001:db8::1]:25`. Domains (MX lookups) are lower-cased.
    pub fn parse(text: &str) -> Result<Nexthop, NexthopError> {
        let text = text.trim();
        let bad = || NexthopError(text.to_string());
        let (host, rest, mx_lookup) = match text.strip_prefix('[') {
            Some(inner) => {
                let (host, rest) = inner.split_once(']').ok_or_else(bad)?;
                (strip_ipv6_tag(host).to_string(), rest, false)
            }
            None => {
                let (host, rest) = text.split_at(text.find(':').unwrap_or(text.len()));
                (host.to_ascii_lowercase(), rest, true)
            }
        };
        let port = match rest {
            "" => None,
            _ => Some(
                rest.strip_prefix(':')
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|&p| p != 0)
                    .ok_or_else(bad)?,
            ),
        };
        let valid = !host.is_empty()
            && !host.contains(['[', ']', '/'])
            && !host.contains(char::is_whitespace);
        if !valid {
            return Err(bad());
        }
        Ok(Nexthop {
            host,
            port,
            mx_lookup,
        })
    }

    /// The port to connect to: the nexthop's own, else `default_port`.
    pub fn port_or(&self, default_port: u16) -> u16 {
        self.port.unwrap_or(default_port)
    }
}

/// The transports a content filter may name. mailroom has no master.cf: each is an SMTP
/// delivery to the filter's nexthop, under the names Postfix sites give that service.
pub const FILTER_TRANSPORTS: [&str; 6] = ["smtp", "lmtp", "relay", "scan", "amavis", "filter"];

/// Where `content_filter` or a `FILTER transport:nexthop` action sends mail:
/// `smtp:[127.0.0.1]:10025` → `[127.0.0.1]:10025`. The error says what is wrong, in
/// Postfix's words where it has some (`need transport:destination`).
pub fn parse_filter(text: &str) -> Result<Nexthop, String> {
    let text = text.trim();
    let (transport, hop) = text
        .split_once(':')
        .ok_or_else(|| format!("bad filter {text:?}: need transport:destination"))?;
    if !FILTER_TRANSPORTS.contains(&transport) {
        return Err(format!(
            "unsupported filter transport {transport:?} (use smtp:[host]:port)"
        ));
    }
    Nexthop::parse(hop).map_err(|e| e.to_string())
}

fn strip_ipv6_tag(host: &str) -> &str {
    match host.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => &host[5..],
        _ => host,
    }
}

impl fmt::Display for Nexthop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A host that itself starts with the tag keeps it, so the text parses back the same.
        let tag = if strip_ipv6_tag(&self.host).len() != self.host.len() {
            "ipv6:"
        } else {
            ""
        };
        match (self.mx_lookup, self.port) {
            (true, None) => write!(f, "{}", self.host),
            (true, Some(p)) => write!(f, "{}:{p}", self.host),
            (false, None) => write!(f, "[{tag}{}]", self.host),
            (false, Some(p)) => write!(f, "[{tag}{}]:{p}", self.host),
        }
    }
}

/// What one remote (SMTP) delivery produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Exactly one per requested recipient, in request order; `relay` is `host[ip]:port`
    /// (or `none` when no server was reached).
    pub outcomes: Vec<Outcome>,
    /// Set when the destination itself failed (no usable DNS answer for now, every address
    /// refused, timed out or failed before MAIL): the scheduler marks it dead for a while
    /// and defers its other mail without connecting. Never set for bounces.
    pub destination_failure: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(s: &str) -> Nexthop {
        Nexthop::parse(s).unwrap()
    }

    fn made(host: &str, port: Option<u16>, mx_lookup: bool) -> Nexthop {
        Nexthop {
            host: host.into(),
            port,
            mx_lookup,
        }
    }

    #[test]
    fn nexthop_syntax() {
        assert_eq!(
            hop("[127.0.0.1]:2526"),
            made("127.0.0.1", Some(2526), false)
        );
        assert_eq!(hop("[::1]:25").host, "::1");
        assert_eq!(hop("Example.COM"), made("example.com", None, true));
        assert_eq!(hop("example.com:2525").port, Some(2525));
        assert_eq!(hop("[10.0.0.5]").to_string(), "[10.0.0.5]");
        assert!(Nexthop::parse("[1.2.3.4").is_err());
        assert!(Nexthop::parse("[1.2.3.4]:x").is_err());
        assert!(Nexthop::parse("").is_err());
    }

    #[test]
    fn postfix_syntax() {
        let cases = [
            ("example.com", made("example.com", None, true)),
            ("example.com:2525", made("example.com", Some(2525), true)),
            ("[mail.example]", made("mail.example", None, false)),
            ("[127.0.0.1]:2526", made("127.0.0.1", Some(2526), false)),
            (
                "[ipv6:2001:db8::1]:587",
                made("2001:db8::1", Some(587), false),
            ),
            ("[::1]", made("::1", None, false)),
        ];
        for (text, want) in cases {
            assert_eq!(Nexthop::parse(text).unwrap(), want, "{text}");
        }
        for bad in ["", "[x", "[x]y", "x:0", "x:99999", "[]", "a b", "x:y:z"] {
            assert!(Nexthop::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            made("127.0.0.1", Some(2526), false).to_string(),
            "[127.0.0.1]:2526"
        );
        assert_eq!(hop("example.com").port_or(25), 25);
        assert_eq!(hop("example.com:2525").port_or(25), 2525);
    }

    #[test]
    fn filters_name_a_transport_and_a_nexthop() {
        assert_eq!(
            parse_filter("smtp:[127.0.0.1]:10026"),
            Ok(made("127.0.0.1", Some(10026), false))
        );
        assert_eq!(
            parse_filter(" scan:filter.example "),
            Ok(made("filter.example", None, true))
        );
        assert_eq!(
            parse_filter("[127.0.0.1]").unwrap_err(),
            "bad filter \"[127.0.0.1]\": need transport:destination"
        );
        assert_eq!(
            parse_filter("local:x").unwrap_err(),
            "unsupported filter transport \"local\" (use smtp:[host]:port)"
        );
        assert!(parse_filter("smtp:").is_err(), "a filter needs a nexthop");
        assert!(parse_filter("smtp:[x").is_err());
    }

    #[test]
    fn the_error_names_the_text_and_the_syntax() {
        assert_eq!(
            Nexthop::parse("[x").unwrap_err().to_string(),
            "not a next hop: \"[x\" (use host, [host] or [host]:port)"
        );
    }

    mod properties {
        use super::super::Nexthop;
        use proptest::prelude::*;

        proptest! {
            /// Any text: no panic; what parses prints back to something that parses the same.
            #[test]
            fn nexthop_parse_round_trips(text in "\\PC{0,40}") {
                if let Ok(hop) = Nexthop::parse(&text) {
                    prop_assert_eq!(Nexthop::parse(&hop.to_string()), Ok(hop));
                }
            }

            #[test]
            fn tagged_hosts_round_trip(host in "(ipv6:){0,3}[a-z0-9:]{1,10}") {
                if let Ok(hop) = Nexthop::parse(&format!("[{host}]")) {
                    prop_assert_eq!(Nexthop::parse(&hop.to_string()), Ok(hop));
                }
            }

            #[test]
            fn bracketed_host_and_port(host in "[a-z0-9.-]{1,30}", port in 1u16..) {
                let hop = Nexthop::parse(&format!("[{host}]:{port}")).unwrap();
                prop_assert_eq!(hop, Nexthop { host, port: Some(port), mx_lookup: false });
            }
        }
    }
}
