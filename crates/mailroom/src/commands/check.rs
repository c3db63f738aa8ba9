//! `mailroom check [--fix] [--json]`: owners and modes of the store, the configuration and
//! the listeners against the profile's table (`admin::check`); `--fix` repairs them, never
//! through a symbolic link. Exit 0 = no error left (warnings are printed), 1 = errors; a
//! configuration that does not parse is reported by the loader (78).

use crate::daemon::daemon_up;
use config::Config;
use std::io::{self, Write};
use std::path::Path;

/// Check owners and modes of the store, the configuration and the listeners (--fix repairs).
#[derive(clap::Args)]
pub struct Args {
    /// Repair owners and modes (never through a symbolic link).
    #[arg(long)]
    fix: bool,
    /// The problems as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    crate::edge::with_config(config, |cfg| check(cfg, args))
}

/// `mailroom check`: a configuration that does not parse is reported by the loader (78).
fn check(cfg: &Config, args: Args) -> u8 {
    let mut report = admin::check::check(&admin::Settings::from_config(cfg), daemon_up(cfg));
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
