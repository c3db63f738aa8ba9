//! What the fleet looks like from Redis: the nodes' heartbeats, the shared suspensions and
//! dead marks (`mailroom fleet status`, and the node list `mailq --fleet` asks).

use crate::link::TIMEOUT;
use crate::scripts::{DEAD, NODES, SEEN, SUSPENDED};
use queue::Suspension;
use redis::AsyncConnectionConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A node's heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    pub name: String,
    /// Its HTTP API (`http://127.0.0.1:8080`), if `http_listen` is set.
    #[serde(default)]
    pub api: Option<String>,
    /// Messages per queue: `incoming`, `active`, `deferred`, `hold`.
    #[serde(default)]
    pub queues: BTreeMap<String, u64>,
    /// `shared` (limits through Redis) or `local share` (it could not reach Redis).
    #[serde(default)]
    pub limits: String,
    /// The live nodes this node counted at its previous heartbeat: what it divides the
    /// limits by if Redis goes away.
    #[serde(default)]
    pub fleet_nodes: usize,
}

/// One node as `fleet status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    #[serde(flatten)]
    pub report: NodeReport,
    /// Seconds since its last heartbeat.
    pub seen_seconds_ago: u64,
    /// Heard from within [`LIVE_SECONDS`].
    pub live: bool,
}

/// A dead mark as Redis holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadMark {
    pub reason: String,
    /// Unix ms it ends.
    pub until_ms: u64,
}

/// The fleet as Redis sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub nodes: Vec<Node>,
    pub suspensions: Vec<Suspension>,
    pub dead: BTreeMap<String, DeadMark>,
}

/// A node silent for longer is not counted live (heartbeats go every second).
pub const LIVE_SECONDS: u64 = 10;

pub fn unix_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| d.as_millis() as u64)
}

/// Reads the fleet's state from the Redis at `url` (one line of error if it cannot).
pub async fn read(url: &str) -> Result<Status, String> {
    let fail = |e: redis::RedisError| format!("cannot read the fleet from Redis at {url}: {e}");
    let client = redis::Client::open(url).map_err(fail)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT));
    let mut conn = (client
        .get_multiplexed_async_connection_with_config(&config)
        .await)
        .map_err(fail)?;
    let (reports, seen, suspended, dead, time): Tables = redis::pipe()
        .hgetall(NODES)
        .zrange_withscores(SEEN, 0, -1)
        .hgetall(SUSPENDED)
        .hgetall(DEAD)
        .cmd("TIME")
        .query_async(&mut conn)
        .await
        .map_err(fail)?;
    let now = time.0;
    let seen: HashMap<String, u64> = seen.into_iter().map(|(n, t)| (n, t as u64)).collect();
    let nodes = reports.into_iter().filter_map(|(name, json)| {
        let report: NodeReport = serde_json::from_str(&json).ok()?;
        let ago = now.saturating_sub(*seen.get(&name)?);
        Some(Node {
            report,
            seen_seconds_ago: ago,
            live: ago <= LIVE_SECONDS,
        })
    });
    let mut nodes: Vec<Node> = nodes.collect();
    nodes.sort_by(|a, b| a.report.name.cmp(&b.report.name));
    Ok(Status {
        nodes,
        suspensions: parse_suspensions(suspended, unix_ms() / 1000),
        dead: parse_dead(dead, unix_ms()),
    })
}

type Tables = (
    HashMap<String, String>,
    Vec<(String, f64)>,
    HashMap<String, String>,
    HashMap<String, String>,
    (u64, u64),
);

/// The suspensions in force of the `suspended` hash (bad entries skipped).
pub(crate) fn parse_suspensions(table: HashMap<String, String>, now: u64) -> Vec<Suspension> {
    let list = table
        .values()
        .filter_map(|json| serde_json::from_str::<Suspension>(json).ok());
    let mut list: Vec<Suspension> = list.filter(|s| s.in_force(now)).collect();
    list.sort_by(|a, b| a.destination.cmp(&b.destination));
    list
}

/// The dead marks still in force of the `dead` hash.
pub(crate) fn parse_dead(
    table: HashMap<String, String>,
    now_ms: u64,
) -> BTreeMap<String, DeadMark> {
    let marks = table.into_iter().filter_map(|(d, json)| {
        let mark: DeadMark = serde_json::from_str(&json).ok()?;
        (mark.until_ms > now_ms).then_some((d, mark))
    });
    marks.collect()
}
