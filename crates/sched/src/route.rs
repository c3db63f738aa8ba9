//! Routing (Postfix's trivial-rewrite): which transport and next hop each recipient takes.
//!
//! Order, as in Postfix: the message's own `FILTER` (a header/body check or access table
//! said `FILTER transport:nexthop`; it replaces `content_filter` for that message), else the
//! `content_filter` (both only for mail that has not been through a filter), then
//! `transport_maps` (`user@domain`, `domain`, `.parent` patterns for subdomains, `*`), then
//! the local domains (`mydestination`), then `virtual_mailbox_domains` (to
//! `virtual_transport`: the built-in virtual(8) agent, or an LMTP server when it is
//! `lmtp:…`), then `relayhost`, then the recipient domain's MX.
//! A local route (a local domain or `local:`) then goes to `mailbox_transport` when one is set
//! and the address is not an alias ([`Router::mailbox_handoff`]): Postfix's local(8) expands
//! aliases first and hands the rest to `mailbox_transport`.
//!
//! Transport map files use Postfix's transport(5) syntax, one `pattern result` per line:
//! `example.com smtp:[10.0.0.5]:25`, `.example.com relay:mx.example.com`,
//! `old.example error:5.1.1 mailbox moved`, `slow.example retry:4.4.1 try later`,
//! `spam.example discard:dropped`, `quarantine.example hold:`, `me.example local:`,
//! `mail.example lmtp:unix:/run/dovecot/lmtp`, `other.example lmtp:inet:127.0.0.1:24`.
//!
//! Named transports (`transports = { slow = "smtp" }`, Postfix's master.cf services running
//! smtp(8)) are results too: `example.net slow:[mx.example.net]` is an SMTP delivery whose
//! destinations are the transport's own (`slow:[mx.example.net]`), with the transport's
//! concurrency and rate limits (`transport_destination_*_limit`), on one node and in a fleet.

use agents::LmtpNexthop;
use config::Config;
use envelope::{Envelope, Nexthop};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The transport chosen for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Local,
    /// The virtual(8) mailbox agent (`virtual_mailbox_domains`).
    Virtual,
    Smtp {
        nexthop: Nexthop,
        filter: bool,
        /// A named transport (`slow:…` in `transport_maps`); `None` = `smtp`.
        transport: Option<&'static str>,
    },
    /// An LMTP server (Dovecot): `mailbox_transport`, `virtual_transport`, `lmtp:` maps.
    Lmtp {
        nexthop: LmtpNexthop,
    },
    Discard(String),
    Error {
        dsn: String,
        text: String,
    },
    Retry {
        dsn: String,
        text: String,
    },
    Hold(String),
}

/// The transports a destination is delivered by (each has its own concurrency limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Local,
    /// virtual(8) deliveries: one destination per domain (`virtual:example.com`).
    Virtual,
    Smtp,
    Lmtp,
    /// The content filter (an SMTP delivery to `content_filter`).
    Filter,
    /// A named transport that runs the SMTP client (`transports`), interned by [`intern`].
    Named(&'static str),
}

/// The one `&'static` copy of a named transport's name (kept `Copy` as the other
/// transports are; a reload naming the same transports allocates nothing new).
pub fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(known) = names.iter().find(|n| **n == name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(leaked);
    leaked
}

/// One destination: the unit of concurrency, fairness and dead marks in the queue manager.
/// Printed as Postfix names queues in qshape and logs: `local:alice`, `smtp:example.com`,
/// `filter:[127.0.0.1]:10024`, `lmtp:unix:/run/dovecot/lmtp`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub transport: Transport,
    pub name: String,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.transport {
            Transport::Local => "local",
            Transport::Virtual => "virtual",
            Transport::Smtp => "smtp",
            Transport::Lmtp => "lmtp",
            Transport::Filter => "filter",
            Transport::Named(name) => name,
        };
        write!(f, "{transport}:{}", self.name)
    }
}

