//! What the fleet looks like from Redis: the nodes' heartbeats, the shared suspensions and
//! dead marks. One reader for every view of it: `mailroom fleet status` (and the node list
//! `mailq --fleet` asks) reads it with [`read`], the daemon's `GET /api/v1/fleet` (the
//! queue page's Fleet panel) with [`read_from`] over the node's own connection.

use crate::link::TIMEOUT;
use crate::scripts::{DEAD, NODES, SEEN, SUSPENDED};
use queue::Suspension;
use redis::aio::MultiplexedConnection;
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
    /// The node whose deliveries found it dead (absent in marks of older nodes).
    #[serde(default)]
    pub node: Option<String>,
}

/// A suspension as Redis holds it: the suspension, and the node it was made on (absent in
/// entries of older nodes, and in those a node put back into a Redis that lost its data,
/// since it cannot know).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedSuspension {
    #[serde(flatten)]
    pub suspension: Suspension,
    #[serde(default)]
    pub node: Option<String>,
}

/// The fleet as Redis sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub nodes: Vec<Node>,
    /// Messages per queue summed over the live nodes (a silent node's last counts are
    /// not current, so they are left out).
    pub totals: BTreeMap<String, u64>,
    pub suspensions: Vec<SharedSuspension>,
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
    let shown = crate::settings::redacted(url);
    let fail = |e: redis::RedisError| format!("cannot read the fleet from Redis at {shown}: {e}");
    let client = redis::Client::open(url).map_err(fail)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT));
    let mut conn = (client
        .get_multiplexed_async_connection_with_config(&config)
        .await)
        .map_err(fail)?;
    read_from(&mut conn).await.map_err(fail)
}

/// Reads the fleet's state over an open connection (one pipeline; ages by Redis's clock).
pub async fn read_from(conn: &mut MultiplexedConnection) -> redis::RedisResult<Status> {
    let (reports, seen, suspended, dead, time): Tables = redis::pipe()
        .hgetall(NODES)
        .zrange_withscores(SEEN, 0, -1)
        .hgetall(SUSPENDED)
        .hgetall(DEAD)
        .cmd("TIME")
        .query_async(conn)
        .await?;
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
        totals: totals(&nodes),
        nodes,
        suspensions: parse_shared(suspended, unix_ms() / 1000),
        dead: parse_dead(dead, unix_ms()),
    })
}

/// Every queue any node reports, summed over the live nodes.
fn totals(nodes: &[Node]) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for node in nodes {
        for (queue, count) in &node.report.queues {
            let total: &mut u64 = totals.entry(queue.clone()).or_default();
            if node.live {
                *total = total.saturating_add(*count);
            }
        }
    }
    totals
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
    let shared = parse_shared(table, now).into_iter();
    shared.map(|s| s.suspension).collect()
}

/// [`parse_suspensions`] with the node that made each one.
fn parse_shared(table: HashMap<String, String>, now: u64) -> Vec<SharedSuspension> {
    let list = table
        .values()
        .filter_map(|json| serde_json::from_str::<SharedSuspension>(json).ok());
    let mut list: Vec<SharedSuspension> = list.filter(|s| s.suspension.in_force(now)).collect();
    list.sort_by(|a, b| a.suspension.destination.cmp(&b.suspension.destination));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, deferred: u64, live: bool) -> Node {
        let queues = BTreeMap::from([("deferred".to_string(), deferred)]);
        Node {
            report: NodeReport {
                name: name.into(),
                queues,
                ..NodeReport::default()
            },
            seen_seconds_ago: if live { 1 } else { LIVE_SECONDS + 1 },
            live,
        }
    }

    #[test]
    fn fleet_totals_leave_out_the_counts_of_silent_nodes() {
        let nodes = [
            node("a", 3, true),
            node("b", 4, true),
            node("c", 100, false),
        ];
        assert_eq!(totals(&nodes)["deferred"], 7);
        assert_eq!(totals(&[node("c", 100, false)])["deferred"], 0);
    }

    #[test]
    fn shared_suspensions_name_their_node_and_older_entries_still_count() {
        let table = HashMap::from([
            (
                "a.example".to_string(),
                r#"{"destination":"a.example","reason":"","since":1,"until":null,"node":"mx1"}"#
                    .to_string(),
            ),
            (
                "b.example".to_string(),
                r#"{"destination":"b.example","reason":"old","since":1}"#.to_string(),
            ),
            ("c.example".to_string(), "not JSON".to_string()),
        ]);
        let shared = parse_shared(table.clone(), 10);
        let nodes: Vec<_> = shared.iter().map(|s| s.node.as_deref()).collect();
        assert_eq!(nodes, [Some("mx1"), None]);
        let plain: Vec<_> = parse_suspensions(table, 10)
            .into_iter()
            .map(|s| s.destination)
            .collect();
        assert_eq!(plain, ["a.example", "b.example"]);
    }
}
