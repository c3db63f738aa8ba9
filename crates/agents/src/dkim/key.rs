//! Reading a DKIM private key file: refused when its group or others may read it (it is a
//! secret: anyone holding it can sign mail as the domain) or when it holds no usable key.
//! PEM `PRIVATE KEY` (PKCS#8: RSA or Ed25519, as `mailroom dkim keygen` and `openssl
//! genpkey` write) and `RSA PRIVATE KEY` (PKCS#1, as `opendkim-genkey` writes) are read.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;

use super::DkimError;

/// Key files are small; anything bigger is not one.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The key in `path` and its algorithm's DKIM name (`rsa-sha256`, `ed25519-sha256`).
pub(super) fn load(path: &Path) -> Result<(DkimKey, &'static str), DkimError> {
    let pem = read_secret(path)?;
    let not_a_key = |why: String| DkimError::NotAKey {
        path: path.display().to_string(),
        why,
    };
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| not_a_key(e.to_string()))?;
    match der {
        PrivateKeyDer::Pkcs1(_) => RsaKey::<Sha256>::from_key_der(der)
            .map(|k| (DkimKey::Rsa(k), "rsa-sha256"))
            .map_err(|e| not_a_key(e.to_string())),
        PrivateKeyDer::Pkcs8(pkcs8) => {
            let bytes = pkcs8.secret_pkcs8_der().to_vec();
            if let Ok(rsa) = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(pkcs8)) {
                return Ok((DkimKey::Rsa(rsa), "rsa-sha256"));
            }
            Ed25519Key::from_pkcs8_maybe_unchecked_der(&bytes)
                .map(|k| (DkimKey::Ed25519(k), "ed25519-sha256"))
                .map_err(|e| not_a_key(e.to_string()))
        }
        _ => Err(not_a_key("an EC key; use RSA or Ed25519".into())),
    }
}

/// Checks what [`load`] checks, without keeping the key (for `mailroom check`).
pub fn check_key_file(path: &Path) -> Result<(), DkimError> {
    load(path).map(|_| ())
}

/// The file's bytes, if only its owner may read it. The mode is read from the open file,
/// so it is the mode of the file read, not of one swapped in between.
fn read_secret(path: &Path) -> Result<Vec<u8>, DkimError> {
    let shown = || path.display().to_string();
    let unreadable = |e: std::io::Error| DkimError::Unreadable {
        path: shown(),
        why: io_text(&e),
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(DkimError::Exposed {
            path: shown(),
            mode,
        });
    }
    if !meta.is_file() || meta.len() > MAX_KEY_FILE {
        return Err(DkimError::NotAKey {
            path: shown(),
            why: "not a small regular file".into(),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(unreadable)?;
    Ok(bytes)
}

/// An I/O error as the C library says it, without Rust's "(os error N)".
fn io_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}