impl Route {
    /// The per-destination queue recipient `address` on this route waits in; `None` for
    /// routes decided without a delivery (discard, error, retry, hold). Each local user is a
    /// destination of its own (as in Postfix), so one locked or slow mailbox holds up only
    /// its own mail.
    pub fn destination(&self, address: &str) -> Option<Destination> {
        let (transport, name) = match self {
            Route::Local => (
                Transport::Local,
                envelope::split_address(address).0.to_ascii_lowercase(),
            ),
            Route::Virtual => (
                Transport::Virtual,
                envelope::split_address(address)
                    .1
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
            ),
            Route::Smtp {
                nexthop,
                filter: true,
                ..
            } => (Transport::Filter, nexthop.to_string()),
            Route::Smtp {
                nexthop,
                transport: Some(name),
                ..
            } => (Transport::Named(name), nexthop.to_string()),
            Route::Smtp { nexthop, .. } => (Transport::Smtp, nexthop.to_string()),
            Route::Lmtp { nexthop } => (Transport::Lmtp, nexthop.to_string()),
            _ => return None,
        };
        Some(Destination { transport, name })
    }
}

/// What the router needs: `transport_maps`, `relayhost`, `content_filter`, `mydestination`,
/// `mailbox_transport`, `virtual_mailbox_domains`, `virtual_transport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub transport_maps: Vec<String>,
    pub relayhost: String,
    pub content_filter: String,
    /// The local domains.
    pub mydestination: Vec<String>,
    /// Empty = the local agent delivers to local users.
    pub mailbox_transport: String,
    /// Domains (or maps keyed by domain) of `virtual_transport`.
    pub virtual_mailbox_domains: Vec<String>,
    /// `virtual` (the virtual(8) agent) or `lmtp:…`.
    pub virtual_transport: String,
    /// The named transports (`transports`): all run the SMTP client.
    pub transports: Vec<String>,
}

impl Routing {
    pub fn from_config(cfg: &Config) -> Routing {
        Routing {
            transport_maps: cfg.transport_maps.clone(),
            relayhost: cfg.relayhost.clone(),
            content_filter: cfg.content_filter.clone(),
            mydestination: cfg.mydestination.clone(),
            mailbox_transport: cfg.mailbox_transport.clone(),
            virtual_mailbox_domains: cfg.virtual_mailbox_domains.clone(),
            virtual_transport: cfg.virtual_transport.clone(),
            transports: cfg
                .transports
                .iter()
                .map(|(name, _)| name.clone())
                .collect(),
        }
    }
}

/// A transport map result before the recipient domain is known (`smtp:` = "the domain").
#[derive(Debug, Clone, PartialEq, Eq)]
enum MapResult {
    Route(Route),
    /// `smtp:` or `NAME:` with no next hop: the recipient domain, by MX.
    SmtpToDomain(Option<&'static str>),
}

/// Address verdicts routing asks for before anything else (the daemon gives the address
/// rewriter's: `relocated_maps` 5.1.6, virtual alias loops 5.4.6, unknown virtual alias
/// recipients 5.1.1, as Postfix's trivial-rewrite resolves them to its error transport).
pub type RecipientErrors = Arc<dyn Fn(&str) -> Option<(String, String)> + Send + Sync>;

#[derive(Clone)]
pub struct Router {
    map: HashMap<String, MapResult>,
    wildcard: Option<MapResult>,
    relayhost: Option<Nexthop>,
    filter: Option<Nexthop>,
    local_domains: Vec<String>,
    /// `mailbox_transport`, when it names an LMTP server.
    mailbox_transport: Option<LmtpNexthop>,
    virtual_domains: Arc<agents::DomainList>,
    /// `virtual_transport`, when it names an LMTP server (`virtual` leaves the virtual
    /// domains to the rest of the routing).
    virtual_transport: Option<LmtpNexthop>,
    errors: Option<RecipientErrors>,
}

/// Mail from these origins never goes (back) through the content filter.
const FILTER_EXEMPT: [&str; 3] = ["reinject", "bounce", "2bounce"];

impl Router {
    /// Builds the router; an unreadable map or a bad line is an error naming `file:line`.
    pub fn new(cfg: &Routing) -> Result<Router, String> {
        let (map, wildcard) = transport_table(&cfg.transport_maps, &cfg.transports)?;
        let relayhost = match cfg.relayhost.trim() {
            "" => None,
            h => Some(Nexthop::parse(h).map_err(|e| format!("relayhost: {e}"))?),
        };
        let filter = match cfg.content_filter.trim() {
            "" => None,
            f => Some(envelope::parse_filter(f).map_err(|e| format!("content_filter: {e}"))?),
        };
        Ok(Router {
            map,
            wildcard,
            relayhost,
            filter,
            local_domains: lowercase(&cfg.mydestination),
            mailbox_transport: transport_setting("mailbox_transport", &cfg.mailbox_transport, "")?,
            virtual_domains: Arc::new(
                agents::DomainList::open(&cfg.virtual_mailbox_domains)
                    .map_err(|e| format!("virtual_mailbox_domains: {e}"))?,
            ),
            virtual_transport: transport_setting(
                "virtual_transport",
                &cfg.virtual_transport,
                "virtual",
            )?,
            errors: None,
        })
    }

