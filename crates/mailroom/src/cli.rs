//! Command lines: `mailroom`'s subcommands (clap), and the Postfix-compatible front ends
//! (`sendmail`, `mailq`, `postqueue`, `newaliases`) whose flags are parsed Postfix's way.

use clap::{Parser, Subcommand};
use config::Config;
use envelope::sysexits::{EX_CONFIG, EX_USAGE};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use submit::sendmail::FlushScope;

#[derive(Parser)]
#[command(
    name = "mailroom",
    version,
    about = "A mail transfer agent with a queue you can trust"
)]
struct Cli {
    /// Configuration file (else $MAILROOM_CONFIG, else /etc/mailroom/mailroom.toml, else
    /// the embedded default under $MAILROOM_DATA or ~/.local/share/mailroom).
    #[arg(short = 'c', long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground: pickup, queue manager, local delivery.
    Serve,
    /// Submit a message like sendmail(1); all of sendmail's flags work.
    #[command(disable_help_flag = true)]
    Sendmail {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// List the queue like Postfix's mailq.
    Mailq {
        /// One JSON object per message, like `postqueue -j`.
        #[arg(long)]
        json: bool,
    },
    /// Postfix's postqueue: -p (list), -j (JSON), -f (flush deferred mail now), -s SITE, -i ID.
    #[command(disable_help_flag = true)]
    Postqueue {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Print the configuration like postconf: effective (default), -n non-default, -d defaults.
    Config {
        #[arg(short = 'n', conflicts_with = "defaults")]
        non_default: bool,
        #[arg(short = 'd')]
        defaults: bool,
        /// Only these parameters.
        names: Vec<String>,
    },
    /// Check the alias files and make a running daemon reload them (like newaliases).
    Newaliases,
    /// Manage SMTP AUTH users (smtpd_sasl_password_file): add NAME (password on stdin), del NAME, list.
    Passwd {
        #[command(subcommand)]
        action: crate::passwd_cmd::Action,
    },
    /// Postfix's postsuper: -d/-h/-H/-r ID|ALL|- [queue], plus --from/--to/--domain/--older-than/--reason/--dry-run.
    #[command(disable_help_flag = true)]
    Postsuper {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Postfix's postcat: -q ID (or a file), -e envelope, -h header, -b body, -v more.
    #[command(disable_help_flag = true)]
    Postcat {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Postfix's qshape: age distribution per domain (-s senders, -p parents, -b N, -t MIN, --json).
    #[command(disable_help_flag = true)]
    Qshape {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Check owners and modes of the store, the configuration and the listeners (--fix repairs).
    Check(crate::admin_health::CheckArgs),
    /// One-screen health report; exit 0/1/2 = ok/warn/critical.
    Doctor(crate::admin_health::DoctorArgs),
    /// Mailbox maintenance: archive USER [--older-than 30d].
    Mailbox {
        #[command(subcommand)]
        action: crate::admin_health::MailboxAction,
    },
}

pub fn mailroom(args: Vec<OsString>) -> u8 {
    if let Some((config, rest)) = sendmail_subcommand(&args) {
        return sendmail(with_config_flag(config, rest));
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EX_USAGE } else { 0 };
        }
    };
    let path = cli.config.as_deref();
    match cli.command {
        Command::Serve => crate::serve::run(path),
        Command::Sendmail { args } => sendmail(with_config_flag(path.map(Into::into), args)),
        Command::Mailq { json } => with_config(path, |cfg| crate::mailq::list(cfg, json)),
        Command::Postqueue { args } => postqueue_with(path, args),
        Command::Config {
            non_default,
            defaults,
            names,
        } => print_config(path, non_default, defaults, &names),
        Command::Newaliases => newaliases(path),
        Command::Passwd { action } => with_config(path, |cfg| crate::passwd_cmd::run(cfg, action)),
        Command::Postsuper { args } => crate::admin_super::run(path, args),
        Command::Postcat { args } => crate::admin_cmd::postcat(path, args),
        Command::Qshape { args } => crate::admin_cmd::qshape(path, args),
        Command::Check(a) => with_config(path, |cfg| crate::admin_health::check(cfg, a)),
        Command::Doctor(a) => with_config(path, |cfg| crate::admin_health::doctor(cfg, a)),
        Command::Mailbox { action } => {
            with_config(path, |cfg| crate::admin_health::mailbox(cfg, action))
        }
    }
}

/// `mailroom [-c FILE] sendmail ARGS`, split before clap sees it: sendmail's own `-c` is a
/// flag without a value (ignored, as in Postfix), which clap's global `-c FILE` would take
/// with the next argument (`sendmail -c root` read `root` as the configuration file).
fn sendmail_subcommand(args: &[OsString]) -> Option<(Option<PathBuf>, Vec<OsString>)> {
    let mut config = None;
    let mut at = 1;
    while let Some(arg) = args.get(at).and_then(|a| a.to_str()) {
        match arg {
            "sendmail" => return Some((config, args[at + 1..].to_vec())),
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

/// Loads the configuration or prints one fatal line and returns EX_CONFIG.
pub fn load_config(path: Option<&Path>, program: &str) -> Result<Config, u8> {
    Config::load(path).map_err(|e| {
        eprintln!("{program}: fatal: {e}");
        EX_CONFIG
    })
}

fn with_config(path: Option<&Path>, f: impl FnOnce(&Config) -> u8) -> u8 {
    match load_config(path, "mailroom") {
        Ok(cfg) => f(&cfg),
        Err(code) => code,
    }
}

pub fn sendmail(args: Vec<OsString>) -> u8 {
    use submit::sendmail::{Handled, SendmailIo};
    let loader = Box::new(|p: Option<&Path>| Config::load(p).map_err(|e| e.to_string()));
    let mut io = SendmailIo::from_process(loader);
    match submit::run_sendmail(&args, &mut io) {
        Handled::Exit(code) => code,
        Handled::ListQueue(cfg) => crate::mailq::list(&cfg, false),
        Handled::Flush(cfg, scope) => crate::control::flush(&cfg, "sendmail", &scope),
    }
}

pub fn mailq_alias(args: Vec<OsString>) -> u8 {
    let json = args.iter().any(|a| a == "--json" || a == "-j");
    with_config(None, |cfg| crate::mailq::list(cfg, json))
}

pub fn postqueue(args: Vec<OsString>) -> u8 {
    postqueue_with(None, args)
}

/// What `postqueue` was asked to do.
enum PostqueueAction {
    List { json: bool },
    Flush(FlushScope),
}

const POSTQUEUE_USAGE: &str =
    "postqueue: fatal: usage: postqueue -p | -j | -f | -s site | -i queue_id [-C config]";

/// Postfix's postqueue flags: `-c DIR` is Postfix's config directory; ours is `-C FILE`.
fn postqueue_with(path: Option<&Path>, args: Vec<OsString>) -> u8 {
    let mut config = path.map(Path::to_path_buf);
    let mut action = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let next = |it: &mut std::vec::IntoIter<OsString>| {
            it.next().map(|v| v.to_string_lossy().into_owned())
        };
        action = match a.to_str() {
            Some("-p") => Some(PostqueueAction::List { json: false }),
            Some("-j") => Some(PostqueueAction::List { json: true }),
            Some("-f") => Some(PostqueueAction::Flush(FlushScope::All)),
            Some("-s") => next(&mut it).map(|site| PostqueueAction::Flush(FlushScope::Site(site))),
            Some("-i") => next(&mut it).map(|id| PostqueueAction::Flush(FlushScope::QueueId(id))),
            Some("-C") | Some("-c") => {
                config = it.next().map(PathBuf::from);
                action
            }
            Some("-v") => action,
            _ => None,
        };
        if action.is_none() {
            eprintln!("{POSTQUEUE_USAGE}");
            return EX_USAGE;
        }
    }
    let Some(action) = action else {
        eprintln!("{POSTQUEUE_USAGE}");
        return EX_USAGE;
    };
    match load_config(config.as_deref(), "postqueue") {
        Ok(cfg) => match action {
            PostqueueAction::List { json } => crate::mailq::list(&cfg, json),
            PostqueueAction::Flush(scope) => crate::control::flush(&cfg, "postqueue", &scope),
        },
        Err(code) => code,
    }
}

fn print_config(path: Option<&Path>, non_default: bool, defaults: bool, names: &[String]) -> u8 {
    let cfg = match load_config(path, "mailroom") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let shown = if defaults {
        match cfg.profile {
            config::Profile::System => Config::system_default(),
            _ => Config::embedded_default(),
        }
    } else {
        cfg
    };
    if names.is_empty() {
        let mode = if non_default {
            config::PrintMode::NonDefault
        } else {
            config::PrintMode::Effective
        };
        print!("{}", config::render(&shown, mode));
        return 0;
    }
    let mut code = 0;
    for name in names {
        match config::render_one(&shown, name) {
            Some(line) => println!("{line}"),
            None => {
                eprintln!("mailroom: warning: {name}: unknown parameter");
                code = EX_USAGE;
            }
        }
    }
    code
}

pub fn newaliases(path: Option<&Path>) -> u8 {
    let cfg = match load_config(path, "newaliases") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match agents::check_aliases(&cfg) {
        Ok(n) => {
            println!("newaliases: {n} aliases");
            // A running daemon reloads on request; a stopped one reads the files at start.
            let _ = crate::control::request(&cfg, &admin::protocol::Command::Reload);
            0
        }
        Err(e) => {
            eprintln!("newaliases: fatal: {e}");
            EX_CONFIG
        }
    }
}
