//! The aliases file, in `/etc/aliases` syntax (aliases(5)):
//!
//! ```text
//! # comment
//! postmaster: root
//! root:       alice, bob@example.org,
//!             "|/usr/local/bin/archive --quiet",   # continuation: leading whitespace
//!             /var/log/root-mail, :include:/etc/mail/root.list
//! "web master": \alice
//! ```
//!
//! Names are case-insensitive and may be quoted. A target is an address (a bare name is a
//! local name), `\name` (that user's mailbox, no further alias expansion), `|command`,
//! `/file` (a trailing `/` makes it a Maildir) or `:include:/file` (a list of targets read at
//! delivery time, like Postfix). Quotes protect commas and whitespace.
//!
//! Parsing never fails as a whole: a bad logical line becomes an [`AliasSyntaxError`] naming
//! the file and line, and is skipped; `check_aliases` reports them, delivery ignores them.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::LocalError;

/// One right-hand-side item of an alias or an include file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AliasTarget {
    /// `user` or `user@domain`, expanded further if local.
    Address(String),
    /// `\user`: deliver to that user's mailbox, skipping alias look-up.
    NoAlias(String),
    /// `|command`: run by `/bin/sh -c` with the message on stdin.
    Command(String),
    /// `/path`: append in mbox format (or Maildir if it ends in `/`).
    File(String),
    /// `:include:/path`: more targets, read from that file when delivering.
    Include(String),
}

/// Where a set of targets came from: its rights decide whose privileges commands and files
/// run with (the owner of the file, or `default_privs` when root owns it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetSource {
    pub path: PathBuf,
    pub owner_uid: u32,
}

/// An alias: its targets and the file that defined it.
#[derive(Debug, Clone)]
pub(crate) struct AliasEntry {
    pub targets: Vec<AliasTarget>,
    pub source: Arc<TargetSource>,
}

/// A problem on one line of an alias (or include) file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasSyntaxError {
    pub path: PathBuf,
    /// 1-based line where the logical line starts.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for AliasSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// Every alias from every `alias_maps` file; the first file that defines a name wins,
/// as Postfix searches its maps in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct AliasTable {
    entries: HashMap<String, AliasEntry>,
}

impl AliasTable {
    /// Reads the files named by `alias_maps`. A missing file is an empty table; an
    /// unreadable one or an unsupported map type is an error. Syntax errors are returned
    /// beside the table (their lines are left out of it).
    pub(crate) fn load(maps: &[String]) -> Result<(AliasTable, Vec<AliasSyntaxError>), LocalError> {
        let mut table = AliasTable::default();
        let mut errors = Vec::new();
        for map in maps {
            let path = map_path(map)?;
            let Some((text, owner_uid)) = read_if_exists(&path)? else {
                continue;
            };
            let source = Arc::new(TargetSource {
                path: path.clone(),
                owner_uid,
            });
            let parsed = parse_aliases(&text, &path);
            errors.extend(parsed.errors);
            for (name, targets) in parsed.entries {
                table.entries.entry(name).or_insert(AliasEntry {
                    targets,
                    source: Arc::clone(&source),
                });
            }
        }
        Ok((table, errors))
    }

    /// The alias for a lower-cased local part.
    pub(crate) fn get(&self, name: &str) -> Option<&AliasEntry> {
        self.entries.get(name)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The file behind an `alias_maps` entry: `hash:`, `lmdb:` and `texthash:` prefixes are
/// accepted and ignored because we read the source text file itself.
pub(crate) fn map_path(map: &str) -> Result<PathBuf, LocalError> {
    let map = map.trim();
    match map.split_once(':') {
        Some((kind, path)) if !kind.contains('/') => match kind.to_ascii_lowercase().as_str() {
            "hash" | "lmdb" | "texthash" | "btree" => Ok(PathBuf::from(path)),
            _ => Err(LocalError::UnsupportedMap {
                map: map.to_string(),
            }),
        },
        _ => Ok(PathBuf::from(map)),
    }
}

/// The file's bytes as text (invalid UTF-8 replaced) and its owner, or `None` if missing.
pub(crate) fn read_if_exists(path: &Path) -> Result<Option<(String, u32)>, LocalError> {
    let io_error = |source: io::Error| LocalError::AliasRead {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(e)),
    };
    let owner_uid = file.metadata().map_err(io_error)?.uid();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_error)?;
    Ok(Some((
        String::from_utf8_lossy(&bytes).into_owned(),
        owner_uid,
    )))
}

