//! `mailroom import-postfix [--dry-run] [--config-dir DIR] [--main-cf FILE] [--queue-dir DIR]
//! [--json]`: take over from a stopped Postfix. Writes mailroom.toml (`-c FILE`, default
//! /etc/mailroom/mailroom.toml) from `main.cf`/`master.cf`, then moves Postfix's queue into
//! the mailroom store. The work is `admin::import`; this file is the glue and the report.
//!
//! Exit codes: 0 done; 65 (EX_DATAERR) some queue files were left in place (named in the
//! report); 75 (EX_TEMPFAIL) Postfix or mailroom is running, or the store cannot be opened;
//! 78 (EX_CONFIG) the resulting configuration does not load; 66 (EX_NOINPUT) no main.cf.

use admin::import::postfix_queue::{self, Action, FileReport, Target};
use admin::import::settings::{self, Decision, Outcome};
use admin::import::{master_cf, postfix_running};
use config::Config;
use envelope::sysexits::{EX_CONFIG, EX_DATAERR, EX_TEMPFAIL};
use queue::{Snapshot, Store, StoreError};
use serde::Serialize;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const EX_NOINPUT: u8 = 66;

/// Import Postfix's configuration and queue (Postfix must be stopped).
#[derive(clap::Args)]
pub struct Args {
    /// Print what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Postfix's configuration directory (main.cf, master.cf).
    #[arg(long, value_name = "DIR", default_value = "/etc/postfix")]
    config_dir: PathBuf,
    /// Read main.cf parameters from FILE instead (`-` = standard input), e.g. `postconf -n` output.
    #[arg(long, value_name = "FILE")]
    main_cf: Option<PathBuf>,
    /// Postfix's queue directory [default: main.cf's queue_directory, else /var/spool/postfix].
    #[arg(long, value_name = "DIR")]
    queue_dir: Option<PathBuf>,
    /// The report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ConfigReport {
    path: PathBuf,
    /// The file differs (or would differ) from what it was.
    changed: bool,
    written: bool,
    parameters: Vec<Decision>,
}

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    match import(config, &args) {
        Ok(code) => code,
        Err((code, why)) => {
            eprintln!("mailroom: fatal: import-postfix: {why}");
            code
        }
    }
}

type Failure = (u8, String);

fn import(config: Option<&Path>, args: &Args) -> Result<u8, Failure> {
    let params = settings::parse_main_cf(&read_main_cf(args)?);
    let queue_dir = postfix_queue_dir(args, &params);
    let running = postfix_running(&queue_dir)
        .map_err(|e| (EX_TEMPFAIL, format!("{}: {e}", queue_dir.display())))?;
    match (running, args.dry_run) {
        (Some(what), false) => {
            return Err((EX_TEMPFAIL, format!("{what}; stop it first (postfix stop)")))
        }
        (Some(what), true) => eprintln!("mailroom: warning: {what}; the import would refuse"),
        _ => {}
    }
    let path = output_path(config);
    let (cfg, config_report) = import_settings(&path, args, &params)?;
    let mut printer = Printer::new(args.json, args.dry_run);
    printer.start(&config_report);
    let counts = import_queue(&cfg, &queue_dir, args.dry_run, &mut printer)?;
    printer.finish(&counts);
    Ok(if counts.left > 0 { EX_DATAERR } else { 0 })
}

/// The mailroom.toml to write: the one every other command would read (`-c`, else
/// `$MAILROOM_CONFIG`, else /etc/mailroom/mailroom.toml), so the imported queue lands in
/// the store the daemon will open.
fn output_path(explicit: Option<&Path>) -> PathBuf {
    let from_env = std::env::var_os("MAILROOM_CONFIG").filter(|v| !v.is_empty());
    match (explicit, from_env) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(path)) => PathBuf::from(path),
        (None, None) => PathBuf::from(config::SYSTEM_CONFIG_PATH),
    }
}

