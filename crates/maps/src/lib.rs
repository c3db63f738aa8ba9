//! Lookup tables as Postfix has them: one abstraction for every map mailroom reads
//! (virtual, canonical, generic, relocated, TLS policy, SASL passwords, access, transport).
//!
//! A map is named the way main.cf names it: `type:path` (or a bare path, a text table).
//!
//! - **text tables** — `hash:`, `btree:`, `lmdb:`, `cdb:`, `dbm:`, `texthash:` or a bare path:
//!   the `key value` source file itself is read (Postfix reads the `.db` that `postmap`
//!   builds from it; mailroom needs no build step, so an edited file takes effect at the next
//!   reload). Keys are folded to lower case, as `postmap` folds them.
//! - **pattern tables** — `regexp:` and `pcre:`: `/pattern/flags result` in order, first
//!   match wins, `$1`/`${1}` substitution, `!/pattern/` and `if`/`endif`; `cidr:`: an
//!   address or `network/prefix` per line.
//! - **inline** — `inline:{ key=value, { key = text, with commas } }` and `static:value`.
//!
//! Loading is all or nothing: a file with a bad line is an error naming every `file:line`,
//! so a daemon reloading a map keeps the previous one ([`Live::reload`]) rather than run on
//! half a table. Address look-ups follow Postfix's order ([`Maps::find_address`]).

#![forbid(unsafe_code)]

mod address;
mod cidr;
mod inline;
mod lines;
mod live;
mod regexp;
mod text;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

pub use address::{split_extension, with_extension, AddressQuery, Found};
pub use live::Live;

/// One problem in a map source, reported as `origin:line: text` (Postfix's form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (or the `inline:` spec) the line is in.
    pub origin: String,
    /// 1-based line number; 0 when the problem is not tied to a line.
    pub line: usize,
    pub text: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.origin, self.text)
        } else {
            write!(f, "{}:{}: {}", self.origin, self.line, self.text)
        }
    }
}

/// Why a map could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("{spec}: unsupported map type `{kind}` (mailroom reads text tables, regexp:, pcre:, cidr:, inline: and static:)")]
    Unsupported { spec: String, kind: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every bad line, one `file:line: problem` per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Syntax(Vec<Problem>),
}

/// One opened table.
#[derive(Debug)]
pub struct Map {
    spec: String,
    table: Table,
    warnings: Vec<Problem>,
}

#[derive(Debug)]
enum Table {
    Text(text::TextTable),
    Regexp(regexp::RegexpTable),
    Cidr(cidr::CidrTable),
    Static(String),
}

impl Map {
    /// Opens `spec` (`type:path`, a bare path, `inline:{…}` or `static:…`), reading its file.
    pub fn open(spec: &str) -> Result<Map, MapError> {
        let (kind, rest) = split_spec(spec);
        let table = match kind {
            "" | "hash" | "btree" | "lmdb" | "cdb" | "dbm" | "texthash" | "sdbm" => {
                let (table, warnings) = text::TextTable::parse(&read(rest)?, rest)?;
                return Ok(Map::with(spec, Table::Text(table), warnings));
            }
            "regexp" => Table::Regexp(regexp::RegexpTable::parse(&read(rest)?, rest, false)?),
            "pcre" => Table::Regexp(regexp::RegexpTable::parse(&read(rest)?, rest, true)?),
            "cidr" => Table::Cidr(cidr::CidrTable::parse(&read(rest)?, rest)?),
            "inline" => Table::Text(inline::parse(rest, spec)?),
            "static" => Table::Static(inline::strip_braces(rest).to_string()),
            other => {
                return Err(MapError::Unsupported {
                    spec: spec.to_string(),
                    kind: other.to_string(),
                })
            }
        };
        Ok(Map::with(spec, table, Vec::new()))
    }

    /// A text table from `text` (for tests and tools that already hold the file).
    pub fn from_text(text: &str, origin: &str) -> Result<Map, MapError> {
        let (table, warnings) = text::TextTable::parse(text, origin)?;
        Ok(Map::with(origin, Table::Text(table), warnings))
    }

    /// A `regexp:` table from `text`.
    pub fn from_regexp(text: &str, origin: &str) -> Result<Map, MapError> {
        let table = regexp::RegexpTable::parse(text, origin, false)?;
        Ok(Map::with(origin, Table::Regexp(table), Vec::new()))
    }

    fn with(spec: &str, table: Table, warnings: Vec<Problem>) -> Map {
        Map {
            spec: spec.to_string(),
            table,
            warnings,
        }
    }

    /// The spec the map was opened with, for log lines.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Lines that loaded but deserve a warning (a duplicate key: the first one is used).
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// Pattern tables (regexp, pcre, cidr, static) see only whole keys: Postfix never asks
    /// them the partial keys of an address look-up (`user`, `@domain`).
    pub fn is_pattern(&self) -> bool {
        !matches!(self.table, Table::Text(_))
    }

    /// The value for `key`, or `None`.
    pub fn lookup(&self, key: &str) -> Option<String> {
        match &self.table {
            Table::Text(t) => t.get(key).map(str::to_string),
            Table::Regexp(t) => t.lookup(key),
            Table::Cidr(t) => t.lookup(key).map(str::to_string),
            Table::Static(v) => Some(v.clone()),
        }
    }
}

/// A list of maps searched in order, as a main.cf parameter lists them.
#[derive(Debug, Default)]
pub struct Maps {
    maps: Vec<Map>,
}

impl Maps {
    /// Opens every map; the first one that fails is the error (with all its bad lines).
    pub fn open<S: AsRef<str>>(specs: &[S]) -> Result<Maps, MapError> {
        let maps = specs
            .iter()
            .map(|s| Map::open(s.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Maps { maps })
    }

    pub fn from_maps(maps: Vec<Map>) -> Maps {
        Maps { maps }
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Map> {
        self.maps.iter()
    }

    /// The first value any map has for `key`.
    pub fn lookup(&self, key: &str) -> Option<String> {
        self.maps.iter().find_map(|m| m.lookup(key))
    }

    /// Like [`Maps::lookup`], asking only the text tables (a partial key).
    fn lookup_fixed(&self, key: &str) -> Option<String> {
        self.maps
            .iter()
            .filter(|m| !m.is_pattern())
            .find_map(|m| m.lookup(key))
    }
}

/// `type:rest`, where a bare path (no type, or a `/` before the first `:`) is a text table.
fn split_spec(spec: &str) -> (&str, &str) {
    match spec.split_once(':') {
        Some((kind, rest))
            if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            (kind, rest)
        }
        _ => ("", spec),
    }
}

fn read(path: &str) -> Result<String, MapError> {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|source| MapError::Read {
            path: PathBuf::from(path),
            source,
        })
}
