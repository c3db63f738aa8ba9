//! Certificate checks of the SMTP client per TLS level, and Postfix's words for the result.
//!
//! Every TLS session gets a fresh [`PolicyVerifier`]: it checks the chain against the trust
//! anchors (`smtp_tls_CAfile`, else the system store) and the names of the level's match
//! list, records the verdict ([`Trust`]) for the log line, and fails the handshake only
//! when the level demands verification (verify, secure). At may/encrypt the verdict is only
//! logged, as Postfix logs `Untrusted TLS connection established to …`.
//!
//! Name rules (Postfix's `smtp_tls_*_cert_match`): `hostname` = the MX host name,
//! `nexthop` = the destination domain, `dot-nexthop` = any subdomain of it, `.example.com`
//! = any subdomain of example.com, anything else = that name. Exact names are matched by
//! webpki (wildcards included); subdomain rules against the certificate's DNS names.
//! Invariants: the handshake signature is always checked against the presented key; a
//! verify/secure session is never established with a certificate that failed a check.
//! Security stance: the certificate is untrusted input, parsed by webpki only.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::dane::Tlsa;
use super::policy::TlsPolicy;
use super::tls_log::SchemeSlot;

/// The trust anchors and crypto provider every session's verifier shares.
pub(crate) struct TlsContext {
    provider: Arc<CryptoProvider>,
    /// `smtp_tls_CAfile` or the system store; the error when neither could be loaded.
    roots: Result<Arc<RootCertStore>, String>,
}

impl TlsContext {
    /// Loads `ca_file` (empty = the system store). A failure is kept, not fatal: it defers
    /// only the destinations whose level needs verification.
    pub fn load(ca_file: &str) -> TlsContext {
        let path = (!ca_file.is_empty()).then(|| std::path::Path::new(ca_file));
        let roots = security::tls::root_store(path)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        TlsContext {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            roots,
        }
    }

    /// Why verification is impossible, if it is.
    pub fn problem(&self) -> Option<&str> {
        self.roots.as_ref().err().map(String::as_str)
    }

    /// A client configuration for one session with the MX host `hostname` of `nexthop`
    /// under `policy` (its TLS versions, its SNI name), and the slots its verifier writes
    /// to. Fails only when the level needs verification and no trust anchors could be
    /// loaded, or when the policy leaves no TLS version.
    pub fn client_config(
        &self,
        policy: &TlsPolicy,
        hostname: &str,
        nexthop: &str,
    ) -> Result<Handshake, String> {
        let enforce = policy.level.requires_verification();
        // DANE needs no CA: the TLSA records are the trust anchors.
        let needs_roots = enforce && policy.tlsa.is_empty();
        if let (true, Some(why)) = (needs_roots, self.problem()) {
            return Err(format!(
                "TLS is required, but our TLS engine is unavailable: {why}"
            ));
        }
        let (exact, parents) = PolicyVerifier::rules(&policy.matches, hostname, nexthop);
        let verdict = Verdict::default();
        let scheme = SchemeSlot::default();
        let verifier = PolicyVerifier {
            provider: self.provider.clone(),
            roots: self.roots.as_ref().ok().cloned(),
            exact,
            parents,
            tlsa: policy.tlsa.clone(),
            enforce,
            verdict: verdict.clone(),
            scheme: scheme.clone(),
        };
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&protocol_versions(policy)?)
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let sni = sni_name(policy, hostname, nexthop);
        config.enable_sni = sni.is_some();
        Ok(Handshake {
            config: Arc::new(config),
            verdict,
            scheme,
            sni,
        })
    }
}

/// One session's TLS client configuration and what its verifier reports.
pub(crate) struct Handshake {
    pub config: Arc<ClientConfig>,
    pub verdict: Verdict,
    pub scheme: SchemeSlot,
    /// The SNI name; `None` sends none (Postfix's default without DANE).
    pub sni: Option<ServerName<'static>>,
}

/// The policy's TLS versions as rustls's (TLS 1.3 first).
fn protocol_versions(
    policy: &TlsPolicy,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let wanted = policy.versions();
    let mut versions = Vec::new();
    if wanted.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if wanted.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if versions.is_empty() {
        return Err("TLS is required, but the TLS protocol settings allow no version".into());
    }
    Ok(versions)
}

/// Postfix's SNI rule: DANE sends the MX host name (RFC 7672 8.1); otherwise
/// `smtp_tls_servername`: empty = none, `hostname`, `nexthop`, or that name.
fn sni_name(policy: &TlsPolicy, hostname: &str, nexthop: &str) -> Option<ServerName<'static>> {
    let name = match policy.servername.as_str() {
        _ if !policy.tlsa.is_empty() => hostname,
        "" => return None,
        "hostname" => hostname,
        "nexthop" => nexthop,
        other => other,
    };
    let name = name.trim_end_matches('.').to_string();
    match ServerName::try_from(name) {
        Ok(ServerName::DnsName(dns)) => Some(ServerName::DnsName(dns)),
        _ => None,
    }
}

