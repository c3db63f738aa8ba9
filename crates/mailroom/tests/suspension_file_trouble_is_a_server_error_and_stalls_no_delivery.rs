//! Issue 14, suspend / resume: trouble with the `suspended` file is the server's, not the
//! client's — the API answers 500 with a JSON error, not 400 — and a suspend waiting on
//! that file (its fsyncs, or a CLI holding the queue directory's lock) does not stop the
//! queue manager from starting other deliveries.

use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use testkit::*;

const PATH: &str = "/api/v1/destinations/example.net/suspend";

#[test]
fn api_suspend_whose_file_cannot_be_written_answers_500_not_400() {
    let api = HttpApi::new();
    let world = World::builder().config(&api.config()).start();
    let file = world.env.queue_dir().join("suspended");
    // A directory where the file goes: reading and replacing it fail with an I/O error.
    std::fs::create_dir_all(file.join("in-the-way")).unwrap();
    let reply = api.post(PATH, Some(r#"{"reason":"maintenance"}"#));
    assert_eq!(reply.status, 500, "{}", reply.body);
    let why = reply.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("suspended"), "the error names the file: {why}");
    let bad = api.post("/api/v1/destinations/a%20b/suspend", None);
    assert_eq!(
        bad.status, 400,
        "a bad destination stays the client's: {}",
        bad.body
    );
    world.wait_lines(&["cannot change the suspended destinations"], 1);

    std::fs::remove_dir_all(&file).unwrap();
    let reply = api.post(PATH, Some(r#"{"reason":"maintenance"}"#));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["destination"], "example.net");
}

/// True once a process waits for an flock on the inode `ino` (`->` lines of /proc/locks).
fn someone_waits_for_lock_on(ino: u64) -> bool {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks
        .lines()
        .any(|l| l.contains("-> FLOCK") && l.contains(&format!(":{ino} ")))
}

#[test]
fn a_suspend_waiting_on_its_file_does_not_stall_other_deliveries() {
    let port = free_port();
    let mut world = World::builder().smtp().peer(&port).build();
    let sink = Sink::start_on(&world.env.root, port, &[]);
    world.start();
    let queue_dir = world.env.queue_dir();
    // Held as a CLI (or a slow disk) would hold it: the daemon's write has to wait.
    let lock = std::fs::File::open(&queue_dir).unwrap();
    lock.lock().unwrap();
    let ino = std::fs::metadata(&queue_dir).unwrap().ino();
    let mut suspend = world.env.command();
    suspend
        .args(["postqueue", "-S", "example.net"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let waiting = suspend.spawn().unwrap();
    wait_until("the daemon's suspend to wait for the lock", || {
        someone_waits_for_lock_on(ino)
    });

    world.submit(
        "s@test.example",
        &["b@other.example"],
        "Subject: other\r\n\r\nbody\r\n",
    );
    world.wait_lines(&["to=<b@other.example>", "status=sent"], 1);
    wait_until("the sink to count it", || sink.messages() == 1);

    drop(lock);
    let out = waiting.wait_with_output().unwrap();
    assert_success(&out, "postqueue -S example.net");
    let listed = world.run_ok(&["suspend", "--list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["destination"], "example.net", "{listed}");
}
