//! This node's view of its fleet, read from Redis when asked: what `GET /api/v1/fleet`
//! answers and the queue page's Fleet panel draws. The fleet part is [`status::read_from`],
//! the very reader of `mailroom fleet status`, over the node's own connection; added here
//! is only what the node alone knows: whether Redis answers now, and the share of the
//! limits it applies meanwhile.
//!
//! While Redis is away the view keeps the last status it read, and says how old it is
//! (heartbeats cannot arrive then either, so an age is the honest answer, not an empty
//! fleet).

use crate::status::{self, Status};
use crate::{lock, Fleet};
use serde::Serialize;
use std::time::Instant;

/// `GET /api/v1/fleet` of a node in a fleet.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// Always true (a node alone answers `{"fleet": false}`).
    pub fleet: bool,
    /// This node's `fleet_node_name`.
    pub node: String,
    pub redis: RedisState,
    /// The nodes, totals, suspensions and dead marks, as `mailroom fleet status` shows them.
    #[serde(flatten)]
    pub status: Status,
}

/// Redis as this node sees it now.
#[derive(Debug, Clone, Serialize)]
pub struct RedisState {
    /// It answered the read made for this view.
    pub reachable: bool,
    /// Why not, when it did not (`null` before the first attempt to connect).
    pub error: Option<String>,
    /// `shared` (limits through Redis), or `local share` while Redis is away: each
    /// destination limit divided by `fallback_nodes`.
    pub limits: &'static str,
    /// The live nodes counted at the last heartbeat: what the limits are divided by
    /// while Redis is away.
    pub fallback_nodes: usize,
    /// Seconds since the status shown was read: 0 when it was read now, more when Redis is
    /// away and the last one read is shown, `null` when Redis never answered.
    pub status_age_seconds: Option<u64>,
}

impl Fleet {
    /// The view now; `None` for a node without `fleet_redis_url` (rate limits only).
    pub async fn view(&self) -> Option<View> {
        let inner = &self.inner;
        let link = inner.link.as_ref()?;
        let (reachable, error) = match link.conn() {
            None => (false, link.error()),
            Some(mut conn) => match status::read_from(&mut conn).await {
                Ok(status) => {
                    *lock(&inner.last) = Some((Instant::now(), status));
                    (true, None)
                }
                Err(e) => (false, Some(e.to_string())),
            },
        };
        let last = lock(&inner.last).clone();
        let age = last.as_ref().map(|(at, _)| at.elapsed().as_secs());
        Some(View {
            fleet: true,
            node: inner.settings.node_name.clone(),
            redis: RedisState {
                reachable,
                error,
                limits: if link.is_up() {
                    "shared"
                } else {
                    "local share"
                },
                fallback_nodes: link.node_count(),
                status_age_seconds: age,
            },
            status: last.map(|(_, s)| s).unwrap_or_default(),
        })
    }
}