/// What a certificate proved (Postfix's words at the start of the log line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Trusted chain and a matching name.
    Verified,
    /// Trusted chain, no matching name.
    Trusted,
    /// The chain does not lead to a trusted CA (or no CA is configured).
    Untrusted,
}

impl Trust {
    pub fn word(&self) -> &'static str {
        match self {
            Trust::Verified => "Verified",
            Trust::Trusted => "Trusted",
            Trust::Untrusted => "Untrusted",
        }
    }
}

/// The verdict and, when not verified, why (for the log).
pub(crate) type Verdict = Arc<Mutex<Option<(Trust, String)>>>;

/// The verifier of one TLS session.
#[derive(Debug)]
pub(crate) struct PolicyVerifier {
    pub provider: Arc<CryptoProvider>,
    pub roots: Option<Arc<RootCertStore>>,
    /// Exact names (`hostname`, `nexthop` and literal names already resolved).
    pub exact: Vec<String>,
    /// Domains whose strict subdomains match (`dot-nexthop`, `.domain`), lower case.
    pub parents: Vec<String>,
    /// DANE: the usable TLSA records of the MX host; when present they, not the CAs,
    /// decide (RFC 7672 3).
    pub tlsa: Vec<Tlsa>,
    /// Fail the handshake unless [`Trust::Verified`].
    pub enforce: bool,
    pub verdict: Verdict,
    /// The scheme of the server's TLS 1.3 handshake signature (for the log line).
    pub scheme: SchemeSlot,
}

impl PolicyVerifier {
    /// Resolves the rules of `matches` for the MX host `hostname` of `nexthop`.
    pub fn rules(matches: &[String], hostname: &str, nexthop: &str) -> (Vec<String>, Vec<String>) {
        let (mut exact, mut parents) = (Vec::new(), Vec::new());
        let clean = |name: &str| name.trim_end_matches('.').to_ascii_lowercase();
        for rule in matches {
            match rule.as_str() {
                "hostname" => exact.push(clean(hostname)),
                "nexthop" => exact.push(clean(nexthop)),
                "dot-nexthop" => parents.push(clean(nexthop)),
                other => match other.strip_prefix('.') {
                    Some(domain) => parents.push(clean(domain)),
                    None => exact.push(clean(other)),
                },
            }
        }
        (exact, parents)
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> (Trust, String) {
        if !self.tlsa.is_empty() {
            return self.dane_check(end_entity, intermediates, now);
        }
        let Some(roots) = &self.roots else {
            return (Trust::Untrusted, "no trusted CA certificates".into());
        };
        let cert = match ParsedCertificate::try_from(end_entity) {
            Ok(cert) => cert,
            Err(e) => return (Trust::Untrusted, e.to_string()),
        };
        let algorithms = self.provider.signature_verification_algorithms.all;
        if let Err(e) =
            verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, algorithms)
        {
            return (Trust::Untrusted, describe(&e));
        }
        match self.name_matches(&cert, end_entity) {
            Ok(()) => (Trust::Verified, String::new()),
            Err(presented) => (
                Trust::Trusted,
                format!(
                    "certificate names {presented:?} match none of {:?}",
                    self.wanted()
                ),
            ),
        }
    }

    /// RFC 7672 3: a DANE-EE(3) record matching the server's certificate (no name or
    /// date checks, 3.1.1), or a DANE-TA(2) record matching a certificate of the chain the
    /// server sent, which then must sign a chain to a certificate naming the host (3.1.2).
    fn dane_check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> (Trust, String) {
        let (ee, ta): (Vec<&Tlsa>, Vec<&Tlsa>) = self.tlsa.iter().partition(|r| !r.trust_anchor);
        if ee.iter().any(|r| r.matches(end_entity)) {
            return (Trust::Verified, String::new());
        }
        let Ok(cert) = ParsedCertificate::try_from(end_entity) else {
            return (Trust::Untrusted, "unparsable server certificate".into());
        };
        let algorithms = self.provider.signature_verification_algorithms.all;
        let mut why = "no TLSA record matches the server certificate or its chain".to_string();
        for anchor in intermediates
            .iter()
            .filter(|c| ta.iter().any(|r| r.matches(c)))
        {
            let Ok(anchor) = webpki::anchor_from_trusted_cert(anchor) else {
                continue;
            };
            let mut roots = RootCertStore::empty();
            roots.roots.push(anchor.to_owned());
            let chain = verify_server_cert_signed_by_trust_anchor(
                &cert,
                &roots,
                intermediates,
                now,
                algorithms,
            );
            why = match chain.map(|()| self.name_matches(&cert, end_entity)) {
                Ok(Ok(())) => return (Trust::Verified, String::new()),
                Ok(Err(names)) => format!(
                    "certificate names {names:?} match none of {:?}",
                    self.wanted()
                ),
                Err(e) => describe(&e),
            };
        }
        (Trust::Untrusted, why)
    }

