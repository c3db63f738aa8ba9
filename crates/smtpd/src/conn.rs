//! Buffered, bounded, timed I/O on one client connection, plain or TLS.
//!
//! * Every read waits at most `smtpd_timeout`; a stall is [`ReadEnd::Timeout`]. With
//!   `smtpd_per_request_deadline` (Postfix's default under stress) the bound is for the whole
//!   request instead: a command line must be complete within `smtpd_timeout`, and DATA/BDAT
//!   earn one more second per `smtpd_min_data_rate` bytes (never more than `smtpd_timeout`
//!   ahead), so a client that trickles a byte at a time cannot hold its slot. The whole
//!   session ends at `smtpd_session_deadline`. All of these follow the stress flag as it
//!   changes, in the middle of a read too.
//! * A read that waits marks the session as waiting (`stress::Presence`), so the listener
//!   can evict the stalest session when a new client finds every slot taken.
//! * The input buffer never holds more than [`READ_CHUNK`] plus one line's worth of bytes:
//!   lines are framed with a bound (`proto::line`), message data is streamed through a decoder.
//! * Replies are collected and sent in one write just before the next read, which is what
//!   RFC 2920 PIPELINING asks of a server (and saves a syscall per pipelined command).
//! * STARTTLS upgrades the stream in place; whatever plaintext the client pipelined after
//!   the STARTTLS command is thrown away (the CVE-2011-0411 command injection).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use config::Stressed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use crate::stress::{Presence, StressFlag};
use proto::line::{self, Frame};
use proto::reply::Reply;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// The transport: plain TCP until STARTTLS, then TLS over the same socket.
pub type Stream = security::stream::MaybeTls<TlsStream<TcpStream>>;

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadEnd {
    /// The client closed or reset the connection.
    Lost,
    Timeout,
    /// The daemon is stopping (only while waiting for a command).
    Shutdown,
    /// The listener gave this stalled session's slot to a new client.
    Evicted,
}

/// The time limits of one connection ([`crate::SmtpdSettings::time_limits`]).
#[derive(Debug, Clone, Copy)]
pub struct TimeLimits {
    pub timeout: Stressed<Duration>,
    pub per_request: Stressed<bool>,
    pub min_data_rate: u64,
    pub session: Stressed<Duration>,
}

/// The request being received: when it began and the time DATA bytes earned.
#[derive(Debug, Clone, Copy)]
struct Request {
    started: Instant,
    earned: Duration,
}

/// One line framed from the input, see [`line::frame`].
#[derive(Debug)]
pub enum Line {
    Text {
        text: Vec<u8>,
        bare_lf: bool,
        bare_cr: bool,
        nul: bool,
    },
    TooLong,
}

pub struct Conn {
    /// `None` only during the STARTTLS handshake.
    stream: Option<Stream>,
    input: Vec<u8>,
    /// Start of unread input in `input`.
    start: usize,
    output: Vec<u8>,
    limits: TimeLimits,
    stress: StressFlag,
    presence: Arc<Presence>,
    opened: Instant,
    request: Option<Request>,
}

impl Conn {
    pub fn new(
        stream: TcpStream,
        limits: TimeLimits,
        stress: StressFlag,
        presence: Arc<Presence>,
    ) -> Conn {
        Conn {
            stream: Some(Stream::Plain(stream)),
            input: Vec::with_capacity(READ_CHUNK),
            start: 0,
            output: Vec::with_capacity(1024),
            limits,
            stress,
            presence,
            opened: Instant::now(),
            request: None,
        }
    }

    /// This session as the load registry sees it (for waits outside reads).
    pub fn presence(&self) -> Arc<Presence> {
        self.presence.clone()
    }

    /// The per-read (or per-request) timeout in the current stress state.
    pub fn timeout(&self) -> Duration {
        self.limits.timeout.get(self.stress.get())
    }

    /// How long the next read may wait: the timeout, cut by the request and session
    /// deadlines. Zero means a deadline has passed.
    fn read_limit(&self) -> Duration {
        let stress = self.stress.get();
        let timeout = self.limits.timeout.get(stress);
        let now = Instant::now();
        let session_end = self.opened + self.limits.session.get(stress);
        let mut limit = timeout.min(session_end.saturating_duration_since(now));
        if let (true, Some(request)) = (self.limits.per_request.get(stress), self.request) {
            let end = request.started + timeout + request.earned;
            limit = limit.min(end.saturating_duration_since(now));
        }
        limit
    }

