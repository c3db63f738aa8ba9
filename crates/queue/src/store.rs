//! The store: one writer path with group commit, one index, oldest-first segment deletion.
//!
//! Ordering and concurrency rules:
//! - Any thread may call [`Store::enqueue`], [`Store::update`], [`Store::remove`]; each
//!   blocks until its record is durable (written and fdatasynced) and applied to the index.
//! - Callers push encoded records onto a pending list. Whoever finds no flush in progress
//!   becomes the leader: it takes the whole list, writes it with one `pwrite`, calls one
//!   `fdatasync`, applies the changes to the index in log order, and wakes everyone. So N
//!   concurrent intakes share one fsync (group commit) and the index never shows a state that
//!   a crash could undo.
//! - A failed write or sync fails the whole batch; the segment is cut back to its length
//!   before the batch, so the log holds no record whose writer was told it failed.
//! - Segments are deleted oldest-first only, once no live message's latest full record lives
//!   in them; [`Store::compact`] relocates the few live messages of a mostly dead oldest
//!   segment so that long-deferred mail does not pin the whole log. Each deletion is made
//!   durable (directory fsync) before the next: a crash must never bring back an older
//!   segment whose messages' removal records were in a newer one already gone. A deletion
//!   that fails keeps the segment in the index and is retried, later segments wait.
//! - Space is short when the queue file system cannot hold one more full segment above
//!   [`StoreOptions::min_free`]. Then the active segment is closed early once it is mostly
//!   dead, and the oldest segment is compacted even when more than half of it is live if
//!   that gives back more bytes (its dead part and the dead segments it pins) than it
//!   copies, so a small queue file system gets its space back instead of refusing intake
//!   with an empty queue.

use crate::index::{apply_update, Entry, Index, Location};
use crate::record::{self, FollowUp, MessageMeta, Update};
use crate::recovery::{self, RecoveryReport};
use crate::{segment, Layout, QueueName, StoreError};
use envelope::{Envelope, QueueId, RecipientState};
use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use tracing::warn;

/// Compaction copies at most this many messages, or this many bytes of them, per commit.
const RELOCATE_BATCH: usize = 256;
const RELOCATE_BATCH_BYTES: usize = 4 << 20;

/// Tuning knobs; the defaults suit both a laptop and a busy relay.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_size: u64,
    /// Free bytes the queue file system should keep (the daemon passes `queue_minfree`):
    /// below one segment plus this, space is short (see the module doc).
    pub min_free: u64,
    /// Prepare each next segment ahead, written full of zeros and fsynced (`spare.rs`,
    /// [`segment::create_zeroed`]), so a commit's `fdatasync` flushes data without a
    /// journal commit for a size or extent change. Skipped while space is short.
    pub preallocate: bool,
    /// Open segments with `O_DSYNC`: the batch's write is its sync (no `fdatasync` call).
    pub dsync_writes: bool,
    /// Group commit delay: a leader that finds fewer records pending than the last batch
    /// held waits up to this long for the other writers to arrive (never when the last
    /// batch was a single writer's). Zero: write at once.
    pub commit_delay: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_size: 16 << 20,
            min_free: 0,
            preallocate: false,
            dsync_writes: false,
            commit_delay: std::time::Duration::ZERO,
        }
    }
}

/// A bulk operation for [`Store::apply_many`].
#[derive(Debug, Clone)]
pub enum Op {
    Update(QueueId, Update),
    Remove(QueueId, String),
}

/// One queued operation waiting for its batch.
enum Change {
    Put {
        id: QueueId,
        meta: MessageMeta,
        size: u64,
    },
    Update {
        id: QueueId,
        update: Update,
    },
    Remove {
        id: QueueId,
    },
    /// Some recipients' new states alone: encoded by the leader as an update that keeps the
    /// queue, retry time and counters current at write time (see [`Store::set_recipients_then`]).
    SetRecipients {
        id: QueueId,
        states: Vec<(usize, RecipientState)>,
    },
    /// Compaction: re-encoded by the leader with the state current at write time.
    Relocate {
        id: QueueId,
        body: Vec<u8>,
    },
    /// Close the active segment after this batch (space is short; see the module doc).
    Rotate,
}

/// Told the result of one record once its batch is durable (or failed). Runs on the thread
/// that drove the batch: it must be quick (send on a channel, signal a condvar).
pub type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Pending {
    bytes: Vec<u8>,
    change: Change,
    done: Done,
}

struct Active {
    number: u64,
    file: Arc<File>,
    len: u64,
}

