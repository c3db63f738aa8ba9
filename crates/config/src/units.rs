//! Postfix-style value syntax: durations, sizes, counts, booleans and lists, parsed from the
//! (already `$`-expanded) text of a parameter and formatted back for `mailroom config`.
//!
//! Parsing is strict: anything not understood is an error message meant to be shown after
//! `file:line: key:`, never a silent default.

use std::time::Duration;

use crate::Stressed;

const DURATION_HELP: &str = "(use seconds or a unit: 300s, 5m, 1h, 5d, 1w)";
const SIZE_HELP: &str = "(use bytes or a unit: 100M, 2G)";

/// A Postfix time value: `300`, `300s`, `5m`, `1h`, `5d`, `1w`. A bare number is seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("not a duration: {text:?} {DURATION_HELP}");
    let (digits, unit) = split_number(text.trim()).ok_or_else(bad)?;
    let seconds_per_unit: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    let count: u64 = digits.parse().map_err(|_| bad())?;
    count
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration too large: {text:?}"))
}

/// A size in bytes: `10240000`, `100K`, `100M`, `2G` (binary units: K = 1024).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("not a size: {text:?} {SIZE_HELP}");
    let (digits, unit) = split_number(text.trim()).ok_or_else(bad)?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(bad()),
    };
    let count: u64 = digits.parse().map_err(|_| bad())?;
    count
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size too large: {text:?}"))
}

/// A plain non-negative integer that must fit `T`.
pub(crate) fn parse_count<T: TryFrom<u64>>(text: &str) -> Result<T, String> {
    let text = text.trim();
    let bad = || format!("not a number: {text:?}");
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let value: u64 = text
        .parse()
        .map_err(|_| format!("number too large: {text:?}"))?;
    T::try_from(value).map_err(|_| format!("number too large: {text:?}"))
}

/// Postfix booleans are `yes`/`no`; `true`/`false` are accepted too (TOML's own words).
pub(crate) fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("not a boolean: {text:?} (use yes or no)")),
    }
}

/// A Postfix list: items separated by commas and/or whitespace; empty items are dropped.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whole days print as `5d`, everything else in seconds (`300s`, `4000s`, `0s`), matching
/// how Postfix's own defaults read.
pub(crate) fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds != 0 && seconds.is_multiple_of(86_400) {
        format!("{}d", seconds / 86_400)
    } else {
        format!("{seconds}s")
    }
}

pub(crate) fn format_bool(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

/// A stress-dependent value: Postfix's `${stress?{10}:{300}}s` (the text after the
/// conditional applies to both branches), or a plain value that applies in both states.
pub(crate) fn parse_stressed<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Stressed<T>, String> {
    let text = text.trim();
    let Some(body) = text.strip_prefix("${stress?{") else {
        let value = parse(text)?;
        let again = parse(text)?;
        return Ok(Stressed {
            normal: value,
            stress: again,
        });
    };
    let bad = || format!("not a stress conditional: {text:?} (use ${{stress?{{10}}:{{300}}}}s)");
    let (stress, rest) = body.split_once("}:{").ok_or_else(bad)?;
    let (normal, suffix) = rest.split_once("}}").ok_or_else(bad)?;
    Ok(Stressed {
        normal: parse(&format!("{normal}{suffix}"))?,
        stress: parse(&format!("{stress}{suffix}"))?,
    })
}

/// The Postfix text of a stress-dependent value: `${stress?{10}:{300}}s` (a unit both
/// values share is written once, after the conditional, as `postconf` shows it), or the
/// plain value when both states agree.
pub(crate) fn format_stressed<T: PartialEq>(
    value: &Stressed<T>,
    format: impl Fn(&T) -> String,
) -> String {
    if value.normal == value.stress {
        return format(&value.normal);
    }
    let (stress, normal) = (format(&value.stress), format(&value.normal));
    let unit = |text: &str| {
        let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &text[digits.len()..];
        let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        (digits.to_string(), unit.to_string(), numeric)
    };
    match (unit(&stress), unit(&normal)) {
        ((s, su, true), (n, nu, true)) if su == nu => format!("${{stress?{{{s}}}:{{{n}}}}}{su}"),
        _ => format!("${{stress?{{{stress}}}:{{{normal}}}}}"),
    }
}

/// Splits `"300s"` into `("300", "s")`; `None` when there are no leading digits.
fn split_number(text: &str) -> Option<(&str, &str)> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if end == 0 {
        return None;
    }
    Some(text.split_at(end))
}

/// One `smtp_destination_rate_limit` item: `destination=COUNT/UNIT` (unit `s`, `m`, `h`,
/// `d`, or a duration such as `10s`); the destination is kept lower case.
pub(crate) fn parse_destination_rate(text: &str) -> Result<(String, crate::Rate), String> {
    let usage = || format!("not a destination rate: {text:?} (use \"example.net=300/m\")");
    let (destination, rate) = text.split_once('=').ok_or_else(usage)?;
    let (count, per) = rate.trim().split_once('/').ok_or_else(usage)?;
    let count: u64 = count.trim().parse().map_err(|_| usage())?;
    let per = match per.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86_400),
        other => parse_duration(other).map_err(|_| usage())?,
    };
    let destination = destination.trim().to_ascii_lowercase();
    if destination.is_empty() || count == 0 || per.is_zero() {
        return Err(usage());
    }
    Ok((destination, crate::Rate { count, per }))
}

