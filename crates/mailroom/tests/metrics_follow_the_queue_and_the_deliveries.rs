//! Issue 14, `/metrics`: the postfix_exporter names count real events — SMTP connections,
//! messages queued, a refused RCPT by its code, deferrals and deliveries by status, removals
//! — and the queue gauges follow the queue (deferred depth, per destination, dead
//! destinations, oldest message), from deferral to the flush that empties it. Every metric
//! that contrib/'s Grafana dashboard and alert rules use is one the daemon exposes.

use testkit::*;

const BACKOFF: &str = "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n";

fn wait_metric(api: &HttpApi, series: &str, want: f64) -> String {
    let mut text = String::new();
    let reached = poll_for(DEADLINE, || {
        text = api.get("/metrics").body;
        metric_value(&text, series) == Some(want)
    });
    assert!(reached, "{series} never became {want}:\n{text}");
    text
}

#[test]
fn counters_and_queue_gauges_follow_deferral_and_flush() {
    let api = HttpApi::new();
    let port = free_port();
    let local = "local_recipient_maps = [\"unix:passwd.byname\", \"$alias_maps\"]\n";
    let config = format!("{BACKOFF}{local}{}", api.config());
    let world = World::builder().smtp().peer(&port).config(&config).start();
    for i in 0..3 {
        world.submit(
            "sender@test.example",
            &["someone@far.example"],
            &message(&format!("m-{i}")),
        );
    }
    let mut client = world.client();
    client.expect(220, "");
    client.ok("EHLO client.example", 250);
    client.ok("MAIL FROM:<sender@test.example>", 250);
    client.ok("RCPT TO:<nobody-here@test.example>", 550);
    client.ok("QUIT", 221);
    world.wait_lines(&["status=deferred"], 3);

    let text = wait_metric(&api, "postfix_showq_queue_depth{queue=\"deferred\"}", 3.0);
    assert_eq!(
        metric_value(&text, "postfix_smtpd_messages_processed_total"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "postfix_smtpd_messages_rejected_total{code=\"550\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "mailroom_deferred_messages{destination=\"far.example\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert!(
        metric_value(&text, "mailroom_store_commits_total").is_some_and(|n| n >= 3.0),
        "{text}"
    );
    assert!(
        metric_value(&text, "mailroom_disk_free_bytes").is_some_and(|n| n > 0.0),
        "{text}"
    );
    assert!(
        text.contains("postfix_showq_message_age_seconds_bucket{"),
        "{text}"
    );
    assert!(
        text.contains(",state=\"dead\"} 1") || text.contains("state=\"dead\","),
        "the relay is marked dead:\n{text}"
    );
    let connects = wait_metric(&api, "postfix_smtpd_disconnects_total", 4.0);
    assert_eq!(
        metric_value(&connects, "postfix_smtpd_connects_total"),
        Some(4.0),
        "{connects}"
    );

    contrib_uses_only_exposed_metrics(&text);

    let sink = Sink::start_on(&world.env.root, port, &[]);
    assert_eq!(
        api.post("/api/v1/actions/flush", Some(r#"{"all":true}"#))
            .status,
        200
    );
    wait_until("the flushed mail at the sink", || sink.messages() >= 3);
    let text = wait_metric(&api, "postfix_qmgr_messages_removed_total", 3.0);
    assert_eq!(
        metric_value(
            &text,
            "postfix_smtp_messages_processed_total{status=\"sent\"}"
        ),
        Some(3.0),
        "{text}"
    );
    let text = wait_metric(&api, "postfix_showq_queue_depth{queue=\"deferred\"}", 0.0);
    assert!(
        !text.contains("mailroom_deferred_messages{"),
        "no deferred destination left:\n{text}"
    );
}

/// Every `postfix_*` / `mailroom_*` name in contrib/ is a series of `text`, or a family it
/// declares (`# TYPE`) that has no samples yet (a labelled counter nothing incremented).
fn contrib_uses_only_exposed_metrics(text: &str) {
    let contrib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib");
    for file in ["grafana-dashboard.json", "prometheus-alerts.yml"] {
        let source = std::fs::read_to_string(contrib.join(file)).expect("contrib file");
        let mut names: Vec<&str> = source
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("postfix_") || w.starts_with("mailroom_"))
            .collect();
        names.sort();
        names.dedup();
        assert!(names.len() >= 5, "{file}: {names:?}");
        for name in names {
            let series = text.lines().any(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            });
            let family = name.strip_suffix("_total").unwrap_or(name);
            let declared = text
                .lines()
                .any(|l| l.starts_with(&format!("# TYPE {family} ")));
            assert!(
                series || declared,
                "{file} uses {name}, which /metrics does not expose:\n{text}"
            );
        }
    }
}
