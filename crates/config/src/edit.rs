//! `postconf -e name=value` and `postconf -# name` on the TOML text: the file is parsed with
//! `toml_edit` only to find where each key and value are, and the edit is spliced into the
//! original text, so every comment, blank line and layout choice the operator made is kept
//! byte for byte outside the edited value.
//!
//! These functions only rewrite text; they do not validate. The caller checks the result
//! with the loader the daemon uses ([`crate::Config::from_str`]) before writing anything, so
//! `-e` can never leave a file the daemon would refuse.

use std::ops::Range;

use toml_edit::{Array, ImDocument, Key, Value};

use crate::params::{self, Kind};
use crate::units::split_list;

/// `name=value` as Postfix's `split_nameval` reads it: both sides trimmed, the name
/// non-empty. The error is Postfix's text.
pub fn split_assignment(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!("missing '=' after attribute name: \"{text}\""));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("missing attribute name: \"{text}\""));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Sets each `(name, value)` (Postfix text form: `300s`, `yes`, `a, b`): an existing key's
/// value is replaced where it stands (also when the file spells it with an alias), a new one
/// is appended as `name = value`. A later assignment to the same parameter wins.
pub fn set_parameters(text: &str, assignments: &[(String, String)]) -> Result<String, String> {
    let document = parse(text)?;
    let mut last: Vec<(&str, &str)> = Vec::new();
    for (name, value) in assignments {
        last.retain(|(earlier, _)| canonical(earlier) != canonical(name));
        last.push((name, value));
    }
    let mut splices = Vec::new();
    let mut appended = String::new();
    for (name, value) in last {
        let new = toml_value(name, value).to_string();
        match locate(&document, name) {
            Some((_, value_span)) => splices.push((value_span, new)),
            None => appended.push_str(&format!("{} = {new}\n", Key::new(name).display_repr())),
        }
    }
    let mut out = splice(text, splices);
    if !appended.is_empty() && !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&appended);
    Ok(out)
}

/// Comments out each named parameter: every line from its key to the end of its value gets
/// a leading `#`, as Postfix's `-#` does. A name the file does not set is left alone.
pub fn comment_out_parameters(text: &str, names: &[String]) -> Result<String, String> {
    let document = parse(text)?;
    let mut line_starts: Vec<usize> = Vec::new();
    for name in names {
        let Some((key_span, value_span)) = locate(&document, name) else {
            continue;
        };
        let first = line_start(text, key_span.start);
        // A value never ends in a newline, so its end is on its last line.
        let last = line_start(text, value_span.end);
        line_starts.extend(
            std::iter::once(first).chain(
                text[first..last]
                    .match_indices('\n')
                    .map(|(at, _)| first + at + 1),
            ),
        );
    }
    line_starts.sort_unstable();
    line_starts.dedup();
    let splices = line_starts
        .into_iter()
        .map(|at| (at..at, "#".to_string()))
        .collect();
    Ok(splice(text, splices))
}

fn parse(text: &str) -> Result<ImDocument<&str>, String> {
    ImDocument::parse(text).map_err(|error| {
        let message: Vec<&str> = error
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        format!("TOML syntax error: {}", message.join(": "))
    })
}

/// The parameter's name as the table knows it (aliases resolved); unknown names as given.
fn canonical(name: &str) -> &str {
    match params::find(name) {
        Some(param) => param.name,
        None => name,
    }
}

/// Where the file sets `name` (or one of its aliases): the key's span and the value's.
fn locate(document: &ImDocument<&str>, name: &str) -> Option<(Range<usize>, Range<usize>)> {
    let table = document.as_table();
    let wanted = canonical(name);
    let key = table
        .iter()
        .map(|(key, _)| key)
        .find(|key| canonical(key) == wanted)?;
    let (key, item) = table.get_key_value(key)?;
    Some((key.span()?, item.span()?))
}

