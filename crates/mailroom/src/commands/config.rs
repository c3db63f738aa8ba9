//! `mailroom config`, also reached as `postconf` through argv[0]: Postfix's postconf for the
//! TOML file. Shows every parameter (`name = value`, values as written), `-n` only what the
//! file sets, `-d` the defaults, `-x` final values, `-h` values without names; edits with
//! `-e name=value` and `-# name`, keeping the file's comments and layout.
//!
//! An edit is checked with the loader the daemon uses before anything is written; a result
//! the daemon would refuse is refused (exit 64, file untouched). The file is replaced by
//! temp file + fsync + rename under a lock on its directory, keeping its owner and mode.
//! An unknown name is Postfix's `warning: NAME: unknown parameter`, and, as in Postfix,
//! does not change the exit status.

use crate::edge::load_config;
use config::{Config, Show};
use envelope::sysexits::{EX_CANTCREAT, EX_CONFIG, EX_USAGE};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Show or edit the configuration, as Postfix's postconf does.
///
/// With no option: every parameter as `name = value`, the value as written (the file's
/// text, else the default's own template such as `$myhostname`). Named parameters limit the
/// output; an unknown one is a warning. `-e NAME=VALUE…` and `-# NAME…` edit the file in
/// place, keeping its comments, and refuse (exit 64, file untouched) a result the daemon
/// would refuse.
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// Show only the parameters the file sets.
    #[arg(short = 'n')]
    only_file: bool,
    /// Show the default values (ignoring the file).
    #[arg(short = 'd')]
    defaults: bool,
    /// Show values only, without `name = ` (for scripts).
    #[arg(short = 'h')]
    hide_name: bool,
    /// Show final values: `$name` expanded, units normalised (as the daemon uses them).
    #[arg(short = 'x')]
    expand: bool,
    /// Edit the file: set each NAME=VALUE, in place, keeping comments and layout.
    #[arg(short = 'e')]
    edit: bool,
    /// Edit the file: comment out each NAME.
    #[arg(short = '#')]
    comment_out: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Parameter names (NAME=VALUE with -e); none = every parameter.
    #[arg(value_name = "NAME")]
    names: Vec<String>,
}

// `postconf ARGS`: `-c DIR` (or FILE) names the configuration, the rest is `Args`.
#[derive(clap::Parser)]
#[command(
    name = "postconf",
    disable_help_flag = true,
    about = "Show or edit the mailroom configuration, as Postfix's postconf does",
    long_about = "Show or edit the mailroom configuration (mailroom.toml), as Postfix's \
        postconf does. postconf is the mailroom binary called through a link of that name; \
        mailroom config is the same command."
)]
struct Postconf {
    /// Configuration directory (its mailroom.toml) or file.
    #[arg(short = 'c', value_name = "DIR")]
    config: Option<PathBuf>,
    #[command(flatten)]
    args: Args,
}

const PROGRAM: &str = "postconf";

/// `postconf` through argv[0].
pub fn run_as_postconf(args: Vec<OsString>) -> u8 {
    let argv = std::iter::once(OsString::from(PROGRAM)).chain(args);
    match <Postconf as clap::Parser>::try_parse_from(argv) {
        Ok(postconf) => run(postconf.config.as_deref(), postconf.args),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                EX_USAGE
            } else {
                0
            }
        }
    }
}

/// The clap definition of `postconf`, for its man page.
pub fn postconf_command() -> clap::Command {
    <Postconf as clap::CommandFactory>::command()
}

pub fn run(path: Option<&Path>, mut args: Args) -> u8 {
    // Postfix: a first argument with `=` in it means -e.
    if !args.comment_out && args.names.first().is_some_and(|n| n.contains('=')) {
        args.edit = true;
    }
    if let Some(message) = conflict(&args) {
        eprintln!("{PROGRAM}: fatal: {message}");
        return EX_USAGE;
    }
    let path = path.map(directory_to_file);
    if args.edit || args.comment_out {
        edit(path.as_deref(), &args)
    } else {
        show(path.as_deref(), &args)
    }
}

/// Postfix's option groups of which at most one may be given, and its message.
fn conflict(args: &Args) -> Option<String> {
    let given = |flags: &[(bool, &str)]| -> Vec<String> {
        flags
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| f.to_string())
            .collect()
    };
    let (d, e, n, c) = (
        (args.defaults, "-d"),
        (args.edit, "-e"),
        (args.only_file, "-n"),
        (args.comment_out, "-#"),
    );
    let groups = [
        given(&[d, e, n, c]),
        given(&[e, (args.expand, "-x"), c]),
        given(&[e, (args.hide_name, "-h"), c]),
    ];
    groups
        .into_iter()
        .find(|flags| flags.len() > 1)
        .map(|flags| format!("specify one of {}", flags.join(" ")))
}

