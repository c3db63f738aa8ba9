//! `regexp:` and `pcre:` tables (Postfix's regexp_table(5) and pcre_table(5)): rules tried
//! in order, the first match gives the result with `$1`, `${1}` (or `$(1)`) replaced by
//! its groups and `$$` by `$`. `!/pattern/` matches when the pattern does not (its result
//! cannot use groups); `if /pattern/` … `endif` guards the rules between them.
//!
//! Both run on Rust's `regex` engine, case-insensitive by default as in Postfix (the `i`
//! flag toggles it, `m` toggles multi-line). For `pcre:` the `x` flag means free spacing,
//! `s` dot-all and `U` ungreedy, as in PCRE; backreferences and look-around, which the
//! engine does not have, are refused at load with the line number.

use regex::{Regex, RegexBuilder};

use crate::lines::logical_lines;
use crate::text::problem;
use crate::MapError;

#[derive(Debug, Clone)]
struct Pattern {
    regex: Regex,
    negated: bool,
}

impl Pattern {
    fn holds(&self, key: &str) -> bool {
        self.regex.is_match(key) != self.negated
    }
}

#[derive(Debug)]
struct Rule {
    guards: Vec<Pattern>,
    pattern: Pattern,
    result: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

#[derive(Debug)]
pub(crate) struct RegexpTable {
    rules: Vec<Rule>,
}

impl RegexpTable {
    pub(crate) fn parse(text: &str, origin: &str, pcre: bool) -> Result<RegexpTable, MapError> {
        let (lines, mut problems) = logical_lines(text, origin);
        let mut guards: Vec<(usize, Pattern)> = Vec::new();
        let mut rules = Vec::new();
        for l in lines {
            match parse_line(&l.text, pcre) {
                Ok(Line::If(p)) => guards.push((l.line, p)),
                Ok(Line::Endif) => {
                    if guards.pop().is_none() {
                        problems.push(problem(
                            origin,
                            l.line,
                            "ignoring ENDIF without matching IF",
                        ));
                    }
                }
                Ok(Line::Rule(pattern, result)) => rules.push(Rule {
                    guards: guards.iter().map(|(_, p)| p.clone()).collect(),
                    pattern,
                    result,
                }),
                Err(e) => problems.push(problem(origin, l.line, &e)),
            }
        }
        for (line, _) in guards {
            problems.push(problem(origin, line, "IF has no matching ENDIF"));
        }
        if problems.is_empty() {
            Ok(RegexpTable { rules })
        } else {
            Err(MapError::Syntax(problems))
        }
    }

    pub(crate) fn lookup(&self, key: &str) -> Option<String> {
        self.rules
            .iter()
            .filter(|r| r.guards.iter().all(|g| g.holds(key)))
            .find_map(|r| r.apply(key))
    }
}

impl Rule {
    fn apply(&self, key: &str) -> Option<String> {
        if self.pattern.negated {
            return (!self.pattern.regex.is_match(key)).then(|| expand(&self.result, None));
        }
        let caps = self.pattern.regex.captures(key)?;
        Some(expand(&self.result, Some(&caps)))
    }
}

fn expand(pieces: &[Piece], caps: Option<&regex::Captures<'_>>) -> String {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Group(n) => {
                if let Some(m) = caps.and_then(|c| c.get(*n)) {
                    out.push_str(m.as_str());
                }
            }
        }
    }
    out
}

enum Line {
    If(Pattern),
    Endif,
    Rule(Pattern, Vec<Piece>),
}

