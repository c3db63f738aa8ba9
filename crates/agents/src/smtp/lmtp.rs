//! Where an LMTP delivery goes, written as Postfix writes LMTP next hops: `unix:/path`,
//! `inet:host:port`, `inet:[host]:port`, `[host]:port` or `host:port` (no prefix means
//! `inet:`). LMTP does no MX lookups (Postfix's lmtp(8) neither): a host name is resolved to
//! its own addresses.
//!
//! The SMTP client uses the `Inet` form for its own next hops too (with MX lookups).
//!
//! Inputs → outputs: the text after `lmtp:` in `mailbox_transport`, `virtual_transport` or a
//! `transport_maps` result → an [`LmtpNexthop`]; printed back in the same form for queue
//! names (`lmtp:unix:/run/dovecot/lmtp`).
//! Invariants: a unix socket path is absolute or relative, kept as written (names, logs);
//! a relative one (`private/dovecot-lmtp`) is under `queue_directory` when connecting, as
//! in Postfix, whose daemons run there ([`SmtpSettings::socket_path`]); an inet host has no
//! MX lookup flag set.
//! Security stance: the text comes from the operator's configuration.

use std::fmt;
use std::path::PathBuf;

use envelope::Nexthop;

#[cfg(doc)]
use super::SmtpSettings;

/// An LMTP server: a unix-domain socket, or a TCP host and port (default 24).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LmtpNexthop {
    Unix(PathBuf),
    Inet(Nexthop),
}

impl LmtpNexthop {
    /// Parses `unix:/run/dovecot/lmtp`, `inet:127.0.0.1:24`, `[127.0.0.1]:24`, `host`.
    pub fn parse(text: &str) -> Result<LmtpNexthop, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() || path.contains(char::is_whitespace) {
                return Err(format!("not an LMTP socket path: {text:?}"));
            }
            return Ok(LmtpNexthop::Unix(PathBuf::from(path)));
        }
        let hop = text.strip_prefix("inet:").unwrap_or(text);
        let mut nexthop = Nexthop::parse(hop).map_err(|e| e.to_string())?;
        nexthop.mx_lookup = false;
        Ok(LmtpNexthop::Inet(nexthop))
    }

    /// The host (or socket path) for texts.
    pub(crate) fn host_name(&self) -> String {
        match self {
            LmtpNexthop::Unix(path) => path.display().to_string(),
            LmtpNexthop::Inet(hop) => hop.host.clone(),
        }
    }

    /// The key idle connections are cached under.
    pub(crate) fn cache_key(&self, default_port: u16) -> String {
        match self {
            LmtpNexthop::Unix(path) => format!("unix:{}", path.display()),
            // `example.com` (MX hosts) and `[example.com]` (its own address) differ.
            LmtpNexthop::Inet(hop) if hop.mx_lookup => {
                format!("inet:{}:{}", hop.host, hop.port_or(default_port))
            }
            LmtpNexthop::Inet(hop) => {
                format!("inet:[{}]:{}", hop.host, hop.port_or(default_port))
            }
        }
    }
}

impl fmt::Display for LmtpNexthop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LmtpNexthop::Unix(path) => write!(f, "unix:{}", path.display()),
            LmtpNexthop::Inet(hop) => match hop.port {
                Some(port) => write!(f, "inet:{}:{port}", hop.host),
                None => write!(f, "inet:{}", hop.host),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_lmtp_nexthop_forms() {
        assert_eq!(
            LmtpNexthop::parse("unix:/run/dovecot/lmtp"),
            Ok(LmtpNexthop::Unix("/run/dovecot/lmtp".into()))
        );
        let inet = |host: &str, port| {
            LmtpNexthop::Inet(Nexthop {
                host: host.into(),
                port,
                mx_lookup: false,
            })
        };
        assert_eq!(
            LmtpNexthop::parse("inet:127.0.0.1:24"),
            Ok(inet("127.0.0.1", Some(24)))
        );
        assert_eq!(
            LmtpNexthop::parse("[127.0.0.1]:24"),
            Ok(inet("127.0.0.1", Some(24)))
        );
        assert_eq!(
            LmtpNexthop::parse("inet:mail.example"),
            Ok(inet("mail.example", None))
        );
        assert!(LmtpNexthop::parse("unix:").is_err());
        assert!(LmtpNexthop::parse("inet:[x").is_err());
        let hop = LmtpNexthop::parse("lmtp.example:2424").unwrap();
        assert_eq!(hop.to_string(), "inet:lmtp.example:2424");
        assert_eq!(
            LmtpNexthop::parse("unix:/run/x").unwrap().to_string(),
            "unix:/run/x"
        );
    }
}