    /// Postfix's local(8) hands mail for a local user (not an alias) to `mailbox_transport`
    /// when one is set: a local `route` becomes that LMTP route. `is_alias` answers from the
    /// local agent's `alias_maps`.
    pub fn mailbox_handoff(
        &self,
        route: Route,
        address: &str,
        is_alias: &dyn Fn(&str) -> bool,
    ) -> Route {
        match (&route, &self.mailbox_transport) {
            (Route::Local, Some(hop)) if !is_alias(address) => Route::Lmtp {
                nexthop: hop.clone(),
            },
            _ => route,
        }
    }

    /// The same router, bouncing the recipients `errors` names.
    pub fn with_recipient_errors(mut self, errors: RecipientErrors) -> Router {
        self.errors = Some(errors);
        self
    }

    /// The route of recipient `address` of the message `env`: its own `FILTER` first (the
    /// last one a check said, in the queue record), then [`Router::route`]. Mail that came
    /// back from a filter (or is a bounce) is not filtered again, by either.
    pub fn route_message(&self, address: &str, env: &Envelope) -> Route {
        match &env.filter {
            Some(filter) if !FILTER_EXEMPT.contains(&env.origin.as_str()) => {
                match envelope::parse_filter(filter) {
                    Ok(nexthop) => Route::Smtp {
                        nexthop,
                        filter: true,
                        transport: None,
                    },
                    // Intake checks the syntax, so only a record from another version gets
                    // here; Postfix's queue manager defers mail for a transport it lacks.
                    Err(e) => Route::Retry {
                        dsn: "4.3.5".into(),
                        text: format!("mail transport unavailable: FILTER {filter}: {e}"),
                    },
                }
            }
            _ => self.route(address, &env.origin),
        }
    }

    /// The route of one recipient of a message that came from `origin` and names no
    /// filter of its own.
    pub fn route(&self, address: &str, origin: &str) -> Route {
        if let Some(filter) = &self.filter {
            if !FILTER_EXEMPT.contains(&origin) {
                return Route::Smtp {
                    nexthop: filter.clone(),
                    filter: true,
                    transport: None,
                };
            }
        }
        if let Some((dsn, text)) = self.errors.as_ref().and_then(|check| check(address)) {
            return Route::Error { dsn, text };
        }
        let (_, domain) = envelope::split_address(address);
        if let Some(found) = self.lookup(&address.to_ascii_lowercase(), &domain) {
            return match found {
                MapResult::Route(r) => r.clone(),
                MapResult::SmtpToDomain(transport) => self.default_smtp(&domain, *transport),
            };
        }
        if domain.is_empty() || self.local_domains.contains(&domain) {
            return Route::Local;
        }
        if self.virtual_domains.contains(&domain) {
            return match &self.virtual_transport {
                Some(hop) => Route::Lmtp {
                    nexthop: hop.clone(),
                },
                None => Route::Virtual,
            };
        }
        match &self.relayhost {
            Some(relay) => Route::Smtp {
                nexthop: relay.clone(),
                filter: false,
                transport: None,
            },
            None => self.default_smtp(&domain, None),
        }
    }

    fn default_smtp(&self, domain: &str, transport: Option<&'static str>) -> Route {
        Route::Smtp {
            nexthop: Nexthop {
                host: domain.to_string(),
                port: None,
                mx_lookup: true,
            },
            filter: false,
            transport,
        }
    }

