//! DKIM signing (RFC 6376) of outgoing mail: the SMTP client asks [`Signer::sign`] for a
//! `DKIM-Signature` field just before a message leaves, after every rewrite mailroom makes
//! (cleanup, the content filter, the SMTP client's own line breaking), so the signature
//! covers exactly the bytes the next server receives.
//!
//! Inputs → outputs: `dkim_sign` ([`DkimSettings::from_config`]) → a [`Signer`] with every
//! key loaded and checked ([`Signer::load`]); per message the envelope sender and the message
//! in its wire form (CR LF, lines broken as they will be sent, before dot-stuffing) → the
//! field to put on top, or `None` (no configured domain, already signed for that domain, or
//! a signing error, which is logged: the mail then goes unsigned rather than waiting).
//!
//! Which mail is signed: the domain of the first `From:` address, else the envelope
//! sender's domain, when it is a `dkim_sign` domain (exact match, case-insensitive).
//! Deliveries to the content filter are not signed (the filter may change the message; it
//! comes back through `reinject_listen` and is signed when it finally leaves), and a message
//! that already carries a signature with that `d=` (signed by a filter, or by another
//! mailroom on the way) is not signed twice. Local deliveries never pass here.
//!
//! The signature: `rsa-sha256` or `ed25519-sha256` (the key's type, RFC 8463), `c=relaxed/
//! relaxed`, `t=` now, the fields of [`SIGNED_FIELDS`], with `From` listed once more than it
//! occurs (oversigned: a second `From:` added later breaks the signature), and fields that
//! are absent listed too, so they cannot be added later either.
//!
//! Security stance: private keys are secrets: a key file readable by its group or by others
//! is refused ([`DkimError::Exposed`]), so is one that cannot be read, at start, at reload and
//! in `mailroom check`. Messages are untrusted input: a malformed one gets no signature,
//! never a panic. Runs as `mail_owner` in the daemon, which must be able to read the keys.

mod key;
pub mod keygen;

use std::path::PathBuf;
use std::sync::Arc;

use config::Config;
use envelope::QueueId;
use mail_auth::common::crypto::DkimKey;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};

pub use key::check_key_file;

/// The header fields signed (RFC 6376 5.4.1's list of what should be), in this order;
/// `From` is added once more to oversign it.
pub const SIGNED_FIELDS: &[&str] = &[
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "In-Reply-To",
    "References",
    "From",
];

/// What the signer needs from the configuration: the `dkim_sign` entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DkimSettings {
    pub keys: Vec<config::DkimSign>,
}

impl DkimSettings {
    pub fn from_config(cfg: &Config) -> DkimSettings {
        DkimSettings {
            keys: cfg.dkim_sign.clone(),
        }
    }
}

/// Why the signer cannot start; each names the key file and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("dkim_sign: key file {path} is readable by group or others (mode {mode:04o}); chmod 600 {path}")]
    Exposed { path: String, mode: u32 },
    #[error("dkim_sign: cannot read key file {path}: {why}")]
    Unreadable { path: String, why: String },
    #[error("dkim_sign: key file {path} holds no RSA or Ed25519 private key in PEM form ({why})")]
    NotAKey { path: String, why: String },
    #[error("dkim_sign: domain {0} is listed twice")]
    Twice(String),
}

/// One domain's signer.
struct DomainKey {
    domain: String,
    selector: String,
    algorithm: &'static str,
    signer: DkimSigner<DkimKey, Done>,
}

/// The loaded keys; cheap to clone.
#[derive(Clone, Default)]
pub struct Signer {
    keys: Arc<Vec<DomainKey>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let domains: Vec<&str> = self.keys.iter().map(|k| k.domain.as_str()).collect();
        f.debug_struct("Signer").field("domains", &domains).finish()
    }
}

impl Signer {
    /// Loads every key; the first bad one is the error.
    pub fn load(settings: &DkimSettings) -> Result<Signer, DkimError> {
        let mut keys: Vec<DomainKey> = Vec::with_capacity(settings.keys.len());
        for entry in &settings.keys {
            if keys.iter().any(|k| k.domain == entry.domain) {
                return Err(DkimError::Twice(entry.domain.clone()));
            }
            let (key, algorithm) = key::load(&entry.key)?;
            let signer = DkimSigner::from_key(key)
                .domain(entry.domain.clone())
                .selector(entry.selector.clone())
                .headers(SIGNED_FIELDS.iter().copied())
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed);
            keys.push(DomainKey {
                domain: entry.domain.clone(),
                selector: entry.selector.clone(),
                algorithm,
                signer,
            });
        }
        Ok(Signer {
            keys: Arc::new(keys),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `DKIM-Signature` field (CR LF line ends, folded) for `message` (wire form: CR LF,
    /// before dot-stuffing), or `None` when this message is not ours to sign.
    pub fn sign(&self, id: QueueId, sender: &str, message: &[u8]) -> Option<Vec<u8>> {
        if self.keys.is_empty() {
            return None;
        }
        let head = header_section(message);
        let key = self.key_for(&from_domain(head), sender)?;
        if signed_by(head, &key.domain) {
            tracing::debug!(target: "smtp", "{id}: already DKIM-signed for d={}", key.domain);
            return None;
        }
        match key.signer.sign(message) {
            Ok(signature) => {
                tracing::info!(
                    target: "smtp",
                    "{id}: DKIM-Signature field added (s={}, d={}, a={})",
                    key.selector,
                    key.domain,
                    key.algorithm
                );
                Some(signature.to_header().into_bytes())
            }
            Err(e) => {
                tracing::warn!(target: "smtp", "{id}: cannot DKIM-sign for d={}: {e}; sending it unsigned", key.domain);
                None
            }
        }
    }

    /// The key of the From: domain, else of the envelope sender's domain.
    fn key_for(&self, from: &Option<String>, sender: &str) -> Option<&DomainKey> {
        let sender_domain = sender
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase());
        let key = [from.as_deref(), sender_domain.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|domain| self.keys.iter().find(|k| k.domain == domain));
        key
    }

    /// The key files, for `mailroom check`.
    pub fn key_files(settings: &DkimSettings) -> Vec<PathBuf> {
        settings.keys.iter().map(|k| k.key.clone()).collect()
    }
}

/// The header section of `message`, up to and including the empty line (all of it when
/// there is no body).
fn header_section(message: &[u8]) -> &[u8] {
    if message.starts_with(b"\r\n") {
        return &message[..2];
    }
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => &message[..at + 4],
        None => message,
    }
}

/// The domain of the first `From:` address, lower case.
fn from_domain(head: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(head)?;
    let address = parsed.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    Some(domain.trim().trim_end_matches('.').to_ascii_lowercase())
}

/// True when a `DKIM-Signature:` field in `head` has `d=domain`.
fn signed_by(head: &[u8], domain: &str) -> bool {
    unfolded_fields(head)
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("DKIM-Signature"))
        .any(|(_, value)| {
            value.split(';').any(|tag| {
                let tag: String = tag.chars().filter(|c| !c.is_whitespace()).collect();
                tag.strip_prefix("d=")
                    .is_some_and(|d| d.trim_end_matches('.').eq_ignore_ascii_case(domain))
            })
        })
}

/// The header fields as (name, unfolded value); lines that are not fields are skipped.
fn unfolded_fields(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.to_string()));
        }
    }
    fields
}

#[cfg(test)]
mod tests;
