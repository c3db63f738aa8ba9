//! The virtual mailbox agent, Postfix's virtual(8): mail for a domain in
//! `virtual_mailbox_domains` goes to the mailbox `virtual_mailbox_maps` names for the
//! recipient (`user@domain`, then `@domain`), a path under `virtual_mailbox_base` — an mbox,
//! or a Maildir when the result ends in `/` — written with the uid and gid that
//! `virtual_uid_maps` and `virtual_gid_maps` give. No aliases, no `.forward`, no commands:
//! one recipient, one mailbox.
//!
//! It reuses local delivery's writers (`local::mbox`, `local::maildir`), locks and fsync
//! rules, so a virtual delivery is reported only once its bytes and directory entries are
//! on disk, and an mbox never keeps half a message.
//!
//! Outcomes, as Postfix's: not in the map → bounced 5.1.1 `unknown user: "a@example.com"`
//! (smtpd refuses such recipients at RCPT already); a uid below `virtual_minimum_uid`, a
//! missing uid or gid, a result with `/../` → deferred 4.3.5 `mail system configuration
//! error` with a warning naming the map; a mailbox that would grow past
//! `virtual_mailbox_limit` (or a Maildir message larger than it) → bounced 5.2.2.
//!
//! Security stance: trusts the configuration and its maps (the operator's word), not the
//! envelope. As root (the local delivery helper under privilege separation, or a daemon
//! that keeps root) everything — directories, the mbox and its dotlock, Maildir files — is
//! created and written with the mapped uid/gid as this thread's file-system ids, never as
//! root, so a `virtual_mailbox_base` the virtual uid cannot write into defers the mail
//! instead of writing there as root. Without root (the embedded default) the uid and gid
//! maps are not consulted: the files belong to the running user.

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use maps::{AddressQuery, MapError, Maps};

use crate::local::deliver::Copy;
use crate::local::fsutil::{ensure_dir, write_error_verdict};
use crate::local::mbox::{self, MboxTarget};
use crate::local::users::{self, Account, FsIdentity};
use crate::local::{maildir, Verdict};

/// The `relay=` of every virtual outcome.
pub const RELAY: &str = "virtual";

/// What the agent takes from the configuration ([`VirtualSettings::from_config`]).
#[derive(Debug, Clone, Default)]
pub struct VirtualSettings {
    /// `virtual_mailbox_domains`, as written.
    domains: Vec<String>,
    mailbox_maps: Vec<String>,
    uid_maps: Vec<String>,
    gid_maps: Vec<String>,
    base: String,
    minimum_uid: u32,
    limit: u64,
    dotlock: bool,
    myhostname: String,
    /// `recipient_delimiter`: `user+ext@domain` is also looked up as `user@domain`.
    delimiter: String,
    /// `virtual_transport` is `virtual`: this agent delivers the virtual mailbox domains.
    enabled: bool,
}

impl VirtualSettings {
    /// `virtual_mailbox_domains`, `virtual_mailbox_maps`, `virtual_mailbox_base`,
    /// `virtual_uid_maps`, `virtual_gid_maps`, `virtual_minimum_uid`,
    /// `virtual_mailbox_limit`, `virtual_mailbox_lock`, `virtual_transport`, `myhostname`.
    pub fn from_config(cfg: &config::Config) -> VirtualSettings {
        VirtualSettings {
            domains: cfg.virtual_mailbox_domains.clone(),
            mailbox_maps: cfg.virtual_mailbox_maps.clone(),
            uid_maps: cfg.virtual_uid_maps.clone(),
            gid_maps: cfg.virtual_gid_maps.clone(),
            base: cfg.virtual_mailbox_base.trim().to_string(),
            minimum_uid: u32::try_from(cfg.virtual_minimum_uid).unwrap_or(u32::MAX),
            limit: cfg.virtual_mailbox_limit,
            dotlock: cfg.virtual_mailbox_lock.iter().any(|l| l == "dotlock"),
            myhostname: cfg.myhostname.clone(),
            delimiter: cfg.recipient_delimiter.clone(),
            enabled: cfg.virtual_transport.trim() == "virtual",
        }
    }
}

/// A domain list as Postfix reads one (`virtual_mailbox_domains`): domain names, and maps
/// (`type:name` or an absolute path) in which a listed domain is a key. Exact matches only
/// (the parameter is not in Postfix's `parent_domain_matches_subdomains`).
#[derive(Debug, Default)]
pub struct DomainList {
    names: Vec<String>,
    maps: Maps,
}

