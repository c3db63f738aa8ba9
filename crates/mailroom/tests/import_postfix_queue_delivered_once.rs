//! Issue 10 part 8, `mailroom import-postfix` against a real Postfix queue: a private
//! Postfix instance (its own config directory and queue under the test's temp dir, no
//! listeners — pickup, cleanup, qmgr and the SMTP client only) queues: a message with one
//! recipient it delivers (to the test's SMTP peer), one the peer refuses (done, and a
//! bounce queued to the sender) and one it cannot reach (a dead relayhost); one deferred
//! message; one deferred then held with `postsuper -h`; and that bounce, also deferred.
//! A fifth file is junk.
//!
//! Then: the import refuses while Postfix runs (exit 75), and later while mailroom does; `--dry-run` changes nothing;
//! Postfix is stopped; the import moves the four messages (exit 65 for the junk file, left
//! in place and named); a copy put back as after a crash is recognised, not queued twice;
//! mailroom then delivers each pending recipient exactly once, never the done ones, and
//! keeps the held one held until `postsuper -H` releases it.

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::*;

const POSTFIX: &str = "/usr/sbin/postfix";

/// A private Postfix instance, stopped (`postfix stop`) when dropped.
struct Postfix {
    conf: PathBuf,
    queue: PathBuf,
}

impl Postfix {
    fn new(root: &Path, relay_port: u16, sink_port: u16) -> Postfix {
        let (conf, queue, data) = (root.join("conf"), root.join("queue"), root.join("data"));
        for dir in [&conf, &queue, &data] {
            fs::create_dir_all(dir).unwrap();
        }
        let chown = Command::new("chown").arg("postfix").arg(&data).status();
        assert!(chown.unwrap().success(), "chown postfix {}", data.display());
        fs::write(
            conf.join("transport"),
            format!("sink.test smtp:[127.0.0.1]:{sink_port}\n"),
        )
        .unwrap();
        let main_cf = format!(
            "compatibility_level = 3.6\nqueue_directory = {q}\ndata_directory = {d}\n\
             mail_owner = postfix\nsetgid_group = postdrop\ninet_interfaces = loopback-only\n\
             inet_protocols = ipv4\nmyhostname = pf.test\nmydestination =\n\
             relayhost = [127.0.0.1]:{relay_port}\nmaillog_file = {r}/maillog\n\
             maillog_file_prefixes = {r}\ntransport_maps = texthash:{c}/transport\n\
             minimal_backoff_time = 1s\nmaximal_backoff_time = 2s\nqueue_run_delay = 300s\n\
             smtpd_banner = $myhostname ESMTP $mail_name\n",
            q = queue.display(),
            d = data.display(),
            r = root.display(),
            c = conf.display(),
        );
        fs::write(conf.join("main.cf"), main_cf).unwrap();
        fs::write(conf.join("master.cf"), POSTFIX_SERVICES).unwrap();
        Postfix { conf, queue }
    }

    fn postfix(&self, args: &[&str]) -> Output {
        Command::new(POSTFIX)
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap()
    }

    fn running(&self) -> bool {
        self.postfix(&["status"]).status.success()
    }

    fn sendmail(&self, recipients: &[&str], subject: &str) {
        let mut child = Command::new("/usr/sbin/sendmail")
            .arg("-C")
            .arg(&self.conf)
            .args(["-f", "alice@pf.test"])
            .args(recipients)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let message =
            format!("Subject: {subject}\nMessage-ID: <{subject}@pf.test>\n\nbody of {subject}\n");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), message.as_bytes()).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "postfix sendmail");
    }

    /// `postqueue -j`: one JSON object per queued message.
    fn queue_json(&self) -> Vec<Value> {
        let out = Command::new("/usr/sbin/postqueue")
            .arg("-c")
            .arg(&self.conf)
            .arg("-j")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.postfix(&["stop"]);
    }
}

/// The Postfix queue ID of the message to `recipient` once every message is deferred.
fn deferred_id(postfix: &Postfix, recipient: &str) -> String {
    let queue = postfix.queue_json();
    let message = queue
        .iter()
        .find(|m| {
            m["recipients"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["address"] == recipient))
        })
        .unwrap_or_else(|| panic!("no Postfix message to {recipient}: {queue:?}"));
    message["queue_id"].as_str().unwrap().to_string()
}

fn all_deferred(postfix: &Postfix, n: usize) -> bool {
    let queue = postfix.queue_json();
    queue.len() == n
        && queue.iter().all(|m| {
            m["queue_name"] == "deferred"
                && m["recipients"]
                    .as_array()
                    .is_some_and(|r| r.iter().all(|r| r["delay_reason"].is_string()))
        })
}

