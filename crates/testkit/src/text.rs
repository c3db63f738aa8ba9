//! Small text helpers the tests share: header unfolding, log tails, counting, and the
//! small message most relay scenarios send.

use std::collections::BTreeMap;

/// Header lines with continuation lines joined.
pub fn unfold(headers: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in headers.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
                continue;
            }
        }
        out.push(line.to_string());
    }
    out
}

pub fn header_value(headers: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    unfold(headers)
        .into_iter()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_string())
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How many times each value occurs.
pub fn multiset<I: IntoIterator<Item = String>>(items: I) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

/// `users` u0..u{n-1}.
pub fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{i}")).collect()
}

/// A small message with `subject` (LF line ends).
pub fn message(subject: &str) -> String {
    format!("From: sender@test.example\nTo: someone@far.example\nSubject: {subject}\nMessage-ID: <{subject}@test.example>\n\nbody of {subject}\n")
}

/// TOML text with every `key = ...` line left out that a later line sets again (TOML
/// forbids a key twice; the later, more specific line is the one meant).
pub(crate) fn later_keys_win(text: &str) -> String {
    let key = |line: &str| match line.trim_start().starts_with('#') || !line.contains('=') {
        true => None,
        false => line.split('=').next().map(|k| k.trim().to_string()),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let replaced =
            key(line).is_some_and(|k| lines[i + 1..].iter().any(|l| key(l) == Some(k.clone())));
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn a_later_line_replaces_an_earlier_key() {
    let text = "# a = 1\nqueue_run_delay = \"1s\"\nx = [\n  \"y\",\n]\nqueue_run_delay = \"5s\"\n";
    assert_eq!(
        later_keys_win(text),
        "# a = 1\nx = [\n  \"y\",\n]\nqueue_run_delay = \"5s\"\n"
    );
}
