//! `mailroom install [--dry-run] [--prefix DIR] [--replace-mta]` and `mailroom uninstall
//! [--dry-run] [--purge]`: make this build the system's MTA, or take it away. The steps and
//! their rules are `admin::install`'s; this file finds the files to install (the binaries
//! beside this one, the unit and logrotate snippet built in) and prints the outcome.
//!
//! Exit codes: 0 done (or nothing to change), 77 not root (without --prefix), 73 refused
//! before any change (another MTA's file, the Debian package's files) or a step failed,
//! 75 uninstall while the daemon runs, 78 an installed configuration that does not parse.

use admin::install::{self, Options, Outcome, Sources};
use envelope::sysexits::{EX_CANTCREAT, EX_CONFIG, EX_NOPERM, EX_TEMPFAIL, EX_USAGE};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Install mailroom as the system's MTA: user, queue, binaries, sendmail, unit, pages.
#[derive(clap::Args)]
pub struct Args {
    /// List every step and what it would change; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Install under DIR (a staging tree: no users, owners or setgid bits).
    #[arg(long, value_name = "DIR")]
    prefix: Option<PathBuf>,
    /// Move another MTA's sendmail, mailq and newaliases aside (dpkg-divert for a
    /// package's); uninstall puts them back.
    #[arg(long)]
    replace_mta: bool,
    /// For the Debian package's postinst: dpkg placed the files; make the user, group,
    /// queue, configuration and the setgid helper's override.
    #[arg(long, conflicts_with_all = ["prefix", "replace_mta"])]
    from_package: bool,
}

/// Remove what install made; --purge also the queue (with its mail), config and user.
#[derive(clap::Args)]
pub struct UninstallArgs {
    /// List what would be removed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Uninstall from under DIR (as installed with install --prefix DIR).
    #[arg(long, value_name = "DIR")]
    prefix: Option<PathBuf>,
    /// Also remove the queue (mail still in it included), /etc/mailroom, the data
    /// directory, the user and the group.
    #[arg(long)]
    purge: bool,
}

const UNIT: &str = include_str!("../../../../dist/mailroom.service");
const LOGROTATE: &str = include_str!("../../../../dist/mailroom.logrotate");

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    if config.is_some() {
        return usage("install");
    }
    let options = Options {
        prefix: args.prefix,
        replace_mta: args.replace_mta,
        from_package: args.from_package,
        dry_run: args.dry_run,
        purge: false,
    };
    if let Some(code) = refuse_unprivileged("install", &options) {
        return code;
    }
    let cfg = match install::installed_config(options.prefix.as_deref()) {
        Ok(cfg) => cfg,
        Err(why) => return fatal("install", &why, EX_CONFIG),
    };
    let sources = (!options.from_package).then(sources);
    let plan = install::plan(&cfg, &options, sources.as_ref());
    let mut out = io::stdout().lock();
    let outcome = install::run(&plan, &options, &mut out);
    let code = finish("install", outcome, &options, &mut out);
    if code == 0 && !options.dry_run && options.prefix.is_none() {
        report_check(&cfg, options.from_package, &mut out);
    }
    code
}

pub fn run_uninstall(config: Option<&Path>, args: UninstallArgs) -> u8 {
    if config.is_some() {
        return usage("uninstall");
    }
    let options = Options {
        prefix: args.prefix,
        dry_run: args.dry_run,
        purge: args.purge,
        ..Options::default()
    };
    if let Some(code) = refuse_unprivileged("uninstall", &options) {
        return code;
    }
    let cfg = match install::installed_config(options.prefix.as_deref()) {
        Ok(cfg) => cfg,
        Err(why) => return fatal("uninstall", &why, EX_CONFIG),
    };
    let plan = install::plan(&cfg, &options, Some(&sources()));
    let mut out = io::stdout().lock();
    let outcome = install::uninstall(&plan, &cfg.queue_directory, &options, &mut out);
    finish("uninstall", outcome, &options, &mut out)
}

/// The binaries beside this one (a release build's `target/release/`, or `/usr/sbin`).
fn sources() -> Sources {
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    Sources {
        bin_dir,
        unit: UNIT.to_string(),
        logrotate: LOGROTATE.to_string(),
    }
}

fn refuse_unprivileged(program: &str, options: &Options) -> Option<u8> {
    // SAFETY: geteuid cannot fail.
    let root = sys::effective_uid() == 0;
    if root || options.prefix.is_some() || options.dry_run {
        return None;
    }
    let why = "must be run as root (or with --prefix DIR, or --dry-run)";
    Some(fatal(program, why, EX_NOPERM))
}

fn finish(program: &str, outcome: Outcome, options: &Options, out: &mut dyn Write) -> u8 {
    match outcome {
        Outcome::Done { changed: 0 } => {
            let _ = writeln!(out, "{program}: nothing to change: every step is in place");
            0
        }
        Outcome::Done { changed } if options.dry_run => {
            let _ = writeln!(out, "{program}: --dry-run: {changed} steps would change");
            0
        }
        Outcome::Done { changed } => {
            let _ = writeln!(out, "{program}: done: {changed} changes");
            0
        }
        Outcome::Refused(reasons) => {
            for why in &reasons {
                eprintln!("{program}: fatal: {why}");
            }
            eprintln!("{program}: nothing was changed");
            match reasons.iter().any(|why| why.contains("is running")) {
                true => EX_TEMPFAIL,
                false => EX_CANTCREAT,
            }
        }
        Outcome::Failed { changed, why } => {
            eprintln!("{program}: fatal: {why} ({changed} earlier changes were made; run it again once fixed)");
            EX_CANTCREAT
        }
    }
}

/// `mailroom check` right after the install, so a problem it leaves is seen at once.
fn report_check(cfg: &config::Config, from_package: bool, out: &mut dyn Write) {
    let daemon_up = admin::pidfile::running(&cfg.queue_directory).is_ok_and(|pid| pid.is_some());
    let report = admin::check::check(&admin::Settings::from_config(cfg), daemon_up);
    if report.problems.is_empty() {
        let _ = writeln!(
            out,
            "install: check: {} is in order",
            cfg.queue_directory.display()
        );
        // The package's unit is enabled by its postinst; a plain install's is not.
        let start = match from_package {
            true => "systemctl start mailroom",
            false => "systemctl enable --now mailroom",
        };
        let _ = writeln!(
            out,
            "install: next: mailroom import-postfix if Postfix ran here, then {start} (or: mailroom start)"
        );
        return;
    }
    for p in &report.problems {
        let _ = writeln!(
            out,
            "install: check: {}: {}; fix: {}",
            p.path, p.what, p.fix
        );
    }
}

fn fatal(program: &str, why: &str, code: u8) -> u8 {
    eprintln!("{program}: fatal: {why}");
    code
}

fn usage(program: &str) -> u8 {
    let why = "-c is not used: it installs /etc/mailroom/mailroom.toml (edit that one)";
    fatal(program, why, EX_USAGE)
}
