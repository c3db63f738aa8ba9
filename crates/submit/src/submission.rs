//! From a finished [`MaildropFile`] to a durable file in `maildrop/`, shared by sendmail,
//! `sendmail -bs` and mailroom-postdrop: create the store if it is ours and missing, run the
//! disk guard, write under the watchdog, and on "permission denied" hand the bytes to the
//! setgid helper instead.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use config::{Config, Profile};
use envelope::QueueId;
use proto::{fixed, Reply};

use crate::guard::{self, GuardError, Limits, Refusal};
use crate::maildrop::{self, is_permission_denied, MaildropError, MaildropFile};
use crate::watchdog::{OnTimeout, Watchdog};
use envelope::sysexits::{EX_DATAERR, EX_NOPERM, EX_TEMPFAIL};

/// What sendmail, `sendmail -bs` and mailroom-postdrop take from the configuration,
/// built once by [`SubmitSettings::from_config`] after the program loaded it.
#[derive(Debug, Clone)]
pub struct SubmitSettings {
    /// `queue_directory`: `maildrop/` is below it.
    pub queue_directory: PathBuf,
    /// `postdrop_path`: the setgid helper sendmail runs on permission denied.
    pub postdrop_path: PathBuf,
    /// `profile`: as root, a missing store is created only for the embedded one.
    pub profile: Profile,
    /// `submit_timeout`: the watchdog's bound on the write.
    pub submit_timeout: Duration,
    /// The largest message accepted (`message_size_limit`, see [`message_limit`]).
    pub message_limit: u64,
    /// `queue_minfree*` and the maildrop caps.
    pub limits: Limits,
    /// `myhostname`: how `sendmail -bs` greets.
    pub myhostname: String,
}

impl SubmitSettings {
    pub fn from_config(cfg: &Config) -> SubmitSettings {
        SubmitSettings {
            queue_directory: cfg.queue_directory.clone(),
            postdrop_path: cfg.postdrop_path.clone(),
            profile: cfg.profile,
            submit_timeout: cfg.submit_timeout,
            message_limit: message_limit(cfg.message_size_limit),
            limits: Limits::from_config(cfg),
            myhostname: cfg.myhostname.clone(),
        }
    }
}

/// How one submission is carried out.
pub struct Submission<'a> {
    pub settings: SubmitSettings,
    /// `sendmail` or `mailroom-postdrop`: starts the line printed when the watchdog fires.
    pub program: &'a str,
    /// Production: a timeout prints one line and exits 75. Tests: the write fails instead.
    pub exit_on_timeout: bool,
    /// sendmail: try `postdrop_path` on permission denied. The helper itself: never.
    pub use_helper: bool,
    /// Create a missing queue directory and `maildrop/` when this user owns the place.
    pub create_layout: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{}", with_not_queued(&.0.to_string()))]
    Refused(Refusal),
    #[error("cannot write to {}: Permission denied (queue owner/mode wrong? run: mailroom check --fix)", .0.display())]
    PermissionDenied(PathBuf),
    #[error("{} does not exist (run: mailroom check --fix); message not queued", .0.display())]
    MissingStore(PathBuf),
    #[error("submit_timeout ({}s) expired; message not queued", .0.as_secs())]
    TimedOut(Duration),
    #[error("{0}; message not queued")]
    Io(String),
    #[error("{0}")]
    Invalid(String),
    /// mailroom-postdrop failed: its exit code and its own one-line reason.
    #[error("{message}")]
    Helper { code: u8, message: String },
}

fn with_not_queued(reason: &str) -> String {
    match reason.ends_with('?') {
        true => format!("{reason} message not queued"),
        false => format!("{reason}; message not queued"),
    }
}

impl SubmitError {
    /// The sysexits code for sendmail and the helper.
    pub fn exit_code(&self) -> u8 {
        match self {
            SubmitError::PermissionDenied(_) => EX_NOPERM,
            SubmitError::Invalid(_) => EX_DATAERR,
            SubmitError::Helper { code, .. } => *code,
            _ => EX_TEMPFAIL,
        }
    }

