//! Address rewriting as Postfix does it (ADDRESS_REWRITING_README): one [`Rewriter`] built
//! from the configuration's maps, asked by every room that changes or judges an address.
//!
//! - **cleanup** (pickup and smtpd intake, [`Rewriter::cleanup`]): `sender_canonical_maps`,
//!   `recipient_canonical_maps` and `canonical_maps` (each limited to its `*_classes`), then
//!   `masquerade_domains` (`masquerade_classes`, `masquerade_exceptions`), on the envelope
//!   and on the address headers; then `virtual_alias_maps` expands each envelope recipient
//!   one-to-many, recursively ([`Rewriter::expand`]), keeping the address it came from as
//!   the recipient's ORCPT (`orig_to=`, the DSN's Original-Recipient).
//! - **routing** ([`Rewriter::recipient_error`], Postfix's trivial-rewrite): `relocated_maps`
//!   (5.1.6 "User has moved to ..."), an alias loop (5.4.6), and an address left in a
//!   `virtual_alias_domains` domain (5.1.1 "User unknown in virtual alias table").
//! - **smtpd** ([`Rewriter::rcpt_refusal`]): the same refusals at RCPT, and which domains
//!   are virtual alias domains (an accepted destination, never a relay hole).
//! - **the SMTP client** ([`Rewriter::generic`]): `smtp_generic_maps` on the envelope and
//!   the headers of mail that leaves.
//!
//! Every look-up goes through the `maps` crate in Postfix's order (`user+ext@domain`,
//! `user@domain`, then for a local domain `user+ext`, `user`, then `@domain`). A result
//! `@otherdomain` keeps the user part; an unqualified result gets `@myorigin`.
//!
//! Invariants: everything here is pure over the loaded maps (no I/O after
//! [`Rewriter::from_config`]); an expansion always ends (cycles and the two
//! `virtual_alias_*_limit`s are errors, never loops); no input panics.
//!
//! Security stance: runs inside the daemon unprivileged; map contents are the operator's,
//! addresses are the sender's, and neither is trusted beyond being text.

#![forbid(unsafe_code)]

mod classes;
mod cleanup;
pub mod content;
mod headers;
mod live;
mod masquerade;
mod mime;
mod virtual_alias;

#[cfg(test)]
mod tests;

use config::Config;
use maps::{AddressQuery, MapError, Maps};

pub use classes::{Class, Classes};
pub use cleanup::original_recipient;
pub use headers::rewrite_headers;
pub use live::Live;
pub use masquerade::Masquerade;
pub use virtual_alias::ExpansionError;

/// Postfix's MAX_RECURSION for one-to-one maps (canonical, generic): a chain longer than
/// this stops where it is.
const MAP11_ROUNDS: usize = 10;

/// Why smtpd refuses a recipient at RCPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptRefusal {
    /// `relocated_maps`: the new address (or the map's own `5.x.y text`).
    Moved(String),
    /// In a `virtual_alias_domains` domain without an entry.
    UnknownVirtual,
}

/// The loaded maps and the rules around them.
#[derive(Debug, Default)]
pub struct Rewriter {
    canonical: Maps,
    sender_canonical: Maps,
    recipient_canonical: Maps,
    canonical_classes: Classes,
    sender_classes: Classes,
    recipient_classes: Classes,
    masquerade: Masquerade,
    virtual_alias: Maps,
    virtual_domains: DomainList,
    relocated: Maps,
    generic: Maps,
    recursion_limit: usize,
    expansion_limit: usize,
    delimiter: String,
    propagate_canonical: bool,
    propagate_virtual: bool,
    propagate_generic: bool,
    /// `mydestination`, `myorigin`, `myhostname`, lower case: the bare local part is
    /// looked up for these.
    local_domains: Vec<String>,
    myorigin: String,
    /// header_checks, mime_header_checks, nested_header_checks, body_checks.
    content: content::ContentChecks,
}

