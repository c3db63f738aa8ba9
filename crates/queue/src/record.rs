//! The on-disk record format of the message log.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "MRQ1"
//! 4       1     kind (1 = message, 2 = update, 3 = remove)
//! 5       3     reserved, zero
//! 8       4     payload length, little-endian
//! 12      4     CRC-32 of bytes 4..12 and the payload
//! 16      n     payload
//! ```
//! Message payload: 16-byte queue ID, 4-byte meta length, meta (JSON [`MessageMeta`]), message
//! bytes. Update payload: 16-byte queue ID, JSON [`Update`]. Remove payload: 16-byte queue ID,
//! UTF-8 reason.
//!
//! A record is valid only if magic, length and CRC all agree: a torn write (power loss in the
//! middle of a batch) fails the CRC and is treated as never written, which is correct because
//! no caller was acknowledged before the batch's fdatasync returned.

use crate::{QueueName, StoreError};
use envelope::{Envelope, QueueId, RecipientState};
use serde::{Deserialize, Serialize};

pub const MAGIC: [u8; 4] = *b"MRQ1";
pub const HEADER_LEN: usize = 16;
/// No single record may exceed this; a larger length field is corruption, not a message.
pub const MAX_PAYLOAD: usize = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Message = 1,
    Update = 2,
    Remove = 3,
}

/// Everything the index needs to know about a message besides its bytes. Written whole in a
/// message record, so a relocated (compacted) copy carries the full current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub envelope: Envelope,
    pub queue: QueueName,
    /// Unix seconds of the next delivery attempt (0 = now).
    pub next_attempt: u64,
    pub attempts: u32,
    /// The one "delayed mail" notice (`delay_warning_time`) has been sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delay_warned: bool,
    /// A change to another message that becomes durable in the same record as this one, so
    /// "queue the bounce and drop the original" or "queue the forward and mark the alias
    /// recipient sent" cannot be half done by a crash. Applied once, never relocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<FollowUp>,
}

/// See [`MessageMeta::follow_up`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FollowUp {
    /// Remove that message (this one replaces it: a bounce replacing a finished original).
    Remove(QueueId),
    /// Set these recipient states of that message (a forward marking its alias sent).
    SetRecipients(QueueId, Vec<(usize, RecipientState)>),
}

/// A change of state for one message: new recipient states, queue and retry time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    #[serde(default)]
    pub recipients: Vec<(usize, RecipientState)>,
    pub queue: QueueName,
    pub next_attempt: u64,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delay_warned: bool,
}

impl Update {
    /// An update that changes nothing yet: start from it and set what changes, e.g.
    /// `Update { queue: QueueName::Hold, ..Update::keep(&entry.meta) }`.
    pub fn keep(meta: &MessageMeta) -> Update {
        Update {
            recipients: Vec::new(),
            queue: meta.queue,
            next_attempt: meta.next_attempt,
            attempts: meta.attempts,
            delay_warned: meta.delay_warned,
        }
    }
}

/// A decoded record.
#[derive(Debug)]
pub enum Record<'a> {
    Message {
        id: QueueId,
        meta: MessageMeta,
        body: &'a [u8],
    },
    Update {
        id: QueueId,
        update: Update,
    },
    Remove {
        id: QueueId,
    },
}

/// CRC-32 over kind, reserved bytes, length and payload: every bit but the magic and the CRC.
fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.update(payload);
    hasher.finalize()
}