/// main.cf + master.cf → mailroom.toml (merged into an existing one), and the loaded result.
fn import_settings(
    path: &Path,
    args: &Args,
    params: &[(String, String)],
) -> Result<(Config, ConfigReport), Failure> {
    let mut decisions = settings::decide_main_cf(params);
    // Without a master.cf nothing says where Postfix listened: the listeners stay mailroom's
    // (an empty smtpd_listen would silently turn SMTP off).
    let master_path = args.config_dir.join("master.cf");
    match std::fs::read_to_string(&master_path) {
        Ok(master) => {
            let services = master_cf::parse_master_cf(&master);
            decisions.extend(master_cf::decide_master_cf(&services, params));
        }
        Err(e) => decisions.push(Decision {
            name: "master.cf".to_string(),
            value: master_path.display().to_string(),
            outcome: Outcome::Ignored,
            why: Some(format!(
                "cannot read it ({e}); the listeners stay mailroom's"
            )),
        }),
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err((EX_CONFIG, format!("{}: {e}", path.display()))),
    };
    let text = settings::merge(existing.as_deref(), &mut decisions)
        .map_err(|e| (EX_CONFIG, format!("{}: {e}", path.display())))?;
    let cfg = Config::from_str(&text, Some(path)).map_err(|e| {
        (
            EX_CONFIG,
            format!("the imported configuration does not load: {e}"),
        )
    })?;
    let changed = existing.as_deref() != Some(text.as_str());
    let written = changed && !args.dry_run;
    if written {
        settings::write_config(path, &text)
            .map_err(|e| (EX_CONFIG, format!("cannot write {}: {e}", path.display())))?;
    }
    let report = ConfigReport {
        path: path.to_path_buf(),
        changed,
        written,
        parameters: decisions,
    };
    Ok((cfg, report))
}

/// `--queue-dir`, else the `queue_directory` main.cf sets, else Postfix's default.
fn postfix_queue_dir(args: &Args, params: &[(String, String)]) -> PathBuf {
    let from_main_cf = params
        .iter()
        .find(|(name, value)| name == "queue_directory" && value.starts_with('/'))
        .map(|(_, value)| PathBuf::from(value));
    args.queue_dir
        .clone()
        .or(from_main_cf)
        .unwrap_or_else(|| PathBuf::from("/var/spool/postfix"))
}

fn read_main_cf(args: &Args) -> Result<String, Failure> {
    let path = args
        .main_cf
        .clone()
        .unwrap_or_else(|| args.config_dir.join("main.cf"));
    let mut text = String::new();
    let result = if path == Path::new("-") {
        io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(&path).map(|t| text = t)
    };
    result.map_err(|e| (EX_NOINPUT, format!("{}: {e}", path.display())))?;
    Ok(text)
}

/// Every Postfix queue file → the store (or, dry, what would happen to it), one at a time.
fn import_queue(
    cfg: &Config,
    queue_dir: &Path,
    dry_run: bool,
    printer: &mut Printer,
) -> Result<Counts, Failure> {
    let mut counts = Counts::default();
    if !queue_dir.is_dir() {
        let dir = queue_dir.display();
        eprintln!("mailroom: import-postfix: no Postfix queue at {dir}; nothing to move");
        return Ok(counts);
    }
    let unreadable = |e: io::Error| (EX_TEMPFAIL, format!("{}: {e}", queue_dir.display()));
    let total = postfix_queue::count(queue_dir).map_err(unreadable)?;
    let store_dir = &cfg.queue_directory;
    let (store, snapshot);
    let target = if dry_run {
        snapshot = Snapshot::scan(store_dir).ok();
        Target::DryRun(snapshot.as_ref())
    } else {
        store = open_store(store_dir)?;
        Target::Store(&store)
    };
    let progress = admin::progress::Progress::new("import-postfix");
    postfix_queue::for_each(queue_dir, |file| {
        let report = postfix_queue::import_one(queue_dir, &file, &target);
        counts.add(&report.action);
        progress.suspend(|| printer.file(&report));
        progress.update(counts.total(), total);
    })
    .map_err(unreadable)?;
    progress.finish();
    Ok(counts)
}

/// What happened to the files, by [`Action`].
#[derive(Default, Serialize)]
struct Counts {
    imported: u64,
    already_imported: u64,
    finished: u64,
    left: u64,
}

