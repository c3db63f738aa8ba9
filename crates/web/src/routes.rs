//! The URL table: which handler answers, what it needs ([`Need`]), and the JSON shapes of
//! answers and errors. Order of checks: unknown path 404, wrong method 405 (with `Allow`),
//! then access (401/403, before anything about the request is looked at), then the request
//! itself (400), then the work.
//!
//! | method | path | need |
//! | --- | --- | --- |
//! | GET | `/metrics` | open |
//! | GET | `/`, `/app.js`, `/app.css`, `/api/v1/openapi.json` (embedded files) | open |
//! | GET | `/api/v1/health` | open |
//! | GET | `/api/v1/queue` | loopback or token |
//! | GET | `/api/v1/queue/{id}` | token |
//! | POST | `/api/v1/queue/{id}/{hold,release,delete,requeue,flush}` | token |
//! | POST | `/api/v1/actions/{hold,release,delete,requeue,flush}` (JSON selector) | token |
//! | GET | `/api/v1/destinations/suspended` | loopback or token |
//! | GET | `/api/v1/history`, `/api/v1/qshape`, `/api/v1/reasons` (the page's summaries) | loopback or token |
//! | GET | `/api/v1/fleet` (the fleet as this node sees it; `{"fleet": false}` alone) | loopback or token |
//! | POST | `/api/v1/destinations/{destination}/{suspend,resume}` | token |

use crate::access::{Guard, Need};
use crate::actions::{self, Target, Verb};
use crate::{assets, destinations, listing, message, metrics, overview, Daemon};
use bytes::Bytes;
use envelope::QueueId;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Request bodies (a selector) are small; more is refused (413).
pub const MAX_BODY: usize = 64 << 10;

pub struct State {
    pub daemon: Arc<dyn Daemon>,
    pub guard: Guard,
    pub metrics: metrics::Cache,
    pub started: Instant,
}

pub type Answer = Response<Full<Bytes>>;

/// What a path is, before the method is looked at.
enum Route {
    Metrics,
    Asset(&'static str, &'static [u8]),
    Health,
    List,
    Message(String),
    Change(String, String),
    Action(String),
    Suspended,
    History,
    Qshape,
    Reasons,
    Fleet,
    Suspend(String),
    Resume(String),
}

