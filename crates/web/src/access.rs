//! Who may do what over HTTP, and the refusal.
//!
//! | request | loopback client | other client (`http_allow_remote = yes`) |
//! | --- | --- | --- |
//! | `/metrics`, `/api/v1/health`, `/api/v1/openapi.json`, static files | open | open |
//! | queue listing (`GET /api/v1/queue`), suspensions, the page's summaries (`/api/v1/history`, `qshape`, `reasons`) | open (as `showq.sock` is to local users) | token |
//! | message detail (headers: contents, as postcat) | token | token |
//! | every change (`POST`) | token | token |
//!
//! No `Authorization` header: 401 with `WWW-Authenticate: Bearer`. A wrong token, or any
//! token when no `http_admin_token_file` is configured: 403. The token is compared in
//! constant time (`subtle`), so its bytes cannot be found by timing the answers. Each
//! client address's first refusal is logged (with why); later ones are not, so a scanner
//! cannot flood the log (DESIGN invariant 6); the set of remembered clients is capped.

use crate::settings::Token;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;
use subtle::ConstantTimeEq;
use tracing::warn;

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Open,
    /// Open to loopback clients, the token otherwise.
    LocalOrToken,
    Token,
}

/// A refused request: 401 or 403 and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub why: &'static str,
}

/// Client addresses remembered for "logged once"; past this, refusals are not logged.
const REMEMBERED: usize = 4096;

pub struct Guard {
    token: Option<Token>,
    logged: Mutex<HashSet<IpAddr>>,
}

impl Guard {
    pub fn new(token: Option<Token>) -> Guard {
        Guard {
            token,
            logged: Mutex::new(HashSet::new()),
        }
    }

    /// Decides; a refusal is logged the first time for `client`.
    pub fn check(
        &self,
        need: Need,
        client: IpAddr,
        authorization: Option<&[u8]>,
        what: &str,
    ) -> Result<(), Refusal> {
        let result = self.decide(need, client, authorization);
        if let Err(refusal) = result {
            self.log_once(client, refusal, what);
        }
        result
    }

    fn decide(
        &self,
        need: Need,
        client: IpAddr,
        authorization: Option<&[u8]>,
    ) -> Result<(), Refusal> {
        match need {
            Need::Open => return Ok(()),
            Need::LocalOrToken if is_loopback(client) => return Ok(()),
            _ => {}
        }
        let Some(given) = authorization else {
            return Err(Refusal {
                status: 401,
                why: "no bearer token",
            });
        };
        let Some(token) = &self.token else {
            return Err(Refusal {
                status: 403,
                why: "no http_admin_token_file is configured",
            });
        };
        let presented = bearer(given).unwrap_or(b"");
        if bool::from(presented.ct_eq(&token.0)) {
            Ok(())
        } else {
            Err(Refusal {
                status: 403,
                why: "wrong bearer token",
            })
        }
    }

    fn log_once(&self, client: IpAddr, refusal: Refusal, what: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.len() >= REMEMBERED || !logged.insert(client) {
            return;
        }
        let full = if logged.len() == REMEMBERED {
            "; too many clients refused, further refusals are not logged"
        } else {
            ""
        };
        warn!(target: "http", "refused {what} from {client}: {} ({}); further refusals for this client are not logged{full}",
            refusal.status, refusal.why);
    }
}

/// The token of `Bearer TOKEN` (the scheme is case-insensitive, RFC 7235 section 2.1).
fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at(header.iter().position(|b| *b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

/// `127.0.0.0/8`, `::1`, and IPv4-mapped loopback (`::ffff:127.0.0.1` on a dual-stack socket).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    fn guard() -> Guard {
        Guard::new(Some(Token::new("0123456789abcdef")))
    }

    #[test]
    fn no_token_is_401_a_wrong_one_403_the_right_one_passes() {
        let g = guard();
        assert_eq!(
            g.check(Need::Token, LOCAL, None, "t").unwrap_err().status,
            401
        );
        let wrong = g.check(Need::Token, LOCAL, Some(b"Bearer 0123456789abcdeX"), "t");
        assert_eq!(wrong.unwrap_err().status, 403);
        let prefix = g.check(Need::Token, LOCAL, Some(b"Bearer 0123456789abcde"), "t");
        assert_eq!(prefix.unwrap_err().status, 403);
        let basic = g.check(Need::Token, LOCAL, Some(b"Basic 0123456789abcdef"), "t");
        assert_eq!(basic.unwrap_err().status, 403);
        assert!(g
            .check(Need::Token, REMOTE, Some(b"bearer 0123456789abcdef"), "t")
            .is_ok());
    }

    #[test]
    fn listings_are_open_on_loopback_only() {
        let g = guard();
        assert!(g.check(Need::LocalOrToken, LOCAL, None, "t").is_ok());
        let v6_mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(g.check(Need::LocalOrToken, v6_mapped, None, "t").is_ok());
        assert_eq!(
            g.check(Need::LocalOrToken, REMOTE, None, "t")
                .unwrap_err()
                .status,
            401
        );
        assert!(g.check(Need::Open, REMOTE, None, "t").is_ok());
    }

    #[test]
    fn without_a_token_file_every_change_is_forbidden() {
        let g = Guard::new(None);
        let any = g.check(Need::Token, LOCAL, Some(b"Bearer anything-at-all"), "t");
        assert_eq!(any.unwrap_err().status, 403);
    }
}
