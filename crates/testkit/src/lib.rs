//! The one test kit of mailroom's end-to-end tests (a dev-dependency, never shipped).
//!
//! Shape: a [`TestEnv`] is one test's world on disk (temp dir, TOML configuration, queue,
//! spool, log) that runs the real `mailroom` binary; a [`World`] is a `TestEnv` plus a
//! daemon, built with [`World::builder`] — `.smtp()` (a listener on a free loopback port),
//! `.peer(&p)` (relay to a [`Peer`], [`Sink`] or port), `.dns(&d)` (a [`Dns`] responder),
//! `.filter(&f)` (an after-queue content filter and its re-injection listener). Peers on
//! loopback: the scripted [`Peer`], Postfix's `smtp-sink` ([`Sink`]), the DNS responder
//! [`Dns`] (`agents`' unit tests use it, [`free_port`] and [`Sink`] too), a real Postfix
//! smarthost requiring AUTH over STARTTLS ([`Smarthost`]) with certificates of a per-test CA
//! ([`TestCa`]). One SMTP [`Client`], one [`wait_until`] (over one [`poll_for`]), one DSN
//! reader ([`parse_dsn`]); the fault suite's counting helpers live in [`fault`], the
//! privilege-separation accounts and worlds in [`privsep`], a real Dovecot LMTP server in
//! [`dovecot`], a DNSSEC-validating unbound serving signed test zones in [`Validator`], the
//! daemon's HTTP API through [`HttpApi`] (its page in headless Chromium: [`browser`]), real milters
//! ([`OpenDkim`], [`Rspamd`], [`PyMilter`]) in `milters.rs`, a real `redis-server` for the fleet tests ([`Redis`]),
//! whose nodes run in network namespaces of their own ([`fleet::Hosts`]: `ip netns`, veth,
//! a bridge).
//!
//! Everything is bounded in time (sockets time out, waits poll with a deadline, never a
//! blind sleep) and everything started is stopped on drop (daemons SIGKILLed, peers closed,
//! tmpfs unmounted, test namespaces and links removed). Tests needing root skip with one
//! line (see [`is_root`]).
//!
//! SECURITY: test code only; runs as whoever runs the tests (root here, for tmpfs mounts).
//! No unsafe: the system calls std lacks (signals, statvfs, rlimits, bind before connect)
//! go through the `sys` crate.

#![forbid(unsafe_code)]

pub mod browser;
mod ca;
mod client;
mod dns;
pub mod dovecot;
mod dsn;
mod env;
pub mod fault;
pub mod fleet;
mod hosts;
mod http;
mod machine;
mod mbox;
mod milters;
mod peer;
mod postfix;
pub mod privsep;
mod redis;
mod sink;
mod stage;
mod text;
mod unbound;
mod wait;
mod world;

pub use ca::{ServerCert, TestCa};
pub use client::{local, plain, smtp_send, smtplib, Client, Failure, Reply, REPLY_TIMEOUT};
pub use dns::{Dns, Zone};
pub use dsn::{field, parse_dsn};
pub use env::{assert_success, base_config, bin, command_with_config, Daemon, TestEnv};
pub use http::{
    metric_value, request as http_request, request_at as http_request_at, HttpApi, HttpReply,
};
pub use machine::{
    current_user, free_port, is_root, list_dir, load_factor, open_up, read_all, run_with_input,
    scaled_by_load, LoopExt4, Tmpfs,
};
pub use mbox::{
    count_separators, lock_for_reading, python, read_locked, read_mboxes_with_python, MboxMessage,
};
pub use milters::{OpenDkim, PyMilter, Rspamd};
pub use peer::{accept_all, rcpt_reply, reinject_to, DotRule, OnConnect, Peer, RcptRule, Received};
pub use postfix::{Smarthost, POSTFIX_SERVICES};
pub use redis::{Redis, REDIS_SERVER};
pub use sink::{messages_by_client, messages_by_line, Sink, SMTP_SINK};
pub use text::{find, from_hex, header_value, message, multiset, tail, unfold, users};
pub use unbound::{TestZone, Validator};
pub use wait::{poll_every, poll_for, wait_until, DEADLINE};
pub use world::{Destination, World, WorldBuilder};