impl Route {
    fn of(path: &str) -> Option<Route> {
        if let Some((kind, bytes)) = assets::find(path) {
            return Some(Route::Asset(kind, bytes));
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        Some(match parts.as_slice() {
            ["metrics"] => Route::Metrics,
            ["api", "v1", "health"] => Route::Health,
            ["api", "v1", "queue"] => Route::List,
            ["api", "v1", "queue", id] => Route::Message(id.to_string()),
            ["api", "v1", "queue", id, verb] => Route::Change(id.to_string(), verb.to_string()),
            ["api", "v1", "actions", verb] => Route::Action(verb.to_string()),
            ["api", "v1", "destinations", "suspended"] => Route::Suspended,
            ["api", "v1", "history"] => Route::History,
            ["api", "v1", "qshape"] => Route::Qshape,
            ["api", "v1", "reasons"] => Route::Reasons,
            ["api", "v1", "fleet"] => Route::Fleet,
            ["api", "v1", "destinations", dest, "suspend"] => {
                Route::Suspend(destinations::decode_segment(dest)?)
            }
            ["api", "v1", "destinations", dest, "resume"] => {
                Route::Resume(destinations::decode_segment(dest)?)
            }
            _ => return None,
        })
    }

    fn method(&self) -> Method {
        match self {
            Route::Change(..) | Route::Action(_) | Route::Suspend(_) | Route::Resume(_) => {
                Method::POST
            }
            _ => Method::GET,
        }
    }

    fn need(&self) -> Need {
        match self {
            Route::Metrics | Route::Asset(..) | Route::Health => Need::Open,
            Route::List
            | Route::Suspended
            | Route::History
            | Route::Qshape
            | Route::Reasons
            | Route::Fleet => Need::LocalOrToken,
            Route::Message(_)
            | Route::Change(..)
            | Route::Action(_)
            | Route::Suspend(_)
            | Route::Resume(_) => Need::Token,
        }
    }
}

/// Answers one request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>, client: IpAddr) -> Answer {
    let path = req.uri().path().to_string();
    let Some(route) = Route::of(&path) else {
        return error(StatusCode::NOT_FOUND, "no such resource");
    };
    if req.method() != route.method() {
        let mut answer = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        if let Ok(allow) = route.method().as_str().parse() {
            answer.headers_mut().insert(hyper::header::ALLOW, allow);
        }
        return answer;
    }
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let what = format!("{} {path}", req.method());
    if let Err(refusal) = state
        .guard
        .check(route.need(), client, authorization, &what)
    {
        return refused(refusal);
    }
    let query = req.uri().query().unwrap_or("").to_string();
    match route {
        Route::Asset(kind, bytes) => asset(kind, bytes),
        Route::Metrics => {
            let st = state.clone();
            blocking(move || {
                reply(
                    StatusCode::OK,
                    metrics::CONTENT_TYPE,
                    st.metrics.get(&*st.daemon).into(),
                )
            })
            .await
        }
        Route::Health => blocking(move || health(&state)).await,
        Route::List => list(state, &query).await,
        Route::Message(id) => show(state, &id).await,
        Route::Change(id, verb) => change(state, &id, &verb).await,
        Route::Action(verb) => action(state, &verb, req).await,
        Route::Suspended => blocking(move || destinations::list(&*state.daemon)).await,
        Route::History => {
            blocking(
                move || match overview::history(&*state.daemon, admin::duration::unix_now()) {
                    Ok(history) => json_answer(StatusCode::OK, &history),
                    Err(why) => error(StatusCode::INTERNAL_SERVER_ERROR, &why),
                },
            )
            .await
        }
        Route::Qshape => qshape(state, &query).await,
        Route::Reasons => {
            blocking(move || {
                let reasons = overview::reasons(&*state.daemon);
                json_answer(StatusCode::OK, &json!({ "reasons": reasons }))
            })
            .await
        }
        Route::Fleet => match state.daemon.fleet().await {
            Some(view) => json_answer(StatusCode::OK, &view),
            None => json_answer(StatusCode::OK, &json!({ "fleet": false })),
        },
        Route::Suspend(dest) => {
            let body = match body_of(req).await {
                Ok(body) => body,
                Err(answer) => return answer,
            };
            blocking(move || destinations::suspend(&*state.daemon, &dest, &body)).await
        }
        Route::Resume(dest) => blocking(move || destinations::resume(&*state.daemon, &dest)).await,
    }
}

/// A request's body, at most [`MAX_BODY`] bytes (413 otherwise).
async fn body_of(req: Request<Incoming>) -> Result<Bytes, Answer> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(_) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large or cut off",
        )),
    }
}

async fn list(state: Arc<State>, query: &str) -> Answer {
    let q = match listing::parse_query(query) {
        Ok(q) => q,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    blocking(
        move || match listing::page(&*state.daemon, &q, admin::duration::unix_now()) {
            Ok(page) => json_answer(StatusCode::OK, &page),
            Err(why) => error(StatusCode::BAD_REQUEST, &why),
        },
    )
    .await
}

async fn qshape(state: Arc<State>, query: &str) -> Answer {
    let q = match overview::parse_qshape(query) {
        Ok(q) => q,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    blocking(
        move || match overview::qshape(&*state.daemon, &q, admin::duration::unix_now()) {
            Ok(shape) => json_answer(StatusCode::OK, &shape),
            Err(why) => error(StatusCode::INTERNAL_SERVER_ERROR, &why),
        },
    )
    .await
}

/// An embedded file. The page's own files get a Content-Security-Policy that lets only
/// the daemon's own scripts and styles run (no inline script, no other origin), a second
/// wall behind the page's rule of inserting data only as text.
fn asset(kind: &str, bytes: &'static [u8]) -> Answer {
    let mut answer = reply(StatusCode::OK, kind, Bytes::from_static(bytes));
    answer.headers_mut().insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        hyper::header::HeaderValue::from_static(assets::POLICY),
    );
    answer
}

async fn show(state: Arc<State>, id: &str) -> Answer {
    let Ok(id) = QueueId::parse(id) else {
        return error(StatusCode::NOT_FOUND, "no such message");
    };
    blocking(move || match message::detail(&*state.daemon, id) {
        Ok(Some(detail)) => json_answer(StatusCode::OK, &detail),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such message"),
        Err(why) => error(StatusCode::INTERNAL_SERVER_ERROR, &why),
    })
    .await
}

/// `POST /api/v1/queue/{id}/{verb}`: 404 when the message is not queued.
async fn change(state: Arc<State>, id: &str, verb: &str) -> Answer {
    let Some(verb) = Verb::parse(verb) else {
        return error(StatusCode::NOT_FOUND, "no such action");
    };
    let Ok(id) = QueueId::parse(id) else {
        return error(StatusCode::NOT_FOUND, "no such message");
    };
    blocking(move || {
        if !state.daemon.store().contains(id) {
            return error(StatusCode::NOT_FOUND, "no such message");
        }
        outcome(actions::run(
            &*state.daemon,
            verb,
            &Target::id(id),
            admin::duration::unix_now(),
        ))
    })
    .await
}

/// `POST /api/v1/actions/{verb}` with a JSON [`Target`].
async fn action(state: Arc<State>, verb: &str, req: Request<Incoming>) -> Answer {
    let Some(verb) = Verb::parse(verb) else {
        return error(StatusCode::NOT_FOUND, "no such action");
    };
    let body = match body_of(req).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let target: Target = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad JSON body: {e}")),
    };
    blocking(move || {
        outcome(actions::run(
            &*state.daemon,
            verb,
            &target,
            admin::duration::unix_now(),
        ))
    })
    .await
}

