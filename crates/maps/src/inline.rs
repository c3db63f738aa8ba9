//! `inline:{ key=value, { key = text, with commas } }` and `static:{text}` (Postfix 3.0).

use std::collections::HashMap;

use crate::text::{problem, TextTable};
use crate::MapError;

/// `{text}` → `text`; anything else unchanged.
pub(crate) fn strip_braces(s: &str) -> &str {
    let t = s.trim();
    t.strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .map_or(t, str::trim)
}

pub(crate) fn parse(rest: &str, spec: &str) -> Result<TextTable, MapError> {
    let t = rest.trim();
    let body = t
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| {
            MapError::Syntax(vec![problem(spec, 0, "expected inline:{ key=value, … }")])
        })?;
    let mut entries = HashMap::new();
    let mut problems = Vec::new();
    for item in split_top(body) {
        let item = strip_braces(item);
        if item.is_empty() {
            continue;
        }
        match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                entries
                    .entry(k.trim().to_lowercase())
                    .or_insert_with(|| v.trim().to_string());
            }
            _ => problems.push(problem(spec, 0, &format!("\"{item}\": expected key=value"))),
        }
    }
    if problems.is_empty() {
        Ok(TextTable::from_entries(entries))
    } else {
        Err(MapError::Syntax(problems))
    }
}

/// Splits at commas and white space outside `{…}`.
fn split_top(body: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&body[start..]);
    out
}
