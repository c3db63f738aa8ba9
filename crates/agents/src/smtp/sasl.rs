//! Client SASL (Postfix's `smtp_sasl_*`): AUTH PLAIN or LOGIN to a server that offers it,
//! with the user and password of `smtp_sasl_password_maps`.
//!
//! Inputs → outputs: the password table, the sender, the nexthop and the MX host name →
//! [`Credentials`] (or none: the mail goes unauthenticated, as with Postfix); credentials,
//! the offered mechanisms and whether the session is encrypted → one AUTH exchange →
//! `Ok` or a deferral with Postfix's text (`SASL authentication failed; server h[ip]
//! said: 535 …`).
//! Lookup order: the sender and `@domain` (with `smtp_sender_dependent_authentication`),
//! then `[host]:port`, `[host]`, the MX host name, the nexthop domain.
//! Invariants: a refused AUTH defers (5xx softened to 4xx, Postfix's default
//! `smtp_sasl_auth_soft_bounce`), so a wrong password never bounces mail; PLAIN and LOGIN
//! are used outside TLS only when `smtp_sasl_security_options` lacks `noplaintext`.
//! Security stance: the password goes only to the server it is configured for, never to a
//! log; server challenges are not interpreted (LOGIN's prompts are fixed by its spec).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use envelope::Nexthop;

use super::conn::Connection;
use super::failure::{soften, Failure, Phase};
use super::maps::TextMap;
use super::session::command;

/// The `smtp_sasl_*` settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaslSettings {
    /// `smtp_sasl_auth_enable`.
    pub enabled: bool,
    /// `smtp_sasl_password_maps`.
    pub password_maps: Vec<String>,
    /// `smtp_sasl_security_options`: restrictions outside TLS.
    pub security_options: Vec<String>,
    /// `smtp_sasl_tls_security_options`: restrictions inside TLS.
    pub tls_security_options: Vec<String>,
    /// `smtp_sender_dependent_authentication`.
    pub sender_dependent: bool,
}

/// A user and password for one server.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, <hidden>)", self.user)
    }
}

