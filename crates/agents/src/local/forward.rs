//! A user's `.forward` file: finding it along `forward_path`, checking it is safe to obey,
//! and reading its targets (the same syntax as an `:include:` file: addresses, `|command`,
//! `/file`, `\user`, comma or line separated, `#` comments).
//!
//! Rules, as Postfix's local(8) (`dotforward.c`), checked with the user's own file-system
//! rights (so a file only root can read is not read on the user's behalf):
//! * the first `forward_path` item that expands fully (an item using `${extension}` is
//!   skipped for an address without one) and exists is the file; none = no forward;
//! * it must be a regular file (a symbolic link is not followed), owned by the user or by
//!   root, and writable by no one else: not world-writable (Postfix's rule) and, unlike
//!   Postfix, not group-writable either (sendmail's rule: a shared group must not be able to
//!   redirect a user's mail). A file that fails is ignored with one warning, and the mail
//!   goes to the mailbox;
//! * a line that does not parse is skipped with one warning naming `file:line`; the
//!   others are used. A file with no targets at all is no forward.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::aliases::{self, AliasTarget};
use super::expand::{self, Attributes};
use super::users::{self, Account, FsIdentity};

/// A `.forward` larger than this is not a forward file anyone wrote by hand.
const MAX_FORWARD_BYTES: u64 = 1 << 20;

/// A usable `.forward`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForwardFile {
    pub path: PathBuf,
    pub targets: Vec<AliasTarget>,
}

/// The user's forward file, or `None` (no file, or one that was ignored with a warning).
/// `as_user` is the account whose rights the look-up uses (`None` = ours).
pub(crate) fn find(
    forward_path: &str,
    attributes: &Attributes,
    as_user: Option<&Account>,
) -> Option<ForwardFile> {
    let _identity = match as_user.map(FsIdentity::assume).transpose() {
        Ok(identity) => identity,
        Err(e) => {
            tracing::warn!(target: "local", "cannot look for a .forward of {}: {e}", attributes.user);
            return None;
        }
    };
    let owner = as_user.map_or_else(sys::effective_uid, |a| a.uid);
    let path = first_existing(forward_path, attributes)?;
    let text = match read_checked(&path, owner) {
        Ok(text) => text,
        Err(why) => {
            tracing::warn!(target: "local", "file {} {why}: ignored", path.display());
            return None;
        }
    };
    let (targets, errors) = aliases::parse_include(&text);
    for (line, message) in errors {
        tracing::warn!(target: "local", "{}:{line}: {message} (line skipped)", path.display());
    }
    (!targets.is_empty()).then_some(ForwardFile { path, targets })
}

/// The first item of `forward_path` that expands without an undefined name and exists
/// (`lstat`: a symbolic link counts as existing, and is refused by the checks).
fn first_existing(forward_path: &str, attributes: &Attributes) -> Option<PathBuf> {
    let items = forward_path
        .split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|item| !item.is_empty());
    for item in items {
        let expansion = match expand::expand(item, attributes) {
            Ok(expansion) if !expansion.undefined => expansion,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(target: "local", "forward_path item {item:?}: {e} (item skipped)");
                continue;
            }
        };
        let path = PathBuf::from(expansion.text);
        if path.is_absolute() && std::fs::symlink_metadata(&path).is_ok() {
            return Some(path);
        }
    }
    None
}

/// The file's text if it passes the rules of the module doc; else why not.
fn read_checked(path: &Path, owner: u32) -> Result<String, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "is a symbolic link".to_string(),
            _ => format!("cannot be opened: {e}"),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be examined: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("is not a regular file".into());
    }
    if meta.uid() != 0 && meta.uid() != owner {
        return Err(format!("has bad owner uid {}", meta.uid()));
    }
    if meta.mode() & 0o002 != 0 {
        return Err("is world writable".into());
    }
    if meta.mode() & 0o020 != 0 {
        return Err("is group writable".into());
    }
    read_limited(file).map_err(|e| format!("cannot be read: {e}"))
}

fn read_limited(file: File) -> io::Result<String> {
    let mut bytes = Vec::new();
    file.take(MAX_FORWARD_BYTES).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whose rights the look-up of `account`'s `.forward` uses, or `Err` when it must not be
/// looked up: as root, the user's own; not root, only our own user's file is obeyed (a
/// `.forward` of another user would make us run that user's commands with our rights).
pub(crate) fn lookup_rights(account: &Account) -> Result<Option<&Account>, ()> {
    if users::running_as_root() {
        Ok(Some(account))
    } else if account.uid == sys::effective_uid() {
        Ok(None)
    } else {
        Err(())
    }
}
