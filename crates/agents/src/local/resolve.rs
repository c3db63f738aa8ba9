//! Recipient resolution: one envelope recipient in a local domain → the list of things to do
//! (mailboxes, commands, files, forwards to other domains) or the reason it cannot be done.
//!
//! Order, as Postfix's local(8): the `Delivered-To:` loop check, then aliases (recursively;
//! local targets are expanded here, inline), then the user's `.forward` (`forward.rs`),
//! then the user's mailbox. An alias or a `.forward` that names its own user
//! (`alice: alice, alice@backup.example`) means the user's own mailbox. Any other cycle, a
//! nesting deeper than [`MAX_DEPTH`], or an address the message was already delivered to
//! (`Delivered-To:`) is a mail forwarding loop: bounced with 5.4.6.
//!
//! With a `recipient_delimiter`, `alice+news` is looked up as an alias first, then as
//! `alice`; the user is `alice` and `news` the extension (`$extension`, `EXTENSION`).
//!
//! An alias `LIST` that has an `owner-LIST` alias is a mailing list (Postfix's
//! `owner_request_special`): its addresses are not expanded inline but queued as a new
//! message whose envelope sender is `owner-LIST@$myorigin`, so the bounces of the list's
//! members go to its owner, not to whoever wrote to the list. A bounce (null sender) sent
//! to a list stays a bounce: it never gains a sender that could be bounced to.
//!
//! Duplicates within one recipient's expansion are delivered once.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use super::aliases::{self, AliasTarget, TargetSource};
use super::expand::Attributes;
use super::users::{self, Account};
use super::{forward, mailbox_name};
use super::{LocalAgent, Verdict};

/// Alias and include nesting limit; Postfix's is 100, real configurations use 2 or 3.
pub(crate) const MAX_DEPTH: usize = 20;

/// One thing to do for a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Deliver(Target),
    /// A non-local address: the daemon queues a new message for it.
    Forward {
        address: String,
        /// The alias that produced it: the new message's `Delivered-To:`.
        delivered_to: String,
        /// The new message's envelope sender when not the original's (`owner-LIST`).
        sender: Option<String>,
    },
    Failed(Verdict),
}

/// A final local destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Mailbox {
        user: String,
        /// `user@domain` (with its extension), the copy's `Delivered-To:`.
        address: String,
        account: Option<Account>,
        /// The recipient as `mailbox_command` sees it (`$extension`, `EXTENSION` …).
        attributes: Box<Attributes>,
    },
    Command {
        command: String,
        origin: Origin,
    },
    File {
        path: String,
        origin: Origin,
    },
}

impl Target {
    /// The `to=` of its log line: the mailbox's address, or for a command or file the
    /// alias that named it (as Postfix logs them).
    pub(crate) fn log_address(&self) -> &str {
        match self {
            Target::Mailbox { address, .. } => address,
            Target::Command { origin, .. } | Target::File { origin, .. } => &origin.alias_address,
        }
    }

    /// Identifies the destination, for delivering each one once per message.
    pub(crate) fn key(&self) -> String {
        match self {
            Target::Mailbox { user, .. } => format!("mailbox:{user}"),
            Target::Command { command, origin } => {
                format!("command:{}:{command}", origin.owner_uid)
            }
            Target::File { path, origin } => format!("file:{}:{path}", origin.owner_uid),
        }
    }
}

/// Where a command or file target came from: the alias (for `Delivered-To:` and `LOCAL`)
/// and the owner of the file that named it (whose rights it runs with when we are root).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub alias: String,
    pub alias_address: String,
    pub owner_uid: u32,
}

/// Which allow_mail_to_commands / allow_mail_to_files class a target belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Alias,
    Include,
    Forward,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Alias => "alias",
            Class::Include => "include",
            Class::Forward => "forward",
        }
    }
}

/// The alias being expanded when a target is met.
#[derive(Debug, Clone)]
struct Context {
    name: String,
    address: String,
    class: Class,
    source: Arc<TargetSource>,
    /// `owner-NAME@myorigin` when the alias is a list with an owner.
    owner: Option<String>,
}