impl Rewriter {
    /// Opens every map the configuration names; the error names the map and each bad
    /// `file:line`.
    pub fn from_config(cfg: &Config) -> Result<Rewriter, MapError> {
        let open = |specs: &[String]| Maps::open(specs);
        let propagate = |class: &str| {
            cfg.propagate_unmatched_extensions
                .iter()
                .any(|c| c == class)
        };
        let mut local_domains: Vec<String> = cfg
            .mydestination
            .iter()
            .chain([&cfg.myorigin, &cfg.myhostname])
            .map(|d| d.trim().to_ascii_lowercase())
            .collect();
        local_domains.dedup();
        Ok(Rewriter {
            canonical: open(&cfg.canonical_maps)?,
            sender_canonical: open(&cfg.sender_canonical_maps)?,
            recipient_canonical: open(&cfg.recipient_canonical_maps)?,
            canonical_classes: Classes::parse(&cfg.canonical_classes),
            sender_classes: Classes::parse(&cfg.sender_canonical_classes),
            recipient_classes: Classes::parse(&cfg.recipient_canonical_classes),
            masquerade: Masquerade::new(
                &cfg.masquerade_domains,
                &cfg.masquerade_exceptions,
                Classes::parse(&cfg.masquerade_classes),
            ),
            virtual_alias: open(&cfg.virtual_alias_maps)?,
            virtual_domains: DomainList::open(&cfg.virtual_alias_domains)?,
            relocated: open(&cfg.relocated_maps)?,
            generic: open(&cfg.smtp_generic_maps)?,
            recursion_limit: cfg.virtual_alias_recursion_limit,
            expansion_limit: cfg.virtual_alias_expansion_limit,
            delimiter: cfg.recipient_delimiter.clone(),
            propagate_canonical: propagate("canonical"),
            propagate_virtual: propagate("virtual"),
            propagate_generic: propagate("generic"),
            local_domains,
            myorigin: cfg.myorigin.clone(),
            content: content::ContentChecks::from_config(cfg)?,
        })
    }

    /// The content checks cleanup applies to every new message (SMTP and pickup).
    pub fn content_checks(&self) -> &content::ContentChecks {
        &self.content
    }

    /// True when nothing is configured: intake can skip the header walk.
    pub fn is_idle(&self) -> bool {
        self.canonical.is_empty()
            && self.sender_canonical.is_empty()
            && self.recipient_canonical.is_empty()
            && self.masquerade.is_empty()
    }

    /// One address of `class` through the canonical maps and masquerading, in Postfix's
    /// order: the sender- or recipient-specific map, `canonical_maps`, then masquerading.
    pub fn canonical(&self, address: &str, class: Class) -> String {
        if address.is_empty() {
            return String::new();
        }
        let (specific, classes) = match class.is_sender() {
            true => (&self.sender_canonical, self.sender_classes),
            false => (&self.recipient_canonical, self.recipient_classes),
        };
        let mut out = address.to_string();
        if classes.has(class) {
            out = self.map11(specific, &out, self.propagate_canonical);
        }
        if self.canonical_classes.has(class) {
            out = self.map11(&self.canonical, &out, self.propagate_canonical);
        }
        if !self.masquerade.is_empty() && self.masquerade.classes().has(class) {
            out = self.masquerade.apply(&out);
        }
        out
    }

    /// One address through `smtp_generic_maps`.
    pub fn generic(&self, address: &str) -> String {
        if address.is_empty() {
            return String::new();
        }
        self.map11(&self.generic, address, self.propagate_generic)
    }

    /// True when `smtp_generic_maps` is set.
    pub fn has_generic(&self) -> bool {
        !self.generic.is_empty()
    }

    /// The relocated, unknown-virtual and alias-loop verdict for a recipient the router is
    /// about to route: `(status, text)` to bounce it with, or `None`.
    pub fn recipient_error(&self, address: &str) -> Option<(String, String)> {
        if let Some(refusal) = self.rcpt_refusal(address) {
            return Some(refusal_status(&refusal));
        }
        if self.virtual_alias.is_empty() {
            return None;
        }
        if self.lookup(&self.virtual_alias, address, false).is_some() {
            if let Err(e) = self.expand(address) {
                return Some(("5.4.6".to_string(), e.text("virtual_alias_maps", address)));
            }
        }
        // Cleanup expanded every recipient; one still in a virtual alias domain (say one
        // that maps to itself) has nowhere to go, as Postfix's virtual alias class says.
        if self.is_virtual_alias_domain(&domain_of(address)) {
            return Some(refusal_status(&RcptRefusal::UnknownVirtual));
        }
        None
    }

    /// Why smtpd refuses `address` at RCPT, if it does.
    pub fn rcpt_refusal(&self, address: &str) -> Option<RcptRefusal> {
        if self.relocated.is_empty() && self.virtual_domains.is_empty() {
            return None; // the common case: nothing to ask, no allocation per recipient
        }
        let no_extension = AddressQuery {
            delimiter: "",
            local_domain: self.is_local(&domain_of(address)),
        };
        if let Some(found) = self.relocated.find_address(address, no_extension) {
            return Some(RcptRefusal::Moved(found.value.trim().to_string()));
        }
        let domain = domain_of(address);
        if self.is_virtual_alias_domain(&domain) && !self.has_entry(address) {
            return Some(RcptRefusal::UnknownVirtual);
        }
        None
    }

