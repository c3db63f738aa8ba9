//! The MTA entry points (`/usr/sbin/sendmail`, `mailq`, `newaliases`) and Debian's tools for
//! sharing them: `dpkg -S` says whose a file is, `dpkg-divert` moves a package's file aside
//! so that package's upgrades go to the new name and it can be put back, and
//! `dpkg-statoverride` keeps the setgid helper's owner and mode across package upgrades.
//!
//! Why diversions and not alternatives: Debian's MTAs do not use `update-alternatives` for
//! sendmail — each ships `/usr/sbin/sendmail` itself and they conflict on
//! `mail-transport-agent` — so an MTA installed beside a packaged one must divert.

use super::apply::{command, Change, State};
use super::{Options, Owner, PACKAGE};
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where another MTA's file goes while mailroom's entry point stands in its place.
pub(super) fn aside(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".before-mailroom");
    PathBuf::from(name)
}

/// True when `path` is a symlink to one of mailroom's binaries (ours to replace).
pub(super) fn is_ours(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|target| {
        target
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("mailroom"))
    })
}

/// The Debian package that ships `path` (`dpkg-query -S`), if any (and if dpkg is here).
pub(super) fn package_of(path: &Path) -> Option<String> {
    let output = Command::new("dpkg-query")
        .arg("-S")
        .arg(path)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with("diversion by"))
        .find_map(|line| {
            line.split_once(": ")
                .map(|(package, _)| package.to_string())
        })
}

pub(super) fn examine_link(real: &Path, target: &Path, options: &Options) -> State {
    let what = format!("{} -> {}", real.display(), target.display());
    if fs::read_link(real).is_ok_and(|now| now == target) {
        return State::InPlace;
    }
    if fs::symlink_metadata(real).is_err() {
        return State::Differs(Change {
            verb: ("create", "created"),
            what,
        });
    }
    if is_ours(real) {
        return State::Differs(Change {
            verb: ("replace", "replaced"),
            what,
        });
    }
    let package = options.prefix.is_none().then(|| package_of(real)).flatten();
    let (whose, remove) = match &package {
        Some(package) => (
            format!("package {package}"),
            format!("apt remove {package}"),
        ),
        None => (
            "another program (not mailroom)".to_string(),
            "remove it".to_string(),
        ),
    };
    if !options.replace_mta {
        return State::Refused(format!(
            "{} belongs to {whose}; not replaced. Remove that MTA first ({remove}), or run \
             mailroom install --replace-mta to move its file aside to {} (mailroom \
             uninstall puts it back)",
            real.display(),
            aside(real).display()
        ));
    }
    State::Differs(Change {
        verb: ("move aside and link", "moved aside and linked"),
        what: format!(
            "{} ({whose}) to {}; {what}",
            real.display(),
            aside(real).display()
        ),
    })
}

/// Puts the symlink in place, moving another MTA's file aside first (a package's through
/// `dpkg-divert --rename`, any other by renaming it).
pub(super) fn link(real: &Path, target: &Path, options: &Options) -> Result<(), String> {
    let occupied = fs::symlink_metadata(real).is_ok();
    if occupied && !is_ours(real) {
        move_aside(real, options)?;
    }
    let dir = real.parent().ok_or("no parent directory")?;
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = real.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.mailroom-new"));
    let _ = fs::remove_file(&temporary);
    symlink(target, &temporary).map_err(|e| e.to_string())?;
    fs::rename(&temporary, real).map_err(|e| {
        let _ = fs::remove_file(&temporary);
        e.to_string()
    })
}

fn move_aside(real: &Path, options: &Options) -> Result<(), String> {
    let saved = aside(real);
    if fs::symlink_metadata(&saved).is_ok() {
        return Err(format!("{} exists already", saved.display()));
    }
    let packaged = options.prefix.is_none() && package_of(real).is_some();
    if packaged {
        let (real, saved) = (real.display().to_string(), saved.display().to_string());
        let args = [
            "--package",
            PACKAGE,
            "--add",
            "--rename",
            "--divert",
            &saved,
            &real,
        ];
        return command("dpkg-divert", &args);
    }
    fs::rename(real, &saved).map_err(|e| e.to_string())
}

/// Uninstall: removes our symlink and puts back what was moved aside. `Ok(true)` when
/// something changed.
pub(super) fn restore(real: &Path, options: &Options) -> Result<bool, String> {
    let mut changed = false;
    if is_ours(real) {
        fs::remove_file(real).map_err(|e| e.to_string())?;
        changed = true;
    }
    if options.prefix.is_none() && diverted_by_us(real) {
        let (shown, saved) = (
            real.display().to_string(),
            aside(real).display().to_string(),
        );
        let args = [
            "--package",
            PACKAGE,
            "--remove",
            "--rename",
            "--divert",
            &saved,
            &shown,
        ];
        command("dpkg-divert", &args)?;
        return Ok(true);
    }
    let saved = aside(real);
    if fs::symlink_metadata(&saved).is_ok() && fs::symlink_metadata(real).is_err() {
        fs::rename(&saved, real).map_err(|e| e.to_string())?;
        changed = true;
    }
    Ok(changed)
}

/// What `restore` would do, for `--dry-run` and for "nothing to change".
pub(super) fn would_restore(real: &Path, options: &Options) -> bool {
    is_ours(real)
        || (options.prefix.is_none() && diverted_by_us(real))
        || (fs::symlink_metadata(aside(real)).is_ok() && fs::symlink_metadata(real).is_err())
}

fn diverted_by_us(path: &Path) -> bool {
    Command::new("dpkg-divert")
        .arg("--listpackage")
        .arg(path)
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == PACKAGE)
}

/// The package's setgid helper: registers its owner and mode with `dpkg-statoverride`
/// (which also applies them now) so a package upgrade keeps them; without dpkg, sets them.
pub(super) fn stat_override(real: &Path, owner: &Owner, mode: u32) -> Result<(), String> {
    let shown = real.display().to_string();
    let mode_text = format!("{mode:04o}");
    if has_dpkg_statoverride() {
        let _ = command("dpkg-statoverride", &["--remove", &shown]);
        let args = [
            "--update",
            "--add",
            &owner.user,
            &owner.group,
            &mode_text,
            &shown,
        ];
        return command("dpkg-statoverride", &args);
    }
    let uid = crate::check::user(&owner.user).map(|u| u.0);
    let gid = crate::check::group(&owner.group);
    let (Some(uid), Some(gid)) = (uid, gid) else {
        return Err(format!("no user {} or group {}", owner.user, owner.group));
    };
    crate::check::repair(real, Some((uid, gid)), Some(mode)).map_err(|e| e.to_string())
}

/// True when the override dpkg keeps for `real` is this owner and mode (or there is no
/// dpkg to keep one) and the file has them now.
pub(super) fn override_in_place(real: &Path, owner: &Owner, mode: u32) -> bool {
    let now = fs::metadata(real).is_ok_and(|meta| {
        meta.permissions().mode() & 0o7777 == mode
            && Some(meta.uid()) == crate::check::user(&owner.user).map(|u| u.0)
            && Some(meta.gid()) == crate::check::group(&owner.group)
    });
    if !now || !has_dpkg_statoverride() {
        return now;
    }
    let expected = format!("{} {} {mode:o} {}", owner.user, owner.group, real.display());
    Command::new("dpkg-statoverride")
        .arg("--list")
        .arg(real)
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == expected)
}

fn has_dpkg_statoverride() -> bool {
    Command::new("dpkg-statoverride")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}
