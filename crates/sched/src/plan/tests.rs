//! `plan` as a table: outcomes in, states, queue, retry time, notices and writes out.

use super::*;
use crate::notify::ORIGIN_NOTICE;
use crate::timed::Agent;
use bounce::{Action, Kind};
use envelope::Outcome;
use std::time::{Duration, Instant};

const NOW: u64 = 1_000_000;
const HOUR: Duration = Duration::from_secs(3600);

fn settings() -> Settings {
    let mut s = Settings::from_config(&config::Config::embedded_default());
    s.soft_bounce = false;
    s.minimal_backoff_time = Duration::from_secs(300);
    s.maximal_backoff_time = Duration::from_secs(4000);
    s.maximal_queue_lifetime = 5 * 24 * HOUR;
    s.bounce_queue_lifetime = 5 * 24 * HOUR;
    s.delay_warning_time = Duration::ZERO;
    s.bounce_notice_recipient = "postmaster".into();
    s.myhostname = "mx.example".into();
    s
}

/// A message from `sender` to `x0@far.example`, `x1@...`, ...; `notify[i]` is RCPT's NOTIFY.
fn meta(sender: &str, notify: &[Option<&str>]) -> MessageMeta {
    let rcpts = (0..notify.len())
        .map(|i| format!("x{i}@far.example"))
        .collect();
    let mut envelope = Envelope::new(sender, rcpts, NOW - 60);
    for (r, n) in envelope.recipients.iter_mut().zip(notify) {
        r.notify = n.map(str::to_string);
    }
    MessageMeta {
        envelope,
        queue: QueueName::Incoming,
        next_attempt: 0,
        attempts: 0,
        delay_warned: false,
        follow_up: None,
    }
}

/// One outcome per letter: `s`ent (by SMTP), `l`ocally delivered, `d`eferred, `b`ounced,
/// `-` no outcome.
fn outcomes(verdicts: &str) -> Vec<Timed> {
    let now = Instant::now();
    let mut out = Vec::new();
    for (i, v) in verdicts.chars().enumerate() {
        let (o, agent) = match v {
            's' => (
                Outcome::sent(i, "mx.far.example[192.0.2.1]:25", "250 ok"),
                Agent::Smtp,
            ),
            'l' => (
                Outcome::sent(i, "local", "delivered to mailbox"),
                Agent::Local,
            ),
            'd' => (
                Outcome::deferred(i, "4.2.0", "mx", "450 try later"),
                Agent::Smtp,
            ),
            'b' => (
                Outcome::bounced(i, "5.1.1", "mx", "550 no such user"),
                Agent::Smtp,
            ),
            _ => continue,
        };
        out.push(Timed::at(o, now, now, agent));
    }
    out
}

fn attempt(meta: MessageMeta, verdicts: &str) -> Attempt {
    Attempt {
        held_back: Vec::new(),
        meta,
        outcomes: outcomes(verdicts),
        hold: None,
        held: false,
        recorded_early: false,
    }
}

/// The plan, in short: recipient states, the queue written (none: no update), what follows,
/// the notices.
fn summary(p: &Plan) -> (String, Option<QueueName>, String, Vec<Kind>) {
    let states: Vec<&str> = p
        .envelope
        .recipients
        .iter()
        .map(|r| match &r.state {
            RecipientState::Sent => "sent",
            RecipientState::Deferred { .. } => "deferred",
            RecipientState::Bounced { .. } => "bounced",
            _ => "open",
        })
        .collect();
    let then = match &p.then {
        Then::Retry(_) => "retry".to_string(),
        Then::Stay => "stay".to_string(),
        Then::Finish(Bounce::Nothing) => "remove".to_string(),
        Then::Finish(Bounce::Discarded) => "remove, notice discarded".to_string(),
        Then::Finish(Bounce::Send(n)) => format!("bounce {:?} to {}", n.kind, n.to),
    };
    let notices = p.notices.iter().map(|n| n.kind).collect();
    (
        states.join(" "),
        p.update.as_ref().map(|u| u.queue),
        then,
        notices,
    )
}

