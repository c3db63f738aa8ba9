//! The milter wire format, no I/O: a packet is a 4-byte big-endian length (counting the
//! command byte), one command byte, then the command's data (NUL-terminated strings and
//! big-endian 32-bit numbers). [`Command`] is what the MTA sends, [`Response`] what a milter
//! answers; [`decode_response`] never panics on any input (fuzzed in `fuzz/`).

/// Postfix refuses packets larger than this from a milter (`MILTER_CHUNK_SIZE` plus room
/// for the header name, well above any legitimate reply).
pub const MAX_PACKET: usize = 1 << 20;
/// A body chunk is at most this many bytes (`SMFIC_BODY`; the protocol's 64 KiB).
pub const BODY_CHUNK: usize = 65535;

/// Action flags (`SMFIF_*`): what the MTA lets the milter change.
pub mod action {
    pub const ADD_HEADERS: u32 = 0x01;
    pub const CHANGE_BODY: u32 = 0x02;
    pub const ADD_RCPT: u32 = 0x04;
    pub const DELETE_RCPT: u32 = 0x08;
    pub const CHANGE_HEADERS: u32 = 0x10;
    pub const QUARANTINE: u32 = 0x20;
    pub const CHANGE_FROM: u32 = 0x40;
    pub const ADD_RCPT_PAR: u32 = 0x80;
    pub const SET_SYMLIST: u32 = 0x100;
    /// Everything mailroom implements.
    pub const ALL: u32 = 0x1ff;
}

/// Protocol flags (`SMFIP_*`): stages the milter does not want, or answers not at all.
pub mod protocol {
    pub const NO_CONNECT: u32 = 0x1;
    pub const NO_HELO: u32 = 0x2;
    pub const NO_MAIL: u32 = 0x4;
    pub const NO_RCPT: u32 = 0x8;
    pub const NO_BODY: u32 = 0x10;
    pub const NO_HEADERS: u32 = 0x20;
    pub const NO_EOH: u32 = 0x40;
    pub const NR_HEADER: u32 = 0x80;
    pub const NO_UNKNOWN: u32 = 0x100;
    pub const NO_DATA: u32 = 0x200;
    pub const SKIP: u32 = 0x400;
    pub const RCPT_REJ: u32 = 0x800;
    pub const NR_CONNECT: u32 = 0x1000;
    pub const NR_HELO: u32 = 0x2000;
    pub const NR_MAIL: u32 = 0x4000;
    pub const NR_RCPT: u32 = 0x8000;
    pub const NR_DATA: u32 = 0x10000;
    pub const NR_UNKNOWN: u32 = 0x20000;
    pub const NR_EOH: u32 = 0x40000;
    pub const NR_BODY: u32 = 0x80000;
    pub const HEADER_LEADING_SPACE: u32 = 0x100000;
    /// What protocol 6 defines and mailroom honours (the MDS_* size flags are not offered).
    pub const ALL: u32 = 0x1fffff;
}

/// The stages a macro list belongs to (`SMFIM_*`), in the order of `SMFIC_OPTNEG`'s
/// symbol lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
    EndOfMessage,
    EndOfHeaders,
}

impl Stage {
    /// The command byte macros for this stage precede (`SMFIC_MACRO`'s first byte).
    pub fn command(self) -> u8 {
        match self {
            Stage::Connect => b'C',
            Stage::Helo => b'H',
            Stage::Mail => b'M',
            Stage::Rcpt => b'R',
            Stage::Data => b'T',
            Stage::EndOfMessage => b'E',
            Stage::EndOfHeaders => b'N',
        }
    }

    fn from_index(index: u32) -> Option<Stage> {
        Some(match index {
            0 => Stage::Connect,
            1 => Stage::Helo,
            2 => Stage::Mail,
            3 => Stage::Rcpt,
            4 => Stage::Data,
            5 => Stage::EndOfMessage,
            6 => Stage::EndOfHeaders,
            _ => return None,
        })
    }
}