/// The TOML spelling of a Postfix-style value for this parameter: lists become arrays,
/// plain numbers integers, `yes`/`no` booleans; anything else stays a string, so the
/// loader's own message explains what is wrong with it.
fn toml_value(name: &str, text: &str) -> Value {
    let kind = params::find(name).map_or(Kind::Text, |param| param.kind);
    match kind {
        Kind::List | Kind::Records(_) | Kind::Pairs => {
            Value::Array(split_list(text).into_iter().collect::<Array>())
        }
        Kind::Count | Kind::Size | Kind::Duration => match text.parse::<i64>() {
            Ok(number) if number >= 0 => Value::from(number),
            _ => Value::from(text),
        },
        Kind::Bool => match text {
            "yes" | "true" => Value::from(true),
            "no" | "false" => Value::from(false),
            _ => Value::from(text),
        },
        Kind::Text => Value::from(text),
    }
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |newline| newline + 1)
}

/// Applies non-overlapping replacements, given in any order.
fn splice(text: &str, mut splices: Vec<(Range<usize>, String)>) -> String {
    splices.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let mut out = text.to_string();
    for (range, replacement) in splices {
        out.replace_range(range, &replacement);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# mailroom\n\n# how long\nqueue_run_delay = \"5m\"   # keep\nmynetworks = [\n  \"127.0.0.0/8\",\n]\nbounce_notice_recipient = \"x\"\n";

    fn set(text: &str, pairs: &[(&str, &str)]) -> String {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        set_parameters(text, &pairs).unwrap()
    }

    #[test]
    fn set_replaces_in_place_and_keeps_comments() {
        let out = set(FILE, &[("queue_run_delay", "60s"), ("hopcount_limit", "7")]);
        assert_eq!(
            out,
            FILE.replace("\"5m\"   # keep", "\"60s\"   # keep") + "hopcount_limit = 7\n"
        );
        let out = set(
            FILE,
            &[
                ("mynetworks", "10.0.0.0/8, [::1]/128"),
                ("soft_bounce", "yes"),
            ],
        );
        assert!(
            out.contains("mynetworks = [\"10.0.0.0/8\", \"[::1]/128\"]\nbounce"),
            "{out}"
        );
        assert!(out.ends_with("soft_bounce = true\n"), "{out}");
    }

    #[test]
    fn set_finds_a_key_spelled_with_its_alias_and_last_assignment_wins() {
        let out = set(
            FILE,
            &[
                ("2bounce_notice_recipient", "a"),
                ("2bounce_notice_recipient", "b"),
            ],
        );
        assert!(out.ends_with("bounce_notice_recipient = \"b\"\n"), "{out}");
        assert!(!out.contains("2bounce"), "{out}");
    }

    #[test]
    fn set_appends_after_a_last_line_without_newline() {
        assert_eq!(
            set("a_comment_only = 1", &[("relayhost", "[mx]:25")]),
            "a_comment_only = 1\nrelayhost = \"[mx]:25\"\n"
        );
        assert_eq!(
            set("", &[("hopcount_limit", "x")]),
            "hopcount_limit = \"x\"\n"
        );
    }

    #[test]
    fn comment_out_prefixes_every_line_of_the_setting() {
        let names = [
            "mynetworks".to_string(),
            "queue_run_delay".to_string(),
            "relayhost".to_string(),
        ];
        let out = comment_out_parameters(FILE, &names).unwrap();
        assert_eq!(
            out,
            "# mailroom\n\n# how long\n#queue_run_delay = \"5m\"   # keep\n#mynetworks = [\n#  \"127.0.0.0/8\",\n#]\nbounce_notice_recipient = \"x\"\n"
        );
    }

    #[test]
    fn assignments_are_split_like_postfix() {
        assert_eq!(
            split_assignment(" a = b c "),
            Ok(("a".into(), "b c".into()))
        );
        assert_eq!(split_assignment("a="), Ok(("a".into(), "".into())));
        assert!(split_assignment("a").unwrap_err().contains("missing '='"));
        assert!(split_assignment("=b")
            .unwrap_err()
            .contains("missing attribute name"));
    }

    #[test]
    fn a_file_that_is_not_toml_is_an_error() {
        assert!(set_parameters("a = = b", &[]).is_err());
    }
}
