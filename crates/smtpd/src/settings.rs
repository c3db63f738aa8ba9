//! smtpd's settings: what the SMTP server takes from [`config::Config`] — the `smtpd_*`
//! parameters and the shared ones it reads (`myhostname`, `myorigin`, `mydestination`,
//! `mynetworks`, `relay_domains`, the size, hop and queue limits) — checked and typed once
//! per configuration, so listeners and sessions never look at the whole `Config`.
//!
//! Inputs → outputs: a [`Config`] → [`SmtpdSettings`] ([`SmtpdSettings::from_config`], the
//! only reader of `Config` in this crate); [`SmtpdSettings::follow`] turns the daemon's live
//! configuration into a [`SettingsSource`] that rebuilds them only after a reload.
//! Security stance: trusts the configuration (the operator's word); no I/O.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use config::{Config, TlsLevel};
use proto::data::BareNewline;
use security::tls::ServerTlsSettings;

use crate::anvil::AnvilSettings;
use crate::conn::TimeLimits;
use crate::intake::DiskGuard;
use crate::listener::ListenKey;
use crate::relay::RelayPolicy;
use crate::session::{Role, Settings};
use crate::stress::StressFlag;

/// The settings of this moment (the daemon swaps the configuration on SIGHUP; each new
/// session reads them).
pub type SettingsSource = Arc<dyn Fn() -> Arc<SmtpdSettings> + Send + Sync>;

/// Everything the SMTP server needs from the configuration.
#[derive(Debug, Clone)]
pub struct SmtpdSettings {
    /// `smtpd_listen`, `submission_listen`, `reinject_listen`, in that order, each with
    /// its role.
    pub listen: Vec<ListenKey>,
    /// `smtpd_process_limit`: sessions per service.
    pub process_limit: usize,
    /// The per-client count and rate limits (`anvil.rs`).
    pub anvil: Arc<AnvilSettings>,
    /// `smtpd_tls_security_level`.
    pub tls_level: TlsLevel,
    /// The certificate and key (`smtpd_tls_cert_file`, `smtpd_tls_key_file`) or where the
    /// self-signed pair is kept.
    pub tls: ServerTlsSettings,
    /// `smtpd_sasl_password_file`.
    pub sasl_password_file: PathBuf,
    /// `mynetworks` entries that are not addresses or CIDR blocks (left out of the relay
    /// policy).
    pub invalid_networks: Vec<String>,
    /// `smtpd_timeout`, `smtpd_per_request_deadline`, `smtpd_min_data_rate`,
    /// `smtpd_session_deadline`.
    pub time_limits: TimeLimits,
    /// `queue_directory` and its `queue_minfree` limits.
    pub disk: DiskGuard,
    /// What every session starts from: the settings of a session on an `smtp` listener,
    /// which [`Settings::new`] adapts to the listener's role.
    pub session: Settings,
}

impl SmtpdSettings {
    pub fn from_config(cfg: &Config) -> SmtpdSettings {
        SmtpdSettings {
            listen: listeners(cfg),
            process_limit: cfg.smtpd_process_limit,
            anvil: Arc::new(AnvilSettings::from_config(cfg)),
            tls_level: cfg.smtpd_tls_security_level,
            tls: ServerTlsSettings {
                cert_file: cfg.smtpd_tls_cert_file.clone(),
                key_file: cfg.smtpd_tls_key_file.clone(),
                self_signed_directory: cfg.data_directory.join("tls"),
                hostname: cfg.myhostname.clone(),
            },
            sasl_password_file: cfg.smtpd_sasl_password_file.clone(),
            invalid_networks: RelayPolicy::invalid_networks(&cfg.mynetworks),
            time_limits: TimeLimits {
                timeout: cfg.smtpd_timeout,
                per_request: cfg.smtpd_per_request_deadline,
                min_data_rate: cfg.smtpd_min_data_rate.max(1),
                session: cfg.smtpd_session_deadline,
            },
            disk: DiskGuard::new(
                cfg.queue_directory.clone(),
                submit::guard::Limits::from_config(cfg),
            ),
            session: session_settings(cfg),
        }
    }

    /// The source of the settings for a daemon whose `current` configuration is swapped on
    /// reload: built again only when `current` returns another configuration, so a new
    /// session costs no parsing of `mynetworks` and the like.
    pub fn follow(current: impl Fn() -> Arc<Config> + Send + Sync + 'static) -> SettingsSource {
        let built: Mutex<Option<(Arc<Config>, Arc<SmtpdSettings>)>> = Mutex::new(None);
        Arc::new(move || {
            let cfg = current();
            let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
            match &*built {
                Some((from, settings)) if Arc::ptr_eq(from, &cfg) => settings.clone(),
                _ => {
                    let settings = Arc::new(SmtpdSettings::from_config(&cfg));
                    *built = Some((cfg, settings.clone()));
                    settings
                }
            }
        })
    }

    /// Whether a listener that may offer STARTTLS (`smtp`, `submission`) is configured.
    pub fn wants_tls(&self) -> bool {
        self.listens_as(Role::Smtp) || self.listens_as(Role::Submission)
    }

