//! `mailroom qshape` and `qshape`: Postfix's age distribution per destination domain
//! (`-s` per sender domain, `-p` parent domains, `-b N` buckets, `-t MIN` the first bucket,
//! `-l` linear buckets, `-w` width, `--json`), over the queues named as arguments (`all` =
//! every queue; default incoming and active). The matrix is computed where the index lives
//! (the daemon, else a snapshot); the layout is `admin::qshape`'s.

use crate::daemon::execute;
use crate::edge::{fatal, load_config, strings, take_config, usage};
use admin::protocol::{Event, Request};
use envelope::sysexits::EX_SOFTWARE;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;

/// Postfix's qshape: age distribution per domain (-s senders, -p parents, -b N, -t MIN, --json, --fleet).
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

const USAGE: &str =
    "qshape [-s] [-p] [-l] [-m min_subdomains] [-b buckets] [-t minutes] [-w width] [--json] [--fleet] [queue ...]";

/// `qshape`: Postfix's flags, queue names as arguments (`all` = every queue).
pub fn run(config: Option<&Path>, args: Args) -> u8 {
    run_as_qshape(config, args.args)
}

pub fn run_as_qshape(config: Option<&Path>, args: Vec<OsString>) -> u8 {
    let mut args = strings(args);
    let config = take_config(&mut args, config);
    let fleet = args.iter().any(|a| a == "--fleet");
    args.retain(|a| a != "--fleet");
    let (options, json, mut queues) = match qshape_args(args) {
        Ok(parsed) => parsed,
        Err(why) => return usage("qshape", &format!("{why}; {USAGE}")),
    };
    if queues.is_empty() {
        queues = vec![admin::row::State::Incoming, admin::row::State::Active];
    }
    let cfg = match load_config(config.as_deref(), "qshape") {
        Ok(c) => c,
        Err(code) => return code,
    };
    if fleet {
        return crate::commands::fleet_views::qshape(&cfg, options, &queues, json);
    }
    let width = options.width;
    let request = Request::Qshape { options, queues };
    let mut shape = None;
    let result = execute(&cfg, &request, None, |e| {
        if let Event::Shape(s) = e {
            shape = Some(s);
        }
        Ok(())
    });
    if let Err(why) = result {
        return fatal("qshape", &why);
    }
    let Some(shape) = shape else {
        return fatal("qshape", "no answer");
    };
    let mut out = io::stdout().lock();
    let written = if json {
        serde_json::to_writer(&mut out, &shape)
            .map_err(io::Error::other)
            .and_then(|_| writeln!(out))
    } else {
        admin::qshape::write_text(&mut out, &shape, width)
    };
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => EX_SOFTWARE,
        _ => 0,
    }
}

type QshapeArgs = (admin::qshape::Options, bool, Vec<admin::row::State>);

fn qshape_args(args: Vec<String>) -> Result<QshapeArgs, String> {
    use admin::row::State;
    let mut options = admin::qshape::Options::default();
    let (mut json, mut queues) = (false, Vec::new());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut number = |what: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        match a.as_str() {
            "-s" => options.senders = true,
            "-p" => options.parents = true,
            "-l" => options.linear = true,
            "--json" => json = true,
            "-m" => options.min_subdomains = number("-m")?,
            "-b" => options.buckets = number("-b")? as usize,
            "-t" => options.tick_minutes = number("-t")?,
            "-w" => options.width = number("-w")? as usize,
            "all" => queues.extend(State::ALL),
            q => queues.push(State::parse(q).ok_or_else(|| format!("unknown queue {q}"))?),
        }
    }
    Ok((options, json, queues))
}
