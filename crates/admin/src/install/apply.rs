//! Carrying out an install plan: examine every step (what differs, what is refused), then
//! change only what differs, printing each change once it is done.

use super::{mta, under, Content, Keep, Options, Owner, Plan, Step};
use crate::check::{self, layout};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every step is in place; how many were changed now.
    Done { changed: usize },
    /// Nothing was changed: these steps may not go ahead (another MTA's file …).
    Refused(Vec<String>),
    /// A step failed after `changed` others were made; the message says which.
    Failed { changed: usize, why: String },
}

/// What one step would do: `verb` (imperative, past) and what to.
pub(super) struct Change {
    pub verb: (&'static str, &'static str),
    pub what: String,
}

/// The state of one step's target.
pub(super) enum State {
    InPlace,
    Differs(Change),
    Refused(String),
}

/// Examines every step, refuses before any change if one is refused, then applies.
pub fn run(plan: &Plan, options: &Options, out: &mut dyn Write) -> Outcome {
    for note in &plan.notes {
        let _ = writeln!(out, "install: {note}");
    }
    if let Some(why) = super::packaged(options) {
        return Outcome::Refused(vec![why]);
    }
    let refused: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|step| match examine(step, options) {
            State::Refused(why) => Some(why),
            _ => None,
        })
        .collect();
    // A dry run still lists every step, so the whole picture is seen at once.
    if !refused.is_empty() && !options.dry_run {
        return Outcome::Refused(refused);
    }
    let mut changed = 0;
    for step in &plan.steps {
        // Examined again: an earlier step (a new user) may have changed the answer.
        let change = match examine(step, options) {
            State::InPlace => {
                if options.dry_run {
                    let _ = writeln!(out, "install: in place: {}", describe(step, options));
                }
                continue;
            }
            State::Refused(_) if options.dry_run => {
                let _ = writeln!(out, "install: would refuse: {}", describe(step, options));
                continue;
            }
            State::Refused(why) => return Outcome::Failed { changed, why },
            State::Differs(change) => change,
        };
        if options.dry_run {
            let _ = writeln!(out, "install: would {} {}", change.verb.0, change.what);
            changed += 1;
            continue;
        }
        if let Err(why) = apply(step, options) {
            let why = format!("cannot {} {}: {why}", change.verb.0, change.what);
            return Outcome::Failed { changed, why };
        }
        let _ = writeln!(out, "install: {} {}", change.verb.1, change.what);
        changed += 1;
        if is_unit(step) {
            reload_systemd(options, "install", out);
        }
    }
    match refused.is_empty() {
        true => Outcome::Done { changed },
        false => Outcome::Refused(refused),
    }
}

fn is_unit(step: &Step) -> bool {
    matches!(step, Step::File { path, .. } if path == Path::new(super::UNIT_PATH))
}

/// `systemctl daemon-reload` after the unit changed, when systemd runs this system (not
/// under a prefix, not in a chroot without it); a failure is said, not fatal.
pub(super) fn reload_systemd(options: &Options, program: &str, out: &mut dyn Write) {
    if options.prefix.is_some() || !Path::new("/run/systemd/system").is_dir() {
        return;
    }
    match command("systemctl", &["daemon-reload"]) {
        Ok(()) => drop(writeln!(out, "{program}: systemctl daemon-reload")),
        Err(why) => drop(writeln!(out, "{program}: warning: {why}")),
    }
}

/// The step's target and its planned owner and mode, for `in place:` lines.
pub(super) fn describe(step: &Step, options: &Options) -> String {
    let root = options.prefix.as_deref();
    match step {
        Step::Group(name) => format!("group {name}"),
        Step::User { name, .. } => format!("user {name}"),
        Step::Directory {
            path, owner, mode, ..
        }
        | Step::File {
            path, owner, mode, ..
        } => format!(
            "{} ({})",
            under(root, path).display(),
            ownership(owner, *mode, options)
        ),
        Step::Link { path, target } => {
            format!("{} -> {}", under(root, path).display(), target.display())
        }
        Step::ManPages { dir, pages } => {
            format!(
                "{} manual pages in {}",
                pages.len(),
                under(root, dir).display()
            )
        }
    }
}

/// `mailroom:mailroom-drop 0730`, or only the mode under a prefix (owners are not set).
fn ownership(owner: &Owner, mode: u32, options: &Options) -> String {
    match options.prefix {
        Some(_) => format!("{mode:04o}"),
        None => format!("{}:{} {mode:04o}", owner.user, owner.group),
    }
}

pub(super) fn examine(step: &Step, options: &Options) -> State {
    let root = options.prefix.as_deref();
    let change = |verb, what: String| State::Differs(Change { verb, what });
    match step {
        Step::Group(name) => match check::group(name) {
            Some(_) => State::InPlace,
            None => change(ADD, format!("group {name} (setgid_group)")),
        },
        Step::User { name, home } => match check::user(name) {
            Some(_) => State::InPlace,
            None => change(
                ADD,
                format!("user {name} (mail_owner, home {})", home.display()),
            ),
        },
        Step::Directory { .. } => examine_directory(step, options),
        Step::File { .. } => examine_file(step, options),
        Step::Link { path, target } => mta::examine_link(&under(root, path), target, options),
        Step::ManPages { dir, pages } => {
            let stale = stale_pages(&under(root, dir), pages);
            match stale {
                0 => State::InPlace,
                n => change(
                    WRITE,
                    format!("{n} manual pages in {}", under(root, dir).display()),
                ),
            }
        }
    }
}

