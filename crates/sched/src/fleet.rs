//! The queue manager's one door to a fleet of nodes (the fleet crate implements it; the
//! binary installs it with [`Shared::set_fleet`](crate::Shared::set_fleet)). Without one,
//! nothing here runs: a single node decides alone, as before.
//!
//! What the door carries: before a network delivery opens its connection, [`FleetLink::admit`]
//! waits for the fleet's consent (a connection slot of the destination and, when a rate is
//! configured, the next message slot); the slot is held by the returned [`Permit`] until the
//! delivery is over (dropped). Dead marks and the operator's suspensions go out through the
//! other methods; the fleet's suspensions come back through
//! `QueueManager::adopt_suspensions`.

use crate::remote::BoxFuture;
use queue::Suspension;
use std::time::Duration;

/// Held while a delivery's connection is open; dropping it gives the slot back.
pub type Permit = Box<dyn Send + Sync>;

/// What the fleet says about one delivery.
pub enum Admission {
    /// Go ahead; keep the permit until the connection is closed.
    Go(Permit),
    /// Another node found the destination dead; defer without a connection.
    Dead(String),
}

/// A fleet of nodes sharing per-destination limits and decisions.
pub trait FleetLink: Send + Sync + 'static {
    /// Waits until one more connection to `destination` (the scheduler's destination name)
    /// keeps the fleet within `concurrency` connections and its rate limit. Never fails:
    /// when the fleet cannot be asked, the node applies its share of the limits itself.
    fn admit<'a>(&'a self, destination: &'a str, concurrency: usize) -> BoxFuture<'a, Admission>;

    /// This node marked `destination` dead for `time` (nothing answered).
    fn mark_dead(&self, destination: &str, reason: &str, time: Duration);

    /// The operator flushed: every dead mark goes (the fleet's too).
    fn forget_dead(&self);

    /// The operator suspended a destination on this node (already in the local file).
    fn suspended(&self, suspension: &Suspension);

    /// The operator resumed a destination on this node (already out of the local file).
    fn resumed(&self, destination: &str);
}
