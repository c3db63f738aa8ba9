//! The HTTP server's settings, built from the configuration at start (before the privilege
//! drop, so a token file only root can read works).
//!
//! Rules (the daemon refuses to start, exit 78, when one fails — a listener the operator
//! did not mean to open is worse than no listener):
//! * `http_listen` empty: no HTTP server at all (the default in both profiles).
//! * An address that is not loopback needs `http_allow_remote = yes`: metrics and listings
//!   should not become reachable from the network because of a typo in an address.
//! * `http_admin_token_file`, when set, must be readable and hold a token of at least
//!   [`MIN_TOKEN_LEN`] bytes on its first line; unset, the API changes nothing.

use config::Config;
use std::fmt;
use std::net::SocketAddr;

/// The shortest token accepted: 16 bytes is 128 bits of hex; shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// The bearer token; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub(crate) Vec<u8>);

impl Token {
    pub fn new(text: &str) -> Token {
        Token(text.as_bytes().to_vec())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub listen: Vec<SocketAddr>,
    pub allow_remote: bool,
    /// `None`: every change is refused (403).
    pub token: Option<Token>,
}

impl Settings {
    /// Checks the rules of the module doc and reads the token file.
    pub fn from_config(cfg: &Config) -> Result<Settings, String> {
        let settings = Settings {
            listen: cfg.http_listen.clone(),
            allow_remote: cfg.http_allow_remote,
            token: read_token(&cfg.http_admin_token_file)?,
        };
        settings.check_addresses()?;
        Ok(settings)
    }

    fn check_addresses(&self) -> Result<(), String> {
        if self.allow_remote {
            return Ok(());
        }
        match self.listen.iter().find(|a| !a.ip().is_loopback()) {
            Some(addr) => Err(format!(
                "http_listen {addr} is not a loopback address; set http_allow_remote = yes to serve /metrics and the API to the network"
            )),
            None => Ok(()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }
}

fn read_token(path: &str) -> Result<Option<Token>, String> {
    if path.is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read http_admin_token_file {path}: {e}"))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "http_admin_token_file {path}: the token must be at least {MIN_TOKEN_LEN} characters on the first line (e.g. openssl rand -hex 32)"
        ));
    }
    Ok(Some(Token::new(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &[&str], allow_remote: bool) -> Config {
        let mut cfg = Config::embedded_default();
        cfg.http_listen = listen.iter().map(|a| a.parse().unwrap()).collect();
        cfg.http_allow_remote = allow_remote;
        cfg
    }

    #[test]
    fn a_non_loopback_address_is_refused_unless_allowed() {
        let refused = Settings::from_config(&config(&["0.0.0.0:9154"], false)).unwrap_err();
        assert!(refused.contains("http_allow_remote"), "{refused}");
        assert!(Settings::from_config(&config(&["[::1]:9154", "127.0.0.2:1"], false)).is_ok());
        assert!(Settings::from_config(&config(&["192.0.2.1:9154"], true)).is_ok());
    }

    #[test]
    fn off_by_default_and_a_short_token_is_refused() {
        assert!(!Settings::from_config(&config(&[], false))
            .unwrap()
            .enabled());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "short\n").unwrap();
        let mut cfg = config(&["127.0.0.1:1"], false);
        cfg.http_admin_token_file = path.display().to_string();
        assert!(Settings::from_config(&cfg)
            .unwrap_err()
            .contains("at least"));
        std::fs::write(&path, "0123456789abcdef0123\nignored\n").unwrap();
        let token = Settings::from_config(&cfg).unwrap().token.unwrap();
        assert_eq!(token, Token::new("0123456789abcdef0123"));
    }
}
