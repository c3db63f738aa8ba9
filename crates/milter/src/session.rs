//! `smtpd_milters` through one SMTP session, as Postfix's smtpd drives them: one
//! connection per milter for the whole session, opened and negotiated when the client
//! connects; each SMTP command is reported when it arrives (`SMFIC_CONNECT`, `HELO`, `MAIL`,
//! each `RCPT`, `DATA`), the content at the end of the data, `SMFIC_ABORT` when a
//! transaction ends (RSET, a new HELO, the end of the message) and `SMFIC_QUIT` at the end.
//!
//! # What an answer means (Postfix's milter8 states)
//! * At connect or HELO, a reject, tempfail or reply code is *standing*: every later event
//!   gets the same answer from that milter, for the rest of the session; an accept ends
//!   that milter's part for the session; a discard is not allowed there (ignored).
//! * Later, a refusal refuses the command (a RCPT refusal only that recipient); a discard
//!   discards the message; an accept ends that milter's part for this message.
//! * A milter that cannot be reached, times out or breaks the protocol is dropped for the
//!   session, and its `default_action` stands in: `tempfail` and `reject` become its
//!   standing answer, `quarantine` holds every message, `accept` leaves it out.
//!
//! The milters are asked in order; the first that refuses ends the event.

use tracing::warn;

use crate::client::{Connection, MilterError};
use crate::codec::{protocol, Command, Response, Stage};
use crate::conversation::{self, Flow, Outcome};
use crate::spec::{DefaultAction, MilterSpec};
use crate::{Context, Decision, Mail, Verdict};

/// Where one milter stands in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Asked at every event.
    Ready,
    /// Said accept for this message: not asked again until the next transaction.
    AcceptMessage,
    /// Said accept at connect or HELO: never asked again.
    AcceptSession,
    /// Refused at connect or HELO, or failed: its standing answer is the answer.
    Standing,
}

struct Live {
    spec: MilterSpec,
    connection: Option<Connection>,
    state: State,
    /// The answer every event gets once the milter refused the session or failed.
    standing: Option<Verdict>,
    /// `quarantine` as the default action of a failed milter: every message is held.
    hold: Option<String>,
    /// This message's end-of-message decision, until [`SessionMilters::message`] returns it.
    decided: Option<Decision>,
}

/// The session's milters.
#[derive(Default)]
pub struct SessionMilters {
    milters: Vec<Live>,
    /// A MAIL was reported and no ABORT has followed yet.
    in_transaction: bool,
}

impl std::fmt::Debug for SessionMilters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.milters.iter().map(|m| m.spec.name.as_str()).collect();
        f.debug_struct("SessionMilters")
            .field("milters", &names)
            .field("in_transaction", &self.in_transaction)
            .finish()
    }
}

/// One event as the protocol sends it.
struct Event {
    stage: Stage,
    command: Command,
    /// `SMFIP_NO*`, `SMFIP_NR_*`.
    flags: (u32, u32),
    name: &'static str,
}

impl Event {
    /// One RCPT TO, for the milters' recipient stage.
    fn rcpt(args: Vec<String>) -> Event {
        Event {
            stage: Stage::Rcpt,
            command: Command::Rcpt(args),
            flags: (protocol::NO_RCPT, protocol::NR_RCPT),
            name: "RCPT",
        }
    }

    /// CONNECT and HELO: their answers hold for the whole session.
    fn session_level(&self) -> bool {
        matches!(self.stage, Stage::Connect | Stage::Helo)
    }
}

impl SessionMilters {
    /// Opens a connection to each milter and reports the client (`SMFIC_CONNECT`).
    /// `Some(verdict)`: a refusal (standing for the session).
    pub async fn connect(specs: &[MilterSpec], context: &Context) -> (Self, Option<Verdict>) {
        let mut milters = Vec::with_capacity(specs.len());
        for spec in specs {
            let mut live = Live {
                spec: spec.clone(),
                connection: None,
                state: State::Ready,
                standing: None,
                hold: None,
                decided: None,
            };
            match crate::client::open(spec).await {
                Ok(connection) => live.connection = Some(connection),
                Err(error) => live.fail(&error),
            }
            milters.push(live);
        }
        let mut session = SessionMilters {
            milters,
            in_transaction: false,
        };
        let event = Event {
            stage: Stage::Connect,
            command: Command::Connect {
                hostname: conversation::connect_hostname(context),
                family: conversation::family(context),
            },
            flags: (protocol::NO_CONNECT, protocol::NR_CONNECT),
            name: "CONNECT",
        };
        let verdict = session.event(event, context).await;
        (session, verdict)
    }

