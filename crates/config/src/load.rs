//! Finding and reading the configuration file: path resolution, TOML parsing with line
//! numbers, unknown-key detection, and turning each TOML value into a template for
//! `resolve.rs`.
//!
//! Path resolution, first match wins: the explicit path (`-c`), `$MAILROOM_CONFIG`,
//! `/etc/mailroom/mailroom.toml` if it exists, else no file (the embedded default). A path
//! that was asked for but cannot be read is an error, never a fallback to the default.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use toml::{Spanned, Value as Toml};

use crate::defaults::{self, Environment};
use crate::params::{self, Kind};
use crate::resolve::{self, Source, Template};
use crate::units::split_list;
use crate::validate;
use crate::{Config, ConfigError, Profile};

/// Where a system install keeps its configuration.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/mailroom/mailroom.toml";

/// The file to read, or `None` for the embedded default. `env_value` is `$MAILROOM_CONFIG`
/// (an empty value counts as unset); `system_file_exists` is asked only when needed.
pub(crate) fn config_path(
    explicit: Option<&Path>,
    env_value: Option<OsString>,
    system_file_exists: impl FnOnce() -> bool,
) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = env_value.filter(|value| !value.is_empty()) {
        return Some(PathBuf::from(path));
    }
    system_file_exists().then(|| PathBuf::from(SYSTEM_CONFIG_PATH))
}

pub(crate) fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    let environment = Environment::current();
    match current_path(explicit) {
        None => Ok(defaults::embedded(&environment)),
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|error| ConfigError {
                file: Some(path.clone()),
                line: None,
                key: String::new(),
                message: format!("cannot read configuration file: {error}"),
            })?;
            parse(&text, Some(&path), &environment)
        }
    }
}

/// Builds a configuration from file text. The profile's default (embedded unless the file
/// says `profile = "system"`) supplies every parameter the file leaves out.
pub(crate) fn parse(
    text: &str,
    file: Option<&Path>,
    environment: &Environment,
) -> Result<Config, ConfigError> {
    let error = |line, key: &str, message| ConfigError {
        file: file.map(Path::to_path_buf),
        line,
        key: key.to_string(),
        message,
    };
    let mut entries = read_entries(text, &error)?;
    let profile = match entries.remove("profile") {
        None => Profile::Embedded,
        Some((line, value)) => {
            parse_profile(&value).map_err(|m| error(Some(line), "profile", m))?
        }
    };
    let base = match profile {
        Profile::Embedded => defaults::embedded(environment),
        Profile::System => defaults::system(),
    };
    let mut sources = resolve::default_sources(&base, entries.contains_key("data_directory"));
    let mut lines = BTreeMap::new();
    for (name, (line, value)) in entries {
        let kind = params::find(name).map_or(Kind::Text, |param| param.kind);
        let template = template_for(kind, value).map_err(|m| error(Some(line), name, m))?;
        sources.insert(
            name,
            Source {
                template,
                line: Some(line),
            },
        );
        lines.insert(name, line);
    }
    let mut config = resolve::apply(base, sources, file)?;
    config.source = file.map(Path::to_path_buf);
    validate::check(&config, &lines).map_err(|(key, m)| error(lines.get(key).copied(), key, m))?;
    Ok(config)
}

type Entries = BTreeMap<&'static str, (usize, Toml)>;

/// The file's keys, by canonical parameter name (plus `profile`), each with its line.
fn read_entries(
    text: &str,
    error: &impl Fn(Option<usize>, &str, String) -> ConfigError,
) -> Result<Entries, ConfigError> {
    let table: BTreeMap<String, Spanned<Toml>> = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|span| line_of(text, span.start));
        let message: Vec<&str> = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        error(
            line,
            "",
            format!("TOML syntax error: {}", message.join(": ")),
        )
    })?;
    let mut entries = Entries::new();
    for (key, spanned) in table {
        let line = line_of(text, spanned.span().start);
        let name = match params::find(&key) {
            Some(param) => param.name,
            None if key == "profile" => "profile",
            None => {
                let message = unknown_key_message(&key, spanned.get_ref().is_table());
                return Err(error(Some(line), &key, message));
            }
        };
        if let Some((first, _)) = entries.insert(name, (line, spanned.into_inner())) {
            let message = format!("set twice (also on line {first})");
            return Err(error(Some(line), &key, message));
        }
    }
    Ok(entries)
}

fn parse_profile(value: &Toml) -> Result<Profile, String> {
    match value.as_str() {
        Some("embedded") => Ok(Profile::Embedded),
        Some("system") => Ok(Profile::System),
        _ => Err(format!(
            "not a profile: {value} (use \"embedded\" or \"system\")"
        )),
    }
}

