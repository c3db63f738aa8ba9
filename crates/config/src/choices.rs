//! Choice parameters: string-valued parameters that select one of a fixed set of words,
//! parsed once here into enums so no room compares strings at run time.
//!
//! A word outside the set is refused with `must be one of: a, b, c` (the words in the
//! order Postfix documents them); printing gives the word back, so `mailroom config`
//! shows what the file said.

/// An enum whose values are spelled as fixed words in the configuration.
pub(crate) trait Choice: Sized + Copy + 'static {
    /// Every value with its word, in the order the error message lists them.
    const WORDS: &'static [(&'static str, Self)];
}

/// The value of `word` (surrounding blanks ignored), or the error naming every word.
pub(crate) fn parse<T: Choice>(word: &str) -> Result<T, String> {
    let word = word.trim();
    T::WORDS
        .iter()
        .find(|(w, _)| *w == word)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let words: Vec<&str> = T::WORDS.iter().map(|(w, _)| *w).collect();
            format!("must be one of: {}", words.join(", "))
        })
}

/// `smtp_tls_security_level` and `smtpd_tls_security_level` (Postfix's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsLevel {
    /// No STARTTLS (client: never sent; server: never offered).
    None,
    /// Opportunistic: STARTTLS when offered (client) or offered to every client (server),
    /// no certificate check; the client falls back to plaintext when the server does not
    /// offer it, or (as Postfix does) on a new connection after a failed handshake.
    May,
    /// Mandatory encryption, no certificate check. Client: no TLS → deferred 4.7.4 / 4.7.5.
    /// Server: TLS required before MAIL.
    Encrypt,
}

impl Choice for TlsLevel {
    const WORDS: &'static [(&'static str, TlsLevel)] = &[
        ("none", TlsLevel::None),
        ("may", TlsLevel::May),
        ("encrypt", TlsLevel::Encrypt),
    ];
}

/// `smtp_tls_security_level` (the SMTP client's levels, Postfix's words and meanings; the
/// server has only none/may/encrypt, so it keeps [`TlsLevel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTlsLevel {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered, any certificate; plaintext when not offered.
    May,
    /// TLS required, any certificate: no TLS → deferred 4.7.4 / 4.7.5.
    Encrypt,
    /// TLS required, the chain must lead to a trusted CA and the certificate must name one
    /// of `smtp_tls_verify_cert_match` (the MX host name from possibly insecure DNS).
    Verify,
    /// TLS required, trusted chain and a name of `smtp_tls_secure_cert_match` (default the
    /// nexthop domain or a subdomain of it: not taken from DNS).
    Secure,
    /// RFC 7672 DANE: the certificate must match the MX host's DNSSEC-signed TLSA records;
    /// without secure TLSA records the destination gets `may` (`encrypt` when all its TLSA
    /// records are unusable).
    Dane,
    /// DANE or nothing: without secure, usable TLSA records the mail is deferred.
    DaneOnly,
}

impl Choice for SmtpTlsLevel {
    const WORDS: &'static [(&'static str, SmtpTlsLevel)] = &[
        ("none", SmtpTlsLevel::None),
        ("may", SmtpTlsLevel::May),
        ("encrypt", SmtpTlsLevel::Encrypt),
        ("verify", SmtpTlsLevel::Verify),
        ("secure", SmtpTlsLevel::Secure),
        ("dane", SmtpTlsLevel::Dane),
        ("dane-only", SmtpTlsLevel::DaneOnly),
    ];
}

