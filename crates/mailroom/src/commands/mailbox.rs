//! `mailroom mailbox archive USER [--older-than 30d]`: old messages of an mbox moved to a
//! gzip archive under the mailbox locks (`admin::archive`), the rest kept with its owner,
//! group and mode. Exit 0 = done (also when nothing was old enough), 75 = mailbox busy or
//! unreadable, 78 = `home_mailbox` is set and no `--mbox` was given.

use crate::edge::fatal;
use config::Config;
use envelope::sysexits::EX_CONFIG;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Mailbox maintenance: archive USER [--older-than 30d].
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Move old messages of USER's mbox to a gzip archive, under the mailbox locks.
    Archive {
        user: String,
        /// Archive messages at least this old (90s, 15m, 2h, 30d, 1w).
        #[arg(long, default_value = "30d")]
        older_than: String,
        /// The archive file (default: <data_directory>/archive/USER-YYYYmmdd-HHMMSS.mbox.gz).
        #[arg(long)]
        output: Option<PathBuf>,
        /// The mbox (default: <mail_spool_directory>/USER).
        #[arg(long)]
        mbox: Option<PathBuf>,
        /// The result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    crate::edge::with_config(config, |cfg| mailbox(cfg, args.action))
}

fn mailbox(cfg: &Config, action: Action) -> u8 {
    let Action::Archive {
        user,
        older_than,
        output,
        mbox,
        json,
    } = action;
    let older_than = match admin::duration::parse_seconds(&older_than) {
        Ok(s) => s,
        Err(e) => return fatal("mailbox", &e),
    };
    if user.is_empty() || user.contains('/') || user.starts_with('.') {
        return fatal("mailbox", &format!("bad user name {user:?}"));
    }
    let mbox = match mbox {
        Some(m) => m,
        None if !cfg.home_mailbox.is_empty() => {
            eprintln!("mailbox: fatal: home_mailbox is set: name the mailbox with --mbox PATH");
            return EX_CONFIG;
        }
        None => cfg.mail_spool_directory.join(&user),
    };
    let now = admin::duration::unix_now();
    let archive = output.unwrap_or_else(|| default_archive(cfg, &user, now));
    let opts = admin::archive::Options {
        mbox,
        older_than,
        now,
        archive,
        lock_timeout: Duration::from_secs(30),
    };
    match admin::archive::archive(&opts) {
        Ok(o) => {
            print_outcome(&opts.mbox, &o, json);
            0
        }
        Err(e) => fatal("mailbox", &format!("{}: {e}", opts.mbox.display())),
    }
}

fn default_archive(cfg: &Config, user: &str, now: u64) -> PathBuf {
    let stamp = chrono::DateTime::from_timestamp(now as i64, 0)
        .map(|d| d.format("%Y%m%d-%H%M%S").to_string())
        .unwrap_or_default();
    cfg.data_directory
        .join("archive")
        .join(format!("{user}-{stamp}.mbox.gz"))
}

fn print_outcome(mbox: &Path, o: &admin::archive::Outcome, json: bool) {
    if json {
        let v = serde_json::json!({
            "mailbox": mbox, "archived": o.archived, "kept": o.kept,
            "archive": o.archive, "bytes_before": o.bytes_before, "bytes_after": o.bytes_after,
        });
        println!("{v}");
    } else if let Some(a) = &o.archive {
        println!(
            "mailbox: {}: {} messages archived to {}, {} kept ({} -> {} bytes)",
            mbox.display(),
            o.archived,
            a.display(),
            o.kept,
            o.bytes_before,
            o.bytes_after
        );
    } else {
        println!(
            "mailbox: {}: nothing to archive ({} messages kept)",
            mbox.display(),
            o.kept
        );
    }
}
