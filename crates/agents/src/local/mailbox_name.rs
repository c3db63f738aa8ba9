//! Which local parts may name a mailbox. A user's mbox is the file
//! `mail_spool_directory/<name>` and its dotlock is `<name>.lock` beside it (the name mutt,
//! s-nail, procmail and liblockfile use for `/var/mail/alice`), so a name is also a file
//! name in a directory shared by every user. One rule, used both at RCPT time
//! ([`super::LocalAgent::accepts`], so what can never be delivered is refused with 550 and
//! never bounced to a forged sender) and at delivery ([`spool_mailbox`]), so no path into
//! the spool can be built from a name the rule refuses.
//!
//! A mailbox name is a non-empty run of letters and digits (any script: RFC 6531 addresses)
//! and `.`, `_`, `-`, `+`, `=`, at most 255 bytes, that
//! * does not start with `.` (`.`, `..` and hidden files);
//! * does not end with `.lock` — it would be another mailbox's dotlock: mail to
//!   `alice.lock` would lock alice out of her mailbox and then be removed as a stale lock;
//! * holds no `/` and no control character (so the path never leaves the spool), and
//!   none of `@ % !` (sender-specified routing, never a local mailbox: see `smtpd::relay`),
//!   quotes, spaces, backslashes or `|` (a quoted `"|/bin/sh"` or `"/etc/passwd"` is not a
//!   user: commands and files come only from the operator's alias files).
//!
//! That is POSIX's portable user-name set plus `+` and `=` and non-ASCII letters: real
//! account names fit in it (Debian's `useradd` refuses anything else by default).

use std::path::{Component, Path, PathBuf};

/// The dotlock suffix ([`super::lock::DotLock`] appends it to the mailbox path).
pub(crate) const DOTLOCK_SUFFIX: &str = ".lock";

/// Longest name: a file-name component on Linux.
const MAX_NAME: usize = 255;

/// Why `name` (already normalized: unquoted, lower case) cannot be a mailbox, if it cannot.
pub(crate) fn problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty local part");
    }
    if name.len() > MAX_NAME {
        return Some("local part too long for a mailbox name");
    }
    if name.starts_with('.') {
        return Some("a mailbox name cannot start with a dot");
    }
    if name.to_lowercase().ends_with(DOTLOCK_SUFFIX) {
        return Some("a mailbox name cannot end in .lock (mailbox lock files use it)");
    }
    if !name.chars().all(is_name_char) {
        return Some("a mailbox name holds only letters, digits and . _ - + =");
    }
    None
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '=')
}

/// `spool/<name>`, only for a name [`problem`] accepts, and only as one plain component of
/// `spool` (a second line of defence: the path can never leave the spool directory).
pub(crate) fn spool_mailbox(spool: &Path, name: &str) -> Option<PathBuf> {
    if problem(name).is_some() {
        return None;
    }
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(part)), None) if part == name => Some(spool.join(part)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_can_never_be_mailboxes() {
        let long = "x".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "alice.lock",
            "Alice.LOCK",
            "a.lock",
            ".lock",
            "a/b",
            "../etc",
            "|/bin/sh",
            "/etc/passwd",
            "|id",
            "user@evil.invalid",
            "a%b",
            "a!b",
            "a b",
            "a\"b",
            "a\\b",
            "nul\0",
            "cr\r",
            "tab\t",
            long.as_str(),
        ] {
            assert!(problem(bad).is_some(), "{bad:?} was accepted");
            assert_eq!(spool_mailbox(Path::new("/spool"), bad), None, "{bad:?}");
        }
    }

    #[test]
    fn real_account_names_are_mailboxes() {
        for good in [
            "alice",
            "a.b",
            "a+b",
            "first_last",
            "x-y",
            "über",
            "lock",
            "alice.locked",
            "alice.lock2",
            "postmaster",
        ] {
            assert_eq!(problem(good), None, "{good:?}");
            assert_eq!(
                spool_mailbox(Path::new("/spool"), good),
                Some(PathBuf::from("/spool").join(good))
            );
        }
    }

    /// The mechanism behind the rule: no mailbox path equals another mailbox's lock path.
    #[test]
    fn no_mailbox_is_another_mailboxs_dotlock() {
        let spool = Path::new("/var/mail");
        for name in ["alice", "a.b", "x"] {
            let lock = format!("{name}{DOTLOCK_SUFFIX}");
            assert_eq!(spool_mailbox(spool, &lock), None, "{lock}");
        }
    }
}
