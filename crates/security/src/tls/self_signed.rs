//! The embedded default's certificate: made once, on the first start with no
//! `smtpd_tls_cert_file`, then reused so clients that pin it (or just remember it) see the same
//! key across restarts.
//!
//! Layout: `<data_directory>/tls/` (mode 0700) holding `key.pem` (PKCS#8 ECDSA P-256, mode
//! 0600) and `cert.pem` (mode 0644). The key is written before the certificate, each atomically,
//! so a crash leaves either nothing, a lone key (remade on the next start), or a complete pair;
//! a `cert.pem` never exists without its key. The directory is locked while the pair is made so
//! two processes starting at once cannot write a mismatched pair.
//!
//! The certificate names `myhostname`, `localhost`, `127.0.0.1` and `::1`, and is valid from
//! 1975 to 4096 (rcgen's default): nobody can verify a self-signed certificate, so an expiry
//! date would protect no one and would only break opportunistic TLS one day. After changing
//! `myhostname`, delete the two files to get a certificate with the new name.

use super::TlsError;
use crate::atomic;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// File name of the self-signed certificate under `<data_directory>/tls/`.
pub const SELF_SIGNED_CERT_FILE: &str = "cert.pem";
/// File name of its private key under `<data_directory>/tls/`.
pub const SELF_SIGNED_KEY_FILE: &str = "key.pem";

/// Returns `(cert, key)` paths in `dir`, making the pair for `hostname` first if either file
/// is missing. An existing complete pair is never overwritten, even if it does not load: the
/// caller reports that, and the operator decides.
pub(super) fn ensure(dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join(SELF_SIGNED_CERT_FILE);
    let key_path = dir.join(SELF_SIGNED_KEY_FILE);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Write { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_error(dir))?;
    let _lock = atomic::lock_directory_of(&cert_path).map_err(write_error(dir))?;
    // Someone else may have made the pair while we waited for the lock.
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let (cert_pem, key_pem) = generate(hostname)?;
    atomic::write_atomic(&key_path, key_pem.as_bytes(), 0o600, None)
        .map_err(write_error(&key_path))?;
    atomic::write_atomic(&cert_path, cert_pem.as_bytes(), 0o644, None)
        .map_err(write_error(&cert_path))?;
    Ok((cert_path, key_path))
}

/// A fresh key and a self-signed certificate for `hostname` (+ localhost names), as PEM.
fn generate(hostname: &str) -> Result<(String, String), TlsError> {
    let failed = |e: rcgen::Error| TlsError::Generate {
        hostname: hostname.to_string(),
        detail: e.to_string(),
    };
    let mut names: Vec<String> = Vec::new();
    for name in [hostname, "localhost", "127.0.0.1", "::1"] {
        if !name.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name.to_string());
        }
    }
    let mut params = CertificateParams::new(names).map_err(failed)?;
    let mut subject = DistinguishedName::new();
    let common_name = if hostname.is_empty() {
        "localhost"
    } else {
        hostname
    };
    subject.push(DnType::CommonName, common_name);
    subject.push(DnType::OrganizationName, "mailroom self-signed");
    params.distinguished_name = subject;
    let key = KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}
