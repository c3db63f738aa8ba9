//! `mailroom-postdrop`: the small setgid helper sendmail runs when it may not write
//! `maildrop/` itself (a system install, where `maildrop/` is group `setgid_group`).
//!
//! Input: maildrop-format bytes on standard input (what [`crate::maildrop::encode`] makes).
//! Output: the file in `maildrop/`, its queue ID on standard output, exit 0; or one line
//! `mailroom-postdrop: fatal: ...` on standard error and a sysexits code.
//!
//! SECURITY. Installed setgid `setgid_group` (never setuid, and the multi-call `mailroom`
//! binary is never made setgid). It trusts nothing its caller controls:
//! * the input is size-capped before it is parsed, and parsed as strictly as the daemon does;
//! * the `U` (uid, user) and `T` (arrival time) lines are replaced by the real uid, its name
//!   from the password database, and the current time, so they cannot be forged;
//! * when running with setgid rights it reads only `/etc/mailroom/mailroom.toml` (no `-C`, no
//!   `$MAILROOM_CONFIG`, no `$HOME`: the environment belongs to the caller), and writes only
//!   into a `maildrop/` that is group-owned by its effective group;
//! * it never creates directories with setgid rights, and never runs other programs.
//!
//! Run without setgid rights (the embedded default, tests) it is an ordinary program of the
//! user and loads the configuration the usual way.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use envelope::QueueId;

use crate::maildrop::{self, MaildropError};
use crate::sendmail::ConfigLoader;
use crate::submission::{submit, Submission, SubmitError, SubmitSettings};
use envelope::sysexits::{EX_CONFIG, EX_DATAERR, EX_NOPERM, EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE};

const PROGRAM: &str = "mailroom-postdrop";
/// Room for the envelope lines on top of the message: thousands of recipients fit.
const ENVELOPE_ALLOWANCE: u64 = 4 << 20;

/// The world as the helper sees it.
pub struct PostdropIo {
    pub stdin: Box<dyn Read>,
    pub stdout: Box<dyn Write>,
    pub stderr: Box<dyn Write>,
    /// Real uid of the caller and its login name.
    pub uid: u32,
    pub username: String,
    /// Running with setgid (or setuid) rights: only the system configuration is read.
    pub privileged: bool,
    pub load_config: ConfigLoader,
    /// As [`crate::sendmail::SendmailIo::exit_on_timeout`].
    pub exit_on_timeout: bool,
}

impl PostdropIo {
    pub fn from_process(load_config: ConfigLoader) -> PostdropIo {
        let (uid, username) = crate::users::real_user();
        PostdropIo {
            stdin: Box::new(std::io::stdin()),
            stdout: Box::new(std::io::stdout()),
            stderr: Box::new(std::io::stderr()),
            uid,
            username,
            privileged: crate::users::is_privileged(),
            load_config,
            exit_on_timeout: true,
        }
    }

    fn fatal(&mut self, code: u8, reason: impl std::fmt::Display) -> u8 {
        let _ = writeln!(self.stderr, "{PROGRAM}: fatal: {reason}");
        code
    }
}

/// Runs the helper; returns the process exit code.
pub fn run_postdrop(io: &mut PostdropIo) -> u8 {
    let path = io.privileged.then(|| Path::new(config::SYSTEM_CONFIG_PATH));
    let settings = match (io.load_config)(path) {
        Ok(cfg) => SubmitSettings::from_config(&cfg),
        Err(e) => return io.fatal(EX_CONFIG, e),
    };
    if io.privileged {
        if let Err(reason) = check_maildrop_group(&settings) {
            return io.fatal(EX_NOPERM, reason);
        }
    }
    let mut drop = match read_input(&settings, io) {
        Ok(drop) => drop,
        Err(code) => return code,
    };
    drop.id = QueueId::generate();
    drop.uid = io.uid;
    drop.username = io.username.clone();
    drop.arrival_time = crate::sendmail::now();
    let how = Submission {
        settings,
        program: PROGRAM,
        exit_on_timeout: io.exit_on_timeout,
        use_helper: false,
        create_layout: !io.privileged,
    };
    match submit(&how, &drop) {
        Ok(id) => {
            let _ = writeln!(io.stdout, "{id}");
            EX_OK
        }
        Err(SubmitError::TimedOut(_)) if io.exit_on_timeout => EX_TEMPFAIL,
        Err(e) => io.fatal(e.exit_code(), e),
    }
}

fn read_input(
    settings: &SubmitSettings,
    io: &mut PostdropIo,
) -> Result<maildrop::MaildropFile, u8> {
    let cap = settings.message_limit.saturating_add(ENVELOPE_ALLOWANCE);
    let mut bytes = Vec::new();
    if let Err(e) = (&mut io.stdin).take(cap + 1).read_to_end(&mut bytes) {
        return Err(io.fatal(EX_TEMPFAIL, format!("cannot read standard input: {e}")));
    }
    if bytes.len() as u64 > cap {
        return Err(io.fatal(EX_UNAVAILABLE, "message file too big"));
    }
    maildrop::decode(QueueId::generate(), &bytes).map_err(|e| match e {
        MaildropError::Corrupt(reason) => {
            io.fatal(EX_DATAERR, format!("malformed input: {reason}"))
        }
        e => io.fatal(EX_DATAERR, e),
    })
}

/// With setgid rights, write only where the setgid group is meant to write.
fn check_maildrop_group(settings: &SubmitSettings) -> Result<(), String> {
    let dir = queue::Layout::new(&settings.queue_directory).maildrop();
    let meta =
        std::fs::metadata(&dir).map_err(|e| format!("cannot access {}: {e}", dir.display()))?;
    let egid = sys::effective_gid();
    if meta.is_dir() && meta.gid() == egid {
        Ok(())
    } else {
        Err(format!(
            "{} is not a directory of group {egid} (run: mailroom check --fix)",
            dir.display()
        ))
    }
}

#[cfg(test)]
mod tests;
