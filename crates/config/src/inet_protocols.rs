//! Postfix's `inet_protocols`: the address families the SMTP and LMTP clients use (`all`,
//! `ipv4`, `ipv6`, or `ipv4, ipv6`; separators are commas or white space). With only one
//! family, the clients ask DNS only for that family's address records and never connect to
//! the other's addresses, as Postfix does on an IPv4-only (or IPv6-only) host.

/// The address families mailroom's clients may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InetProtocols {
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Default for InetProtocols {
    /// Postfix's default, `all`.
    fn default() -> Self {
        InetProtocols {
            ipv4: true,
            ipv6: true,
        }
    }
}

impl InetProtocols {
    /// The families of a parameter value; an unknown word or an empty list is an error.
    pub fn parse(text: &str) -> Result<InetProtocols, String> {
        let mut found = InetProtocols {
            ipv4: false,
            ipv6: false,
        };
        let words = text.split(|c: char| c == ',' || c.is_whitespace());
        for word in words.filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "all" => found = InetProtocols::default(),
                "ipv4" => found.ipv4 = true,
                "ipv6" => found.ipv6 = true,
                _ => {
                    return Err(format!(
                        "unknown protocol {word:?} (all, ipv4, ipv6, or \"ipv4, ipv6\")"
                    ))
                }
            }
        }
        if !found.ipv4 && !found.ipv6 {
            return Err("no protocol given (all, ipv4, ipv6, or \"ipv4, ipv6\")".into());
        }
        Ok(found)
    }

    /// True when addresses of `ip`'s family may be used.
    pub fn allows(self, ip: std::net::IpAddr) -> bool {
        match ip {
            std::net::IpAddr::V4(_) => self.ipv4,
            std::net::IpAddr::V6(_) => self.ipv6,
        }
    }
}

/// The parameter's validator: the value as written, once it parses.
pub(crate) fn inet_protocols(text: &str) -> Result<String, String> {
    InetProtocols::parse(text).map(|_| text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_spellings_parse_and_nonsense_is_refused() {
        let both = InetProtocols::default();
        let v4 = InetProtocols {
            ipv4: true,
            ipv6: false,
        };
        let v6 = InetProtocols {
            ipv4: false,
            ipv6: true,
        };
        for (text, want) in [
            ("all", both),
            ("ipv4", v4),
            ("IPv6", v6),
            ("ipv4, ipv6", both),
            ("ipv6 ipv4", both),
        ] {
            assert_eq!(InetProtocols::parse(text), Ok(want), "{text}");
        }
        for bad in ["", " , ", "ipv5", "ipv4 inet"] {
            assert!(InetProtocols::parse(bad).is_err(), "{bad:?}");
        }
        assert!(v4.allows("192.0.2.1".parse().unwrap()));
        assert!(!v4.allows("2001:db8::1".parse().unwrap()));
        assert!(v6.allows("2001:db8::1".parse().unwrap()));
    }
}
