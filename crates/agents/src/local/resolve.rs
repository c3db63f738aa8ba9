//! Recipient resolution: one envelope recipient in a local domain → the list of things to do
//! (mailboxes, commands, files, forwards to other domains) or the reason it cannot be done.
//!
//! Order, as Postfix's local(8): the `Delivered-To:` loop check, then aliases (recursively;
//! local targets are expanded here, inline), then the user. An alias that names itself
//! (`alice: alice, alice@backup.example`) means the user's own mailbox. Any other cycle, a
//! nesting deeper than [`MAX_DEPTH`], or an address the message was already delivered to
//! (`Delivered-To:`) is a mail forwarding loop: bounced with 5.4.6.
//!
//! Duplicates within one recipient's expansion are delivered once.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use super::aliases::{self, AliasTarget, TargetSource};
use super::mailbox_name;
use super::users::{self, Account};
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
    },
    Failed(Verdict),
}

/// A final local destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Mailbox {
        user: String,
        /// `user@domain`, the copy's `Delivered-To:`.
        address: String,
        account: Option<Account>,
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
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Alias => "alias",
            Class::Include => "include",
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
        let is_self_reference = parent.is_some_and(|p| p.name == name);
        match self.agent.aliases.get(&name) {
            Some(entry) if !is_self_reference => {
                if self.aliases_on_path.contains(&name) {
                    return self.fail_loop(&full);
                }
                let context = Context {
                    name: name.clone(),
                    address: full,
                    class: Class::Alias,
                    source: Arc::clone(&entry.source),
                };
                let targets = entry.targets.clone();
                self.aliases_on_path.push(name);
                for target in &targets {
                    self.target(target, depth + 1, &context);
                }
                self.aliases_on_path.pop();
            }
            _ => self.mailbox(name, full),
        }
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
    fn mailbox(&mut self, name: String, full: String) {
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
        self.deliver_once(Target::Mailbox {
            user: name,
            address: full,
            account,
        });
    }

    fn target(&mut self, target: &AliasTarget, depth: usize, context: &Context) {
        match target {
            AliasTarget::Address(address) => {
                let address = self.agent.qualify(address);
                self.address(&address, depth, Some(context));
            }
            AliasTarget::NoAlias(user) => {
                let full = format!("{user}@{}", self.agent.origin());
                if self.loops.contains(&full) {
                    return self.fail_loop(&full);
                }
                self.mailbox(user.clone(), full);
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
    fn local_parts_are_normalized() {
        assert_eq!(normalize_local_part("Alice"), "alice");
        assert_eq!(normalize_local_part("\"Bob\""), "bob");
        assert_eq!(normalize_local_part("\""), "\"");
    }
}
