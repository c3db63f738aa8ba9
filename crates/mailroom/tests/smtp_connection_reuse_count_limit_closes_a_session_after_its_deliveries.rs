//! `smtp_connection_reuse_count_limit`: the real daemon relays messages one at a time to
//! Postfix's smtp-sink, which counts sessions. With the limit at 1, a session taken from the
//! connection cache once is closed after that delivery (Postfix: "with a reuse count limit of
//! N, a connection is used up to N+1 times"): 5 messages → 3 sessions (2 + 2 + 1). Without
//! it (0, the default) one session carries all 5. An hour of connection cache time, so every
//! delivery finds the previous one's session idle however slow the box is.

use testkit::*;

const MESSAGES: usize = 5;

fn sessions_for(extra: &str) -> usize {
    let root = TestEnv::new();
    let sink = Sink::start(&root.root, &[]);
    let world = World::builder()
        .smtp()
        .peer(&sink)
        .config(&format!(
            "smtp_connection_cache_time_limit = \"1h\"\n{extra}"
        ))
        .start();
    // One at a time: each delivery is logged after its session went back to the cache (or
    // was closed), so the next one finds it there.
    for i in 0..MESSAGES {
        world.submit(
            "sender@test.example",
            &["someone@example.net"],
            &message(&format!("reuse-{i}")),
        );
        world.wait_lines(&["to=<someone@example.net>", "status=sent"], i + 1);
    }
    wait_until("the sink to count every message", || {
        sink.messages() >= MESSAGES
    });
    assert_eq!(sink.messages(), MESSAGES, "each once");
    sink.sessions()
}

#[test]
fn a_limit_of_one_gives_each_session_two_deliveries() {
    assert_eq!(sessions_for("smtp_connection_reuse_count_limit = 1\n"), 3);
}

#[test]
fn without_a_limit_one_session_carries_them_all() {
    assert_eq!(sessions_for(""), 1);
}