/// The result of parsing one aliases file.
#[derive(Debug, Default)]
pub(crate) struct ParsedAliases {
    pub entries: Vec<(String, Vec<AliasTarget>)>,
    pub errors: Vec<AliasSyntaxError>,
}

/// Parses aliases(5) text. Duplicate names are errors; the first definition is kept.
pub(crate) fn parse_aliases(text: &str, path: &Path) -> ParsedAliases {
    let mut parsed = ParsedAliases::default();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for (line, logical) in logical_lines(text) {
        let error = |message: String| AliasSyntaxError {
            path: path.to_path_buf(),
            line,
            message,
        };
        match logical.and_then(|l| parse_entry(&l)) {
            Ok((name, targets)) => {
                if let Some(first) = first_seen.get(&name) {
                    let message =
                        format!("duplicate alias {name:?}, the one at line {first} is used");
                    parsed.errors.push(error(message));
                } else {
                    first_seen.insert(name.clone(), line);
                    parsed.entries.push((name, targets));
                }
            }
            Err(message) => parsed.errors.push(error(message)),
        }
    }
    parsed
}

/// Joins continuation lines: yields (first line number, logical line). Blank lines and
/// lines whose first non-blank character is `#` are ignored and do not end a logical line.
fn logical_lines(text: &str) -> Vec<(usize, Result<String, String>)> {
    let mut out: Vec<(usize, Result<String, String>)> = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let number = index + 1;
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some((_, Ok(logical))) => {
                    logical.push(' ');
                    logical.push_str(trimmed);
                }
                Some((_, Err(_))) => {} // part of a line already reported
                None => out.push((
                    number,
                    Err("continuation line without an alias before it".into()),
                )),
            }
        } else {
            out.push((number, Ok(trimmed.to_string())));
        }
    }
    out
}

/// `name: target, target …` → lower-cased name and targets.
fn parse_entry(logical: &str) -> Result<(String, Vec<AliasTarget>), String> {
    let colon = find_unquoted(logical, ':')?.ok_or("missing ':' after the alias name")?;
    let name = unquote(logical[..colon].trim()).to_lowercase();
    if name.is_empty() {
        return Err("empty alias name".into());
    }
    if name.chars().any(char::is_control) {
        return Err("control character in the alias name".into());
    }
    let targets = parse_target_list(&logical[colon + 1..])?;
    if targets.is_empty() {
        return Err(format!("alias {name:?} has no targets"));
    }
    Ok((name, targets))
}

/// A comma-separated list of targets (an alias's right-hand side, or one include line).
pub(crate) fn parse_target_list(list: &str) -> Result<Vec<AliasTarget>, String> {
    let mut targets = Vec::new();
    let mut rest = list;
    loop {
        let comma = find_unquoted(rest, ',')?;
        let token = rest[..comma.unwrap_or(rest.len())].trim();
        if !token.is_empty() {
            targets.push(parse_target(token)?);
        }
        match comma {
            Some(at) => rest = &rest[at + 1..],
            None => return Ok(targets),
        }
    }
}

/// The targets of an include file: one or more per line, `#` comment lines ignored.
/// Bad tokens are returned as messages with their line number.
pub(crate) fn parse_include(text: &str) -> (Vec<AliasTarget>, Vec<(usize, String)>) {
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_target_list(line) {
            Ok(found) => targets.extend(found),
            Err(message) => errors.push((index + 1, message)),
        }
    }
    (targets, errors)
}

fn parse_target(token: &str) -> Result<AliasTarget, String> {
    let token = unquote(token);
    if token.trim().is_empty() {
        return Err("empty target".into());
    }
    if token.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("control character in target {token:?}"));
    }
    if let Some(command) = token.strip_prefix('|') {
        let command = command.trim();
        if command.is_empty() {
            return Err("empty command after '|'".into());
        }
        return Ok(AliasTarget::Command(command.to_string()));
    }
    let include = token
        .get(..9)
        .filter(|p| p.eq_ignore_ascii_case(":include:"));
    if let Some(path) = include.and_then(|_| token.get(9..)) {
        let path = path.trim();
        if !path.starts_with('/') {
            return Err(format!(":include: needs an absolute path, not {path:?}"));
        }
        return Ok(AliasTarget::Include(path.to_string()));
    }
    if token.starts_with('/') {
        return Ok(AliasTarget::File(token));
    }
    if let Some(user) = token.strip_prefix('\\') {
        let user = user.trim();
        if user.is_empty() {
            return Err("empty user name after '\\'".into());
        }
        return Ok(AliasTarget::NoAlias(user.to_lowercase()));
    }
    if token.contains(char::is_whitespace) && !token.starts_with('"') {
        return Err(format!(
            "whitespace in address {token:?} (quote it, or add a comma)"
        ));
    }
    Ok(AliasTarget::Address(token))
}

