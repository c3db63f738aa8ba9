//! The daemon's side of the control socket (see `control.rs` for the protocol).

use config::Config;
use sched::QueueManager;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tracing::info;

/// Binds the socket. Only called while holding the store lock, so a leftover socket file
/// can only be a crashed daemon's and is safe to replace.
pub fn bind(cfg: &Config) -> std::io::Result<UnixListener> {
    let path = crate::control::socket_path(cfg);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn run(
    listener: UnixListener,
    qmgr: Arc<QueueManager>,
    reload: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = conn else { continue };
        let (qmgr, reload) = (qmgr.clone(), reload.clone());
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read.take(256));
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match line.trim() {
                "flush" => {
                    let n = qmgr.flush();
                    info!(target: "qmgr", "flush requested: {n} deferred messages due now");
                    format!("ok {n}\n")
                }
                "reload" => {
                    let _ = reload.send(()).await;
                    "ok\n".to_string()
                }
                "ping" => "ok\n".to_string(),
                other => format!("error unknown command {other:?}\n"),
            };
            let _ = write.write_all(answer.as_bytes()).await;
        });
    }
}