/// The TOML types each kind accepts, turned into the template `resolve.rs` expands.
fn template_for(kind: Kind, value: Toml) -> Result<Template, String> {
    match (kind, value) {
        (Kind::List, Toml::String(text)) => Ok(Template::Items(split_list(&text))),
        (Kind::List, Toml::Array(array)) => array
            .into_iter()
            .map(|item| match item {
                Toml::String(text) => Ok(text.trim().to_string()),
                other => Err(format!(
                    "list items must be strings, not {}",
                    other.type_str()
                )),
            })
            .collect::<Result<_, _>>()
            .map(Template::Items),
        (Kind::Records(fields), Toml::Array(array)) => array
            .into_iter()
            .map(|item| record_text(fields, item))
            .collect::<Result<_, _>>()
            .map(Template::Items),
        (Kind::Records(_) | Kind::Pairs, Toml::String(text)) => {
            Ok(Template::Items(split_list(&text)))
        }
        (Kind::Pairs, Toml::Table(table)) => table
            .into_iter()
            .map(|(key, value)| match value {
                Toml::String(text) => Ok(format!("{key}={}", text.trim())),
                other => Err(format!("{key} must be a string, not {}", other.type_str())),
            })
            .collect::<Result<_, _>>()
            .map(Template::Items),
        (Kind::Pairs, Toml::Array(array)) => template_for(Kind::List, Toml::Array(array)),
        (_, Toml::String(text)) => Ok(Template::Text(text)),
        (Kind::Duration | Kind::Size | Kind::Count, Toml::Integer(number)) if number < 0 => {
            Err(format!("must not be negative: {number}"))
        }
        (Kind::Duration | Kind::Size | Kind::Count, Toml::Integer(number)) => {
            Ok(Template::Text(number.to_string()))
        }
        (Kind::Bool, Toml::Boolean(value)) => Ok(Template::Text(crate::units::format_bool(value))),
        (kind, other) => Err(format!(
            "expected {}, not {}",
            expected(kind),
            other.type_str()
        )),
    }
}

/// One item of a [`Kind::Records`] list: a string as it is, or an inline table with exactly
/// `fields` (string values), joined by `:` in `fields` order.
fn record_text(fields: &[&str], item: Toml) -> Result<String, String> {
    let keys = || fields.join(", ");
    let table = match item {
        Toml::String(text) => return Ok(text.trim().to_string()),
        Toml::Table(table) => table,
        other => {
            return Err(format!(
                "items must be tables with {}, not {}",
                keys(),
                other.type_str()
            ))
        }
    };
    if let Some(unknown) = table.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(format!("unknown key {unknown:?} (use {})", keys()));
    }
    let mut values = Vec::with_capacity(fields.len());
    for field in fields {
        match table.get(*field) {
            Some(Toml::String(value)) if !value.trim().is_empty() => {
                values.push(value.trim().to_string())
            }
            Some(other) if !other.is_str() => {
                return Err(format!(
                    "{field} must be a string, not {}",
                    other.type_str()
                ))
            }
            _ => return Err(format!("every item needs {}; {field} is missing", keys())),
        }
    }
    Ok(values.join(":"))
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "a string",
        Kind::List => "an array of strings or a comma-separated string",
        Kind::Records(_) => "an array of inline tables",
        Kind::Pairs => "an inline table of strings, or an array of \"key=value\" strings",
        Kind::Duration => "a duration (seconds, or a string like \"300s\" or \"5d\")",
        Kind::Size => "a size (bytes, or a string like \"100M\")",
        Kind::Count => "a number",
        Kind::Bool => "a boolean (true/false or \"yes\"/\"no\")",
    }
}

fn unknown_key_message(key: &str, is_table: bool) -> String {
    if is_table {
        return "unknown parameter (the file has no [sections]: write name = value at top level)"
            .to_string();
    }
    let closest = params::all_names()
        .chain(["profile"])
        .map(|name| (edit_distance(key, name), name))
        .min();
    match closest {
        Some((distance, name)) if distance <= 3 && distance * 3 <= key.len() => {
            format!("unknown parameter; did you mean {name}?")
        }
        _ => "unknown parameter".to_string(),
    }
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
        + 1
}

/// The file `load` reads (see [`config_path`]), with the process environment.
pub(crate) fn current_path(explicit: Option<&Path>) -> Option<PathBuf> {
    // An unreadable /etc/mailroom (EACCES) counts as present: the read then fails loudly.
    let system_file_exists = || Path::new(SYSTEM_CONFIG_PATH).try_exists().unwrap_or(true);
    config_path(
        explicit,
        std::env::var_os("MAILROOM_CONFIG"),
        system_file_exists,
    )
}

/// What the file sets, as written: canonical name (plus `profile`) → the value in Postfix's
/// text form (a string as it is, list items joined by `, `, booleans `yes`/`no`).
pub(crate) fn written(
    text: &str,
    file: Option<&Path>,
) -> Result<BTreeMap<&'static str, String>, ConfigError> {
    let error = |line, key: &str, message| ConfigError {
        file: file.map(Path::to_path_buf),
        line,
        key: key.to_string(),
        message,
    };
    let entries = read_entries(text, &error)?;
    Ok(entries
        .into_iter()
        .map(|(name, (_, value))| (name, postfix_text(&value)))
        .collect())
}

fn postfix_text(value: &Toml) -> String {
    match value {
        Toml::String(text) => text.clone(),
        Toml::Boolean(value) => crate::units::format_bool(*value),
        Toml::Array(items) => items
            .iter()
            .map(postfix_text)
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}
