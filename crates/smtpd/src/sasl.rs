//! SASL PLAIN (RFC 4616) and LOGIN for SMTP AUTH (RFC 4954): the base64 exchange as a pure
//! state machine — client lines in, the next challenge or the credentials out. Checking the
//! password is not done here (see `session::auth`).
//!
//! Security stance: these mechanisms send the password in clear, so the session offers them
//! only inside TLS. Decoded text must be UTF-8 without NUL (PLAIN's separators aside) or
//! control characters, so a user name is safe to log. An authorization identity different
//! from the authentication identity is refused (we do not support proxy authorization).

/// The mechanisms offered, in EHLO order.
pub const MECHANISMS: &str = "PLAIN LOGIN";

/// `Username:` and `Password:` in base64, the LOGIN challenges every client expects.
const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "LOGIN" => Some(Mechanism::Login),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// Why an exchange failed before a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    /// The client sent `*`.
    Aborted,
    /// Not base64, not UTF-8, or control characters inside.
    Malformed,
}

/// What the server does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send `334 <challenge>` and pass the client's next line to [`Exchange::respond`].
    Challenge(&'static str),
    Done(Credentials),
    Failed(SaslError),
}

/// One AUTH exchange in progress.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    user: Option<String>,
}

impl Exchange {
    /// Starts `mechanism` with the optional initial response of the AUTH command.
    pub fn start(mechanism: Mechanism, initial: Option<&str>) -> (Exchange, Step) {
        let mut exchange = Exchange {
            mechanism,
            user: None,
        };
        let step = match initial {
            None => match mechanism {
                Mechanism::Plain => Step::Challenge(""),
                Mechanism::Login => Step::Challenge(LOGIN_USERNAME),
            },
            // RFC 4954 section 4: `=` is an empty initial response.
            Some("=") => exchange.respond(""),
            Some(response) => exchange.respond(response),
        };
        (exchange, step)
    }

    /// Handles one client line (without CRLF).
    pub fn respond(&mut self, line: &str) -> Step {
        if line == "*" {
            return Step::Failed(SaslError::Aborted);
        }
        let Some(bytes) = decode_base64(line) else {
            return Step::Failed(SaslError::Malformed);
        };
        match self.mechanism {
            Mechanism::Plain => plain(&bytes),
            Mechanism::Login => self.login(bytes),
        }
    }

    fn login(&mut self, bytes: Vec<u8>) -> Step {
        let Some(text) = clean_text(bytes) else {
            return Step::Failed(SaslError::Malformed);
        };
        match self.user.take() {
            None => {
                self.user = Some(text);
                Step::Challenge(LOGIN_PASSWORD)
            }
            Some(user) => Step::Done(Credentials {
                user,
                password: text,
            }),
        }
    }
}

/// `authzid NUL authcid NUL passwd`.
fn plain(bytes: &[u8]) -> Step {
    let parts: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
    let [authzid, user, password] = parts.as_slice() else {
        return Step::Failed(SaslError::Malformed);
    };
    let text = |b: &[u8]| clean_text(b.to_vec());
    match (text(authzid), text(user), text(password)) {
        (Some(authzid), Some(user), Some(password))
            if !user.is_empty() && (authzid.is_empty() || authzid == user) =>
        {
            Step::Done(Credentials { user, password })
        }
        _ => Step::Failed(SaslError::Malformed),
    }
}

fn clean_text(bytes: Vec<u8>) -> Option<String> {
    let text = String::from_utf8(bytes).ok()?;
    (!text.chars().any(char::is_control)).then_some(text)
}

use base64::Engine as _;

/// Strict RFC 4648 base64 (canonical padding, no whitespace).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// RFC 4648 base64 with padding (for tests and clients).
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, password: &str) -> Step {
        Step::Done(Credentials {
            user: user.into(),
            password: password.into(),
        })
    }

    #[test]
    fn base64_round_trips_and_rejects_junk() {
        for sample in ["", "a", "ab", "abc", "abcd", "\0u\0p"] {
            let encoded = encode_base64(sample.as_bytes());
            assert_eq!(decode_base64(&encoded).as_deref(), Some(sample.as_bytes()));
        }
        assert_eq!(encode_base64(b"\0alice\0secret"), "AGFsaWNlAHNlY3JldA==");
        for junk in ["a", "abc", "ab=c", "a===", "YQ==YQ==", "Y Q=", "YQ=\n"] {
            assert_eq!(decode_base64(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn plain_with_and_without_initial_response() {
        let (_, step) = Exchange::start(Mechanism::Plain, Some("AGFsaWNlAHNlY3JldA=="));
        assert_eq!(step, creds("alice", "secret"));
        let (mut ex, step) = Exchange::start(Mechanism::Plain, None);
        assert_eq!(step, Step::Challenge(""));
        let authzid = encode_base64(b"alice\0alice\0secret");
        assert_eq!(ex.respond(&authzid), creds("alice", "secret"));
    }

    #[test]
    fn plain_refusals() {
        let table: &[&[u8]] = &[
            b"alice\0secret",
            b"bob\0alice\0secret",
            b"\0\0secret",
            b"\0al\x01ice\0x",
            b"\0a\0b\0c",
        ];
        for raw in table {
            let (_, step) = Exchange::start(Mechanism::Plain, Some(&encode_base64(raw)));
            assert_eq!(step, Step::Failed(SaslError::Malformed), "{raw:?}");
        }
        let (_, step) = Exchange::start(Mechanism::Plain, Some("=="));
        assert_eq!(step, Step::Failed(SaslError::Malformed));
        let (mut ex, _) = Exchange::start(Mechanism::Plain, None);
        assert_eq!(ex.respond("*"), Step::Failed(SaslError::Aborted));
    }

    #[test]
    fn login_exchange() {
        let (mut ex, step) = Exchange::start(Mechanism::Login, None);
        assert_eq!(step, Step::Challenge("VXNlcm5hbWU6"));
        assert_eq!(
            ex.respond(&encode_base64(b"alice")),
            Step::Challenge("UGFzc3dvcmQ6")
        );
        assert_eq!(
            ex.respond(&encode_base64(b"secret")),
            creds("alice", "secret")
        );

        let (mut ex, step) = Exchange::start(Mechanism::Login, Some(&encode_base64(b"bob")));
        assert_eq!(step, Step::Challenge("UGFzc3dvcmQ6"));
        assert_eq!(
            ex.respond("not base64!"),
            Step::Failed(SaslError::Malformed)
        );
        assert_eq!(Mechanism::from_name("CRAM-MD5"), None);
    }
}
