//! `mailroom dkim keygen`: a new DKIM key pair, the private key written where only its
//! owner can read it, and the DNS TXT record that publishes the public key.
//!
//! Ed25519 keys (RFC 8463) are made with ring (through rcgen, already used for the TLS
//! pair). ring cannot make RSA keys, so RSA keys come from `openssl genpkey`, as Debian's
//! `opendkim-genkey` makes them; the public half is then taken from the key itself.
//! Inputs → outputs: type, bits, domain, selector, directory → the key file
//! `DIR/DOMAIN.SELECTOR.key` (mode 0600, never overwriting one) and the record text.
//! Security stance: the key is written with mode 0600 from the start (no window in which
//! it is readable) and fsynced with its directory.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use rcgen::PublicKeyData;

/// The key types DKIM signers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ed25519,
}

/// ring signs with RSA keys of 2048 to 8192 bits; RFC 8301 asks for at least 1024 and
/// recommends 2048; past 4096 some DNS providers cannot hold the record.
pub const RSA_BITS: std::ops::RangeInclusive<u32> = 2048..=4096;

/// A new key pair: the private key (PEM, PKCS#8) and the `p=` value of its DNS record.
pub struct NewKey {
    pub pem: String,
    pub kind: KeyType,
    pub public: String,
}

/// Makes a key pair of `kind` (`bits` for RSA).
pub fn generate(kind: KeyType, bits: u32) -> Result<NewKey, String> {
    let base64 = base64::engine::general_purpose::STANDARD;
    match kind {
        KeyType::Ed25519 => {
            let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
                .map_err(|e| format!("cannot make an Ed25519 key: {e}"))?;
            Ok(NewKey {
                pem: pair.serialize_pem(),
                kind,
                // RFC 8463 3: the bare 32-byte public key, not a SubjectPublicKeyInfo.
                public: base64.encode(pair.public_key_raw()),
            })
        }
        KeyType::Rsa => {
            if !RSA_BITS.contains(&bits) {
                return Err(format!(
                    "--bits {bits}: RSA keys must have {} to {} bits",
                    RSA_BITS.start(),
                    RSA_BITS.end()
                ));
            }
            let pem = openssl_rsa(bits)?;
            let pair = rcgen::KeyPair::from_pem(&pem)
                .map_err(|e| format!("openssl made a key mailroom cannot read: {e}"))?;
            Ok(NewKey {
                public: base64.encode(pair.subject_public_key_info()),
                pem,
                kind,
            })
        }
    }
}

/// `openssl genpkey -algorithm RSA`: the PEM on its standard output.
fn openssl_rsa(bits: u32) -> Result<String, String> {
    let output = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
        .arg(format!("rsa_keygen_bits:{bits}"))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            format!("cannot run openssl to make an RSA key: {e} (install openssl, or use --type ed25519)")
        })?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        return Err(format!("openssl genpkey failed: {}", why.trim()));
    }
    String::from_utf8(output.stdout).map_err(|_| "openssl wrote no PEM key".to_string())
}

/// The TXT record's value: `v=DKIM1; k=rsa; p=…`.
pub fn record_value(key: &NewKey) -> String {
    let k = match key.kind {
        KeyType::Rsa => "rsa",
        KeyType::Ed25519 => "ed25519",
    };
    format!("v=DKIM1; k={k}; p={}", key.public)
}

/// The zone file line `SELECTOR._domainkey.DOMAIN. IN TXT "…" "…"`: one TXT record whose
/// value is cut into strings of at most 255 bytes (RFC 1035 3.3.14; a 2048-bit RSA key does
/// not fit in one). Resolvers join them back.
pub fn zone_line(selector: &str, domain: &str, value: &str) -> String {
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    format!(
        "{selector}._domainkey.{domain}. IN TXT {}",
        strings.join(" ")
    )
}

/// Writes `pem` to `dir/DOMAIN.SELECTOR.key` with mode 0600 (creating `dir` when missing,
/// mode 0755: the names are no secret, and `mail_owner` must reach the key); an existing
/// file is never replaced.
pub fn write_key(dir: &Path, domain: &str, selector: &str, pem: &str) -> Result<PathBuf, String> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let path = dir.join(format!("{domain}.{selector}.key"));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "{} exists already; remove it first or choose another selector",
                path.display()
            ),
            _ => format!("cannot create {}: {e}", path.display()),
        })?;
    let written = file
        .write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::File::open(dir)?.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&path);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_record_values_are_cut_into_255_byte_strings() {
        let value = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
        let line = zone_line("mail2026", "example.com", &value);
        assert!(line.starts_with("mail2026._domainkey.example.com. IN TXT \"v=DKIM1; k=rsa; p=AAA"));
        let strings: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        assert_eq!(strings.len(), 2, "{line}");
        assert_eq!(strings[0].len(), 255);
        assert_eq!(strings.concat(), value);
    }

    #[test]
    fn ed25519_public_key_is_the_bare_32_bytes() {
        let key = generate(KeyType::Ed25519, 0).unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&key.public)
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert!(key.pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(record_value(&key).starts_with("v=DKIM1; k=ed25519; p="));
    }

    #[test]
    fn rsa_bits_outside_what_ring_signs_with_are_refused() {
        let e = generate(KeyType::Rsa, 1024).err().unwrap();
        assert!(e.contains("2048 to 4096"), "{e}");
    }

    #[test]
    fn a_key_file_is_0600_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("dkim");
        let path = write_key(&sub, "example.com", "s1", "PEM").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode & 0o700, 0o700);
        let again = write_key(&sub, "example.com", "s1", "OTHER").unwrap_err();
        assert!(again.contains("exists already"), "{again}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "PEM");
    }
}