impl DomainList {
    /// Opens the maps among `items` (which may hold several comma/space separated items).
    pub fn open(items: &[String]) -> Result<DomainList, MapError> {
        let items = items
            .iter()
            .flat_map(|entry| entry.split([',', ' ', '\t']))
            .map(str::trim)
            .filter(|item| !item.is_empty());
        let (maps, names): (Vec<&str>, Vec<&str>) =
            items.partition(|item| item.contains(':') || item.starts_with('/'));
        Ok(DomainList {
            names: names
                .iter()
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            maps: Maps::open(&maps)?,
        })
    }

    /// Case-insensitive, a trailing dot ignored; never the empty domain.
    pub fn contains(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        !domain.is_empty() && (self.names.contains(&domain) || self.maps.lookup(&domain).is_some())
    }
}

/// The virtual(8) agent: its settings and its opened maps.
#[derive(Debug)]
pub struct VirtualAgent {
    settings: VirtualSettings,
    domains: DomainList,
    mailboxes: Maps,
    uids: Maps,
    gids: Maps,
    lock_timeout: Duration,
}

impl VirtualAgent {
    /// Opens every map; a missing file or a bad line is an error naming `file:line`, so a
    /// reload with a broken map keeps the agent that is running.
    pub fn new(settings: VirtualSettings) -> Result<VirtualAgent, MapError> {
        Ok(VirtualAgent {
            domains: DomainList::open(&settings.domains)?,
            mailboxes: Maps::open(&settings.mailbox_maps)?,
            uids: Maps::open(&settings.uid_maps)?,
            gids: Maps::open(&settings.gid_maps)?,
            settings,
            lock_timeout: crate::local::lock::LOCK_TIMEOUT,
        })
    }

    /// True for a domain in `virtual_mailbox_domains` (case-insensitive, trailing dot
    /// ignored), when `virtual_transport` is this agent.
    pub fn is_virtual_domain(&self, domain: &str) -> bool {
        self.settings.enabled && self.domains.contains(domain)
    }

    /// For smtpd at RCPT: `None` when the address is not in a virtual mailbox domain, else
    /// whether `virtual_mailbox_maps` knows it (Postfix: `User unknown in virtual mailbox
    /// table`). Asked whatever the transport (as Postfix's smtpd does); with no
    /// `virtual_mailbox_maps` at all every address is known, as in Postfix (an LMTP server
    /// behind `virtual_transport` then decides).
    pub fn accepts(&self, address: &str) -> Option<bool> {
        let (_, domain) = envelope::split_address(address);
        self.domains
            .contains(&domain)
            .then(|| self.mailboxes.is_empty() || self.mailbox_of(address).is_some())
    }

    /// For admin tools (`mailroom mailbox archive alice@example.com`): the mailbox path of an
    /// address in a virtual mailbox domain, and whether it is a Maildir; `None` when the
    /// domain is not one, the map does not know the address, or the result climbs out.
    pub fn mailbox_location(&self, address: &str) -> Option<(PathBuf, bool)> {
        self.accepts(address)?;
        let result = self.mailbox_of(address)?;
        let path = self.mailbox_path(address, &result)?;
        Some((path, result.ends_with('/')))
    }

    /// `user+ext@domain`, `user@domain` (with `recipient_delimiter`), then `@domain`, in
    /// `virtual_mailbox_maps`.
    fn mailbox_of(&self, address: &str) -> Option<String> {
        let query = AddressQuery {
            delimiter: &self.settings.delimiter,
            local_domain: false,
        };
        self.mailboxes
            .find_address(&lookup_key(address), query)
            .map(|f| f.value)
    }

    /// Delivers one copy to the mailbox of `address`.
    pub(crate) fn deliver(&self, copy: &Copy<'_>, address: &str) -> Verdict {
        let Some(result) = self.mailbox_of(address) else {
            let text = format!("unknown user: \"{}\"", one_line(address));
            return Verdict::bounced("5.1.1", text);
        };
        let Some(path) = self.mailbox_path(address, &result) else {
            return config_error();
        };
        let owner = match self.owner(address) {
            Ok(owner) => owner,
            Err(verdict) => return verdict,
        };
        let _identity = match owner.as_ref().map(FsIdentity::assume).transpose() {
            Ok(identity) => identity,
            Err(e) => return Verdict::deferred("4.3.0", e.to_string()),
        };
        let what = format!("delivery failed to mailbox {}", path.display());
        if result.ends_with('/') {
            self.deliver_maildir(copy, &path, what, address)
        } else {
            self.deliver_mbox(copy, &path, what, address)
        }
    }

