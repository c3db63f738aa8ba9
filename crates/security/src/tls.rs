//! TLS configurations for the SMTP server (STARTTLS) and the SMTP client.
//!
//! * [`server_config`]: the operator's PEM pair (`smtpd_tls_cert_file`, `smtpd_tls_key_file`),
//!   or, when both are empty, a self-signed pair made on first start and reused after
//!   (see `self_signed.rs`), so STARTTLS works out of the box.
//! * [`client_config_may`]: Postfix's `smtp_tls_security_level = may`: encrypt, verify nothing.
//! * [`client_config_verify`]: verify the server against a CA bundle (a given file, or the
//!   system's).
//!
//! Every configuration uses the `ring` provider explicitly (no process-wide default to
//! install or to race on) and offers TLS 1.3 and 1.2 only.

mod self_signed;
#[cfg(test)]
mod tests;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use self_signed::{SELF_SIGNED_CERT_FILE, SELF_SIGNED_KEY_FILE};

/// The protocol versions every configuration here allows: nothing older than TLS 1.2
/// (RFC 8996 deprecates 1.0 and 1.1; rustls never implemented them anyway).
pub const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// CA bundles tried, in order, when [`client_config_verify`] is given no file (Debian/Ubuntu/
/// Alpine, Fedora/RHEL, then BSD/macOS-style layouts).
pub const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// What went wrong building a TLS configuration. Each message names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("smtpd_tls_cert_file and smtpd_tls_key_file must both be set or both be empty (only {set} is set)")]
    HalfConfigured { set: &'static str },
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: not valid PEM: {detail}", path.display())]
    Pem { path: PathBuf, detail: String },
    #[error("{}: no CERTIFICATE block found (expected a PEM certificate chain, leaf first)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no private key found (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("{} with {}: unusable certificate/key pair: {source}", cert.display(), key.display())]
    BadPair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot make a self-signed certificate for {hostname:?}: {detail}")]
    Generate { hostname: String, detail: String },
    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("no CA bundle found (tried {tried}); give one explicitly")]
    NoCaBundle { tried: String },
    #[error("{}: no usable CA certificate in the bundle", path.display())]
    EmptyCaBundle { path: PathBuf },
}

/// What [`server_config`] takes from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsSettings {
    /// `smtpd_tls_cert_file`; empty (with `key_file`) = the self-signed pair.
    pub cert_file: String,
    /// `smtpd_tls_key_file`.
    pub key_file: String,
    /// Where the self-signed pair is kept (`<data_directory>/tls`).
    pub self_signed_directory: PathBuf,
    /// The name the self-signed certificate is made for (`myhostname`).
    pub hostname: String,
}

/// The STARTTLS server configuration: the configured PEM pair, or the self-signed one under
/// `self_signed_directory` when both `smtpd_tls_cert_file` and `smtpd_tls_key_file` are empty.
///
/// The cert file holds the chain, leaf first; the key file a PKCS#8, PKCS#1 (RSA) or SEC1 (EC)
/// key. Both may name the same combined file. The key must match the leaf certificate.
pub fn server_config(settings: &ServerTlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert, key) = match (settings.cert_file.is_empty(), settings.key_file.is_empty()) {
        (true, true) => self_signed::ensure(&settings.self_signed_directory, &settings.hostname)?,
        (false, false) => (
            PathBuf::from(&settings.cert_file),
            PathBuf::from(&settings.key_file),
        ),
        (false, true) => {
            return Err(TlsError::HalfConfigured {
                set: "smtpd_tls_cert_file",
            })
        }
        (true, false) => {
            return Err(TlsError::HalfConfigured {
                set: "smtpd_tls_key_file",
            })
        }
    };
    server_config_from_files(&cert, &key)
}

/// The STARTTLS server configuration from an explicit PEM pair.
pub fn server_config_from_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certificates(cert)?;
    let private_key = load_private_key(key)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|source| TlsError::BadPair {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        })?;
    Ok(Arc::new(config))
}

/// Opportunistic client TLS (Postfix's `may`): encrypts against passive eavesdroppers, accepts
/// any certificate, any name, expired or not. The handshake signature is still checked against
/// the presented certificate's key, so the session is at least bound to that key.
pub fn client_config_may() -> Arc<ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(AcceptAnyCertificate {
        provider: provider.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

/// Verifying client TLS (Postfix's `secure`/`verify`): the server's chain must lead to a CA in
/// `ca_file` (PEM bundle), or when `None` in the first of [`SYSTEM_CA_FILES`] that exists, and
/// must name the host the caller passes to the connection.
pub fn client_config_verify(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = root_store(ca_file)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The trust anchors of `ca_file` (PEM bundle), or when `None` of the first of
/// [`SYSTEM_CA_FILES`] that exists.
pub fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let path = match ca_file {
        Some(p) => p.to_path_buf(),
        None => SYSTEM_CA_FILES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| TlsError::NoCaBundle {
                tried: SYSTEM_CA_FILES.join(", "),
            })?,
    };
    let mut roots = RootCertStore::empty();
    // A system bundle may hold a few certificates webpki cannot parse; skip them, as every
    // TLS client does, but refuse a bundle where nothing at all is usable.
    let (added, _ignored) = roots.add_parsable_certificates(load_certificates(&path)?);
    if added == 0 {
        return Err(TlsError::EmptyCaBundle { path });
    }
    Ok(roots)
}

/// Every `CERTIFICATE` block in `path`, in order (other blocks, e.g. a key, are skipped).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// The first private key block in `path`: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        other => pem_error(path, other),
    })
}

fn pem_error(path: &Path, error: pem::Error) -> TlsError {
    let path = path.to_path_buf();
    match error {
        pem::Error::Io(source) => TlsError::Read { path, source },
        other => TlsError::Pem {
            path,
            detail: other.to_string(),
        },
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The `may` verifier: trusts every certificate, but checks handshake signatures with it.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