impl Counts {
    fn add(&mut self, action: &Action) {
        *match action {
            Action::Imported => &mut self.imported,
            Action::AlreadyImported => &mut self.already_imported,
            Action::Finished => &mut self.finished,
            Action::Left => &mut self.left,
        } += 1;
    }

    fn total(&self) -> u64 {
        self.imported + self.already_imported + self.finished + self.left
    }
}

fn open_store(dir: &Path) -> Result<Store, Failure> {
    match Store::open(dir, Default::default()) {
        Ok((store, _)) => Ok(store),
        Err(e @ StoreError::Locked(_)) => Err((EX_TEMPFAIL, format!("{e}; stop mailroom first"))),
        Err(e) => Err((EX_TEMPFAIL, format!("cannot open the queue store: {e}"))),
    }
}

/// Prints the report as it goes: text, or one JSON object written in pieces
/// (`{"dry_run", "config", "queue": [...], "summary"}`), so a million files never sit in
/// memory at once.
struct Printer {
    json: bool,
    dry_run: bool,
    first: bool,
}

impl Printer {
    fn new(json: bool, dry_run: bool) -> Printer {
        Printer {
            json,
            dry_run,
            first: true,
        }
    }

    fn would(&self) -> &'static str {
        if self.dry_run {
            "would "
        } else {
            ""
        }
    }

    fn start(&self, config: &ConfigReport) {
        let mut out = io::stdout().lock();
        let _ = if self.json {
            let config = serde_json::to_string(config).unwrap_or_default();
            write!(
                out,
                "{{\"dry_run\":{},\"config\":{config},\"queue\":[",
                self.dry_run
            )
        } else {
            write_config_text(&mut out, config, self.would())
        };
    }

    fn file(&mut self, report: &FileReport) {
        let mut out = io::stdout().lock();
        let _ = if self.json {
            let comma = if self.first { "" } else { "," };
            let line = serde_json::to_string(report).unwrap_or_default();
            writeln!(out, "{comma}\n{line}")
        } else {
            write_file_line(&mut out, report, self.would())
        };
        self.first = false;
    }

    fn finish(&self, counts: &Counts) {
        let mut out = io::stdout().lock();
        let _ = if self.json {
            let summary = serde_json::to_string(counts).unwrap_or_default();
            writeln!(out, "],\"summary\":{summary}}}")
        } else {
            let imported = if self.dry_run {
                "to import"
            } else {
                "imported"
            };
            writeln!(
                out,
                "summary: {} {imported}, {} already imported, {} finished, {} left in place",
                counts.imported, counts.already_imported, counts.finished, counts.left
            )
        };
    }
}

fn write_config_text(out: &mut impl Write, config: &ConfigReport, would: &str) -> io::Result<()> {
    let verb = match (config.changed, would.is_empty()) {
        (true, true) => "wrote",
        (true, false) => "would write",
        (false, _) => "unchanged",
    };
    writeln!(out, "configuration: {verb} {}", config.path.display())?;
    for d in &config.parameters {
        let why = d
            .why
            .as_deref()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        let label = match d.outcome {
            Outcome::Imported => format!("{would}import"),
            Outcome::Kept => "keep".to_string(),
            Outcome::Default => "default".to_string(),
            Outcome::Ignored => "ignore".to_string(),
        };
        writeln!(out, "  {label:<14} {} = {}{why}", d.name, d.value)?;
    }
    writeln!(out, "queue:")
}

fn write_file_line(out: &mut impl Write, f: &FileReport, would: &str) -> io::Result<()> {
    let id = f.mailroom_id.as_deref().unwrap_or("-");
    let queue = f.queue.unwrap_or("-");
    match f.action {
        Action::Left => writeln!(
            out,
            "  left           {}: {}",
            f.path,
            f.why.as_deref().unwrap_or("")
        )?,
        ref action => {
            let label = match action {
                Action::Imported => format!("{would}import"),
                Action::AlreadyImported => "already".to_string(),
                _ => format!("{would}finish"),
            };
            writeln!(
                out,
                "  {label:<14} {} -> {id} {queue} ({} pending, {} done, {} bounced)",
                f.path, f.pending, f.done, f.bounced
            )?;
        }
    }
    if let Some(w) = &f.warning {
        writeln!(out, "    warning: {w}")?;
    }
    Ok(())
}
