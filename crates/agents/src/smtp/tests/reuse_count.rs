//! `smtp_connection_reuse_count_limit` against a real listener counting connections: a
//! session taken from the cache N times is closed after that delivery (Postfix: "with a
//! reuse count limit of N, a connection is used up to N+1 times"); 0 = no limit.

use std::time::Duration;

use envelope::OutcomeKind::Sent;

use super::server::{Behaviour, TestServer};
use super::*;

/// Delivers `messages` messages one after another to one server and returns how many
/// connections it saw.
async fn connections_for(messages: usize, reuse_count_limit: usize) -> usize {
    let server = TestServer::start(Behaviour::default()).await;
    let client = client(SmtpSettings {
        connection_reuse_count_limit: reuse_count_limit,
        // However slow the box, the previous session is still idle in the cache.
        connection_cache_time: Duration::from_secs(3600),
        ..settings(25)
    });
    for i in 0..messages {
        let env = envelope("from@a.example", &[&format!("r{i}@b.example")]);
        let report = deliver_all(&client, &loopback(server.port()), &env, MESSAGE).await;
        assert_eq!(kinds(&report), [Sent]);
    }
    let transcript = server.transcript();
    assert_eq!(transcript.messages.len(), messages);
    transcript.connections
}

#[tokio::test]
async fn without_a_limit_one_connection_carries_every_message() {
    assert_eq!(connections_for(5, 0).await, 1);
}

#[tokio::test]
async fn a_limit_of_one_means_two_deliveries_per_connection() {
    // 2 + 2 + 1.
    assert_eq!(connections_for(5, 1).await, 3);
}

#[tokio::test]
async fn a_limit_of_two_means_three_deliveries_per_connection() {
    // 3 + 2; and 7 messages: 3 + 3 + 1.
    assert_eq!(connections_for(5, 2).await, 2);
    assert_eq!(connections_for(7, 2).await, 3);
}
