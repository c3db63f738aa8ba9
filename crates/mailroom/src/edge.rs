//! What every subcommand does at its edges: load the configuration (or print why not and
//! exit 78), print Postfix's one-line `fatal:` and `usage:` messages with their sysexits
//! codes, and take Postfix's `-c`/`-C` out of a raw command line.
//!
//! A leaf: it imports nothing from the rest of the binary, so every subcommand can use it.

use config::Config;
use envelope::sysexits::{EX_CONFIG, EX_TEMPFAIL, EX_USAGE};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Loads the configuration or prints one fatal line and returns EX_CONFIG.
pub fn load_config(path: Option<&Path>, program: &str) -> Result<Config, u8> {
    Config::load(path).map_err(|e| {
        eprintln!("{program}: fatal: {e}");
        EX_CONFIG
    })
}

/// Runs `f` with the configuration, or returns EX_CONFIG (as `mailroom`).
pub fn with_config(path: Option<&Path>, f: impl FnOnce(&Config) -> u8) -> u8 {
    match load_config(path, "mailroom") {
        Ok(cfg) => f(&cfg),
        Err(code) => code,
    }
}

/// Prints `program: fatal: why` and returns EX_TEMPFAIL.
pub fn fatal(program: &str, why: &str) -> u8 {
    eprintln!("{program}: fatal: {why}");
    EX_TEMPFAIL
}

/// Prints `program: fatal: usage: text` and returns EX_USAGE.
pub fn usage(program: &str, text: &str) -> u8 {
    eprintln!("{program}: fatal: usage: {text}");
    EX_USAGE
}

/// Pulls `-c FILE`/`-C FILE` out of Postfix-style arguments (Postfix's `-c` names a
/// configuration directory; ours names the file).
pub fn take_config(args: &mut Vec<String>, path: Option<&Path>) -> Option<PathBuf> {
    let mut config = path.map(Path::to_path_buf);
    while let Some(i) = args.iter().position(|a| a == "-c" || a == "-C") {
        args.remove(i);
        if i < args.len() {
            config = Some(PathBuf::from(args.remove(i)));
        }
    }
    config
}

/// Raw arguments as text (Postfix's tools take no binary arguments).
pub fn strings(args: Vec<OsString>) -> Vec<String> {
    args.into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// Where the mail log goes, from `maillog_file`, `syslog_*` and `log_format`.
pub fn log_options(cfg: &Config) -> maillog::Options {
    let format = match cfg.log_format {
        config::LogFormat::Json => maillog::Format::Json,
        config::LogFormat::Text => maillog::Format::Text,
    };
    maillog::Options {
        file: cfg.maillog_file.clone(),
        syslog_socket: cfg.syslog_socket.clone(),
        syslog_name: cfg.syslog_name.clone(),
        syslog_facility: cfg.syslog_facility.as_str().to_string(),
        format,
        repeat_window: cfg.log_repeat_window,
    }
}

/// The mail log for an admin tool that logs what it changed (Postfix's postsuper logs
/// `ID: removed`): only when the log is a file or syslog — with neither, the tool's own
/// standard error already says it. A log that cannot be opened costs a warning, not the
/// command.
pub fn open_tool_log(cfg: &Config, program: &str) {
    if cfg.maillog_file.is_empty() && cfg.syslog_socket.is_empty() {
        return;
    }
    match maillog::init(&log_options(cfg)) {
        Ok(_) => {}
        Err(maillog::InitError::Syslog(e, _)) => {
            eprintln!(
                "{program}: warning: cannot log to syslog_socket {}: {e}",
                cfg.syslog_socket
            )
        }
        Err(maillog::InitError::File(e)) => {
            eprintln!(
                "{program}: warning: cannot open maillog_file {}: {e}",
                cfg.maillog_file
            )
        }
    }
}
