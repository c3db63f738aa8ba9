//! One implementation of every queue request ([`Request`]), run by the daemon for its
//! control socket and in-process by the tools when the daemon is down.
//!
//! Inputs → outputs: a request, a [`Backend`] (the open store, or a read-only snapshot), a
//! [`Scheduler`] (the daemon's queue manager, or nothing), and for `postsuper -` a reader of
//! queue IDs → a stream of [`Event`]s handed to `emit`, ending with `End` (an `Err` from
//! `emit` stops the work: the reader went away).
//!
//! Invariants: listings walk the store in chunks ([`queue::Store::try_for_each`], stopping
//! when the reader goes away) and emit each row at once, so memory is flat and the first row
//! is out immediately; bulk changes go in
//! batches of [`superop::BATCH`] with one fdatasync each; a snapshot backend refuses changes.

use crate::protocol::{Envelope, Event, Request};
use crate::qshape;
use crate::row::{Row, State};
use crate::select::Matcher;
use crate::stats::StatsCounter;
use crate::superop::{self, Action, Summary};
use envelope::{QueueId, RecipientState};
use queue::{Census, Entry, Op, Snapshot, Store, Suspension};
use std::collections::HashMap;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

/// What the engine needs from a running scheduler.
pub trait Scheduler: Sync {
    /// True while the message is being delivered (`active`).
    fn is_active(&self, id: QueueId) -> bool;
    /// The message is due at `when` (Unix seconds, 0 = now).
    fn schedule(&self, id: QueueId, when: u64);

    /// Suspends deliveries to a destination (see [`crate::suspend`]).
    fn suspend(
        &self,
        _destination: &str,
        _seconds: Option<u64>,
        _reason: &str,
    ) -> Result<Suspension, String> {
        Err(NO_SUSPENSIONS.into())
    }
    /// Ends a suspension; false if none was in force.
    fn resume(&self, _destination: &str) -> Result<bool, String> {
        Err(NO_SUSPENSIONS.into())
    }
    /// The suspensions in force.
    fn suspensions(&self) -> Result<Vec<Suspension>, String> {
        Ok(Vec::new())
    }
    /// Why recipient `i` of `entry` waits, when a suspension holds it back.
    fn suspension_reason(&self, _entry: &Entry, _i: usize) -> Option<String> {
        None
    }
}

const NO_SUSPENSIONS: &str = "suspensions are not kept here";

/// No daemon: nothing is active, nobody to tell.
pub struct NoScheduler;

impl Scheduler for NoScheduler {
    fn is_active(&self, _: QueueId) -> bool {
        false
    }
    fn schedule(&self, _: QueueId, _: u64) {}
}