#[test]
fn outcomes_become_states_a_queue_and_notices() {
    let none: &[Option<&str>] = &[None];
    let success: &[Option<&str>] = &[Some("SUCCESS")];
    // (what, sender, NOTIFY per recipient, verdicts, tweak, expected summary)
    type Tweak = fn(&mut Settings, &mut Attempt);
    let keep: Tweak = |_, _| {};
    type Expected = (&'static str, Option<QueueName>, &'static str, Vec<Kind>);
    type Row = (
        &'static str,
        &'static str,
        &'static [Option<&'static str>],
        &'static str,
        Tweak,
        Expected,
    );
    let table: &[Row] = &[
        (
            "all sent: the removal is the only write",
            "s@a.example",
            none,
            "s",
            keep,
            ("sent", None, "remove", vec![]),
        ),
        (
            "a deferral: deferred queue, retry",
            "s@a.example",
            none,
            "d",
            keep,
            ("deferred", Some(QueueName::Deferred), "retry", vec![]),
        ),
        (
            "a bounce replaces the message",
            "s@a.example",
            none,
            "b",
            keep,
            ("bounced", None, "bounce Bounce to s@a.example", vec![]),
        ),
        (
            "mixed: only the deferred one is retried",
            "s@a.example",
            &[None, None, None],
            "sbd",
            keep,
            (
                "sent bounced deferred",
                Some(QueueName::Deferred),
                "retry",
                vec![],
            ),
        ),
        (
            "NOTIFY=SUCCESS: an update and a success notice",
            "s@a.example",
            success,
            "s",
            keep,
            (
                "sent",
                Some(QueueName::Incoming),
                "remove",
                vec![Kind::Success],
            ),
        ),
        (
            "NOTIFY=NEVER: no bounce",
            "s@a.example",
            &[Some("NEVER")],
            "b",
            keep,
            ("bounced", None, "remove", vec![]),
        ),
        (
            "a null sender's failure goes to the postmaster",
            "",
            none,
            "b",
            keep,
            (
                "bounced",
                None,
                "bounce PostmasterNotice to postmaster@mx.example",
                vec![],
            ),
        ),
        (
            "a failed postmaster notice is discarded",
            "",
            none,
            "b",
            |_, a| a.meta.envelope.origin = ORIGIN_NOTICE.into(),
            ("bounced", None, "remove, notice discarded", vec![]),
        ),
        (
            "soft_bounce defers instead",
            "s@a.example",
            none,
            "b",
            |s, _| s.soft_bounce = true,
            ("deferred", Some(QueueName::Deferred), "retry", vec![]),
        ),
        (
            "expired: the deferral bounces",
            "s@a.example",
            none,
            "d",
            |s, _| s.maximal_queue_lifetime = Duration::ZERO,
            ("bounced", None, "bounce Bounce to s@a.example", vec![]),
        ),
        (
            "a null sender's lifetime is bounce_queue_lifetime",
            "",
            none,
            "d",
            |s, _| s.bounce_queue_lifetime = Duration::ZERO,
            (
                "bounced",
                None,
                "bounce PostmasterNotice to postmaster@mx.example",
                vec![],
            ),
        ),
        (
            "a delay warning when due",
            "s@a.example",
            none,
            "d",
            |s, _| s.delay_warning_time = Duration::from_secs(30),
            (
                "deferred",
                Some(QueueName::Deferred),
                "retry",
                vec![Kind::Delay],
            ),
        ),
        (
            "the delay warning only once",
            "s@a.example",
            none,
            "d",
            |s, a| {
                s.delay_warning_time = Duration::from_secs(30);
                a.meta.delay_warned = true
            },
            ("deferred", Some(QueueName::Deferred), "retry", vec![]),
        ),
        (
            "no delay warning before its time",
            "s@a.example",
            none,
            "d",
            |s, _| s.delay_warning_time = HOUR,
            ("deferred", Some(QueueName::Deferred), "retry", vec![]),
        ),
        (
            "a hold: route holds an open message",
            "s@a.example",
            &[None, None],
            "s-",
            |_, a| a.hold = Some("quarantine".into()),
            ("sent open", Some(QueueName::Hold), "stay", vec![]),
        ),
        (
            "held by the operator meanwhile",
            "s@a.example",
            none,
            "d",
            |_, a| a.held = true,
            ("deferred", Some(QueueName::Hold), "stay", vec![]),
        ),
        (
            "held but all final: finished, recorded in hold",
            "s@a.example",
            none,
            "s",
            |_, a| a.held = true,
            ("sent", Some(QueueName::Hold), "remove", vec![]),
        ),
    ];
    for (what, sender, notify, verdicts, tweak, expected) in table {
        let mut s = settings();
        let mut a = attempt(meta(sender, notify), verdicts);
        tweak(&mut s, &mut a);
        let p = plan(a, &s, NOW, 0.5).unwrap_or_else(|| panic!("{what}: no plan"));
        let (states, queue, then, notices) = summary(&p);
        assert_eq!(
            (states.as_str(), queue, then.as_str(), notices),
            (expected.0, expected.1, expected.2, expected.3.clone()),
            "{what}"
        );
    }
}

#[test]
fn nothing_happened_when_a_stop_dropped_the_message_before_any_attempt() {
    assert!(plan(
        attempt(meta("s@a.example", &[None]), ""),
        &settings(),
        NOW,
        0.5
    )
    .is_none());
}

