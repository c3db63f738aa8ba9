//! `mailroom config`: the configuration printed like postconf — the effective values, `-n`
//! only those that differ from the default, `-d` the defaults; names limit the output, and
//! an unknown name is a warning and exit 64.

use crate::edge::load_config;
use config::Config;
use envelope::sysexits::EX_USAGE;
use std::path::Path;

/// Print the configuration like postconf: effective (default), -n non-default, -d defaults.
#[derive(clap::Args)]
pub struct Args {
    #[arg(short = 'n', conflicts_with = "defaults")]
    non_default: bool,
    #[arg(short = 'd')]
    defaults: bool,
    /// Only these parameters.
    names: Vec<String>,
}

pub fn run(path: Option<&Path>, args: Args) -> u8 {
    let cfg = match load_config(path, "mailroom") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let shown = if args.defaults {
        match cfg.profile {
            config::Profile::System => Config::system_default(),
            _ => Config::embedded_default(),
        }
    } else {
        cfg
    };
    if args.names.is_empty() {
        let mode = if args.non_default {
            config::PrintMode::NonDefault
        } else {
            config::PrintMode::Effective
        };
        print!("{}", config::render(&shown, mode));
        return 0;
    }
    let mut code = 0;
    for name in &args.names {
        match config::render_one(&shown, name) {
            Some(line) => println!("{line}"),
            None => {
                eprintln!("mailroom: warning: {name}: unknown parameter");
                code = EX_USAGE;
            }
        }
    }
    code
}
