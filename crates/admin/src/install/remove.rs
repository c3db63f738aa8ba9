//! `mailroom uninstall [--purge]`: the install plan walked backwards. Each install step
//! maps to its undoing (or to nothing: a plain uninstall keeps the queue with its mail, the
//! configuration and the user, as `apt remove` keeps an MTA's; `--purge` removes them too),
//! so a step added to the install is undone without a second list to keep in step.

use super::apply::{command, Outcome};
use super::{mta, under, Content, Keep, Options, Plan, Step, UNIT_WANTS_PATH};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One undoing. Paths are the target system's.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Removal {
    /// The MTA entry point: our symlink removed, the other MTA's file put back.
    Link(PathBuf),
    File(PathBuf),
    /// A directory and everything in it (`--purge`: the queue, mail included).
    Tree(PathBuf),
    Pages(PathBuf, Vec<PathBuf>),
    User(String),
    Group(String),
}

/// Removes what `plan` installs; refuses while the daemon runs (it would keep the queue
/// busy and lose its binary under it).
pub fn uninstall(
    plan: &Plan,
    queue_directory: &Path,
    options: &Options,
    out: &mut dyn Write,
) -> Outcome {
    let root = options.prefix.as_deref();
    if let Ok(Some(pid)) = crate::pidfile::running(&under(root, queue_directory)) {
        return Outcome::Refused(vec![format!(
            "the mail system is running, pid {pid}: stop it first (mailroom stop, or \
             systemctl stop mailroom)"
        )]);
    }
    if let Some(why) = super::packaged(options) {
        return Outcome::Refused(vec![why]);
    }
    let (removals, kept) = removals(plan, options);
    let mut changed = 0;
    for removal in &removals {
        let what = shown(removal, root);
        if !present(removal, options) {
            continue;
        }
        if options.dry_run {
            let _ = writeln!(out, "uninstall: would remove {what}");
            changed += 1;
            continue;
        }
        if let Err(why) = undo(removal, options) {
            let why = format!("cannot remove {what}: {why}");
            return Outcome::Failed { changed, why };
        }
        let _ = writeln!(out, "uninstall: removed {what}");
        changed += 1;
        if *removal == Removal::File(PathBuf::from(super::UNIT_PATH)) {
            super::apply::reload_systemd(options, "uninstall", out);
        }
    }
    for (path, why) in kept {
        let path = under(root, &path);
        if fs::symlink_metadata(&path).is_ok() {
            let _ = writeln!(out, "uninstall: kept {} ({why})", path.display());
        }
    }
    for step in plan.steps.iter().filter(|_| !options.purge) {
        if let Step::User { name, .. } | Step::Group(name) = step {
            let exists = crate::check::user(name).is_some() || crate::check::group(name).is_some();
            if exists {
                let _ = writeln!(out, "uninstall: kept {name} ({PURGE_REMOVES})");
            }
        }
    }
    Outcome::Done { changed }
}

const PURGE_REMOVES: &str = "--purge removes it";
const SYSTEM_FILE: &str = "the system's alias file, read by every MTA";

/// The undoings in order (the wants-link of `systemctl enable` first), and what is kept
/// with why: the tops of kept trees and kept files outside them.
fn removals(plan: &Plan, options: &Options) -> (Vec<Removal>, Vec<(PathBuf, &'static str)>) {
    let mut removals = vec![Removal::File(PathBuf::from(UNIT_WANTS_PATH))];
    let mut kept = Vec::new();
    let purge = options.purge;
    for step in plan.steps.iter().rev() {
        let removal = match step {
            Step::Group(name) if purge => Removal::Group(name.clone()),
            Step::User { name, .. } if purge => Removal::User(name.clone()),
            Step::Directory { path, .. } if purge => Removal::Tree(path.clone()),
            Step::Directory { path, .. } => {
                kept.push((path.clone(), PURGE_REMOVES));
                continue;
            }
            Step::File {
                content: Content::Packaged,
                ..
            } => continue,
            Step::File { path, keep, .. } => match (keep, purge) {
                (Keep::Ours, _) | (Keep::Once, true) => Removal::File(path.clone()),
                (Keep::Once, false) => {
                    kept.push((path.clone(), PURGE_REMOVES));
                    continue;
                }
                (Keep::System, _) => {
                    kept.push((path.clone(), SYSTEM_FILE));
                    continue;
                }
            },
            Step::Link { path, .. } => Removal::Link(path.clone()),
            Step::ManPages { dir, pages } => {
                let names = pages.iter().map(|(name, _)| name.clone()).collect();
                Removal::Pages(dir.clone(), names)
            }
            Step::Group(_) | Step::User { .. } => continue,
        };
        removals.push(removal);
    }
    let tops: Vec<PathBuf> = kept.iter().map(|(path, _)| path.clone()).collect();
    kept.retain(|(path, _)| !tops.iter().any(|top| top != path && path.starts_with(top)));
    // A purged tree takes what is inside it: one line for the queue, not one per directory.
    let trees: Vec<PathBuf> = removals
        .iter()
        .filter_map(|removal| match removal {
            Removal::Tree(path) => Some(path.clone()),
            _ => None,
        })
        .collect();
    removals.retain(|removal| match removal {
        Removal::Tree(path) | Removal::File(path) => !trees
            .iter()
            .any(|tree| tree != path && path.starts_with(tree)),
        _ => true,
    });
    (removals, kept)
}

fn shown(removal: &Removal, root: Option<&Path>) -> String {
    match removal {
        Removal::Link(path) => {
            let real = under(root, path);
            match fs::symlink_metadata(mta::aside(&real)) {
                Ok(_) => format!(
                    "{} and put back {}",
                    real.display(),
                    mta::aside(&real).display()
                ),
                Err(_) => real.display().to_string(),
            }
        }
        Removal::File(path) | Removal::Tree(path) => under(root, path).display().to_string(),
        Removal::Pages(dir, names) => {
            format!(
                "{} manual pages from {}",
                names.len(),
                under(root, dir).display()
            )
        }
        Removal::User(name) => format!("user {name}"),
        Removal::Group(name) => format!("group {name}"),
    }
}

fn present(removal: &Removal, options: &Options) -> bool {
    let root = options.prefix.as_deref();
    let exists = |path: &Path| fs::symlink_metadata(under(root, path)).is_ok();
    match removal {
        Removal::Link(path) => mta::would_restore(&under(root, path), options),
        Removal::File(path) | Removal::Tree(path) => exists(path),
        Removal::Pages(dir, names) => names.iter().any(|name| exists(&dir.join(name))),
        Removal::User(name) => crate::check::user(name).is_some(),
        Removal::Group(name) => crate::check::group(name).is_some(),
    }
}

fn undo(removal: &Removal, options: &Options) -> Result<(), String> {
    let root = options.prefix.as_deref();
    let text = |e: std::io::Error| e.to_string();
    match removal {
        Removal::Link(path) => mta::restore(&under(root, path), options).map(drop),
        Removal::File(path) => fs::remove_file(under(root, path)).map_err(text),
        Removal::Tree(path) => fs::remove_dir_all(under(root, path)).map_err(text),
        Removal::Pages(dir, names) => {
            for name in names {
                match fs::remove_file(under(root, &dir.join(name))) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(text(e)),
                    _ => {}
                }
            }
            Ok(())
        }
        Removal::User(name) => {
            command("userdel", &[name])?;
            // useradd --user-group made a group of the same name; userdel usually takes it.
            match crate::check::group(name) {
                Some(_) => command("groupdel", &[name]),
                None => Ok(()),
            }
        }
        Removal::Group(name) => command("groupdel", &[name]),
    }
}
