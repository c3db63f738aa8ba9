//! `mailroom install` / `uninstall`: make mailroom the system's MTA (the system profile of
//! `config`), or take it away again, as one list of idempotent steps.
//!
//! # Job, inputs → outputs
//! The configuration (the installed `/etc/mailroom/mailroom.toml` if there is one, else the
//! system profile) plus [`Options`] and the files to install ([`Sources`]) → a [`Plan`]: the
//! `mail_owner` user and `setgid_group` group, the queue directories with exactly the modes
//! of [`crate::check::layout::queue_layout`] (the table `check` verifies and `serve` creates
//! from — not a copy of it), the binaries, the setgid `postdrop_path`, the MTA entry points
//! `/usr/sbin/sendmail`, `/usr/bin/mailq`, `/usr/bin/newaliases`, the configuration file,
//! the aliases file, the systemd unit, the logrotate snippet and the manual pages.
//! [`run`] examines every step first, then changes only what differs; [`uninstall`] walks
//! the same plan backwards, so the two cannot drift apart.
//!
//! # Invariants
//! * **Idempotent**: a step whose target is already as planned changes nothing, so a second
//!   `install` reports "nothing to change". `--dry-run` examines and changes nothing.
//! * **Never clobber another MTA silently**: an entry point that is not ours (owned by a
//!   Debian package per `dpkg -S`, or any file that is not a symlink to mailroom) refuses
//!   the whole install before anything changes. With `replace_mta` a package's file is
//!   moved aside with `dpkg-divert --rename` (so the package's upgrades go to the diverted
//!   name and `uninstall` can put it back); a file no package owns is renamed to
//!   `NAME.before-mailroom`.
//! * **Written once**: `/etc/mailroom/mailroom.toml` and the logrotate snippet are the
//!   admin's once written (kept by `install`, kept by `uninstall`, removed by `--purge`);
//!   `/etc/aliases` is the system's (written only when missing, as Debian's postfix does,
//!   and never removed: every MTA reads it). Binaries, the unit and the pages are ours:
//!   replaced when they differ, removed by `uninstall`.
//! * **Never logged as done unless done**: each change is printed after it succeeded; the
//!   first failure stops the run and says what was left undone.
//!
//! # `--prefix DIR`
//! A DESTDIR-style staging tree: every path is put under `DIR`; no user or group is created,
//! no owner is changed, no setuid/setgid bit is set and `dpkg` is not asked (the files are
//! the invoking user's). The owners and the setgid helper come from `mailroom install` (or
//! the package's postinst, `--from-package`) run on the target system.
//!
//! # Security stance
//! Runs as root (without `--prefix`). Trusts the configuration and the source binaries;
//! never follows a symbolic link when it changes an owner or mode (it refuses a link where
//! a directory belongs), and replaces files by rename so a reader never sees half a file.

mod apply;
mod mta;
mod remove;
#[cfg(test)]
mod tests;

pub use apply::{run, Outcome};
pub use remove::uninstall;

use crate::check::layout::{self, Kind};
use config::Config;
use std::path::{Path, PathBuf};

/// The Debian package name, also the owner of `dpkg-divert`s made by a plain install.
pub const PACKAGE: &str = "mailroom";
/// Where the binaries go (the unit file runs `/usr/sbin/mailroom serve`).
pub const BIN_DIR: &str = "/usr/sbin";
/// Where the package (cargo-deb) puts the unit too; /lib is /usr/lib on merged-/usr Debian.
pub const UNIT_PATH: &str = "/usr/lib/systemd/system/mailroom.service";
/// The symlink `systemctl enable mailroom` makes (removed by `uninstall`).
pub const UNIT_WANTS_PATH: &str = "/etc/systemd/system/multi-user.target.wants/mailroom.service";
pub const LOGROTATE_PATH: &str = "/etc/logrotate.d/mailroom";
pub const MAN_DIR: &str = "/usr/share/man";
/// The binaries of a release build, copied from [`Sources::bin_dir`] to [`BIN_DIR`].
pub const BINARIES: [&str; 3] = ["mailroom", "mailroom-sendmail", "mailroom-postdrop"];

/// The MTA entry points and what they link to (relative, so they hold under a prefix):
/// `sendmail` is the small submission binary; `mailq` and `newaliases` are the multi-call
/// binary, dispatched on argv[0].
pub const ENTRY_POINTS: [(&str, &str); 3] = [
    ("/usr/sbin/sendmail", "mailroom-sendmail"),
    ("/usr/bin/mailq", "../sbin/mailroom"),
    ("/usr/bin/newaliases", "../sbin/mailroom"),
];

/// The configuration file `install` writes when there is none.
pub const CONFIG_TEXT: &str = "\
# The system's mail transfer agent (see mailroom.toml(5)). Written once by
# `mailroom install` and never overwritten by it: this file is yours.
# Parameters follow Postfix's main.cf: `mailroom config -n` lists what this file
# sets, `mailroom config -d` every default, `mailroom config -e name=value` edits it.
profile = \"system\"
";

