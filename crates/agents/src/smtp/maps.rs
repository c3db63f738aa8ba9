//! Postfix text lookup tables as the SMTP client reads them (`smtp_tls_policy_maps`,
//! `smtp_sasl_password_maps`): `key value` lines, `#` comments, a line starting with
//! white space continues the one before (postmap(1)'s input format). Keys are case-folded
//! as postmap folds them; the first of several files holding a key wins, as with Postfix's
//! list of maps.
//!
//! Inputs → outputs: file paths → a [`TextMap`] (or the reason a file is unusable, naming
//! it); a key → its value.
//! Invariants: a file that cannot be read or (with [`Secrecy::Private`]) is readable by
//! group or others is refused as a whole, never half used.
//! Security stance: the files are the operator's; a password file readable by other local
//! users is refused, because using it would hide the leak.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Whether the table holds secrets (passwords) and must not be readable by others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Secrecy {
    Public,
    Private,
}

/// Keys (lower case) to values, from one or more files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TextMap {
    entries: HashMap<String, String>,
}

impl TextMap {
    /// Reads every file of `paths` (the parameter `name` is used in messages).
    pub fn load(name: &str, paths: &[String], secrecy: Secrecy) -> Result<TextMap, String> {
        let mut map = TextMap::default();
        for path in paths {
            let text = read(name, Path::new(path), secrecy)?;
            for (key, value) in parse(&text) {
                map.entries.entry(key).or_insert(value);
            }
        }
        Ok(map)
    }

    /// The value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn read(name: &str, path: &Path, secrecy: Secrecy) -> Result<String, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{name}: {shown}: {}", plain(&e)))?;
    let mode = meta.permissions().mode() & 0o777;
    if secrecy == Secrecy::Private && mode & 0o077 != 0 {
        return Err(format!(
            "{name}: {shown} is readable by group or others (mode {mode:04o}); refusing to use it: chmod 600 {shown}"
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{name}: {shown}: {}", plain(&e)))
}

/// An I/O error without Rust's "(os error N)".
fn plain(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// `key value` pairs of a postmap(1) source text, in file order.
fn parse(text: &str) -> Vec<(String, String)> {
    let mut logical: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let continues = line.starts_with([' ', '\t']);
        match logical.last_mut() {
            Some(previous) if continues => {
                previous.push(' ');
                previous.push_str(trimmed);
            }
            _ => logical.push(trimmed.to_string()),
        }
    }
    logical
        .into_iter()
        .map(|line| match line.split_once([' ', '\t']) {
            Some((key, value)) => (key.to_ascii_lowercase(), value.trim().to_string()),
            None => (line.to_ascii_lowercase(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn postmap_syntax_comments_continuations_and_case() {
        let dir = tempfile::tempdir().unwrap();
        let text = "# comment\n[Mx.Example]:587  user:pass\n\nexample.org secure\n  match=a:b\n";
        let first = write(dir.path(), "a", text, 0o600);
        let second = write(dir.path(), "b", "example.org none\nother x\n", 0o600);
        let map = TextMap::load("m", &[first, second], Secrecy::Public).unwrap();
        assert_eq!(map.get("[mx.example]:587"), Some("user:pass"));
        assert_eq!(map.get("EXAMPLE.ORG"), Some("secure match=a:b"));
        assert_eq!(map.get("other"), Some("x"));
        assert_eq!(map.get("# comment"), None);
    }

    #[test]
    fn a_password_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "p", "h u:p\n", 0o640);
        let err = TextMap::load("smtp_sasl_password_maps", &[path.clone()], Secrecy::Private)
            .unwrap_err();
        assert!(err.contains("readable by group or others (mode 0640)"), "{err}");
        assert!(TextMap::load("m", &[path], Secrecy::Public).is_ok());
        let missing = dir.path().join("none").display().to_string();
        let err = TextMap::load("m", &[missing], Secrecy::Public).unwrap_err();
        assert!(err.ends_with("No such file or directory"), "{err}");
    }
}