    /// The reply for `sendmail -bs` after DATA (RFC 3463 codes).
    pub fn smtp_reply(&self) -> Reply {
        match self {
            SubmitError::Refused(_) => fixed::insufficient_storage(),
            SubmitError::Invalid(_) => Reply::new(554, "5.6.0", "Error: invalid envelope"),
            SubmitError::Helper { code, .. } if *code == envelope::sysexits::EX_UNAVAILABLE => {
                fixed::message_too_big()
            }
            _ => fixed::queue_write_error(),
        }
    }
}

/// The largest message accepted: `message_size_limit`, or when that is 0 (no limit, as in
/// Postfix) half of what the maildrop reader accepts, leaving room for the envelope.
pub fn message_limit(message_size_limit: u64) -> u64 {
    match message_size_limit {
        0 => maildrop::DEFAULT_READ_CAP / 2,
        limit => limit,
    }
}

/// Writes `drop` into `<queue_directory>/maildrop/`; returns the queue ID once it is durable.
pub fn submit(how: &Submission<'_>, drop: &MaildropFile) -> Result<QueueId, SubmitError> {
    let timeout = how.settings.submit_timeout;
    let on_timeout = match how.exit_on_timeout {
        true => OnTimeout::Exit(format!(
            "{}: fatal: {}",
            how.program,
            SubmitError::TimedOut(timeout)
        )),
        false => OnTimeout::FailWrite,
    };
    let watchdog = Watchdog::arm(timeout, on_timeout);
    match write_directly(how, drop, &watchdog) {
        Err(SubmitError::PermissionDenied(path)) if how.use_helper => {
            if helper_usable(&how.settings.postdrop_path) {
                run_helper(&how.settings, drop, &watchdog)
            } else {
                Err(SubmitError::PermissionDenied(path))
            }
        }
        other => other,
    }
}

fn write_directly(
    how: &Submission<'_>,
    drop: &MaildropFile,
    watchdog: &Watchdog,
) -> Result<QueueId, SubmitError> {
    let settings = &how.settings;
    let maildrop_dir = ensure_layout(settings, how.create_layout)?;
    run_guard(
        settings,
        &maildrop_dir,
        estimated_size(drop),
        how.use_helper,
    )?;
    maildrop::write_with(&maildrop_dir, drop, watchdog).map_err(|e| match e {
        // Whatever failed, the watchdog removing our files under us may be why.
        _ if watchdog.fired() => SubmitError::TimedOut(settings.submit_timeout),
        e if e.is_permission_denied() => SubmitError::PermissionDenied(maildrop_dir.clone()),
        MaildropError::Interrupted(_) => SubmitError::TimedOut(settings.submit_timeout),
        MaildropError::InvalidField { .. } => SubmitError::Invalid(e.to_string()),
        e => SubmitError::Io(e.to_string()),
    })
}

/// The file's size to within the envelope lines: what the guard adds to the maildrop total.
fn estimated_size(drop: &MaildropFile) -> u64 {
    let envelope: usize = drop.recipients.iter().map(|r| r.len() + 3).sum();
    (drop.message.len() + envelope + 256) as u64
}

/// The disk guard; a refusal is also counted for the daemon's once-per-interval log line.
///
/// The setgid helper cannot list `maildrop/` when it is mode 0730 (Postfix's choice: the
/// helper may add files but not see other users' ones). Then only free space and inodes are
/// checked for its submissions; mode 0770 lets it enforce the maildrop caps too.
fn run_guard(
    settings: &SubmitSettings,
    maildrop_dir: &Path,
    size: u64,
    can_use_helper: bool,
) -> Result<(), SubmitError> {
    let limits = settings.limits;
    let result = guard::check_free_space(&settings.queue_directory, &limits, size)
        .and_then(|()| guard::check_maildrop(maildrop_dir, &limits, size));
    match result {
        Ok(()) => Ok(()),
        Err(GuardError::Refused(refusal)) => {
            // Best effort: the exit code must not depend on the statistics file.
            let _ = guard::record_refusal(&settings.queue_directory);
            Err(SubmitError::Refused(refusal))
        }
        Err(e) if e.is_permission_denied() && can_use_helper => {
            Err(SubmitError::PermissionDenied(maildrop_dir.to_path_buf()))
        }
        Err(e) if e.is_permission_denied() => Ok(()),
        Err(e) => Err(SubmitError::Io(e.to_string())),
    }
}

