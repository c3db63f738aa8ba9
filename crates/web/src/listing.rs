//! `GET /api/v1/queue`: one page of the queue, selected as `postsuper`'s selectors select
//! (`queue`, `from`, `to`, `domain`, `older_than`, `reason`; all must hold), in queue-ID
//! (arrival) order, with an opaque cursor for the next page.
//!
//! The cursor is the last queue ID of the page (`m.ID` once the listing has passed the
//! store and reads `maildrop/`); the next page starts right after it in the store's ordered
//! index ([`queue::Store::try_for_each_after`]), so it costs the same at any depth, and a
//! message that arrives or leaves between pages neither repeats nor shifts the others.

use crate::Daemon;
use admin::duration::parse_seconds;
use admin::row::State;
use admin::{Row, Selector};
use envelope::{QueueId, RecipientState};
use queue::Entry;
use serde::Serialize;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// After this stored message.
    Store(QueueId),
    /// After this maildrop file (the store is done).
    Maildrop(QueueId),
}

impl Cursor {
    fn parse(text: &str) -> Result<Cursor, String> {
        let bad = || format!("bad cursor {text:?}");
        match text.strip_prefix("m.") {
            Some(id) => QueueId::parse(id).map(Cursor::Maildrop).map_err(|_| bad()),
            None => QueueId::parse(text).map(Cursor::Store).map_err(|_| bad()),
        }
    }

    fn encode(self) -> String {
        match self {
            Cursor::Store(id) => id.to_string(),
            Cursor::Maildrop(id) => format!("m.{id}"),
        }
    }
}

/// A parsed listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub selector: Selector,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// Parses the query string strictly: an unknown parameter or a bad value is an error.
pub fn parse_query(query: &str) -> Result<Query, String> {
    let mut q = Query {
        selector: Selector::default(),
        limit: DEFAULT_LIMIT,
        cursor: None,
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let s = &mut q.selector;
        match key.as_ref() {
            "queue" => {
                for name in value.split(',') {
                    let state = State::parse(name).ok_or_else(|| {
                        format!(
                            "unknown queue {name:?} (maildrop, incoming, active, deferred, hold)"
                        )
                    })?;
                    s.queues.push(state);
                }
            }
            "from" => s.from = Some(value.into_owned()),
            "to" => s.to = Some(value.into_owned()),
            "domain" => s.domain = Some(value.into_owned()),
            "reason" => s.reason = Some(reason_pattern(&value)),
            "older_than" => s.older_than = Some(parse_seconds(&value)?),
            "limit" => q.limit = parse_limit(&value)?,
            "cursor" => q.cursor = Some(Cursor::parse(&value)?),
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(q)
}

/// `reason` is a regular expression; text that does not parse as one is matched literally
/// (as `grep -F` would), so `reason=(421` finds `(421 too many connections)` rather than
/// failing.
pub fn reason_pattern(text: &str) -> String {
    match regex::Regex::new(text) {
        Ok(_) => text.to_string(),
        Err(_) => regex::escape(text),
    }
}

fn parse_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("limit must be a number from 1 to {MAX_LIMIT}")),
    }
}

#[derive(Debug, Serialize)]
pub struct Page {
    pub messages: Vec<Row>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The page `q` asks for; an error is a bad selector (an invalid `reason` regex).
pub fn page(daemon: &dyn Daemon, q: &Query, now: u64) -> Result<Page, String> {
    let m = q.selector.compile(&State::ALL, now)?;
    let mut rows: Vec<Row> = Vec::with_capacity(q.limit.min(64));
    let mut more = false;
    if !matches!(q.cursor, Some(Cursor::Maildrop(_))) {
        let mut visit = |e: &Entry| -> Result<(), ()> {
            let state = State::of(e.meta.queue, daemon.is_active(e.id));
            let env = &e.meta.envelope;
            if !m.matches(state, env.arrival_time, &env.sender, open(e)) {
                return Ok(());
            }
            if rows.len() == q.limit {
                more = true;
                return Err(()); // the page is full and there is more
            }
            rows.push(Row::from_entry(e, state == State::Active));
            Ok(())
        };
        let _ = match q.cursor {
            Some(Cursor::Store(after)) => daemon.store().try_for_each_after(after, &mut visit),
            _ => daemon.store().try_for_each(&mut visit),
        };
    }
    let stored = rows.len();
    if !more && m.wants_state(State::Maildrop) {
        more = maildrop_rows(daemon, q, &m, &mut rows);
    }
    let next_cursor = match rows.last() {
        Some(last) if more => {
            let id = QueueId::parse(&last.queue_id).map_err(|e| e.to_string())?;
            Some(
                if rows.len() > stored {
                    Cursor::Maildrop(id)
                } else {
                    Cursor::Store(id)
                }
                .encode(),
            )
        }
        _ => None,
    };
    Ok(Page {
        messages: rows,
        next_cursor,
    })
}

/// Adds the matching maildrop files after the cursor; true if the page filled with more left.
fn maildrop_rows(
    daemon: &dyn Daemon,
    q: &Query,
    m: &admin::select::Matcher,
    rows: &mut Vec<Row>,
) -> bool {
    let dir = queue::Layout::new(daemon.queue_directory()).maildrop();
    let Ok(mut files) = submit::maildrop::ready_files(&dir) else {
        return false; // no maildrop (yet)
    };
    files.sort_by_key(|(id, _)| *id);
    let after = match q.cursor {
        Some(Cursor::Maildrop(id)) => Some(id),
        _ => None,
    };
    for (id, path) in files
        .into_iter()
        .filter(|(id, _)| after.is_none_or(|a| *id > a))
    {
        let Some(row) = Row::from_maildrop(id, &path) else {
            continue; // picked up meanwhile
        };
        let rcpts = row.recipients.iter().map(|r| (r.address.as_str(), ""));
        if m.matches(State::Maildrop, row.arrival_time, &row.sender, rcpts) {
            if rows.len() == q.limit {
                return true;
            }
            rows.push(row);
        }
    }
    false
}

/// Open recipients as `(address, deferral reason)`, as the admin engine matches them.
pub(crate) fn open(e: &Entry) -> impl Iterator<Item = (&str, &str)> + Clone {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_strictly() {
        let q =
            parse_query("queue=deferred,hold&domain=example.net&older_than=2h&limit=5").unwrap();
        assert_eq!(q.selector.queues, vec![State::Deferred, State::Hold]);
        assert_eq!(q.selector.domain.as_deref(), Some("example.net"));
        assert_eq!(q.selector.older_than, Some(7200));
        assert_eq!(q.limit, 5);
        for bad in [
            "queue=nope",
            "limit=0",
            "limit=1001",
            "limit=-1",
            "older_than=2y",
            "cursor=x",
            "frob=1",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
        let id = QueueId::generate();
        let q = parse_query(&format!("cursor=m.{id}")).unwrap();
        assert_eq!(q.cursor, Some(Cursor::Maildrop(id)));
        assert_eq!(Cursor::Maildrop(id).encode(), format!("m.{id}"));
    }
}
