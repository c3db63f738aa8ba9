//! One destination, one delivery: choosing the mailbox form (spool mbox, `$HOME` mbox,
//! Maildir), whose rights the write gets, and the text of the verdict.
//!
//! Rights when the agent runs as root:
//! * the spool mailbox is opened as root (the spool is root's), refusing symbolic and hard
//!   links, and a new one is given to the user and the `mail` group;
//! * anything under the user's `$HOME` is written with the user's file-system ids;
//! * `|command` and `/file` from an alias run as the owner of the file that named them, or
//!   as `default_privs` when root owns it (never as root); from a `.forward`, as its user;
//! * `mailbox_command` runs as the recipient (`default_privs` for root), never as root.
//!
//! Not root (the embedded default): everything is written as the running user, and a user
//! who is not us (or not in passwd) gets the spool location instead of a `$HOME` one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use envelope::QueueId;

use super::command::{self, CommandJob};
use super::expand::{self, Attributes};
use super::fsutil::{ensure_dir, write_error_verdict};
use super::headers::{from_line, trace_headers};
use super::mailbox_name;
use super::mbox::{self, MboxTarget};
use super::resolve::{Origin, Target};
use super::users::{self, Account, FsIdentity};
use super::{maildir, LocalAgent, Verdict};

/// The message and the envelope facts every copy of it needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Copy<'a> {
    pub id: QueueId,
    pub sender: &'a str,
    pub original_recipient: &'a str,
    pub message: &'a [u8],
}

impl Copy<'_> {
    /// Trace headers + message: what a Maildir file holds.
    pub(crate) fn with_trace(&self, delivered_to: &str) -> Vec<u8> {
        let mut out = trace_headers(self.sender, self.original_recipient, delivered_to);
        out.extend_from_slice(self.message);
        out
    }

    /// The mbox record: `From ` line, trace headers, quoted message, empty line.
    pub(crate) fn mbox_record(&self, delivered_to: &str) -> Vec<u8> {
        let trace = trace_headers(self.sender, self.original_recipient, delivered_to);
        mbox::format_record(
            &from_line(self.sender, chrono::Utc::now()),
            &trace,
            self.message,
        )
    }
}

impl LocalAgent {
    pub(crate) fn deliver_target(&self, copy: &Copy<'_>, target: &Target) -> Verdict {
        let verdict = match target {
            Target::Mailbox {
                attributes,
                account,
                ..
            } if !self.settings.mailbox_command.is_empty() => {
                self.deliver_mailbox_command(copy, attributes, account.as_ref())
            }
            Target::Mailbox {
                user,
                address,
                account,
                ..
            } => self.deliver_mailbox(copy, user, address, account.as_ref()),
            Target::Command { command, origin } => self.deliver_command(copy, command, origin),
            Target::File { path, origin } => self.deliver_file(copy, path, origin),
        };
        tracing::debug!(
            "{}: to=<{}>, relay=local, dsn={}, ({})",
            copy.id,
            copy.original_recipient,
            verdict.dsn,
            verdict.text
        );
        verdict
    }

    fn deliver_mailbox(
        &self,
        copy: &Copy<'_>,
        user: &str,
        address: &str,
        account: Option<&Account>,
    ) -> Verdict {
        let home_mailbox = self.settings.home_mailbox.as_str();
        let Some(spool_path) = self.spool_mailbox(user) else {
            return bad_mailbox_name(user);
        };
        let home = account.filter(|a| users::running_as_root() || a.uid == current_uid());
        if home_mailbox.is_empty() {
            return self.deliver_spool(copy, user, address, account);
        }
        let path = match home {
            Some(account) => account.home.join(home_mailbox),
            None => spool_path,
        };
        // Only switch rights for a $HOME location; the spool fallback stays ours.
        let rights = home.filter(|_| users::running_as_root());
        let _identity = match rights.map(FsIdentity::assume).transpose() {
            Ok(identity) => identity,
            Err(e) => return Verdict::deferred("4.3.0", e.to_string()),
        };
        if home_mailbox.ends_with('/') {
            self.deliver_maildir(copy, &path, user, address)
        } else {
            let what = format!("cannot update mailbox {} for user {user}", path.display());
            self.deliver_mbox(copy, &path, what, address, None)
        }
    }

    /// `mail_spool_directory/<user>`, created as needed.
    fn deliver_spool(
        &self,
        copy: &Copy<'_>,
        user: &str,
        address: &str,
        account: Option<&Account>,
    ) -> Verdict {
        let spool = &self.settings.mail_spool_directory;
        if let Err(e) = ensure_dir(spool, 0o755) {
            let text = format!(
                "cannot create mail spool directory {}: {e}",
                spool.display()
            );
            return Verdict::deferred("4.3.0", text);
        }
        let Some(path) = self.spool_mailbox(user) else {
            return bad_mailbox_name(user);
        };
        let owner = account
            .filter(|_| users::running_as_root())
            .map(|a| (a.uid, self.settings.mail_gid.unwrap_or(a.gid)));
        let what = format!("cannot update mailbox {} for user {user}", path.display());
        self.deliver_mbox(copy, &path, what, address, owner)
    }