    /// Whether some listener has `role`.
    pub fn listens_as(&self, role: Role) -> bool {
        self.listen.iter().any(|&(_, r)| r == role)
    }
}

/// The session settings of an `smtp` listener (TLS offered; [`Settings::new`] says
/// otherwise where it is not).
fn session_settings(cfg: &Config) -> Settings {
    Settings {
        role: Role::Smtp,
        hostname: cfg.myhostname.clone(),
        banner: cfg.smtpd_banner.clone(),
        myorigin: cfg.myorigin.clone(),
        message_size_limit: cfg.message_size_limit,
        header_size_limit: cfg.header_size_limit,
        hopcount_limit: cfg.hopcount_limit,
        recipient_limit: cfg.smtpd_recipient_limit,
        recipient_overshoot_limit: cfg.smtpd_recipient_overshoot_limit,
        postmaster: local_postmaster(cfg),
        tls_available: true,
        tls_required: cfg.smtpd_tls_security_level == TlsLevel::Encrypt,
        auth_enabled: cfg.smtpd_sasl_auth_enable,
        auth_failure_limit: cfg.smtpd_client_auth_failure_limit,
        auth_failure_window: cfg.anvil_rate_time_unit,
        vrfy_disabled: cfg.disable_vrfy_command,
        error_sleep: cfg.smtpd_error_sleep_time,
        soft_error_limit: cfg.smtpd_soft_error_limit,
        hard_error_limit: cfg.smtpd_hard_error_limit,
        junk_command_limit: cfg.smtpd_junk_command_limit,
        helo_required: cfg.smtpd_helo_required,
        forbid_unauth_pipelining: cfg.smtpd_forbid_unauth_pipelining,
        stress: StressFlag::manual().1,
        bare_newline: BareNewline::from_config(cfg.smtpd_forbid_bare_newline.as_str()),
        relay: RelayPolicy::new(&cfg.mynetworks, &cfg.mydestination, &cfg.relay_domains),
        local_recipient: None,
        rewriter: std::sync::Arc::default(),
        virtual_recipient: None,
        restrictions: Arc::new(crate::restrictions::Restrictions::from_config(cfg)),
        milters: Arc::new(milter::MilterSettings::from_config(cfg)),
    }
}

/// Every listener the configuration asks for: the key a reload compares (the configured
/// address, not the bound one: `127.0.0.1:0` stays one listener across reloads).
fn listeners(cfg: &Config) -> Vec<ListenKey> {
    let roles = [
        (&cfg.smtpd_listen, Role::Smtp),
        (&cfg.submission_listen, Role::Submission),
        (&cfg.reinject_listen, Role::Reinject),
    ];
    let mut keys = Vec::new();
    for (addresses, role) in roles {
        keys.extend(addresses.iter().map(|&address| (address, role)));
    }
    keys
}

/// `postmaster@D` for the first local domain, preferring `myhostname` (RFC 5321 section
/// 4.5.1: mail to `<postmaster>` is for the postmaster of this host); `myorigin` when
/// nothing is delivered locally.
fn local_postmaster(cfg: &Config) -> String {
    let local = |d: &String| d.eq_ignore_ascii_case(&cfg.myhostname);
    let domain = match cfg.mydestination.iter().find(|d| local(d)) {
        Some(hostname) => hostname,
        None => cfg.mydestination.first().unwrap_or(&cfg.myorigin),
    };
    format!("postmaster@{}", domain.trim().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::RwLock;

    #[test]
    fn follow_rebuilds_the_settings_only_for_a_new_configuration() {
        let live = Arc::new(RwLock::new(Arc::new(Config::embedded_default())));
        let reader = live.clone();
        let source = SmtpdSettings::follow(move || reader.read().unwrap().clone());
        let first = source();
        assert!(
            Arc::ptr_eq(&first, &source()),
            "same configuration, same settings"
        );
        let mut cfg = Config::embedded_default();
        cfg.myhostname = "reloaded.example".into();
        *live.write().unwrap() = Arc::new(cfg);
        let second = source();
        assert_eq!(second.session.hostname, "reloaded.example");
        assert!(!Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn listeners_in_configured_order_and_only_smtp_or_submission_want_tls() {
        let address = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut cfg = Config::embedded_default();
        cfg.smtpd_listen = vec![address(25), address(2525)];
        cfg.submission_listen = vec![address(587)];
        cfg.reinject_listen = vec![address(10026)];
        let settings = SmtpdSettings::from_config(&cfg);
        assert_eq!(
            settings.listen,
            [
                (address(25), Role::Smtp),
                (address(2525), Role::Smtp),
                (address(587), Role::Submission),
                (address(10026), Role::Reinject),
            ]
        );
        assert!(settings.wants_tls());
        cfg.smtpd_listen.clear();
        cfg.submission_listen.clear();
        let reinject_only = SmtpdSettings::from_config(&cfg);
        assert!(!reinject_only.wants_tls());
        assert!(reinject_only.listens_as(Role::Reinject));
    }
}