/// Where the messages are.
pub enum Backend<'a> {
    /// The open store (the daemon's, or the tool's own while the daemon is down).
    Store(&'a Store),
    /// A lock-free read of the log ([`queue::Snapshot`]): listings only.
    Snapshot(&'a Snapshot),
    /// A lock-free read of the log that keeps only queue, arrival time, sender and
    /// recipients ([`queue::Census`]): `qshape` alone, which needs no more.
    Census(&'a Census),
}

/// A census has no entries to walk or copy: a request other than qshape asked of it.
fn no_entries() -> io::Error {
    io::Error::other("internal error: a census of the queue cannot answer this request")
}

impl Backend<'_> {
    /// Walks every message in queue-ID order; stops at the first error.
    fn for_each(&self, f: impl FnMut(&Entry) -> io::Result<()>) -> io::Result<()> {
        match self {
            Backend::Store(store) => store.try_for_each(f),
            Backend::Snapshot(snapshot) => snapshot.try_for_each(f),
            Backend::Census(_) => Err(no_entries()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Backend::Store(s) => s.len(),
            Backend::Snapshot(s) => s.len(),
            Backend::Census(c) => c.len(),
        }
    }

    fn get(&self, id: QueueId) -> Option<Entry> {
        match self {
            Backend::Store(s) => s.get(id),
            Backend::Snapshot(s) => s.get(id),
            Backend::Census(_) => None,
        }
    }
}

/// Everything a request runs against.
pub struct Context<'a> {
    pub backend: Backend<'a>,
    pub scheduler: &'a dyn Scheduler,
    /// `<queue_directory>/maildrop`.
    pub maildrop: PathBuf,
    pub now: u64,
}

pub type Emit<'e> = dyn FnMut(Event) -> io::Result<()> + 'e;

impl Context<'_> {
    /// Runs `request`, emitting its events and a final `End`, or `Error` on failure.
    pub fn run(
        &self,
        request: &Request,
        ids: Option<&mut dyn BufRead>,
        emit: &mut Emit<'_>,
    ) -> io::Result<()> {
        if let Some(answer) = crate::suspend::answer(self.scheduler, request, emit) {
            return match answer {
                Ok(Ok(count)) => emit(Event::End { count }),
                Ok(Err(e)) => Err(e),
                Err(why) => emit(Event::Error(why)),
            };
        }
        let result = match request {
            Request::List { selector, .. } => selector
                .compile(&State::ALL, self.now)
                .map_err(Failure::Refused)
                .and_then(|m| self.list(&m, emit).map_err(Failure::Io)),
            Request::Qshape { options, queues } => {
                self.qshape(options, queues, emit).map_err(Failure::Io)
            }
            Request::Stats => self.stats(emit).map_err(Failure::Io),
            Request::Super(req) => self.postsuper(req, ids, emit),
            Request::Cat { id } => self.cat(id, emit),
            Request::Suspend { .. } | Request::Resume { .. } | Request::Suspensions => Ok(0),
        };
        match result {
            Ok(count) => emit(Event::End { count }),
            Err(Failure::Io(e)) => Err(e),
            Err(Failure::Refused(why)) => emit(Event::Error(why)),
        }
    }

    /// A message's row, with the operator's suspension as the reason of each recipient it
    /// holds back (mailq's answer to "why is this still here?").
    fn row(&self, e: &Entry, active: bool) -> Row {
        let mut row = Row::from_entry(e, active);
        let open = e.meta.envelope.recipients.iter().enumerate();
        let open = open.filter(|(_, r)| r.state.is_open()).map(|(i, _)| i);
        for (shown, i) in row.recipients.iter_mut().zip(open) {
            if let Some(why) = self.scheduler.suspension_reason(e, i) {
                shown.delay_reason = why;
            }
        }
        row
    }

    fn state(&self, e: &Entry) -> State {
        State::of(e.meta.queue, self.scheduler.is_active(e.id))
    }

    fn list(&self, m: &Matcher, emit: &mut Emit<'_>) -> io::Result<u64> {
        let mut n = 0;
        self.backend.for_each(|e| {
            let state = self.state(e);
            if m.matches(
                state,
                e.meta.envelope.arrival_time,
                &e.meta.envelope.sender,
                open(e),
            ) {
                n += 1;
                return emit(Event::Row(self.row(e, state == State::Active)));
            }
            Ok(())
        })?;
        if m.wants_state(State::Maildrop) {
            self.each_maildrop(|row| {
                let rcpts = row.recipients.iter().map(|r| (r.address.as_str(), ""));
                if m.matches(State::Maildrop, row.arrival_time, &row.sender, rcpts) {
                    n += 1;
                    emit(Event::Row(row))?;
                }
                Ok(())
            })?;
        }
        Ok(n)
    }

    fn each_maildrop(&self, mut f: impl FnMut(Row) -> io::Result<()>) -> io::Result<()> {
        let Ok(files) = submit::maildrop::ready_files(&self.maildrop) else {
            return Ok(()); // no maildrop (yet), or not ours to read
        };
        for (id, path) in files {
            if let Some(row) = Row::from_maildrop(id, &path) {
                f(row)?;
            }
        }
        Ok(())
    }

    fn qshape(
        &self,
        options: &qshape::Options,
        queues: &[State],
        emit: &mut Emit<'_>,
    ) -> io::Result<u64> {
        let mut counter = qshape::Counter::new(options.clone(), self.now);
        let mut n = 0;
        let mut add = |state, arrival_time, sender: &str, rcpts: &mut dyn Iterator<Item = &str>| {
            if queues.contains(&state) {
                n += 1;
                counter.add(arrival_time, sender, rcpts);
            }
        };
        match self.backend {
            Backend::Census(census) => n = self.tally_census(census, queues, &mut counter),
            _ => self.backend.for_each(|e| {
                let env = &e.meta.envelope;
                let mut rcpts = open(e).map(|(a, _)| a);
                add(self.state(e), env.arrival_time, &env.sender, &mut rcpts);
                Ok(())
            })?,
        }
        if queues.contains(&State::Maildrop) {
            self.each_maildrop(|row| {
                n += 1;
                let rcpts = row.recipients.iter().map(|r| r.address.as_str());
                counter.add(row.arrival_time, &row.sender, rcpts);
                Ok(())
            })?;
        }
        emit(Event::Shape(counter.finish()))?;
        Ok(n)
    }

    /// Counts a census's messages of `queues` into `counter`, tallied first by (address,
    /// bucket): a million messages share few distinct addresses, so each is normalized to its
    /// domain once. Returns the number of messages counted.
    fn tally_census(
        &self,
        census: &Census,
        queues: &[State],
        counter: &mut qshape::Counter,
    ) -> u64 {
        let mut tally: HashMap<(&str, usize), u64> = HashMap::new();
        let mut n = 0;
        for (id, b) in census.iter() {
            if !queues.contains(&State::of(b.queue, self.scheduler.is_active(id))) {
                continue;
            }
            n += 1;
            let bucket = counter.bucket(b.arrival_time);
            if counter.counts_senders() {
                *tally.entry((b.sender, bucket)).or_default() += 1;
            } else {
                for r in b.open_recipients() {
                    *tally.entry((r, bucket)).or_default() += 1;
                }
            }
        }
        for ((address, bucket), count) in tally {
            counter.add_counted(address, bucket, count);
        }
        n
    }

    fn stats(&self, emit: &mut Emit<'_>) -> io::Result<u64> {
        let mut counter = StatsCounter::at(crate::duration::unix_now());
        let mut n = 0;
        self.backend.for_each(|e| {
            n += 1;
            let env = &e.meta.envelope;
            let id = e.id.to_string();
            counter.add(
                &id,
                self.state(e),
                env.arrival_time,
                e.size,
                &env.sender,
                open(e),
            );
            Ok(())
        })?;
        self.each_maildrop(|row| {
            n += 1;
            let rcpts = row.recipients.iter().map(|r| (r.address.as_str(), ""));
            let (id, t, size) = (&row.queue_id, row.arrival_time, row.message_size);
            counter.add(id, State::Maildrop, t, size, &row.sender, rcpts);
            Ok(())
        })?;
        emit(Event::Stats(counter.finish()))?;
        Ok(n)
    }

    fn postsuper(
        &self,
        req: &superop::Request,
        ids: Option<&mut dyn BufRead>,
        emit: &mut Emit<'_>,
    ) -> Result<u64, Failure> {
        let Backend::Store(store) = self.backend else {
            return Err(Failure::Refused(
                "the queue store is not open for changes".into(),
            ));
        };
        let m = req
            .selector
            .compile(req.action.default_queues(), self.now)
            .map_err(Failure::Refused)?;
        let mut batch = Batch::new(store, self, req, emit);
        if req.scans() {
            batch.total = self.backend.len() as u64;
            self.backend
                .for_each(|e| batch.consider(e, &m, false))
                .map_err(Failure::Io)?;
            if req.action == Action::Delete && m.wants_state(State::Maildrop) {
                batch.delete_maildrop(&self.maildrop, None, &m)?;
            }
        } else {
            let mut named = req.ids.clone().into_iter().map(Ok::<String, io::Error>);
            let streamed = ids.into_iter().flat_map(|r| r.lines());
            for line in named.by_ref().chain(streamed) {
                batch.named(line.map_err(Failure::Io)?.trim(), &m)?;
            }
        }
        batch.flush()?;
        let count = batch.count;
        emit(Event::Summary(Summary {
            action: req.action,
            count,
            dry_run: req.dry_run,
        }))
        .map_err(Failure::Io)?;
        Ok(count)
    }

    fn cat(&self, id: &str, emit: &mut Emit<'_>) -> Result<u64, Failure> {
        // Not a queue ID: no such message, as a missing file is to Postfix's postcat.
        let Ok(qid) = QueueId::parse(id) else {
            return Ok(0);
        };
        let Some(e) = self.backend.get(qid) else {
            return self.cat_maildrop(qid, emit);
        };
        let Backend::Store(store) = self.backend else {
            return Err(Failure::Refused("the queue store is not open".into()));
        };
        let body = store
            .read_message(qid)
            .map_err(|err| Failure::Refused(err.to_string()))?;
        let env = &e.meta.envelope;
        let loc = e.location;
        let envelope = Envelope {
            row: Row::from_entry(&e, self.scheduler.is_active(qid)),
            recipients: env
                .recipients
                .iter()
                .map(|r| (r.address.clone(), describe(&r.state)))
                .collect(),
            origin: env.origin.clone(),
            envid: env.envid.clone(),
            ret: env.ret.clone(),
            filter: env.filter.clone(),
            location: format!(
                "store/{:012}.seg@{}+{}",
                loc.segment, loc.record_offset, loc.record_len
            ),
        };
        emit(Event::Envelope(Box::new(envelope))).map_err(Failure::Io)?;
        emit(Event::body(body)).map_err(Failure::Io)?;
        Ok(1)
    }

    /// A message still in maildrop. One that is in neither place gives a count of 0 and no
    /// events: the client tells "no such message" (postcat exits 1) from a failure.
    fn cat_maildrop(&self, id: QueueId, emit: &mut Emit<'_>) -> Result<u64, Failure> {
        let path = self.maildrop.join(id.to_string());
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            _ => {}
        }
        let file = submit::maildrop::read(&path)
            .map_err(|e| Failure::Refused(format!("{id}: cannot read maildrop file: {e}")))?;
        let envelope = crate::postcat::maildrop_view(id, &file, path.display().to_string());
        emit(Event::Envelope(Box::new(envelope))).map_err(Failure::Io)?;
        emit(Event::body(file.message)).map_err(Failure::Io)?;
        Ok(1)
    }
}