/// Expands one envelope recipient address.
pub(crate) fn expand(agent: &LocalAgent, address: &str, loops: &HashSet<String>) -> Vec<Step> {
    let mut expander = Expander {
        agent,
        loops,
        steps: Vec::new(),
        seen: HashSet::new(),
        aliases_on_path: Vec::new(),
        includes_on_path: Vec::new(),
        forwards_on_path: Vec::new(),
    };
    expander.address(address, 0, None);
    expander.steps
}

struct Expander<'a> {
    agent: &'a LocalAgent,
    loops: &'a HashSet<String>,
    steps: Vec<Step>,
    seen: HashSet<String>,
    aliases_on_path: Vec<String>,
    includes_on_path: Vec<PathBuf>,
    /// Users whose `.forward` is being expanded.
    forwards_on_path: Vec<String>,
}

impl Expander<'_> {
    fn fail(&mut self, verdict: Verdict) {
        self.steps.push(Step::Failed(verdict));
    }

    fn fail_loop(&mut self, address: &str) {
        self.fail(Verdict::bounced(
            "5.4.6",
            format!("mail forwarding loop for {address}"),
        ));
    }

    /// Pushes a target unless the same destination was already reached for this recipient.
    fn deliver_once(&mut self, target: Target) {
        if self.seen.insert(target.key()) {
            self.steps.push(Step::Deliver(target));
        }
    }

    fn address(&mut self, address: &str, depth: usize, parent: Option<&Context>) {
        if depth > MAX_DEPTH {
            return self.fail_loop(address);
        }
        let (local, domain) = envelope::split_address(address);
        if !self.agent.is_local_domain(&domain) {
            return self.forward_or_fail(address, parent);
        }
        let name = normalize_local_part(local);
        let domain = if domain.is_empty() {
            self.agent.origin().to_string()
        } else {
            domain
        };
        let full = format!("{name}@{domain}");
        if self.loops.contains(&full) {
            return self.fail_loop(&full);
        }
        let recipient = self.agent.split_extension(&name);
        let is_self_reference = |key: &str| parent.is_some_and(|p| p.name == key);
        let alias = [name.as_str(), recipient.user.as_str()]
            .into_iter()
            .find_map(|key| Some((key.to_string(), self.agent.aliases.get(key)?)));
        match alias {
            Some((key, entry)) if !is_self_reference(&key) => {
                if self.aliases_on_path.contains(&key) {
                    return self.fail_loop(&full);
                }
                let context = Context {
                    owner: self.agent.list_owner(&key),
                    name: key.clone(),
                    address: full,
                    class: Class::Alias,
                    source: Arc::clone(&entry.source),
                };
                let targets = entry.targets.clone();
                self.aliases_on_path.push(key);
                for target in &targets {
                    self.target(target, depth + 1, &context);
                }
                self.aliases_on_path.pop();
            }
            _ => self.user(recipient, full, domain, depth, parent),
        }
    }

    /// A local user: its `.forward` if it has a usable one, else its mailbox.
    fn user(
        &mut self,
        recipient: Extension,
        full: String,
        domain: String,
        depth: usize,
        parent: Option<&Context>,
    ) {
        let name = recipient.user.clone();
        let from_own_forward = parent.is_some_and(|p| p.class == Class::Forward && p.name == name);
        if from_own_forward {
            return self.mailbox(recipient, full, domain);
        }
        if self.forwards_on_path.contains(&name) {
            return self.fail_loop(&full);
        }
        let Some((account, file)) = self.forward_file(&recipient, &full, &domain) else {
            return self.mailbox(recipient, full, domain);
        };
        let context = Context {
            name: name.clone(),
            address: full,
            class: Class::Forward,
            source: Arc::new(TargetSource {
                path: file.path,
                owner_uid: account.uid,
            }),
            owner: None,
        };
        self.forwards_on_path.push(name);
        for target in &file.targets {
            self.target(target, depth + 1, &context);
        }
        self.forwards_on_path.pop();
    }

    /// The user's account and usable `.forward`, when it has both.
    fn forward_file(
        &self,
        recipient: &Extension,
        full: &str,
        domain: &str,
    ) -> Option<(Account, forward::ForwardFile)> {
        let forward_path = self.agent.settings.forward_path.trim();
        if forward_path.is_empty() || mailbox_name::problem(&recipient.user).is_some() {
            return None;
        }
        let account = users::user_by_name(&recipient.user).ok()??;
        let rights = forward::lookup_rights(&account).ok()?;
        let attributes = attributes(recipient, full, domain, Some(&account));
        let file = forward::find(forward_path, &attributes, rights)?;
        Some((account, file))
    }

    fn forward_or_fail(&mut self, address: &str, parent: Option<&Context>) {
        match parent {
            Some(context) => {
                if self
                    .seen
                    .insert(format!("forward:{}", address.to_lowercase()))
                {
                    self.steps.push(Step::Forward {
                        address: address.to_string(),
                        delivered_to: context.address.clone(),
                        sender: context.owner.clone(),
                    });
                }
            }
            None => self.fail(Verdict::bounced(
                "5.1.2",
                format!("domain of {address:?} is not a local destination"),
            )),
        }
    }

    /// A local user's mailbox, if the user is known.
    fn mailbox(&mut self, recipient: Extension, full: String, domain: String) {
        let name = recipient.user.clone();
        if let Some(problem) = mailbox_name::problem(&name) {
            let name = super::headers::one_line(&name);
            let text = format!("bad address syntax: {name:?}: {problem}");
            return self.fail(Verdict::bounced("5.1.3", text));
        }
        let account = match users::user_by_name(&name) {
            Ok(account) => account,
            Err(e) => {
                let text = format!("cannot look up user {name:?}: {e}");
                return self.fail(Verdict::deferred("4.3.0", text));
            }
        };
        if !self.agent.is_known_user(account.is_some()) {
            return self.fail(Verdict::bounced("5.1.1", format!("unknown user: {name:?}")));
        }
        let attributes = Box::new(attributes(&recipient, &full, &domain, account.as_ref()));
        self.deliver_once(Target::Mailbox {
            user: name,
            address: full,
            account,
            attributes,
        });
    }

    fn target(&mut self, target: &AliasTarget, depth: usize, context: &Context) {
        match target {
            AliasTarget::Address(address) if context.owner.is_some() => {
                let address = self.agent.qualify(address);
                self.forward_or_fail(&address, Some(context));
            }
            AliasTarget::Address(address) => {
                let address = self.agent.qualify(address);
                self.address(&address, depth, Some(context));
            }
            AliasTarget::NoAlias(user) => {
                let domain = self.agent.origin().to_string();
                let full = format!("{user}@{domain}");
                if self.loops.contains(&full) {
                    return self.fail_loop(&full);
                }
                self.mailbox(Extension::none(user), full, domain);
            }
            AliasTarget::Command(command) => self.command(command, context),
            AliasTarget::File(path) => self.file(path, context),
            AliasTarget::Include(path) => self.include(path, depth, context),
        }
    }

    fn origin(context: &Context) -> Origin {
        Origin {
            alias: context.name.clone(),
            alias_address: context.address.clone(),
            owner_uid: context.source.owner_uid,
        }
    }

    fn command(&mut self, command: &str, context: &Context) {
        if !self.agent.commands_allowed(context.class.name()) {
            return self.fail(Verdict::bounced("5.7.1", "mail to command is restricted"));
        }
        self.deliver_once(Target::Command {
            command: command.to_string(),
            origin: Self::origin(context),
        });
    }

    fn file(&mut self, path: &str, context: &Context) {
        if !self.agent.files_allowed(context.class.name()) {
            return self.fail(Verdict::bounced("5.7.1", "mail to file is restricted"));
        }
        self.deliver_once(Target::File {
            path: path.to_string(),
            origin: Self::origin(context),
        });
    }

    /// `:include:/path`: read now (so edits apply without a reload, like Postfix), each
    /// target expanded with the include file's owner as the source of rights.
    fn include(&mut self, path: &str, depth: usize, context: &Context) {
        let path_buf = PathBuf::from(path);
        if depth > MAX_DEPTH || self.includes_on_path.contains(&path_buf) {
            return self.fail_loop(&format!(":include:{path}"));
        }
        let (text, owner_uid) = match aliases::read_if_exists(&path_buf) {
            Ok(Some(found)) => found,
            Ok(None) => {
                let text = format!("cannot open include file {path}: No such file or directory");
                return self.fail(Verdict::deferred("4.3.0", text));
            }
            Err(e) => return self.fail(Verdict::deferred("4.3.0", e.to_string())),
        };
        let (targets, errors) = aliases::parse_include(&text);
        for (line, message) in errors {
            tracing::warn!("{path}:{line}: {message} (entry skipped)");
        }
        let context = Context {
            class: Class::Include,
            owner: None,
            source: Arc::new(TargetSource {
                path: path_buf.clone(),
                owner_uid,
            }),
            ..context.clone()
        };
        self.includes_on_path.push(path_buf);
        for target in &targets {
            self.target(target, depth + 1, &context);
        }
        self.includes_on_path.pop();
    }
}

