//! The TLS policy of one destination: `smtp_tls_security_level` and the match lists, or the
//! destination's line of `smtp_tls_policy_maps` (tls_policy(5): `example.org secure
//! match=mx.example.org:.example.org`, `[mx.example.net]:587 encrypt`).
//!
//! Inputs → outputs: a nexthop → [`TlsPolicy`] (level and the certificate names it needs),
//! or the reason the policy entry is unusable (the mail is deferred, never sent with less
//! protection than the operator asked for).
//! Lookup keys, as Postfix's: the nexthop as written (`[host]:port` or `[host]`) for a
//! nexthop without MX lookup; the domain, then `.parent` forms for its parent domains, for
//! an MX destination.
//! Security stance: the table is the operator's; the destination name comes from routing.

use envelope::Nexthop;

use super::maps::TextMap;
use super::settings::{SmtpSettings, SmtpTlsLevel, TlsVersions};

/// What TLS a destination gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsPolicy {
    pub level: SmtpTlsLevel,
    /// Certificate name rules at verify/secure (`hostname`, `nexthop`, `dot-nexthop`, a
    /// name, `.domain`); empty below verify.
    pub matches: Vec<String>,
    /// At a DANE level, once resolved for one MX host ([`super::dane::host_policy`]): the
    /// usable TLSA records the certificate must match. Empty otherwise.
    pub tlsa: Vec<super::dane::Tlsa>,
    /// An enforced MTA-STS policy applies: a DANE destination without TLSA records falls
    /// back to `verify`, not `may` (RFC 8461 2: DANE first, then MTA-STS).
    pub sts_enforced: bool,
    /// `smtp_tls_servername` or the entry's `servername=`: empty (no SNI), `hostname`,
    /// `nexthop` or a name.
    pub servername: String,
    /// TLS versions at `may` (`smtp_tls_protocols`) and above (`smtp_tls_mandatory_protocols`);
    /// an entry's `protocols=` sets both.
    pub protocols: TlsVersions,
    pub mandatory_protocols: TlsVersions,
}

impl TlsPolicy {
    /// No TLS (LMTP, whose lmtp_tls_* mailroom does not implement).
    pub fn none() -> TlsPolicy {
        let all = TlsVersions {
            tls12: true,
            tls13: true,
        };
        TlsPolicy {
            level: SmtpTlsLevel::None,
            matches: Vec::new(),
            tlsa: Vec::new(),
            sts_enforced: false,
            servername: String::new(),
            protocols: all,
            mandatory_protocols: all,
        }
    }

    /// Writes the whole policy into a session label (the connection cache's endpoint label):
    /// two policies write the same text only when they are equal. Each name is written with
    /// its length before it, so no list of names can spell another. Written by hand: the
    /// derived `Debug` it replaces cost about 8,000 instructions a delivery.
    pub fn write_key(&self, out: &mut String) {
        // Destructured, so that a field added to the policy cannot be left out of the key.
        let TlsPolicy {
            level,
            matches,
            tlsa,
            sts_enforced,
            servername,
            protocols,
            mandatory_protocols,
        } = self;
        out.push_str(level.as_str());
        for name in matches {
            push_sized(out, " match=", name);
        }
        for record in tlsa {
            let super::dane::Tlsa {
                trust_anchor,
                spki,
                matching,
                data,
            } = record;
            out.push_str(" tlsa=");
            out.push(if *trust_anchor { '2' } else { '3' });
            out.push(if *spki { '1' } else { '0' });
            out.push(char::from(b'0' + u8::from(*matching) % 10));
            out.push(':');
            for byte in data {
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 15)]));
            }
        }
        if *sts_enforced {
            out.push_str(" sts");
        }
        push_sized(out, " sni=", servername);
        for (tag, versions) in [(" p=", protocols), (" mp=", mandatory_protocols)] {
            out.push_str(tag);
            out.push(if versions.tls12 { '2' } else { '-' });
            out.push(if versions.tls13 { '3' } else { '-' });
        }
    }

    /// The TLS versions this level may use.
    pub fn versions(&self) -> TlsVersions {
        match self.level.requires_tls() {
            true => self.mandatory_protocols,
            false => self.protocols,
        }
    }

    /// The destination's policy: its table entry, else the global level.
    pub fn for_nexthop(
        settings: &SmtpSettings,
        table: &TextMap,
        nexthop: &Nexthop,
    ) -> Result<TlsPolicy, String> {
        match lookup(table, nexthop) {
            Some((key, value)) => parse_entry(settings, key, &value),
            None => Ok(TlsPolicy::level(settings, settings.tls_level, None)),
        }
    }

    /// `level` with its match list: `explicit` (from `match=`), else the level's default.
    fn level(settings: &SmtpSettings, level: SmtpTlsLevel, explicit: Option<Vec<String>>) -> Self {
        let matches = match level {
            SmtpTlsLevel::Verify => explicit.unwrap_or_else(|| settings.verify_cert_match.clone()),
            SmtpTlsLevel::Secure => explicit.unwrap_or_else(|| settings.secure_cert_match.clone()),
            _ => Vec::new(),
        };
        TlsPolicy {
            level,
            matches,
            tlsa: Vec::new(),
            sts_enforced: false,
            servername: settings.tls_servername.clone(),
            protocols: settings.tls_protocols,
            mandatory_protocols: settings.tls_mandatory_protocols,
        }
    }
}