const ADD: (&str, &str) = ("add", "added");
const CREATE: (&str, &str) = ("create", "created");
const WRITE: (&str, &str) = ("write", "wrote");
const REPLACE: (&str, &str) = ("replace", "replaced");
const SET: (&str, &str) = ("set owner and mode of", "set owner and mode of");

fn examine_directory(step: &Step, options: &Options) -> State {
    let Step::Directory {
        path, mode, needed, ..
    } = step
    else {
        unreachable!("examine_directory is called for directories only")
    };
    let real = under(options.prefix.as_deref(), path);
    let what = describe(step, options);
    match fs::symlink_metadata(&real) {
        Err(_) => State::Differs(Change { verb: CREATE, what }),
        Ok(meta) if !meta.is_dir() => State::Refused(format!(
            "{} is not a directory (a directory belongs there); move it away first",
            real.display()
        )),
        Ok(meta) => {
            let current = meta.permissions().mode() & 0o7777;
            let mode_ok = layout::acceptable(current, *mode, *needed);
            match mode_ok && owner_ok(step, &meta, options) {
                true => State::InPlace,
                false => State::Differs(Change { verb: SET, what }),
            }
        }
    }
}

fn examine_file(step: &Step, options: &Options) -> State {
    let Step::File {
        path,
        content,
        owner,
        mode,
        keep,
    } = step
    else {
        unreachable!("examine_file is called for files only")
    };
    let real = under(options.prefix.as_deref(), path);
    let what = describe(step, options);
    let meta = match existing(&real, content, &what) {
        Ok(meta) => meta,
        Err(state) => return state,
    };
    if *content == Content::Packaged && options.prefix.is_none() {
        return match mta::override_in_place(&real, owner, *mode) {
            true => State::InPlace,
            false => State::Differs(Change { verb: SET, what }),
        };
    }
    if *keep != Keep::Ours {
        return State::InPlace; // written once: the admin's (or the system's) now
    }
    if !meta.is_file() {
        return State::Refused(format!(
            "{} is not a regular file; move it away first",
            real.display()
        ));
    }
    if let Content::Copy(source) = content {
        if !source.is_file() {
            return State::Refused(missing_source(source));
        }
    }
    let same = match content {
        Content::Text(text) => fs::read(&real).is_ok_and(|now| now == text.as_bytes()),
        Content::Copy(source) => same_bytes(source, &real),
        Content::Packaged => true,
    };
    if !same {
        return State::Differs(Change {
            verb: REPLACE,
            what,
        });
    }
    let mode_ok = meta.permissions().mode() & 0o7777 == *mode;
    match mode_ok && owner_ok(step, &meta, options) {
        true => State::InPlace,
        false => State::Differs(Change { verb: SET, what }),
    }
}

/// The file's metadata, or what a missing file means for this step.
fn existing(real: &Path, content: &Content, what: &str) -> Result<fs::Metadata, State> {
    fs::symlink_metadata(real).map_err(|_| match content {
        Content::Packaged => {
            State::Refused(format!("{} is missing (dpkg installs it)", real.display()))
        }
        Content::Copy(source) if !source.is_file() => State::Refused(missing_source(source)),
        _ => State::Differs(Change {
            verb: CREATE,
            what: what.to_string(),
        }),
    })
}

fn missing_source(source: &Path) -> String {
    format!(
        "{} is missing: build it beside mailroom first (cargo build --release -p mailroom -p submit)",
        source.display()
    )
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    match (fs::read(a), fs::read(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Owners are not compared under a prefix (they are not set there).
fn owner_ok(step: &Step, meta: &fs::Metadata, options: &Options) -> bool {
    if options.prefix.is_some() {
        return true;
    }
    let owner = match step {
        Step::Directory { owner, .. } | Step::File { owner, .. } => owner,
        _ => return true,
    };
    resolve(owner).is_ok_and(|(uid, gid)| meta.uid() == uid && meta.gid() == gid)
}

/// The uid and gid of an owner's names (the user's primary group for a same-named group).
fn resolve(owner: &Owner) -> Result<(u32, u32), String> {
    let (uid, primary) = check::user(&owner.user)
        .ok_or_else(|| format!("{} is not a user on this system", owner.user))?;
    let gid = match check::group(&owner.group) {
        Some(gid) => gid,
        None if owner.group == owner.user => primary,
        None => return Err(format!("{} is not a group on this system", owner.group)),
    };
    Ok((uid, gid))
}

fn apply(step: &Step, options: &Options) -> Result<(), String> {
    let root = options.prefix.as_deref();
    match step {
        Step::Group(name) => command("groupadd", &["--system", name]),
        Step::User { name, home } => command(
            "useradd",
            &[
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                &home.display().to_string(),
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "mailroom mail system",
                name,
            ],
        ),
        Step::Directory {
            path, owner, mode, ..
        } => make_directory(&under(root, path), owner, *mode, options),
        Step::File {
            path,
            content,
            owner,
            mode,
            ..
        } => {
            let real = under(root, path);
            match content {
                Content::Text(text) => write_file(&real, text.as_bytes(), owner, *mode, options),
                Content::Copy(source) => {
                    let bytes = fs::read(source)
                        .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
                    write_file(&real, &bytes, owner, *mode, options)
                }
                Content::Packaged => mta::stat_override(&real, owner, *mode),
            }
        }
        Step::Link { path, target } => mta::link(&under(root, path), target, options),
        Step::ManPages { dir, pages } => write_pages(&under(root, dir), pages),
    }
}

/// Runs an administration command; its own message on failure.
pub(super) fn command(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
    Err(format!(
        "{program} {}: {said} ({})",
        args.join(" "),
        output.status
    ))
}

/// Creates the directory (parents 0755) or corrects it, with exactly `mode`: set after
/// creation, since mkdir's mode is cut by the umask (0730 would become 0710).
fn make_directory(path: &Path, owner: &Owner, mode: u32, options: &Options) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.to_string()),
    }
    set_owner_and_mode(path, owner, mode, options)
}