/// A local part split at the `recipient_delimiter`: `alice+news` → `alice`, `+`, `news`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extension {
    /// The whole local part.
    pub local: String,
    pub user: String,
    /// Empty when there is no extension.
    pub delimiter: String,
    pub extension: String,
}

impl Extension {
    pub(crate) fn none(local: &str) -> Extension {
        Extension {
            local: local.to_string(),
            user: local.to_string(),
            delimiter: String::new(),
            extension: String::new(),
        }
    }
}

/// Postfix's `split_addr`: at the first delimiter character, unless that would leave no
/// user, and never inside `owner-` or `-request` (list addresses when `-` is a delimiter).
pub(crate) fn split_extension(local: &str, delimiters: &str) -> Extension {
    if delimiters.is_empty() || local.starts_with("owner-") || local.ends_with("-request") {
        return Extension::none(local);
    }
    match local.find(|c: char| delimiters.contains(c)) {
        Some(at) if at > 0 => {
            let delimiter_len = local[at..].chars().next().map_or(1, char::len_utf8);
            Extension {
                local: local.to_string(),
                user: local[..at].to_string(),
                delimiter: local[at..at + delimiter_len].to_string(),
                extension: local[at + delimiter_len..].to_string(),
            }
        }
        _ => Extension::none(local),
    }
}