/// Returns `<queue_directory>/maildrop`, creating it (and the queue directory) when missing
/// and `create` allows it and this user owns the nearest existing parent. Created with mode
/// 0700: only their creator, who also runs the daemon, needs them; a system install's modes
/// (0755 queue, 0730 maildrop) come from `mailroom check --fix`.
fn ensure_layout(settings: &SubmitSettings, create: bool) -> Result<PathBuf, SubmitError> {
    let maildrop_dir = queue::Layout::new(&settings.queue_directory).maildrop();
    match fs::metadata(&maildrop_dir) {
        Ok(meta) if meta.is_dir() => return Ok(maildrop_dir),
        Ok(_) => {
            return Err(SubmitError::Io(format!(
                "{} is not a directory",
                maildrop_dir.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) if is_permission_denied(&e) => {
            return Err(SubmitError::PermissionDenied(maildrop_dir))
        }
        Err(e) => {
            return Err(SubmitError::Io(format!(
                "cannot access {}: {e}",
                maildrop_dir.display()
            )))
        }
    }
    if !(create && may_create(settings, &maildrop_dir)) {
        let missing = match settings.queue_directory.exists() {
            true => maildrop_dir,
            false => settings.queue_directory.clone(),
        };
        return Err(SubmitError::MissingStore(missing));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&maildrop_dir)
        .map_err(|e| SubmitError::Io(format!("cannot create {}: {e}", maildrop_dir.display())))?;
    Ok(maildrop_dir)
}

/// Only the owner of the place creates the store. Root creates it only for the embedded
/// default: under a system configuration the queue belongs to `mail_owner`, and a root-owned
/// queue directory would lock the daemon out.
fn may_create(settings: &SubmitSettings, path: &Path) -> bool {
    let euid = sys::effective_uid();
    if euid == 0 && settings.profile != Profile::Embedded {
        return false;
    }
    path.ancestors()
        .skip(1)
        .find_map(|dir| fs::metadata(dir).ok())
        .is_some_and(|meta| meta.uid() == euid)
}

fn helper_usable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Hands the maildrop bytes to mailroom-postdrop (setgid `setgid_group`), which checks and
/// rewrites them and writes the file. Its stdout is the queue ID; its stderr its one reason.
fn run_helper(
    settings: &SubmitSettings,
    drop: &MaildropFile,
    watchdog: &Watchdog,
) -> Result<QueueId, SubmitError> {
    let bytes = maildrop::encode(drop).map_err(|e| SubmitError::Invalid(e.to_string()))?;
    let helper = &settings.postdrop_path;
    let spawn_error =
        |e: io::Error| SubmitError::Io(format!("cannot run {}: {e}", helper.display()));
    let mut child = Command::new(helper)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let armed = watchdog.watch_child(child.id());
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits early (bad configuration) closes the pipe: its exit code and
        // message below say why, so the write error itself is not interesting.
        let _ = stdin.write_all(&bytes);
    }
    let stdout = read_capped(child.stdout.take());
    let stderr = read_capped(child.stderr.take());
    // Leaves it a zombie, so its pid cannot be reused while the watchdog may still kill it.
    sys::wait_exit_keeping_zombie(child.id());
    watchdog.forget_child();
    let status = child.wait().map_err(spawn_error)?;
    if !armed || watchdog.fired() {
        return Err(SubmitError::TimedOut(settings.submit_timeout));
    }
    let _ = watchdog.commit();
    if status.success() {
        return QueueId::parse(stdout.trim())
            .map_err(|_| SubmitError::Io(format!("{} printed no queue ID", helper.display())));
    }
    Err(SubmitError::Helper {
        code: status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(EX_TEMPFAIL),
        message: helper_reason(&stderr, helper),
    })
}

fn read_capped(pipe: Option<impl Read>) -> String {
    let mut text = String::new();
    if let Some(pipe) = pipe {
        let _ = pipe.take(4096).read_to_string(&mut text);
    }
    text
}

/// The helper's last stderr line without its `program: fatal: ` prefix.
fn helper_reason(stderr: &str, helper: &Path) -> String {
    let line = stderr.lines().rev().find(|l| !l.trim().is_empty());
    match line {
        Some(line) => match line.split_once(": fatal: ") {
            Some((_, reason)) => reason.to_string(),
            None => line.to_string(),
        },
        None => format!("{} failed", helper.display()),
    }
}

#[cfg(test)]
mod tests;
