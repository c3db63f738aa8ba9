//! The TLS 1.3 details of Postfix's one-line TLS summary (tls_misc.c `tls_log_summary`):
//! ` key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256`, or
//! ` … server-signature RSA-PSS (2048 bits) server-digest SHA256`; Ed25519 has no digest.
//! Postfix adds them only for TLS 1.3 sessions, and so does mailroom.
//!
//! Inputs → outputs: the negotiated group, the server's signature scheme (recorded by the
//! certificate verifier) and its certificate → the text appended after `(256/256 bits)`.
//! Security stance: the certificate is untrusted input; the small DER walk here reads
//! lengths with bounds checks and gives up (no detail) on anything unexpected.

use std::sync::{Arc, Mutex};

use rustls::{NamedGroup, SignatureScheme};

/// Where the verifier records the scheme the server signed the handshake with.
pub(crate) type SchemeSlot = Arc<Mutex<Option<SignatureScheme>>>;

/// ` key-exchange … server-signature … server-digest …` (empty before TLS 1.3).
pub(crate) fn details(conn: &rustls::ClientConnection, scheme: Option<SignatureScheme>) -> String {
    if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return String::new();
    }
    let mut text = String::new();
    if let Some(group) = conn.negotiated_key_exchange_group() {
        text.push_str(&format!(" key-exchange {}", group_name(group.name())));
    }
    let Some(scheme) = scheme else {
        return text;
    };
    let rsa_bits = || {
        conn.peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| rsa_modulus_bits(cert.as_ref()))
    };
    let (name, detail, digest) = match scheme {
        SignatureScheme::ECDSA_NISTP256_SHA256 => {
            ("ECDSA", Some("prime256v1".into()), Some("SHA256"))
        }
        SignatureScheme::ECDSA_NISTP384_SHA384 => {
            ("ECDSA", Some("secp384r1".into()), Some("SHA384"))
        }
        SignatureScheme::ECDSA_NISTP521_SHA512 => {
            ("ECDSA", Some("secp521r1".into()), Some("SHA512"))
        }
        SignatureScheme::ED25519 => ("ED25519", None, None),
        SignatureScheme::ED448 => ("ED448", None, None),
        SignatureScheme::RSA_PSS_SHA256 => (
            "RSA-PSS",
            rsa_bits().map(|b| format!("{b} bits")),
            Some("SHA256"),
        ),
        SignatureScheme::RSA_PSS_SHA384 => (
            "RSA-PSS",
            rsa_bits().map(|b| format!("{b} bits")),
            Some("SHA384"),
        ),
        SignatureScheme::RSA_PSS_SHA512 => (
            "RSA-PSS",
            rsa_bits().map(|b| format!("{b} bits")),
            Some("SHA512"),
        ),
        _ => return text,
    };
    text.push_str(&format!(" server-signature {name}"));
    if let Some(detail) = detail {
        text.push_str(&format!(" ({detail})"));
    }
    if let Some(digest) = digest {
        text.push_str(&format!(" server-digest {digest}"));
    }
    text
}

/// OpenSSL's names of the TLS groups.
fn group_name(group: NamedGroup) -> String {
    match group {
        NamedGroup::X25519 => "X25519".into(),
        NamedGroup::secp256r1 => "prime256v1".into(),
        NamedGroup::secp384r1 => "secp384r1".into(),
        NamedGroup::secp521r1 => "secp521r1".into(),
        NamedGroup::X448 => "X448".into(),
        other => format!("{other:?}"),
    }
}

/// One DER item at the start of `input`: (tag, content, rest).
fn item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The RSA modulus size of a certificate's key (None for other keys or odd DER).
fn rsa_modulus_bits(cert: &[u8]) -> Option<usize> {
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let der = rustls::pki_types::CertificateDer::from(cert);
    let ee = webpki::EndEntityCert::try_from(&der).ok()?;
    let spki = ee.subject_public_key_info();
    let (_, spki, _) = item(spki.as_ref())?;
    let (_, algorithm, key) = item(spki)?;
    let (_, oid, _) = item(algorithm)?;
    if oid != RSA_ENCRYPTION {
        return None;
    }
    let (_, bits, _) = item(key)?;
    // The BIT STRING's first byte counts unused bits; then RSAPublicKey ::= SEQUENCE { n, e }.
    let (_, public, _) = item(bits.get(1..)?)?;
    let (_, modulus, _) = item(public)?;
    let significant: &[u8] = match modulus.iter().position(|&b| b != 0) {
        Some(start) => &modulus[start..],
        None => return None,
    };
    Some(significant.len() * 8 - significant[0].leading_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_key_sizes_are_read_from_the_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256);
        // rcgen may not generate RSA keys with ring; then only the EC case is checked.
        if let Ok(key) = key {
            let cert = rcgen::CertificateParams::new(vec!["mx.example".to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            assert_eq!(rsa_modulus_bits(cert.der()), Some(2048));
        }
        let ec = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example".to_string()])
            .unwrap()
            .self_signed(&ec)
            .unwrap();
        assert_eq!(rsa_modulus_bits(cert.der()), None);
        assert_eq!(rsa_modulus_bits(b"\x30\x82\xff"), None, "truncated DER");
    }
}