fn frame(kind: Kind, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(kind as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = checksum(&out[start + 4..start + 12], payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Encodes a message record; returns the offset of the message bytes within the output.
pub fn encode_message(id: QueueId, meta: &MessageMeta, body: &[u8], out: &mut Vec<u8>) -> usize {
    let meta_json = serde_json::to_vec(meta).expect("meta serializes");
    let mut payload = Vec::with_capacity(20 + meta_json.len() + body.len());
    payload.extend_from_slice(&id.as_u128().to_le_bytes());
    payload.extend_from_slice(&(meta_json.len() as u32).to_le_bytes());
    payload.extend_from_slice(&meta_json);
    let body_in_payload = payload.len();
    payload.extend_from_slice(body);
    let start = out.len();
    frame(Kind::Message, &payload, out);
    start + HEADER_LEN + body_in_payload
}

pub fn encode_update(id: QueueId, update: &Update, out: &mut Vec<u8>) {
    let mut payload = id.as_u128().to_le_bytes().to_vec();
    payload.extend_from_slice(&serde_json::to_vec(update).expect("update serializes"));
    frame(Kind::Update, &payload, out);
}

pub fn encode_remove(id: QueueId, reason: &str, out: &mut Vec<u8>) {
    let mut payload = id.as_u128().to_le_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    frame(Kind::Remove, &payload, out);
}

/// What [`decode`] found at an offset.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // short-lived, returned by value once per record
pub enum Decoded<'a> {
    /// A valid record and its total length on disk.
    Record(Record<'a>, usize),
    /// Not enough bytes for the header or the payload: the end of the log, or a torn tail.
    Incomplete,
    /// Bytes that are not a valid record (bad magic, kind, CRC or contents).
    Invalid,
}

/// Decodes the record at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    match frame_at(buf) {
        Framed::Frame { kind, payload, len } => match decode_payload(kind, payload) {
            Ok(record) => Decoded::Record(record, len),
            Err(_) => Decoded::Invalid,
        },
        Framed::Incomplete => Decoded::Incomplete,
        Framed::Invalid => Decoded::Invalid,
    }
}

/// What [`frame_at`] found: a record's frame checked (magic, length, CRC), its payload not
/// yet decoded. Lets a reader that needs only a few fields decode them alone (`census.rs`).
pub enum Framed<'a> {
    /// A frame whose checksum matches: its kind byte, payload (at least 16 bytes, the queue
    /// ID first) and total length on disk.
    Frame {
        kind: u8,
        payload: &'a [u8],
        len: usize,
    },
    Incomplete,
    Invalid,
}

/// Checks the frame of the record at the start of `buf`.
pub fn frame_at(buf: &[u8]) -> Framed<'_> {
    if buf.len() < HEADER_LEN {
        return Framed::Incomplete;
    }
    if buf[..4] != MAGIC {
        return Framed::Invalid;
    }
    let len = u32::from_le_bytes(buf[8..12].try_into().unwrap()) as usize;
    if !(16..=MAX_PAYLOAD).contains(&len) {
        return Framed::Invalid;
    }
    if buf.len() < HEADER_LEN + len {
        return Framed::Incomplete;
    }
    let payload = &buf[HEADER_LEN..HEADER_LEN + len];
    let crc = u32::from_le_bytes(buf[12..16].try_into().unwrap());
    if checksum(&buf[4..12], payload) != crc {
        return Framed::Invalid;
    }
    Framed::Frame {
        kind: buf[4],
        payload,
        len: HEADER_LEN + len,
    }
}

/// The queue ID that starts every payload (a [`Framed::Frame`]'s is at least 16 bytes).
pub fn payload_id(payload: &[u8]) -> QueueId {
    QueueId::from_u128(u128::from_le_bytes(payload[..16].try_into().unwrap()))
}

/// A message payload's meta JSON and message bytes, if the meta length fits.
pub fn split_message(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = payload.get(16..)?;
    let meta_len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let meta = rest.get(4..4usize.checked_add(meta_len)?)?;
    Some((meta, &rest[4 + meta_len..]))
}

/// True if `buf` is exactly one record whose length field alone is damaged: its header
/// claims more bytes than `buf` holds, yet the checksum matches with the length `buf` has.
/// Recovery uses it to tell a flipped length bit in the last record (damage) from a write
/// that never finished (a torn tail).
pub fn whole_but_for_its_length(buf: &[u8]) -> bool {
    if buf.len() < HEADER_LEN + 16 || buf[..4] != MAGIC {
        return false;
    }
    let Ok(actual) = u32::try_from(buf.len() - HEADER_LEN) else {
        return false;
    };
    let mut header = buf[4..12].to_vec();
    header[4..8].copy_from_slice(&actual.to_le_bytes());
    let crc = u32::from_le_bytes(buf[12..16].try_into().unwrap());
    checksum(&header, &buf[HEADER_LEN..]) == crc
}