    /// Ok when a rule matches; else the names the certificate presents. Exact names are
    /// checked by rustls (wildcards as RFC 6125 has them); the `.domain` rules (Postfix's
    /// dot-nexthop) look at the certificate's DNS names, read with webpki.
    fn name_matches(
        &self,
        cert: &ParsedCertificate<'_>,
        end_entity: &CertificateDer<'_>,
    ) -> Result<(), Vec<String>> {
        let exact = self.exact.iter().any(|name| {
            ServerName::try_from(name.to_string())
                .is_ok_and(|server_name| verify_server_name(cert, &server_name).is_ok())
        });
        if exact {
            return Ok(());
        }
        let presented: Vec<String> = webpki::EndEntityCert::try_from(end_entity)
            .map(|ee| ee.valid_dns_names().map(str::to_ascii_lowercase).collect())
            .unwrap_or_default();
        let under = |name: &str, parent: &str| {
            let name = name.trim_start_matches("*.");
            name.ends_with(&format!(".{parent}"))
        };
        if presented
            .iter()
            .any(|name| self.parents.iter().any(|parent| under(name, parent)))
        {
            return Ok(());
        }
        Err(presented)
    }

    fn wanted(&self) -> Vec<String> {
        let parents = self.parents.iter().map(|p| format!(".{p}"));
        self.exact.iter().cloned().chain(parents).collect()
    }
}

/// A chain error in words an operator can act on.
fn describe(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "untrusted issuer (not signed by a CA in smtp_tls_CAfile or the system store)".into()
        }
        rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
        | rustls::Error::InvalidCertificate(CertificateError::Expired) => {
            "certificate has expired".into()
        }
        other => other.to_string(),
    }
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (trust, why) = self.check(end_entity, intermediates, now);
        let verified = trust == Trust::Verified;
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some((trust, why.clone()));
        if self.enforce && !verified {
            return Err(rustls::Error::General(why));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        *self.scheme.lock().unwrap_or_else(|e| e.into_inner()) = Some(dss.scheme);
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519
/// server-signature ECDSA (prime256v1) server-digest SHA256`: the protocol and cipher in
/// OpenSSL's names and the TLS 1.3 details ([`super::tls_log`]), as Postfix logs them.
pub(crate) fn describe_session(
    conn: &rustls::ClientConnection,
    scheme: Option<SignatureScheme>,
) -> String {
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let (name, bits) = openssl_cipher(&suite);
    let details = super::tls_log::details(conn, scheme);
    format!("{protocol} with cipher {name} ({bits}/{bits} bits){details}")
}

/// rustls's IANA-style suite name → OpenSSL's name and the key size.
fn openssl_cipher(iana: &str) -> (String, u32) {
    let bits = if iana.contains("AES_128") { 128 } else { 256 };
    if let Some(rest) = iana.strip_prefix("TLS13_") {
        return (format!("TLS_{rest}"), bits);
    }
    let Some(rest) = iana.strip_prefix("TLS_ECDHE_") else {
        return (iana.to_string(), bits);
    };
    let Some((auth, cipher)) = rest.split_once("_WITH_") else {
        return (iana.to_string(), bits);
    };
    let cipher = cipher
        .replace("AES_128_GCM", "AES128-GCM")
        .replace("AES_256_GCM", "AES256-GCM")
        .replace("CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305")
        .replace('_', "-");
    (format!("ECDHE-{auth}-{cipher}"), bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names_are_openssl_names() {
        assert_eq!(
            openssl_cipher("TLS13_AES_256_GCM_SHA384"),
            ("TLS_AES_256_GCM_SHA384".to_string(), 256)
        );
        assert_eq!(
            openssl_cipher("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            ("ECDHE-RSA-AES128-GCM-SHA256".to_string(), 128)
        );
        assert_eq!(
            openssl_cipher("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
            ("ECDHE-ECDSA-CHACHA20-POLY1305".to_string(), 256)
        );
    }

    #[test]
    fn match_rules_resolve_hostname_nexthop_and_subdomains() {
        let rules = [
            "hostname",
            "nexthop",
            "dot-nexthop",
            ".Example.COM",
            "mx.other.",
        ]
        .map(String::from);
        let (exact, parents) = PolicyVerifier::rules(&rules, "MX1.example.org", "example.org");
        assert_eq!(exact, ["mx1.example.org", "example.org", "mx.other"]);
        assert_eq!(parents, ["example.org", "example.com"]);
    }
}
