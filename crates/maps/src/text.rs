//! Text tables (`key value` per logical line), the source format of Postfix's hash/lmdb maps.

use std::collections::HashMap;

use crate::lines::logical_lines;
use crate::{MapError, Problem};

#[derive(Debug, Default)]
pub(crate) struct TextTable {
    entries: HashMap<String, String>,
}

impl TextTable {
    /// Parses a table; a line without a value is an error, a repeated key a warning (the
    /// first one is kept, as `postmap` keeps it).
    pub(crate) fn parse(text: &str, origin: &str) -> Result<(TextTable, Vec<Problem>), MapError> {
        let (lines, mut problems) = logical_lines(text, origin);
        let mut warnings = Vec::new();
        let mut entries = HashMap::new();
        for l in lines {
            let Some((key, value)) = l.text.split_once(char::is_whitespace) else {
                problems.push(problem(
                    origin,
                    l.line,
                    "expected format: key whitespace value",
                ));
                continue;
            };
            let key = key.to_lowercase();
            if entries.contains_key(&key) {
                warnings.push(problem(
                    origin,
                    l.line,
                    &format!("duplicate entry: \"{key}\"; the first is used"),
                ));
                continue;
            }
            entries.insert(key, value.trim().to_string());
        }
        if problems.is_empty() {
            Ok((TextTable { entries }, warnings))
        } else {
            Err(MapError::Syntax(problems))
        }
    }

    pub(crate) fn from_entries(entries: HashMap<String, String>) -> TextTable {
        TextTable { entries }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(&key.to_lowercase()).map(String::as_str)
    }
}

pub(crate) fn problem(origin: &str, line: usize, text: &str) -> Problem {
    Problem {
        origin: origin.to_string(),
        line,
        text: text.to_string(),
    }
}