    fn begin_request(&mut self) {
        if self.request.is_none() {
            self.request = Some(Request {
                started: Instant::now(),
                earned: Duration::ZERO,
            });
        }
    }

    fn end_request(&mut self) {
        self.request = None;
        self.presence.end_wait();
    }

    /// DATA/BDAT progress: `bytes` more earn time at `smtpd_min_data_rate`, and the
    /// session is not stalled.
    fn data_progress(&mut self, bytes: usize) {
        self.presence.end_wait();
        let rate = self.limits.min_data_rate;
        let timeout = self.timeout();
        if let Some(request) = self.request.as_mut() {
            request.earned += Duration::from_secs_f64(bytes as f64 / rate as f64);
            // Postfix: never more than smtpd_timeout ahead of now.
            let ahead = (request.started + timeout + request.earned)
                .saturating_duration_since(Instant::now());
            if ahead > timeout {
                request.earned -= (ahead - timeout).min(request.earned);
            }
        }
    }

    /// True when the client has sent input the server has not asked for yet: bytes
    /// buffered, or readable on the socket right now (checked without waiting).
    pub fn has_pending_input(&mut self) -> bool {
        if !self.buffered().is_empty() {
            return true;
        }
        let Some(stream) = self.stream.as_mut() else {
            return false;
        };
        self.input.reserve(READ_CHUNK);
        let mut read = pin!(stream.read_buf(&mut self.input));
        let mut context = Context::from_waker(Waker::noop());
        matches!(read.as_mut().poll(&mut context), Poll::Ready(Ok(n)) if n > 0)
    }

