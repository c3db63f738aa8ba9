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
    /// `transport_destination_rate_limit`: the same per destination of a named transport
    /// (whose destinations the scheduler names `slow:[mx.example.net]`).
    pub transport_intervals: HashMap<String, Duration>,
    /// Where this node's HTTP API answers (`http://127.0.0.1:8080`), for the fleet views.
    pub api: Option<String>,
}

impl FleetSettings {
    /// `None` when there is nothing to do: no fleet and no rate limit (the scheduler then
    /// runs with no fleet link at all).
    pub fn from_config(cfg: &Config) -> Option<FleetSettings> {
        let redis_url = Some(cfg.fleet_redis_url.trim().to_string()).filter(|u| !u.is_empty());
        let no_rates = cfg.smtp_destination_rate_limit.is_empty()
            && cfg.transport_destination_rate_limit.is_empty();
        if redis_url.is_none() && no_rates {
            return None;
        }
        let node_name = match cfg.fleet_node_name.trim() {
            "" => cfg.myhostname.clone(),
            name => name.to_string(),
        };
        Some(FleetSettings {
            redis_url,
            node_name,
            intervals: intervals(&cfg.smtp_destination_rate_limit),
            transport_intervals: intervals(&cfg.transport_destination_rate_limit),
            api: cfg.http_listen.first().map(|a| format!("http://{a}")),
        })
    }

    /// The time between two messages to `destination` (zero: no rate limit).
    pub fn interval(&self, destination: &str) -> Duration {
        let key = destination.to_ascii_lowercase();
        if let Some(interval) = self.intervals.get(&key) {
            return *interval;
        }
        let transport = key.split_once(':').map(|(t, _)| t);
        let named = transport.and_then(|t| self.transport_intervals.get(t));
        named.copied().unwrap_or_default()
    }
}

/// Rates as the time between two messages.
fn intervals(rates: &[(String, config::Rate)]) -> HashMap<String, Duration> {
    let interval = |rate: &config::Rate| rate.per.as_secs_f64() / rate.count.max(1) as f64;
    let rates = rates.iter();
    rates
        .map(|(key, rate)| (key.clone(), Duration::from_secs_f64(interval(rate))))
        .collect()
}

/// `url` as it may be logged or shown: a password in it (`redis://user:secret@host`, which
/// the redis crate accepts) becomes `***`, since mail.log is read by more people than the
/// configuration's secrets should be.
pub fn redacted(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let Some(at) = url[start..end].rfind('@').map(|i| start + i) else {
        return url.to_string();
    };
    match url[start..at].find(':').map(|i| start + i) {
        Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_redis_url_is_not_shown() {
        assert_eq!(
            redacted("redis://mx:s3cret@10.0.0.5:6379/0"),
            "redis://mx:***@10.0.0.5:6379/0"
        );
        assert_eq!(redacted("redis://:s3cret@h/1"), "redis://:***@h/1");
        assert_eq!(redacted("rediss://a:b:c@h"), "rediss://a:***@h");
        for plain in [
            "redis://127.0.0.1:6379/0",
            "redis://user@h/0",
            "not a url",
            "",
        ] {
            assert_eq!(redacted(plain), plain);
        }
    }

    #[test]
    fn a_named_transports_rate_applies_to_each_of_its_destinations_only() {
        let mut cfg = Config::embedded_default();
        cfg.transports = vec![("slow".into(), "smtp".into())];
        let rate = config::Rate {
            count: 60,
            per: Duration::from_secs(60),
        };
        cfg.transport_destination_rate_limit = vec![("slow".into(), rate)];
        let settings = FleetSettings::from_config(&cfg).expect("a rate needs the fleet link");
        let second = Duration::from_secs(1);
        assert_eq!(settings.interval("slow:[mx.example.net]"), second);
        assert_eq!(settings.interval("slow:example.org"), second);
        assert_eq!(settings.interval("[mx.example.net]"), Duration::ZERO);
        assert_eq!(settings.interval("other:example.org"), Duration::ZERO);
    }
}
