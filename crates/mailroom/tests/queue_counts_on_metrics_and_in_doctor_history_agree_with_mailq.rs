//! Issue 14, performance of `/metrics` and doctor's history: both read the store's running
//! totals instead of walking the queue, and those totals must stay what mailq shows — after
//! deferrals, a hold, a delete, a kill -9 and restart (rebuilt from the log), deliveries and
//! a release — per queue, and per destination for the deferred mail.

use std::collections::BTreeMap;
use testkit::*;

const CONFIG: &str = "doctor_history_interval = \"1s\"\nminimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n";
const QUEUES: [&str; 4] = ["incoming", "active", "deferred", "hold"];

type Counts = BTreeMap<String, u64>;

/// The value of the series `name` (with its labels, exactly as exposed), if present.
fn value(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let v: f64 = l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()?;
        Some(v as u64)
    })
}

/// Messages per queue and deferred messages per recipient domain, as mailq lists them.
fn mailq(world: &World) -> (Counts, Counts) {
    let (mut queues, mut domains) = (Counts::new(), Counts::new());
    for row in world.env.queue_json() {
        let queue = row["queue_name"].as_str().unwrap_or_default().to_string();
        if queue == "deferred" {
            let to = row["recipients"][0]["address"].as_str().unwrap_or_default();
            let domain = to
                .rsplit('@')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            *domains.entry(domain).or_default() += 1;
        }
        *queues.entry(queue).or_default() += 1;
    }
    (queues, domains)
}

fn scraped(api: &HttpApi, domains: &Counts) -> (Counts, Counts) {
    let text = api.get("/metrics").body;
    let mut queues = Counts::new();
    for q in QUEUES {
        let n = value(
            &text,
            &format!("postfix_showq_queue_depth{{queue=\"{q}\"}}"),
        );
        if let Some(n) = n.filter(|n| *n > 0) {
            queues.insert(q.to_string(), n);
        }
    }
    let mut per_domain = Counts::new();
    for d in domains.keys() {
        let series = format!("mailroom_deferred_messages{{destination=\"{d}\"}}");
        if let Some(n) = value(&text, &series) {
            per_domain.insert(d.clone(), n);
        }
    }
    (queues, per_domain)
}

/// The newest doctor-history sample's queue counts.
fn sampled(world: &World) -> Counts {
    let out = world.env.run(&["doctor", "--json"], b"");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let last = report["history"].as_array().and_then(|h| h.last()).cloned();
    let last = last.unwrap_or_default();
    QUEUES
        .iter()
        .filter_map(|q| Some((q.to_string(), last[q].as_u64().filter(|n| *n > 0)?)))
        .collect()
}

/// Waits until /metrics and the history agree with mailq, and mailq with `expected`.
fn agree(world: &World, api: &HttpApi, when: &str, expected: &[(&str, u64)]) {
    let expected: Counts = expected.iter().map(|(q, n)| (q.to_string(), *n)).collect();
    let mut seen = String::new();
    let same = poll_for(DEADLINE, || {
        let (queues, domains) = mailq(world);
        let metrics = scraped(api, &domains);
        let history = sampled(world);
        seen = format!("mailq {queues:?} {domains:?}, /metrics {metrics:?}, history {history:?}");
        queues == expected && metrics == (queues.clone(), domains) && history == queues
    });
    assert!(same, "{when}: expected {expected:?}; {seen}");
}

fn id_to(world: &World, domain: &str) -> String {
    let rows = world.env.queue_json();
    let row = rows.iter().find(|r| {
        let to = r["recipients"][0]["address"].as_str().unwrap_or_default();
        r["queue_name"] == "deferred" && to.ends_with(domain)
    });
    row.expect("a deferred message")["queue_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn metrics_and_history_counts_stay_what_mailq_shows() {
    let api = HttpApi::new();
    let port = free_port();
    let config = format!("{CONFIG}{}", api.config());
    let mut world = World::builder().smtp().peer(&port).config(&config).start();
    for (i, to) in [
        "x@a.example",
        "y@a.example",
        "z@A.example",
        "u@b.example",
        "v@b.example",
    ]
    .iter()
    .enumerate()
    {
        world.submit("s@test.example", &[to], &message(&format!("m-{i}")));
    }
    world.wait_lines(&["status=deferred"], 5);
    agree(&world, &api, "after the deferrals", &[("deferred", 5)]);

    let held = id_to(&world, "@b.example");
    assert_success(
        &world.env.run(&["postsuper", "-h", &held], b""),
        "postsuper -h",
    );
    let deleted = id_to(&world, "@a.example");
    assert_success(
        &world.env.run(&["postsuper", "-d", &deleted], b""),
        "postsuper -d",
    );
    agree(
        &world,
        &api,
        "after a hold and a delete",
        &[("deferred", 3), ("hold", 1)],
    );

    world.daemon.take().unwrap().kill9();
    world.start();
    agree(
        &world,
        &api,
        "after a restart",
        &[("deferred", 3), ("hold", 1)],
    );

    let sink = Sink::start_on(&world.env.root, port, &[]);
    assert_success(&world.env.run(&["postqueue", "-f"], b""), "postqueue -f");
    wait_until("the three deferred at the sink", || sink.messages() == 3);
    agree(&world, &api, "after the deliveries", &[("hold", 1)]);

    assert_success(
        &world.env.run(&["postsuper", "-H", &held], b""),
        "postsuper -H",
    );
    // Released to deferred with its retry time kept, as Postfix does; flushed here.
    assert_success(&world.env.run(&["postqueue", "-f"], b""), "postqueue -f");
    wait_until("the released one at the sink", || sink.messages() == 4);
    agree(&world, &api, "after the release", &[]);
}
