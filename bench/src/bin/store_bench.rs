//! `store-bench`: durable queue commits per second, mailroom's store against the cost of the
//! disk itself and against the one-file-per-message way Postfix queues.
//!
//! Why: the store's whole design argument (DESIGN.md, "The store") is that the fsync is the
//! cost of a durable queue, so N concurrent intakes should share one fdatasync (group commit)
//! instead of paying create+fsync+rename per message. This program measures that claim on
//! the machine it runs on, every figure in the same run so they share the disk's mood.
//!
//! For each writer count N (`--writers 1,16,64`), each for `--seconds` seconds, with 4 KiB
//! messages, in this order:
//! - `raw1`: one thread appending 4 KiB to one file, `fdatasync` after each write. The raw
//!   fsync rate of the directory's disk; measured again on every row to show drift.
//! - `rawN`: N threads, each appending 4 KiB + `fdatasync` to its own file: what the disk
//!   gives N independent fsyncers (the ceiling for "one fsync per message" at N writers).
//! - `file+dirsync`: N threads, each looping: create a temporary file (`O_CREAT|O_EXCL`),
//!   write 4 KiB, `fsync`, close, `rename` to its final name in the same directory, `fsync`
//!   the directory. What a careful one-file-per-message queue must do.
//! - `file`: the same without the directory fsync: the durable core of what Postfix's
//!   cleanup does per queue file (it relies on the file fsync alone). Postfix also fchmods
//!   the finished file and later renames it into `active/` and unlinks it; neither variant
//!   does those, and the store side likewise measures enqueue only, not removal.
//! - `store`: N threads calling `queue::Store::enqueue` on a fresh store; each call returns
//!   only once its record is durable. `records/batch` is how many enqueues shared one
//!   fdatasync.
//!
//! The ratio that matters is `store` over the faster of the two one-file baselines. Appends
//! (not overwrites of a preallocated file) are used for the raw rates because the store
//! appends too, so both pay the same size-change metadata.
//!
//! Run: `cargo run --release -p mailroom-bench --bin store-bench -- [--dir DIR]
//! [--seconds N] [--writers 1,16,64] [--rounds 3] [--json] [--keep] [--allow-tmpfs]
//! [--preallocate] [--dsync] [--commit-delay-us N]`. The last three set the store's
//! [`StoreOptions`] (pre-zeroed segments, `O_DSYNC` writes, group commit delay);
//! `bench/journaled-store-bench.sh` runs them on loop-mounted journaled ext4 and XFS.
//! Defaults: a fresh directory under `./target/bench-tmp` (refused if it is tmpfs), 3 s per
//! measurement, 3 rounds; each round measures every writer count, and the last table is the
//! cell-by-cell median over rounds (the machine is shared, so single runs are noisy).

#![forbid(unsafe_code)]

use envelope::{Envelope, QueueId};
use queue::{Store, StoreError, StoreOptions};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MESSAGE_SIZE: usize = 4096;

const USAGE: &str = "usage: store-bench [--dir DIR] [--seconds N] [--writers 1,16,64] \
                     [--rounds R] [--json] [--keep] [--allow-tmpfs] [--preallocate] [--dsync] \
                     [--commit-delay-us N]";

