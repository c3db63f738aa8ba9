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
//!   segment so that long-deferred mail does not pin the whole log.

use crate::index::{apply_update, Entry, Index, Location};
use crate::record::{self, Decoded, FollowUp, MessageMeta, Record, Update};
use crate::recovery::{self, RecoveryReport};
use crate::{segment, QueueName, StoreError};
use envelope::{Envelope, QueueId};
use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Tuning knobs; the defaults suit both a laptop and a busy relay.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_size: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_size: 16 << 20,
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
    /// Compaction: re-encoded by the leader with the state current at write time.
    Relocate {
        id: QueueId,
        body: Vec<u8>,
    },
}

struct Pending {
    seq: u64,
    bytes: Vec<u8>,
    change: Change,
}

struct Active {
    number: u64,
    file: Arc<File>,
    len: u64,
}

struct Commit {
    pending: Vec<Pending>,
    next_seq: u64,
    flushing: bool,
    results: HashMap<u64, Result<(), StoreError>>,
    active: Active,
    stats: CommitStats,
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
    flushed: Condvar,
    index: Mutex<Index>,
    files: Mutex<HashMap<u64, Arc<File>>>,
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
        let dir = queue_directory.join("store");
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let lock_file = take_lock(&dir)?;
        let mut index = Index::default();
        let corrupt = queue_directory.join("corrupt");
        let (report, last_len) = recovery::scan(&dir, &corrupt, &mut index, true)
            .map_err(|e| StoreError::io(&dir, e))?;
        index.pack();
        let active = open_active(&dir, &mut index, last_len)?;
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
                    next_seq: 0,
                    flushing: false,
                    results: HashMap::new(),
                    active,
                    stats: CommitStats::default(),
                }),
                flushed: Condvar::new(),
                index: Mutex::new(index),
                files: Mutex::new(files),
                _lock: lock_file,
            }),
        };
        store.delete_dead_segments();
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
        let meta = MessageMeta {
            envelope,
            queue: QueueName::Incoming,
            next_attempt: 0,
            attempts: 0,
            delay_warned: false,
            follow_up,
        };
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

    /// Reads a message's bytes back, verifying the record checksum.
    pub fn read_message(&self, id: QueueId) -> Result<Vec<u8>, StoreError> {
        let loc = self.get(id).ok_or(StoreError::NotFound(id))?.location;
        let file = lock(&self.inner.files)
            .get(&loc.segment)
            .cloned()
            .ok_or(StoreError::NotFound(id))?;
        read_body(&file, loc, id).map_err(|e| match e {
            StoreError::Io { message, .. } => StoreError::Io {
                path: segment::path(&self.inner.dir, loc.segment),
                message,
            },
            other => other,
        })
    }

    /// One compaction step: if the oldest closed segment is less than half live, relocate its
    /// live messages to the newest segment so it can be deleted. Returns messages moved.
    pub fn compact(&self) -> Result<usize, StoreError> {
        let active = lock(&self.inner.commit).active.number;
        let victims: Vec<QueueId> = {
            let index = lock(&self.inner.index);
            let Some((&oldest, stats)) = index.segments.iter().next() else {
                return Ok(0);
            };
            if oldest == active || stats.live == 0 || stats.live_bytes * 2 > stats.size {
                return Ok(0);
            }
            index.ids_in_segment(oldest)
        };
        let mut moved = 0;
        for id in victims {
            let body = match self.read_message(id) {
                Ok(b) => b,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            self.commit(Vec::new(), Change::Relocate { id, body })?;
            moved += 1;
        }
        self.delete_dead_segments();
        Ok(moved)
    }

    /// Pushes one record and waits until its batch is durable (group commit).
    fn commit(&self, bytes: Vec<u8>, change: Change) -> Result<(), StoreError> {
        self.commit_many(vec![(bytes, change)])
    }

    /// Pushes records together (they land in one batch, in order) and waits until all are
    /// durable. One result: they share one write and one fdatasync.
    fn commit_many(&self, items: Vec<(Vec<u8>, Change)>) -> Result<(), StoreError> {
        let inner = &self.inner;
        let mut state = lock(&inner.commit);
        let first = state.next_seq;
        for (bytes, change) in items {
            let seq = state.next_seq;
            state.next_seq += 1;
            state.pending.push(Pending { seq, bytes, change });
        }
        let last = state.next_seq;
        let mut outcome = Ok(());
        let mut waiting = last - first;
        loop {
            for seq in first..last {
                if let Some(result) = state.results.remove(&seq) {
                    waiting -= 1;
                    if let Err(e) = result {
                        outcome = Err(e);
                    }
                }
            }
            if waiting == 0 {
                return outcome;
            }
            if !state.flushing {
                state = self.lead_batch(state);
                continue;
            }
            state = inner.flushed.wait(state).unwrap_or_else(|p| p.into_inner());
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

    /// Writes and syncs everything pending as one batch, then applies it to the index.
    fn lead_batch<'a>(&'a self, mut state: MutexGuard<'a, Commit>) -> MutexGuard<'a, Commit> {
        let inner = &self.inner;
        let mut batch = std::mem::take(&mut state.pending);
        state.flushing = true;
        let file = state.active.file.clone();
        let base = state.active.len;
        let number = state.active.number;
        drop(state);

        let (buf, locations) = self.encode_batch(&mut batch, number, base);
        let result = segment::write_at(&file, &buf, base).and_then(|_| segment::data_sync(&file));
        let outcome = match result {
            Ok(()) => {
                self.apply_batch(&batch, &locations, number, base + buf.len() as u64);
                Ok(base + buf.len() as u64)
            }
            Err(e) => {
                // Cut the failed batch off so the log never holds a record whose writer was
                // told it failed; if even that fails, recovery's checksum handles the rest.
                let _ = file.set_len(base);
                Err(StoreError::io(&segment::path(&inner.dir, number), e))
            }
        };

        let mut state = lock(&inner.commit);
        for p in &batch {
            let r = outcome.as_ref().map(|_| ()).map_err(Clone::clone);
            state.results.insert(p.seq, r);
        }
        if let Ok(new_len) = outcome {
            state.stats.batches += 1;
            state.stats.records += batch.len() as u64;
            state.active.len = new_len;
            if new_len >= inner.options.segment_size {
                self.rotate(&mut state);
            }
        }
        state.flushing = false;
        inner.flushed.notify_all();
        state
    }

    /// Concatenates the batch; relocations are encoded here, by the only writer, from the
    /// index state plus the batch's earlier changes, so no update can be lost between a
    /// snapshot and its write.
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
                Change::Relocate { .. } => {}
            }
        }
        index.grow_segment(number, new_len);
    }

    /// Starts a new segment. On failure keeps appending to the current one (a big segment is
    /// harmless; refusing intake is not).
    fn rotate(&self, state: &mut Commit) {
        let inner = &self.inner;
        let number = state.active.number + 1;
        let Ok(file) = segment::create(&inner.dir, number) else {
            return;
        };
        let file = Arc::new(file);
        lock(&inner.files).insert(number, file.clone());
        lock(&inner.index).grow_segment(number, 0);
        state.active = Active {
            number,
            file,
            len: 0,
        };
    }

    /// Deletes the oldest segments while they hold no live message and are not the newest.
    fn delete_dead_segments(&self) {
        let inner = &self.inner;
        let active = lock(&inner.commit).active.number;
        loop {
            let victim = {
                let mut index = lock(&inner.index);
                match index.segments.iter().next() {
                    Some((&n, s)) if n != active && s.live == 0 => {
                        index.segments.remove(&n);
                        n
                    }
                    _ => return,
                }
            };
            lock(&inner.files).remove(&victim);
            let _ = fs::remove_file(segment::path(&inner.dir, victim));
        }
    }
}