    /// Queues a reply; it is sent at the next read or [`Conn::flush`].
    pub fn reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.output);
    }

    /// Unread input.
    pub fn buffered(&self) -> &[u8] {
        &self.input[self.start..]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        }
    }

    /// Sends the queued replies (bounded by the timeout).
    pub async fn flush(&mut self) -> Result<(), ReadEnd> {
        if self.output.is_empty() {
            return Ok(());
        }
        let timeout = self.timeout();
        let stream = self.stream.as_mut().ok_or(ReadEnd::Lost)?;
        let write = async {
            stream.write_all(&self.output).await?;
            stream.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => {
                self.output.clear();
                Ok(())
            }
            Ok(Err(_)) => Err(ReadEnd::Lost),
            Err(_) => Err(ReadEnd::Timeout),
        }
    }

    /// Flushes, then reads at least one more byte. With `stop`, a daemon stop interrupts
    /// the wait. The session counts as waiting for its client meanwhile.
    pub async fn fill(&mut self, stop: Option<&mut watch::Receiver<bool>>) -> Result<(), ReadEnd> {
        self.flush().await?;
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        self.input.reserve(READ_CHUNK);
        self.presence.begin_wait();
        let outcome = self.read_some(stop).await;
        match outcome {
            Ok(0) => Err(ReadEnd::Lost),
            Ok(_) => Ok(()),
            Err(end) => Err(end),
        }
    }

    /// One read, bounded by [`Conn::read_limit`] as it is when the read starts and again
    /// whenever the stress flag changes.
    async fn read_some(
        &mut self,
        mut stop: Option<&mut watch::Receiver<bool>>,
    ) -> Result<usize, ReadEnd> {
        let presence = self.presence.clone();
        loop {
            let limit = self.read_limit();
            if limit.is_zero() {
                return Err(ReadEnd::Timeout);
            }
            let stream = self.stream.as_mut().ok_or(ReadEnd::Lost)?;
            let read = tokio::time::timeout(limit, stream.read_buf(&mut self.input));
            let stopping = async {
                match stop.as_mut() {
                    Some(stop) => {
                        let _ = stop.wait_for(|stopping| *stopping).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = read => return match r {
                    Ok(Ok(n)) => Ok(n),
                    Ok(Err(_)) => Err(ReadEnd::Lost),
                    Err(_) => Err(ReadEnd::Timeout),
                },
                _ = stopping => return Err(ReadEnd::Shutdown),
                _ = presence.evicted() => return Err(ReadEnd::Evicted),
                _ = self.stress.changed() => continue,
            }
        }
    }

    /// The next command line (or an over-long line, skipped to its end).
    pub async fn read_line(&mut self, stop: &mut watch::Receiver<bool>) -> Result<Line, ReadEnd> {
        self.begin_request();
        let line = self.frame_line(stop).await;
        self.end_request();
        line
    }

    async fn frame_line(&mut self, stop: &mut watch::Receiver<bool>) -> Result<Line, ReadEnd> {
        loop {
            match line::frame(self.buffered(), line::MAX_LINE) {
                Frame::Line {
                    content,
                    consumed,
                    bare_lf,
                    bare_cr,
                    nul,
                } => {
                    let text = self.buffered()[..content].to_vec();
                    self.consume(consumed);
                    return Ok(Line::Text {
                        text,
                        bare_lf,
                        bare_cr,
                        nul,
                    });
                }
                Frame::Incomplete => self.fill(Some(stop)).await?,
                Frame::TooLong => {
                    self.skip_long_line().await?;
                    return Ok(Line::TooLong);
                }
            }
        }
    }

    async fn skip_long_line(&mut self) -> Result<(), ReadEnd> {
        loop {
            let (drop, found) = line::skip_line(self.buffered());
            self.consume(drop);
            if found {
                return Ok(());
            }
            self.fill(None).await?;
        }
    }

    /// Feeds message data to `sink` until it reports the end (dot mode).
    pub async fn read_until_end(
        &mut self,
        mut sink: impl FnMut(&[u8]) -> (usize, bool),
    ) -> Result<(), ReadEnd> {
        self.begin_request();
        let result = loop {
            let (used, done) = sink(self.buffered());
            self.consume(used);
            if done {
                break Ok(());
            }
            if let Err(end) = self.fill_data().await {
                break Err(end);
            }
        };
        self.end_request();
        result
    }

    /// [`Conn::fill`] for message data, which earns time as it arrives.
    async fn fill_data(&mut self) -> Result<(), ReadEnd> {
        let before = self.buffered().len();
        self.fill(None).await?;
        let after = self.buffered().len();
        self.data_progress(after.saturating_sub(before));
        Ok(())
    }

    /// Passes exactly `size` bytes to `sink` (BDAT).
    pub async fn read_exact_into(
        &mut self,
        mut size: u64,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), ReadEnd> {
        self.begin_request();
        let result = loop {
            let available = self
                .buffered()
                .len()
                .min(usize::try_from(size).unwrap_or(usize::MAX));
            sink(&self.buffered()[..available]);
            self.consume(available);
            size -= available as u64;
            if size == 0 {
                break Ok(());
            }
            if let Err(end) = self.fill_data().await {
                break Err(end);
            }
        };
        self.end_request();
        result
    }

    /// Drops unread input; returns how many bytes there were.
    pub fn discard_input(&mut self) -> usize {
        let n = self.buffered().len();
        self.input.clear();
        self.start = 0;
        n
    }

    /// Takes the plain TCP stream for a TLS handshake (replies must be flushed first).
    pub fn take_plain(&mut self) -> Option<TcpStream> {
        match self.stream.take() {
            Some(Stream::Plain(tcp)) => Some(tcp),
            other => {
                self.stream = other;
                None
            }
        }
    }

    pub fn set_tls(&mut self, tls: TlsStream<TcpStream>) {
        self.stream = Some(Stream::Tls(Box::new(tls)));
    }

    /// Sends what is queued and closes the write side, ignoring errors (the peer may be
    /// gone already); TLS sends its close_notify first. The `shutdown(2)` is needed even
    /// for a plain socket: a close with unread input (a client that pipelined a command
    /// after the one we answer with 421) sends a RST instead of a FIN, and the client may
    /// then lose the 421 it had not read yet.
    pub async fn close(mut self) {
        let _ = self.flush().await;
        if let Some(mut stream) = self.stream.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
        }
    }
}