    fn spool_mailbox(&self, user: &str) -> Option<PathBuf> {
        mailbox_name::spool_mailbox(&self.settings.mail_spool_directory, user)
    }

    fn deliver_mbox(
        &self,
        copy: &Copy<'_>,
        path: &Path,
        what: String,
        address: &str,
        owner: Option<(u32, u32)>,
    ) -> Verdict {
        let target = MboxTarget {
            path,
            what,
            size_limit: self.settings.mailbox_size_limit,
            lock_timeout: self.lock_timeout,
            owner,
            strict: true,
            dotlock_optional: false,
            dotlock: true,
        };
        match mbox::append(&target, &copy.mbox_record(address)) {
            Ok(()) => Verdict::sent("delivered to mailbox"),
            Err(verdict) => verdict,
        }
    }

    fn deliver_maildir(&self, copy: &Copy<'_>, root: &Path, user: &str, address: &str) -> Verdict {
        let what = format!("cannot update maildir {} for user {user}", root.display());
        let content = copy.with_trace(address);
        let limit = self.settings.mailbox_size_limit;
        if limit > 0 && content.len() as u64 > limit {
            return write_error_verdict(&what, &std::io::Error::from_raw_os_error(libc::EFBIG));
        }
        match maildir::deliver(root, &self.settings.myhostname, &content) {
            Ok(_) => Verdict::sent("delivered to maildir"),
            Err(e) => write_error_verdict(&what, &e),
        }
    }

    fn deliver_command(&self, copy: &Copy<'_>, command: &str, origin: &Origin) -> Verdict {
        let account = match self.privileges_for(origin) {
            Ok(account) => account,
            Err(verdict) => return verdict,
        };
        let runner = account.clone().or_else(current_account);
        let (user, home) = match &runner {
            Some(a) => (a.name.clone(), a.home.display().to_string()),
            None => (String::new(), "/".to_string()),
        };
        let mut input = from_line(copy.sender, chrono::Utc::now()).into_bytes();
        input.extend(copy.with_trace(&origin.alias_address));
        let domain = envelope::split_address(&origin.alias_address).1;
        let env = vec![
            ("PATH", "/usr/bin:/bin".to_string()),
            ("SHELL", "/bin/sh".to_string()),
            ("LOCAL", origin.alias.clone()),
            ("DOMAIN", domain),
            ("USER", user.clone()),
            ("LOGNAME", user),
            ("HOME", home),
            ("SENDER", copy.sender.to_string()),
            ("RECIPIENT", copy.original_recipient.to_string()),
        ];
        command::run(&CommandJob {
            command,
            input: Arc::new(input),
            env,
            run_as: account.as_ref(),
            timeout: self.command_timeout,
            file_size_limit: self.settings.mailbox_size_limit,
        })
    }

    /// `mailbox_command` for one mailbox, with Postfix's environment, as the recipient when
    /// we are root (`default_privs` for root). As in Postfix the command line is not
    /// `$`-expanded by us: `"$EXTENSION"` is the shell's, from the environment.
    fn deliver_mailbox_command(
        &self,
        copy: &Copy<'_>,
        attributes: &Attributes,
        account: Option<&Account>,
    ) -> Verdict {
        let command = &self.settings.mailbox_command;
        // A recipient without a passwd entry (the embedded default accepts any local
        // part) gets default_privs when we are root, as root itself does.
        let origin = Origin {
            alias: attributes.user.clone(),
            alias_address: attributes.recipient.clone(),
            owner_uid: account.map_or(0, |a| a.uid),
        };
        let run_as = match self.privileges_for(&origin) {
            Ok(account) => account,
            Err(verdict) => return verdict,
        };
        let mut input = from_line(copy.sender, chrono::Utc::now()).into_bytes();
        input.extend(copy.with_trace(&attributes.recipient));
        let runner = run_as.clone().or_else(current_account);
        let env = mailbox_command_env(copy, attributes, runner.as_ref(), account);
        command::run(&CommandJob {
            command,
            input: Arc::new(input),
            env,
            run_as: run_as.as_ref(),
            timeout: self.command_timeout,
            file_size_limit: self.settings.mailbox_size_limit,
        })
    }