    /// Whether there is any milter at all.
    pub fn is_empty(&self) -> bool {
        self.milters.is_empty()
    }

    /// `SMFIC_HELO`; a transaction in progress is aborted first.
    pub async fn helo(&mut self, name: &str, context: &Context) -> Option<Verdict> {
        self.abort().await;
        let event = Event {
            stage: Stage::Helo,
            command: Command::Helo(name.to_string()),
            flags: (protocol::NO_HELO, protocol::NR_HELO),
            name: "HELO",
        };
        self.event(event, context).await
    }

    /// `SMFIC_MAIL` with `<sender>` and the ESMTP parameters; opens a transaction.
    pub async fn mail(&mut self, args: Vec<String>, context: &Context) -> Option<Verdict> {
        self.abort().await;
        self.in_transaction = true;
        let event = Event {
            stage: Stage::Mail,
            command: Command::Mail(args),
            flags: (protocol::NO_MAIL, protocol::NR_MAIL),
            name: "MAIL",
        };
        self.event(event, context).await
    }

    /// `SMFIC_RCPT` for one recipient (`<address>` and its parameters).
    pub async fn rcpt(&mut self, args: Vec<String>, context: &Context) -> Option<Verdict> {
        self.event(Event::rcpt(args), context).await
    }

    /// A recipient the MTA refused, for the milters that asked to see those
    /// (`SMFIP_RCPT_REJ`); their answers do not matter.
    pub async fn rejected_rcpt(&mut self, args: Vec<String>, context: &Context) {
        let event = Event::rcpt(args);
        for live in &mut self.milters {
            let wants = live
                .connection
                .as_ref()
                .is_some_and(|c| c.skips(protocol::RCPT_REJ));
            if wants && live.state == State::Ready {
                // A failure is handled inside (logged, the default action stands in).
                let _ = live.event(&event, context).await;
            }
        }
    }

    /// `SMFIC_DATA` (protocol 4 and later; milters that do not know it skip it).
    pub async fn data(&mut self, context: &Context) -> Option<Verdict> {
        let event = Event {
            stage: Stage::Data,
            command: Command::Data,
            flags: (protocol::NO_DATA, protocol::NR_DATA),
            name: "DATA",
        };
        self.event(event, context).await
    }

    /// `SMFIC_UNKNOWN`: an SMTP command mailroom does not know or implement (the whole
    /// line), for the milters that want it (protocol 3 and later, no `SMFIP_NOUNKNOWN`).
    /// `Some(verdict)`: the first refusal (no state changes: a milter's xxfi_unknown can
    /// only tempfail or reject); a standing refusal from connect or HELO answers too. No
    /// macros are sent with it (Postfix's `milter_unknown_command_macros` is empty).
    pub async fn unknown(&mut self, line: &str) -> Option<Verdict> {
        for live in &mut self.milters {
            if let Some(verdict) = live.unknown(line).await {
                return Some(verdict);
            }
        }
        None
    }

    /// The first standing refusal, for commands milters are not told about (STARTTLS,
    /// AUTH, VRFY: Postfix answers them with it too).
    pub fn standing(&self) -> Option<Verdict> {
        self.milters.iter().find_map(|m| m.standing.clone())
    }

    /// Headers, end of headers, body and end of message, milter after milter, each
    /// seeing the changes of those before it; changes are applied to `mail`.
    pub async fn message(&mut self, mail: &mut Mail, context: &Context) -> Decision {
        let mut hold = None;
        for live in &mut self.milters {
            if live.state == State::Ready {
                live.content(mail, context, &mut hold).await;
            }
            if let Some(reason) = &live.hold {
                hold = Some(reason.clone());
            }
            if let Some(decided) = live.decided.take() {
                return decided;
            }
            if let Some(verdict) = &live.standing {
                return Decision {
                    verdict: verdict.clone(),
                    stage: "END-OF-MESSAGE",
                };
            }
        }
        Decision {
            verdict: Verdict::Accept { hold },
            stage: "END-OF-MESSAGE",
        }
    }

