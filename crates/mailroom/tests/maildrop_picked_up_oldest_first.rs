//! Issue 8, defect 16: mail waiting in maildrop was picked up out of order (submitted 1, 2,
//! 3; delivered 2, 3, 1). Pickup took them oldest first (queue IDs are time-sortable) and
//! the scheduler started them in that order, but two deliveries to one mailbox ran at once
//! (`local_destination_concurrency_limit` 2) and raced for its lock, whose waits poll: a
//! later message often won. With one delivery per mailbox at a time (the default is now 1)
//! a mailbox receives its mail in the order it was submitted.

use testkit::*;

fn subjects(env: &TestEnv, user: &str) -> Vec<String> {
    env.mbox_messages(user)
        .into_iter()
        .map(|m| m.subject.unwrap_or_default())
        .collect()
}

#[test]
fn mail_waiting_in_maildrop_is_delivered_in_submission_order() {
    const N: usize = 40;
    let env = TestEnv::new();
    let submitted: Vec<String> = (1..=N).map(|i| format!("message {i}")).collect();
    for subject in &submitted {
        let text = format!("Subject: {subject}\n\nbody\n");
        env.send_ok(&["-i", "alice@localhost"], text.as_bytes());
    }
    let _daemon = env.start();
    env.wait_mbox("alice", N);
    assert_eq!(subjects(&env, "alice"), submitted);
}