/// The credentials for this delivery, by Postfix's lookup order.
pub(crate) fn lookup(
    table: &TextMap,
    settings: &SaslSettings,
    sender: &str,
    nexthop: &Nexthop,
    hostname: &str,
) -> Option<Credentials> {
    let mut keys = Vec::new();
    if settings.sender_dependent && !sender.is_empty() {
        keys.push(sender.to_string());
        if let Some((_, domain)) = sender.rsplit_once('@') {
            keys.push(format!("@{domain}"));
        }
    }
    if !nexthop.mx_lookup {
        if let Some(port) = nexthop.port {
            keys.push(format!("[{}]:{port}", nexthop.host));
        }
        keys.push(format!("[{}]", nexthop.host));
    }
    keys.push(hostname.to_string());
    keys.push(nexthop.host.clone());
    let value = keys.iter().find_map(|key| table.get(key))?;
    let (user, password) = value.split_once(':').unwrap_or((&value, ""));
    Some(Credentials {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// The mechanism to use: PLAIN, else LOGIN, if offered and allowed here.
fn choose(offered: &[String], settings: &SaslSettings, tls: bool) -> Option<&'static str> {
    let options = if tls {
        &settings.tls_security_options
    } else {
        &settings.security_options
    };
    if options.iter().any(|o| o == "noplaintext") {
        return None;
    }
    ["PLAIN", "LOGIN"]
        .into_iter()
        .find(|mechanism| offered.iter().any(|o| o == mechanism))
}

/// Authenticates on `conn` (after the last EHLO); a refusal is a deferral.
pub(crate) async fn authenticate(
    conn: &mut Connection,
    credentials: &Credentials,
    settings: &SaslSettings,
    limit: std::time::Duration,
) -> Result<(), Failure> {
    let Some(mechanism) = choose(&conn.caps.auth, settings, conn.tls) else {
        return Err(Failure::deferred(
            "4.7.0",
            format!(
                "SASL authentication failed; cannot authenticate to server {}: no mechanism available",
                conn.peer().namaddr()
            ),
        ));
    };
    let b64 = |text: &str| STANDARD.encode(text.as_bytes());
    let steps: Vec<String> = match mechanism {
        "PLAIN" => {
            let token = format!("\0{}\0{}", credentials.user, credentials.password);
            vec![format!("AUTH PLAIN {}", b64(&token))]
        }
        _ => vec![
            "AUTH LOGIN".to_string(),
            b64(&credentials.user),
            b64(&credentials.password),
        ],
    };
    let last = steps.len() - 1;
    for (i, step) in steps.iter().enumerate() {
        let line = format!("{step}\r\n");
        let reply = command(conn, line.as_bytes(), Phase::Auth, limit).await?;
        let expected = if i == last { 2 } else { 3 };
        if reply.class() != expected {
            if i < last && reply.class() == 2 {
                return Ok(()); // accepted early (no challenge needed)
            }
            return Err(refused(conn, &reply));
        }
    }
    tracing::debug!(target: "smtp", "{}: authenticated as {} with {mechanism}", conn.relay(), credentials.user);
    Ok(())
}

fn refused(conn: &Connection, reply: &super::reply::Reply) -> Failure {
    Failure::deferred(
        &soften(&reply.dsn()),
        format!(
            "SASL authentication failed; server {} said: {}",
            conn.peer().namaddr(),
            reply.text()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> TextMap {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, text).unwrap();
        let paths = [path.display().to_string()];
        TextMap::load(
            "smtp_sasl_password_maps",
            &paths,
            super::super::maps::Secrecy::Public,
        )
        .unwrap()
    }

    fn hop(host: &str, port: Option<u16>, mx_lookup: bool) -> Nexthop {
        Nexthop {
            host: host.into(),
            port,
            mx_lookup,
        }
    }

    fn user(c: Option<Credentials>) -> Option<String> {
        c.map(|c| format!("{}:{}", c.user, c.password))
    }

    #[test]
    fn password_lookup_follows_postfix_key_order() {
        let t = table(
            "[relay.test]:587 port:1\n[relay.test] bracket:2\nmx.test host:3\n\
             example.test domain:4\nboss@corp.test sender:5\n@corp.test dom:6:with:colons\n",
        );
        let mut s = SaslSettings::default();
        let bracketed = hop("relay.test", Some(587), false);
        let found = |s: &SaslSettings, sender: &str, h: &Nexthop, host: &str| {
            user(lookup(&t, s, sender, h, host))
        };
        assert_eq!(
            found(&s, "boss@corp.test", &bracketed, "relay.test").unwrap(),
            "port:1"
        );
        let other_port = hop("relay.test", Some(25), false);
        assert_eq!(
            found(&s, "", &other_port, "relay.test").unwrap(),
            "bracket:2"
        );
        let mx = hop("example.test", Some(25), true);
        assert_eq!(found(&s, "", &mx, "mx.test").unwrap(), "host:3");
        assert_eq!(found(&s, "", &mx, "mx2.test").unwrap(), "domain:4");
        assert_eq!(
            found(&s, "", &hop("none.test", None, true), "mx9.test"),
            None
        );
        s.sender_dependent = true;
        assert_eq!(
            found(&s, "boss@corp.test", &bracketed, "x").unwrap(),
            "sender:5"
        );
        assert_eq!(
            found(&s, "ann@corp.test", &bracketed, "x").unwrap(),
            "dom:6:with:colons"
        );
    }

    #[test]
    fn plaintext_mechanisms_need_tls_unless_allowed() {
        let offered = ["CRAM-MD5", "LOGIN", "PLAIN"].map(String::from);
        let mut s = SaslSettings {
            security_options: vec!["noplaintext".into(), "noanonymous".into()],
            tls_security_options: vec!["noanonymous".into()],
            ..SaslSettings::default()
        };
        assert_eq!(choose(&offered, &s, true), Some("PLAIN"));
        assert_eq!(choose(&offered, &s, false), None);
        s.security_options = vec!["noanonymous".into()];
        assert_eq!(choose(&offered, &s, false), Some("PLAIN"));
        assert_eq!(choose(&offered[..2], &s, false), Some("LOGIN"));
        assert_eq!(choose(&offered[..1], &s, true), None);
    }
}