/// Postfix's `-c` names a directory: `-c /etc/mailroom` means its `mailroom.toml`.
fn directory_to_file(path: &Path) -> PathBuf {
    match path.is_dir() {
        true => path.join("mailroom.toml"),
        false => path.to_path_buf(),
    }
}

fn show(path: Option<&Path>, args: &Args) -> u8 {
    let cfg = match load_config(path, PROGRAM) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let text = match cfg
        .source
        .as_deref()
        .map(std::fs::read_to_string)
        .transpose()
    {
        Ok(text) => text,
        Err(e) => return fatal(EX_CONFIG, &format!("cannot read configuration file: {e}")),
    };
    let show = Show {
        defaults: args.defaults,
        only_file: args.only_file,
        expand: args.expand,
    };
    let listing = match config::postconf_parameters(&cfg, text.as_deref(), show) {
        Ok(listing) => listing,
        Err(e) => return fatal(EX_CONFIG, &e.to_string()),
    };
    let print = |(name, value): &(String, String)| match (args.hide_name, value.is_empty()) {
        (true, _) => println!("{value}"),
        (false, true) => println!("{name} ="),
        (false, false) => println!("{name} = {value}"),
    };
    if args.names.is_empty() {
        listing.iter().for_each(print);
    }
    for name in &args.names {
        match config::parameter_name(name) {
            Some(name) => listing.iter().filter(|(n, _)| n == name).for_each(print),
            None => eprintln!("{PROGRAM}: warning: {name}: unknown parameter"),
        }
    }
    0
}

fn edit(path: Option<&Path>, args: &Args) -> u8 {
    if args.edit && args.names.is_empty() {
        return fatal(EX_USAGE, "-e requires name=value argument");
    }
    if args.comment_out && args.names.iter().any(|n| n.contains('=')) {
        return fatal(EX_USAGE, "-# requires parameter names without value");
    }
    let Some(file) = config::config_file(path) else {
        return fatal(
            EX_USAGE,
            &format!(
                "no configuration file to edit (the embedded default is in use): \
                 name one with -c, or create {}",
                config::SYSTEM_CONFIG_PATH
            ),
        );
    };
    // Edit the file a symlink points to, not the link.
    let file = std::fs::canonicalize(&file).unwrap_or(file);
    let _lock = match security::lock_directory_of(&file) {
        Ok(lock) => lock,
        Err(e) => return fatal(EX_CANTCREAT, &format!("lock {}: {e}", dir_of(&file))),
    };
    let old = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return fatal(EX_CONFIG, &format!("open {}: {e}", file.display())),
    };
    let new = match edited(&old, args) {
        Ok(new) => new,
        Err(why) => return fatal(EX_USAGE, &why),
    };
    if let Err(e) = Config::from_str(&new, Some(&file)) {
        let why = format!("{e}; {} not changed", file.display());
        return fatal(EX_USAGE, &why);
    }
    if new == old {
        return 0;
    }
    write(&file, &new)
}

/// The file's text after the edit `args` asks for.
fn edited(old: &str, args: &Args) -> Result<String, String> {
    let in_file = |why: String| format!("{why} (in the configuration file)");
    if args.comment_out {
        return config::comment_out_parameters(old, &args.names).map_err(in_file);
    }
    let assignments = args
        .names
        .iter()
        .map(|a| config::split_assignment(a))
        .collect::<Result<Vec<_>, _>>()?;
    config::set_parameters(old, &assignments).map_err(in_file)
}

/// Replaces `file` atomically, with the owner and mode it had (0644 for a new file).
fn write(file: &Path, text: &str) -> u8 {
    let (mode, owner) = match std::fs::metadata(file) {
        Ok(meta) => (meta.mode() & 0o7777, Some((meta.uid(), meta.gid()))),
        Err(_) => (0o644, None),
    };
    match security::write_atomic(file, text.as_bytes(), mode, owner) {
        Ok(()) => 0,
        Err(e) => fatal(EX_CANTCREAT, &format!("write {}: {e}", file.display())),
    }
}

fn dir_of(file: &Path) -> String {
    file.parent()
        .map_or_else(|| ".".to_string(), |d| d.display().to_string())
}

fn fatal(code: u8, why: &str) -> u8 {
    eprintln!("{PROGRAM}: fatal: {why}");
    code
}
