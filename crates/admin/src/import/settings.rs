//! Postfix's `main.cf` and `master.cf` → mailroom.toml.
//!
//! Every `main.cf` parameter (or line of `postconf -n` output: the same `name = value`
//! syntax) is sorted into one of three piles, so the operator sees each decision:
//! * **imported**: mailroom has the parameter (same name, same meaning) and its own loader
//!   accepts the value; it is written to mailroom.toml unless the file already sets it.
//! * **default**: the value is what mailroom uses anyway; nothing to write.
//! * **ignored**, with why: Postfix's own paths and identities (mailroom keeps its own),
//!   parameters mailroom does not have, values it does not accept.
//!
//! Translations where Postfix's syntax means something else to mailroom: a time without a
//! unit takes the parameter's Postfix default unit (`maximal_queue_lifetime = 5` is five
//! days, not seconds); `hash:/etc/aliases` and its kin name a table compiled from the text
//! file mailroom reads directly; `proxy:` is dropped. `master.cf`'s SMTP services and
//! `inet_interfaces` become `smtpd_listen` / `submission_listen`.

use config::Config;
use serde::Serialize;
use std::collections::HashMap;
use toml_edit::{DocumentMut, Item, Value};

/// One decision about one parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub name: String,
    /// The value as mailroom gets it (after translation).
    pub value: String,
    pub outcome: Outcome,
    /// Why it was ignored, kept or translated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Written to mailroom.toml.
    Imported,
    /// mailroom.toml already sets it; its value stays.
    Kept,
    /// Same as mailroom's default.
    Default,
    Ignored,
}

/// Postfix parameters that name Postfix's own installation: mailroom has its own.
const POSTFIX_OWN: &[(&str, &str)] = &[
    (
        "queue_directory",
        "Postfix's queue; mailroom keeps its own store (the queue itself is moved, not this path)",
    ),
    (
        "data_directory",
        "Postfix's private data; mailroom keeps its own",
    ),
    (
        "mail_owner",
        "Postfix's account; mailroom runs as its own user",
    ),
    (
        "setgid_group",
        "Postfix's postdrop group; mailroom uses its own",
    ),
    ("command_directory", "a Postfix installation path"),
    ("daemon_directory", "a Postfix installation path"),
    ("meta_directory", "a Postfix installation path"),
    ("shlib_directory", "a Postfix installation path"),
    ("html_directory", "a Postfix installation path"),
    ("manpage_directory", "a Postfix installation path"),
    ("readme_directory", "a Postfix installation path"),
    ("sample_directory", "a Postfix installation path"),
    ("sendmail_path", "a Postfix installation path"),
    ("newaliases_path", "a Postfix installation path"),
    ("mailq_path", "a Postfix installation path"),
    (
        "compatibility_level",
        "Postfix's defaults switch; mailroom's defaults are documented per parameter",
    ),
    ("inet_interfaces", "used for smtpd_listen"),
    (
        "inet_protocols",
        "used for smtpd_listen (IPv4 addresses only are generated)",
    ),
];

/// Postfix time parameters whose default unit is not seconds.
const TIME_UNITS: &[(&str, char)] = &[
    ("maximal_queue_lifetime", 'd'),
    ("bounce_queue_lifetime", 'd'),
    ("delay_warning_time", 'h'),
];

/// Parameters holding lookup tables.
const MAP_PARAMETERS: &[&str] = &["alias_maps", "local_recipient_maps", "transport_maps"];

/// `main.cf` syntax: `name = value`, a line starting with white space continues the one
/// before, `#` starts a comment line. The last definition of a name wins, as in Postfix.
pub fn parse_main_cf(text: &str) -> Vec<(String, String)> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match lines.last_mut() {
            Some(last) if line.starts_with(char::is_whitespace) => {
                last.push(' ');
                last.push_str(trimmed.trim_end());
            }
            _ => lines.push(line.trim_end().to_string()),
        }
    }
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, String> = HashMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim().to_string();
        if !values.contains_key(&name) {
            order.push(name.clone());
        }
        values.insert(name, value.trim().to_string());
    }
    order
        .into_iter()
        .map(|name| {
            let value = values.remove(&name).unwrap_or_default();
            (name, value)
        })
        .collect()
}

/// Decides every `main.cf` parameter (see the module doc).
pub fn decide_main_cf(params: &[(String, String)]) -> Vec<Decision> {
    let defaults: HashMap<String, String> =
        Config::system_default().parameters().into_iter().collect();
    params
        .iter()
        .map(|(name, value)| decide_one(name, value, &defaults))
        .collect()
}

