//! `mailroom check [--fix] [--json]`: owners and modes of the store, the configuration and
//! the listeners against the profile's table (`admin::check`); `--fix` repairs them, never
//! through a symbolic link. The address rewriting maps (canonical, virtual, relocated,
//! generic) are opened too: each bad line is an error naming `file:line`; so are the
//! `smtpd_*_restrictions` lists (an unknown restriction, a table that does not open), and
//! `transport_maps` (a bad line, a transport that is neither built in nor in `transports`). Exit 0 = no error left (warnings are printed), 1 = errors; a
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

/// The rewriting maps that do not open: one problem per bad line, as the daemon would
/// refuse to start on them.
fn map_problems(cfg: &Config) -> Vec<admin::check::Problem> {
    let Err(e) = rewrite::Rewriter::from_config(cfg) else {
        return Vec::new();
    };
    let problems = match &e {
        maps::MapError::Syntax(lines) => lines
            .iter()
            .map(|p| (p.origin.clone(), p.to_string()))
            .collect(),
        other => vec![(String::new(), other.to_string())],
    };
    problems
        .into_iter()
        .map(|(path, what)| {
            admin::check::Problem::unrepairable(
                path,
                what,
                "correct the map (mailroom postmap MAP shows each bad line)",
            )
        })
        .collect()
}

/// Restriction lists the SMTP server could not use as written (an unknown name, a missing
/// argument, an access table that does not open): it would answer 451 4.3.5 where they
/// are reached.
fn restriction_problems(cfg: &Config) -> Vec<admin::check::Problem> {
    smtpd::restrictions::Restrictions::from_config(cfg)
        .problems
        .into_iter()
        .map(|problem| {
            let (parameter, what) = problem.split_once(": ").unwrap_or(("", &problem));
            admin::check::Problem::unrepairable(
                parameter.to_string(),
                what.to_string(),
                "correct the restriction list (Postfix syntax: name [argument], ...)",
            )
        })
        .collect()
}

/// `transport_maps` the scheduler could not route by (a bad line, a transport neither built
/// in nor declared in `transports`): the daemon would refuse to start on it.
fn routing_problems(cfg: &Config) -> Vec<admin::check::Problem> {
    let Err(e) = sched::route::Router::new(&sched::route::Routing::from_config(cfg)) else {
        return Vec::new();
    };
    let (path, what) = e.split_once(": ").unwrap_or(("", &e));
    vec![admin::check::Problem::unrepairable(
        path.to_string(),
        what.to_string(),
        "correct the transport map, or declare the transport in transports = { NAME = \"smtp\" }",
    )]
}

/// `mailroom check`: a configuration that does not parse is reported by the loader (78).
fn check(cfg: &Config, args: Args) -> u8 {
    let mut report = admin::check::check(&admin::Settings::from_config(cfg), daemon_up(cfg));
    if args.fix {
        admin::check::fix(&mut report);
    }
    report.problems.extend(map_problems(cfg));
    report.problems.extend(restriction_problems(cfg));
    report.problems.extend(routing_problems(cfg));
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
