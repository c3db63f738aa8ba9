//! A [`World`]: one [`TestEnv`] plus the daemon serving it, built with [`World::builder`]
//! from the pieces a scenario needs:
//!
//! ```text
//! World::builder()
//!     .smtp()            smtpd on a free loopback port (role smtp), 127.0.0.1 trusted
//!     .peer(&sink)       relayhost = "[HOST]:PORT" (a Peer, a Sink, a DumpSink, a port)
//!     .dns(&dns)         dns_nameservers = ["127.0.0.1:PORT"] (a Dns responder)
//!     .filter(&filter)   content_filter = "smtp:[127.0.0.1]:PORT" + a re-injection listener
//!     .config("...")     any TOML lines; a key set here replaces the one above or in the base
//!     .start()           (or .build(), then world.start())
//! ```
//!
//! The TLS key pair and the SASL password file stay inside the test directory.

use std::fs;
use std::process::{Command, Output};

use crate::client::{local, plain, smtp_send, Client};
use crate::dns::Dns;
use crate::env::{assert_success, base_config, Daemon, TestEnv};
use crate::fault::DumpSink;
use crate::machine::free_port;
use crate::machine::run_with_input;
use crate::peer::Peer;
use crate::sink::Sink;
use crate::text::later_keys_win;
use crate::text::tail;
use crate::wait::{poll_for, DEADLINE};

/// Anything mail can be relayed to: its port, on 127.0.0.1 unless it says otherwise.
pub trait Destination {
    fn port(&self) -> u16;

    fn host(&self) -> String {
        "127.0.0.1".to_string()
    }
}

impl Destination for u16 {
    fn port(&self) -> u16 {
        *self
    }
}

impl Destination for Peer {
    fn port(&self) -> u16 {
        self.port
    }
}

impl Destination for Sink {
    fn port(&self) -> u16 {
        self.port
    }

    fn host(&self) -> String {
        self.host.to_string()
    }
}

impl Destination for DumpSink {
    fn port(&self) -> u16 {
        self.sink.port
    }

    fn host(&self) -> String {
        self.sink.host()
    }
}

/// What [`World::builder`] collects before the world exists.
#[derive(Debug, Default)]
pub struct WorldBuilder {
    smtp: bool,
    lines: Vec<String>,
    listeners: usize,
    reinject: Option<u16>,
    extra: String,
}

impl WorldBuilder {
    /// An SMTP listener (role `smtp`) on a free loopback port: [`World::port`].
    pub fn smtp(mut self) -> Self {
        self.smtp = true;
        self.listeners += 1;
        self
    }

    /// Relays everything not local to `to` (`relayhost`, brackets: no MX lookup).
    pub fn peer(mut self, to: &impl Destination) -> Self {
        let line = format!("relayhost = \"[{}]:{}\"", to.host(), to.port());
        self.lines.push(line);
        self
    }

    /// Resolves MX and A records with `dns` (`dns_nameservers`).
    pub fn dns(mut self, dns: &Dns) -> Self {
        let line = format!("dns_nameservers = [\"{}\"]", dns.nameserver());
        self.lines.push(line);
        self
    }

    /// Sends new mail once through the after-queue content filter `filter`, which
    /// re-injects into a listener of its own ([`World::reinject`]; role `reinject`).
    pub fn filter(mut self, filter: &impl Destination) -> Self {
        self.lines.push(format!(
            "content_filter = \"smtp:[127.0.0.1]:{}\"",
            filter.port()
        ));
        self.reinject()
    }

    /// A re-injection listener ([`World::reinject`]; role `reinject`) for filters that
    /// `FILTER` actions choose, without a global `content_filter`.
    pub fn reinject(mut self) -> Self {
        let reinject = free_port();
        self.lines
            .push(format!("reinject_listen = [\"127.0.0.1:{reinject}\"]"));
        self.reinject = Some(reinject);
        self.listeners += 1;
        self
    }

    /// More TOML lines (appended to any given before).
    pub fn config(mut self, extra: &str) -> Self {
        self.extra.push_str(extra);
        self.extra.push('\n');
        self
    }

    /// The world, configured, not started.
    pub fn build(self) -> World {
        let world = World {
            env: TestEnv::new(),
            port: if self.smtp { free_port() } else { 0 },
            daemon: None,
            netns: None,
            reinject: self.reinject,
            listeners: self.listeners,
            smtp: self.smtp,
            lines: self.lines,
        };
        world.configure(&self.extra);
        world
    }

    /// The world, started ([`World::start`]).
    pub fn start(self) -> World {
        let mut world = self.build();
        world.start();
        world
    }
}

/// A test world: the environment, its SMTP port and re-injection port (if built with
/// them), and the running daemon (killed on drop).
pub struct World {
    pub env: TestEnv,
    /// The SMTP listener (0 without [`WorldBuilder::smtp`]).
    pub port: u16,
    pub daemon: Option<Daemon>,
    /// The network namespace the daemon runs in (`ip netns exec`; None: the test's own).
    pub netns: Option<String>,
    /// The content filter's re-injection listener ([`WorldBuilder::filter`],
    /// [`WorldBuilder::reinject`]).
    pub reinject: Option<u16>,
    listeners: usize,
    smtp: bool,
    lines: Vec<String>,
}

