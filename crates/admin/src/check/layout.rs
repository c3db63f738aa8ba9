//! The queue layout's expected modes: one table that `serve` creates from and `check`
//! verifies against, so the two can never disagree.
//!
//! Each row gives the mode `serve` creates (and `check --fix` restores exactly) and the bits
//! the layout needs to work. A path passes when it has every needed bit and no bit outside
//! the created mode: a stricter mode (a umask of 077, say) is fine, a looser one is not.
//! Before this table, `check` accepted any maildrop mode from 0700 to 0775 and `--fix`
//! "repaired" 0777 to 0775, leaving pending mail listable by every local user.

use crate::Settings;
use config::Profile;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;

/// What kind of file a row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Directory,
    File,
    Socket,
}

/// One path of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub path: PathBuf,
    pub kind: Kind,
    /// The mode `serve` creates and `check --fix` sets; no bit outside it is accepted.
    pub mode: u32,
    /// Bits that must be set for the layout to work (a setgid postdrop needs g+wx on
    /// maildrop).
    pub needed: u32,
    /// Owned by `setgid_group` too (the system profile's maildrop).
    pub setgid_group: bool,
    /// Its absence is a problem (the daemon has not created the layout yet).
    pub must_exist: bool,
}

/// Mode of the control socket: only the owner may change the queue through it.
pub const CONTROL_SOCKET_MODE: u32 = 0o600;
/// Mode of the public listing socket: any user may list the queue, nothing else.
pub const SHOWQ_SOCKET_MODE: u32 = 0o666;
/// Mode of files that hold mail (segments, quarantined data).
pub const MAIL_FILE_MODE: u32 = 0o600;

/// The table for `cfg`'s profile. In the system profile users submit through the setgid
/// helper, so maildrop is Postfix's 0730 owner:setgid_group and the queue directory must be
/// searchable by all; in the embedded profile one user does everything.
pub fn queue_layout(cfg: &Settings) -> Vec<Expected> {
    let system = cfg.profile == Profile::System;
    let layout = &cfg.layout;
    let row = |path: PathBuf, kind, mode, needed, must_exist| Expected {
        path,
        kind,
        mode,
        needed,
        setgid_group: false,
        must_exist,
    };
    let mut rows = vec![
        row(
            layout.queue_directory().to_path_buf(),
            Kind::Directory,
            0o755,
            if system { 0o711 } else { 0o700 },
            true,
        ),
        Expected {
            setgid_group: system,
            ..row(
                layout.maildrop(),
                Kind::Directory,
                0o730,
                if system { 0o730 } else { 0o700 },
                true,
            )
        },
        row(layout.store(), Kind::Directory, 0o700, 0o700, false),
        row(layout.corrupt(), Kind::Directory, 0o700, 0o700, false),
        // Postfix's pid/: the daemon's locked master.pid, readable by `mailroom status`.
        row(
            layout.pid_directory(),
            Kind::Directory,
            crate::pidfile::PID_DIRECTORY_MODE,
            0o700,
            false,
        ),
        // The queue crate opens its lock file with the default mode (0644 under umask 022).
        row(layout.store_lock(), Kind::File, 0o644, 0o600, false),
        // Written by the daemon and by root's CLI as the queue directory's owner.
        row(layout.suspended(), Kind::File, 0o644, 0o600, false),
        row(layout.history(), Kind::File, 0o644, 0o600, false),
        row(
            layout.control_socket(),
            Kind::Socket,
            CONTROL_SOCKET_MODE,
            CONTROL_SOCKET_MODE,
            false,
        ),
        row(
            layout.showq_socket(),
            Kind::Socket,
            SHOWQ_SOCKET_MODE,
            SHOWQ_SOCKET_MODE,
            false,
        ),
    ];
    if !system {
        // The system spool (/var/mail) belongs to the distribution, not to mailroom.
        let spool = cfg.mail_spool_directory.clone();
        rows.push(row(spool, Kind::Directory, 0o755, 0o700, false));
    }
    rows
}

/// True when `mode` has every needed bit and no bit outside the created mode.
pub fn acceptable(mode: u32, expected_mode: u32, needed: u32) -> bool {
    mode & !expected_mode == 0 && mode & needed == needed
}

/// Creates the table's missing directories with exactly their modes (set explicitly after
/// creation: `mkdir`'s mode is cut by the umask, 0730 would become 0710). Existing ones are
/// left alone: `check` reports a wrong mode, `check --fix` repairs it.
pub fn create_missing(cfg: &Settings) -> Result<(), String> {
    let dirs = queue_layout(cfg)
        .into_iter()
        .filter(|row| row.kind == Kind::Directory);
    for row in dirs {
        if fs::symlink_metadata(&row.path).is_ok() {
            continue;
        }
        let created = fs::DirBuilder::new()
            .recursive(true)
            .mode(row.mode)
            .create(&row.path)
            .and_then(|()| fs::set_permissions(&row.path, fs::Permissions::from_mode(row.mode)));
        created.map_err(|e| format!("cannot create {}: {e}", row.path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looser_is_refused_stricter_is_accepted() {
        assert!(acceptable(0o730, 0o730, 0o730));
        assert!(acceptable(0o700, 0o730, 0o700));
        assert!(
            !acceptable(0o770, 0o730, 0o700),
            "group may not list maildrop"
        );
        assert!(!acceptable(0o775, 0o730, 0o700));
        assert!(!acceptable(0o2730, 0o730, 0o700), "no setgid bit");
        assert!(
            !acceptable(0o710, 0o730, 0o730),
            "setgid postdrop needs g+w"
        );
    }

    #[test]
    fn created_modes_ignore_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "queue_directory = \"{0}/queue\"\nmail_spool_directory = \"{0}/mail\"\n",
            dir.path().display()
        );
        let cfg = Settings::from_config(&config::Config::from_str(&text, None).unwrap());
        // Under the usual umask 022, mkdir alone would make maildrop 0710.
        create_missing(&cfg).unwrap();
        for row in queue_layout(&cfg)
            .iter()
            .filter(|r| r.kind == Kind::Directory)
        {
            let mode = fs::metadata(&row.path).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, row.mode, "{}", row.path.display());
        }
    }
}
