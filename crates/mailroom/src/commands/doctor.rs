//! `mailroom doctor [--json]`: the one-screen health report (`admin::doctor`) from the
//! daemon's state, the queue statistics and `check`; exit 0/1/2 = ok/warn/critical.

use crate::daemon::{daemon_up, execute};
use admin::protocol::{Event, Request};
use config::Config;
use std::io::{self, Write};
use std::path::Path;

/// One-screen health report; exit 0/1/2 = ok/warn/critical.
#[derive(clap::Args)]
pub struct Args {
    /// The report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    crate::edge::with_config(config, |cfg| doctor(cfg, args))
}

/// `mailroom doctor`.
fn doctor(cfg: &Config, args: Args) -> u8 {
    let up = daemon_up(cfg);
    let mut stats = None;
    let _ = execute(cfg, &Request::Stats, None, |e| {
        if let Event::Stats(s) = e {
            stats = Some(s);
        }
        Ok(())
    });
    let settings = admin::Settings::from_config(cfg);
    let check = admin::check::check(&settings, up);
    let inputs = admin::doctor::Inputs {
        cfg: &settings,
        daemon_up: up,
        stats,
        check: &check,
        now: admin::duration::unix_now(),
        suspended: admin::suspend::list(&cfg.queue_directory).unwrap_or_default(),
        history: admin::history::read(&settings.layout.history()).unwrap_or_default(),
    };
    let report = admin::doctor::diagnose(&inputs);
    let mut out = io::stdout().lock();
    if args.json {
        let _ = serde_json::to_writer_pretty(&mut out, &report);
        let _ = writeln!(out);
    } else {
        let _ = admin::doctor::write_text(&mut out, &report, &settings);
    }
    report.level.exit_code()
}