/// chown first, then chmod: a chown clears the setgid bit.
fn set_owner_and_mode(
    path: &Path,
    owner: &Owner,
    mode: u32,
    options: &Options,
) -> Result<(), String> {
    let (ids, mode) = target_ids(owner, mode, options)?;
    check::repair(path, ids, Some(mode)).map_err(|e| e.to_string())
}

/// The ids and mode to set: under a prefix no owner and no setuid/setgid bit.
fn target_ids(
    owner: &Owner,
    mode: u32,
    options: &Options,
) -> Result<(Option<(u32, u32)>, u32), String> {
    match options.prefix {
        Some(_) => Ok((None, mode & 0o777)),
        None => Ok((Some(resolve(owner)?), mode)),
    }
}

/// Writes `bytes` to a temporary name beside `path`, gives it its owner and mode, fsyncs it
/// and renames it over `path`: a reader (or a running sendmail) sees the old or the new
/// file, never half of one.
fn write_file(
    path: &Path,
    bytes: &[u8],
    owner: &Owner,
    mode: u32,
    options: &Options,
) -> Result<(), String> {
    let (ids, mode) = target_ids(owner, mode, options)?;
    write_as(path, bytes, ids, mode)
}

fn write_as(path: &Path, bytes: &[u8], ids: Option<(u32, u32)>, mode: u32) -> Result<(), String> {
    let dir = path.parent().ok_or("no parent directory")?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.mailroom-new"));
    let _ = fs::remove_file(&temporary);
    let written = (|| {
        let mut file = fs::File::create_new(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    let done = written
        .map_err(|e| e.to_string())
        .and_then(|()| check::repair(&temporary, ids, Some(mode)).map_err(|e| e.to_string()))
        .and_then(|()| fs::rename(&temporary, path).map_err(|e| e.to_string()));
    if done.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    done
}

/// How many of the generated pages are missing or differ under `dir`.
fn stale_pages(dir: &Path, pages: &[(PathBuf, Vec<u8>)]) -> usize {
    pages
        .iter()
        .filter(|(name, text)| fs::read(dir.join(name)).map_or(true, |now| now != *text))
        .count()
}

fn write_pages(dir: &Path, pages: &[(PathBuf, Vec<u8>)]) -> Result<(), String> {
    let stale = pages
        .iter()
        .filter(|(name, text)| fs::read(dir.join(name)).map_or(true, |now| now != *text));
    for (name, text) in stale {
        // The installer's owner (root, or the packager under a prefix), as dpkg would.
        write_as(&dir.join(name), text, None, 0o644)?;
    }
    Ok(())
}

/// The pages the binary being installed writes with `mailroom man --dir` (a `man` command
/// it may not have: then `Err` says so). Another MTA's `sendmail.1.gz` under the target's
/// man directory means its Postfix-named pages are left out, not shadowed.
pub(super) fn man_pages(
    program: &Path,
    prefix: Option<&Path>,
) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    let other_mta = under(prefix, Path::new(super::MAN_DIR)).join("man1/sendmail.1.gz");
    let mut generate = Command::new(program);
    generate.arg("man").arg("--dir").arg(scratch.path());
    if other_mta.exists() {
        generate.arg("--without-postfix-names");
    }
    let output = generate
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} has no working `man` command ({})",
            program.display(),
            output.status
        ));
    }
    let mut pages = Vec::new();
    collect(scratch.path(), scratch.path(), &mut pages).map_err(|e| e.to_string())?;
    pages.sort();
    Ok(pages)
}

fn collect(base: &Path, dir: &Path, pages: &mut Vec<(PathBuf, Vec<u8>)>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(base, &path, pages)?;
        } else {
            let name = path.strip_prefix(base).unwrap_or(&path).to_path_buf();
            pages.push((name, fs::read(&path)?));
        }
    }
    Ok(())
}
