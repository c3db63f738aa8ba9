//! Buffered, bounded, timed I/O on one client connection, plain or TLS.
//!
//! * Every read waits at most `smtpd_timeout`; a stall is [`ReadEnd::Timeout`].
//! * The input buffer never holds more than [`READ_CHUNK`] plus one line's worth of bytes:
//!   lines are framed with a bound (`line.rs`), message data is streamed through a decoder.
//! * Replies are collected and sent in one write just before the next read, which is what
//!   RFC 2920 PIPELINING asks of a server (and saves a syscall per pipelined command).
//! * STARTTLS upgrades the stream in place; whatever plaintext the client pipelined after
//!   the STARTTLS command is thrown away (the CVE-2011-0411 command injection).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use crate::line::{self, Frame};
use crate::reply::Reply;

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
    timeout: Duration,
}

impl Conn {
    pub fn new(stream: TcpStream, timeout: Duration) -> Conn {
        Conn {
            stream: Some(Stream::Plain(stream)),
            input: Vec::with_capacity(READ_CHUNK),
            start: 0,
            output: Vec::with_capacity(1024),
            timeout,
        }
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
        let stream = self.stream.as_mut().ok_or(ReadEnd::Lost)?;
        let write = async {
            stream.write_all(&self.output).await?;
            stream.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => {
                self.output.clear();
                Ok(())
            }
            Ok(Err(_)) => Err(ReadEnd::Lost),
            Err(_) => Err(ReadEnd::Timeout),
        }
    }

    /// Flushes, then reads at least one more byte. With `stop`, a daemon stop interrupts
    /// the wait.
    pub async fn fill(&mut self, stop: Option<&mut watch::Receiver<bool>>) -> Result<(), ReadEnd> {
        self.flush().await?;
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        self.input.reserve(READ_CHUNK);
        let stream = self.stream.as_mut().ok_or(ReadEnd::Lost)?;
        let read = tokio::time::timeout(self.timeout, stream.read_buf(&mut self.input));
        let outcome = match stop {
            Some(stop) => tokio::select! {
                r = read => r,
                _ = stop.wait_for(|stopping| *stopping) => return Err(ReadEnd::Shutdown),
            },
            None => read.await,
        };
        match outcome {
            Ok(Ok(0)) | Ok(Err(_)) => Err(ReadEnd::Lost),
            Ok(Ok(_)) => Ok(()),
            Err(_) => Err(ReadEnd::Timeout),
        }
    }

    /// The next command line (or an over-long line, skipped to its end).
    pub async fn read_line(&mut self, stop: &mut watch::Receiver<bool>) -> Result<Line, ReadEnd> {
        loop {
            match line::frame(self.buffered()) {
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
        loop {
            let (used, done) = sink(self.buffered());
            self.consume(used);
            if done {
                return Ok(());
            }
            self.fill(None).await?;
        }
    }

    /// Passes exactly `size` bytes to `sink` (BDAT).
    pub async fn read_exact_into(
        &mut self,
        mut size: u64,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), ReadEnd> {
        loop {
            let available = self
                .buffered()
                .len()
                .min(usize::try_from(size).unwrap_or(usize::MAX));
            sink(&self.buffered()[..available]);
            self.consume(available);
            size -= available as u64;
            if size == 0 {
                return Ok(());
            }
            self.fill(None).await?;
        }
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

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends what is queued and closes the write side, ignoring errors (the peer may be
    /// gone already).
    pub async fn close(mut self) {
        let _ = self.flush().await;
        if let Some(mut stream) = self.stream.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
        }
    }
}