fn decode_payload(kind: u8, payload: &[u8]) -> Result<Record<'_>, StoreError> {
    let id = payload_id(payload);
    let bad = |what: &str| StoreError::Corrupt(format!("{what} in record for {id}"));
    match kind {
        1 => {
            let (meta, body) = split_message(payload).ok_or_else(|| bad("short message meta"))?;
            let meta: MessageMeta = serde_json::from_slice(meta).map_err(|_| bad("bad meta"))?;
            Ok(Record::Message { id, meta, body })
        }
        2 => {
            let update = serde_json::from_slice(&payload[16..]).map_err(|_| bad("bad update"))?;
            Ok(Record::Update { id, update })
        }
        // The remove reason is for humans reading the log with a hex dump; not decoded.
        3 => Ok(Record::Remove { id }),
        _ => Err(bad("unknown record kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> MessageMeta {
        MessageMeta {
            envelope: Envelope::new("a@b", vec!["c@d".into()], 1),
            queue: QueueName::Incoming,
            next_attempt: 0,
            attempts: 0,
            delay_warned: false,
            follow_up: None,
        }
    }

    #[test]
    fn message_round_trip() {
        let id = QueueId::generate();
        let mut buf = Vec::new();
        let body_at = encode_message(id, &meta(), b"Subject: x\n\nhi\n", &mut buf);
        assert_eq!(&buf[body_at..], b"Subject: x\n\nhi\n");
        match decode(&buf) {
            Decoded::Record(Record::Message { id: got, body, .. }, n) => {
                assert_eq!(got, id);
                assert_eq!(body, b"Subject: x\n\nhi\n");
                assert_eq!(n, buf.len());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn records_written_before_the_filter_field_still_read() {
        // The meta JSON of an older mailroom: no `filter` key.
        let old = br#"{"envelope":{"sender":"a@b","recipients":[{"address":"c@d","state":"Pending"}],"arrival_time":1,"origin":"smtpd"},"queue":"incoming","next_attempt":0,"attempts":0}"#;
        let meta: MessageMeta = serde_json::from_slice(old).unwrap();
        assert_eq!(meta.envelope.filter, None);
        assert_eq!(meta.envelope.origin, "smtpd");
        // And a message without a FILTER is written as before, so an older reader is not
        // shown anything new.
        let written = serde_json::to_string(&self::meta()).unwrap();
        assert!(!written.contains("filter"), "{written}");
    }

    #[test]
    fn a_messages_filter_is_stored_with_it() {
        let mut filtered = meta();
        filtered.envelope.filter = Some("smtp:[127.0.0.1]:10026".into());
        let id = QueueId::generate();
        let mut buf = Vec::new();
        encode_message(id, &filtered, b"\nhi\n", &mut buf);
        match decode(&buf) {
            Decoded::Record(Record::Message { meta, .. }, _) => assert_eq!(meta, filtered),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn torn_and_flipped_records_are_detected() {
        let id = QueueId::generate();
        let mut buf = Vec::new();
        encode_remove(id, "deleted", &mut buf);
        for cut in 0..buf.len() {
            assert!(
                matches!(decode(&buf[..cut]), Decoded::Incomplete),
                "cut {cut}"
            );
        }
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(!matches!(decode(&bad), Decoded::Record(..)), "flip at {i}");
        }
    }

    #[test]
    fn a_damaged_length_field_is_told_from_a_torn_record() {
        let mut buf = Vec::new();
        encode_remove(QueueId::generate(), "done", &mut buf);
        assert!(!whole_but_for_its_length(&buf[..buf.len() - 1]), "torn");
        let mut bad = buf.clone();
        bad[9] ^= 0x01; // length now claims 256 more bytes than there are
        assert!(matches!(decode(&bad), Decoded::Incomplete));
        assert!(whole_but_for_its_length(&bad));
    }
}