/// The first key of the nexthop found in the table, and its value.
fn lookup(table: &TextMap, nexthop: &Nexthop) -> Option<(String, String)> {
    if table.is_empty() {
        return None;
    }
    let host = nexthop.host.trim_end_matches('.').to_ascii_lowercase();
    let mut keys = Vec::new();
    if nexthop.mx_lookup {
        keys.push(host.clone());
        let mut rest = host.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            keys.push(format!(".{parent}"));
            rest = parent;
        }
    } else {
        // One key, the nexthop as written (Postfix: an explicit nexthop matches only its
        // own entry).
        keys.push(match nexthop.port {
            Some(port) => format!("[{host}]:{port}"),
            None => format!("[{host}]"),
        });
    }
    keys.into_iter()
        .find_map(|key| table.get(&key).map(|value| (key, value)))
}

/// `level [match=a:b] [protocols=!TLSv1.2] [servername=hostname] [other=…]`; other
/// attributes (ciphers, exclude) are accepted and ignored: rustls offers only strong ciphers.
fn parse_entry(settings: &SmtpSettings, key: String, value: &str) -> Result<TlsPolicy, String> {
    let mut words = value.split_whitespace();
    let word = words.next().unwrap_or("");
    let level = SmtpTlsLevel::parse(word).map_err(|why| {
        format!("smtp_tls_policy_maps: {key}: invalid TLS security level \"{word}\" ({why})")
    })?;
    let attributes: Vec<&str> = words.collect();
    let explicit = attributes
        .iter()
        .filter_map(|attribute| attribute.strip_prefix("match="))
        .map(|names| {
            names
                .split(':')
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .next();
    let mut policy = TlsPolicy::level(settings, level, explicit);
    for attribute in &attributes {
        if let Some(list) = attribute.strip_prefix("protocols=") {
            let versions = TlsVersions::parse(list)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    format!("smtp_tls_policy_maps: {key}: invalid protocols \"{list}\"")
                })?;
            (policy.protocols, policy.mandatory_protocols) = (versions, versions);
        } else if let Some(name) = attribute.strip_prefix("servername=") {
            policy.servername = name.to_string();
        }
    }
    Ok(policy)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `tag`, the length of `name`, a colon, then `name`.
fn push_sized(out: &mut String, tag: &str, name: &str) {
    use std::fmt::Write as _;
    out.push_str(tag);
    // Writing to a String cannot fail.
    let _ = write!(out, "{}:", name.len());
    out.push_str(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> TextMap {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy");
        std::fs::write(&path, text).unwrap();
        TextMap::load(
            "smtp_tls_policy_maps",
            &[path.display().to_string()],
            super::super::maps::Secrecy::Public,
        )
        .unwrap()
    }

    fn hop(host: &str, port: Option<u16>, mx_lookup: bool) -> Nexthop {
        Nexthop {
            host: host.into(),
            port,
            mx_lookup,
        }
    }

    fn settings() -> SmtpSettings {
        SmtpSettings::from_config(&config::Config::embedded_default())
    }

    #[test]
    fn policies_that_differ_in_any_field_write_different_keys() {
        use super::super::dane::Tlsa;
        use hickory_resolver::proto::rr::rdata::tlsa::Matching;
        let key = |policy: &TlsPolicy| {
            let mut out = String::new();
            policy.write_key(&mut out);
            out
        };
        let base = TlsPolicy {
            level: SmtpTlsLevel::Dane,
            ..TlsPolicy::none()
        };
        let record = Tlsa {
            trust_anchor: false,
            spki: true,
            matching: Matching::Sha256,
            data: vec![0xab; 32],
        };
        let tlsa = |change: fn(&mut Tlsa)| {
            let mut record = record.clone();
            change(&mut record);
            TlsPolicy {
                tlsa: vec![record],
                ..base.clone()
            }
        };
        let with = |change: fn(&mut TlsPolicy)| {
            let mut policy = base.clone();
            change(&mut policy);
            policy
        };
        let variants = [
            base.clone(),
            with(|p| p.level = SmtpTlsLevel::Verify),
            with(|p| p.matches = vec!["a b".into()]),
            with(|p| p.matches = vec!["a".into(), "b".into()]),
            with(|p| p.matches = vec!["a match=b".into()]),
            tlsa(|_| {}),
            tlsa(|r| r.trust_anchor = true),
            tlsa(|r| r.spki = false),
            tlsa(|r| r.matching = Matching::Sha512),
            tlsa(|r| r.data[31] = 0xac),
            with(|p| p.sts_enforced = true),
            with(|p| p.servername = "hostname".into()),
            with(|p| p.protocols.tls12 = false),
            with(|p| p.mandatory_protocols.tls13 = false),
        ];
        for (i, a) in variants.iter().enumerate() {
            assert_eq!(key(a), key(&a.clone()), "the same policy, the same key");
            for b in &variants[i + 1..] {
                assert_ne!(key(a), key(b), "{a:?} and {b:?}");
            }
        }
    }

    #[test]
    fn policy_keys_follow_tls_policy_5() {
        let t = table(
            "example.org secure match=mx.example.org:.example.org\n\
             .example.net verify\n[mx.example.net]:587 encrypt\n[relay.test] none\n",
        );
        let s = settings();
        let p = |h: Nexthop| TlsPolicy::for_nexthop(&s, &t, &h).unwrap();
        let secure = p(hop("Example.ORG", None, true));
        assert_eq!(secure.level, SmtpTlsLevel::Secure);
        assert_eq!(secure.matches, ["mx.example.org", ".example.org"]);
        let sub = p(hop("a.b.example.net", None, true));
        assert_eq!(
            (sub.level, sub.matches),
            (SmtpTlsLevel::Verify, vec!["hostname".to_string()])
        );
        assert_eq!(
            p(hop("example.net", None, true)).level,
            SmtpTlsLevel::May,
            "no entry"
        );
        assert_eq!(
            p(hop("mx.example.net", Some(587), false)).level,
            SmtpTlsLevel::Encrypt
        );
        assert_eq!(
            p(hop("mx.example.net", Some(25), false)).level,
            SmtpTlsLevel::May
        );
        assert_eq!(p(hop("relay.test", None, false)).level, SmtpTlsLevel::None);
        assert_eq!(
            p(hop("relay.test", Some(25), false)).level,
            SmtpTlsLevel::May
        );
        let default = p(hop("other.test", None, true));
        assert_eq!(
            (default.level, default.matches.len()),
            (SmtpTlsLevel::May, 0)
        );
    }

    #[test]
    fn protocols_and_servername_attributes_override_the_parameters() {
        let t = table(
            "example.org encrypt protocols=!TLSv1.3 servername=hostname ciphers=high\n\
             bad.example encrypt protocols=TLSv1.1\n",
        );
        let s = settings();
        let p = TlsPolicy::for_nexthop(&s, &t, &hop("example.org", None, true)).unwrap();
        assert_eq!((p.versions().tls12, p.versions().tls13), (true, false));
        assert_eq!(p.servername, "hostname");
        let default = TlsPolicy::for_nexthop(&s, &t, &hop("other.example", None, true)).unwrap();
        assert_eq!(
            (default.versions().tls13, default.servername.as_str()),
            (true, "")
        );
        let err = TlsPolicy::for_nexthop(&s, &t, &hop("bad.example", None, true)).unwrap_err();
        assert!(err.contains("invalid protocols \"TLSv1.1\""), "{err}");
    }

    #[test]
    fn an_invalid_level_is_an_error_not_a_downgrade() {
        let t = table("example.org strict\n");
        let err =
            TlsPolicy::for_nexthop(&settings(), &t, &hop("example.org", None, true)).unwrap_err();
        assert!(
            err.contains("invalid TLS security level \"strict\""),
            "{err}"
        );
    }
}