#[test]
fn the_retry_time_follows_the_backoff_with_the_given_jitter() {
    let s = settings();
    for (attempts, jitter) in [(0, 0.0), (0, 0.99), (3, 0.5), (10, 0.2)] {
        let mut m = meta("s@a.example", &[None]);
        m.attempts = attempts;
        let p = plan(attempt(m, "d"), &s, NOW, jitter).unwrap();
        let want = retry::next_attempt(
            NOW,
            attempts + 1,
            s.minimal_backoff_time,
            s.maximal_backoff_time,
            jitter,
        );
        assert_eq!(p.then, Then::Retry(want));
        let u = p.update.unwrap();
        assert_eq!((u.next_attempt, u.attempts), (want, attempts + 1));
    }
}

#[test]
fn soft_bounce_turns_the_status_class_to_four() {
    let mut s = settings();
    s.soft_bounce = true;
    let p = plan(attempt(meta("s@a.example", &[None]), "b"), &s, NOW, 0.5).unwrap();
    let Line::Outcome { timed, .. } = &p.lines[0] else {
        panic!()
    };
    assert_eq!(
        (timed.outcome.kind.clone(), timed.outcome.dsn.as_str()),
        (OutcomeKind::Deferred, "4.1.1")
    );
}

#[test]
fn an_expired_recipient_is_logged_and_bounced_with_4_4_7() {
    let mut s = settings();
    s.maximal_queue_lifetime = Duration::from_secs(30);
    let p = plan(attempt(meta("s@a.example", &[None]), "d"), &s, NOW, 0.5).unwrap();
    assert_eq!(p.lines.len(), 2, "the outcome, then the expiry");
    let Line::Expired { to, reason } = &p.lines[1] else {
        panic!()
    };
    assert_eq!(to, "x0@far.example");
    assert_eq!(
        reason,
        "message expired after 30s in the queue; last error: 450 try later"
    );
    let Then::Finish(Bounce::Send(n)) = &p.then else {
        panic!()
    };
    assert_eq!(n.reports[0].status, "4.4.7");
}

#[test]
fn a_success_notice_says_delivered_for_local_mail_and_relayed_for_smtp() {
    let m = meta("s@a.example", &[Some("SUCCESS"), Some("SUCCESS")]);
    let p = plan(attempt(m, "ls"), &settings(), NOW, 0.5).unwrap();
    let reports = &p.notices[0].reports;
    assert_eq!(
        (reports[0].action, reports[0].remote_mta.as_deref()),
        (Action::Delivered, None)
    );
    assert_eq!(
        (reports[1].action, reports[1].remote_mta.as_deref()),
        (Action::Relayed, Some("mx.far.example[192.0.2.1]:25"))
    );
    assert_eq!(
        (p.notices[0].to.as_str(), p.notices[0].origin),
        ("s@a.example", "bounce")
    );
}

#[test]
fn a_recipient_held_back_by_a_suspension_does_not_expire() {
    let mut s = settings();
    s.maximal_queue_lifetime = Duration::from_secs(30);
    let mut m = meta("s@a.example", &[None, None]);
    m.envelope.recipients[1].state = RecipientState::Deferred {
        reason: "450 try later".into(),
    };
    let mut a = attempt(m, "d");
    a.held_back = vec![1];
    let p = plan(a, &s, NOW, 0.5).unwrap();
    let expired: Vec<_> = p
        .lines
        .iter()
        .filter_map(|l| match l {
            Line::Expired { to, .. } => Some(to.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(expired, ["x0@far.example"], "only the one really attempted");
    assert!(
        p.envelope.recipients[1].state.is_open(),
        "the suspended one waits"
    );
    assert_eq!(p.then, Then::Retry(p.update.as_ref().unwrap().next_attempt));
}

#[test]
fn an_early_record_sets_its_items_states_and_asks_for_their_success_notice_only() {
    let m = meta(
        "s@a.example",
        &[Some("SUCCESS"), Some("SUCCESS"), None, None],
    );
    // This item: recipients 0 and 2 (1 and 3 are another destination's, still out).
    let mine = outcomes("s-b");
    let mut s = settings();
    let first = early(&m, mine.clone(), &s);
    let states: Vec<_> = first
        .changes
        .iter()
        .map(|(i, st)| (*i, st.clone()))
        .collect();
    assert_eq!(states[0], (0, RecipientState::Sent));
    assert!(matches!(&states[1], (2, RecipientState::Bounced { status, .. }) if status == "5.1.1"));
    assert_eq!(first.lines.len(), 2);
    let (notice, env) = first.success.expect("x0 asked for success");
    assert_eq!(notice.kind, Kind::Success);
    let reported: Vec<&str> = notice.reports.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(
        reported,
        ["x0@far.example"],
        "only what this item delivered"
    );
    assert_eq!(env.recipients[0].state, RecipientState::Sent);
    assert_eq!(env.recipients[1].state, RecipientState::Pending);
    s.soft_bounce = true;
    let soft = early(&m, mine, &s);
    assert!(matches!(
        soft.changes[1],
        (2, RecipientState::Deferred { .. })
    ));
}