impl SmtpTlsLevel {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        word(&self)
    }

    /// The level of a word (`smtp_tls_policy_maps` entries use the same words).
    pub fn parse(word: &str) -> Result<SmtpTlsLevel, String> {
        parse(word)
    }

    /// True when a session without TLS must not carry mail.
    pub fn requires_tls(self) -> bool {
        !matches!(self, SmtpTlsLevel::None | SmtpTlsLevel::May)
    }

    /// True when the certificate must be verified (chain and name, or TLSA records).
    pub fn requires_verification(self) -> bool {
        matches!(
            self,
            SmtpTlsLevel::Verify
                | SmtpTlsLevel::Secure
                | SmtpTlsLevel::Dane
                | SmtpTlsLevel::DaneOnly
        )
    }

    /// True for the DANE levels, which are resolved per MX host from its TLSA records.
    pub fn is_dane(self) -> bool {
        matches!(self, SmtpTlsLevel::Dane | SmtpTlsLevel::DaneOnly)
    }
}

/// `smtpd_forbid_bare_newline`: what smtpd does with a bare LF (or CR) in a command or
/// in DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForbidBareNewline {
    /// Answer 550 5.5.2 and disconnect (Postfix's `yes`).
    Reject,
    /// Accept a bare LF as a line end, never as part of the end-of-data mark.
    Normalize,
    /// Postfix's `no`; treated like `normalize` (a bare LF never ends DATA).
    No,
}

impl Choice for ForbidBareNewline {
    const WORDS: &'static [(&'static str, ForbidBareNewline)] = &[
        ("reject", ForbidBareNewline::Reject),
        ("normalize", ForbidBareNewline::Normalize),
        ("no", ForbidBareNewline::No),
    ];
}

/// `syslog_facility`: the syslog facilities Postfix accepts for mail logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogFacility {
    Mail,
    Daemon,
    User,
    /// `local0` … `local7`.
    Local(u8),
}

impl Choice for SyslogFacility {
    const WORDS: &'static [(&'static str, SyslogFacility)] = &[
        ("mail", SyslogFacility::Mail),
        ("daemon", SyslogFacility::Daemon),
        ("user", SyslogFacility::User),
        ("local0", SyslogFacility::Local(0)),
        ("local1", SyslogFacility::Local(1)),
        ("local2", SyslogFacility::Local(2)),
        ("local3", SyslogFacility::Local(3)),
        ("local4", SyslogFacility::Local(4)),
        ("local5", SyslogFacility::Local(5)),
        ("local6", SyslogFacility::Local(6)),
        ("local7", SyslogFacility::Local(7)),
    ];
}

impl SyslogFacility {
    /// The configuration word: `mail`, `daemon`, `user`, `local0` … `local7`.
    pub fn as_str(self) -> &'static str {
        word(&self)
    }
}

/// The configuration word of a choice value.
pub(crate) fn word<T: Choice + PartialEq>(value: &T) -> &'static str {
    T::WORDS
        .iter()
        .find(|(_, v)| v == value)
        .map_or("", |(w, _)| w)
}

impl TlsLevel {
    /// The configuration word: `none`, `may` or `encrypt`.
    pub fn as_str(self) -> &'static str {
        word(&self)
    }
}

impl ForbidBareNewline {
    /// The configuration word: `reject`, `normalize` or `no`.
    pub fn as_str(self) -> &'static str {
        word(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_parse_to_their_values_and_print_back() {
        for (word, level) in TlsLevel::WORDS {
            assert_eq!(parse::<TlsLevel>(word), Ok(*level));
            assert_eq!(level.as_str(), *word);
        }
        for (word, level) in SmtpTlsLevel::WORDS {
            assert_eq!(SmtpTlsLevel::parse(word), Ok(*level));
            assert_eq!(level.as_str(), *word);
        }
        for (word, mode) in ForbidBareNewline::WORDS {
            assert_eq!(parse::<ForbidBareNewline>(&format!(" {word} ")), Ok(*mode));
            assert_eq!(mode.as_str(), *word);
        }
    }

    #[test]
    fn an_unknown_word_names_every_choice() {
        assert_eq!(
            parse::<TlsLevel>("MAY"),
            Err("must be one of: none, may, encrypt".to_string())
        );
        assert_eq!(
            parse::<ForbidBareNewline>("yes"),
            Err("must be one of: reject, normalize, no".to_string())
        );
    }
}