/// The client's address as `SMFIC_CONNECT` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Family {
    /// `'U'`: unknown (local submission has no peer).
    Unknown,
    Inet4 {
        port: u16,
        address: String,
    },
    Inet6 {
        port: u16,
        address: String,
    },
}

/// What the MTA sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    OptionNegotiation {
        version: u32,
        actions: u32,
        protocol: u32,
    },
    Macros {
        stage: u8,
        pairs: Vec<(String, String)>,
    },
    Connect {
        hostname: String,
        family: Family,
    },
    Helo(String),
    /// `MAIL FROM`: the address in `<>`, then the ESMTP parameters.
    Mail(Vec<String>),
    Rcpt(Vec<String>),
    Data,
    Header {
        name: String,
        value: String,
    },
    EndOfHeaders,
    Body(Vec<u8>),
    EndOfMessage,
    Abort,
    Quit,
    /// `SMFIC_UNKNOWN`: an SMTP command the MTA does not know or implement, the whole line.
    Unknown(String),
}

/// What a milter answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    OptionNegotiation {
        version: u32,
        actions: u32,
        protocol: u32,
        /// `SMFIF_SETSYMLIST`: the macros the milter wants per stage, replacing ours.
        macros: Vec<(Stage, String)>,
    },
    Accept,
    Continue,
    Discard,
    Reject,
    Tempfail,
    /// `SMFIR_SHUTDOWN`: 421, and the SMTP session ends.
    Shutdown,
    /// `SMFIR_REPLYCODE`: `550 5.7.1 text` (possibly multi-line).
    ReplyCode(String),
    Progress,
    Skip,
    AddRecipient(String),
    AddRecipientWithArgs(String, String),
    DeleteRecipient(String),
    ReplaceBody(Vec<u8>),
    AddHeader {
        name: String,
        value: String,
    },
    InsertHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// 1-based among the headers of that name; an empty value deletes it.
    ChangeHeader {
        index: u32,
        name: String,
        value: String,
    },
    ChangeFrom(String, String),
    Quarantine(String),
}

/// A packet that cannot be a milter's reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {0} bytes is too large")]
    TooLarge(usize),
    #[error("empty packet")]
    Empty,
    #[error("unknown reply code {0:#04x}")]
    UnknownCode(u8),
    #[error("malformed {0} reply")]
    Malformed(&'static str),
}

impl Command {
    /// The whole packet: length, command byte, data.
    pub fn encode(&self) -> Vec<u8> {
        let mut data = Vec::new();
        let code = self.write_data(&mut data);
        let mut packet = Vec::with_capacity(data.len() + 5);
        packet.extend_from_slice(&((data.len() + 1) as u32).to_be_bytes());
        packet.push(code);
        packet.extend_from_slice(&data);
        packet
    }

    fn write_data(&self, out: &mut Vec<u8>) -> u8 {
        match self {
            Command::OptionNegotiation {
                version,
                actions,
                protocol,
            } => {
                for n in [version, actions, protocol] {
                    out.extend_from_slice(&n.to_be_bytes());
                }
                b'O'
            }
            Command::Macros { stage, pairs } => {
                out.push(*stage);
                for (name, value) in pairs {
                    push_str(out, name);
                    push_str(out, value);
                }
                b'D'
            }
            Command::Connect { hostname, family } => {
                push_str(out, hostname);
                match family {
                    Family::Unknown => out.push(b'U'),
                    Family::Inet4 { port, address } | Family::Inet6 { port, address } => {
                        out.push(if matches!(family, Family::Inet4 { .. }) {
                            b'4'
                        } else {
                            b'6'
                        });
                        out.extend_from_slice(&port.to_be_bytes());
                        push_str(out, address);
                    }
                }
                b'C'
            }
            Command::Helo(name) => {
                push_str(out, name);
                b'H'
            }
            Command::Mail(args) | Command::Rcpt(args) => {
                args.iter().for_each(|a| push_str(out, a));
                if matches!(self, Command::Mail(_)) {
                    b'M'
                } else {
                    b'R'
                }
            }
            Command::Data => b'T',
            Command::Header { name, value } => {
                push_str(out, name);
                push_str(out, value);
                b'L'
            }
            Command::EndOfHeaders => b'N',
            Command::Body(chunk) => {
                out.extend_from_slice(chunk);
                b'B'
            }
            Command::EndOfMessage => b'E',
            Command::Abort => b'A',
            Command::Quit => b'Q',
            Command::Unknown(line) => {
                push_str(out, line);
                b'U'
            }
        }
    }
}