    fn lookup(&self, address: &str, domain: &str) -> Option<&MapResult> {
        if let Some(r) = self.map.get(address).or_else(|| self.map.get(domain)) {
            return Some(r);
        }
        let mut rest = domain;
        while let Some(dot) = rest.find('.') {
            if let Some(r) = self.map.get(&rest[dot..]) {
                return Some(r);
            }
            rest = &rest[dot + 1..];
        }
        self.wildcard.as_ref()
    }
}

/// `transport_maps` read into the exact patterns and the `*` entry.
type TransportTable = (HashMap<String, MapResult>, Option<MapResult>);

fn transport_table(files: &[String], named: &[String]) -> Result<TransportTable, String> {
    let mut map = HashMap::new();
    let mut wildcard = None;
    for file in files {
        let path = file
            .split_once(':')
            .filter(|(t, _)| matches!(*t, "hash" | "lmdb" | "texthash" | "btree"))
            .map_or(file.as_str(), |(_, p)| p);
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (pattern, result) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("{path}:{}: expected `pattern transport:nexthop`", n + 1))?;
            let result =
                parse_result(result.trim(), named).map_err(|e| format!("{path}:{}: {e}", n + 1))?;
            if pattern == "*" {
                wildcard = Some(result);
            } else {
                map.insert(pattern.to_ascii_lowercase(), result);
            }
        }
    }
    Ok((map, wildcard))
}

fn lowercase(domains: &[String]) -> Vec<String> {
    domains.iter().map(|d| d.to_ascii_lowercase()).collect()
}

/// `mailbox_transport` / `virtual_transport`: `lmtp:…` is an LMTP server; `builtin` (empty,
/// or `virtual`) means no hand-off; anything else is refused, so a configuration mailroom
/// cannot carry out stops the daemon instead of quietly delivering elsewhere.
fn transport_setting(
    name: &str,
    value: &str,
    builtin: &str,
) -> Result<Option<LmtpNexthop>, String> {
    let value = value.trim();
    if value.is_empty() || value == builtin {
        return Ok(None);
    }
    match value.split_once(':') {
        Some(("lmtp", hop)) => LmtpNexthop::parse(hop)
            .map(Some)
            .map_err(|e| format!("{name}: {e}")),
        _ => Err(format!(
            "{name}: unsupported transport {value:?} (use lmtp:unix:/path or lmtp:inet:host:port)"
        )),
    }
}

fn parse_result(result: &str, named: &[String]) -> Result<MapResult, String> {
    let (transport, rest) = result.split_once(':').unwrap_or((result, ""));
    let rest = rest.trim();
    if let Some(name) = named.iter().find(|n| *n == transport) {
        return named_result(intern(name), rest);
    }
    let status = |default: &str| -> (String, String) {
        match rest.split_once(char::is_whitespace) {
            Some((code, text)) if is_status(code) => (code.to_string(), text.trim().to_string()),
            _ if is_status(rest) => (rest.to_string(), default.to_string()),
            _ => (
                default_code(default),
                if rest.is_empty() {
                    default.to_string()
                } else {
                    rest.to_string()
                },
            ),
        }
    };
    Ok(MapResult::Route(match transport {
        "local" => Route::Local,
        "smtp" | "relay" if rest.is_empty() => return Ok(MapResult::SmtpToDomain(None)),
        "smtp" | "relay" => Route::Smtp {
            nexthop: Nexthop::parse(rest).map_err(|e| e.to_string())?,
            filter: false,
            transport: None,
        },
        "lmtp" => Route::Lmtp {
            nexthop: LmtpNexthop::parse(rest)?,
        },
        "discard" => Route::Discard(if rest.is_empty() {
            "discarded".into()
        } else {
            rest.into()
        }),
        "error" => {
            let (dsn, text) = status("5.0.0");
            Route::Error {
                dsn: fix_class(&dsn, '5'),
                text,
            }
        }
        "retry" => {
            let (dsn, text) = status("4.0.0");
            Route::Retry {
                dsn: fix_class(&dsn, '4'),
                text,
            }
        }
        "hold" => Route::Hold(if rest.is_empty() {
            "held by transport_maps".into()
        } else {
            rest.into()
        }),
        other => {
            return Err(format!(
            "unknown transport {other:?} (smtp, relay, lmtp, local, discard, error, retry, hold, or one declared in transports)"
        ))
        }
    }))
}

