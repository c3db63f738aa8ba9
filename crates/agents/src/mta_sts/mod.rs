//! MTA-STS (RFC 8461): whether a recipient domain asks senders to deliver only to its listed
//! MX hosts over TLS with a verified certificate. Postfix needs an external policy daemon
//! (postfix-mta-sts-resolver) for this; mailroom has it built in (`smtp_mta_sts = yes`).
//!
//! Inputs → outputs: a recipient domain → its [`Policy`] or `None` (no policy, or none could
//! be had: RFC 8461 5.1 says deliver as without MTA-STS then).
//! The path ([`MtaSts::policy`]): the TXT record `_mta-sts.DOMAIN` (`v=STSv1; id=…`) through
//! the SMTP client's resolver → when its `id` differs from the cached policy's, or nothing
//! fresh is cached, the policy is fetched over HTTPS from
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (`fetch`: hyper over tokio-rustls, the
//! host's certificate verified against `smtp_mta_sts_ca_file` or the system's roots, no
//! redirects, 64 KiB at most) → cached in memory until its `max_age` runs out.
//! Invariants: a fetch that fails keeps using a cached policy that has not expired (RFC 8461
//! 3.3: an attacker who blocks the fetch must not be able to switch the policy off); with no
//! TXT record a cached, unexpired policy still applies (3.3 again); `mode: none` is a policy
//! that asks for nothing. Lookups and fetches are bounded in time.
//! Security stance: DNS answers and the HTTPS server are untrusted: the policy only narrows
//! where mail may go; the certificate of the policy host is always verified.

mod disk;
mod fetch;
pub mod policy;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::Config;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

pub use policy::{Mode, Policy};

/// How long one policy fetch (connect, TLS, request, body) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// What MTA-STS needs from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtaStsSettings {
    /// `smtp_mta_sts`.
    pub enabled: bool,
    /// `smtp_mta_sts_ca_file`; `None` = the system's roots.
    pub ca_file: Option<PathBuf>,
    /// `smtp_mta_sts_policy_port` (443).
    pub policy_port: u16,
    /// Where policies are kept across restarts: `$data_directory/mta-sts`.
    pub cache_dir: Option<PathBuf>,
}

impl MtaStsSettings {
    pub fn from_config(cfg: &Config) -> MtaStsSettings {
        let ca = cfg.smtp_mta_sts_ca_file.trim();
        MtaStsSettings {
            enabled: cfg.smtp_mta_sts,
            ca_file: (!ca.is_empty()).then(|| PathBuf::from(ca)),
            policy_port: cfg.smtp_mta_sts_policy_port,
            cache_dir: Some(cfg.data_directory.join("mta-sts")),
        }
    }
}

/// A policy as cached: its record `id` and when it expires.
struct Cached {
    id: String,
    policy: Policy,
    expires: Instant,
}

/// The MTA-STS resolver with its policy cache; cheap to share (`Arc`).
pub struct MtaSts {
    port: u16,
    /// Verifying TLS for policy hosts and, in mode enforce, for MX hosts.
    tls: Arc<rustls::ClientConfig>,
    cache: Mutex<HashMap<String, Cached>>,
    /// The same policies on disk, read back at start.
    disk: Option<disk::DiskCache>,
}

impl MtaSts {
    /// `None` when `smtp_mta_sts` is off; an error when the CA certificates cannot be read.
    pub fn new(settings: &MtaStsSettings) -> Result<Option<MtaSts>, String> {
        if !settings.enabled {
            return Ok(None);
        }
        let tls = security::tls::client_config_verify(settings.ca_file.as_deref())
            .map_err(|e| format!("smtp_mta_sts: {e}"))?;
        let disk = settings.cache_dir.clone().map(disk::DiskCache::new);
        let mut cache = HashMap::new();
        for entry in disk.iter().flat_map(disk::DiskCache::load) {
            let expires = Instant::now() + entry.remaining;
            let cached = Cached {
                id: entry.id,
                policy: entry.policy,
                expires,
            };
            cache.insert(entry.domain, cached);
        }
        Ok(Some(MtaSts {
            port: settings.policy_port,
            tls,
            cache: Mutex::new(cache),
            disk,
        }))
    }

