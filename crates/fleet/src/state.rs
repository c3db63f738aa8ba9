//! The fleet's loop: every [`TICK`](crate::TICK) it (re)connects when the link is down,
//! sends this node's changes, reads the shared tables back when their version moved, and
//! every second sends a heartbeat (whose answer, the live node count, sets the fallback
//! share); every ten seconds, and right after Redis answers again, it renews the leases of
//! the connections this node holds.

use crate::link::Link;
use crate::scripts::{DEAD, EPOCH, HEARTBEAT, NODES, RENEW, SEEN, SUSPENDED, VERSION};
use crate::status::{self, DeadMark, NodeReport, SharedSuspension, LIVE_SECONDS};
use crate::{admit, lock, Change, Inner, TICK};
use redis::aio::MultiplexedConnection;
use redis::RedisResult;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::info;

const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// What the loop remembers between ticks.
#[derive(Default)]
struct Seen {
    epoch: Option<String>,
    version: Option<i64>,
    heartbeat: Option<Instant>,
    renewed: Option<Instant>,
}

pub async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let Some(link) = &inner.link else { return };
    let mut seen = Seen::default();
    loop {
        if *stop.borrow() {
            return;
        }
        if !link.is_up() {
            seen.renewed = None; // put the leases back as soon as it answers
            seen.version = None;
            link.connect().await;
        }
        if let Some(conn) = link.conn() {
            if let Err(e) = tick(&inner, conn, &mut seen).await {
                link.lost(&e);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn tick(inner: &Inner, mut conn: MultiplexedConnection, seen: &mut Seen) -> RedisResult<()> {
    let due = |at: Option<Instant>, every: Duration| at.is_none_or(|t| t.elapsed() >= every);
    if due(seen.renewed, RENEW_EVERY) {
        renew(inner, &mut conn).await?;
        seen.renewed = Some(Instant::now());
    }
    send_changes(inner, &mut conn).await?;
    read_back(inner, &mut conn, seen).await?;
    if due(seen.heartbeat, HEARTBEAT_EVERY) {
        heartbeat(inner, &mut conn).await?;
        seen.heartbeat = Some(Instant::now());
    }
    Ok(())
}

/// Sends the outbox in order; a change leaves it only once Redis took it. Suspensions and
/// dead marks carry this node's name (the fleet views say where they came from).
async fn send_changes(inner: &Inner, conn: &mut MultiplexedConnection) -> RedisResult<()> {
    let node = Some(inner.settings.node_name.clone());
    loop {
        let Some(change) = lock(&inner.outbox).front().cloned() else {
            return Ok(());
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        match &change {
            Change::Suspend(s) => {
                let shared = SharedSuspension {
                    suspension: s.clone(),
                    node: node.clone(),
                };
                pipe.hset(SUSPENDED, &s.destination, json(&shared))
            }
            Change::Resume(d) => pipe.hdel(SUSPENDED, d),
            Change::Dead {
                destination,
                reason,
                until_ms,
            } => {
                let mark = DeadMark {
                    reason: reason.clone(),
                    until_ms: *until_ms,
                    node: node.clone(),
                };
                pipe.hset(DEAD, destination, json(&mark))
            }
            Change::ForgetDead => pipe.del(DEAD),
        };
        pipe.incr(VERSION, 1).ignore();
        let () = pipe.ignore().query_async(conn).await?;
        lock(&inner.outbox).pop_front();
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Reads the shared tables when their version moved; a Redis without this fleet's epoch
/// lost its data (or is new), and is given this node's suspensions first.
async fn read_back(
    inner: &Inner,
    conn: &mut MultiplexedConnection,
    seen: &mut Seen,
) -> RedisResult<()> {
    let (epoch, version): (Option<String>, Option<i64>) = redis::pipe()
        .get(EPOCH)
        .get(VERSION)
        .query_async(conn)
        .await?;
    // No epoch: a new Redis, or one that lost its data. Another epoch than the one seen:
    // a Redis replaced meanwhile (another node seeded it). Either way, share what we know.
    let lost = match (&seen.epoch, &epoch) {
        (_, None) => true,
        (Some(seen), Some(now)) => seen != now,
        (None, Some(_)) => false,
    };
    if lost {
        seed(inner, conn).await?;
        seen.epoch = redis::cmd("GET").arg(EPOCH).query_async(conn).await?;
        seen.version = None;
    } else {
        seen.epoch = epoch;
    }
    if version.is_some() && version == seen.version {
        return Ok(());
    }
    let (suspended, dead, version): (
        HashMap<String, String>,
        HashMap<String, String>,
        Option<i64>,
    ) = redis::pipe()
        .hgetall(SUSPENDED)
        .hgetall(DEAD)
        .get(VERSION)
        .query_async(conn)
        .await?;
    seen.version = version;
    let dead = status::parse_dead(dead, status::unix_ms());
    *lock(&inner.dead) = dead
        .into_iter()
        .map(|(d, m)| (d, (m.until_ms, m.reason)))
        .collect();
    if lock(&inner.outbox).is_empty() {
        (inner.hooks.adopt)(status::parse_suspensions(
            suspended,
            status::unix_ms() / 1000,
        ));
    }
    Ok(())
}

/// Puts this node's suspensions into a Redis that has none of the fleet's state (never
/// over an entry another node already put back).
async fn seed(inner: &Inner, conn: &mut MultiplexedConnection) -> RedisResult<()> {
    let mine = (inner.hooks.suspensions)();
    info!(target: "fleet", "fleet: Redis holds no fleet state (new, or restarted without its data); sharing this node's {} suspensions", mine.len());
    let mut pipe = redis::pipe();
    pipe.atomic();
    let epoch = format!("{}-{}", status::unix_ms(), fastrand::u64(..));
    pipe.cmd("SET").arg(EPOCH).arg(epoch).arg("NX").ignore();
    for s in &mine {
        pipe.hset_nx(SUSPENDED, &s.destination, json(s)).ignore();
    }
    pipe.incr(VERSION, 1).ignore();
    pipe.query_async(conn).await
}

async fn heartbeat(inner: &Inner, conn: &mut MultiplexedConnection) -> RedisResult<()> {
    let mut report: NodeReport = (inner.hooks.report)();
    report.name = inner.settings.node_name.clone();
    report.api = inner.settings.api.clone();
    report.limits = "shared".into();
    let link: &Link = inner.link.as_ref().expect("the loop runs only with a link");
    report.fleet_nodes = link.node_count();
    let live: usize = HEARTBEAT
        .key(NODES)
        .key(SEEN)
        .arg(&report.name)
        .arg(json(&report))
        .arg(LIVE_SECONDS)
        .invoke_async(conn)
        .await?;
    link.nodes.store(live.max(1), Ordering::Relaxed);
    Ok(())
}

/// Extends every lease this node holds (and puts back those Redis does not have).
async fn renew(inner: &Inner, conn: &mut MultiplexedConnection) -> RedisResult<()> {
    let held: Vec<(u64, String)> = lock(&inner.held)
        .iter()
        .map(|(s, (d, _))| (*s, d.clone()))
        .collect();
    if held.is_empty() {
        return Ok(());
    }
    let mut script = RENEW.prepare_invoke();
    script.arg(admit::LEASE.as_millis() as u64);
    for (serial, destination) in &held {
        script.key(crate::scripts::conn_key(destination));
        script.arg(format!("{}:{serial}", inner.settings.node_name));
    }
    let _: i64 = script.invoke_async(conn).await?;
    // A permit dropped meanwhile was just put back: take it out again.
    let mut gone = redis::pipe();
    {
        let mut table = lock(&inner.held);
        for (serial, destination) in held {
            match table.get_mut(&serial) {
                Some(entry) => entry.1 = true,
                None => {
                    let member = format!("{}:{serial}", inner.settings.node_name);
                    gone.zrem(crate::scripts::conn_key(&destination), member)
                        .ignore();
                }
            }
        }
    }
    gone.query_async(conn).await
}
