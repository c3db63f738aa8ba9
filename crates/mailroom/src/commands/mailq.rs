//! `mailroom mailq`, `mailq`, `postqueue -p|-j`, `sendmail -bp`: the queue as Postfix shows it
//! (layouts in `admin::showq`), streamed: each message is written as it arrives, so the first
//! line is out at once and memory stays flat whatever the queue's size.
//!
//! While the daemon runs, the listing comes from it over the control socket (its index is in
//! memory; nothing re-reads the log), as compact row lines (`admin::rowline`) formatted here;
//! a user other than the queue owner gets it through the public socket `showq.sock`. With the
//! daemon down, from a lock-free snapshot of the log. Files still waiting in `maildrop/` are
//! listed too, as queue `maildrop`.

use crate::daemon::execute;
use crate::edge::{fatal, with_config};
use admin::protocol::{Event, Request};
use admin::showq::{JsonWriter, TextWriter};
use admin::Selector;
use config::Config;
use std::ffi::OsString;
use std::io::{self, BufWriter};
use std::os::fd::AsFd;
use std::path::Path;

/// List the queue like Postfix's mailq.
#[derive(clap::Args)]
pub struct Args {
    /// One JSON object per message, like `postqueue -j`.
    #[arg(long)]
    json: bool,
    /// Every node of the fleet (`fleet_redis_url`), merged, through their HTTP APIs.
    #[arg(long)]
    fleet: bool,
}

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    match args.fleet {
        true => with_config(config, |cfg| {
            crate::commands::fleet_views::mailq(cfg, args.json)
        }),
        false => with_config(config, |cfg| list(cfg, args.json)),
    }
}

/// Called as `mailq`: `--json` or `-j` for JSON, every other flag ignored as Postfix's mailq does.
pub fn run_as_mailq(args: Vec<OsString>) -> u8 {
    let json = args.iter().any(|a| a == "--json" || a == "-j");
    if args.iter().any(|a| a == "--fleet") {
        return with_config(None, |cfg| crate::commands::fleet_views::mailq(cfg, json));
    }
    with_config(None, |cfg| list(cfg, json))
}

/// While the log is read (daemon down), nothing is written for seconds at a million
/// messages: a reader that has gone (`mailq | head -1`) is noticed here, as a broken pipe.
fn reader_still_there() -> io::Result<()> {
    if sys::reader_gone(io::stdout().as_fd()) {
        return Err(io::ErrorKind::BrokenPipe.into());
    }
    Ok(())
}

/// Lists every message.
pub fn list(cfg: &Config, json: bool) -> u8 {
    let stdout = io::stdout();
    let out = BufWriter::with_capacity(64 << 10, stdout.lock());
    let request = Request::List {
        selector: Selector::default(),
        compact_rows: true,
    };
    let outcome = if json {
        let mut lines = JsonWriter::new(out);
        let r = execute(cfg, &request, None, |e| match e {
            Event::Row(row) => lines.row(&row),
            Event::Scanning { .. } => reader_still_there(),
            _ => Ok(()),
        });
        r.and_then(|n| lines.finish().map(|_| n).map_err(|e| e.to_string()))
    } else {
        let mut text = TextWriter::new(out);
        let r = execute(cfg, &request, None, |e| match e {
            Event::Row(row) => text.row(&row),
            Event::Scanning { not_empty } => {
                if not_empty {
                    text.heading()?;
                }
                reader_still_there()
            }
            _ => Ok(()),
        });
        r.and_then(|n| text.finish().map(|_| n).map_err(|e| e.to_string()))
    };
    match outcome {
        Ok(_) => 0,
        // `mailq | head -1`: the reader left; that is not an error worth a message.
        Err(why) if why.contains("Broken pipe") => 0,
        Err(why) => fatal("mailq", &why),
    }
}
