//! `mailroom mailbox archive USER [--older-than 30d]`: old messages of an mbox moved to a
//! gzip archive under the mailbox locks (`admin::archive`), the rest kept with its owner,
//! group and mode; old messages of a Maildir moved one rename each into an archive Maildir
//! (`admin::archive::maildir`, default the `.Archive` folder inside it).
//!
//! USER names the mailbox the way delivery finds it: `user@domain` in a virtual mailbox
//! domain is looked up in `virtual_mailbox_maps` (under `virtual_mailbox_base`); with
//! `home_mailbox` set, `$HOME/<home_mailbox>` of the passwd user; else
//! `mail_spool_directory/USER`. `--mbox PATH` names it directly (a directory is a Maildir).
//! Exit 0 = done (also when nothing was old enough), 75 = mailbox busy or unreadable,
//! 78 = the mailbox cannot be found from the configuration.

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
    /// Move old messages of USER's mailbox (mbox: to a gzip archive, under the mailbox
    /// locks; Maildir: to an archive Maildir); USER may be a virtual user@domain.
    Archive {
        user: String,
        /// Archive messages at least this old (90s, 15m, 2h, 30d, 1w).
        #[arg(long, default_value = "30d")]
        older_than: String,
        /// The archive file (default: <data_directory>/archive/USER-YYYYmmdd-HHMMSS.mbox.gz);
        /// for a Maildir the archive Maildir (default: MAILDIR/.Archive).
        #[arg(long)]
        output: Option<PathBuf>,
        /// The mailbox (default: found from USER as delivery finds it); a directory is a Maildir.
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
    let (mailbox, maildir) = match mbox {
        Some(path) => {
            let maildir = path.is_dir();
            (path, maildir)
        }
        None => match locate(cfg, &user) {
            Ok(found) => found,
            Err(e) => {
                eprintln!("mailbox: fatal: {e}");
                return EX_CONFIG;
            }
        },
    };
    let now = admin::duration::unix_now();
    if maildir {
        return archive_maildir(mailbox, older_than, now, output, json);
    }
    let archive = output.unwrap_or_else(|| default_archive(cfg, &user, now));
    let opts = admin::archive::Options {
        mbox: mailbox,
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

fn archive_maildir(
    maildir: PathBuf,
    older_than: u64,
    now: u64,
    output: Option<PathBuf>,
    json: bool,
) -> u8 {
    if output
        .as_ref()
        .is_some_and(|o| o.to_string_lossy().ends_with(".gz"))
    {
        eprintln!("mailbox: fatal: a Maildir is archived into a Maildir: give --output DIR");
        return EX_CONFIG;
    }
    let opts = admin::archive::maildir::Options {
        maildir,
        older_than,
        now,
        archive: output,
    };
    match admin::archive::maildir::archive(&opts) {
        Ok(o) => {
            print_outcome(&opts.maildir, &o, json);
            0
        }
        Err(e) => fatal("mailbox", &format!("{}: {e}", opts.maildir.display())),
    }
}

/// The mailbox of USER as delivery finds it, and whether it is a Maildir.
fn locate(cfg: &Config, user: &str) -> Result<(PathBuf, bool), String> {
    if user.contains('@') {
        let settings = agents::VirtualSettings::from_config(cfg);
        let agent = agents::VirtualAgent::new(settings).map_err(|e| e.to_string())?;
        return agent.mailbox_location(user).ok_or_else(|| {
            format!("{user}: not a user of a virtual mailbox domain (virtual_mailbox_maps)")
        });
    }
    let home_mailbox = cfg.home_mailbox.trim();
    if home_mailbox.is_empty() {
        return Ok((cfg.mail_spool_directory.join(user), false));
    }
    // As local delivery chooses: $HOME only for a passwd user whose files we may write as
    // them (root, or that user), else the spool location (a Maildir too with a trailing /).
    let me = sys::effective_uid();
    let account = sys::user_by_name(user)
        .map_err(|e| format!("cannot look up user {user}: {e}"))?
        .filter(|a| me == 0 || a.uid == me);
    let path = match account {
        Some(account) => account.home.join(home_mailbox),
        None => cfg.mail_spool_directory.join(user),
    };
    Ok((path, home_mailbox.ends_with('/')))
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
    if let Some(w) = &o.owner_warning {
        eprintln!("mailbox: warning: {w}");
    }
    if json {
        let v = serde_json::json!({
            "mailbox": mbox, "archived": o.archived, "kept": o.kept,
            "archive": o.archive, "bytes_before": o.bytes_before, "bytes_after": o.bytes_after,
            "owner_warning": o.owner_warning,
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
