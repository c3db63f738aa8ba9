//! `smtp_bind_address`: the local address connections come from, as the real listener sees
//! it; an address that cannot be bound is a warning (Postfix's `smtp_connect_addr`), or a
//! deferral without any connection under `smtp_bind_address_enforce`.

use std::net::{IpAddr, Ipv4Addr};

use envelope::OutcomeKind::{Deferred, Sent};

use super::server::{Behaviour, TestServer};
use super::*;
use crate::smtp::BindAddresses;

fn from(v4: &str, enforce: bool) -> BindAddresses {
    BindAddresses::parse(v4, "", enforce)
}

async fn deliver_from(bind: BindAddresses) -> (DeliveryReport, Vec<IpAddr>) {
    let server = TestServer::start(Behaviour::default()).await;
    let client = client(SmtpSettings {
        bind,
        ..settings(25)
    });
    let env = envelope("from@a.example", &["one@b.example"]);
    let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
    let clients = server.transcript().clients.iter().map(|c| c.ip()).collect();
    (report, clients)
}

#[tokio::test]
async fn connections_come_from_the_bind_address_else_from_the_systems_choice() {
    let (report, clients) = deliver_from(from("127.0.0.2", false)).await;
    assert_eq!(kinds(&report), [Sent]);
    assert_eq!(clients, [IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))]);

    let (report, clients) = deliver_from(BindAddresses::default()).await;
    assert_eq!(kinds(&report), [Sent]);
    assert_eq!(clients, [IpAddr::V4(Ipv4Addr::LOCALHOST)]);
}

#[tokio::test]
async fn an_ipv6_bind_address_is_not_used_for_an_ipv4_server() {
    let bind = BindAddresses::parse("", "::1", false);
    let (report, clients) = deliver_from(bind).await;
    assert_eq!(kinds(&report), [Sent]);
    assert_eq!(clients, [IpAddr::V4(Ipv4Addr::LOCALHOST)]);
}

/// 192.0.2.1 (TEST-NET-1) is on no interface of a test machine: bind(2) fails with
/// EADDRNOTAVAIL.
#[tokio::test]
async fn an_address_not_on_this_host_warns_and_connects_anyway_unless_enforced() {
    let (report, clients) = deliver_from(from("192.0.2.1", false)).await;
    assert_eq!(kinds(&report), [Sent], "{report:?}");
    assert_eq!(clients, [IpAddr::V4(Ipv4Addr::LOCALHOST)]);

    let (report, clients) = deliver_from(from("192.0.2.1", true)).await;
    assert_eq!(kinds(&report), [Deferred]);
    let outcome = &report.outcomes[0];
    assert_eq!(outcome.dsn, "4.4.0");
    assert!(
        outcome.text.contains("server configuration error"),
        "{}",
        outcome.text
    );
    assert_eq!(outcome.relay, "none");
    assert!(clients.is_empty(), "no connection was made: {clients:?}");
    assert!(report.destination_failure.is_some());
}
