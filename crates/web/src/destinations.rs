//! Suspending and resuming a destination through the API: the same levers as
//! `postqueue -S/-U` and `mailroom suspend|resume` (the queue manager writes the durable
//! `suspended` file first, then holds the destination's mail back), so the page, the API
//! and the shell always agree on what is suspended.

use crate::routes::{error, json_answer, Answer};
use crate::Daemon;
use hyper::StatusCode;
use queue::SuspendError;
use serde::Deserialize;
use serde_json::json;
use std::sync::LazyLock;

/// What a destination may be, as the OpenAPI document's `pattern` says (kept equal by the
/// test below): a domain, or `[host]` / `[host]:port`. Checked before the scheduler's own
/// rules, so the document and the server accept exactly the same names.
const DESTINATION: &str = r"^(\[[A-Za-z0-9.:-]+\](:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?|[A-Za-z0-9._:-]*[A-Za-z0-9_:-][A-Za-z0-9._:-]*)$";

/// The longest `for_seconds` (100 years; the document's `maximum`).
const MAX_SECONDS: u64 = 3_153_600_000;

static DESTINATION_RE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(DESTINATION).expect("the destination pattern compiles"));

fn refuse_unless_destination(destination: &str) -> Option<Answer> {
    (!DESTINATION_RE.is_match(destination)).then(|| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("not a destination: {destination:?} (use a domain, or [host] or [host]:port)"),
        )
    })
}

/// The body of `POST /api/v1/destinations/{destination}/suspend` (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    /// Ends by itself after this many seconds (`--for`); absent: until resumed.
    pub for_seconds: Option<u64>,
    /// The operator's words, shown in mailq's reason.
    #[serde(default)]
    pub reason: String,
}

/// A path segment as the client meant it: `[mx.example.net]:25` arrives percent-encoded.
pub fn decode_segment(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

pub fn list(daemon: &dyn Daemon) -> Answer {
    json_answer(
        StatusCode::OK,
        &json!({ "suspended": daemon.suspensions() }),
    )
}

pub fn suspend(daemon: &dyn Daemon, destination: &str, body: &[u8]) -> Answer {
    if let Some(refusal) = refuse_unless_destination(destination) {
        return refusal;
    }
    let body: SuspendBody = if body.iter().all(u8::is_ascii_whitespace) {
        SuspendBody::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad JSON body: {e}")),
        }
    };
    // char::is_control is Unicode's Cc: U+0000-001F and U+007F-009F, the document's pattern.
    if body.reason.chars().count() > 500 || body.reason.chars().any(char::is_control) {
        return error(
            StatusCode::BAD_REQUEST,
            "reason must be one line of text without control characters, at most 500 characters",
        );
    }
    if body
        .for_seconds
        .is_some_and(|n| !(1..=MAX_SECONDS).contains(&n))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "for_seconds must be from 1 to 3153600000 (100 years)",
        );
    }
    match daemon.suspend(destination, body.for_seconds, &body.reason) {
        Ok(suspension) => json_answer(StatusCode::OK, &suspension),
        Err(e) => failure(&e),
    }
}

pub fn resume(daemon: &dyn Daemon, destination: &str) -> Answer {
    if let Some(refusal) = refuse_unless_destination(destination) {
        return refusal;
    }
    match daemon.resume(destination) {
        Ok(was) => json_answer(
            StatusCode::OK,
            &json!({ "destination": destination, "resumed": was }),
        ),
        Err(e) => failure(&e),
    }
}

/// A refused destination is the client's mistake (400); a suspension file that could not
/// be read or written is the server's (500), logged, as the client cannot fix it.
fn failure(e: &SuspendError) -> Answer {
    match e {
        SuspendError::Invalid(why) => error(StatusCode::BAD_REQUEST, why),
        SuspendError::Failed(why) => {
            tracing::error!(target: "http", "cannot change the suspended destinations: {why}");
            error(StatusCode::INTERNAL_SERVER_ERROR, why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bracketed_next_hop_is_decoded_from_its_path_segment() {
        assert_eq!(
            decode_segment("%5Bmx.example.net%5D%3A25").as_deref(),
            Some("[mx.example.net]:25")
        );
        assert_eq!(decode_segment("%FF"), None);
    }

    #[test]
    fn the_destination_rule_is_the_openapi_documents() {
        let doc: serde_json::Value =
            serde_json::from_slice(crate::assets::find("/api/v1/openapi.json").unwrap().1).unwrap();
        for path in ["suspend", "resume"] {
            let op = &doc["paths"][format!("/api/v1/destinations/{{destination}}/{path}")]["post"];
            assert_eq!(
                op["parameters"][0]["schema"]["pattern"], DESTINATION,
                "{path}"
            );
        }
        for good in [
            "example.net",
            "Example.NET.",
            "[mx.example.net]:25",
            "[127.0.0.1]:65535",
        ] {
            assert!(DESTINATION_RE.is_match(good), "{good}");
        }
        for bad in [
            "",
            "...",
            "a b",
            "[x]:0",
            "[x]:65536",
            "[x]:+25",
            "ä.example",
            " a",
        ] {
            assert!(!DESTINATION_RE.is_match(bad), "{bad}");
        }
    }
}
