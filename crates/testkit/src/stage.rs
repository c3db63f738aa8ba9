//! Many queued messages without the daemon, fast ([`TestEnv::stage_messages`]): the load
//! tests start from a full maildrop rather than timing thousands of `sendmail` runs.

use std::fs;
use std::thread;

use crate::env::{assert_success, base_config, bin, command_with_config, TestEnv};
use crate::machine::list_dir;
use crate::machine::run_with_input;
use crate::text::tail;

impl TestEnv {
    /// Queues `sessions * per_session` messages without the daemon, fast: each `sendmail
    /// -bs` session submits into a staging queue of its own, then the staged maildrop files
    /// are moved (link, never replace, then unlink) into this queue's `maildrop/`.
    ///
    /// Why staging: sendmail's maildrop guard stats every file already in `maildrop/` (up to
    /// `maildrop_count_limit`), so filling one maildrop with N files costs O(N²) stats —
    /// about 3× slower for 5,000 files. The files are the same bytes sendmail writes; queue
    /// IDs are globally unique, so they can move between queues.
    ///
    /// `message(session, index)` gives the recipient and the message text (LF line ends,
    /// no line starting with `.`). Returns the number of messages queued.
    pub fn stage_messages(
        &self,
        sessions: usize,
        per_session: usize,
        message: impl Fn(usize, usize) -> (String, String) + Sync,
    ) -> usize {
        let message = &message;
        let results: Vec<(usize, String)> = thread::scope(|scope| {
            let handles: Vec<_> = (0..sessions)
                .map(|k| scope.spawn(move || self.stage_session(k, per_session, message)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (queued, replies) in &results {
            assert_eq!(
                *queued,
                per_session,
                "a sendmail -bs session did not queue every message; its replies end with:\n{}",
                tail(replies, 10)
            );
        }
        let target = self.maildrop_dir();
        fs::create_dir_all(&target).expect("maildrop dir");
        let mut moved = 0;
        for k in 0..sessions {
            let drop = self.root.join(format!("stage-{k}/queue/maildrop"));
            for name in list_dir(&drop) {
                assert!(!name.starts_with("tmp."), "left-over temp file {name}");
                let (from, to) = (drop.join(&name), target.join(&name));
                fs::hard_link(&from, &to)
                    .unwrap_or_else(|e| panic!("move {name} into maildrop: {e}"));
                fs::remove_file(&from).expect("unlink staged file");
                moved += 1;
            }
        }
        assert_eq!(moved, sessions * per_session, "staged files");
        moved
    }

    /// One `sendmail -bs` session queueing `per_session` messages into staging queue `k`:
    /// (messages queued, the session's replies).
    fn stage_session(
        &self,
        k: usize,
        per_session: usize,
        message: &impl Fn(usize, usize) -> (String, String),
    ) -> (usize, String) {
        let stage = self.root.join(format!("stage-{k}"));
        fs::create_dir_all(&stage).expect("stage dir");
        let cfg = stage.join("mailroom.toml");
        fs::write(&cfg, base_config(&self.root, &stage.join("queue"), "")).expect("stage config");
        let mut script = String::from("EHLO stage.test\r\n");
        for i in 0..per_session {
            let (rcpt, text) = message(k, i);
            script += "MAIL FROM:<sender@test.example>\r\n";
            script += &format!("RCPT TO:<{rcpt}>\r\nDATA\r\n");
            for line in text.lines() {
                assert!(!line.starts_with('.'), "no dot-stuffing here");
                script += line;
                script += "\r\n";
            }
            script += ".\r\n";
        }
        script += "QUIT\r\n";
        let out = run_with_input(
            command_with_config(bin(), &cfg).args(["sendmail", "-bs"]),
            script.as_bytes(),
        );
        assert_success(&out, "sendmail -bs");
        let replies = String::from_utf8_lossy(&out.stdout).into_owned();
        let queued = replies.matches("250 2.0.0 Ok: queued as").count();
        (queued, replies)
    }
}
