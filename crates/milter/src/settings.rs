//! What the milter client takes from the configuration, built once at the edge.

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

/// `smtpd_milters`, `non_smtpd_milters` and the macros.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MilterSettings {
    pub smtpd: Vec<MilterSpec>,
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
        MilterSettings {
            smtpd,
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