/// How a request failed: the reader went away (stop quietly), or it was refused (tell why).
enum Failure {
    Io(io::Error),
    Refused(String),
}

/// A recipient's state as postcat prints it.
pub fn describe(state: &RecipientState) -> String {
    match state {
        RecipientState::Pending => "pending".into(),
        RecipientState::Sent => "sent".into(),
        RecipientState::Deferred { reason } => format!("deferred ({reason})"),
        RecipientState::Bounced { status, reason } => format!("bounced {status} ({reason})"),
    }
}

/// Open recipients of a stored message as `(address, deferral reason)`.
fn open(e: &Entry) -> impl Iterator<Item = (&str, &str)> + Clone {
    e.meta
        .envelope
        .recipients
        .iter()
        .filter(|r| r.state.is_open())
        .map(|r| match &r.state {
            RecipientState::Deferred { reason } => (r.address.as_str(), reason.as_str()),
            _ => (r.address.as_str(), ""),
        })
}

/// Collects the changes of one postsuper request and writes them batch by batch.
struct Batch<'a, 'e> {
    store: &'a Store,
    ctx: &'a Context<'a>,
    req: &'a superop::Request,
    emit: &'a mut Emit<'e>,
    ops: Vec<Op>,
    /// `(id, named, due)` of each op in `ops`.
    pending: Vec<(QueueId, bool, Option<u64>)>,
    count: u64,
    seen: u64,
    total: u64,
}