/// The aliases file `install` writes when there is none (Debian's postfix does the same).
pub const ALIASES_TEXT: &str = "\
# /etc/aliases (aliases(5)): written by mailroom install because there was none.
postmaster: root
";

/// How the run is asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Install under this root (DESTDIR-style; see the module doc).
    pub prefix: Option<PathBuf>,
    /// Move another MTA's entry points aside instead of refusing.
    pub replace_mta: bool,
    /// The Debian package's postinst: dpkg has placed the files; make the users, the
    /// directories, the configuration and the setgid helper (`dpkg-statoverride`).
    pub from_package: bool,
    /// Examine and print every step; change nothing.
    pub dry_run: bool,
    /// Uninstall only: also remove the queue (with any mail in it), the configuration,
    /// the data directory and the user and group.
    pub purge: bool,
}

/// Where the files to install come from (not needed with `from_package`).
#[derive(Debug, Clone)]
pub struct Sources {
    /// The directory holding the built `mailroom`, `mailroom-sendmail`, `mailroom-postdrop`.
    pub bin_dir: PathBuf,
    pub unit: String,
    pub logrotate: String,
}

/// A user and a group, by name: they are resolved when a step runs, after the steps that
/// create them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user: String,
    pub group: String,
}

impl Owner {
    fn root() -> Owner {
        Owner {
            user: "root".to_string(),
            group: "root".to_string(),
        }
    }
}

/// Who keeps a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Ours: replaced when it differs, removed by `uninstall`.
    Ours,
    /// The admin's once written: never replaced, removed only by `uninstall --purge`.
    Once,
    /// The system's: written only when missing, never removed.
    System,
}

/// What a file's content is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    /// A copy of this file.
    Copy(PathBuf),
    /// Placed by dpkg: only its owner and mode are ours to set (through `dpkg-statoverride`).
    Packaged,
}

/// One step of the plan. Paths are the target system's (without the prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Group(String),
    User {
        name: String,
        home: PathBuf,
    },
    Directory {
        path: PathBuf,
        owner: Owner,
        /// The mode created; a stricter one (every `needed` bit, nothing beyond `mode`) is
        /// left alone, as `check` accepts it.
        mode: u32,
        needed: u32,
    },
    File {
        path: PathBuf,
        content: Content,
        owner: Owner,
        mode: u32,
        keep: Keep,
    },
    /// An MTA entry point: a symlink to `target`, guarded against another MTA's file.
    Link {
        path: PathBuf,
        target: PathBuf,
    },
    /// The manual pages `mailroom man --dir` writes, relative to `dir`.
    ManPages {
        dir: PathBuf,
        pages: Vec<(PathBuf, Vec<u8>)>,
    },
}

/// The steps, plus notes about what the plan leaves out and why.
#[derive(Debug, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub notes: Vec<String>,
}

