//! `mailroom suspend DEST [--for 2h] [--reason TEXT]`, `mailroom suspend --list [--json]`,
//! `mailroom resume DEST`, and `postqueue -S DEST` / `-U DEST`: pause deliveries to a
//! destination (mail stays queued), list the pauses, end one. Through the daemon when it
//! answers (in force at once), else in the suspension file the daemon reads when it starts
//! (`admin::suspend`).

use admin::suspend;
use config::Config;
use envelope::sysexits::{EX_NOPERM, EX_TEMPFAIL, EX_USAGE};
use queue::suspend::{parse_duration, utc};
use queue::Suspension;
use std::io::Write;
use std::path::Path;

/// Suspend deliveries to a destination (a domain, or a next hop like [10.0.0.1]:2525):
/// its mail stays queued, unattempted, until `mailroom resume` or the end of --for.
#[derive(clap::Args)]
pub struct Args {
    /// The destination: a recipient domain, or [host] / [host]:port as in relayhost.
    #[arg(required_unless_present = "list")]
    destination: Option<String>,
    /// End the suspension by itself after this long (90s, 30m, 2h, 1d); default: until
    /// resumed.
    #[arg(long = "for", value_name = "DURATION")]
    duration: Option<String>,
    /// Why, shown in mailq and doctor.
    #[arg(long, default_value = "")]
    reason: String,
    /// List the suspensions in force instead.
    #[arg(long, conflicts_with_all = ["destination", "duration"])]
    list: bool,
    /// With --list: as JSON.
    #[arg(long, requires = "list")]
    json: bool,
}

/// Resume deliveries to a suspended destination: its mail is delivered at once.
#[derive(clap::Args)]
pub struct ResumeArgs {
    destination: String,
}

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    crate::edge::with_config(config, |cfg| {
        if args.list {
            return list(cfg, args.json);
        }
        let seconds = match args.duration.as_deref().map(parse_duration).transpose() {
            Ok(s) => s,
            Err(why) => {
                eprintln!("mailroom: fatal: --for: {why}");
                return EX_USAGE;
            }
        };
        let destination = args.destination.unwrap_or_default();
        suspend_destination(cfg, "mailroom", &destination, seconds, &args.reason, true)
    })
}

pub fn run_resume(config: Option<&Path>, args: ResumeArgs) -> u8 {
    crate::edge::with_config(config, |cfg| {
        resume_destination(cfg, "mailroom", &args.destination, true)
    })
}

/// Suspends `destination`; `tell` prints what is now in force.
pub fn suspend_destination(
    cfg: &Config,
    program: &str,
    destination: &str,
    seconds: Option<u64>,
    reason: &str,
    tell: bool,
) -> u8 {
    if let Err(why) = queue::suspend::normalize(destination) {
        eprintln!("{program}: fatal: {why}");
        return EX_USAGE;
    }
    match suspend::suspend(&cfg.queue_directory, destination, seconds, reason) {
        Ok(s) => {
            if tell {
                println!("{}: {}", s.destination, s.text());
            }
            0
        }
        Err(why) => failed(program, &why),
    }
}

/// Resumes `destination`; one that was not suspended is no error (nothing to do).
pub fn resume_destination(cfg: &Config, program: &str, destination: &str, tell: bool) -> u8 {
    if let Err(why) = queue::suspend::normalize(destination) {
        eprintln!("{program}: fatal: {why}");
        return EX_USAGE;
    }
    match suspend::resume(&cfg.queue_directory, destination) {
        Ok(true) if tell => {
            println!("{destination}: deliveries resumed");
            0
        }
        Ok(true) => 0,
        Ok(false) => {
            eprintln!("{program}: warning: {destination} was not suspended");
            0
        }
        Err(why) => failed(program, &why),
    }
}

/// 77 when the file or socket is not ours to change, else 75.
fn failed(program: &str, why: &str) -> u8 {
    eprintln!("{program}: fatal: cannot change the suspended destinations: {why}");
    if why.contains("Permission denied") {
        EX_NOPERM
    } else {
        EX_TEMPFAIL
    }
}

fn list(cfg: &Config, json: bool) -> u8 {
    let all = match suspend::list(&cfg.queue_directory) {
        Ok(all) => all,
        Err(why) => return crate::edge::fatal("mailroom", &why),
    };
    let mut out = std::io::stdout().lock();
    let _ = if json {
        serde_json::to_writer_pretty(&mut out, &all)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        write_table(&mut out, &all)
    };
    0
}

fn write_table(out: &mut impl Write, all: &[Suspension]) -> std::io::Result<()> {
    if all.is_empty() {
        return writeln!(out, "No destination is suspended");
    }
    writeln!(out, "{:<30} {:<24} REASON", "DESTINATION", "UNTIL")?;
    for s in all {
        let until = s.until.map(utc).unwrap_or_else(|| "resumed".into());
        writeln!(out, "{:<30} {:<24} {}", s.destination, until, s.reason)?;
    }
    Ok(())
}