impl<'a, 'e> Batch<'a, 'e> {
    fn new(
        store: &'a Store,
        ctx: &'a Context<'a>,
        req: &'a superop::Request,
        emit: &'a mut Emit<'e>,
    ) -> Self {
        Batch {
            store,
            ctx,
            req,
            emit,
            ops: Vec::new(),
            pending: Vec::new(),
            count: 0,
            seen: 0,
            total: 0,
        }
    }

    fn consider(&mut self, e: &Entry, m: &Matcher, named: bool) -> io::Result<()> {
        self.seen += 1;
        let state = self.ctx.state(e);
        let env = &e.meta.envelope;
        if !m.matches(state, env.arrival_time, &env.sender, open(e)) {
            return Ok(());
        }
        let Some(op) = self.req.action.op(e) else {
            return Ok(());
        };
        if self.req.dry_run {
            self.count += 1;
            return (self.emit)(Event::Row(Row::from_entry(e, state == State::Active)));
        }
        self.ops.push(op);
        self.pending
            .push((e.id, named, self.req.action.due_after(e)));
        if self.ops.len() >= superop::BATCH {
            self.flush().map_err(|f| match f {
                Failure::Io(e) => e,
                Failure::Refused(why) => io::Error::other(why),
            })?;
        }
        Ok(())
    }