fn outcome(result: Result<actions::Outcome, String>) -> Answer {
    match result {
        Ok(outcome) => json_answer(StatusCode::OK, &outcome),
        Err(why) => error(StatusCode::BAD_REQUEST, &why),
    }
}

fn health(state: &State) -> Answer {
    let daemon = &*state.daemon;
    let free = sys::free_space(&daemon.queue_directory()).ok();
    let minfree = daemon.queue_minfree();
    let dead: Vec<_> = daemon
        .dead_destinations()
        .into_iter()
        .map(|(destination, reason)| json!({"destination": destination, "reason": reason}))
        .collect();
    let below = free.is_some_and(|f| f.bytes < minfree);
    let body = json!({
        "status": if below { "degraded" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "messages": daemon.store().len(),
        "disk_free_bytes": free.map(|f| f.bytes),
        "queue_minfree_bytes": minfree,
        "intake": if below { "refused: below queue_minfree" } else { "open" },
        "dead_destinations": dead,
    });
    json_answer(StatusCode::OK, &body)
}

/// Runs store work on the blocking pool.
async fn blocking(work: impl FnOnce() -> Answer + Send + 'static) -> Answer {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))
}

fn refused(refusal: crate::access::Refusal) -> Answer {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut answer = error(status, refusal.why);
    if status == StatusCode::UNAUTHORIZED {
        let challenge = hyper::header::HeaderValue::from_static("Bearer realm=\"mailroom\"");
        answer
            .headers_mut()
            .insert(hyper::header::WWW_AUTHENTICATE, challenge);
    }
    answer
}

pub fn error(status: StatusCode, why: &str) -> Answer {
    json_answer(status, &json!({ "error": why }))
}

pub(crate) fn json_answer(status: StatusCode, value: &impl Serialize) -> Answer {
    match serde_json::to_vec(value) {
        Ok(body) => reply(status, "application/json", body.into()),
        Err(_) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            Bytes::from_static(b"{\"error\":\"cannot encode the answer\"}"),
        ),
    }
}

fn reply(status: StatusCode, kind: &str, body: Bytes) -> Answer {
    let mut answer = Response::new(Full::new(body));
    *answer.status_mut() = status;
    let headers = answer.headers_mut();
    if let Ok(kind) = kind.parse() {
        headers.insert(hyper::header::CONTENT_TYPE, kind);
    }
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_view_is_a_documented_listing_open_to_loopback() {
        let route = Route::of("/api/v1/fleet").expect("a route");
        assert!(matches!(route, Route::Fleet));
        assert_eq!(
            (route.method(), route.need()),
            (Method::GET, Need::LocalOrToken)
        );
        let doc: serde_json::Value =
            serde_json::from_slice(assets::find("/api/v1/openapi.json").unwrap().1).unwrap();
        let answer = &doc["paths"]["/api/v1/fleet"]["get"]["responses"]["200"];
        let schema = &answer["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(schema, "#/components/schemas/Fleet");
        let alone = &doc["components"]["schemas"]["Fleet"];
        assert_eq!(
            alone["required"],
            json!(["fleet"]),
            "{{\"fleet\": false}} is valid"
        );
    }
}