    fn deliver_file(&self, copy: &Copy<'_>, path: &str, origin: &Origin) -> Verdict {
        if path == "/dev/null" {
            return Verdict::sent("delivered to file: /dev/null");
        }
        let account = match self.privileges_for(origin) {
            Ok(account) => account,
            Err(verdict) => return verdict,
        };
        let _identity = match account.as_ref().map(FsIdentity::assume).transpose() {
            Ok(identity) => identity,
            Err(e) => return Verdict::deferred("4.3.0", e.to_string()),
        };
        if path.ends_with('/') {
            let user = account.map(|a| a.name).unwrap_or_default();
            return self.deliver_maildir(copy, &PathBuf::from(path), &user, &origin.alias_address);
        }
        let target = MboxTarget {
            path: Path::new(path),
            what: format!("cannot append message to file {path}"),
            size_limit: self.settings.mailbox_size_limit,
            lock_timeout: self.lock_timeout,
            owner: None,
            strict: false,
            dotlock_optional: true,
            dotlock: true,
        };
        match mbox::append(&target, &copy.mbox_record(&origin.alias_address)) {
            Ok(()) => Verdict::sent(format!("delivered to file: {path}")),
            Err(verdict) => verdict,
        }
    }

    /// Whose rights a command or file gets: `None` = ours (we are not root); else the owner
    /// of the alias or include file (the user, for a `.forward` or `mailbox_command`), or
    /// `default_privs` when that owner is root — never root, never `mail_owner`.
    fn privileges_for(&self, origin: &Origin) -> Result<Option<Account>, Verdict> {
        if !users::running_as_root() {
            return Ok(None);
        }
        let lookup = if origin.owner_uid == 0 {
            users::user_by_name(&self.settings.default_privs)
        } else {
            users::user_by_uid(origin.owner_uid)
        };
        let who = || match origin.owner_uid {
            0 => format!("default_privs user {:?}", self.settings.default_privs),
            uid => format!("uid {uid}"),
        };
        match lookup {
            // The queue owner's rights would let a command rewrite the queue.
            Ok(Some(account)) if account.uid != 0 && account.name == self.settings.mail_owner => {
                Err(Verdict::deferred(
                    "4.3.5",
                    format!(
                        "{} is mail_owner: refusing to run commands or write files as the queue owner",
                        who()
                    ),
                ))
            }
            Ok(Some(account)) if account.uid != 0 => Ok(Some(account)),
            Ok(Some(_)) => Err(Verdict::deferred(
                "4.3.5",
                format!(
                    "{} is privileged: refusing to run commands or write files as root",
                    who()
                ),
            )),
            Ok(None) => Err(Verdict::deferred(
                "4.3.5",
                format!("{} has no passwd entry", who()),
            )),
            Err(e) => Err(Verdict::deferred(
                "4.3.0",
                format!("cannot look up {}: {e}", who()),
            )),
        }
    }
}

/// Postfix's local(8) command environment, each value through the expansion filter.
/// `HOME` is the home of whoever runs the command: the recipient, or, in the unprivileged
/// embedded default, the running user (another user's `~/.procmailrc` must not be obeyed
/// with our rights).
fn mailbox_command_env(
    copy: &Copy<'_>,
    attributes: &Attributes,
    runner: Option<&Account>,
    recipient: Option<&Account>,
) -> Vec<(&'static str, String)> {
    let clean = |value: &str| value.chars().map(expand::filtered).collect::<String>();
    let home = match (runner, recipient) {
        (Some(r), Some(a)) if r.uid == a.uid => attributes.home.clone(),
        (Some(r), _) => r.home.display().to_string(),
        (None, _) => attributes.home.clone(),
    };
    let shell = match attributes.shell.is_empty() {
        true => "/bin/sh".to_string(),
        false => attributes.shell.clone(),
    };
    let mut env = vec![
        ("PATH", "/usr/bin:/bin".to_string()),
        ("HOME", clean(&home)),
        ("SHELL", clean(&shell)),
        ("USER", clean(&attributes.user)),
        ("LOGNAME", clean(&attributes.user)),
        ("LOCAL", clean(&attributes.local)),
        ("DOMAIN", clean(&attributes.domain)),
        ("RECIPIENT", clean(&attributes.recipient)),
        ("SENDER", clean(copy.sender)),
        ("ORIGINAL_RECIPIENT", clean(copy.original_recipient)),
    ];
    if !attributes.delimiter.is_empty() {
        env.push(("EXTENSION", clean(&attributes.extension)));
    }
    env
}

/// Resolution refuses such names first; this keeps a path into the spool from ever being
/// built from one, whatever the caller.
fn bad_mailbox_name(user: &str) -> Verdict {
    let text = format!("bad address syntax: {:?}", super::headers::one_line(user));
    Verdict::bounced("5.1.3", text)
}

fn current_uid() -> u32 {
    sys::effective_uid()
}

fn current_account() -> Option<Account> {
    users::user_by_uid(current_uid()).ok().flatten()
}
