//! What the milter client takes from the configuration, built once at the edge.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use config::Config;

use crate::codec::Stage;
use crate::spec::{self, DefaultAction, Defaults, MilterSpec};

/// The `milter_*_macros` lists: which macros each stage sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MacroNames {
    pub connect: Vec<String>,
    pub helo: Vec<String>,
    pub mail: Vec<String>,
    pub rcpt: Vec<String>,
    pub data: Vec<String>,
    pub end_of_headers: Vec<String>,
    pub end_of_message: Vec<String>,
}

impl MacroNames {
    pub fn for_stage(&self, stage: Stage) -> &[String] {
        match stage {
            Stage::Connect => &self.connect,
            Stage::Helo => &self.helo,
            Stage::Mail => &self.mail,
            Stage::Rcpt => &self.rcpt,
            Stage::Data => &self.data,
            Stage::EndOfHeaders => &self.end_of_headers,
            Stage::EndOfMessage => &self.end_of_message,
        }
    }
}

/// `smtpd_milter_maps`, opened: milter lists by client address.
#[derive(Debug, Clone, Default)]
pub struct ClientMilters {
    specs: Vec<String>,
    maps: Arc<maps::Maps>,
    /// The maps could not be opened: every client gets a stand-in that cannot be reached
    /// (a broken map must not mean "no milter"), so the default action decides.
    broken: Option<String>,
}

impl PartialEq for ClientMilters {
    fn eq(&self, other: &Self) -> bool {
        self.specs == other.specs
    }
}

impl Eq for ClientMilters {}

/// `smtpd_milters`, `non_smtpd_milters` and the macros.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MilterSettings {
    pub smtpd: Vec<MilterSpec>,
    /// `smtpd_milter_maps`: a client's own list instead of `smtpd` ([`MilterSettings::smtpd_for`]).
    pub smtpd_maps: ClientMilters,
    /// The `milter_*` defaults, for the lists `smtpd_milter_maps` gives.
    pub defaults: Option<Defaults>,
    pub non_smtpd: Vec<MilterSpec>,
    pub macros: MacroNames,
    /// `{daemon_name}` and `v`.
    pub daemon_name: String,
    pub version: String,
    /// Entries that are not milters (logged once; see [`MilterSettings::problems`]).
    pub problems: Vec<String>,
}

impl MilterSettings {
    pub fn from_config(cfg: &Config) -> MilterSettings {
        let defaults = Defaults {
            default_action: DefaultAction::parse(&cfg.milter_default_action)
                .unwrap_or(DefaultAction::Tempfail),
            protocol: cfg.milter_protocol as u32,
            connect_timeout: cfg.milter_connect_timeout,
            command_timeout: cfg.milter_command_timeout,
            content_timeout: cfg.milter_content_timeout,
        };
        let mut problems = Vec::new();
        let mut list = |name: &str, items: &[String], defaults: &Defaults| match spec::parse_list(
            items, defaults,
        ) {
            Ok(specs) => specs,
            Err(error) => {
                problems.push(format!("{name}: {error}"));
                // A broken entry must not mean "no milter": the default action stands in.
                vec![unreachable_milter(&error, defaults)]
            }
        };
        let smtpd = list("smtpd_milters", &cfg.smtpd_milters, &defaults);
        let non_smtpd = list("non_smtpd_milters", &cfg.non_smtpd_milters, &defaults);
        let (maps, broken) = match maps::Maps::open(&cfg.smtpd_milter_maps) {
            Ok(maps) => (maps, None),
            Err(error) => {
                problems.push(format!("smtpd_milter_maps: {error}"));
                (maps::Maps::default(), Some(error.to_string()))
            }
        };
        MilterSettings {
            smtpd,
            smtpd_maps: ClientMilters {
                specs: cfg.smtpd_milter_maps.clone(),
                maps: Arc::new(maps),
                broken,
            },
            defaults: Some(defaults),
            non_smtpd,
            macros: MacroNames {
                connect: cfg.milter_connect_macros.clone(),
                helo: cfg.milter_helo_macros.clone(),
                mail: cfg.milter_mail_macros.clone(),
                rcpt: cfg.milter_rcpt_macros.clone(),
                data: cfg.milter_data_macros.clone(),
                end_of_headers: cfg.milter_end_of_header_macros.clone(),
                end_of_message: cfg.milter_end_of_data_macros.clone(),
            },
            daemon_name: cfg.milter_macro_daemon_name.clone(),
            version: cfg.milter_macro_v.clone(),
            problems,
        }
    }
}