impl World {
    pub fn builder() -> WorldBuilder {
        WorldBuilder::default()
    }

    /// `World::builder().smtp().config(extra).build()`.
    pub fn new(extra: &str) -> World {
        World::builder().smtp().config(extra).build()
    }

    /// `World::builder().smtp().config(extra).start()`.
    pub fn started(extra: &str) -> World {
        World::builder().smtp().config(extra).start()
    }

    /// Rewrites the configuration: the base, the builder's lines, then `extra` (replacing
    /// the `extra` given before); takes effect at the next start. Unlike
    /// [`TestEnv::write_config`], a later line replaces an earlier one with the same key.
    pub fn configure(&self, extra: &str) {
        let root = self.env.root.display();
        let mut text = base_config(&self.env.root, &self.env.queue_dir(), "");
        if self.smtp {
            text += &format!(
                "data_directory = \"{root}\"\nsmtpd_sasl_password_file = \"{root}/passwd\"\n\
                 smtpd_listen = [\"127.0.0.1:{}\"]\nmynetworks = [\"127.0.0.1/32\"]\n",
                self.port
            );
        }
        for line in &self.lines {
            text += line;
            text.push('\n');
        }
        text += extra;
        text.push('\n');
        fs::write(&self.env.config, later_keys_win(&text)).expect("write config");
    }

    /// Starts the daemon and waits until its SMTP listeners (`listeners` of them) are up.
    pub fn start_with_listeners(&mut self, listeners: usize) {
        // A bad configuration fails here at once, not after the harness's long wait.
        self.run_ok(&["config", "-n"]);
        let before = self.env.log_lines("listening on").len();
        self.daemon = Some(match &self.netns {
            Some(netns) => self.env.start_in_netns(netns),
            None => self.env.start(),
        });
        self.env.wait_log("listening on", before + listeners);
    }

    /// Starts the daemon and waits for the listeners the builder asked for.
    pub fn start(&mut self) {
        self.start_with_listeners(self.listeners);
    }

    /// A raw client connected to the SMTP listener.
    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// One message from `sender` to `to` over SMTP (LF line ends, no dot-stuffing needed by
    /// the callers' texts); the reply to the end of DATA, whatever it is.
    pub fn data_reply(&self, sender: &str, to: &str, message: &str) -> crate::Reply {
        let mut c = self.client();
        c.start_transaction(sender, &[to]);
        c.ok("DATA", 354);
        c.send(format!("{}.\r\n", message.replace('\n', "\r\n")).as_bytes());
        let reply = c.reply();
        c.ok("QUIT", 221);
        reply
    }

    /// Sends one message over SMTP to the daemon's listener (fails the test on a refusal).
    pub fn submit(&self, sender: &str, recipients: &[&str], message: &str) {
        smtp_send(self.port, sender, "", &plain(recipients), message)
            .unwrap_or_else(|e| panic!("SMTP submission refused: {e}"));
    }

    /// `mailroom passwd add user` with `password` on standard input.
    pub fn add_user(&self, user: &str, password: &str) {
        let out = self
            .env
            .run(&["passwd", "add", user], format!("{password}\n").as_bytes());
        assert_success(&out, "mailroom passwd add");
    }

    /// Runs `swaks --server 127.0.0.1:PORT ARGS`.
    pub fn swaks(&self, args: &[&str]) -> Output {
        let server = local(self.port).to_string();
        let mut cmd = Command::new("swaks");
        cmd.args(["--server", &server, "--timeout", "30"])
            .args(args);
        run_with_input(&mut cmd, b"")
    }

    /// Log lines containing every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.env
            .log()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }

    /// Queue IDs of the `QUEUEID: removed` lines.
    pub fn removed_ids(&self) -> std::collections::BTreeSet<String> {
        self.lines_with(&[": removed"])
            .iter()
            .filter_map(|l| l.split(": removed").next()?.rsplit(' ').next())
            .map(str::to_string)
            .collect()
    }

    /// Waits until at least `n` log lines contain every one of `needles`.
    pub fn wait_lines(&self, needles: &[&str], n: usize) -> Vec<String> {
        let ok = poll_for(DEADLINE, || self.lines_with(needles).len() >= n);
        assert!(
            ok,
            "timed out waiting for {n} log lines with {needles:?}; log tail:\n{}",
            tail(&self.env.log(), 40)
        );
        self.lines_with(needles)
    }

    /// `mailroom postqueue -j`: (queue name, queue id, recipients) per message.
    pub fn queue(&self) -> Vec<(String, String, Vec<String>)> {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        self.env
            .queue_json()
            .into_iter()
            .map(|v| {
                let recipients = v["recipients"]
                    .as_array()
                    .map(|list| list.iter().map(|r| text(&r["address"])).collect())
                    .unwrap_or_default();
                (text(&v["queue_name"]), text(&v["queue_id"]), recipients)
            })
            .collect()
    }

    /// Runs `mailroom ARGS`, failing the test unless it exits 0.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.env.run(args, b"");
        assert_success(&out, &format!("mailroom {args:?}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