    /// The verifying client TLS configuration (for MX hosts under mode enforce).
    pub fn verifying_tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// The policy of `domain` (lower case), or `None` when it has none that applies.
    pub async fn policy(&self, resolver: &TokioResolver, domain: &str) -> Option<Policy> {
        let id = match record_id(resolver, domain).await {
            Ok(Some(id)) => id,
            // No record (or no answer): a cached policy keeps applying until it expires.
            Ok(None) | Err(_) => return self.cached(domain, None),
        };
        if let Some(policy) = self.cached(domain, Some(&id)) {
            return Some(policy);
        }
        match fetch::policy(resolver, domain, self.port, self.tls.clone(), FETCH_TIMEOUT).await {
            Ok(text) => match Policy::parse(&text) {
                Ok(policy) => {
                    if let Some(disk) = &self.disk {
                        disk.save(domain, &id, &text, policy.max_age);
                    }
                    Some(self.store(domain, id, policy))
                }
                Err(why) => self.fetch_failed(domain, &format!("bad policy: {why}")),
            },
            Err(why) => self.fetch_failed(domain, &why),
        }
    }

    fn fetch_failed(&self, domain: &str, why: &str) -> Option<Policy> {
        let cached = self.cached(domain, None);
        let fallback = match cached {
            Some(_) => "using the cached policy",
            None => "delivering as without MTA-STS",
        };
        tracing::warn!(target: "smtp", "MTA-STS policy of {domain}: cannot fetch it: {why}; {fallback}");
        cached
    }

    /// The cached, unexpired policy of `domain` (whose id is `id`, when given).
    fn cached(&self, domain: &str, id: Option<&str>) -> Option<Policy> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(domain)
            .filter(|c| c.expires > Instant::now() && id.is_none_or(|id| id == c.id))
            .map(|c| c.policy.clone())
    }

    fn store(&self, domain: &str, id: String, policy: Policy) -> Policy {
        tracing::info!(target: "smtp", "MTA-STS policy of {domain}: mode {}, mx {}, max_age {}s (id {id})",
            policy.mode.as_str(), policy.mx.join(" "), policy.max_age.as_secs());
        let expires = Instant::now() + policy.max_age;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(
            domain.to_string(),
            Cached {
                id,
                policy: policy.clone(),
                expires,
            },
        );
        policy
    }
}

/// The `id=` of the `v=STSv1` TXT record at `_mta-sts.DOMAIN`; `None` when there is none
/// (RFC 8461 3.1: several STSv1 records count as none).
async fn record_id(resolver: &TokioResolver, domain: &str) -> Result<Option<String>, String> {
    let name = format!("_mta-sts.{}.", domain.trim_end_matches('.'));
    let lookup = match resolver.txt_lookup(name).await {
        Ok(lookup) => lookup,
        Err(e) if e.is_nx_domain() || e.is_no_records_found() => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let records: Vec<String> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(txt.to_string()),
            _ => None,
        })
        .filter(|text| text.trim_start().starts_with("v=STSv1"))
        .collect();
    let [record] = records.as_slice() else {
        return Ok(None);
    };
    Ok(record_tag(record, "id"))
}

/// The value of `tag` in a `tag=value; …` record.
fn record_tag(record: &str, tag: &str) -> Option<String> {
    record.split(';').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        (key.trim() == tag && !value.trim().is_empty()).then(|| value.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids() {
        assert_eq!(
            record_tag("v=STSv1; id=20160831085700Z;", "id").as_deref(),
            Some("20160831085700Z")
        );
        assert_eq!(record_tag("v=STSv1;id=abc", "id").as_deref(), Some("abc"));
        assert_eq!(record_tag("v=STSv1; id=", "id"), None);
    }

    fn resolver_less() -> MtaSts {
        MtaSts {
            port: 443,
            tls: security::tls::client_config_may(),
            cache: Mutex::new(HashMap::new()),
            disk: None,
        }
    }

    #[test]
    fn a_cached_policy_serves_until_it_expires_and_only_for_its_id() {
        let sts = resolver_less();
        let policy =
            Policy::parse("version: STSv1\nmode: enforce\nmx: *.example.net\nmax_age: 86400\n")
                .unwrap();
        sts.store("example.net", "1".into(), policy.clone());
        assert_eq!(sts.cached("example.net", Some("1")), Some(policy.clone()));
        assert_eq!(sts.cached("example.net", None), Some(policy));
        assert_eq!(
            sts.cached("example.net", Some("2")),
            None,
            "a new id means a new policy"
        );
        let short = Policy::parse("version: STSv1\nmode: testing\nmx: a\nmax_age: 0\n").unwrap();
        sts.store("short.example", "1".into(), short);
        assert_eq!(sts.cached("short.example", None), None, "expired");
    }
}
