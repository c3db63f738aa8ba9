//! What the frames mean: the requests the daemon sends and the helper's replies, as typed
//! values, with message bodies carried as blobs beside the JSON meta (`frame.rs`).

use super::frame::{Frame, FrameError};
use crate::local::{Delivery, Resubmission};
use envelope::{Envelope, Outcome, QueueId};
use serde::{Deserialize, Serialize};

/// Daemon → helper.
// One request at a time crosses the socket and none is kept in bulk, so the size of the
// Deliver variant (an envelope inline) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Deliver `message` to these recipients (indexes into `envelope.recipients`).
    Deliver {
        queue_id: QueueId,
        envelope: Envelope,
        recipients: Vec<usize>,
        message: Vec<u8>,
    },
    /// Re-read the configuration file and the alias files (the daemon got SIGHUP). The
    /// helper reads them itself; the request carries no configuration.
    Reload,
}

/// Helper → daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Delivered(Delivery),
    /// The request was refused as a whole (too large, malformed): every recipient gets
    /// this status (a 5.x.x bounces, anything else defers).
    Refused {
        dsn: String,
        text: String,
    },
    /// The outcome of a reload: `None` when the new configuration is in use.
    Reloaded {
        error: Option<String>,
    },
}

#[derive(Serialize, Deserialize)]
enum RequestMeta {
    Deliver {
        queue_id: QueueId,
        envelope: Envelope,
        recipients: Vec<usize>,
    },
    Reload,
}

#[derive(Serialize, Deserialize)]
enum ResponseMeta {
    Delivered {
        outcomes: Vec<Outcome>,
        /// One per blob, in order.
        resubmit: Vec<ResubmitMeta>,
    },
    Refused {
        dsn: String,
        text: String,
    },
    Reloaded {
        error: Option<String>,
    },
}

#[derive(Serialize, Deserialize)]
struct ResubmitMeta {
    for_recipient: usize,
    sender: String,
    recipients: Vec<String>,
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs (strings, numbers, vectors) cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn parse<'a, T: Deserialize<'a>>(meta: &'a [u8]) -> Result<T, FrameError> {
    serde_json::from_slice(meta).map_err(|_| FrameError::Malformed("meta is not a known message"))
}

impl Request {
    pub fn into_frame(self, id: u64) -> Frame {
        let (meta, blobs) = match self {
            Request::Deliver {
                queue_id,
                envelope,
                recipients,
                message,
            } => {
                let meta = RequestMeta::Deliver {
                    queue_id,
                    envelope,
                    recipients,
                };
                (json(&meta), vec![message])
            }
            Request::Reload => (json(&RequestMeta::Reload), Vec::new()),
        };
        Frame { id, meta, blobs }
    }

    pub fn from_frame(frame: Frame) -> Result<Request, FrameError> {
        let mut blobs = frame.blobs.into_iter();
        match (parse(&frame.meta)?, blobs.next(), blobs.next()) {
            (
                RequestMeta::Deliver {
                    queue_id,
                    envelope,
                    recipients,
                },
                Some(message),
                None,
            ) => Ok(Request::Deliver {
                queue_id,
                envelope,
                recipients,
                message,
            }),
            (RequestMeta::Reload, None, None) => Ok(Request::Reload),
            _ => Err(FrameError::Malformed("wrong number of blobs")),
        }
    }
}

impl Response {
    pub fn into_frame(self, id: u64) -> Frame {
        let (meta, blobs) = match self {
            Response::Delivered(delivery) => {
                let (metas, blobs) = delivery
                    .resubmit
                    .into_iter()
                    .map(|r| {
                        let meta = ResubmitMeta {
                            for_recipient: r.for_recipient,
                            sender: r.sender,
                            recipients: r.recipients,
                        };
                        (meta, r.message)
                    })
                    .unzip();
                let meta = ResponseMeta::Delivered {
                    outcomes: delivery.outcomes,
                    resubmit: metas,
                };
                (json(&meta), blobs)
            }
            Response::Refused { dsn, text } => (json(&ResponseMeta::Refused { dsn, text }), vec![]),
            Response::Reloaded { error } => (json(&ResponseMeta::Reloaded { error }), vec![]),
        };
        Frame { id, meta, blobs }
    }

    pub fn from_frame(frame: Frame) -> Result<Response, FrameError> {
        match parse(&frame.meta)? {
            ResponseMeta::Delivered { outcomes, resubmit } => {
                if resubmit.len() != frame.blobs.len() {
                    return Err(FrameError::Malformed("wrong number of blobs"));
                }
                let resubmit = resubmit
                    .into_iter()
                    .zip(frame.blobs)
                    .map(|(m, message)| Resubmission {
                        for_recipient: m.for_recipient,
                        sender: m.sender,
                        recipients: m.recipients,
                        message,
                    })
                    .collect();
                Ok(Response::Delivered(Delivery { outcomes, resubmit }))
            }
            ResponseMeta::Refused { dsn, text } => Ok(Response::Refused { dsn, text }),
            ResponseMeta::Reloaded { error } => Ok(Response::Reloaded { error }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip_request(request: Request) -> Request {
        let bytes = request.into_frame(5).encode().unwrap();
        let frame = Frame::decode_body(&bytes[4..]).unwrap();
        assert_eq!(frame.id, 5);
        Request::from_frame(frame).unwrap()
    }

    #[test]
    fn requests_round_trip_with_binary_bodies() {
        let envelope = Envelope::new("a@x", vec!["b@localhost".into()], 1);
        let deliver = Request::Deliver {
            queue_id: QueueId::generate(),
            envelope,
            recipients: vec![0],
            message: vec![0, 255, b'\n', b'\r'],
        };
        assert_eq!(round_trip_request(deliver.clone()), deliver);
        assert_eq!(round_trip_request(Request::Reload), Request::Reload);
    }

    #[test]
    fn responses_round_trip_with_resubmissions_in_order() {
        let delivery = Delivery {
            outcomes: vec![Outcome::sent(0, "local", "delivered to mailbox")],
            resubmit: vec![
                Resubmission {
                    for_recipient: 0,
                    sender: "s@x".into(),
                    recipients: vec!["r@y".into()],
                    message: b"one".to_vec(),
                },
                Resubmission {
                    for_recipient: 1,
                    sender: String::new(),
                    recipients: vec![],
                    message: b"two".to_vec(),
                },
            ],
        };
        for response in [
            Response::Delivered(delivery),
            Response::Refused {
                dsn: "5.3.4".into(),
                text: "too big".into(),
            },
            Response::Reloaded { error: None },
        ] {
            let frame = response.clone().into_frame(1);
            assert_eq!(Response::from_frame(frame).unwrap(), response);
        }
    }

    #[test]
    fn a_deliver_request_without_its_message_is_malformed() {
        let mut frame = Request::Deliver {
            queue_id: QueueId::generate(),
            envelope: Envelope::new("", vec![], 0),
            recipients: vec![],
            message: vec![],
        }
        .into_frame(1);
        frame.blobs.clear();
        assert!(Request::from_frame(frame).is_err());
        let garbage = Frame {
            id: 1,
            meta: b"{\"Unknown\":1}".to_vec(),
            blobs: vec![],
        };
        assert!(Request::from_frame(garbage).is_err());
    }
}
