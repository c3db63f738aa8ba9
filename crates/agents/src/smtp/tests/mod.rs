//! Tests of the SMTP client against real sockets on loopback: a scripted server
//! ([`server`]), the test kit's DNS responder (`testkit::Dns`), `testkit::free_port` and, when
//! installed, Postfix's smtp-sink (`testkit::Sink`). The scripted server is not
//! `testkit::Peer`: these tests need what an end-to-end peer has no use for — a delay or
//! silence per command (timeouts), STARTTLS with a given or a broken handshake, chosen EHLO
//! keywords, the commands pipelined with MAIL and the DATA bytes as they came on the wire.
//! One file per area: `basic` (the conversation and per-recipient outcomes), `timeouts`,
//! `tls`, `dns`, `cache` (sharing idle connections by address), `hostile` (bad server input), `sink` (end to end with smtp-sink).

mod auth;
mod basic;
mod bind;
mod cache;
mod dns;
mod dns_partial;
mod hostile;
mod lmtp;
mod reuse_count;
mod server;
mod sink;
mod timeouts;
mod tls;
mod verify;

use std::time::Duration;

use envelope::{DeliveryReport, Envelope, Nexthop, OutcomeKind, QueueId};

use super::settings::InetProtocols;
use super::{SaslSettings, SmtpClient, SmtpSettings, SmtpTlsLevel, Timeouts, TlsVersions};

/// Settings for tests: no TLS, the given default port and name servers, and timeouts long
/// enough for a loaded box (30 s; a test about a timeout shortens the one it is about).
pub fn settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        dialect: super::settings::Dialect::Smtp,
        helo_name: "client.test".into(),
        tls_level: SmtpTlsLevel::None,
        ca_file: String::new(),
        secure_cert_match: vec!["nexthop".into(), "dot-nexthop".into()],
        verify_cert_match: vec!["hostname".into()],
        tls_policy_maps: Vec::new(),
        tls_servername: String::new(),
        tls_protocols: TlsVersions::parse("").unwrap(),
        tls_mandatory_protocols: TlsVersions::parse("").unwrap(),
        sasl: SaslSettings::default(),
        recipient_limit: 50,
        timeouts: Timeouts::uniform(Duration::from_secs(30)),
        default_port: port,
        dns_nameservers: Vec::new(),
        inet_protocols: InetProtocols::default(),
        connection_cache_time: Duration::from_secs(2),
        connection_reuse_time: Duration::from_secs(300),
        destination_concurrency_limit: 20,
        mx_address_limit: 5,
        line_length_limit: 998,
        bind: super::settings::BindAddresses::default(),
        connection_reuse_count_limit: 0,
        queue_directory: std::path::PathBuf::from("/nonexistent/queue"),
    }
}

pub fn client(settings: SmtpSettings) -> SmtpClient {
    SmtpClient::new(settings).expect("client")
}

/// `[127.0.0.1]:port`.
pub fn loopback(port: u16) -> Nexthop {
    Nexthop {
        host: "127.0.0.1".into(),
        port: Some(port),
        mx_lookup: false,
    }
}

pub fn envelope(sender: &str, recipients: &[&str]) -> Envelope {
    Envelope::new(
        sender,
        recipients.iter().map(|r| r.to_string()).collect(),
        0,
    )
}

pub const MESSAGE: &[u8] = b"Subject: test\n\nhello\n";

/// Delivers `message` to every recipient of `env`.
pub async fn deliver_all(
    client: &SmtpClient,
    hop: &Nexthop,
    env: &Envelope,
    message: &[u8],
) -> DeliveryReport {
    let all: Vec<usize> = (0..env.recipients.len()).collect();
    client
        .deliver(hop, QueueId::generate(), env, &all, message)
        .await
}

/// The kinds of the outcomes, in order.
pub fn kinds(report: &DeliveryReport) -> Vec<OutcomeKind> {
    report.outcomes.iter().map(|o| o.kind.clone()).collect()
}

/// `127.0.0.1[127.0.0.1]:port`.
pub fn relay(port: u16) -> String {
    format!("127.0.0.1[127.0.0.1]:{port}")
}

/// The scheduler spawns deliveries on a multi-threaded runtime: the future must be `Send`
/// and the client `Send + Sync + Clone`.
#[test]
fn deliver_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
    assert_shareable::<SmtpClient>();
    let client = client(settings(25));
    let env = envelope("f@a.example", &["one@b.example"]);
    let hop = loopback(25);
    let future = client.deliver(&hop, QueueId::generate(), &env, &[0], MESSAGE);
    assert_send(&future);
}
