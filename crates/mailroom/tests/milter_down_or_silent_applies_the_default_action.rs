//! Issue 13 part 3: a milter that is down (nothing listens) or silent (accepts the
//! connection, never answers) does not lose mail: `milter_default_action` decides —
//! `tempfail` (the default) refuses with 451 4.7.1 and queues nothing, so the client keeps
//! the message; `accept` delivers as if there were no milter; `quarantine` queues it on
//! hold; a per-milter `{ inet:…, default_action=accept }` overrides the global one. Locally
//! submitted mail under `tempfail` stays in maildrop (sendmail still exits 0).

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use testkit::*;

/// A port where nothing listens.
fn dead_milter() -> String {
    format!("inet:127.0.0.1:{}", free_port())
}

/// A milter that takes connections and never says a word; stops on drop.
struct Silent {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        });
        Silent { port, stop }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn world(peer: &Peer, milters: &str) -> World {
    World::builder().smtp().peer(peer).config(milters).start()
}

fn send(world: &World, subject: &str) -> Result<(), String> {
    let text = format!("From: a@client.test\nSubject: {subject}\n\nbody {subject}\n");
    smtp_send(
        world.port,
        "a@client.test",
        "",
        &plain(&["b@far.example"]),
        &text,
    )
}

#[test]
fn a_down_milter_tempfails_by_default_and_nothing_is_queued() {
    let peer = Peer::start();
    let milter = dead_milter();
    let world = world(&peer, &format!("smtpd_milters = [\"{milter}\"]"));
    let refused = send(&world, "down").unwrap_err();
    assert!(refused.contains("451 4.7.1"), "{refused}");
    world.wait_lines(&["milter", &milter, "connect"], 1);
    assert!(world.queue().is_empty(), "{:?}", world.queue());
    assert!(peer.messages().is_empty());
}

#[test]
fn a_silent_milter_times_out_into_the_default_action() {
    let peer = Peer::start();
    let silent = Silent::start();
    let milters = format!(
        "smtpd_milters = [\"inet:127.0.0.1:{}\"]\nmilter_command_timeout = \"1s\"",
        silent.port
    );
    let world = world(&peer, &milters);
    let refused = send(&world, "silent").unwrap_err();
    assert!(refused.contains("451 4.7.1"), "{refused}");
    world.wait_lines(&["milter", "timeout"], 1);
    assert!(world.queue().is_empty(), "{:?}", world.queue());
}

#[test]
fn default_action_accept_delivers_and_a_per_milter_setting_overrides_the_global_one() {
    let peer = Peer::start();
    let global = format!(
        "smtpd_milters = [\"{}\"]\nmilter_default_action = \"accept\"",
        dead_milter()
    );
    let world = world(&peer, &global);
    send(&world, "global-accept").unwrap();
    wait_until("the delivered copy", || peer.messages().len() == 1);
    drop(world);

    let grouped = format!(
        "smtpd_milters = [\"{{ {}, default_action=accept, connect_timeout=5s }}\"]",
        dead_milter()
    );
    let world2 = World::builder().smtp().peer(&peer).config(&grouped).start();
    send(&world2, "per-milter-accept").unwrap();
    wait_until("the second copy", || peer.messages().len() == 2);
    assert!(peer.messages()[1].data.contains("body per-milter-accept"));
}

#[test]
fn default_action_quarantine_puts_the_message_on_hold() {
    let peer = Peer::start();
    let milters = format!(
        "smtpd_milters = [\"{}\"]\nmilter_default_action = \"quarantine\"",
        dead_milter()
    );
    let world = world(&peer, &milters);
    send(&world, "held").unwrap();
    let lines = world.wait_lines(&["milter-hold: END-OF-MESSAGE from unknown[127.0.0.1]"], 1);
    assert!(
        lines[0].contains("from=<a@client.test> to=<b@far.example> proto=ESMTP helo=<client.test>"),
        "{lines:?}"
    );
    // The 250 came after the durable enqueue, so the message is there now.
    let queue = world.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0].0, "hold", "{queue:?}");
    assert!(peer.messages().is_empty());
}

#[test]
fn locally_submitted_mail_stays_in_maildrop_while_its_milter_is_down() {
    let peer = Peer::start();
    let milter = dead_milter();
    let world = world(&peer, &format!("non_smtpd_milters = [\"{milter}\"]"));
    let out = world.env.sendmail(
        &["-f", "alice@example.com", "bob@far.example"],
        b"Subject: local\n\nbody\n",
    );
    assert_success(&out, "sendmail");
    world.wait_lines(&["stays in maildrop"], 1);
    assert_eq!(
        world.env.maildrop_files().len(),
        1,
        "the message waits in maildrop"
    );
    let queue = world.queue();
    assert!(
        queue.iter().all(|(name, _, _)| name == "maildrop"),
        "{queue:?}"
    );
    assert!(peer.messages().is_empty());
}