/// A stand-in for a milter entry that cannot be parsed: connecting to it fails, so its
/// default action applies to every message (as Postfix treats a milter it cannot reach).
fn unreachable_milter(error: &str, defaults: &Defaults) -> MilterSpec {
    MilterSpec {
        name: format!("(invalid: {error})"),
        endpoint: spec::Endpoint::Unix("/nonexistent/milter/entry/is/invalid".into()),
        default_action: defaults.default_action,
        protocol: defaults.protocol,
        connect_timeout: defaults.connect_timeout,
        command_timeout: defaults.command_timeout,
        content_timeout: defaults.content_timeout,
    }
}

impl MilterSettings {
    /// The milters for a client at `address`: what `smtpd_milter_maps` gives for it
    /// (`DISABLE`: none), else `smtpd_milters`, as Postfix's smtpd chooses them. A result
    /// that is not a milter list is logged, and a stand-in that cannot be reached takes
    /// its place, so the default action decides for that client.
    pub fn smtpd_for(&self, address: IpAddr) -> Cow<'_, [MilterSpec]> {
        if let (Some(error), Some(defaults)) = (&self.smtpd_maps.broken, &self.defaults) {
            return Cow::Owned(vec![unreachable_milter(error, defaults)]);
        }
        let Some(found) = self.smtpd_maps.maps.lookup(&address.to_string()) else {
            return Cow::Borrowed(&self.smtpd);
        };
        if found.trim().eq_ignore_ascii_case("DISABLE") {
            return Cow::Owned(Vec::new());
        }
        let Some(defaults) = &self.defaults else {
            return Cow::Borrowed(&self.smtpd);
        };
        match spec::parse_list(std::slice::from_ref(&found), defaults) {
            Ok(specs) => Cow::Owned(specs),
            Err(error) => {
                tracing::warn!(target: "milter", "smtpd_milter_maps: {address}: {error}");
                Cow::Owned(vec![unreachable_milter(&error, defaults)])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(milter_maps: &[String]) -> MilterSettings {
        let mut cfg = Config::embedded_default();
        cfg.smtpd_milters = vec!["inet:127.0.0.1:8891".into()];
        cfg.smtpd_milter_maps = milter_maps.to_vec();
        MilterSettings::from_config(&cfg)
    }

    fn names(specs: &[MilterSpec]) -> Vec<&str> {
        specs.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn smtpd_milter_maps_choose_a_clients_milters_by_its_address() {
        let dir = std::env::temp_dir().join(format!("milter-maps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cidr = dir.join("milters.cidr");
        std::fs::write(
            &cidr,
            "192.0.2.0/24 DISABLE\n\
             198.51.100.0/24 inet:127.0.0.1:11332, { unix:/run/m.sock, default_action=accept }\n\
             203.0.113.0/24 nonsense:here\n",
        )
        .unwrap();
        let s = settings(&[format!("cidr:{}", cidr.display())]);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(s.smtpd_for(ip("192.0.2.7")).is_empty());
        let own = s.smtpd_for(ip("198.51.100.1"));
        assert_eq!(names(&own), ["inet:127.0.0.1:11332", "unix:/run/m.sock"]);
        assert_eq!(own[1].default_action, DefaultAction::Accept);
        // Not in the map: smtpd_milters.
        assert_eq!(names(&s.smtpd_for(ip("10.1.2.3"))), ["inet:127.0.0.1:8891"]);
        // A result that is no milter list: a stand-in nobody can reach (the default action).
        let bad = s.smtpd_for(ip("203.0.113.9"));
        assert_eq!(bad.len(), 1);
        assert!(bad[0].name.starts_with("(invalid"), "{:?}", bad[0]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_unreadable_milter_map_leaves_no_client_without_a_milter() {
        let s = settings(&["cidr:/nonexistent/milters.cidr".into()]);
        assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
        assert!(s.problems[0].starts_with("smtpd_milter_maps: "));
        let specs = s.smtpd_for("10.1.2.3".parse().unwrap());
        assert_eq!(specs.len(), 1);
        assert!(specs[0].name.starts_with("(invalid"), "{:?}", specs[0]);
    }
}
