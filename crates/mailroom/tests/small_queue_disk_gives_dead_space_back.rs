//! Issue 8, defect 10: on a small queue file system (a 16 MB tmpfs, the size of one
//! segment) the active segment used to keep every delivered message's bytes until it
//! reached its full size, which it never could: intake refused everything with an empty
//! queue, even after a restart. Now the dead part of the segment is given back when space
//! is short, so twice the file system's size goes through, and through a restart.

use std::time::{Duration, Instant};

use testkit::*;

const MESSAGES: usize = 300;
const BODY: usize = 100_000;

/// Sends one 100 KB message, waiting out temporary refusals (452 while space is being
/// given back) for at most `patience`; returns how many refusals it met.
fn send_patiently(world: &World, n: usize, patience: Duration) -> usize {
    let line = "y".repeat(99);
    let body: String = (0..BODY / 100).map(|_| format!("{line}\n")).collect();
    let text = format!("{}{body}", message(&format!("big-{n}")));
    let started = Instant::now();
    let mut refusals = 0;
    loop {
        match smtp_send(
            world.port,
            "sender@test.example",
            "",
            &plain(&["someone@far.example"]),
            &text,
        ) {
            Ok(()) => return refusals,
            Err(e) if e.contains("-> 4") && started.elapsed() < patience => {
                refusals += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!(
                "message {n} refused for good after {refusals} temporary refusals: {e}; log:\n{}",
                tail(&world.env.log(), 20)
            ),
        }
    }
}

#[test]
fn twice_the_queue_disk_goes_through_and_through_a_restart() {
    let sink_port = free_port();
    let mut world = World::builder()
        .smtp()
        .peer(&sink_port)
        .config("queue_minfree = \"1M\"\n")
        .build();
    let tmpfs = match Tmpfs::mount(&world.env.queue_dir(), "16m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED twice_the_queue_disk_goes_through_and_through_a_restart: {why}");
            return;
        }
    };
    let sink = Sink::start_on(&world.env.root, sink_port, &[]);
    world.start();
    let patience = DEADLINE;
    let mut refusals = 0;
    for n in 0..MESSAGES {
        refusals += send_patiently(&world, n, patience);
    }
    let ok = poll_for(DEADLINE, || sink.messages() >= MESSAGES);
    assert!(ok, "{} of {MESSAGES} relayed", sink.messages());
    world.env.wait_queue_empty();
    eprintln!(
        "{MESSAGES} messages of {BODY} bytes through a 16 MB queue disk; {refusals} temporary refusals"
    );

    // An empty queue after a restart takes mail at once.
    world.daemon.take().expect("running").kill9();
    world.start();
    for n in MESSAGES..MESSAGES + 20 {
        send_patiently(&world, n, patience);
    }
    let ok = poll_for(DEADLINE, || sink.messages() >= MESSAGES + 20);
    assert!(
        ok,
        "{} of {} relayed after the restart",
        sink.messages(),
        MESSAGES + 20
    );
    drop(world.daemon.take());
    drop(tmpfs);
}
