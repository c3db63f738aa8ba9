//! An MTA-STS policy (RFC 8461 3.2) and what it says about one MX host: the text served at
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` parsed into [`Policy`], and the `mx:`
//! patterns matched as RFC 8461 4.1 says (`*.example.net` stands for exactly one leftmost
//! label; case does not matter; a trailing dot is ignored). Pure: no I/O.

use std::time::Duration;

/// RFC 8461 3.2: `max_age` is at most 31557600 seconds (about a year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// What the domain asks senders to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to listed MX hosts over verified TLS, else do not deliver.
    Enforce,
    /// Report failures (here: log them) but deliver anyway.
    Testing,
    /// The domain has withdrawn its policy.
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// The `mx:` patterns, lower case, without trailing dots.
    pub mx: Vec<String>,
    pub max_age: Duration,
}

impl Policy {
    /// Parses the policy text. Unknown keys are ignored (RFC 8461 3.2: extensions); a
    /// missing or wrong `version`, `mode` or `max_age`, or `enforce`/`testing` without any
    /// `mx`, is an error saying which.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let (mut version, mut mode, mut max_age) = (None, None, None);
        let mut mx = Vec::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "version" => version = Some(value.to_string()),
                "mode" => mode = Some(parse_mode(value)?),
                "max_age" => max_age = Some(parse_max_age(value)?),
                "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err(format!("version is {version:?}, not STSv1"));
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mode != Mode::None && mx.is_empty() {
            return Err(format!("mode {} without any mx", mode.as_str()));
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// True when `host` (an MX host name) matches one of the `mx:` patterns.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|pattern| matches(pattern, &host))
    }
}

fn parse_mode(value: &str) -> Result<Mode, String> {
    match value {
        "enforce" => Ok(Mode::Enforce),
        "testing" => Ok(Mode::Testing),
        "none" => Ok(Mode::None),
        other => Err(format!("unknown mode {other:?}")),
    }
}

fn parse_max_age(value: &str) -> Result<Duration, String> {
    let seconds: u64 = value
        .parse()
        .map_err(|_| format!("max_age {value:?} is not a number of seconds"))?;
    Ok(Duration::from_secs(seconds.min(MAX_AGE_LIMIT)))
}

/// RFC 8461 4.1: a pattern is a host name, or `*.` and a name; the wildcard matches exactly
/// one label (`*.example.net` matches `mx.example.net`, not `a.b.example.net` nor
/// `example.net`).
fn matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str =
        "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET.\r\nmax_age: 604800\r\n";

    #[test]
    fn parses_rfc_8461_example() {
        let p = Policy::parse(POLICY).unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.mx, ["mail.example.com", "*.example.net"]);
        assert_eq!(p.max_age, Duration::from_secs(604_800));
    }

    #[test]
    fn mx_patterns_match_one_leftmost_label() {
        let p = Policy::parse(POLICY).unwrap();
        for (host, want) in [
            ("mail.example.com", true),
            ("MAIL.example.com.", true),
            ("mx1.example.net", true),
            ("a.b.example.net", false),
            ("example.net", false),
            (".example.net", false),
            ("mail.example.com.evil.example", false),
            ("evilexample.net", false),
        ] {
            assert_eq!(p.allows(host), want, "{host}");
        }
    }

    #[test]
    fn bad_policies_say_why() {
        let cases = [
            ("mode: enforce\nmx: a\nmax_age: 1\n", "not STSv1"),
            (
                "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",
                "unknown mode",
            ),
            (
                "version: STSv1\nmode: enforce\nmax_age: 1\n",
                "without any mx",
            ),
            ("version: STSv1\nmode: testing\nmx: a\n", "no max_age"),
            (
                "version: STSv1\nmode: testing\nmx: a\nmax_age: -1\n",
                "not a number",
            ),
        ];
        for (text, why) in cases {
            let e = Policy::parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        let none = Policy::parse("version: STSv1\nmode: none\nmax_age: 99999999999\n").unwrap();
        assert_eq!(none.max_age, Duration::from_secs(MAX_AGE_LIMIT));
    }
}
