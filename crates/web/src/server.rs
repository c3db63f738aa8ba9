//! Binding (as root, before the privilege drop, like smtpd's listeners) and the accept
//! loop: HTTP/1.1 with keep-alive via hyper, at most [`MAX_CONNECTIONS`] at once, each
//! given [`HEADER_TIMEOUT`] to send its request head and [`CONNECTION_LIFETIME`] in all, so
//! idle or slow clients cannot hold the server.

use crate::access::Guard;
use crate::routes::{self, State};
use crate::{metrics, Daemon, Settings};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn};

pub const MAX_CONNECTIONS: usize = 64;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Binds every `http_listen` address (none when the server is off).
pub fn bind(settings: &Settings) -> Result<Vec<TcpListener>, String> {
    settings
        .listen
        .iter()
        .map(|addr| {
            let listener = TcpListener::bind(addr)
                .map_err(|e| format!("cannot listen on http_listen {addr}: {e}"))?;
            listener
                .set_nonblocking(true)
                .map_err(|e| format!("http_listen {addr}: {e}"))?;
            Ok(listener)
        })
        .collect()
}

/// Serves until `stop` turns true.
pub async fn serve(
    listeners: Vec<TcpListener>,
    daemon: Arc<dyn Daemon>,
    settings: Settings,
    stop: watch::Receiver<bool>,
) {
    let state = Arc::new(State {
        daemon,
        guard: Guard::new(settings.token),
        metrics: metrics::Cache::new(),
        started: Instant::now(),
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = Vec::new();
    for listener in listeners {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                if let Ok(addr) = listener.local_addr() {
                    info!(target: "http", "listening on http://{addr}/ (metrics, API)");
                }
                tasks.push(tokio::spawn(accept(
                    listener,
                    state.clone(),
                    slots.clone(),
                    stop.clone(),
                )));
            }
            Err(e) => warn!(target: "http", "cannot use an http_listen socket: {e}"),
        }
    }
    for task in tasks {
        let _ = task.await;
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, peer)) = accepted else {
            continue; // a connection reset before accept, or out of descriptors for a moment
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream); // full: the client retries, as an SMTP client would
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(routes::handle(state, req, peer.ip()).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(slot);
        });
    }
}
