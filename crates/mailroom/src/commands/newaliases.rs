//! `mailroom newaliases` and `newaliases`: check the alias files (counting the aliases, as
//! Postfix's newaliases reports them) and ask a running daemon to reload them.

use crate::daemon;
use crate::edge::load_config;
use admin::protocol::Command;
use envelope::sysexits::EX_CONFIG;
use std::path::Path;

/// Check the alias files and make a running daemon reload them (like newaliases).
#[derive(clap::Args)]
pub struct Args {}

pub fn run(path: Option<&Path>, _: Args) -> u8 {
    run_as_newaliases(path)
}

pub fn run_as_newaliases(path: Option<&Path>) -> u8 {
    let cfg = match load_config(path, "newaliases") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match agents::check_aliases(&cfg.alias_maps) {
        Ok(n) => {
            println!("newaliases: {n} aliases");
            // A running daemon reloads on request; a stopped one reads the files at start.
            let _ = daemon::send(&cfg, &Command::Reload);
            0
        }
        Err(e) => {
            eprintln!("newaliases: fatal: {e}");
            EX_CONFIG
        }
    }
}
