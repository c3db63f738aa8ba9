//! A certificate authority made for one test ([`TestCa`]): server certificates for any names,
//! written as PEM files a server (Postfix, the scripted peers) and a client's
//! `smtp_tls_CAfile` can use. Keys are fresh per test and never leave its temp dir.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A self-signed CA and its key.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A server certificate's files.
pub struct ServerCert {
    /// The leaf certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

impl TestCa {
    /// A CA named `name` (its subject CN).
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate as PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes the CA certificate to `dir/file` (for `smtp_tls_CAfile`).
    pub fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, &self.pem).expect("write CA file");
        path
    }

    /// A server certificate for `names` (DNS names or IP addresses), files `dir/stem.crt`
    /// and `dir/stem.key` (mode 0600).
    pub fn issue(&self, names: &[&str], dir: &Path, stem: &str) -> ServerCert {
        use std::os::unix::fs::PermissionsExt;
        let key = KeyPair::generate().expect("server key");
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("server params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("server"),
        );
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        let files = ServerCert {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&files.key, private).expect("chmod key");
        files
    }
}