/// Byte offset of the first `wanted` outside double quotes (backslash escapes one
/// character inside quotes); an unbalanced quote is an error.
fn find_unquoted(text: &str, wanted: char) -> Result<Option<usize>, String> {
    let mut quoted = false;
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == wanted && !quoted => return Ok(Some(at)),
            _ => {}
        }
    }
    if quoted {
        return Err("unbalanced double quote".into());
    }
    Ok(None)
}

/// `"a \"b\""` → `a "b"`; anything not wholly quoted is returned as is.
fn unquote(token: &str) -> String {
    let inner = match token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) if token.len() >= 2 => inner,
        _ => return token.to_string(),
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use AliasTarget::*;

    fn parse(text: &str) -> ParsedAliases {
        parse_aliases(text, Path::new("/etc/aliases"))
    }

    #[test]
    fn simple_entries_comments_and_case() {
        let p = parse("# header\n\nPostmaster: root\nroot:alice , Bob@Example.org\n");
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(
            p.entries[0],
            ("postmaster".into(), vec![Address("root".into())])
        );
        assert_eq!(
            p.entries[1],
            (
                "root".into(),
                vec![Address("alice".into()), Address("Bob@Example.org".into())]
            )
        );
    }

    #[test]
    fn continuation_lines_and_interleaved_comments() {
        let p = parse("list: a,\n  b,\n# a comment inside\n\tc\nnext: d\n");
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let expected = vec![
            Address("a".into()),
            Address("b".into()),
            Address("c".into()),
        ];
        assert_eq!(p.entries[0], ("list".into(), expected));
        assert_eq!(p.entries[1].0, "next");
    }

    #[test]
    fn commands_files_includes_and_quotes() {
        let text = concat!(
            "\"Web Master\": \"|/usr/bin/archive --tag a,b\", /var/log/mail.log,\n",
            " :include:/etc/mail/list, \\alice, /home/x/Maildir/\n"
        );
        let p = parse(text);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.entries[0].0, "web master");
        assert_eq!(
            p.entries[0].1,
            vec![
                Command("/usr/bin/archive --tag a,b".into()),
                File("/var/log/mail.log".into()),
                Include("/etc/mail/list".into()),
                NoAlias("alice".into()),
                File("/home/x/Maildir/".into()),
            ]
        );
    }

    #[test]
    fn unquoted_command_keeps_its_spaces() {
        let p = parse("a: |cat > /tmp/x\n");
        assert_eq!(p.entries[0].1, vec![Command("cat > /tmp/x".into())]);
    }

    #[test]
    fn errors_name_the_line_and_skip_it() {
        let text = "good: a\nno colon here\n  continued\nbad: \"open\nempty:\ninc: :include:rel\nok: b\ngood: c\n";
        let p = parse(text);
        let lines: Vec<usize> = p.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 4, 5, 6, 8], "{:?}", p.errors);
        assert_eq!(
            p.errors[0].to_string(),
            "/etc/aliases:2: missing ':' after the alias name"
        );
        let names: Vec<&str> = p.entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["good", "ok"]);
    }

    #[test]
    fn leading_continuation_is_an_error() {
        let p = parse("  orphan\nx: y\n");
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 1);
        assert_eq!(p.entries.len(), 1);
    }

    #[test]
    fn map_prefixes() {
        assert_eq!(
            map_path("hash:/etc/aliases").unwrap(),
            PathBuf::from("/etc/aliases")
        );
        assert_eq!(
            map_path("lmdb:/etc/aliases").unwrap(),
            PathBuf::from("/etc/aliases")
        );
        assert_eq!(map_path("texthash:/a").unwrap(), PathBuf::from("/a"));
        assert_eq!(
            map_path("/etc/aliases").unwrap(),
            PathBuf::from("/etc/aliases")
        );
        assert!(map_path("nis:mail.aliases").is_err());
    }

    #[test]
    fn include_file_lists() {
        let (targets, errors) = parse_include("# list\na, b\n\nc@example.org\n\"bad\n|cmd\n");
        assert_eq!(targets.len(), 4);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 5);
    }

    #[test]
    fn no_panic_on_odd_bytes() {
        for text in [
            "\"",
            ":",
            "\"\":",
            "a:\"",
            "é:ü",
            "a: \\",
            "a: :include:",
            "\r\n\r\n",
            "a:,,,",
            "a: abcdefghé",
            "a: :includé:/x",
            "a: \"\\",
        ] {
            let _ = parse(text);
        }
    }
}