/// Every Postfix queue file (under incoming, active, deferred, hold), by relative path.
fn postfix_files(queue: &Path) -> Vec<String> {
    let out = Command::new("find")
        .args(["incoming", "active", "deferred", "hold", "-type", "f"])
        .current_dir(queue)
        .output()
        .unwrap();
    let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    files.sort();
    files
}

fn import(world: &World, postfix: &Postfix, extra: &[&str]) -> (u8, Value, String) {
    let conf = postfix.conf.to_str().unwrap();
    let queue = postfix.queue.to_str().unwrap();
    let mut args = vec![
        "import-postfix",
        "--json",
        "--config-dir",
        conf,
        "--queue-dir",
        queue,
    ];
    args.extend_from_slice(extra);
    let out = world.env.run(&args, b"");
    let code = out.status.code().unwrap_or(-1) as u8;
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        code,
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn with_action<'a>(report: &'a Value, action: &str) -> Vec<&'a Value> {
    report["queue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["action"] == action)
        .collect()
}

#[test]
fn imported_postfix_queue_is_delivered_once_done_never_held_stays_held() {
    if !is_root() || !Path::new(POSTFIX).exists() {
        eprintln!("skipped: needs root and Postfix ({POSTFIX})");
        return;
    }
    // The peer refuses x@sink.test: Postfix marks it done and queues a bounce to alice,
    // which it cannot deliver either (alice's domain goes to the dead relayhost).
    let peer = Peer::start_with(
        OnConnect::Greet,
        std::sync::Arc::new(|rcpt: &str| match rcpt {
            "x@sink.test" => "550 5.1.1 <x@sink.test>: no such user".to_string(),
            _ => "250 2.1.5 Ok".to_string(),
        }),
    );
    let dead = free_port();
    let mut world = World::builder().smtp().peer(&peer).build();
    open_up(&world.env.root); // Postfix's daemons (user postfix) must reach their queue
    let postfix = Postfix::new(&world.env.root.join("postfix"), dead, peer.port);
    let started = postfix.postfix(&["start"]);
    assert!(postfix.running(), "postfix start: {started:?}");

    postfix.sendmail(&["a@sink.test", "x@sink.test", "b@dead.test"], "split");
    postfix.sendmail(&["c@dead.test"], "deferred");
    postfix.sendmail(&["d@dead.test"], "held");
    wait_until("Postfix to defer all four", || all_deferred(&postfix, 4));
    assert_eq!(
        peer.delivered_to(),
        ["a@sink.test"],
        "Postfix delivered the one it could"
    );
    let held_id = deferred_id(&postfix, "d@dead.test");
    let hold = Command::new("/usr/sbin/postsuper")
        .arg("-c")
        .arg(&postfix.conf)
        .args(["-h", &held_id])
        .output()
        .unwrap();
    assert!(hold.status.success(), "postsuper -h: {hold:?}");

    // Refused while Postfix runs: nothing may move under its queue manager.
    let config_before = fs::read_to_string(&world.env.config).unwrap();
    let files_before = postfix_files(&postfix.queue);
    let (code, _, stderr) = import(&world, &postfix, &[]);
    assert_eq!(code, 75, "refused while Postfix runs: {stderr}");
    assert!(stderr.contains("Postfix is running"), "{stderr}");

    assert!(postfix.postfix(&["stop"]).status.success());
    wait_until("Postfix to stop", || !postfix.running());
    wait_until("Postfix's last daemons to exit", || {
        let (_, _, stderr) = import(&world, &postfix, &["--dry-run"]);
        !stderr.contains("running")
    });
    // A queue file it cannot parse: mode 0700 (complete) but not a queue file.
    let junk = postfix.queue.join("deferred").join("F").join("FBADFILE01");
    fs::create_dir_all(junk.parent().unwrap()).unwrap();
    fs::write(&junk, b"C\x05hello not a queue file").unwrap();
    fs::set_permissions(&junk, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let files_before = [files_before, vec!["deferred/F/FBADFILE01".to_string()]].concat();

    // --dry-run: says what it would do and changes nothing.
    let (code, dry, stderr) = import(&world, &postfix, &["--dry-run"]);
    assert_eq!(code, 65, "{stderr}");
    assert_eq!(with_action(&dry, "imported").len(), 4, "{dry:#}");
    assert_eq!(
        fs::read_to_string(&world.env.config).unwrap(),
        config_before
    );
    let mut after_dry = postfix_files(&postfix.queue);
    after_dry.sort();
    let mut expected = files_before.clone();
    expected.sort();
    assert_eq!(after_dry, expected);
    assert!(world.queue().is_empty());

    // A copy of one file, to put back as if the import had crashed before removing it.
    let deferred_one = files_before
        .iter()
        .find(|f| f.starts_with("deferred/") && !f.ends_with("FBADFILE01"))
        .expect("a deferred Postfix file")
        .clone();
    let saved = fs::read(postfix.queue.join(&deferred_one)).unwrap();

    let (code, report, stderr) = import(&world, &postfix, &[]);
    assert_eq!(code, 65, "the junk file is reported: {stderr}");
    let imported = with_action(&report, "imported");
    assert_eq!(imported.len(), 4, "{report:#}");
    let left = with_action(&report, "left");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["path"], "deferred/F/FBADFILE01");
    assert!(
        left[0]["why"].as_str().unwrap().contains("cannot parse"),
        "{:?}",
        left[0]
    );
    let split = imported
        .iter()
        .find(|f| f["pending"] == 1 && f["done"] == 2)
        .expect("the split message");
    assert_eq!(split["queue"], "deferred");
    assert_eq!(imported.iter().filter(|f| f["queue"] == "hold").count(), 1);
    assert_eq!(postfix_files(&postfix.queue), ["deferred/F/FBADFILE01"]);
    let config = fs::read_to_string(&world.env.config).unwrap();
    assert!(
        config.contains("smtp_connect_timeout") || config.contains("myhostname"),
        "{config}"
    );
    assert!(
        config.contains(&format!("[127.0.0.1]:{}", peer.port)),
        "mailroom.toml's relayhost stays: {config}"
    );

    // The crash case: the Postfix file is back; the copy is recognised, not queued twice.
    fs::create_dir_all(postfix.queue.join(&deferred_one).parent().unwrap()).unwrap();
    fs::write(postfix.queue.join(&deferred_one), &saved).unwrap();
    fs::set_permissions(
        postfix.queue.join(&deferred_one),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let (code, again, _) = import(&world, &postfix, &[]);
    assert_eq!(code, 65);
    assert_eq!(
        with_action(&again, "already_imported").len(),
        1,
        "{again:#}"
    );
    assert!(with_action(&again, "imported").is_empty());
    assert_eq!(postfix_files(&postfix.queue), ["deferred/F/FBADFILE01"]);
    // Without --queue-dir the queue is main.cf's queue_directory: the junk is found there.
    let conf = postfix.conf.to_str().unwrap();
    let out = world
        .env
        .run(&["import-postfix", "--json", "--config-dir", conf], b"");
    assert_eq!(out.status.code(), Some(65));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        with_action(&report, "left")[0]["path"],
        "deferred/F/FBADFILE01"
    );

    let queue = world.queue();
    assert_eq!(queue.len(), 4, "{queue:?}");
    let held: Vec<_> = queue.iter().filter(|(name, _, _)| name == "hold").collect();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].2, ["d@dead.test"]);

    world.start_with_listeners(1);
    // The daemon owns the store now: another import must wait for it to stop.
    let (code, _, stderr) = import(&world, &postfix, &[]);
    assert_eq!(code, 75, "refused while mailroom runs: {stderr}");
    assert!(stderr.contains("stop mailroom first"), "{stderr}");
    wait_until("b, c and the bounce delivered", || {
        let got = multiset(peer.delivered_to());
        ["b@dead.test", "c@dead.test", "alice@pf.test"]
            .iter()
            .all(|r| got.contains_key(*r))
    });
    wait_until("only the held message left", || world.queue().len() == 1);
    let queue = world.queue();
    assert_eq!(queue[0].0, "hold", "held stays held: {queue:?}");
    let got = multiset(peer.delivered_to());
    let want = ["a@sink.test", "b@dead.test", "c@dead.test", "alice@pf.test"];
    let want = multiset(want.map(String::from));
    assert_eq!(
        got, want,
        "each pending recipient once, done ones never, one bounce"
    );
    let bounces: Vec<Received> = peer
        .messages()
        .into_iter()
        .filter(|m| m.sender.is_empty())
        .collect();
    assert_eq!(
        bounces.len(),
        1,
        "Postfix's queued bounce for x@sink.test, once"
    );
    let bounce = &bounces[0].data;
    assert!(
        bounce.contains("x@sink.test") && bounce.contains("5.1.1"),
        "{bounce}"
    );

    world.run_ok(&["postsuper", "-H", &queue[0].1]);
    wait_until("d delivered once released", || world.queue().is_empty());
    let got = multiset(peer.delivered_to());
    assert_eq!(got.get("d@dead.test"), Some(&1));
    assert_eq!(got.values().sum::<usize>(), 5, "{got:?}");
}