/// A string on the wire: its bytes (a NUL inside would end it early, so it is dropped) and
/// the terminating NUL.
fn push_str(out: &mut Vec<u8>, text: &str) {
    out.extend(text.bytes().filter(|&b| b != 0));
    out.push(0);
}

/// The length of the next packet's body (command byte plus data) from its 4-byte header.
pub fn packet_length(header: [u8; 4]) -> Result<usize, DecodeError> {
    let length = u32::from_be_bytes(header) as usize;
    match length {
        0 => Err(DecodeError::Empty),
        n if n > MAX_PACKET => Err(DecodeError::TooLarge(n)),
        n => Ok(n),
    }
}

/// One reply from its body (command byte plus data, without the length header).
pub fn decode_response(body: &[u8]) -> Result<Response, DecodeError> {
    let (&code, data) = body.split_first().ok_or(DecodeError::Empty)?;
    let mut reader = Reader(data);
    Ok(match code {
        b'a' => Response::Accept,
        b'c' => Response::Continue,
        b'd' => Response::Discard,
        b'r' => Response::Reject,
        b't' => Response::Tempfail,
        b'4' => Response::Shutdown,
        b'p' => Response::Progress,
        b's' => Response::Skip,
        b'y' => Response::ReplyCode(reader.string("replycode")?),
        b'+' => Response::AddRecipient(reader.string("addrcpt")?),
        b'2' => {
            let address = reader.string("addrcpt_par")?;
            Response::AddRecipientWithArgs(address, reader.optional_string())
        }
        b'-' => Response::DeleteRecipient(reader.string("delrcpt")?),
        b'b' => Response::ReplaceBody(data.to_vec()),
        b'h' => {
            let name = reader.string("addheader")?;
            Response::AddHeader {
                name,
                value: reader.string("addheader")?,
            }
        }
        b'i' | b'm' => {
            let what = if code == b'i' {
                "insheader"
            } else {
                "chgheader"
            };
            let index = reader.number(what)?;
            let name = reader.string(what)?;
            // Some milters leave out the value of a deletion entirely.
            let value = reader.optional_string();
            match code {
                b'i' => Response::InsertHeader { index, name, value },
                _ => Response::ChangeHeader { index, name, value },
            }
        }
        b'e' => {
            let from = reader.string("chgfrom")?;
            Response::ChangeFrom(from, reader.optional_string())
        }
        b'q' => Response::Quarantine(reader.string("quarantine")?),
        b'O' => decode_negotiation(&mut reader)?,
        other => return Err(DecodeError::UnknownCode(other)),
    })
}