/// `NAME:[host]:port`, `NAME:host` or `NAME:` (the recipient domain) for a named transport.
fn named_result(name: &'static str, rest: &str) -> Result<MapResult, String> {
    if rest.is_empty() {
        return Ok(MapResult::SmtpToDomain(Some(name)));
    }
    Ok(MapResult::Route(Route::Smtp {
        nexthop: Nexthop::parse(rest).map_err(|e| e.to_string())?,
        filter: false,
        transport: Some(name),
    }))
}

fn is_status(code: &str) -> bool {
    let parts: Vec<&str> = code.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn default_code(code: &str) -> String {
    if is_status(code) {
        code.to_string()
    } else {
        "5.0.0".to_string()
    }
}

/// `error:` always bounces (5.x.x) and `retry:` always defers (4.x.x), whatever code is given.
fn fix_class(code: &str, class: char) -> String {
    let mut c = code.to_string();
    c.replace_range(..1, &class.to_string());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(map: &str, relayhost: &str, filter: &str) -> (Router, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transport");
        std::fs::write(&path, map).unwrap();
        let mut cfg = Config::embedded_default();
        cfg.transport_maps = vec![format!("hash:{}", path.display())];
        cfg.relayhost = relayhost.into();
        cfg.content_filter = filter.into();
        cfg.mydestination = vec!["localhost".into()];
        (Router::new(&Routing::from_config(&cfg)).unwrap(), dir)
    }

    fn hop(s: &str) -> Nexthop {
        Nexthop::parse(s).unwrap()
    }

    #[test]
    fn transport_map_patterns_in_postfix_order() {
        let map = "# comment\nexample.com smtp:[10.0.0.5]:25\n.sub.org relay:mx.sub.org\nold.example error:5.1.1 mailbox moved\nslow.example retry:4.4.1 try later\nspam.example discard:\nq.example hold:\nboss@example.com local:\nbare.example smtp:\n";
        let (r, _d) = router(map, "", "");
        assert_eq!(
            r.route("a@example.com", ""),
            Route::Smtp {
                nexthop: hop("[10.0.0.5]:25"),
                filter: false,
                transport: None
            }
        );
        assert_eq!(
            r.route("boss@example.com", ""),
            Route::Local,
            "full address beats domain"
        );
        assert_eq!(
            r.route("a@x.sub.org", ""),
            Route::Smtp {
                nexthop: hop("mx.sub.org"),
                filter: false,
                transport: None
            }
        );
        assert_eq!(
            r.route("a@sub.org", "")
                .destination("a@sub.org")
                .unwrap()
                .to_string(),
            "smtp:sub.org",
            ".parent matches only subdomains"
        );
        assert_eq!(
            r.route("a@old.example", ""),
            Route::Error {
                dsn: "5.1.1".into(),
                text: "mailbox moved".into()
            }
        );
        assert_eq!(
            r.route("a@slow.example", ""),
            Route::Retry {
                dsn: "4.4.1".into(),
                text: "try later".into()
            }
        );
        assert!(matches!(r.route("a@spam.example", ""), Route::Discard(_)));
        assert!(matches!(r.route("a@q.example", ""), Route::Hold(_)));
        assert_eq!(
            r.route("a@bare.example", ""),
            Route::Smtp {
                nexthop: hop("bare.example"),
                filter: false,
                transport: None
            }
        );
        assert_eq!(r.route("root@localhost", ""), Route::Local);
        assert_eq!(r.route("root", ""), Route::Local);
    }

    #[test]
    fn relayhost_and_wildcard() {
        let (r, _d) = router("", "[127.0.0.1]:2526", "");
        assert_eq!(
            r.route("x@far.example", ""),
            Route::Smtp {
                nexthop: hop("[127.0.0.1]:2526"),
                filter: false,
                transport: None
            }
        );
        assert_eq!(r.route("x@localhost", ""), Route::Local);
        let (r, _d) = router("* error:5.7.1 no outbound mail\n", "[127.0.0.1]:2526", "");
        assert!(matches!(r.route("x@far.example", ""), Route::Error { .. }));
    }

    #[test]
    fn content_filter_first_except_for_reinjected_mail_and_bounces() {
        let (r, _d) = router("", "", "smtp:[127.0.0.1]:10024");
        let filtered = Route::Smtp {
            nexthop: hop("[127.0.0.1]:10024"),
            filter: true,
            transport: None,
        };
        assert_eq!(r.route("x@localhost", "smtpd"), filtered);
        assert_eq!(r.route("x@far.example", "pickup"), filtered);
        assert_eq!(r.route("x@localhost", "reinject"), Route::Local);
        assert_eq!(r.route("x@localhost", "bounce"), Route::Local);
        assert_eq!(
            filtered.destination("x@localhost").unwrap().to_string(),
            "filter:[127.0.0.1]:10024"
        );
    }

    fn message(origin: &str, filter: Option<&str>) -> Envelope {
        let mut env = Envelope::new("s@far.example", vec!["x@localhost".into()], 1);
        env.origin = origin.into();
        env.filter = filter.map(str::to_string);
        env
    }

    #[test]
    fn a_messages_filter_wins_over_content_filter_and_its_own_route() {
        let (r, _d) = router("", "", "smtp:[127.0.0.1]:10024");
        let own = Route::Smtp {
            nexthop: hop("[127.0.0.1]:10026"),
            filter: true,
            transport: None,
        };
        let filtered = message("smtpd", Some("smtp:[127.0.0.1]:10026"));
        assert_eq!(r.route_message("x@localhost", &filtered), own);
        assert_eq!(
            own.destination("x@localhost").unwrap().to_string(),
            "filter:[127.0.0.1]:10026",
            "the filter transport's queue (and concurrency limit)"
        );
        let plain = message("pickup", None);
        assert_eq!(
            r.route_message("x@localhost", &plain),
            r.route("x@localhost", "pickup"),
            "no FILTER: the content_filter as before"
        );
        let (r, _d) = router("", "", "");
        assert_eq!(r.route_message("x@localhost", &filtered), own);
    }

    #[test]
    fn reinjected_mail_and_bounces_ignore_their_filter() {
        let (r, _d) = router("", "", "");
        for origin in ["reinject", "bounce", "2bounce"] {
            let env = message(origin, Some("smtp:[127.0.0.1]:10026"));
            assert_eq!(
                r.route_message("x@localhost", &env),
                Route::Local,
                "{origin}"
            );
        }
    }

    #[test]
    fn a_stored_filter_mailroom_cannot_use_defers_the_mail() {
        let (r, _d) = router("", "", "");
        let env = message("smtpd", Some("local:x"));
        match r.route_message("x@localhost", &env) {
            Route::Retry { dsn, text } => {
                assert_eq!(dsn, "4.3.5");
                assert!(
                    text.starts_with("mail transport unavailable: FILTER local:x"),
                    "{text}"
                );
            }
            other => panic!("deferred, not {other:?}"),
        }
    }

    #[test]
    fn virtual_mailbox_domains_go_to_the_virtual_agent_one_destination_per_domain() {
        let mut cfg = Config::embedded_default();
        cfg.mydestination = vec!["localhost".into()];
        cfg.virtual_mailbox_domains = vec!["example.com".into()];
        let r = Router::new(&Routing::from_config(&cfg)).unwrap();
        assert_eq!(r.route("alice@Example.COM", "smtpd"), Route::Virtual);
        assert_eq!(
            Route::Virtual
                .destination("alice@Example.COM")
                .unwrap()
                .to_string(),
            "virtual:example.com"
        );
        assert_eq!(r.route("x@localhost", ""), Route::Local);
        assert!(matches!(r.route("x@example.org", ""), Route::Smtp { .. }));
        // Another virtual_transport (LMTP) takes these domains: not this agent's.
        cfg.virtual_transport = "lmtp:unix:/run/dovecot/lmtp".into();
        let r = Router::new(&Routing::from_config(&cfg)).unwrap();
        assert_ne!(r.route("alice@example.com", ""), Route::Virtual);
    }

    #[test]
    fn named_transports_route_by_smtp_to_destinations_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "a.example slow:[mx.a.example]\nb.example slow:\n").unwrap();
        let mut cfg = Config::embedded_default();
        cfg.transport_maps = vec![path.display().to_string()];
        let err = Router::new(&Routing::from_config(&cfg)).err().unwrap();
        assert!(err.contains(":1: unknown transport \"slow\""), "{err}");
        cfg.transports = vec![("slow".into(), "smtp".into())];
        let r = Router::new(&Routing::from_config(&cfg)).unwrap();
        let dest = |a: &str| r.route(a, "smtpd").destination(a).unwrap();
        assert_eq!(dest("x@a.example").to_string(), "slow:[mx.a.example]");
        assert_eq!(dest("x@b.example").to_string(), "slow:b.example");
        assert_eq!(dest("x@b.example").transport, Transport::Named("slow"));
        assert_eq!(dest("x@c.example").to_string(), "smtp:c.example");
    }

    #[test]
    fn bad_map_lines_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "ok.example local:\nbad.example nosuch:thing\n").unwrap();
        let mut cfg = Config::embedded_default();
        cfg.transport_maps = vec![path.display().to_string()];
        let err = Router::new(&Routing::from_config(&cfg)).err().unwrap();
        assert!(err.ends_with(":2: unknown transport \"nosuch\" (smtp, relay, lmtp, local, discard, error, retry, hold, or one declared in transports)"), "{err}");
    }

    fn lmtp(s: &str) -> Route {
        Route::Lmtp {
            nexthop: LmtpNexthop::parse(s).unwrap(),
        }
    }

    #[test]
    fn lmtp_routes_from_transport_maps_mailbox_transport_and_virtual_transport() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transport");
        std::fs::write(
            &path,
            "dove.example lmtp:inet:127.0.0.1:24
boss@localhost local:
",
        )
        .unwrap();
        let mut cfg = Config::embedded_default();
        cfg.transport_maps = vec![path.display().to_string()];
        cfg.mydestination = vec!["localhost".into()];
        cfg.mailbox_transport = "lmtp:unix:/run/dovecot/lmtp".into();
        cfg.virtual_mailbox_domains = vec!["Virt.Example".into()];
        cfg.virtual_transport = "lmtp:[127.0.0.1]:2424".into();
        let r = Router::new(&Routing::from_config(&cfg)).unwrap();
        let aliases = |a: &str| a.starts_with("postmaster");
        let routed = |a: &str| r.mailbox_handoff(r.route(a, ""), a, &aliases);
        assert_eq!(routed("x@dove.example"), lmtp("inet:127.0.0.1:24"));
        assert_eq!(routed("alice@localhost"), lmtp("unix:/run/dovecot/lmtp"));
        assert_eq!(
            routed("boss@localhost"),
            lmtp("unix:/run/dovecot/lmtp"),
            "local: too"
        );
        assert_eq!(
            routed("postmaster@localhost"),
            Route::Local,
            "aliases stay local"
        );
        assert_eq!(routed("bob@virt.example"), lmtp("[127.0.0.1]:2424"));
        assert_eq!(
            routed("alice@localhost")
                .destination("alice@localhost")
                .unwrap()
                .to_string(),
            "lmtp:unix:/run/dovecot/lmtp",
            "one destination (one concurrency limit) per LMTP server, not per user"
        );
        // The Postfix defaults change nothing.
        let plain = Router::new(&Routing::from_config(&Config::embedded_default())).unwrap();
        assert!(matches!(
            plain.mailbox_handoff(Route::Local, "a", &aliases),
            Route::Local
        ));
    }

    #[test]
    fn unsupported_mailbox_and_virtual_transports_are_refused() {
        let mut cfg = Config::embedded_default();
        cfg.mailbox_transport = "dovecot:".into();
        let err = Router::new(&Routing::from_config(&cfg)).err().unwrap();
        assert!(
            err.starts_with("mailbox_transport: unsupported transport"),
            "{err}"
        );
        let mut cfg = Config::embedded_default();
        cfg.virtual_transport = "lmtp:unix:".into();
        let err = Router::new(&Routing::from_config(&cfg)).err().unwrap();
        assert!(err.starts_with("virtual_transport: "), "{err}");
    }

    #[test]
    fn recipient_errors_bounce_before_local_or_remote_routing() {
        let mut cfg = Config::embedded_default();
        cfg.mydestination = vec!["localhost".into()];
        let errors: RecipientErrors = Arc::new(|address: &str| {
            (address == "old@localhost").then(|| ("5.1.6".into(), "User has moved to n@x".into()))
        });
        let router = Router::new(&Routing::from_config(&cfg))
            .unwrap()
            .with_recipient_errors(errors);
        assert_eq!(
            router.route("old@localhost", ""),
            Route::Error {
                dsn: "5.1.6".into(),
                text: "User has moved to n@x".into()
            }
        );
        assert_eq!(router.route("new@localhost", ""), Route::Local);
    }
}