    /// True when a virtual alias or canonical entry exists for `address`: Postfix's smtpd
    /// accepts such a recipient without asking `local_recipient_maps`.
    pub fn has_entry(&self, address: &str) -> bool {
        [
            &self.virtual_alias,
            &self.recipient_canonical,
            &self.canonical,
        ]
        .iter()
        .any(|maps| self.lookup(maps, address, false).is_some())
    }

    /// True for a domain listed in `virtual_alias_domains` (a name, or a key of a map
    /// listed there).
    pub fn is_virtual_alias_domain(&self, domain: &str) -> bool {
        self.virtual_domains.contains(domain)
    }

    fn is_local(&self, domain: &str) -> bool {
        self.local_domains.iter().any(|d| d == domain)
    }

    /// One-to-one rewriting (Postfix's cleanup_map11): the first address of each result,
    /// again until an address maps to itself or has no entry, at most [`MAP11_ROUNDS`].
    fn map11(&self, maps: &Maps, address: &str, propagate: bool) -> String {
        let mut current = address.to_string();
        for _ in 0..MAP11_ROUNDS {
            let Some(next) = self
                .lookup(maps, &current, propagate)
                .and_then(|r| r.into_iter().next())
            else {
                return current;
            };
            if next.eq_ignore_ascii_case(&current) {
                return next;
            }
            current = next;
        }
        current
    }

    /// The addresses `address` maps to in `maps`, as Postfix's mail_addr_map gives them:
    /// `@otherdomain` keeps the user, unqualified results get `@myorigin`, and with
    /// `propagate` an unmatched extension is carried to each result.
    fn lookup(&self, maps: &Maps, address: &str, propagate: bool) -> Option<Vec<String>> {
        if maps.is_empty() {
            return None;
        }
        let query = AddressQuery {
            delimiter: &self.delimiter,
            local_domain: self.is_local(&domain_of(address)),
        };
        let found = maps.find_address(address, query)?;
        let value = found.value.trim();
        if let Some(domain) = value.strip_prefix('@') {
            let local = local_of(address);
            let (user, _) = maps::split_extension(local, &self.delimiter);
            return Some(vec![format!("{user}@{domain}")]);
        }
        let ext = found.unmatched_extension.as_deref().filter(|_| propagate);
        let results = split_results(value)
            .map(|r| self.qualify(r))
            .map(|r| maps::with_extension(&r, ext, &self.delimiter))
            .collect();
        Some(results)
    }

    fn qualify(&self, address: &str) -> String {
        match address.contains('@') {
            true => address.to_string(),
            false => format!("{address}@{}", self.myorigin),
        }
    }
}

/// The bounce status and text of a refusal (the same words as at RCPT, as in Postfix).
pub fn refusal_status(refusal: &RcptRefusal) -> (String, String) {
    match refusal {
        RcptRefusal::Moved(new) => moved_status(new),
        RcptRefusal::UnknownVirtual => (
            "5.1.1".to_string(),
            "User unknown in virtual alias table".to_string(),
        ),
    }
}

/// `5.1.6 User has moved to NEW` (Postfix's default `enable_relocated_prefix = yes`: the
/// table's value is the new contact information, whatever it says).
fn moved_status(new: &str) -> (String, String) {
    ("5.1.6".to_string(), format!("User has moved to {new}"))
}

/// The results of one table entry: `a, b c` → `a`, `b`, `c` (virtual(5): comma or space
/// separated).
fn split_results(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

/// The lower-case domain of an address (empty without one).
pub fn domain_of(address: &str) -> String {
    envelope::split_address(address).1
}

fn local_of(address: &str) -> &str {
    envelope::split_address(address).0
}

/// `virtual_alias_domains`: literal names, and maps whose keys are domains (Postfix's
/// default `$virtual_alias_maps` makes the domain lines of the alias table count).
#[derive(Debug, Default)]
struct DomainList {
    names: Vec<String>,
    maps: Maps,
}

impl DomainList {
    fn open(items: &[String]) -> Result<DomainList, MapError> {
        let is_map = |item: &&String| item.contains(':') || item.starts_with('/');
        let specs: Vec<&String> = items.iter().filter(is_map).collect();
        let names = items
            .iter()
            .filter(|i| !is_map(i))
            .map(|d| d.trim().to_ascii_lowercase())
            .collect();
        Ok(DomainList {
            names,
            maps: Maps::open(&specs)?,
        })
    }

    fn is_empty(&self) -> bool {
        self.names.is_empty() && self.maps.is_empty()
    }

    fn contains(&self, domain: &str) -> bool {
        if domain.is_empty() || self.is_empty() {
            return false;
        }
        let domain = domain.to_ascii_lowercase();
        self.names.contains(&domain) || self.maps.lookup(&domain).is_some()
    }
}