/// The expansion attributes of a local recipient (`home` and `shell` from its account).
fn attributes(
    recipient: &Extension,
    full: &str,
    domain: &str,
    account: Option<&Account>,
) -> Attributes {
    Attributes {
        user: recipient.user.clone(),
        home: account.map_or_else(String::new, |a| a.home.display().to_string()),
        shell: account.map_or_else(String::new, |a| a.shell.display().to_string()),
        local: recipient.local.clone(),
        extension: recipient.extension.clone(),
        delimiter: recipient.delimiter.clone(),
        recipient: full.to_string(),
        domain: domain.to_string(),
    }
}

/// The key for users and aliases: quotes removed, lower-cased (Postfix folds case too).
pub(crate) fn normalize_local_part(local: &str) -> String {
    let local = local
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or(local);
    local.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_split_at_the_first_delimiter_as_postfix_does() {
        let split = |local, delimiters| {
            let e = split_extension(local, delimiters);
            (e.user, e.delimiter, e.extension)
        };
        let owned = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(split("alice+news", "+"), owned("alice", "+", "news"));
        assert_eq!(split("alice+a+b", "+-"), owned("alice", "+", "a+b"));
        assert_eq!(split("alice-news", "+-"), owned("alice", "-", "news"));
        assert_eq!(split("alice+news", ""), owned("alice+news", "", ""));
        assert_eq!(split("+news", "+"), owned("+news", "", ""));
        assert_eq!(split("alice+", "+"), owned("alice", "+", ""));
        assert_eq!(split("owner-list", "-"), owned("owner-list", "", ""));
        assert_eq!(split("list-request", "-"), owned("list-request", "", ""));
        assert_eq!(split("é+ü", "+"), owned("é", "+", "ü"));
    }

    #[test]
    fn local_parts_are_normalized() {
        assert_eq!(normalize_local_part("Alice"), "alice");
        assert_eq!(normalize_local_part("\"Bob\""), "bob");
        assert_eq!(normalize_local_part("\""), "\"");
    }
}
