//! Issue 14 part 5: the daemon keeps a ring of queue samples under the queue directory, and
//! `mailroom doctor` (also with the daemon down) tells a deferral burst from it: how much the
//! deferred queue grew, how much of it goes where, and why. `doctor_history_interval` is a
//! real parameter; one second here so the test needs no long wait.

use testkit::*;

const BURST: usize = 20;

fn doctor_json(world: &World) -> serde_json::Value {
    let out = world.env.run(&["doctor", "--json"], b"");
    serde_json::from_slice(&out.stdout).expect("doctor --json is JSON")
}

fn history_detail(report: &serde_json::Value) -> String {
    let items = report["items"].as_array().cloned().unwrap_or_default();
    let history = items.iter().find(|i| i["name"] == "history");
    history
        .map(|i| i["detail"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn doctor_says_how_much_the_deferred_queue_grew_and_where_it_goes() {
    let closed = free_port();
    let mut world = World::builder()
        .smtp()
        .peer(&closed)
        .config("doctor_history_interval = \"1s\"\nminimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"")
        .start();
    // A sample of the empty queue first, so the burst is growth.
    wait_until("a first history sample", || {
        doctor_json(&world)["history"]
            .as_array()
            .is_some_and(|h| !h.is_empty())
    });
    for i in 0..BURST {
        let to = format!("user{i}@dead.example");
        world.submit("s@test.example", &[&to], "Subject: burst\r\n\r\nbody\r\n");
    }
    world.wait_lines(&["@dead.example>", "status=deferred"], BURST);
    // "deferred grew by 20 in 1 minute, 100% to dead.example: connect to …" (the minutes
    // depend on how long the box took).
    let grew = format!("deferred grew by {BURST} in ");
    let told = |text: &str| text.contains(&grew) && text.contains(", 100% to dead.example: ");
    wait_until("doctor to tell the burst", || {
        told(&history_detail(&doctor_json(&world)))
    });
    let report = doctor_json(&world);
    let last = report["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["deferred"], BURST);
    assert_eq!(last["top_destination"][0], "dead.example");

    // The daemon down: the ring is a file, doctor still reads it.
    world.daemon.take().unwrap().kill9();
    let out = world.env.run(&["doctor"], b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(told(&text), "{text}");
    let size = std::fs::metadata(world.env.queue_dir().join("history"))
        .unwrap()
        .len();
    assert!(size <= 1440 * 512, "bounded ring: {size} bytes");
}
