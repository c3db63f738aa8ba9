//! `mailroom fleet status [--json]`: the fleet as its Redis (`fleet_redis_url`) sees it —
//! every node that sent a heartbeat in the last hour (live if within ten seconds), with its
//! queue sizes and API address, the totals of the live nodes, then the suspensions and dead
//! marks every node applies, each with the node it came from. Reads Redis only (the fleet
//! crate's `status::read`, as the daemon's `GET /api/v1/fleet` does); no daemon is needed
//! on this node.

use crate::edge::with_config;
use envelope::sysexits::{EX_CONFIG, EX_SOFTWARE, EX_UNAVAILABLE};
use fleet::Status;
use std::io::{self, Write};
use std::path::Path;

/// The fleet of nodes sharing this node's Redis: status of each node, shared suspensions.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(clap::Subcommand)]
enum FleetCommand {
    /// Nodes seen (heartbeats), their queue sizes and states, shared suspensions and dead marks.
    Status {
        /// One JSON object: nodes, totals, suspensions, dead.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    let FleetCommand::Status { json } = args.command;
    with_config(config, |cfg| match read_status(cfg) {
        Ok(status) => print(&status, json),
        Err(code) => code,
    })
}

/// The fleet's state from Redis; exit 78 without `fleet_redis_url`, 69 if Redis is down.
pub fn read_status(cfg: &config::Config) -> Result<Status, u8> {
    if cfg.fleet_redis_url.is_empty() {
        eprintln!("mailroom: fatal: fleet_redis_url is not set: this node is not in a fleet");
        return Err(EX_CONFIG);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("mailroom: fatal: cannot start a runtime: {e}");
            EX_SOFTWARE
        })?;
    runtime
        .block_on(fleet::status::read(&cfg.fleet_redis_url))
        .map_err(|e| {
            eprintln!("mailroom: fatal: {e}");
            EX_UNAVAILABLE
        })
}

fn print(status: &Status, json: bool) -> u8 {
    let mut out = io::stdout().lock();
    let written = match json {
        true => serde_json::to_writer_pretty(&mut out, status)
            .map_err(io::Error::other)
            .and_then(|()| writeln!(out)),
        false => write_text(&mut out, status),
    };
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => EX_SOFTWARE,
        _ => 0,
    }
}

fn write_text(out: &mut impl Write, status: &Status) -> io::Result<()> {
    writeln!(
        out,
        "{:<20} {:<5} {:>6} {:>8} {:>6} {:>8} {:>5}  api",
        "node", "state", "seen", "incoming", "active", "deferred", "hold"
    )?;
    for n in &status.nodes {
        let state = if n.live { "live" } else { "gone" };
        let seen = format!("{}s", n.seen_seconds_ago);
        let api = n.report.api.as_deref().unwrap_or("-");
        write_counts(out, &n.report.name, state, &seen, &n.report.queues)?;
        writeln!(out, "  {api}")?;
    }
    let live = status.nodes.iter().filter(|n| n.live).count();
    let total = format!("total ({live} live)");
    write_counts(out, &total, "", "", &status.totals)?;
    writeln!(out)?;
    for shared in &status.suspensions {
        let s = &shared.suspension;
        writeln!(
            out,
            "suspended: {}: {}{}",
            s.destination,
            s.text(),
            by(&shared.node)
        )?;
    }
    for (destination, mark) in &status.dead {
        writeln!(
            out,
            "dead: {destination}: {}{}",
            mark.reason,
            by(&mark.node)
        )?;
    }
    Ok(())
}

/// One line of the table but its last column.
fn write_counts(
    out: &mut impl Write,
    name: &str,
    state: &str,
    seen: &str,
    queues: &std::collections::BTreeMap<String, u64>,
) -> io::Result<()> {
    let queue = |q: &str| queues.get(q).copied().unwrap_or(0);
    write!(
        out,
        "{name:<20} {state:<5} {seen:>6} {:>8} {:>6} {:>8} {:>5}",
        queue("incoming"),
        queue("active"),
        queue("deferred"),
        queue("hold")
    )
}

fn by(node: &Option<String>) -> String {
    node.as_ref()
        .map(|n| format!(" (on node {n})"))
        .unwrap_or_default()
}