fn parse_line(text: &str, pcre: bool) -> Result<Line, String> {
    let lower = text.to_ascii_lowercase();
    if lower == "endif" {
        return Ok(Line::Endif);
    }
    if let Some(rest) = lower
        .strip_prefix("if")
        .filter(|r| r.starts_with(char::is_whitespace))
        .map(|_| text[2..].trim_start())
    {
        let (pattern, rest) = parse_pattern(rest, pcre)?;
        if !rest.trim().is_empty() {
            return Err("IF takes a pattern only, no result".into());
        }
        return Ok(Line::If(pattern));
    }
    let (pattern, rest) = parse_pattern(text, pcre)?;
    let result = rest.trim();
    if result.is_empty() {
        return Err("a result is missing after the pattern".into());
    }
    let groups = if pattern.negated {
        0
    } else {
        pattern.regex.captures_len() - 1
    };
    Ok(Line::Rule(pattern, parse_result(result, groups)?))
}

/// `[!]<d>pattern<d>flags` where `<d>` is the first character; returns the rest of the line.
fn parse_pattern(text: &str, pcre: bool) -> Result<(Pattern, &str), String> {
    let (negated, text) = match text.strip_prefix('!') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, text),
    };
    let delim = text
        .chars()
        .next()
        .filter(|c| !c.is_alphanumeric() && !c.is_whitespace() && *c != '\\')
        .ok_or("a pattern must start with a delimiter such as /")?;
    let body = &text[delim.len_utf8()..];
    let mut end = None;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            end = Some(i);
            break;
        }
    }
    let end = end.ok_or_else(|| format!("the pattern has no closing {delim}"))?;
    let source = &body[..end];
    let after = &body[end + delim.len_utf8()..];
    let flags_len = after.find(char::is_whitespace).unwrap_or(after.len());
    let regex = build(source, &after[..flags_len], pcre)?;
    Ok((Pattern { regex, negated }, &after[flags_len..]))
}

fn build(source: &str, flags: &str, pcre: bool) -> Result<Regex, String> {
    let mut b = RegexBuilder::new(source);
    let (mut insensitive, mut multi, mut spacing, mut dotall, mut lazy) =
        (true, false, false, false, false);
    for f in flags.chars() {
        match (f, pcre) {
            ('i', _) => insensitive = !insensitive,
            ('m', _) => multi = !multi,
            ('x', false) => {} // POSIX extended syntax: always on here
            ('x', true) => spacing = !spacing,
            ('s', true) => dotall = !dotall,
            ('U', true) => lazy = !lazy,
            ('A' | 'E' | 'X', true) => {}
            _ => return Err(format!("unknown flag `{f}`")),
        }
    }
    b.case_insensitive(insensitive)
        .multi_line(multi)
        .ignore_whitespace(spacing)
        .dot_matches_new_line(dotall)
        .swap_greed(lazy);
    b.build().map_err(|e| {
        let first = e.to_string();
        format!(
            "bad pattern: {}",
            first.lines().last().unwrap_or("invalid").trim()
        )
    })
}

/// The result text with its `$n` references; a group the pattern does not have is an error.
fn parse_result(text: &str, groups: usize) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        literal.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            literal.push('$');
            rest = r;
            continue;
        }
        let (digits, skip) = match rest.chars().next() {
            Some(open @ ('{' | '(')) => {
                let close = if open == '{' { '}' } else { ')' };
                let end = rest
                    .find(close)
                    .ok_or_else(|| format!("unclosed {open} after $"))?;
                (&rest[1..end], end + 1)
            }
            _ => {
                let n = rest.bytes().take_while(u8::is_ascii_digit).count();
                (&rest[..n], n)
            }
        };
        let n: usize = digits
            .parse()
            .map_err(|_| format!("`${digits}` is not a group number ($$ is a literal $)"))?;
        if n > groups {
            return Err(format!(
                "out of range replacement index \"{n}\" (the pattern has {groups} groups)"
            ));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Group(n));
        rest = &rest[skip..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

#[cfg(test)]
pub(crate) fn problems_of(text: &str) -> Vec<crate::Problem> {
    match RegexpTable::parse(text, "t", false) {
        Err(MapError::Syntax(p)) => p,
        _ => Vec::new(),
    }
}