    /// `SMFIC_ABORT` to the milters in a transaction, so the next one starts clean; a
    /// no-op outside a transaction.
    pub async fn abort(&mut self) {
        if !std::mem::take(&mut self.in_transaction) {
            return;
        }
        for live in &mut self.milters {
            if !matches!(live.state, State::Ready | State::AcceptMessage) {
                continue;
            }
            live.state = State::Ready;
            if let Some(connection) = live.connection.as_mut() {
                if let Err(error) = connection.send(&Command::Abort).await {
                    live.fail(&error);
                }
            }
        }
    }

    /// `SMFIC_QUIT` and close, at the end of the session.
    pub async fn quit(mut self) {
        self.abort().await;
        for live in self.milters {
            if let Some(connection) = live.connection {
                connection.quit().await;
            }
        }
    }

    async fn event(&mut self, event: Event, context: &Context) -> Option<Verdict> {
        for live in &mut self.milters {
            if let Some(verdict) = live.event(&event, context).await {
                return Some(verdict);
            }
        }
        None
    }
}

impl Live {
    async fn event(&mut self, event: &Event, context: &Context) -> Option<Verdict> {
        match self.state {
            State::Standing => return self.standing.clone(),
            State::AcceptSession | State::AcceptMessage => return None,
            State::Ready => {}
        }
        let connection = self.connection.as_mut()?;
        let step = conversation::step(
            connection,
            context,
            &context.macros,
            event.stage,
            event.command.clone(),
            event.flags,
            event.name,
        )
        .await;
        match step {
            Err(error) => {
                self.fail(&error);
                self.standing.clone()
            }
            Ok(Flow::Next) => None,
            Ok(Flow::Done(Outcome::Accepted { .. })) => {
                self.state = match event.session_level() {
                    true => State::AcceptSession,
                    false => State::AcceptMessage,
                };
                None
            }
            Ok(Flow::Done(Outcome::Decided(verdict, _))) => self.decided(event, verdict),
        }
    }

    async fn unknown(&mut self, line: &str) -> Option<Verdict> {
        match self.state {
            State::Standing => return self.standing.clone(),
            State::AcceptSession | State::AcceptMessage => return None,
            State::Ready => {}
        }
        let connection = self.connection.as_mut()?;
        if connection.skips(protocol::NO_UNKNOWN) {
            return None;
        }
        let command = Command::Unknown(line.to_string());
        let answer = match connection.skips(protocol::NR_UNKNOWN) {
            true => connection.send(&command).await.map(|()| Response::Continue),
            false => connection.ask(&command, "UNKNOWN", false).await,
        };
        match answer {
            Err(error) => {
                self.fail(&error);
                self.standing.clone()
            }
            // Postfix: the 502 stands, the milter refuses everything from then on (421).
            Ok(Response::Shutdown) => {
                self.state = State::Standing;
                self.standing = Some(Verdict::Tempfail(crate::SHUTDOWN_REPLY.into()));
                None
            }
            Ok(answer) => match conversation::judge(answer, "UNKNOWN") {
                Flow::Done(Outcome::Decided(
                    verdict @ (Verdict::Reject(_) | Verdict::Tempfail(_)),
                    _,
                )) => Some(verdict),
                _ => None,
            },
        }
    }

    fn decided(&mut self, event: &Event, verdict: Verdict) -> Option<Verdict> {
        match (verdict, event.session_level()) {
            (Verdict::Discard, true) => {
                warn!(target: "milter", "milter {}: DISCARD action is not allowed for connect or helo", self.spec.name);
                None
            }
            (Verdict::Discard, false) => {
                self.state = State::AcceptMessage;
                Some(Verdict::Discard)
            }
            (Verdict::Accept { .. }, _) => None,
            (refusal, true) => {
                self.state = State::Standing;
                self.standing = Some(refusal.clone());
                Some(refusal)
            }
            (refusal, false) => Some(refusal),
        }
    }