    fn named(&mut self, text: &str, m: &Matcher) -> Result<(), Failure> {
        if text.is_empty() {
            return Ok(());
        }
        let Ok(id) = QueueId::parse(text) else {
            let warning = format!("invalid mail queue id: {text}");
            return (self.emit)(Event::Warning(warning)).map_err(Failure::Io);
        };
        match self.store.get(id) {
            Some(e) => self.consider(&e, m, true).map_err(Failure::Io),
            None if self.req.action == Action::Delete && m.wants_state(State::Maildrop) => {
                self.delete_maildrop(&self.ctx.maildrop.clone(), Some(id), m)
            }
            None => Ok(()),
        }
    }

    /// Deletes maildrop files: one named ID, or every file the matcher selects.
    fn delete_maildrop(
        &mut self,
        dir: &Path,
        only: Option<QueueId>,
        m: &Matcher,
    ) -> Result<(), Failure> {
        let files = match only {
            Some(id) => vec![(id, dir.join(id.to_string()))],
            None => submit::maildrop::ready_files(dir).unwrap_or_default(),
        };
        for (id, path) in files {
            let Some(row) = Row::from_maildrop(id, &path) else {
                continue;
            };
            let rcpts = row.recipients.iter().map(|r| (r.address.as_str(), ""));
            if !m.matches(State::Maildrop, row.arrival_time, &row.sender, rcpts) {
                continue;
            }
            if self.req.dry_run {
                self.count += 1;
                (self.emit)(Event::Row(row)).map_err(Failure::Io)?;
            } else if std::fs::remove_file(&path).is_ok() {
                self.count += 1;
                if only.is_some() {
                    let done = Event::Done {
                        id: id.to_string(),
                        what: "removed".into(),
                    };
                    (self.emit)(done).map_err(Failure::Io)?;
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Failure> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let ops = std::mem::take(&mut self.ops);
        let pending = std::mem::take(&mut self.pending);
        // Messages that left the queue meanwhile are skipped by the store; count what stays.
        let before: Vec<bool> = pending
            .iter()
            .map(|(id, ..)| self.store.contains(*id))
            .collect();
        self.store
            .apply_many(ops)
            .map_err(|e| Failure::Refused(format!("cannot write to the queue store: {e}")))?;
        for ((id, named, due), present) in pending.into_iter().zip(before) {
            if !present {
                continue;
            }
            self.count += 1;
            if let Some(when) = due {
                self.ctx.scheduler.schedule(id, when);
            }
            if named {
                let word = self.req.action.done_word();
                let done = Event::Done {
                    id: id.to_string(),
                    what: word.into(),
                };
                (self.emit)(done).map_err(Failure::Io)?;
            }
        }
        let progress = Event::Progress {
            done: self.seen,
            total: self.total,
        };
        (self.emit)(progress).map_err(Failure::Io)
    }
}

#[cfg(test)]
mod tests;
