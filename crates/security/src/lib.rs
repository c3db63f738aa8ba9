//! mailroom's secrets: TLS configurations and the SMTP AUTH password file.
//!
//! # Job
//! * [`tls`]: configuration (`smtpd_tls_cert_file`, `smtpd_tls_key_file`, `myhostname`,
//!   `data_directory`) → a rustls `ServerConfig` for STARTTLS; when no certificate is
//!   configured, a self-signed one made on first start under `<data_directory>/tls/` and reused
//!   after. Also the SMTP client's `ClientConfig`s: opportunistic (`may`, no verification) and
//!   verifying (a CA bundle).
//! * [`passwd`]: `smtpd_sasl_password_file` (`name:$argon2id$…` lines) → a [`passwd::PasswordFile`]
//!   that answers "is this the user's password?"; plus the atomic edits behind
//!   `mailroom passwd add|del|list`.
//!
//! No I/O beyond reading and writing those files: the SMTP server owns sockets and the
//! STARTTLS/AUTH dialogue, and calls in here for the configuration and the yes/no.
//!
//! # Invariants
//! * TLS 1.2 and 1.3 only, ring provider only, chosen per configuration (no process-wide
//!   default provider is installed or needed).
//! * A secret file (private key, password file) is written by temp file + fsync + rename +
//!   fsync of the directory, created with mode 0600 from the first byte: a crash leaves the old
//!   file or the new one, never a torn one, and never a moment where it is world-readable.
//! * An existing certificate or password file is never silently replaced or skipped: a file
//!   that does not parse is an error naming the file (and for the password file, the line).
//!
//! # Security stance
//! Needs no privilege beyond reading the configured files and writing under
//! `data_directory/tls/` (first start only) and the password file (`mailroom passwd` only).
//! Trusts the configuration and the files it names as the operator's word, but refuses a
//! password file other users could read or write. Stores only argon2id hashes; verifying an
//! unknown user costs the same argon2 work as a wrong password, so timing does not reveal which
//! names exist. The opportunistic client configuration verifies no certificate: it protects
//! against passive eavesdropping only, exactly like Postfix's `smtp_tls_security_level = may`.

mod atomic;
/// Crash-safe replacement of a small file (also `mailroom config -e`'s edits).
pub use atomic::{lock_directory_of, write_atomic, Owner};
pub mod passwd;
pub mod stream;
pub mod tls;