/// Entries decoded per index lock in [`Store::for_each`].
pub(crate) const CHUNK: usize = 1024;

/// Walks entries chunk by chunk: `next(after)` returns the chunk after `after`.
pub(crate) fn chunked<E>(
    mut next: impl FnMut(Option<QueueId>) -> Vec<Entry>,
    mut f: impl FnMut(&Entry) -> Result<(), E>,
) -> Result<(), E> {
    let mut after = None;
    loop {
        let chunk = next(after);
        let Some(last) = chunk.last() else {
            return Ok(());
        };
        after = Some(last.id);
        chunk.iter().try_for_each(&mut f)?;
    }
}

fn read_body(file: &File, loc: Location, id: QueueId) -> Result<Vec<u8>, StoreError> {
    let raw = segment::read_at(file, loc.record_len as usize, loc.record_offset)
        .map_err(|e| StoreError::io(Path::new(""), e))?;
    match record::decode(&raw) {
        Decoded::Record(Record::Message { body, .. }, _) => Ok(body.to_vec()),
        _ => Err(StoreError::Corrupt(format!(
            "message record of {id} fails its checksum"
        ))),
    }
}

fn take_lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    // SAFETY: flock on a valid, owned file descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(StoreError::Locked(path));
    }
    Ok(file)
}

fn open_active(dir: &Path, index: &mut Index, last_len: u64) -> Result<Active, StoreError> {
    let existing = index.segments.keys().next_back().copied();
    let (number, file, len) = match existing {
        Some(n) => (n, segment::open_rw(dir, n), last_len),
        None => (1, segment::create(dir, 1), 0),
    };
    let file = file.map_err(|e| StoreError::io(dir, e))?;
    index.grow_segment(number, len);
    Ok(Active {
        number,
        file: Arc::new(file),
        len,
    })
}