fn decode_negotiation(reader: &mut Reader<'_>) -> Result<Response, DecodeError> {
    let version = reader.number("optneg")?;
    let actions = reader.number("optneg")?;
    let protocol = reader.number("optneg")?;
    let mut macros = Vec::new();
    while !reader.0.is_empty() {
        let index = reader.number("optneg symlist")?;
        let names = reader.string("optneg symlist")?;
        if let Some(stage) = Stage::from_index(index) {
            macros.push((stage, names));
        }
    }
    Ok(Response::OptionNegotiation {
        version,
        actions,
        protocol,
        macros,
    })
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn number(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let Some((head, rest)) = self.0.split_first_chunk::<4>() else {
            return Err(DecodeError::Malformed(what));
        };
        self.0 = rest;
        Ok(u32::from_be_bytes(*head))
    }

    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Malformed(what))?;
        let text = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Ok(text)
    }

    /// A trailing string that may be missing (or lack its NUL).
    fn optional_string(&mut self) -> String {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        let text = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[(end + 1).min(self.0.len())..];
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_encode_as_the_protocol_says() {
        let optneg = Command::OptionNegotiation {
            version: 6,
            actions: 0x1ff,
            protocol: 0x1fffff,
        };
        assert_eq!(
            optneg.encode(),
            [0, 0, 0, 13, b'O', 0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff]
        );
        let connect = Command::Connect {
            hostname: "mx.example".into(),
            family: Family::Inet4 {
                port: 25,
                address: "192.0.2.1".into(),
            },
        };
        let mut expected = vec![0, 0, 0, 25, b'C'];
        expected.extend_from_slice(b"mx.example\x004\x00\x19192.0.2.1\x00");
        assert_eq!(connect.encode(), expected);
        let macros = Command::Macros {
            stage: b'C',
            pairs: vec![("j".into(), "mx".into())],
        };
        assert_eq!(macros.encode(), b"\0\0\0\x07DCj\0mx\0");
        assert_eq!(
            Command::Mail(vec!["<a@b>".into(), "SIZE=10".into()]).encode(),
            b"\0\0\0\x0fM<a@b>\0SIZE=10\0"
        );
        assert_eq!(Command::Quit.encode(), b"\0\0\0\x01Q");
        assert_eq!(
            Command::Unknown("XFOO bar".into()).encode(),
            b"\0\0\0\x0aUXFOO bar\0"
        );
    }

    #[test]
    fn replies_decode_with_their_data() {
        assert_eq!(decode_response(b"c"), Ok(Response::Continue));
        assert_eq!(decode_response(b"4"), Ok(Response::Shutdown));
        assert_eq!(
            decode_response(b"y550 5.7.1 Spam message rejected\0"),
            Ok(Response::ReplyCode(
                "550 5.7.1 Spam message rejected".into()
            ))
        );
        assert_eq!(
            decode_response(b"i\0\0\0\x00DKIM-Signature\0v=1\0"),
            Ok(Response::InsertHeader {
                index: 0,
                name: "DKIM-Signature".into(),
                value: "v=1".into()
            })
        );
        assert_eq!(
            decode_response(b"m\0\0\0\x01Subject\0"),
            Ok(Response::ChangeHeader {
                index: 1,
                name: "Subject".into(),
                value: String::new()
            })
        );
        assert_eq!(
            decode_response(b"e<x@y>\0"),
            Ok(Response::ChangeFrom("<x@y>".into(), String::new()))
        );
        let optneg = b"O\0\0\0\x06\0\0\0\x01\0\0\0\x10\0\0\0\x02{mail_addr} i\0";
        assert_eq!(
            decode_response(optneg),
            Ok(Response::OptionNegotiation {
                version: 6,
                actions: 1,
                protocol: 0x10,
                macros: vec![(Stage::Mail, "{mail_addr} i".into())]
            })
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        assert_eq!(decode_response(b""), Err(DecodeError::Empty));
        assert_eq!(
            decode_response(b"y no nul"),
            Err(DecodeError::Malformed("replycode"))
        );
        assert_eq!(
            decode_response(b"i\0\0"),
            Err(DecodeError::Malformed("insheader"))
        );
        assert_eq!(
            decode_response(b"O\0\0\0\x06"),
            Err(DecodeError::Malformed("optneg"))
        );
        assert_eq!(decode_response(b"Z"), Err(DecodeError::UnknownCode(b'Z')));
        assert_eq!(packet_length([0, 0, 0, 0]), Err(DecodeError::Empty));
        assert!(matches!(
            packet_length([0xff, 0, 0, 0]),
            Err(DecodeError::TooLarge(_))
        ));
    }
}