/// The transports mailroom has built in: a named transport cannot take one of these names.
pub const BUILTIN_TRANSPORTS: &[&str] = &[
    "smtp", "relay", "lmtp", "local", "virtual", "filter", "discard", "error", "retry", "hold",
];

/// `name=value` items keyed by a transport name (lower-case letters, digits, `-`, `_`, as
/// master.cf service names), each value read by `value` (`None`: not acceptable).
pub(crate) fn parse_pairs<V>(
    items: &[String],
    value: impl Fn(&str) -> Option<V>,
) -> Result<Vec<(String, V)>, String> {
    items
        .iter()
        .map(|item| {
            let bad = || format!("not a transport setting: {item:?} (use \"slow=VALUE\")");
            let (name, text) = item.split_once('=').ok_or_else(bad)?;
            let name = name.trim();
            let good_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !good_name || BUILTIN_TRANSPORTS.contains(&name) {
                return Err(format!(
                    "{name:?} cannot name a transport (lower-case letters, digits, - and _, not a built-in transport)"
                ));
            }
            let value = value(text.trim()).ok_or_else(bad)?;
            Ok((name.to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let table: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("300", Some(300)),
            ("300s", Some(300)),
            ("5m", Some(300)),
            ("1h", Some(3600)),
            ("5d", Some(432_000)),
            ("1w", Some(604_800)),
            (" 2H ", Some(7200)),
            ("", None),
            ("s", None),
            ("5x", None),
            ("5 d", None),
            ("-5s", None),
            ("1.5h", None),
            ("99999999999999999999w", None),
        ];
        for (input, expected) in table {
            let got = parse_duration(input).ok().map(|d| d.as_secs());
            assert_eq!(got, *expected, "input {input:?}");
        }
    }

    #[test]
    fn sizes() {
        let table: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("10240000", Some(10_240_000)),
            ("100K", Some(102_400)),
            ("100M", Some(104_857_600)),
            ("2g", Some(2_147_483_648)),
            ("lots", None),
            ("100MB", None),
            ("-1", None),
            ("18446744073709551615G", None),
        ];
        for (input, expected) in table {
            assert_eq!(parse_size(input).ok(), *expected, "input {input:?}");
        }
        assert_eq!(
            parse_size("lots").unwrap_err(),
            r#"not a size: "lots" (use bytes or a unit: 100M, 2G)"#
        );
    }

    #[test]
    fn counts_and_booleans() {
        assert_eq!(parse_count::<u32>("50"), Ok(50));
        assert!(parse_count::<u32>("5000000000").is_err());
        assert!(parse_count::<usize>("+5").is_err());
        assert!(parse_count::<usize>("").is_err());
        for (input, expected) in [
            ("yes", true),
            ("No", false),
            ("true", true),
            ("false", false),
        ] {
            assert_eq!(parse_bool(input), Ok(expected));
        }
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn lists_split_on_commas_and_whitespace() {
        let table: &[(&str, &[&str])] = &[
            ("", &[]),
            ("a", &["a"]),
            ("a, b", &["a", "b"]),
            ("a b\tc", &["a", "b", "c"]),
            (" a ,, b ,\n c ", &["a", "b", "c"]),
        ];
        for (input, expected) in table {
            assert_eq!(split_list(input), *expected, "input {input:?}");
        }
    }

    #[test]
    fn stress_conditionals() {
        let timeout = parse_stressed("${stress?{10}:{300}}s", parse_duration).unwrap();
        assert_eq!(timeout.normal, Duration::from_secs(300));
        assert_eq!(timeout.stress, Duration::from_secs(10));
        let plain = parse_stressed("60s", parse_duration).unwrap();
        assert_eq!(
            (plain.normal, plain.stress),
            (Duration::from_secs(60), Duration::from_secs(60))
        );
        let flag = parse_stressed("${stress?{yes}:{no}}", parse_bool).unwrap();
        assert!(flag.stress && !flag.normal);
        for bad in [
            "${stress?{10}",
            "${stress?{10}:{x}}s",
            "${stress?{10}{300}}",
        ] {
            assert!(parse_stressed(bad, parse_duration).is_err(), "{bad}");
        }
        let shown = format_stressed(&timeout, |d| format_duration(*d));
        assert_eq!(shown, "${stress?{10}:{300}}s");
        let again = parse_stressed(&shown, parse_duration).unwrap();
        assert_eq!(again, timeout);
        assert_eq!(format_stressed(&plain, |d| format_duration(*d)), "60s");
        let mixed = Stressed {
            normal: Duration::from_secs(86_400),
            stress: Duration::from_secs(10),
        };
        assert_eq!(
            format_stressed(&mixed, |d| format_duration(*d)),
            "${stress?{10s}:{1d}}"
        );
        assert_eq!(
            format_stressed(&flag, |b| format_bool(*b)),
            "${stress?{yes}:{no}}"
        );
    }

    #[test]
    fn formatting() {
        assert_eq!(format_duration(Duration::from_secs(300)), "300s");
        assert_eq!(format_duration(Duration::from_secs(4000)), "4000s");
        assert_eq!(format_duration(Duration::from_secs(432_000)), "5d");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_bool(true), "yes");
    }
}
