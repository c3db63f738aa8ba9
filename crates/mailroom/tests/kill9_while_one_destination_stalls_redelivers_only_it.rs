//! `kill -9` of `serve` while a message to eight domains is delivered to seven of them and
//! the eighth still has it: after the restart each of the seven has the message exactly
//! once, and only the eighth gets it again.
//!
//! Each domain has its own Postfix `smtp-sink` (transport_maps). The eighth sink takes the
//! whole message but answers the final dot only after five minutes, so that delivery is
//! still out at the kill: the sink already holds a copy the daemon never heard a 250 for,
//! and a second copy after the restart is the duplicate RFC 1047 says a sender cannot avoid.
//! The seven others answered: their recipients must be done in the queue file before the
//! eighth is back (each item's outcomes are recorded on their own), which `postqueue -j`
//! shows (it lists only recipients still open). Had they waited for the last item, the
//! restart would send them all again: seven silent duplicates.

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use testkit::fault::*;
use testkit::*;

const SCENARIO: &str = "kill9-one-destination-stalls";
const DOMAINS: usize = 8;
const MESSAGES: usize = 2;

#[test]
fn a_kill_while_one_of_eight_destinations_stalls_redelivers_only_that_one() {
    if skip_unless_peers(SCENARIO) {
        return;
    }
    let ports: Vec<u16> = (0..DOMAINS).map(|_| free_port()).collect();
    let slow = DOMAINS - 1;
    let domain = |k: usize| format!("d{k}.example");
    let mut world = World::builder().smtp().build();
    let transport = world.env.root.join("transport");
    let table: String = (0..DOMAINS)
        .map(|k| format!("{} smtp:[127.0.0.1]:{}\n", domain(k), ports[k]))
        .collect();
    fs::write(&transport, table).unwrap();
    world.configure(&format!(
        "minimal_backoff_time = \"1s\"\nmaximal_backoff_time = \"2s\"\n\
         transport_maps = [\"{}\"]\n",
        transport.display()
    ));
    let mut sinks: Vec<DumpSink> = (0..DOMAINS)
        .map(|k| match k == slow {
            true => DumpSink::start_with(&world.env, ports[k], &["-W", ".:300"]),
            false => DumpSink::start(&world.env, ports[k]),
        })
        .collect();
    world.start();

    let tags: Vec<String> = (0..MESSAGES).map(|m| format!("stall-{m}")).collect();
    let rcpts: Vec<String> = (0..DOMAINS)
        .map(|k| format!("rcpt@{}", domain(k)))
        .collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    for tag in &tags {
        world.submit("sender@client.test", &rcpts, &tagged_message(tag, 2));
    }

    // The seven fast sinks have each message, and the slow one has it too (not answered).
    for sink in &sinks {
        sink.wait_for(&tags, DEADLINE);
    }
    // What a restart will see: only the slow recipient open. Not waited for without bound:
    // were the seven recorded only with the eighth (five minutes away), the kill below
    // comes after this wait and the counts show the duplicates.
    let slow_rcpt = format!("rcpt@{}", domain(slow));
    let only_slow_open = || {
        let queue = world.env.queue_json();
        queue.len() == MESSAGES
            && queue.iter().all(|m| {
                let open: Vec<&str> = m["recipients"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|r| r["address"].as_str()).collect())
                    .unwrap_or_default();
                open == [slow_rcpt.as_str()]
            })
    };
    let recorded = poll_for(Duration::from_secs(60), only_slow_open);
    say(&format!(
        "{SCENARIO}: seven destinations recorded before the eighth answered: {recorded}"
    ));

    world.daemon.take().expect("daemon running").kill9();
    // The slow sink notices its client is gone only when it answers; its copies are whole
    // already (waited for above).
    for sink in &sinks[..slow] {
        sink.sink.wait_sessions_closed();
    }
    let before_kill: BTreeSet<String> = sinks[slow].files().into_iter().collect();
    // The slow sink is replaced by a prompt one on its port (and its directory).
    drop(sinks.pop());
    sinks.push(DumpSink::start(&world.env, ports[slow]));
    world.start();

    let again = |sink: &DumpSink| {
        let copies = sink.copies();
        tags.iter().all(|t| {
            copies
                .by_tag
                .get(t)
                .is_some_and(|files| files.iter().any(|f| !before_kill.contains(f)))
        })
    };
    wait_until(
        "the slow destination to get the messages after the restart",
        || again(&sinks[slow]),
    );
    world.env.wait_queue_empty();

    for (k, sink) in sinks.iter().enumerate() {
        let copies = sink.copies();
        assert!(
            copies.incomplete.is_empty(),
            "{}: torn copies {:?}",
            domain(k),
            copies.incomplete
        );
        for tag in &tags {
            let n = copies.by_tag.get(tag).map_or(0, Vec::len);
            if k == slow {
                assert!(n >= 1, "{}: {tag} lost", domain(k));
            } else {
                assert_eq!(
                    n,
                    1,
                    "{}: {tag} delivered {n} times (a kill while another destination was \
                     still out sent it again)",
                    domain(k)
                );
            }
        }
    }
    assert!(
        recorded,
        "postqueue -j did not show the seven answered recipients done while the eighth was out"
    );
}