/// The configuration `install` follows: the installed file under the prefix, else the
/// system profile.
pub fn installed_config(prefix: Option<&Path>) -> Result<Config, String> {
    let path = under(prefix, Path::new(config::SYSTEM_CONFIG_PATH));
    match std::fs::read_to_string(&path) {
        Ok(text) => Config::from_str(&text, Some(&path)).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::system_default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// `path` under `prefix` (`/var/spool` under `/tmp/root` is `/tmp/root/var/spool`).
pub fn under(prefix: Option<&Path>, path: &Path) -> PathBuf {
    match prefix {
        Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

/// The steps for `cfg`, in the order they run. `sources` is `None` with `from_package`.
pub fn plan(cfg: &Config, options: &Options, sources: Option<&Sources>) -> Plan {
    let mut plan = Plan::default();
    let prefixed = options.prefix.is_some();
    if prefixed {
        plan.notes.push(
            "--prefix: no users or groups, owners or setgid bits (mailroom install on the \
             target system makes them)"
                .to_string(),
        );
    } else {
        plan.steps.push(Step::Group(cfg.setgid_group.clone()));
        plan.steps.push(Step::User {
            name: cfg.mail_owner.clone(),
            home: cfg.queue_directory.clone(),
        });
    }
    let owner = Owner {
        user: cfg.mail_owner.clone(),
        group: cfg.mail_owner.clone(),
    };
    directories(&mut plan, cfg, &owner);
    files(&mut plan, cfg, options, sources);
    plan
}

/// The queue's directories from the layout table, the data directory and `/etc/mailroom`.
fn directories(plan: &mut Plan, cfg: &Config, owner: &Owner) {
    let rows = layout::queue_layout(&crate::Settings::from_config(cfg))
        .into_iter()
        .filter(|row| row.kind == Kind::Directory);
    for row in rows {
        let group = match row.setgid_group {
            true => cfg.setgid_group.clone(),
            false => owner.group.clone(),
        };
        plan.steps.push(Step::Directory {
            path: row.path,
            owner: Owner {
                user: owner.user.clone(),
                group,
            },
            mode: row.mode,
            needed: row.needed,
        });
    }
    // Root's: the self-signed TLS pair is made there by the daemon before it drops root.
    for path in [
        cfg.data_directory.clone(),
        config_path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    ] {
        plan.steps.push(Step::Directory {
            path,
            owner: Owner::root(),
            mode: 0o755,
            needed: 0o700,
        });
    }
}

fn config_path() -> PathBuf {
    PathBuf::from(config::SYSTEM_CONFIG_PATH)
}

/// A root-owned 0644 text file.
fn text_file(path: PathBuf, text: &str, keep: Keep) -> Step {
    Step::File {
        path,
        content: Content::Text(text.to_string()),
        owner: Owner::root(),
        mode: 0o644,
        keep,
    }
}

/// Binaries and entry points (or only the packaged helper's owner and mode), configuration,
/// aliases, and, unless dpkg ships them, the unit, the logrotate snippet and the pages.
fn files(plan: &mut Plan, cfg: &Config, options: &Options, sources: Option<&Sources>) {
    let sources = sources.filter(|_| !options.from_package);
    match sources {
        Some(sources) => binaries(plan, cfg, options, sources),
        None => plan.steps.push(Step::File {
            path: cfg.postdrop_path.clone(),
            content: Content::Packaged,
            owner: helper_owner(cfg),
            mode: helper_mode(options),
            keep: Keep::Ours,
        }),
    }
    plan.steps
        .push(text_file(config_path(), CONFIG_TEXT, Keep::Once));
    if let Some(aliases) = aliases_path(cfg) {
        plan.steps
            .push(text_file(aliases, ALIASES_TEXT, Keep::System));
    }
    let Some(sources) = sources else {
        return;
    };
    plan.steps.push(text_file(
        PathBuf::from(UNIT_PATH),
        &sources.unit,
        Keep::Ours,
    ));
    plan.steps.push(text_file(
        PathBuf::from(LOGROTATE_PATH),
        &sources.logrotate,
        Keep::Once,
    ));
    match apply::man_pages(&sources.bin_dir.join("mailroom"), options.prefix.as_deref()) {
        Ok(pages) => plan.steps.push(Step::ManPages {
            dir: PathBuf::from(MAN_DIR),
            pages,
        }),
        Err(why) => plan.notes.push(format!("no manual pages: {why}")),
    }
}

/// The setgid helper is `root:setgid_group`.
fn helper_owner(cfg: &Config) -> Owner {
    Owner {
        user: "root".to_string(),
        group: cfg.setgid_group.clone(),
    }
}

/// One of check's accepted helper modes (setgid, never setuid); no setgid bit under a prefix.
fn helper_mode(options: &Options) -> u32 {
    match options.prefix {
        Some(_) => 0o755,
        None => 0o2755,
    }
}

/// The binaries copied from the build, the helper at `postdrop_path`, the entry points.
fn binaries(plan: &mut Plan, cfg: &Config, options: &Options, sources: &Sources) {
    for name in BINARIES {
        let helper = name == "mailroom-postdrop";
        let (path, owner, mode) = match helper {
            true => (
                cfg.postdrop_path.clone(),
                helper_owner(cfg),
                helper_mode(options),
            ),
            false => (Path::new(BIN_DIR).join(name), Owner::root(), 0o755),
        };
        plan.steps.push(Step::File {
            path,
            content: Content::Copy(sources.bin_dir.join(name)),
            owner,
            mode,
            keep: Keep::Ours,
        });
    }
    for (path, target) in ENTRY_POINTS {
        plan.steps.push(Step::Link {
            path: PathBuf::from(path),
            target: PathBuf::from(target),
        });
    }
}

/// The first alias map when it is a plain file path (a `hash:` prefix is ignored, as the
/// local agent does); `None` for none or a non-file map.
fn aliases_path(cfg: &Config) -> Option<PathBuf> {
    let first = cfg.alias_maps.first()?;
    let path = ["hash:", "lmdb:", "texthash:"]
        .iter()
        .find_map(|kind| first.strip_prefix(kind))
        .unwrap_or(first);
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// Set when the files are the Debian package's (`dpkg -S /usr/sbin/mailroom`): a plain
/// install or uninstall would fight dpkg over them.
pub(crate) fn packaged(options: &Options) -> Option<String> {
    if options.prefix.is_some() || options.from_package {
        return None;
    }
    let binary = Path::new(BIN_DIR).join("mailroom");
    let package = mta::package_of(&binary)?;
    Some(format!(
        "{} belongs to the Debian package {package}: use apt to upgrade or remove it \
         (apt purge {package} also removes the queue and the user)",
        binary.display()
    ))
}
