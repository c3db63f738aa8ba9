//! Postfix's TLS protocol lists (`smtp_tls_protocols`, `smtp_tls_mandatory_protocols`, the
//! `protocols=` attribute of tls_policy(5)) and cipher grades (`smtp_tls_ciphers`,
//! `smtp_tls_mandatory_ciphers`), read into what rustls can do: TLS 1.2 and 1.3.
//!
//! Protocol syntax (Postfix ≥ 3.6): `>=TLSv1.2`, `<=TLSv1.2`, exclusions `!TLSv1, !TLSv1.1`,
//! or an inclusion list `TLSv1.2 TLSv1.3`; separators are commas, colons or white space.
//! SSLv2, SSLv3, TLSv1 and TLSv1.1 are known names that rustls never speaks, so excluding
//! them changes nothing and including only them leaves no protocol (an error the caller
//! reports). Cipher grades: rustls offers only AEAD suites of at least 128 bits (Postfix's
//! "high" grade), so every grade is accepted and none changes the offer.

/// The TLS versions mailroom may offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsVersions {
    pub tls12: bool,
    pub tls13: bool,
}

/// Postfix's names in order; rustls can speak the last two.
const NAMES: [&str; 6] = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

fn rank(name: &str) -> Result<usize, String> {
    NAMES
        .iter()
        .position(|known| known.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            format!(
                "unknown TLS protocol {name:?} (one of {})",
                NAMES.join(", ")
            )
        })
}

impl TlsVersions {
    /// Parses a protocol list; an empty one allows every version.
    pub fn parse(text: &str) -> Result<TlsVersions, String> {
        let mut allowed = [true; 6];
        let mut included: Option<[bool; 6]> = None;
        for word in text.split([',', ':', ' ', '\t']).filter(|w| !w.is_empty()) {
            if let Some(name) = word.strip_prefix(">=") {
                let r = rank(name)?;
                (0..r).for_each(|i| allowed[i] = false);
            } else if let Some(name) = word.strip_prefix("<=") {
                let r = rank(name)?;
                (r + 1..NAMES.len()).for_each(|i| allowed[i] = false);
            } else if let Some(name) = word.strip_prefix('!') {
                allowed[rank(name)?] = false;
            } else {
                included.get_or_insert([false; 6])[rank(word)?] = true;
            }
        }
        let ok = |i: usize| allowed[i] && included.is_none_or(|set| set[i]);
        Ok(TlsVersions {
            tls12: ok(4),
            tls13: ok(5),
        })
    }

    /// True when no version mailroom can speak is left.
    pub fn is_empty(&self) -> bool {
        !self.tls12 && !self.tls13
    }
}

/// A protocol list that leaves TLS 1.2 or 1.3 (the configuration check).
pub(crate) fn protocol_list(text: &str) -> Result<String, String> {
    let versions = TlsVersions::parse(text)?;
    if versions.is_empty() {
        return Err(
            "allows neither TLSv1.2 nor TLSv1.3, the only protocols mailroom speaks".into(),
        );
    }
    Ok(text.to_string())
}

/// A cipher grade Postfix knows (all give the same rustls suites).
pub(crate) fn cipher_grade(text: &str) -> Result<String, String> {
    const GRADES: [&str; 5] = ["export", "low", "medium", "high", "null"];
    let grade = text.trim();
    match GRADES.iter().any(|g| g.eq_ignore_ascii_case(grade)) {
        true => Ok(grade.to_ascii_lowercase()),
        false => Err(format!(
            "unknown cipher grade {grade:?} (one of {})",
            GRADES.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> (bool, bool) {
        let versions = TlsVersions::parse(text).unwrap();
        (versions.tls12, versions.tls13)
    }

    #[test]
    fn postfix_protocol_syntax() {
        assert_eq!(v(">=TLSv1"), (true, true));
        assert_eq!(v(">=TLSv1.3"), (false, true));
        assert_eq!(v("<=TLSv1.2"), (true, false));
        assert_eq!(v("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"), (true, true));
        assert_eq!(v("!TLSv1.3"), (true, false));
        assert_eq!(v("TLSv1.3"), (false, true));
        assert_eq!(v("TLSv1.2:TLSv1.3"), (true, true));
        assert_eq!(v(""), (true, true));
        assert!(TlsVersions::parse("TLSv1.1").unwrap().is_empty());
        assert!(TlsVersions::parse(">=TLSv9").is_err());
        assert!(protocol_list("<=TLSv1.1").is_err());
        assert_eq!(cipher_grade("HIGH").unwrap(), "high");
        assert!(cipher_grade("strong").is_err());
    }
}
