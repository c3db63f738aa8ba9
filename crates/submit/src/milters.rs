//! `non_smtpd_milters` for locally submitted mail: pickup hands each cleaned message to the
//! milters (crate `milter`) before it is queued, as Postfix's cleanup does for mail from
//! sendmail. The client is `localhost [127.0.0.1]` (OpenDKIM signs mail from its
//! `InternalHosts`, 127.0.0.1 by default). A refusal bounces the message to its sender; a
//! tempfail (a milter down under `milter_default_action = tempfail`) leaves the file in
//! `maildrop/`, tried again after [`RETRY_DELAY`]; nothing is lost either way.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envelope::{Envelope, QueueId};
use milter::{Context, Mail, MilterSettings, Verdict};
use tracing::{info, warn};

/// How long a message a milter could not judge waits in `maildrop/` (Postfix's pickup
/// rescans its maildrop every 60 s).
pub const RETRY_DELAY: Duration = Duration::from_secs(60);

/// Maildrop files not to try again before their time.
#[derive(Debug, Clone, Default)]
pub struct Deferrals(Arc<Mutex<HashMap<QueueId, Instant>>>);

impl Deferrals {
    pub fn waiting(&self, id: QueueId) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, until| *until > now);
        map.contains_key(&id)
    }

    fn defer(&self, id: QueueId) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(id, Instant::now() + RETRY_DELAY);
    }
}

/// What pickup does with a message after the milters.
pub enum Judged {
    Queue {
        envelope: Envelope,
        message: Vec<u8>,
        hold: bool,
    },
    Bounce {
        dsn: String,
        reason: String,
    },
    Discard,
    /// Leave the file; try again later.
    Later,
}

/// Runs the non-SMTP milters on a cleaned message. Call on a blocking thread inside the
/// runtime (pickup's `spawn_blocking`).
pub fn judge(
    settings: &MilterSettings,
    deferrals: &Deferrals,
    id: QueueId,
    mut envelope: Envelope,
    message: Vec<u8>,
) -> Judged {
    if settings.non_smtpd.is_empty() {
        return Judged::Queue {
            envelope,
            message,
            hold: false,
        };
    }
    let recipients = envelope
        .recipients
        .iter()
        .map(|r| r.address.clone())
        .collect();
    let mut mail = Mail::new(&envelope.sender, recipients, &message);
    let context = context(settings, id);
    let run = milter::run(&settings.non_smtpd, &context, &mut mail);
    let decision = tokio::runtime::Handle::current().block_on(run);
    let log = |what: &str| {
        let to = envelope
            .recipients
            .first()
            .map_or("", |r| r.address.as_str());
        let line = format!("{id}: {what}; from=<{}> to=<{to}>", envelope.sender);
        info!(target: "cleanup", "{}", maillog::sanitize(&line));
    };
    match decision.verdict {
        Verdict::Accept { hold } => {
            if let Some(reason) = &hold {
                log(&format!("milter-hold: {} from localhost[127.0.0.1]: milter triggers HOLD action: {reason}", decision.stage));
            }
            milter::mail::update_envelope(&mail, &mut envelope);
            Judged::Queue {
                envelope,
                message: mail.message(),
                hold: hold.is_some(),
            }
        }
        Verdict::Discard => {
            log(&format!(
                "milter-discard: {} from localhost[127.0.0.1]: milter triggers DISCARD action",
                decision.stage
            ));
            Judged::Discard
        }
        Verdict::Reject(text) => {
            log(&format!(
                "milter-reject: {} from localhost[127.0.0.1]: {}",
                decision.stage,
                text.get(4..).unwrap_or("")
            ));
            let (dsn, reason) = text
                .get(4..)
                .unwrap_or("5.7.1 rejected")
                .split_once(' ')
                .unwrap_or(("5.7.1", "rejected"));
            Judged::Bounce {
                dsn: dsn.to_string(),
                reason: reason.to_string(),
            }
        }
        Verdict::Tempfail(text) => {
            warn!(target: "pickup", "{id}: milter: {text}; the message stays in maildrop, tried again in {}s", RETRY_DELAY.as_secs());
            deferrals.defer(id);
            Judged::Later
        }
    }
}

fn context(settings: &MilterSettings, id: QueueId) -> Context {
    let mut macros = HashMap::new();
    for (name, value) in [
        ("j", settings.daemon_name.as_str()),
        ("{daemon_name}", settings.daemon_name.as_str()),
        ("v", settings.version.as_str()),
        ("_", "localhost [127.0.0.1]"),
        ("{client_addr}", "127.0.0.1"),
        ("{client_name}", "localhost"),
        ("{mail_mailer}", "local"),
        ("{rcpt_mailer}", "local"),
    ] {
        macros.insert(name.to_string(), value.to_string());
    }
    macros.insert("i".into(), id.to_string());
    Context {
        client_name: "localhost".into(),
        client_address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        client_port: 0,
        helo: "localhost".into(),
        macros,
        names: settings.macros.clone(),
    }
}
