//! MTA-STS in the SMTP client (RFC 8461 4 and 5): for a delivery to a recipient domain
//! (an MX-lookup nexthop; `relayhost` and `[host]` nexthops are the operator's word and are
//! left alone), the domain's policy ([`crate::mta_sts`]) decides which MX hosts may be used
//! and whether TLS must be verified.
//!
//! `mode: enforce` → MX hosts that match no `mx:` pattern are not connected to (none left:
//! deferred 4.7.0 with the reason), a cached connection is not reused, and the session
//! must use STARTTLS with a certificate that verifies for the MX host name (the TLS policy
//! raised to `verify`, trust anchors from `smtp_tls_CAfile`); a failure says it was the
//! policy's demand.
//! `mode: testing` → a mismatch is logged and delivery goes on as usual. `mode: none` or no
//! policy → nothing changes.

use envelope::{Nexthop, QueueId};

use super::conn::Peer;
use super::dns::Dns;
use super::failure::Failure;
use super::policy::TlsPolicy;
use super::settings::SmtpTlsLevel;
use crate::mta_sts::{Mode, MtaSts, Policy};

/// The policy that applies to one delivery.
pub(crate) struct Gate {
    domain: String,
    policy: Policy,
}

impl Gate {
    /// The gate for `nexthop`, when MTA-STS is on and the domain has a policy that asks for
    /// something (`enforce` or `testing`).
    pub async fn for_nexthop(sts: Option<&MtaSts>, dns: &Dns, nexthop: &Nexthop) -> Option<Gate> {
        let sts = sts?;
        if !nexthop.mx_lookup || nexthop.host.parse::<std::net::IpAddr>().is_ok() {
            return None;
        }
        let domain = nexthop.host.trim_end_matches('.').to_ascii_lowercase();
        let policy = sts.policy(dns.resolver()?, &domain).await?;
        (policy.mode != Mode::None).then_some(Gate { domain, policy })
    }

    pub fn enforces(&self) -> bool {
        self.policy.mode == Mode::Enforce
    }

    /// The peers the policy allows, in order; under `enforce` none left is a deferral.
    pub fn filter(&self, id: QueueId, peers: Vec<Peer>) -> Result<Vec<Peer>, Failure> {
        let mut refused: Vec<&str> = Vec::new();
        for peer in peers.iter().filter(|p| !self.policy.allows(&p.host)) {
            if !refused.contains(&peer.host.as_str()) {
                refused.push(&peer.host);
            }
        }
        if refused.is_empty() {
            return Ok(peers);
        }
        let text = format!(
            "MTA-STS policy of {} (mode {}) does not allow MX host {} (mx: {})",
            self.domain,
            self.policy.mode.as_str(),
            refused.join(", "),
            self.policy.mx.join(", ")
        );
        if !self.enforces() {
            tracing::warn!(target: "smtp", "{id}: {text}; delivering anyway (mode testing)");
            return Ok(peers);
        }
        let allowed: Vec<Peer> = peers
            .into_iter()
            .filter(|p| self.policy.allows(&p.host))
            .collect();
        if allowed.is_empty() {
            return Err(Failure::deferred("4.7.0", text));
        }
        tracing::info!(target: "smtp", "{id}: {text}; trying the others");
        Ok(allowed)
    }

    /// Under `enforce`: the destination's TLS policy raised to `verify` with the MX host
    /// name (a stricter level the operator set, such as `secure`, stays), sending the MX
    /// host name as SNI unless `smtp_tls_servername` names something.
    pub fn tighten(&self, policy: TlsPolicy) -> TlsPolicy {
        if !self.enforces() {
            return policy;
        }
        if policy.level.is_dane() {
            // DANE where the host has TLSA records, else the policy's `verify` (dane.rs).
            return TlsPolicy {
                sts_enforced: true,
                ..policy
            };
        }
        // The MX host name as SNI, as postfix-mta-sts-resolver's `servername=hostname`:
        // servers that pick their certificate by SNI show the one the policy checks.
        let servername = match policy.servername.is_empty() {
            true => "hostname".to_string(),
            false => policy.servername.clone(),
        };
        if policy.level.requires_verification() {
            return TlsPolicy {
                servername,
                ..policy
            };
        }
        TlsPolicy {
            level: SmtpTlsLevel::Verify,
            matches: vec!["hostname".into()],
            tlsa: Vec::new(),
            sts_enforced: true,
            servername,
            ..policy
        }
    }

    /// A failure to open a session under `enforce`, saying whose demand it was.
    pub fn explain(&self, mut failure: Failure) -> Failure {
        failure.text = format!(
            "{} (MTA-STS policy of {}: verified TLS required)",
            failure.text, self.domain
        );
        failure
    }
}
