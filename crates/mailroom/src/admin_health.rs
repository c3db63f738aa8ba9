//! `mailroom check [--fix] [--json]`, `mailroom doctor [--json]` and `mailroom mailbox
//! archive USER [--older-than 30d]`: command-line glue over `admin::check`, `admin::doctor`
//! and `admin::archive`.
//!
//! Exit codes: check 0 = no error left (warnings are printed), 1 = errors; doctor 0/1/2 = ok/warn/critical;
//! archive 0 = done (also when nothing was old enough), 75 = mailbox busy or unreadable.

use crate::admin_cmd::{daemon_up, execute, fatal};
use admin::protocol::{Event, Request};
use config::Config;
use envelope::sysexits::EX_CONFIG;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Repair owners and modes (never through a symbolic link).
    #[arg(long)]
    fix: bool,
    /// The problems as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// The report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
pub enum MailboxAction {
    /// Move old messages of USER's mbox to a gzip archive, under the mailbox locks.
    Archive {
        user: String,
        /// Archive messages at least this old (90s, 15m, 2h, 30d, 1w).
        #[arg(long, default_value = "30d")]
        older_than: String,
        /// The archive file (default: <data_directory>/archive/USER-YYYYmmdd-HHMMSS.mbox.gz).
        #[arg(long)]
        output: Option<PathBuf>,
        /// The mbox (default: <mail_spool_directory>/USER).
        #[arg(long)]
        mbox: Option<PathBuf>,
        /// The result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `mailroom check`: a configuration that does not parse is reported by the loader (78).
pub fn check(cfg: &Config, args: CheckArgs) -> u8 {
    let mut report = admin::check::check(cfg, daemon_up(cfg));
    if args.fix {
        admin::check::fix(&mut report);
    }
    let mut out = io::stdout().lock();
    if args.json {
        let _ = serde_json::to_writer_pretty(&mut out, &report);
        let _ = writeln!(out);
    } else {
        for line in &report.fixed {
            let _ = writeln!(out, "mailroom: {line}");
        }
        for p in &report.problems {
            let level = match p.severity {
                admin::check::Severity::Error => "error",
                admin::check::Severity::Warning => "warning",
            };
            let _ = writeln!(
                out,
                "mailroom: {level}: {}: {}; fix: {}",
                p.path, p.what, p.fix
            );
        }
        if report.problems.is_empty() && report.fixed.is_empty() {
            let _ = writeln!(
                out,
                "mailroom: check: {} is in order",
                cfg.queue_directory.display()
            );
        }
    }
    let errors = report
        .problems
        .iter()
        .any(|p| p.severity == admin::check::Severity::Error);
    u8::from(errors)
}

/// `mailroom doctor`.
pub fn doctor(cfg: &Config, args: DoctorArgs) -> u8 {
    let up = daemon_up(cfg);
    let mut stats = None;
    let _ = execute(cfg, &Request::Stats, None, |e| {
        if let Event::Stats(s) = e {
            stats = Some(s);
        }
        Ok(())
    });
    let check = admin::check::check(cfg, up);
    let inputs = admin::doctor::Inputs {
        cfg,
        daemon_up: up,
        stats,
        check: &check,
        now: admin::duration::unix_now(),
    };
    let report = admin::doctor::diagnose(&inputs);
    let mut out = io::stdout().lock();
    if args.json {
        let _ = serde_json::to_writer_pretty(&mut out, &report);
        let _ = writeln!(out);
    } else {
        let _ = admin::doctor::write_text(&mut out, &report, cfg);
    }
    report.level.exit_code()
}

pub fn mailbox(cfg: &Config, action: MailboxAction) -> u8 {
    let MailboxAction::Archive {
        user,
        older_than,
        output,
        mbox,
        json,
    } = action;
    let older_than = match admin::duration::parse_seconds(&older_than) {
        Ok(s) => s,
        Err(e) => return fatal("mailbox", &e),
    };
    if user.is_empty() || user.contains('/') || user.starts_with('.') {
        return fatal("mailbox", &format!("bad user name {user:?}"));
    }
    let mbox = match mbox {
        Some(m) => m,
        None if !cfg.home_mailbox.is_empty() => {
            eprintln!("mailbox: fatal: home_mailbox is set: name the mailbox with --mbox PATH");
            return EX_CONFIG;
        }
        None => cfg.mail_spool_directory.join(&user),
    };
    let now = admin::duration::unix_now();
    let archive = output.unwrap_or_else(|| default_archive(cfg, &user, now));
    let opts = admin::archive::Options {
        mbox,
        older_than,
        now,
        archive,
        lock_timeout: Duration::from_secs(30),
    };
    match admin::archive::archive(&opts) {
        Ok(o) => {
            print_outcome(&opts.mbox, &o, json);
            0
        }
        Err(e) => fatal("mailbox", &format!("{}: {e}", opts.mbox.display())),
    }
}

fn default_archive(cfg: &Config, user: &str, now: u64) -> PathBuf {
    let stamp = chrono::DateTime::from_timestamp(now as i64, 0)
        .map(|d| d.format("%Y%m%d-%H%M%S").to_string())
        .unwrap_or_default();
    cfg.data_directory
        .join("archive")
        .join(format!("{user}-{stamp}.mbox.gz"))
}

fn print_outcome(mbox: &Path, o: &admin::archive::Outcome, json: bool) {
    if json {
        let v = serde_json::json!({
            "mailbox": mbox, "archived": o.archived, "kept": o.kept,
            "archive": o.archive, "bytes_before": o.bytes_before, "bytes_after": o.bytes_after,
        });
        println!("{v}");
    } else if let Some(a) = &o.archive {
        println!(
            "mailbox: {}: {} messages archived to {}, {} kept ({} -> {} bytes)",
            mbox.display(),
            o.archived,
            a.display(),
            o.kept,
            o.bytes_before,
            o.bytes_after
        );
    } else {
        println!(
            "mailbox: {}: nothing to archive ({} messages kept)",
            mbox.display(),
            o.kept
        );
    }
}
