//! `mailroom sendmail` and `sendmail`: submission with all of sendmail's flags, parsed
//! Postfix's way by `submit::sendmail`; `-bp` lists the queue (as `mailq`) and `-q…` asks
//! the daemon to flush (as `postqueue -f|-s|-i`).

use crate::commands::{mailq, postqueue};
use config::Config;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use submit::sendmail::{Handled, SendmailIo};

/// Submit a message like sendmail(1); all of sendmail's flags work.
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    run_as_sendmail(with_config_flag(config.map(Into::into), args.args))
}

/// sendmail's own command line (no `mailroom` flags).
pub fn run_as_sendmail(args: Vec<OsString>) -> u8 {
    let loader = Box::new(|p: Option<&Path>| Config::load(p).map_err(|e| e.to_string()));
    let mut io = SendmailIo::from_process(loader);
    match submit::run_sendmail(&args, &mut io) {
        Handled::Exit(code) => code,
        Handled::ListQueue(cfg) => mailq::list(&cfg, false),
        Handled::Flush(cfg, scope) => postqueue::flush(&cfg, "sendmail", &scope),
    }
}

/// `mailroom [-c FILE] sendmail ARGS`, split before clap sees it: sendmail's own `-c` is a
/// flag without a value (ignored, as in Postfix), which clap's global `-c FILE` would take
/// with the next argument (`sendmail -c root` read `root` as the configuration file).
/// Returns sendmail's arguments, mailroom's `-c FILE` turned into sendmail's `-C FILE`.
pub fn split_from_mailroom(args: &[OsString]) -> Option<Vec<OsString>> {
    let mut config = None;
    let mut at = 1;
    while let Some(arg) = args.get(at).and_then(|a| a.to_str()) {
        match arg {
            "sendmail" => return Some(with_config_flag(config, args[at + 1..].to_vec())),
            "-c" | "--config" => {
                config = args.get(at + 1).map(PathBuf::from);
                at += 2;
            }
            _ => match arg.strip_prefix("--config=").or(arg.strip_prefix("-c")) {
                Some(path) if !path.is_empty() => {
                    config = Some(PathBuf::from(path));
                    at += 1;
                }
                _ => return None,
            },
        }
    }
    None
}

/// mailroom's `-c FILE` given to sendmail as its `-C FILE`.
fn with_config_flag(config: Option<PathBuf>, mut args: Vec<OsString>) -> Vec<OsString> {
    if let Some(path) = config {
        args.splice(0..0, [OsString::from("-C"), path.into_os_string()]);
    }
    args
}
