//! `mailroom postmap` and `postmap`: Postfix's lookup-table tool. `-q KEY MAP…` prints the
//! first value the maps have for KEY (exit 0; 1 when none has it or a map is bad);
//! `-q - MAP…` looks up every key read from standard input and prints `key<TAB>value`;
//! `postmap MAP…` checks the maps and prints each bad line as `file:line`.
//!
//! Unlike Postfix, nothing is compiled: mailroom reads the text file itself, so `postmap
//! FILE` after an edit only checks it (the daemon picks the edit up at `reload`).

use crate::edge::{strings, usage};
use maps::{Map, Maps};
use std::ffi::OsString;
use std::io::{self, BufRead, Write};

/// Postfix's postmap: query (-q KEY, -q - for keys on stdin) or check lookup tables.
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

const USAGE: &str = "postmap [-q key | -q -] [type:]file ...";
const NOT_FOUND: u8 = 1;

pub fn run(args: Args) -> u8 {
    run_as_postmap(args.args)
}

pub fn run_as_postmap(args: Vec<OsString>) -> u8 {
    let mut query = None;
    let mut specs = Vec::new();
    let mut it = strings(args).into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-q" => match it.next() {
                Some(k) => query = Some(k),
                None => return usage("postmap", USAGE),
            },
            // Postfix's -c names a configuration directory: a map path never depends on it.
            "-c" => {
                it.next();
            }
            flag if flag.starts_with('-') => {
                return usage("postmap", &format!("unknown option {flag}; {USAGE}"))
            }
            _ => specs.push(a),
        }
    }
    if specs.is_empty() {
        return usage("postmap", USAGE);
    }
    let maps = match open(&specs) {
        Some(m) => m,
        None => return NOT_FOUND,
    };
    match query.as_deref() {
        None => 0,
        Some("-") => query_stdin(&maps),
        Some(key) => match maps.lookup(key) {
            Some(v) => {
                println!("{v}");
                0
            }
            None => NOT_FOUND,
        },
    }
}

/// Opens every map, printing each problem as Postfix's `postmap: fatal:`/`warning:` lines.
fn open(specs: &[String]) -> Option<Maps> {
    let mut maps = Vec::new();
    let mut ok = true;
    for spec in specs {
        match Map::open(spec) {
            Ok(m) => {
                for w in m.warnings() {
                    eprintln!("postmap: warning: {w}");
                }
                maps.push(m);
            }
            Err(e) => {
                for line in e.to_string().lines() {
                    eprintln!("postmap: fatal: {line}");
                }
                ok = false;
            }
        }
    }
    ok.then(|| Maps::from_maps(maps))
}

fn query_stdin(maps: &Maps) -> u8 {
    let mut out = io::stdout().lock();
    let mut found = false;
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let key = line.trim();
        if key.is_empty() {
            continue;
        }
        if let Some(v) = maps.lookup(key) {
            found = true;
            if writeln!(out, "{key}\t{v}").is_err() {
                break;
            }
        }
    }
    if found {
        0
    } else {
        NOT_FOUND
    }
}