    /// One message's content through this milter; a decision is kept in `decided`.
    async fn content(&mut self, mail: &mut Mail, context: &Context, hold: &mut Option<String>) {
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        match conversation::content(connection, context, &context.macros, mail).await {
            Ok(Outcome::Accepted {
                changes,
                leading_space,
            }) => {
                if let Some(reason) = crate::apply(&self.spec, mail, &changes, leading_space) {
                    *hold = Some(reason);
                }
            }
            Ok(Outcome::Decided(verdict, stage)) => {
                self.state = State::AcceptMessage;
                self.decided = Some(Decision { verdict, stage });
            }
            Err(error) => self.fail(&error),
        }
    }

    /// Drops the connection; the default action stands in for the rest of the session.
    fn fail(&mut self, error: &MilterError) {
        warn!(target: "milter", "milter {}: {error}", self.spec.name);
        self.connection = None;
        self.state = State::Standing;
        match self.spec.default_action {
            DefaultAction::Accept => self.state = State::AcceptSession,
            DefaultAction::Quarantine => {
                self.state = State::AcceptSession;
                self.hold = Some("milter default action".into());
            }
            DefaultAction::Reject => {
                self.standing = Some(Verdict::Reject("550 5.5.0 Service unavailable".into()))
            }
            DefaultAction::Tempfail => {
                self.standing = Some(Verdict::Tempfail(
                    "451 4.7.1 Service unavailable - try again later".into(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn live(default_action: DefaultAction) -> Live {
        Live {
            spec: MilterSpec {
                name: "test".into(),
                endpoint: crate::spec::Endpoint::Unix("/nonexistent".into()),
                default_action,
                protocol: 6,
                connect_timeout: Duration::from_secs(1),
                command_timeout: Duration::from_secs(1),
                content_timeout: Duration::from_secs(1),
            },
            connection: None,
            state: State::Ready,
            standing: None,
            hold: None,
            decided: None,
        }
    }

    fn event(stage: Stage) -> Event {
        Event {
            stage,
            command: Command::Data,
            flags: (0, 0),
            name: "TEST",
        }
    }

    fn reject() -> Verdict {
        Verdict::Reject("550 5.7.1 Command rejected".into())
    }

    #[tokio::test]
    async fn a_helo_refusal_stands_for_the_session_and_a_rcpt_refusal_does_not() {
        let context = Context::default();
        let mut m = live(DefaultAction::Tempfail);
        assert_eq!(m.decided(&event(Stage::Rcpt), reject()), Some(reject()));
        assert_eq!(m.state, State::Ready);
        assert_eq!(m.decided(&event(Stage::Helo), reject()), Some(reject()));
        assert_eq!(m.event(&event(Stage::Mail), &context).await, Some(reject()));
        assert_eq!(m.event(&event(Stage::Rcpt), &context).await, Some(reject()));
    }

    #[test]
    fn a_discard_at_helo_is_ignored_and_one_at_rcpt_ends_the_milters_message() {
        let mut m = live(DefaultAction::Tempfail);
        assert_eq!(m.decided(&event(Stage::Helo), Verdict::Discard), None);
        assert_eq!(m.state, State::Ready);
        let discard = m.decided(&event(Stage::Rcpt), Verdict::Discard);
        assert_eq!(discard, Some(Verdict::Discard));
        assert_eq!(m.state, State::AcceptMessage);
    }

    #[tokio::test]
    async fn a_failed_milter_leaves_its_default_action_for_the_rest_of_the_session() {
        let context = Context::default();
        let error = MilterError::Timeout("test");
        let mut tempfail = live(DefaultAction::Tempfail);
        tempfail.fail(&error);
        let answer = tempfail.event(&event(Stage::Mail), &context).await;
        assert!(matches!(answer, Some(Verdict::Tempfail(t)) if t.starts_with("451 4.7.1")));
        let mut accept = live(DefaultAction::Accept);
        accept.fail(&error);
        assert_eq!(accept.event(&event(Stage::Mail), &context).await, None);
        let mut quarantine = live(DefaultAction::Quarantine);
        quarantine.fail(&error);
        assert_eq!(quarantine.event(&event(Stage::Rcpt), &context).await, None);
        assert!(quarantine.hold.is_some());
    }
}
