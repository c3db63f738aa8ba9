//! The frames on the socketpair between the daemon and the local delivery helper: no I/O
//! beyond reading and writing whole frames, so the codec is tested on its own.
//!
//! ```text
//!  u32  body length (big-endian), counting everything after these 4 bytes
//!  u64  request id: a response carries the id of its request
//!  u32  meta length, then the meta: one JSON value (request or response, see `wire.rs`)
//!  u32  blob count, then per blob: u32 length, bytes (message bodies, kept out of JSON)
//! ```
//!
//! The reader bounds what it allocates: a body longer than the reader's cap is drained
//! (read and dropped in chunks) and reported as [`Incoming::Oversized`] with its id, so the
//! helper can refuse that one request and keep serving the others; lengths inside a body
//! that disagree with the body's own length are a [`FrameError`], never a panic.

use std::io::{self, Read, Write};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Fixed part of a body: id, meta length, blob count.
const FIXED: usize = 8 + 4 + 4;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub id: u64,
    pub meta: Vec<u8>,
    pub blobs: Vec<Vec<u8>>,
}

/// What a read produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Frame(Frame),
    /// A body over the cap, drained; `len` is its declared length.
    Oversized {
        id: u64,
        len: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

impl Frame {
    /// The frame as bytes, length prefix included. Fails only for parts over 4 GiB.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let too_big = || FrameError::Malformed("part longer than 4 GiB");
        let len32 = |n: usize| u32::try_from(n).map_err(|_| too_big());
        let blob_bytes: usize = self.blobs.iter().map(|b| 4 + b.len()).sum();
        let body_len = FIXED + self.meta.len() + blob_bytes;
        let mut out = Vec::with_capacity(4 + body_len);
        out.extend_from_slice(&len32(body_len)?.to_be_bytes());
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&len32(self.meta.len())?.to_be_bytes());
        out.extend_from_slice(&self.meta);
        out.extend_from_slice(&len32(self.blobs.len())?.to_be_bytes());
        for blob in &self.blobs {
            out.extend_from_slice(&len32(blob.len())?.to_be_bytes());
            out.extend_from_slice(blob);
        }
        Ok(out)
    }

    /// Decodes a body (the bytes after the length prefix).
    pub fn decode_body(body: &[u8]) -> Result<Frame, FrameError> {
        let mut cursor = Cursor { rest: body };
        let id = u64::from_be_bytes(cursor.array()?);
        let meta_len = cursor.length()?;
        let meta = cursor.take(meta_len)?.to_vec();
        let count = cursor.length()?;
        // Each blob needs at least its 4 length bytes: a count beyond that is a lie, and
        // must not size an allocation.
        if count > cursor.rest.len() / 4 {
            return Err(FrameError::Malformed("blob count exceeds the frame"));
        }
        let mut blobs = Vec::with_capacity(count);
        for _ in 0..count {
            let len = cursor.length()?;
            blobs.push(cursor.take(len)?.to_vec());
        }
        if !cursor.rest.is_empty() {
            return Err(FrameError::Malformed("bytes after the last blob"));
        }
        Ok(Frame { id, meta, blobs })
    }
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if n > self.rest.len() {
            return Err(FrameError::Malformed("length exceeds the frame"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn length(&mut self) -> Result<usize, FrameError> {
        let n = u32::from_be_bytes(self.array()?);
        usize::try_from(n).map_err(|_| FrameError::Malformed("length does not fit"))
    }
}

/// Reads one frame; `Ok(None)` at a clean end of stream (between frames).
pub fn read_frame(reader: &mut impl Read, cap: usize) -> Result<Option<Incoming>, FrameError> {
    let mut prefix = [0u8; 4];
    if !read_prefix(reader, &mut prefix)? {
        return Ok(None);
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len < FIXED {
        return Err(FrameError::Malformed("body shorter than its fixed part"));
    }
    if len > cap {
        let mut id = [0u8; 8];
        reader.read_exact(&mut id)?;
        let rest = (len - 8) as u64;
        let drained = io::copy(&mut reader.take(rest), &mut io::sink())?;
        if drained != rest {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        let (id, len) = (u64::from_be_bytes(id), len as u64);
        return Ok(Some(Incoming::Oversized { id, len }));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    Frame::decode_body(&body).map(|f| Some(Incoming::Frame(f)))
}

/// Fills `prefix`; false if the stream ended before its first byte.
fn read_prefix(reader: &mut impl Read, prefix: &mut [u8; 4]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < prefix.len() {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The async twin of [`read_frame`] (the daemon's side), without a cap: the helper is the
/// more privileged side, and its replies are as large as the messages the daemon sent.
pub async fn read_frame_async(
    reader: &mut (impl AsyncRead + Unpin),
) -> Result<Option<Frame>, FrameError> {
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    reader.read_exact(&mut body).await?;
    Frame::decode_body(&body).map(Some)
}

/// Writes one encoded frame whole.
pub fn write_frame(writer: &mut impl Write, frame: &Frame) -> Result<(), FrameError> {
    writer.write_all(&frame.encode()?)?;
    Ok(writer.flush()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame {
            id: 0x0102_0304_0506_0708,
            meta: br#"{"reload":null}"#.to_vec(),
            blobs: vec![b"From: a\n\nbody\n".to_vec(), Vec::new()],
        }
    }

    #[test]
    fn frames_round_trip_back_to_back() {
        let second = Frame {
            id: 9,
            meta: Vec::new(),
            blobs: Vec::new(),
        };
        let mut bytes = frame().encode().unwrap();
        bytes.extend(second.encode().unwrap());
        let mut reader = &bytes[..];
        let read = |r: &mut &[u8]| read_frame(r, 1 << 20).unwrap();
        assert_eq!(read(&mut reader), Some(Incoming::Frame(frame())));
        assert_eq!(read(&mut reader), Some(Incoming::Frame(second)));
        assert_eq!(read(&mut reader), None, "clean end of stream");
    }

    #[test]
    fn oversized_body_is_drained_and_the_next_frame_still_read() {
        let mut big = frame();
        big.blobs[0] = vec![b'x'; 10_000];
        let mut bytes = big.encode().unwrap();
        bytes.extend(frame().encode().unwrap());
        let mut reader = &bytes[..];
        let first = read_frame(&mut reader, 1000).unwrap();
        let len = (big.encode().unwrap().len() - 4) as u64;
        assert_eq!(first, Some(Incoming::Oversized { id: big.id, len }));
        let second = read_frame(&mut reader, 1000).unwrap();
        assert_eq!(second, Some(Incoming::Frame(frame())));
    }

    #[test]
    fn end_of_stream_inside_a_frame_is_an_error_not_a_clean_end() {
        let bytes = frame().encode().unwrap();
        for cut in 1..bytes.len() {
            let mut reader = &bytes[..cut];
            assert!(read_frame(&mut reader, 1 << 20).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn lying_lengths_are_malformed_not_a_panic_or_a_huge_allocation() {
        let body = frame().encode().unwrap()[4..].to_vec();
        // Meta length past the end.
        let mut bad = body.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Frame::decode_body(&bad),
            Err(FrameError::Malformed(_))
        ));
        // Blob count of four billion in a small frame.
        let meta_len = frame().meta.len();
        let mut bad = body.clone();
        bad[12 + meta_len..16 + meta_len].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Frame::decode_body(&bad),
            Err(FrameError::Malformed(_))
        ));
        // Trailing garbage, and a body shorter than the fixed part.
        let mut bad = body.clone();
        bad.push(0);
        assert!(Frame::decode_body(&bad).is_err());
        let mut short = 3u32.to_be_bytes().to_vec();
        short.extend([0, 0, 0]);
        assert!(read_frame(&mut &short[..], 1 << 20).is_err());
    }

    #[test]
    fn random_bytes_never_panic_the_decoder() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let n = rng.usize(0..64);
            let bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            let _ = Frame::decode_body(&bytes);
            let _ = read_frame(&mut &bytes[..], 1 << 16);
        }
    }

    #[tokio::test]
    async fn async_reader_reads_what_the_writer_wrote() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, &frame()).unwrap();
        let mut reader = &bytes[..];
        assert_eq!(read_frame_async(&mut reader).await.unwrap(), Some(frame()));
        assert_eq!(read_frame_async(&mut reader).await.unwrap(), None);
    }
}
