//! The SMTP client's lookup tables (`smtp_tls_policy_maps`, `smtp_sasl_password_maps`): the
//! [`maps`] crate's Postfix tables, plus the one rule mailroom adds for secrets — a password
//! table whose file is readable by group or others is refused as a whole.
//!
//! Inputs → outputs: map specs (`/etc/mailroom/sasl_passwd`, `hash:/…`, `regexp:/…`,
//! `inline:{…}`) → a [`TextMap`] (or the reason it is unusable, naming the parameter and the
//! file); a key → its value (the first map that has one wins, as in Postfix).
//! Invariants: a table is used whole or not at all (the maps crate refuses a file with a bad
//! line; a refused secret file is never read).
//! Security stance: the files are the operator's; using a password file other local users
//! can read would hide the leak, so it is refused with the command that fixes it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Whether the table holds secrets (passwords) and must not be readable by others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Secrecy {
    Public,
    Private,
}

/// One parameter's list of maps.
#[derive(Debug, Default)]
pub(crate) struct TextMap {
    maps: maps::Maps,
}

impl TextMap {
    /// Opens every map of `specs` (the parameter `name` is used in messages).
    pub fn load(name: &str, specs: &[String], secrecy: Secrecy) -> Result<TextMap, String> {
        if secrecy == Secrecy::Private {
            for spec in specs {
                if let Some(path) = file_of(spec) {
                    check_private(name, Path::new(path))?;
                }
            }
        }
        let maps = maps::Maps::open(specs).map_err(|e| format!("{name}: {e}"))?;
        Ok(TextMap { maps })
    }

    /// The value of `key` (case-insensitive in text tables).
    pub fn get(&self, key: &str) -> Option<String> {
        self.maps.lookup(key)
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }
}

/// The file a map spec reads, if any (`inline:` and `static:` read none).
fn file_of(spec: &str) -> Option<&str> {
    let rest = match spec.split_once(':') {
        Some((kind, rest))
            if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            if matches!(kind, "inline" | "static") {
                return None;
            }
            rest
        }
        _ => spec,
    };
    Some(rest)
}

fn check_private(name: &str, path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{name}: cannot read {shown}: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{name}: {shown} is readable by group or others (mode {mode:04o}); refusing to use it: chmod 600 {shown}"
        ));
    }
    Ok(())
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
    fn first_map_with_the_key_wins_and_keys_fold_case() {
        let dir = tempfile::tempdir().unwrap();
        let text = "# comment\n[Mx.Example]:587  user:pass\n\nexample.org secure\n  match=a:b\n";
        let first = write(dir.path(), "a", text, 0o600);
        let second = write(dir.path(), "b", "example.org none\nother x\n", 0o600);
        let map = TextMap::load("m", &[first, format!("hash:{second}")], Secrecy::Public).unwrap();
        assert_eq!(map.get("[mx.example]:587").as_deref(), Some("user:pass"));
        assert_eq!(map.get("EXAMPLE.ORG").as_deref(), Some("secure match=a:b"));
        assert_eq!(map.get("other").as_deref(), Some("x"));
    }

    #[test]
    fn a_password_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "p", "h u:p\n", 0o640);
        for spec in [path.clone(), format!("hash:{path}")] {
            let err =
                TextMap::load("smtp_sasl_password_maps", &[spec], Secrecy::Private).unwrap_err();
            assert!(
                err.contains("readable by group or others (mode 0640)"),
                "{err}"
            );
        }
        assert!(TextMap::load("m", &[path], Secrecy::Public).is_ok());
        let inline = ["inline:{ h=u:p }".to_string()];
        assert!(TextMap::load("m", &inline, Secrecy::Private).is_ok());
    }
}
