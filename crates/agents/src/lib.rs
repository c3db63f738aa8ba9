//! Delivery agents: a queued message and some of its recipients in, one outcome per
//! recipient out. Agents never touch the queue (this crate does not depend on it); the
//! scheduler alone turns outcomes into queue state (DESIGN: "Agents never touch each other").
//!
//! # The local agent ([`local`])
//!
//! Job: deliver mail for recipients in `mydestination`, like Postfix's local(8).
//!
//! Inputs → outputs: a [`LocalSettings`] (built by the binary from the configuration with
//! [`LocalSettings::from_config`]; read at [`LocalAgent::new`] / [`LocalAgent::reload`]),
//! then per call an envelope, the indexes of the recipients to deliver and the message bytes
//! (LF line endings) → a [`Delivery`]: exactly one [`envelope::Outcome`] per requested
//! recipient (relay `local`, Postfix's texts: `delivered to mailbox`, `unknown user: "bob"`
//! 5.1.1, `mail forwarding loop for …` 5.4.6) and the [`Resubmission`]s the daemon must queue
//! for aliases that point to other domains. The calls block; the daemon runs them on its
//! blocking pool.
//!
//! Resolution: `Delivered-To:` loop check → aliases (`alias_maps`, aliases(5) syntax,
//! recursive, `|command`, `/file`, `:include:`; `LIST` with an `owner-LIST` alias is sent on
//! from the owner) → the user (`local_recipient_maps`: empty = anyone, `unix:passwd.byname` =
//! must be in passwd; `recipient_delimiter` splits `user+extension`) → the user's `.forward`
//! (`forward_path`) → `mailbox_command` when set, else the mailbox. Storage: mbox in
//! `mail_spool_directory/<user>` by default; `home_mailbox` puts it under `$HOME` instead, as
//! Maildir when it ends in `/`. A mailbox name is a safe file name that is no other
//! mailbox's dotlock (`local::mailbox_name`: no `/`, no leading dot, no `.lock` suffix). A
//! user with no passwd entry (the embedded default accepts any such name) has no `$HOME`: the mailbox stays at `mail_spool_directory/<user>`, which
//! is a Maildir directory when `home_mailbox` ends in `/`.
//!
//! Invariants:
//! * a delivery is reported sent only after the data (and any new directory entry) is
//!   fsynced; an mbox is never left with half a message (truncated back on any failure);
//! * mboxes are locked with both a dotlock and an fcntl lock, each with a bounded wait
//!   (deferred 4.2.0 after 10s), and both are always released;
//! * a message that already carries `Delivered-To: <address>` is never delivered to that
//!   address again (bounced 5.4.6): forwarding loops end instead of filling a spool;
//! * no input (bad UTF-8, CR/LF in addresses, empty message, huge lines) panics or forges
//!   a header or an mbox separator.
//!
//! Security stance: trusts the configuration and the alias files (the operator's word) but
//! not envelopes or messages, which come from the network. Needs root only to deliver to
//! several users: then the spool mailbox is written as root with symbolic and hard links
//! refused and chowned to the user; `$HOME` locations are written with the user's
//! file-system ids; commands and files named by aliases run as the alias file's owner or,
//! for root-owned files, `default_privs` — never as root; those of a `.forward` and
//! `mailbox_command` run as the recipient (`default_privs` for root). Without root (the
//! embedded default) everything runs as the invoking user, who obeys only its own `.forward`.
//!
//! Privilege separation ([`local::helper`]): a daemon started as root gives up root after
//! starting one root process that runs this agent for it over a socketpair (frames with a
//! request id, several at once); that helper re-checks every request against its own
//! configuration. The module doc argues the design (a helper process, not setfsuid in the
//! daemon, not a process per delivery). The SMTP client ([`smtp`]) and the LMTP client (the
//! same client in its LMTP dialect) need no privilege and run as `mail_owner` in the daemon;
//! the SMTP client DKIM-signs outgoing mail with [`dkim`]'s keys.

#![forbid(unsafe_code)]

pub mod dkim;
pub mod local;
pub mod mta_sts;
pub mod smtp;
pub mod virtual_mailbox;

pub use local::{
    check_aliases, AliasSyntaxError, Delivery, LocalAgent, LocalError, LocalSettings, Resubmission,
};
pub use smtp::{LmtpNexthop, SmtpClient, SmtpError, SmtpSettings};
pub use virtual_mailbox::{DomainList, VirtualAgent, VirtualSettings};
