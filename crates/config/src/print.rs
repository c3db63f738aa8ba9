//! The final values as `postconf -x` prints them (`postconf.rs` adds the values as
//! written), one `name = value` line per parameter in alphabetical order. Lists are comma+space
//! separated, durations read `300s` or `5d`, sizes are plain bytes, booleans `yes`/`no`.
//!
//! The output is for people and scripts that grep it; it is not TOML (values are unquoted).

use crate::params::{self, Access, PARAMS};
use crate::{Config, Profile};

/// Which values `render` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintMode {
    /// Every parameter's effective value (`postconf`).
    Effective,
    /// Only the values that differ from the profile's default (`postconf -n`).
    NonDefault,
    /// The profile's default values (`postconf -d`).
    Default,
}

/// Every parameter as `(name, value)`, alphabetical, plus `profile` (mailroom-only).
pub(crate) fn parameters(config: &Config) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = PARAMS
        .iter()
        .map(|param| (param.name.to_string(), value_of(param, config)))
        .chain([("profile".to_string(), config.profile.as_str().to_string())])
        .collect();
    list.sort();
    list
}

/// The configuration as `name = value` lines, each ending in a newline.
pub fn render(config: &Config, mode: PrintMode) -> String {
    render_against(config, &profile_default(config.profile), mode)
}

/// One parameter's `name = value` line (no newline), by its name or alias; `None` if unknown.
pub fn render_one(config: &Config, name: &str) -> Option<String> {
    if name == "profile" {
        return Some(line("profile", config.profile.as_str()));
    }
    let param = params::find(name)?;
    Some(line(param.name, &value_of(param, config)))
}

/// `render` with the default to compare against passed in, so tests need no environment.
fn render_against(config: &Config, default: &Config, mode: PrintMode) -> String {
    let shown = match mode {
        PrintMode::Effective | PrintMode::NonDefault => config,
        PrintMode::Default => default,
    };
    let defaults = parameters(default);
    parameters(shown)
        .iter()
        .zip(&defaults)
        .filter(|((name, value), (_, default_value))| {
            // A file that picks the system profile says so even though it is "its default".
            mode != PrintMode::NonDefault
                || value != default_value
                || (name == "profile" && config.profile != Profile::Embedded)
        })
        .map(|((name, value), _)| line(name, value) + "\n")
        .collect()
}

fn profile_default(profile: Profile) -> Config {
    match profile {
        Profile::Embedded => Config::embedded_default(),
        Profile::System => Config::system_default(),
    }
}

fn value_of(param: &params::Param, config: &Config) -> String {
    match &param.access {
        Access::Scalar { get, .. } => get(config),
        Access::List { get, .. } => get(config).join(", "),
    }
}

/// postconf prints `name =` (no trailing space) for an empty value.
fn line(name: &str, value: &str) -> String {
    if value.is_empty() {
        format!("{name} =")
    } else {
        format!("{name} = {value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn effective_prints_every_parameter_postconf_style() {
        let config = Config::system_default();
        let text = render_against(&config, &config, PrintMode::Effective);
        assert_eq!(text.lines().count(), PARAMS.len() + 1);
        for expected in [
            "2bounce_notice_recipient = postmaster",
            "maximal_queue_lifetime = 5d",
            "minimal_backoff_time = 300s",
            "message_size_limit = 10240000",
            "mynetworks = 127.0.0.0/8, [::1]/128",
            "local_recipient_maps = unix:passwd.byname, /etc/aliases",
            "relay_domains =",
            "smtpd_listen = 0.0.0.0:25",
            "soft_bounce = no",
            "profile = system",
        ] {
            assert!(
                text.lines().any(|line| line == expected),
                "missing {expected:?}"
            );
        }
        let names: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
        assert!(names.windows(2).all(|pair| pair[0] < pair[1]), "not sorted");
    }

    #[test]
    fn non_default_prints_only_changes() {
        let default = Config::embedded_default();
        let mut config = default.clone();
        assert_eq!(render_against(&config, &default, PrintMode::NonDefault), "");
        config.queue_run_delay = Duration::from_secs(60);
        config.relay_domains = vec!["a.example".into(), "b.example".into()];
        assert_eq!(
            render_against(&config, &default, PrintMode::NonDefault),
            "queue_run_delay = 60s\nrelay_domains = a.example, b.example\n"
        );
        let system = Config::system_default();
        assert_eq!(
            render_against(&system, &system, PrintMode::NonDefault),
            "profile = system\n"
        );
    }

    #[test]
    fn default_mode_prints_the_default() {
        let default = Config::system_default();
        let mut config = default.clone();
        config.hopcount_limit = 7;
        let text = render_against(&config, &default, PrintMode::Default);
        assert!(text.contains("hopcount_limit = 50\n"));
    }

    #[test]
    fn one_parameter_by_name_or_alias() {
        let config = Config::system_default();
        assert_eq!(
            render_one(&config, "relayhost").as_deref(),
            Some("relayhost =")
        );
        assert_eq!(
            render_one(&config, "bounce_notice_recipient").as_deref(),
            Some("2bounce_notice_recipient = postmaster")
        );
        assert_eq!(
            render_one(&config, "profile").as_deref(),
            Some("profile = system")
        );
        assert_eq!(render_one(&config, "nosuch"), None);
    }
}
