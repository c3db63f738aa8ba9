//! One connection to one milter: connect (`connect_timeout`), negotiate (`SMFIC_OPTNEG`),
//! then one command at a time, each answer awaited within `command_timeout`
//! (`content_timeout` for headers, body and end of message). Commands the milter said it
//! does not want (`SMFIP_NO*`) are not sent; commands it does not answer (`SMFIP_NR_*`)
//! are sent without waiting. `SMFIR_PROGRESS` restarts the wait.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::codec::{self, action, protocol, Command, Response, Stage};
use crate::spec::{Endpoint, MilterSpec};

/// Why a conversation with a milter failed (the `milter_default_action` then applies).
#[derive(Debug, thiserror::Error)]
pub enum MilterError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("timeout while connecting")]
    ConnectTimeout,
    #[error("timeout while waiting for the reply to {0}")]
    Timeout(&'static str),
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// A negotiated connection.
pub struct Connection {
    stream: Box<dyn Stream>,
    command_timeout: Duration,
    content_timeout: Duration,
    /// The milter's protocol flags (what it skips, what it does not answer).
    pub protocol: u32,
    /// What the milter may change.
    pub actions: u32,
    /// The macros the milter asked for per stage (`SMFIF_SETSYMLIST`), replacing ours.
    pub wanted_macros: Vec<(Stage, String)>,
}

/// Opens and negotiates a connection.
pub async fn open(spec: &MilterSpec) -> Result<Connection, MilterError> {
    let stream = tokio::time::timeout(spec.connect_timeout, connect(&spec.endpoint))
        .await
        .map_err(|_| MilterError::ConnectTimeout)?
        .map_err(MilterError::Connect)?;
    let mut connection = Connection {
        stream,
        command_timeout: spec.command_timeout,
        content_timeout: spec.content_timeout,
        protocol: 0,
        actions: 0,
        wanted_macros: Vec::new(),
    };
    connection.negotiate(spec.protocol).await?;
    Ok(connection)
}

async fn connect(endpoint: &Endpoint) -> std::io::Result<Box<dyn Stream>> {
    Ok(match endpoint {
        Endpoint::Inet { host, port } => {
            Box::new(TcpStream::connect((host.as_str(), *port)).await?)
        }
        Endpoint::Unix(path) => Box::new(UnixStream::connect(path).await?),
    })
}

impl Connection {
    async fn negotiate(&mut self, version: u32) -> Result<(), MilterError> {
        let offer = Command::OptionNegotiation {
            version,
            actions: action::ALL,
            protocol: protocol::ALL,
        };
        self.write(&offer).await?;
        match self
            .read(self.command_timeout, "option negotiation")
            .await?
        {
            Response::OptionNegotiation {
                version: theirs,
                actions,
                protocol: flags,
                macros,
            } => {
                if theirs < 2 {
                    return Err(MilterError::Protocol(format!(
                        "unsupported protocol version {theirs}"
                    )));
                }
                // Whatever the milter claims, it gets only what we offered.
                self.actions = actions & action::ALL;
                self.protocol = flags & protocol::ALL;
                // SMFIC_UNKNOWN came with protocol 3, SMFIC_DATA with 4 (Postfix's
                // MILTER8_V3/V4_PROTO_MASK): not for older ones.
                let spoken = theirs.min(version);
                if spoken < 3 {
                    self.protocol |= protocol::NO_UNKNOWN;
                }
                if spoken < 4 {
                    self.protocol |= protocol::NO_DATA;
                }
                self.wanted_macros = macros;
                Ok(())
            }
            other => Err(MilterError::Protocol(format!(
                "bad option negotiation reply {other:?}"
            ))),
        }
    }

    /// Whether the milter set `flag` (`SMFIP_NO*`: it does not want that command).
    pub fn skips(&self, flag: u32) -> bool {
        self.protocol & flag != 0
    }

    /// Sends a command without waiting (macros, or a `SMFIP_NR_*` command).
    pub async fn send(&mut self, command: &Command) -> Result<(), MilterError> {
        self.write(command).await
    }

    /// Sends a command and returns its answer, waiting through `SMFIR_PROGRESS`.
    /// `content` selects `content_timeout`.
    pub async fn ask(
        &mut self,
        command: &Command,
        what: &'static str,
        content: bool,
    ) -> Result<Response, MilterError> {
        self.write(command).await?;
        self.answer(what, content).await
    }

    /// Reads the next reply other than `SMFIR_PROGRESS`.
    pub async fn answer(
        &mut self,
        what: &'static str,
        content: bool,
    ) -> Result<Response, MilterError> {
        let limit = if content {
            self.content_timeout
        } else {
            self.command_timeout
        };
        loop {
            match self.read(limit, what).await? {
                Response::Progress => continue,
                other => return Ok(other),
            }
        }
    }

    /// Ends the conversation politely (`SMFIC_QUIT`); errors no longer matter.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(self.command_timeout, self.write(&Command::Quit)).await;
        let _ = self.stream.shutdown().await;
    }

    async fn write(&mut self, command: &Command) -> Result<(), MilterError> {
        let packet = command.encode();
        let write = async {
            self.stream.write_all(&packet).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.command_timeout, write).await {
            Ok(result) => result.map_err(|e| MilterError::Io("write", e)),
            Err(_) => Err(MilterError::Timeout("write")),
        }
    }

    async fn read(&mut self, limit: Duration, what: &'static str) -> Result<Response, MilterError> {
        let read = async {
            let mut header = [0u8; 4];
            self.stream
                .read_exact(&mut header)
                .await
                .map_err(|e| MilterError::Io("read", e))?;
            let length =
                codec::packet_length(header).map_err(|e| MilterError::Protocol(e.to_string()))?;
            let mut body = vec![0u8; length];
            self.stream
                .read_exact(&mut body)
                .await
                .map_err(|e| MilterError::Io("read", e))?;
            codec::decode_response(&body).map_err(|e| MilterError::Protocol(e.to_string()))
        };
        tokio::time::timeout(limit, read)
            .await
            .map_err(|_| MilterError::Timeout(what))?
    }
}
