//! The Lua scripts Redis runs atomically for the fleet, and the keys they touch.
//!
//! Every time is Redis's own clock (`TIME`), so nodes with skewed clocks still agree on
//! when a lease expires and when the next message may go.
//!
//! Keys (all under `mailroom:`): `conn:DEST` a sorted set of connection leases (member =
//! `node:serial`, score = expiry in ms); `rate:DEST` the GCRA "theoretical arrival time" in
//! ms; `suspended` and `dead` hashes (destination → JSON); `version` bumped on every change
//! of those two; `epoch` a random id set when the shared state was created (a Redis that
//! lost its data has none, and nodes then put back what they know); `nodes` a hash of
//! heartbeats and `seen` a sorted set of their times.

use redis::Script;
use std::sync::LazyLock;

pub const SUSPENDED: &str = "mailroom:suspended";
pub const DEAD: &str = "mailroom:dead";
pub const VERSION: &str = "mailroom:version";
pub const EPOCH: &str = "mailroom:epoch";
pub const NODES: &str = "mailroom:nodes";
pub const SEEN: &str = "mailroom:seen";

pub fn conn_key(destination: &str) -> String {
    format!("mailroom:conn:{destination}")
}

pub fn rate_key(destination: &str) -> String {
    format!("mailroom:rate:{destination}")
}

/// One delivery's admission: a connection lease if fewer than `limit` are held, and, when
/// `interval` (ms between messages) is not 0, the next message slot (GCRA without burst:
/// messages are spaced `interval` apart fleet-wide). Both or neither are taken.
/// KEYS: conn, rate. ARGV: limit, member, lease ms, interval ms.
/// Returns 0 (admitted), -1 (no connection slot), or the ms until the next message slot.
pub static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return -1 end
local interval = tonumber(ARGV[4])
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat > now then return tat - now end
  redis.call('SET', KEYS[2], now + interval, 'PX', interval + 1000)
end
local lease = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], lease * 2)
return 0
"#,
    )
});

/// Extends (or puts back, after a Redis restart) the leases this node holds.
/// KEYS: conn keys; ARGV: lease ms, then one member per key.
pub static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', key, lease * 2)
end
return #KEYS
"#,
    )
});

/// A heartbeat: the node's report stored, its time noted, nodes silent for an hour
/// forgotten. KEYS: nodes, seen. ARGV: name, report JSON, seconds a live node may be silent.
/// Returns how many nodes are live.
pub static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = tonumber(redis.call('TIME')[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - 3600)
for _, name in ipairs(gone) do
  redis.call('HDEL', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
end
return redis.call('ZCOUNT', KEYS[2], now - tonumber(ARGV[3]), '+inf')
"#,
    )
});
