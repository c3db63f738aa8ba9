//! `postsuper`: Postfix's command line plus selectors.
//!
//! ```text
//! postsuper [-c config] -d|-h|-H|-r (queue_id | ALL | -) ... [queue ...]
//!           [--from ADDR] [--to ADDR] [--domain DOMAIN] [--older-than 2h] [--queue Q]
//!           [--reason REGEX] [--dry-run] [--json]
//! ```
//! `-` reads queue IDs from standard input, one per line (`mailq | awk … | postsuper -d -`,
//! or `postqueue -j | jq -r .queue_id | postsuper -d -`). Queue names after the IDs restrict
//! the operation as in Postfix (`postsuper -d ALL deferred`). Selectors alone mean `ALL`.
//! Output as Postfix: `postsuper: ID: removed` per named message and `postsuper: Deleted: N
//! messages` on standard error; `--dry-run` lists the matching messages on standard output
//! (queue IDs, or `postqueue -j` lines with `--json`) and changes nothing. A progress bar is
//! drawn on a terminal only.

use crate::daemon::execute;
use crate::edge::{fatal, load_config};
use admin::protocol::{Event, Request};
use admin::row::State;
use admin::superop::{self, Action};
use admin::Selector;
use envelope::sysexits::EX_USAGE;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const USAGE: &str = "postsuper [-c config] -d|-h|-H|-r queue_id|ALL|- ... [queue ...] \
[--from A] [--to A] [--domain D] [--older-than 2h] [--queue Q] [--reason RE] [--dry-run] [--json]";

/// Postfix's postsuper: -d/-h/-H/-r ID|ALL|- [queue], plus --from/--to/--domain/--older-than/--reason/--dry-run.
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

#[derive(Default)]
struct Parsed {
    config: Option<PathBuf>,
    ops: Vec<(Action, String)>,
    selector: Selector,
    dry_run: bool,
    json: bool,
}

fn parse(args: Vec<OsString>, config: Option<&Path>) -> Result<Parsed, String> {
    let mut p = Parsed {
        config: config.map(Path::to_path_buf),
        ..Default::default()
    };
    let mut it = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "-d" => p.ops.push((Action::Delete, value("-d")?)),
            "-h" => p.ops.push((Action::Hold, value("-h")?)),
            "-H" => p.ops.push((Action::Release, value("-H")?)),
            "-r" => p.ops.push((Action::Requeue, value("-r")?)),
            "-c" | "-C" => p.config = Some(PathBuf::from(value(&a)?)),
            "-p" | "-s" | "-S" | "-v" => {} // Postfix's file-system repairs: nothing to do here
            "--from" => p.selector.from = Some(value(&a)?),
            "--to" => p.selector.to = Some(value(&a)?),
            "--domain" => p.selector.domain = Some(value(&a)?),
            "--reason" => p.selector.reason = Some(value(&a)?),
            "--older-than" => {
                let v = value(&a)?;
                p.selector.older_than = Some(admin::duration::parse_seconds(&v)?);
            }
            "--queue" => queue_name(&value(&a)?, &mut p.selector)?,
            "--dry-run" => p.dry_run = true,
            "--json" => p.json = true,
            q => queue_name(q, &mut p.selector)?,
        }
    }
    if p.ops.is_empty() {
        return Err("no operation (-d, -h, -H or -r)".into());
    }
    Ok(p)
}

fn queue_name(name: &str, selector: &mut Selector) -> Result<(), String> {
    match State::parse(name) {
        Some(s) => {
            selector.queues.push(s);
            Ok(())
        }
        None => Err(format!("unknown argument or queue name: {name}")),
    }
}

/// One request per action, in the order the actions were first named.
fn requests(p: &Parsed) -> Vec<superop::Request> {
    let mut out: Vec<superop::Request> = Vec::new();
    for (action, target) in &p.ops {
        let i = match out.iter().position(|r| r.action == *action) {
            Some(i) => i,
            None => {
                out.push(superop::Request {
                    action: *action,
                    all: false,
                    ids: Vec::new(),
                    ids_follow: false,
                    selector: p.selector.clone(),
                    dry_run: p.dry_run,
                });
                out.len() - 1
            }
        };
        match target.as_str() {
            "ALL" => out[i].all = true,
            "-" => out[i].ids_follow = true,
            id => out[i].ids.push(id.to_string()),
        }
    }
    out
}

/// Root, or the owner of the queue (Postfix allows root only; in mailroom's embedded
/// profile the queue belongs to the user running it, who must be able to manage it).
fn may_change_the_queue(cfg: &config::Config) -> bool {
    use std::os::unix::fs::MetadataExt;
    let uid = sys::real_uid();
    uid == 0 || std::fs::metadata(&cfg.queue_directory).map_or(true, |meta| meta.uid() == uid)
}

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    run_as_postsuper(config, args.args)
}

pub fn run_as_postsuper(config: Option<&Path>, args: Vec<OsString>) -> u8 {
    let parsed = match parse(args, config) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("postsuper: fatal: {why}\npostsuper: usage: {USAGE}");
            return EX_USAGE;
        }
    };
    let cfg = match load_config(parsed.config.as_deref(), "postsuper") {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !may_change_the_queue(&cfg) {
        // Postfix's words and status (msg_fatal: 1), before any attempt that would only
        // end in an os error.
        eprintln!("postsuper: fatal: use of this command is reserved for the superuser");
        return 1;
    }
    crate::edge::open_tool_log(&cfg, "postsuper");
    for request in requests(&parsed) {
        let ids: Option<Box<dyn io::Read + Send>> = request
            .ids_follow
            .then(|| Box::new(io::stdin()) as Box<dyn io::Read + Send>);
        let progress = admin::progress::Progress::new(request.action.summary_word());
        let mut stdout = io::BufWriter::new(io::stdout().lock());
        let json = parsed.json;
        let result = execute(&cfg, &Request::Super(request), ids, |event| {
            match event {
                Event::Row(row) if json => admin::showq::write_json(&mut stdout, &row)?,
                Event::Row(row) => writeln!(stdout, "{}", row.queue_id)?,
                Event::Progress { done, total } => progress.update(done, total),
                Event::Done { id, what } => {
                    // Postfix's postsuper line in the mail log: `ID: removed`.
                    tracing::info!(target: "postsuper", "{id}: {what}");
                    eprintln!("postsuper: {id}: {what}");
                }
                Event::Warning(w) => eprintln!("postsuper: warning: {w}"),
                Event::Summary(s) => {
                    progress.finish();
                    stdout.flush()?;
                    if let Some(line) = s.line() {
                        tracing::info!(target: "postsuper", "{line}");
                        eprintln!("postsuper: {line}");
                    }
                }
                _ => {}
            }
            Ok(())
        });
        progress.finish();
        let _ = stdout.flush();
        if let Err(why) = result {
            return fatal("postsuper", &why);
        }
    }
    0
}