    /// `virtual_mailbox_base/result`; `None` (after a warning) for a result that climbs out
    /// with `..`, as Postfix refuses it.
    fn mailbox_path(&self, address: &str, result: &str) -> Option<PathBuf> {
        let joined = format!("{}/{}", self.settings.base, result);
        let climbs = Path::new(result)
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
        if climbs {
            tracing::warn!(target: "virtual",
                "recipient {}: bad mailbox path {result} in {}", one_line(address), specs(&self.mailboxes));
            return None;
        }
        Some(PathBuf::from(joined))
    }

    /// The account whose file-system ids the write gets: `None` when not root (the files are
    /// the running user's); else the mapped uid and gid, checked as Postfix checks them.
    fn owner(&self, address: &str) -> Result<Option<Account>, Verdict> {
        if !users::running_as_root() {
            return Ok(None);
        }
        let uid = self.id_from(&self.uids, address, "uid")?;
        if uid < self.settings.minimum_uid {
            tracing::warn!(target: "virtual",
                "recipient {}: bad uid {uid} in {} (below virtual_minimum_uid {})",
                one_line(address), specs(&self.uids), self.settings.minimum_uid);
            return Err(config_error());
        }
        let gid = self.id_from(&self.gids, address, "gid")?;
        Ok(Some(Account {
            name: address.to_string(),
            uid,
            gid,
            home: PathBuf::from("/"),
            shell: PathBuf::from("/bin/sh"),
        }))
    }

    /// A uid or gid from its maps; a missing or non-numeric one is a configuration error.
    fn id_from(&self, table: &Maps, address: &str, what: &str) -> Result<u32, Verdict> {
        let query = AddressQuery {
            delimiter: &self.settings.delimiter,
            local_domain: false,
        };
        let Some(found) = table.find_address(&lookup_key(address), query) else {
            tracing::warn!(target: "virtual",
                "recipient {}: not found in {}", one_line(address), specs(table));
            return Err(config_error());
        };
        match found.value.trim().parse::<u32>() {
            Ok(id) if id != u32::MAX => Ok(id),
            _ => {
                tracing::warn!(target: "virtual",
                    "recipient {}: bad {what} {} in {}", one_line(address), one_line(&found.value), specs(table));
                Err(config_error())
            }
        }
    }

    fn deliver_mbox(&self, copy: &Copy<'_>, path: &Path, what: String, address: &str) -> Verdict {
        if let Some(parent) = path.parent() {
            if let Err(e) = ensure_dir(parent, 0o700) {
                return write_error_verdict(&what, &e).kind_deferred();
            }
        }
        let target = MboxTarget {
            path,
            what,
            size_limit: self.settings.limit,
            lock_timeout: self.lock_timeout,
            owner: None,
            strict: true,
            dotlock_optional: false,
            dotlock: self.settings.dotlock,
        };
        match mbox::append(&target, &copy.mbox_record(address)) {
            Ok(()) => Verdict::sent("delivered to mailbox"),
            Err(verdict) => verdict,
        }
    }

    fn deliver_maildir(
        &self,
        copy: &Copy<'_>,
        root: &Path,
        what: String,
        address: &str,
    ) -> Verdict {
        let content = copy.with_trace(address);
        let limit = self.settings.limit;
        if limit > 0 && content.len() as u64 > limit {
            return write_error_verdict(&what, &std::io::Error::from_raw_os_error(libc::EFBIG));
        }
        match maildir::deliver(root, &self.settings.myhostname, &content) {
            Ok(_) => Verdict::sent("delivered to maildir"),
            Err(e) => write_error_verdict(&what, &e),
        }
    }
}

impl Verdict {
    /// A directory that could not be made is never permanent (Postfix: 4.2.0).
    fn kind_deferred(self) -> Verdict {
        match self.kind {
            envelope::OutcomeKind::Bounced => Verdict::deferred("4.2.0", self.text),
            _ => self,
        }
    }
}

/// The key an address is looked up by: lower case (as `postmap` folds keys), without the
/// domain's trailing dot.
fn lookup_key(address: &str) -> String {
    let lower = address.to_ascii_lowercase();
    match lower.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.trim_end_matches('.')),
        None => lower,
    }
}

fn config_error() -> Verdict {
    Verdict::deferred("4.3.5", "mail system configuration error")
}

/// The map names of a list, for warnings (`hash:/etc/vmailbox, static:5000`).
fn specs(table: &Maps) -> String {
    let names: Vec<&str> = table.iter().map(|m| m.spec()).collect();
    if names.is_empty() {
        "(no maps)".to_string()
    } else {
        names.join(", ")
    }
}

fn one_line(text: &str) -> String {
    crate::local::headers::one_line(text)
}