struct Args {
    /// Parent directory; the run works in a fresh subdirectory of it.
    dir: PathBuf,
    seconds: f64,
    writers: Vec<usize>,
    /// Every measurement is repeated this many times, interleaved; the table is the median.
    rounds: usize,
    json: bool,
    keep: bool,
    allow_tmpfs: bool,
    /// The store's options (`--preallocate`, `--dsync`, `--commit-delay-us`).
    store: StoreOptions,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::from("target/bench-tmp"),
        seconds: 3.0,
        writers: vec![1, 16, 64],
        rounds: 3,
        json: false,
        keep: false,
        allow_tmpfs: false,
        store: StoreOptions::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--dir" => args.dir = PathBuf::from(value("--dir")?),
            "--seconds" => {
                let v = value("--seconds")?;
                args.seconds = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .ok_or(format!("bad --seconds {v:?}"))?;
            }
            "--writers" => {
                let v = value("--writers")?;
                args.writers = v
                    .split(',')
                    .map(|w| w.trim().parse().ok().filter(|n: &usize| *n > 0))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(format!("bad --writers {v:?}"))?;
            }
            "--rounds" => {
                let v = value("--rounds")?;
                args.rounds = v
                    .parse()
                    .ok()
                    .filter(|n: &usize| *n > 0)
                    .ok_or(format!("bad --rounds {v:?}"))?;
            }
            "--json" => args.json = true,
            "--keep" => args.keep = true,
            "--allow-tmpfs" => args.allow_tmpfs = true,
            "--preallocate" => args.store.preallocate = true,
            "--dsync" => args.store.dsync_writes = true,
            "--commit-delay-us" => {
                let v = value("--commit-delay-us")?;
                let us: u64 = v
                    .parse()
                    .map_err(|_| format!("bad --commit-delay-us {v:?}"))?;
                args.store.commit_delay = Duration::from_micros(us);
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// How many operations completed in how long.
#[derive(Clone, Copy)]
struct Rate {
    ops: u64,
    secs: f64,
}

impl Rate {
    fn per_sec(self) -> f64 {
        self.ops as f64 / self.secs
    }
}

/// Runs `writers` threads for `dur`. Each thread builds its worker with `make(thread)` (not
/// timed), then all start together and call the worker until the deadline. The rate counts
/// completed calls over the wall time from the common start until the last thread is done.
fn timed<W, M>(writers: usize, dur: Duration, make: M) -> io::Result<Rate>
where
    W: FnMut() -> io::Result<()>,
    M: Fn(usize) -> io::Result<W> + Sync,
{
    let barrier = Barrier::new(writers + 1);
    thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|t| {
                let (barrier, make) = (&barrier, &make);
                s.spawn(move || -> io::Result<u64> {
                    let worker = make(t);
                    barrier.wait();
                    let mut worker = worker?;
                    let deadline = Instant::now() + dur;
                    let mut ops = 0;
                    while Instant::now() < deadline {
                        worker()?;
                        ops += 1;
                    }
                    Ok(ops)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut ops = 0;
        let mut first_error = None;
        for h in handles {
            match h.join().expect("benchmark thread panicked") {
                Ok(n) => ops += n,
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        let secs = start.elapsed().as_secs_f64();
        match first_error {
            Some(e) => Err(e),
            None => Ok(Rate { ops, secs }),
        }
    })
}

/// `writers` threads, each appending 4 KiB + fdatasync to its own file in `dir`.
fn raw_fsync(dir: &Path, writers: usize, dur: Duration) -> io::Result<Rate> {
    fs::create_dir_all(dir)?;
    let block = [b'r'; MESSAGE_SIZE];
    timed(writers, dur, |t| {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(dir.join(format!("raw-{t}")))?;
        Ok(move || {
            file.write_all(&block)?;
            file.sync_data()
        })
    })
}

/// `writers` threads, each looping create temp + write 4 KiB + fsync + rename (+ fsync of the
/// directory if `dir_sync`), all in one directory as Postfix's `incoming/`.
fn one_file(dir: &Path, writers: usize, dur: Duration, dir_sync: bool) -> io::Result<Rate> {
    fs::create_dir_all(dir)?;
    File::open(dir)?.sync_all()?;
    let block = [b'f'; MESSAGE_SIZE];
    timed(writers, dur, |t| {
        let dir_handle = File::open(dir)?;
        let mut n = 0u64;
        Ok(move || {
            n += 1;
            let tmp = dir.join(format!("t{t}.{n}"));
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&block)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, dir.join(format!("q{t}.{n}")))?;
            if dir_sync {
                dir_handle.sync_all()?;
            }
            Ok(())
        })
    })
}

/// `writers` threads enqueueing 4 KiB messages into a fresh store under `dir`.
fn store_enqueue(
    dir: &Path,
    writers: usize,
    dur: Duration,
    options: &StoreOptions,
) -> io::Result<(Rate, queue::CommitStats)> {
    let (store, _) = Store::open(dir, options.clone()).map_err(to_io)?;
    let message = [b's'; MESSAGE_SIZE];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rate = timed(writers, dur, |_| {
        let store = store.clone();
        Ok(move || loop {
            let env = Envelope::new("bench@localhost", vec!["user@localhost".to_string()], now);
            match store.enqueue(QueueId::generate(), env, &message) {
                // Vanishingly rare with generated IDs; try again with a fresh one.
                Err(StoreError::Duplicate(_)) => continue,
                other => return other.map_err(to_io),
            }
        })
    })?;
    Ok((rate, store.commit_stats()))
}

fn to_io(e: StoreError) -> io::Error {
    io::Error::other(e.to_string())
}

/// The filesystem type of `path` by `statfs` magic, and whether it lives in memory.
fn filesystem(path: &Path) -> (String, bool) {
    let Ok(magic) = sys::file_system_magic(path) else {
        return ("unknown".into(), false);
    };
    let name = match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x8584_58f6 => "ramfs",
        0x794c_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0x6969 => "nfs",
        other => return (format!("fs-magic-{other:#x}"), false),
    };
    (name.into(), matches!(name, "tmpfs" | "ramfs"))
}

struct Row {
    writers: usize,
    raw1: Rate,
    raw_n: Rate,
    file_dirsync: Rate,
    file: Rate,
    store: Rate,
    stats: queue::CommitStats,
}

fn json_line(kind: &str, round: usize, writers: usize, rate: Rate, extra: &str) -> String {
    format!(
        "{{\"bench\":\"store-bench\",\"kind\":\"{kind}\",\"round\":{round},\"writers\":{writers},\
         \"message_bytes\":{MESSAGE_SIZE},\"ops\":{},\"seconds\":{:.3},\"per_sec\":{:.1}{extra}}}",
        rate.ops,
        rate.secs,
        rate.per_sec()
    )
}

fn measure_row(
    run: &Path,
    writers: usize,
    dur: Duration,
    json_round: Option<usize>,
    options: &StoreOptions,
) -> io::Result<Row> {
    let base = run.join(format!("w{writers}"));
    let progress = |what: &str| {
        eprintln!("  writers={writers}: {what}...");
    };
    progress("raw fsync, 1 thread");
    let raw1 = raw_fsync(&base.join("raw1"), 1, dur)?;
    progress("raw fsync, N threads");
    let raw_n = raw_fsync(&base.join("rawN"), writers, dur)?;
    progress("one file per message + directory fsync");
    let file_dirsync = one_file(&base.join("file-dirsync"), writers, dur, true)?;
    progress("one file per message");
    let file = one_file(&base.join("file"), writers, dur, false)?;
    progress("mailroom store");
    let (store, stats) = store_enqueue(&base.join("store"), writers, dur, options)?;
    let row = Row {
        writers,
        raw1,
        raw_n,
        file_dirsync,
        file,
        store,
        stats,
    };
    if let Some(round) = json_round {
        let best = row.file.per_sec().max(row.file_dirsync.per_sec());
        let lines = [
            json_line("raw_fsync_1_thread", round, writers, raw1, ""),
            json_line("raw_fsync_n_threads", round, writers, raw_n, ""),
            json_line("one_file_dirsync", round, writers, file_dirsync, ""),
            json_line("one_file", round, writers, file, ""),
            json_line(
                "store",
                round,
                writers,
                store,
                &format!(
                    ",\"batches\":{},\"records\":{},\"ratio_vs_best_one_file\":{:.2}",
                    stats.batches,
                    stats.records,
                    store.per_sec() / best
                ),
            ),
        ];
        for l in lines {
            println!("{l}");
        }
    }
    Ok(row)
}

/// One row's figures, per second, and the ratios taken within the same round.
#[derive(Clone, Copy)]
struct Figures {
    writers: usize,
    raw1: f64,
    raw_n: f64,
    file_dirsync: f64,
    file: f64,
    store: f64,
    store_file: f64,
    store_best: f64,
    per_batch: f64,
}

impl Row {
    fn figures(&self) -> Figures {
        let file = self.file.per_sec();
        let file_dirsync = self.file_dirsync.per_sec();
        let store = self.store.per_sec();
        Figures {
            writers: self.writers,
            raw1: self.raw1.per_sec(),
            raw_n: self.raw_n.per_sec(),
            file_dirsync,
            file,
            store,
            store_file: store / file,
            store_best: store / file.max(file_dirsync),
            per_batch: if self.stats.batches == 0 {
                0.0
            } else {
                self.stats.records as f64 / self.stats.batches as f64
            },
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Cell-by-cell median of several rounds of the same writer count.
fn median_figures(rounds: &[Figures]) -> Figures {
    let m = |f: fn(&Figures) -> f64| median(rounds.iter().map(f).collect());
    Figures {
        writers: rounds[0].writers,
        raw1: m(|f| f.raw1),
        raw_n: m(|f| f.raw_n),
        file_dirsync: m(|f| f.file_dirsync),
        file: m(|f| f.file),
        store: m(|f| f.store),
        store_file: m(|f| f.store_file),
        store_best: m(|f| f.store_best),
        per_batch: m(|f| f.per_batch),
    }
}

fn print_table(title: &str, rows: &[Figures]) {
    println!("{title}");
    println!(
        "{:>7} {:>8} {:>8} {:>12} {:>8} {:>8} {:>10} {:>10} {:>13}",
        "writers",
        "raw1/s",
        "rawN/s",
        "file+dsync/s",
        "file/s",
        "store/s",
        "store/file",
        "store/best",
        "records/batch"
    );
    for r in rows {
        println!(
            "{:>7} {:>8.0} {:>8.0} {:>12.0} {:>8.0} {:>8.0} {:>9.2}x {:>9.2}x {:>13.1}",
            r.writers,
            r.raw1,
            r.raw_n,
            r.file_dirsync,
            r.file,
            r.store,
            r.store_file,
            r.store_best,
            r.per_batch
        );
    }
    println!();
}

fn print_legend() {
    println!("raw1 = 1 thread append 4 KiB + fdatasync; rawN = N threads, own file each;");
    println!("file+dsync = create+write+fsync+rename+fsync(dir) per message; file = same without");
    println!("the directory fsync (as Postfix does); best = the faster of the two file baselines;");
    println!("ratios are taken within a round, then the median over rounds;");
    println!("records/batch = store enqueues per fdatasync (group commit).");
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn run(args: &Args) -> io::Result<Vec<Figures>> {
    fs::create_dir_all(&args.dir)?;
    let (fs_name, in_memory) = filesystem(&args.dir);
    if in_memory && !args.allow_tmpfs {
        return Err(io::Error::other(format!(
            "{} is on {fs_name}: fsync costs nothing there; use a directory on a real disk \
             (or --allow-tmpfs to measure anyway)",
            args.dir.display()
        )));
    }
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let run_dir = args
        .dir
        .join(format!("store-bench-{}-{stamp}", std::process::id()));
    fs::create_dir(&run_dir)?;
    let run_dir = run_dir.canonicalize()?;
    let o = &args.store;
    let header = format!(
        "store-bench: {} ({fs_name}), {MESSAGE_SIZE}-byte messages, {} s per measurement, \
         writers {:?}, {} round(s); store: preallocate={} dsync={} commit_delay={:?}",
        run_dir.display(),
        args.seconds,
        args.writers,
        args.rounds,
        o.preallocate,
        o.dsync_writes,
        o.commit_delay
    );
    eprintln!("{header}");
    if !args.json {
        println!("{header}\n");
    }
    let dur = Duration::from_secs_f64(args.seconds);
    let mut all: Vec<Vec<Figures>> = vec![Vec::new(); args.writers.len()];
    let result = (|| -> io::Result<()> {
        for round in 1..=args.rounds {
            let load = load_average();
            eprintln!("round {round}, load average {load}");
            let mut this_round = Vec::new();
            for (i, &w) in args.writers.iter().enumerate() {
                let row = measure_row(&run_dir, w, dur, args.json.then_some(round), &args.store)?;
                if !args.keep {
                    fs::remove_dir_all(run_dir.join(format!("w{w}")))?;
                }
                all[i].push(row.figures());
                this_round.push(row.figures());
            }
            if !args.json {
                print_table(
                    &format!("round {round} (load average at start: {load})"),
                    &this_round,
                );
            }
        }
        Ok(())
    })();
    if args.keep {
        eprintln!("kept {}", run_dir.display());
    } else {
        fs::remove_dir_all(&run_dir)?;
    }
    result?;
    Ok(all.iter().map(|rounds| median_figures(rounds)).collect())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("store-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(rows) => {
            if args.json {
                for r in &rows {
                    println!(
                        "{{\"bench\":\"store-bench\",\"kind\":\"median\",\"rounds\":{},\
                         \"writers\":{},\"raw1_per_sec\":{:.1},\"rawn_per_sec\":{:.1},\
                         \"one_file_dirsync_per_sec\":{:.1},\"one_file_per_sec\":{:.1},\
                         \"store_per_sec\":{:.1},\"store_vs_one_file\":{:.2},\
                         \"store_vs_best_one_file\":{:.2},\"records_per_batch\":{:.1}}}",
                        args.rounds,
                        r.writers,
                        r.raw1,
                        r.raw_n,
                        r.file_dirsync,
                        r.file,
                        r.store,
                        r.store_file,
                        r.store_best,
                        r.per_batch
                    );
                }
            } else {
                print_table(&format!("median of {} round(s)", args.rounds), &rows);
                print_legend();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("store-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