struct Commit {
    pending: Vec<Pending>,
    /// Some thread is driving batches (see [`Store::drive`]); others only push.
    flushing: bool,
    active: Active,
    /// A failed batch could not be cut off the active segment: cut it before writing more.
    needs_cut: bool,
    stats: CommitStats,
    /// Records in the last batch written: how many writers the commit delay waits for.
    last_batch: usize,
    /// The driver is waiting on `arrived` (the commit delay): only then is a push signalled
    /// (a condvar signal is a futex call even when nobody waits, two per relayed message).
    delaying: bool,
    /// The next segment, being prepared (see `spare.rs`).
    spare: spare::Spare,
}

/// Counters of the commit path: `records / batches` is how many writers shared an fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub batches: u64,
    pub records: u64,
}

struct Inner {
    dir: PathBuf,
    options: StoreOptions,
    commit: Mutex<Commit>,
    /// Signalled when records are pushed while a batch is being driven (commit delay).
    arrived: Condvar,
    index: Mutex<Index>,
    files: Mutex<HashMap<u64, Arc<File>>>,
    /// Held while deleting segments, so deletions happen one at a time, oldest first.
    deleting: Mutex<()>,
    _lock: File,
}

/// The queue store. Cheap to clone; all clones share one log and one index.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is contained elsewhere; the data is still consistent
    // because every critical section here either completes or changes nothing.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// Opens (creating if needed) the store under `queue_directory`, takes its exclusive
    /// lock, and rebuilds the index. Fails with [`StoreError::Locked`] if another process
    /// (a running daemon) holds the store.
    pub fn open(
        queue_directory: &Path,
        options: StoreOptions,
    ) -> Result<(Store, RecoveryReport), StoreError> {
        let layout = Layout::new(queue_directory);
        let dir = layout.store();
        segment::create_private_dir(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let lock_file = take_lock(&layout)?;
        let mut index = Index::default();
        let corrupt = layout.corrupt();
        let (report, last_len) = recovery::scan(&dir, &corrupt, &mut index, true)
            .map_err(|e| StoreError::io(&dir, e))?;
        index.pack();
        index.start_tally(unix_seconds());
        let active = open_active(&dir, &mut index, last_len, &options)?;
        let mut files = HashMap::new();
        for &number in index.segments.keys() {
            if number != active.number {
                let f = segment::open_ro(&dir, number).map_err(|e| StoreError::io(&dir, e))?;
                files.insert(number, Arc::new(f));
            }
        }
        files.insert(active.number, active.file.clone());
        let store = Store {
            inner: Arc::new(Inner {
                dir,
                options,
                commit: Mutex::new(Commit {
                    pending: Vec::new(),
                    flushing: false,
                    active,
                    needs_cut: false,
                    stats: CommitStats::default(),
                    last_batch: 0,
                    delaying: false,
                    spare: spare::Spare::default(),
                }),
                arrived: Condvar::new(),
                index: Mutex::new(index),
                files: Mutex::new(files),
                deleting: Mutex::new(()),
                _lock: lock_file,
            }),
        };
        store.delete_dead_segments();
        store.prepare_spare(&mut lock(&store.inner.commit));
        Ok((store, report))
    }

    /// Queues a new message durably. Returns once the message is on disk and fsynced.
    pub fn enqueue(
        &self,
        id: QueueId,
        envelope: Envelope,
        message: &[u8],
    ) -> Result<(), StoreError> {
        self.enqueue_with(id, envelope, message, None)
    }

    /// Queues a new message and, in the same record, applies `follow_up` to another message
    /// (see [`FollowUp`]): both happen or neither does.
    pub fn enqueue_with(
        &self,
        id: QueueId,
        envelope: Envelope,
        message: &[u8],
        follow_up: Option<FollowUp>,
    ) -> Result<(), StoreError> {
        if self.contains(id) {
            return Err(StoreError::Duplicate(id));
        }
        let (bytes, change) = encode_new(id, envelope, message, follow_up);
        self.commit(bytes, change)
    }

    /// Queues a message with a state of its own (queue, retry time, recipient states) in one
    /// record, so a message taken over from another MTA is never briefly `incoming` before
    /// it is held or deferred: a crash cannot make a held message deliverable.
    pub fn enqueue_as(
        &self,
        id: QueueId,
        meta: MessageMeta,
        message: &[u8],
    ) -> Result<(), StoreError> {
        if self.contains(id) {
            return Err(StoreError::Duplicate(id));
        }
        let mut bytes = Vec::with_capacity(message.len() + 256);
        record::encode_message(id, &meta, message, &mut bytes);
        let size = message.len() as u64;
        self.commit(bytes, Change::Put { id, meta, size })
    }

    /// Records new recipient states and the message's queue/retry time, durably.
    pub fn update(&self, id: QueueId, update: Update) -> Result<(), StoreError> {
        if !self.contains(id) {
            return Err(StoreError::NotFound(id));
        }
        let mut bytes = Vec::new();
        record::encode_update(id, &update, &mut bytes);
        self.commit(bytes, Change::Update { id, update })
    }

    /// Removes a message (delivered to all, bounced, or deleted by the operator), durably.
    pub fn remove(&self, id: QueueId, reason: &str) -> Result<(), StoreError> {
        if !self.contains(id) {
            return Err(StoreError::NotFound(id));
        }
        let mut bytes = Vec::new();
        record::encode_remove(id, reason, &mut bytes);
        self.commit(bytes, Change::Remove { id })?;
        self.delete_dead_segments();
        Ok(())
    }

    /// Commit counters since open.
    pub fn commit_stats(&self) -> CommitStats {
        lock(&self.inner.commit).stats
    }

    /// Number of segment files in the log.
    pub fn segment_count(&self) -> usize {
        lock(&self.inner.index).segments.len()
    }

    pub fn contains(&self, id: QueueId) -> bool {
        lock(&self.inner.index).contains(id)
    }

    /// A copy of one message's index entry.
    pub fn get(&self, id: QueueId) -> Option<Entry> {
        lock(&self.inner.index).get(id)
    }

    /// How many delivery attempts message `id` has had (`None`: not queued); cheaper than
    /// [`Store::get`], which decodes the envelope.
    pub fn attempts(&self, id: QueueId) -> Option<u32> {
        lock(&self.inner.index).attempts(id)
    }

    /// The queue's running totals at `now` (Unix seconds), the messages of `active` (the
    /// scheduler's, in delivery) counted as active; each ranking keeps its `top` largest.
    /// Costs O(changes since the last read + active), not a walk of the index.
    pub fn view(&self, now: u64, active: &[QueueId], top: usize) -> crate::View {
        lock(&self.inner.index).view(now, active, top)
    }

    /// Number of live messages.
    pub fn len(&self) -> usize {
        lock(&self.inner.index).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` for every live message in queue-ID (arrival) order, in chunks so the index
    /// lock is never held for long and memory stays flat.
    pub fn for_each(&self, mut f: impl FnMut(&Entry)) {
        let _ = self.try_for_each(|e| {
            f(e);
            Ok::<(), ()>(())
        });
    }

    /// [`Store::for_each`] that stops at the first error `f` returns (a listing whose reader
    /// went away) and returns it.
    pub fn try_for_each<E>(&self, f: impl FnMut(&Entry) -> Result<(), E>) -> Result<(), E> {
        chunked(|after| lock(&self.inner.index).chunk(after, CHUNK), f)
    }

    /// [`Store::try_for_each`] starting after queue ID `after` (a page of a listing: the
    /// index is ordered, so page N costs what page 1 does).
    pub fn try_for_each_after<E>(
        &self,
        after: QueueId,
        f: impl FnMut(&Entry) -> Result<(), E>,
    ) -> Result<(), E> {
        chunked_from(
            Some(after),
            |from| lock(&self.inner.index).chunk(from, CHUNK),
            f,
        )
    }

    /// Reads a message's bytes back, verifying the record checksum.
    pub fn read_message(&self, id: QueueId) -> Result<Vec<u8>, StoreError> {
        let (loc, file) = self.message_record(id).ok_or(StoreError::NotFound(id))?;
        read_body(&file, loc, id).map_err(|e| match e {
            StoreError::Io { message, .. } => StoreError::Io {
                path: segment::path(&self.inner.dir, loc.segment),
                message,
            },
            other => other,
        })
    }

    /// Where message `id`'s record is, and its segment's open file.
    fn message_record(&self, id: QueueId) -> Option<(Location, Arc<File>)> {
        let loc = self.get(id)?.location;
        let file = lock(&self.inner.files).get(&loc.segment).cloned()?;
        Some((loc, file))
    }

    /// [`Store::read_message`] when its record is in the page cache (a message queued a
    /// moment ago), read without waiting for the disk; `None` when it is not (or the file
    /// system cannot tell): then call `read_message` where blocking is allowed. For async
    /// tasks, which would otherwise hop to a blocking thread for every delivery.
    pub fn read_message_cached(&self, id: QueueId) -> Option<Result<Vec<u8>, StoreError>> {
        let (loc, file) = self.message_record(id)?;
        let mut raw = vec![0u8; usize::try_from(loc.record_len).ok()?];
        match sys::read_exact_at_nowait(&file, &mut raw, loc.record_offset) {
            Ok(true) => Some(decode_body(raw, id)),
            Ok(false) => None,
            Err(e) => Some(Err(StoreError::io(
                &segment::path(&self.inner.dir, loc.segment),
                e,
            ))),
        }
    }

    /// One compaction step: if the oldest closed segment is less than half live (or, when
    /// space is short, if compacting it gives back more than it copies), relocate its live
    /// messages to the newest segment so it can be deleted. When space is short, a mostly dead active segment is closed first.
    /// Returns messages moved.
    pub fn compact(&self) -> Result<usize, StoreError> {
        let free = segment::free_bytes(&self.inner.dir).ok();
        if self.active_wants_rotation(free) {
            self.commit(Vec::new(), Change::Rotate)?;
            self.delete_dead_segments();
        }
        let short = free.is_some_and(|f| self.space_short(f));
        let active = lock(&self.inner.commit).active.number;
        let victims: Vec<QueueId> = {
            let index = lock(&self.inner.index);
            let Some((&oldest, stats)) = index.segments.iter().next() else {
                return Ok(0);
            };
            let worth_it = stats.live_bytes * 2 <= stats.size
                || (short
                    && stats.live_bytes < unpinned_bytes(&index, active)
                    && free.is_some_and(|f| stats.live_bytes < f));
            if oldest == active || stats.live == 0 || !worth_it {
                return Ok(0);
            }
            index.ids_in_segment(oldest)
        };
        // The copies go in batches, one write and one sync each (a commit per copy cost
        // more than the copy itself). A message removed meanwhile is left out when its
        // batch is encoded; what a failed batch did not copy stays where it is.
        let mut moved = 0;
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        for id in victims {
            let body = match self.read_message(id) {
                Ok(b) => b,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            batch_bytes += body.len();
            batch.push((Vec::new(), Change::Relocate { id, body }));
            if batch.len() >= RELOCATE_BATCH || batch_bytes >= RELOCATE_BATCH_BYTES {
                moved += batch.len();
                self.commit_many(std::mem::take(&mut batch))?;
                batch_bytes = 0;
            }
        }
        if !batch.is_empty() {
            moved += batch.len();
            self.commit_many(batch)?;
        }
        self.delete_dead_segments();
        Ok(moved)
    }

    /// Space is short: the file system cannot take one more full segment above `min_free`.
    fn space_short(&self, free: u64) -> bool {
        let o = &self.inner.options;
        free < o.segment_size.saturating_add(o.min_free)
    }

    /// True if space is short and the active segment is big enough to matter (a sixteenth
    /// of a full one) and less than half live: closing it lets its dead bytes go.
    fn active_wants_rotation(&self, free: Option<u64>) -> bool {
        let (number, len) = {
            let state = lock(&self.inner.commit);
            (state.active.number, state.active.len)
        };
        self.segment_wants_rotation(number, len, free)
    }

    fn segment_wants_rotation(&self, number: u64, len: u64, free: Option<u64>) -> bool {
        if !free.is_some_and(|f| self.space_short(f)) || len < self.rotation_step() {
            return false;
        }
        let live = lock(&self.inner.index)
            .segments
            .get(&number)
            .map_or(0, |s| s.live_bytes);
        live * 2 <= len
    }

    /// A sixteenth of a full segment: the least worth closing early, and how often the
    /// writer looks at free space.
    fn rotation_step(&self) -> u64 {
        (self.inner.options.segment_size / 16).max(1)
    }

    /// The raw bytes of a message's latest full record (for `corrupt/` when it fails its
    /// checksum), unverified.
    pub fn raw_record(&self, id: QueueId) -> Result<Vec<u8>, StoreError> {
        let loc = self.get(id).ok_or(StoreError::NotFound(id))?.location;
        let path = segment::path(&self.inner.dir, loc.segment);
        let file = lock(&self.inner.files)
            .get(&loc.segment)
            .cloned()
            .ok_or(StoreError::NotFound(id))?;
        segment::read_at(&file, loc.record_len as usize, loc.record_offset)
            .map_err(|e| StoreError::io(&path, e))
    }

    /// Pushes one record and waits until its batch is durable (group commit).
    fn commit(&self, bytes: Vec<u8>, change: Change) -> Result<(), StoreError> {
        self.commit_many(vec![(bytes, change)])
    }

    /// Pushes records together (they land in one batch, in order) and waits until all are
    /// durable. One result: they share one write and one fdatasync.
    fn commit_many(&self, items: Vec<(Vec<u8>, Change)>) -> Result<(), StoreError> {
        type Slot = (Mutex<(usize, Result<(), StoreError>)>, Condvar);
        let slot: Arc<Slot> = Arc::new((Mutex::new((items.len(), Ok(()))), Condvar::new()));
        let pending = items
            .into_iter()
            .map(|(bytes, change)| {
                let slot = slot.clone();
                let done: Done = Box::new(move |result| {
                    let mut s = lock(&slot.0);
                    s.0 -= 1;
                    if let Err(e) = result {
                        s.1 = Err(e);
                    }
                    if s.0 == 0 {
                        slot.1.notify_one();
                    }
                });
                Pending {
                    bytes,
                    change,
                    done,
                }
            })
            .collect();
        if let Some(driver) = self.push(pending) {
            driver.run();
        }
        let mut s = lock(&slot.0);
        while s.0 > 0 {
            s = slot.1.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        std::mem::replace(&mut s.1, Ok(()))
    }

    /// Queues records; returns a [`Driver`] if nobody is writing batches right now, in which
    /// case the caller must run it (on a thread that may block).
    fn push(&self, items: Vec<Pending>) -> Option<Driver> {
        let mut state = lock(&self.inner.commit);
        state.pending.extend(items);
        if state.flushing {
            if state.delaying {
                self.inner.arrived.notify_one();
            }
            return None;
        }
        state.flushing = true;
        Some(Driver {
            store: self.clone(),
        })
    }

    /// Callback enqueue for callers that must not block (SMTP sessions; see `nonblocking.rs`): `done` is called
    /// once the message is durable (or failed). If a [`Driver`] is returned, run it on a
    /// blocking thread (`tokio::task::spawn_blocking(move || driver.run())`): no batch is
    /// being written and this one would otherwise wait for the next caller.
    pub fn enqueue_then(
        &self,
        id: QueueId,
        envelope: Envelope,
        message: &[u8],
        follow_up: Option<FollowUp>,
        done: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) -> Option<Driver> {
        if self.contains(id) {
            done(Err(StoreError::Duplicate(id)));
            return None;
        }
        let (bytes, change) = encode_new(id, envelope, message, follow_up);
        self.push(vec![Pending {
            bytes,
            change,
            done: Box::new(done),
        }])
    }

    /// Callback [`Store::update`]; see [`Store::enqueue_then`] for `done` and the driver.
    pub fn update_then(
        &self,
        id: QueueId,
        update: Update,
        done: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) -> Option<Driver> {
        if !self.contains(id) {
            done(Err(StoreError::NotFound(id)));
            return None;
        }
        let mut bytes = Vec::new();
        record::encode_update(id, &update, &mut bytes);
        self.push(vec![Pending {
            bytes,
            change: Change::Update { id, update },
            done: Box::new(done),
        }])
    }

    /// Records new states of some recipients and nothing else, durably: the record written
    /// keeps the message's queue, retry time and counters as they are when it is written
    /// (the single writer encodes it from the index and the changes ahead of it in its
    /// batch), so an operator's hold or a retry time recorded meanwhile is never undone.
    /// For outcomes that must be durable before the rest of their message's (the scheduler's
    /// items of a message with several destinations). `Ok` also if the message was removed
    /// before the record was written (nothing is written then). See [`Store::enqueue_then`]
    /// for `done` and the driver.
    pub fn set_recipients_then(
        &self,
        id: QueueId,
        states: Vec<(usize, RecipientState)>,
        done: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) -> Option<Driver> {
        if !self.contains(id) {
            done(Err(StoreError::NotFound(id)));
            return None;
        }
        self.push(vec![Pending {
            bytes: Vec::new(),
            change: Change::SetRecipients { id, states },
            done: Box::new(done),
        }])
    }

    /// Callback [`Store::remove`]; see [`Store::enqueue_then`] for `done` and the driver.
    pub fn remove_then(
        &self,
        id: QueueId,
        reason: &str,
        done: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) -> Option<Driver> {
        if !self.contains(id) {
            done(Err(StoreError::NotFound(id)));
            return None;
        }
        let mut bytes = Vec::new();
        record::encode_remove(id, reason, &mut bytes);
        self.push(vec![Pending {
            bytes,
            change: Change::Remove { id },
            done: Box::new(done),
        }])
    }

    /// Writes batches until nothing is pending, then lets the next pusher drive.
    fn drive(&self) {
        loop {
            let batch = {
                let mut state = self.wait_for_writers(lock(&self.inner.commit));
                if state.pending.is_empty() {
                    state.flushing = false;
                    return;
                }
                state.last_batch = state.pending.len();
                std::mem::take(&mut state.pending)
            };
            let removals = batch.iter().any(|p| {
                !matches!(
                    p.change,
                    Change::Update { .. } | Change::SetRecipients { .. }
                )
            });
            self.write_batch(batch);
            if removals {
                self.delete_dead_segments();
            }
        }
    }

    /// Applies many updates and removals with one fdatasync (bulk `postsuper`). Messages no
    /// longer in the queue are skipped. Returns how many operations were written.
    pub fn apply_many(&self, ops: Vec<Op>) -> Result<usize, StoreError> {
        let mut items = Vec::with_capacity(ops.len());
        for op in ops {
            let mut bytes = Vec::new();
            match op {
                Op::Update(id, update) if self.contains(id) => {
                    record::encode_update(id, &update, &mut bytes);
                    items.push((bytes, Change::Update { id, update }));
                }
                Op::Remove(id, reason) if self.contains(id) => {
                    record::encode_remove(id, &reason, &mut bytes);
                    items.push((bytes, Change::Remove { id }));
                }
                _ => {}
            }
        }
        let n = items.len();
        if n > 0 {
            self.commit_many(items)?;
            self.delete_dead_segments();
        }
        Ok(n)
    }

    /// Writes and syncs one batch, applies it to the index, then tells every writer.
    fn write_batch(&self, mut batch: Vec<Pending>) {
        let inner = &self.inner;
        let (file, base, number, needs_cut) = {
            let state = lock(&inner.commit);
            (
                state.active.file.clone(),
                state.active.len,
                state.active.number,
                state.needs_cut,
            )
        };
        let (buf, locations) = self.encode_batch(&mut batch, number, base);
        // A failed batch that could not be cut off earlier is cut first: its records must
        // not survive behind the ones written now.
        let dsync = inner.options.dsync_writes;
        let cut = if needs_cut {
            file.set_len(base)
        } else {
            Ok(())
        };
        let result = cut
            .and_then(|_| segment::write_at(&file, &buf, base))
            .and_then(|_| {
                if dsync {
                    Ok(())
                } else {
                    segment::data_sync(&file)
                }
            });
        let outcome = match result {
            Ok(()) => {
                self.apply_batch(&batch, &locations, number, base + buf.len() as u64);
                Ok(base + buf.len() as u64)
            }
            Err(e) => {
                // Cut the failed batch off so the log never holds a record whose writer was
                // told it failed, and sync the cut: unsynced, a crash before the next batch's
                // sync could bring the failed records back (their writers, told "failed",
                // may have sent them again: a duplicate). If either fails, the next batch
                // cuts first and its sync makes the cut durable.
                let cut_failed = file
                    .set_len(base)
                    .and_then(|_| segment::data_sync(&file))
                    .is_err();
                lock(&inner.commit).needs_cut = cut_failed;
                Err(StoreError::io(&segment::path(&inner.dir, number), e))
            }
        };
        if let Ok(new_len) = outcome {
            let wants_rotation = batch.iter().any(|p| matches!(p.change, Change::Rotate));
            let mut state = lock(&inner.commit);
            state.needs_cut = false;
            state.stats.batches += 1;
            state.stats.records += batch.len() as u64;
            telemetry::store_synced(batch.len());
            state.active.len = new_len;
            // Each time the segment grows by a rotation step the writer checks free space
            // itself, so a small disk does not wait for the next compaction to get its
            // dead bytes back.
            let step = self.rotation_step();
            let looked = new_len / step != base / step
                && self.segment_wants_rotation(
                    number,
                    new_len,
                    segment::free_bytes(&inner.dir).ok(),
                );
            if new_len >= inner.options.segment_size || (wants_rotation && new_len > 0) || looked {
                self.rotate(&mut state);
            }
        }
        for p in batch {
            (p.done)(outcome.as_ref().map(|_| ()).map_err(Clone::clone));
        }
    }

    /// Concatenates the batch; relocations and recipient-only updates are encoded here, by
    /// the only writer, from the index state plus the batch's earlier changes, so no update
    /// can be lost between a snapshot and its write.
    fn encode_batch(
        &self,
        batch: &mut [Pending],
        number: u64,
        base: u64,
    ) -> (Vec<u8>, Vec<Location>) {
        let mut buf = Vec::with_capacity(batch.iter().map(|p| p.bytes.len()).sum());
        let mut locations = Vec::with_capacity(batch.len());
        for i in 0..batch.len() {
            if let Change::Relocate { id, body } = &batch[i].change {
                let meta = self.relocation_meta(*id, &batch[..i]);
                if let Some(meta) = meta {
                    record::encode_message(*id, &meta, body, &mut batch[i].bytes);
                }
            }
            if let Change::SetRecipients { id, states } = &mut batch[i].change {
                let (id, states) = (*id, std::mem::take(states));
                if let Some(meta) = self.relocation_meta(id, &batch[..i]) {
                    let update = Update {
                        recipients: states,
                        ..Update::keep(&meta)
                    };
                    record::encode_update(id, &update, &mut batch[i].bytes);
                    // Applied, and seen by later relocations, as the update it now is.
                    batch[i].change = Change::Update { id, update };
                }
            }
            let start = buf.len() as u64;
            buf.extend_from_slice(&batch[i].bytes);
            locations.push(Location {
                segment: number,
                record_offset: base + start,
                record_len: batch[i].bytes.len() as u64,
            });
        }
        (buf, locations)
    }

    fn relocation_meta(&self, id: QueueId, earlier: &[Pending]) -> Option<MessageMeta> {
        // The index keeps no follow-up (it was applied when first written), so the relocated
        // copy cannot re-apply an old change over newer state.
        let mut meta = lock(&self.inner.index).meta(id)?;
        for p in earlier {
            match &p.change {
                Change::Update { id: other, update } if *other == id => {
                    apply_update(&mut meta, update)
                }
                Change::Remove { id: other } if *other == id => return None,
                _ => {}
            }
        }
        Some(meta)
    }

    fn apply_batch(&self, batch: &[Pending], locations: &[Location], number: u64, new_len: u64) {
        let mut index = lock(&self.inner.index);
        for (p, loc) in batch.iter().zip(locations) {
            match &p.change {
                Change::Put { id, meta, size } => index.put(*id, meta, *size, *loc),
                Change::Update { id, update } => index.update(*id, update),
                Change::Remove { id } => {
                    index.remove(*id);
                }
                Change::Relocate { id, .. } if loc.record_len > 0 => index.relocate(*id, *loc),
                // Its message was gone when the batch was encoded: nothing was written.
                Change::SetRecipients { .. } => {}
                Change::Relocate { .. } | Change::Rotate => {}
            }
        }
        index.grow_segment(number, new_len);
    }

    /// Starts a new segment. On failure keeps appending to the current one (a big segment is
    /// harmless; refusing intake is not).
    fn rotate(&self, state: &mut Commit) {
        let inner = &self.inner;
        let number = state.active.number + 1;
        let file = match state
            .spare
            .take(&inner.dir, number, inner.options.dsync_writes)
        {
            Ok(f) => f,
            Err(e) => {
                let path = segment::path(&inner.dir, number);
                // Remove a file left without its directory entry's sync, so the next try
                // can create it again.
                let _ = fs::remove_file(&path);
                warn!(target: "qmgr", "cannot start queue segment {}: {e}; still appending to the current one", path.display());
                return;
            }
        };
        let file = Arc::new(file);
        lock(&inner.files).insert(number, file.clone());
        lock(&inner.index).grow_segment(number, 0);
        let closed = std::mem::replace(
            &mut state.active,
            Active {
                number,
                file,
                len: 0,
            },
        );
        // A segment closed early (space short) gives its zeroed tail back. Not synced: after
        // a crash either length reads the same (zeros are the end of the data).
        if closed.file.metadata().is_ok_and(|m| m.len() > closed.len) {
            let _ = closed.file.set_len(closed.len);
        }
        self.prepare_spare(state);
    }

    /// Deletes the oldest segments while they hold no live message and are not the newest,
    /// one at a time, each durably before the next (see the module doc). A segment whose
    /// deletion fails stays in the index, and so do all later ones, until a later call.
    fn delete_dead_segments(&self) {
        let inner = &self.inner;
        let _one_at_a_time = lock(&inner.deleting);
        let active = lock(&inner.commit).active.number;
        loop {
            let victim = match lock(&inner.index).segments.iter().next() {
                Some((&n, s)) if n != active && s.live == 0 => n,
                _ => return,
            };
            let path = segment::path(&inner.dir, victim);
            let removed = match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => segment::sync_dir(&inner.dir),
            };
            if let Err(e) = removed {
                warn!(target: "qmgr", "cannot delete dead queue segment {}: {e}; will retry", path.display());
                return;
            }
            lock(&inner.index).segments.remove(&victim);
            lock(&inner.files).remove(&victim);
        }
    }
}

/// Bytes that compacting the oldest segment would give back: its dead bytes plus every dead
/// segment after it that only it keeps (deletion is oldest-first). Compacting is worth it
/// when space is short and this exceeds the live bytes it must copy: each step then shrinks
/// the log, so repeated compaction ends.
fn unpinned_bytes(index: &Index, active: u64) -> u64 {
    let mut segments = index.segments.iter();
    let Some((_, oldest)) = segments.next() else {
        return 0;
    };
    let pinned: u64 = segments
        .take_while(|(&n, s)| n != active && s.live == 0)
        .map(|(_, s)| s.size)
        .sum();
    oldest.size.saturating_sub(oldest.live_bytes) + pinned
}

/// Entries decoded per index lock in [`Store::for_each`].
pub(crate) const CHUNK: usize = 1024;

/// Walks entries chunk by chunk: `next(after)` returns the chunk after `after`.
pub(crate) fn chunked<E>(
    next: impl FnMut(Option<QueueId>) -> Vec<Entry>,
    f: impl FnMut(&Entry) -> Result<(), E>,
) -> Result<(), E> {
    chunked_from(None, next, f)
}

fn chunked_from<E>(
    mut after: Option<QueueId>,
    mut next: impl FnMut(Option<QueueId>) -> Vec<Entry>,
    mut f: impl FnMut(&Entry) -> Result<(), E>,
) -> Result<(), E> {
    loop {
        let chunk = next(after);
        let Some(last) = chunk.last() else {
            return Ok(());
        };
        after = Some(last.id);
        chunk.iter().try_for_each(&mut f)?;
    }
}

/// The record and index change of a new message.
fn encode_new(
    id: QueueId,
    envelope: Envelope,
    message: &[u8],
    follow_up: Option<FollowUp>,
) -> (Vec<u8>, Change) {
    let meta = MessageMeta {
        envelope,
        queue: QueueName::Incoming,
        next_attempt: 0,
        attempts: 0,
        delay_warned: false,
        follow_up,
    };
    let mut bytes = Vec::with_capacity(message.len() + 256);
    record::encode_message(id, &meta, message, &mut bytes);
    let size = message.len() as u64;
    (bytes, Change::Put { id, meta, size })
}

/// The duty to write the pending batches, handed to a caller that found no writer at work.
#[must_use = "run it, or records wait for the next writer"]
pub struct Driver {
    store: Store,
}

impl Driver {
    /// Writes batches until none is pending. Blocks (writes and fdatasyncs).
    pub fn run(self) {
        self.store.drive();
    }
}

fn read_body(file: &File, loc: Location, id: QueueId) -> Result<Vec<u8>, StoreError> {
    let raw = segment::read_at(file, loc.record_len as usize, loc.record_offset)
        .map_err(|e| StoreError::io(Path::new(""), e))?;
    decode_body(raw, id)
}

/// The body of a message record read back, checksum verified, in the buffer it was read
/// into. Its envelope JSON is not decoded again: the index decoded it when the record was
/// written or recovered, and the checksum covers it.
fn decode_body(mut raw: Vec<u8>, id: QueueId) -> Result<Vec<u8>, StoreError> {
    let body = match record::frame_at(&raw) {
        record::Framed::Frame { kind, payload, .. }
            if kind == record::Kind::Message as u8 && record::payload_id(payload) == id =>
        {
            record::split_message(payload).map(|(_, body)| {
                let start = body.as_ptr() as usize - raw.as_ptr() as usize;
                start..start + body.len()
            })
        }
        _ => None,
    };
    let Some(body) = body else {
        return Err(StoreError::Corrupt(format!(
            "message record of {id} fails its checksum"
        )));
    };
    raw.truncate(body.end);
    raw.drain(..body.start);
    Ok(raw)
}

fn take_lock(layout: &Layout) -> Result<File, StoreError> {
    let path = layout.store_lock();
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    // flock(2), held until `file` is closed.
    if file.try_lock().is_err() {
        return Err(StoreError::Locked(path));
    }
    Ok(file)
}

fn open_active(
    dir: &Path,
    index: &mut Index,
    last_len: u64,
    options: &StoreOptions,
) -> Result<Active, StoreError> {
    let existing = index.segments.keys().next_back().copied();
    let dsync = options.dsync_writes;
    let (number, file, len) = match existing {
        Some(n) => (n, segment::open_rw(dir, n, dsync), last_len),
        None if options.preallocate => (
            1,
            segment::create_zeroed(dir, 1, options.segment_size, dsync),
            0,
        ),
        None => (1, segment::create(dir, 1, dsync), 0),
    };
    let file = file.map_err(|e| StoreError::io(dir, e))?;
    index.grow_segment(number, len);
    Ok(Active {
        number,
        file: Arc::new(file),
        len,
    })
}

mod delay;
mod spare;
#[cfg(test)]
mod tests;

/// Unix seconds now (0 if the clock is before 1970).
fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