fn decide_one(name: &str, raw: &str, defaults: &HashMap<String, String>) -> Decision {
    let ignored = |why: &str| Decision {
        name: name.to_string(),
        value: raw.to_string(),
        outcome: Outcome::Ignored,
        why: Some(why.to_string()),
    };
    if let Some((_, why)) = POSTFIX_OWN.iter().find(|(n, _)| *n == name) {
        return ignored(why);
    }
    if !defaults.contains_key(name) {
        return ignored("mailroom has no such parameter");
    }
    let (value, note) = match file_value(name, raw) {
        Some(Ok(value)) => (value, Some(format!("read from {raw}, as Postfix does"))),
        Some(Err(e)) => return ignored(&format!("Postfix reads the value from {raw}: {e}")),
        None => translate(name, raw),
    };
    let checked = Config::from_str(&one_parameter(name, &value), None).map(|c| {
        c.parameters()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    });
    match checked {
        Err(e) => ignored(&format!(
            "mailroom does not accept this value: {}",
            e.message
        )),
        Ok(effective) if effective.as_ref() == defaults.get(name) => Decision {
            name: name.to_string(),
            value,
            outcome: Outcome::Default,
            why: note,
        },
        Ok(_) => Decision {
            name: name.to_string(),
            value,
            outcome: Outcome::Imported,
            why: note,
        },
    }
}

/// A one-parameter system-profile file, for checking one value with mailroom's own loader.
fn one_parameter(name: &str, value: &str) -> String {
    let mut doc = DocumentMut::new();
    doc["profile"] = toml_edit::value("system");
    doc[name] = toml_edit::value(value);
    doc.to_string()
}

/// `myorigin = /etc/mailname` (Debian's default): Postfix takes the first line of the file.
fn file_value(name: &str, raw: &str) -> Option<std::io::Result<String>> {
    if name != "myorigin" || !raw.starts_with('/') {
        return None;
    }
    Some(std::fs::read_to_string(raw).map(|text| {
        let line = text.lines().map(str::trim).find(|l| !l.is_empty());
        line.unwrap_or_default().to_string()
    }))
}

/// Postfix syntax → mailroom syntax, and a note when the two differ.
fn translate(name: &str, raw: &str) -> (String, Option<String>) {
    if let Some((_, unit)) = TIME_UNITS.iter().find(|(n, _)| *n == name) {
        if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
            let value = format!("{raw}{unit}");
            return (
                value.clone(),
                Some(format!("Postfix reads {raw} as {value}")),
            );
        }
    }
    if MAP_PARAMETERS.contains(&name) {
        let tables: Vec<String> = raw
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(source_table)
            .collect();
        let value = tables.join(", ");
        if value != raw {
            let note =
                "indexed tables (hash:, lmdb:, ...) read from their text source; proxy: dropped";
            return (value, Some(note.to_string()));
        }
    }
    (raw.to_string(), None)
}

/// `proxy:hash:/etc/aliases` → `/etc/aliases`: mailroom reads the text file Postfix compiles.
fn source_table(table: &str) -> String {
    let table = table.strip_prefix("proxy:").unwrap_or(table);
    for kind in [
        "hash:",
        "btree:",
        "lmdb:",
        "cdb:",
        "dbm:",
        "sdbm:",
        "texthash:",
    ] {
        if let Some(path) = table.strip_prefix(kind) {
            return path.to_string();
        }
    }
    table.to_string()
}

/// Merges the imported decisions into an existing mailroom.toml (or a new one): names the
/// file already sets keep their value (and become [`Outcome::Kept`]). Returns the new text.
pub fn merge(existing: Option<&str>, decisions: &mut [Decision]) -> Result<String, String> {
    let mut doc: DocumentMut = match existing {
        Some(text) => text.parse().map_err(|e| format!("cannot parse: {e}"))?,
        None => {
            let mut doc = DocumentMut::new();
            doc.decor_mut().set_prefix(
                "# Written by `mailroom import-postfix` from Postfix's main.cf and master.cf.\n",
            );
            doc["profile"] = toml_edit::value("system");
            doc
        }
    };
    for decision in decisions
        .iter_mut()
        .filter(|d| d.outcome == Outcome::Imported)
    {
        if doc.contains_key(&decision.name) {
            decision.outcome = Outcome::Kept;
            decision.why = Some("mailroom.toml already sets it; its value stays".to_string());
            continue;
        }
        doc[&decision.name] = Item::Value(toml_value(&decision.name, &decision.value));
    }
    Ok(doc.to_string())
}

/// Listener lists are written as arrays; everything else as the string Postfix had.
fn toml_value(name: &str, value: &str) -> Value {
    if name.ends_with("_listen") {
        let items: toml_edit::Array = value.split([',', ' ']).filter(|s| !s.is_empty()).collect();
        return Value::Array(items);
    }
    Value::from(value)
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;

/// Writes mailroom.toml whole or not at all (temporary name, fsync, rename, directory
/// fsync), mode 0644 like Postfix's main.cf: `mailroom-postdrop` and users' `sendmail`
/// read it.
pub fn write_config(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.import-tmp"));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
