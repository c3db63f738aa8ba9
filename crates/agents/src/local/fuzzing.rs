//! Property checks for the cargo-fuzz target `aliases` (`fuzz/` at the repository root),
//! also run on random inputs in every `cargo test`.
//!
//! An aliases file (and an `:include:` file) is text from the operator or, for includes, from
//! any user who owns one. Parsing never panics and never fails as a whole; what it keeps is
//! well formed (a name is lower case, non-empty and free of control characters; every target
//! is non-empty; includes are absolute paths); error lines are real line numbers; and the
//! entries, written back in aliases(5) syntax with everything quoted, parse to the same
//! entries with no errors (what `check_aliases` shows is what delivery uses).

use std::path::Path;

use super::aliases::{parse_aliases, parse_include, AliasTarget};

/// See the module doc.
pub fn check_aliases(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_aliases(&text, Path::new("/etc/aliases"));
    let lines = text.split('\n').count();
    for error in &parsed.errors {
        assert!((1..=lines).contains(&error.line), "{error}");
    }
    let mut names: Vec<&str> = parsed.entries.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), parsed.entries.len(), "a name defined twice");
    for (name, targets) in &parsed.entries {
        assert!(
            !name.is_empty() && !name.chars().any(char::is_control),
            "{name:?}"
        );
        assert_eq!(&name.to_lowercase(), name);
        assert!(!targets.is_empty());
        targets.iter().for_each(check_target);
    }
    let written: String = parsed
        .entries
        .iter()
        .map(|(name, targets)| format!("{}: {}\n", quote(name), list(targets)))
        .collect();
    let again = parse_aliases(&written, Path::new("/etc/aliases"));
    assert!(again.errors.is_empty(), "{:?} in\n{written}", again.errors);
    assert_eq!(again.entries, parsed.entries, "written back as\n{written}");
    let (targets, errors) = parse_include(&text);
    targets.iter().for_each(check_target);
    assert!(errors.iter().all(|(line, _)| (1..=lines).contains(line)));
}

fn check_target(target: &AliasTarget) {
    let text = match target {
        AliasTarget::Address(t) | AliasTarget::NoAlias(t) | AliasTarget::Command(t) => t,
        AliasTarget::File(t) => t,
        AliasTarget::Include(path) => {
            assert!(path.starts_with('/'), "relative include {path:?}");
            path
        }
    };
    assert!(!text.trim().is_empty(), "{target:?}");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\t'),
        "{target:?}"
    );
}

/// The target as one quoted token: the parser unquotes it before classifying it.
fn list(targets: &[AliasTarget]) -> String {
    let tokens: Vec<String> = targets
        .iter()
        .map(|target| match target {
            AliasTarget::Address(a) => quote(a),
            AliasTarget::NoAlias(user) => quote(&format!("\\{user}")),
            AliasTarget::Command(command) => quote(&format!("|{command}")),
            AliasTarget::File(path) => quote(path),
            AliasTarget::Include(path) => quote(&format!(":include:{path}")),
        })
        .collect();
    tokens.join(", ")
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIECES: &[&str] = &[
        "a",
        "root",
        ":",
        ",",
        " ",
        "\t",
        "\n",
        "\r\n",
        "\"",
        "\\",
        "#",
        "|",
        "/",
        "@",
        ":include:",
        "/etc/x",
        "\\alice",
        "é",
        "İ",
        "\0",
        "x@example.org",
    ];

    /// Random aliases-shaped files on every run (the fuzz target goes further).
    #[test]
    fn random_alias_files_keep_the_invariants() {
        let mut state = 0x0a11_a5e5_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as usize
        };
        for _ in 0..5_000 {
            let text: String = (0..next() % 40)
                .map(|_| PIECES[next() % PIECES.len()])
                .collect();
            check_aliases(text.as_bytes());
        }
    }
}
