//! What the fleet takes from the configuration ([`FleetSettings::from_config`]).

use config::Config;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// `fleet_redis_url`; `None`: a node alone that only spaces messages itself.
    pub redis_url: Option<String>,
    /// `fleet_node_name`, or `myhostname`.
    pub node_name: String,
    /// `smtp_destination_rate_limit` as the time between two messages, per destination.
    pub intervals: HashMap<String, Duration>,
    /// Where this node's HTTP API answers (`http://127.0.0.1:8080`), for the fleet views.
    pub api: Option<String>,
}

impl FleetSettings {
    /// `None` when there is nothing to do: no fleet and no rate limit (the scheduler then
    /// runs with no fleet link at all).
    pub fn from_config(cfg: &Config) -> Option<FleetSettings> {
        let redis_url = Some(cfg.fleet_redis_url.trim().to_string()).filter(|u| !u.is_empty());
        if redis_url.is_none() && cfg.smtp_destination_rate_limit.is_empty() {
            return None;
        }
        let intervals = cfg.smtp_destination_rate_limit.iter().map(|(d, rate)| {
            let interval = rate.per.as_secs_f64() / rate.count.max(1) as f64;
            (d.clone(), Duration::from_secs_f64(interval))
        });
        let node_name = match cfg.fleet_node_name.trim() {
            "" => cfg.myhostname.clone(),
            name => name.to_string(),
        };
        Some(FleetSettings {
            redis_url,
            node_name,
            intervals: intervals.collect(),
            api: cfg.http_listen.first().map(|a| format!("http://{a}")),
        })
    }

    /// The time between two messages to `destination` (zero: no rate limit).
    pub fn interval(&self, destination: &str) -> Duration {
        let key = destination.to_ascii_lowercase();
        self.intervals.get(&key).copied().unwrap_or_default()
    }
}
