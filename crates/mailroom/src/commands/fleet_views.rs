//! `mailq --fleet` and `qshape --fleet`: every live node's queue, merged. The nodes and
//! their API addresses come from their heartbeats in Redis (`mailroom fleet status`); each
//! node's queue is read page by page through its `GET /api/v1/queue` (hyper) (a node without
//! `http_listen` cannot be listed and is named on standard error). Bearer token: this
//! node's `http_admin_token_file`, when set (a non-loopback API needs it).

use crate::commands::fleet::read_status;
use admin::row::State;
use admin::Row;
use envelope::sysexits::{EX_SOFTWARE, EX_UNAVAILABLE};
use std::io::{self, BufWriter, Write};
use std::time::Duration;

/// Every live node's messages, with the node's name, in arrival order.
fn fleet_rows(cfg: &config::Config) -> Result<Vec<(String, Row)>, u8> {
    let status = read_status(cfg)?;
    let token = std::fs::read_to_string(&cfg.http_admin_token_file).ok();
    let token = token
        .as_deref()
        .and_then(|t| t.lines().next())
        .map(str::trim);
    let mut rows = Vec::new();
    for node in status.nodes.iter().filter(|n| n.live) {
        let name = &node.report.name;
        let Some(api) = &node.report.api else {
            eprintln!("mailq: warning: node {name} has no HTTP API (http_listen); its queue is not listed");
            continue;
        };
        let listed = node_rows(api, token).map_err(|e| {
            eprintln!("mailq: fatal: cannot list the queue of node {name} at {api}: {e}");
            EX_UNAVAILABLE
        })?;
        rows.extend(listed.into_iter().map(|r| (name.clone(), r)));
    }
    rows.sort_by_key(|(_, r)| (r.arrival_time, r.queue_id.clone()));
    Ok(rows)
}

/// One node's whole queue, following `next_cursor`.
fn node_rows(api: &str, token: Option<&str>) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/queue?limit=1000".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let body = get(api, &path, token)?;
        let page: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        for m in messages {
            rows.push(serde_json::from_value::<Row>(m).map_err(|e| e.to_string())?);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(rows),
        }
    }
}

/// `GET path` on `http://host:port` with hyper, on a small runtime of its own (the queue
/// tools are synchronous); 30 s for the whole exchange.
fn get(api: &str, path: &str, token: Option<&str>) -> Result<Vec<u8>, String> {
    let address = api
        .strip_prefix("http://")
        .unwrap_or(api)
        .trim_end_matches('/')
        .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let exchange = fetch(&address, path, token);
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .unwrap_or_else(|_| Err("no answer in 30 s".to_string()))
    })
}

async fn fetch(address: &str, path: &str, token: Option<&str>) -> Result<Vec<u8>, String> {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(connection);
    let mut request = hyper::Request::get(path).header(hyper::header::HOST, address);
    if let Some(t) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let request = request
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("HTTP request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = response.status();
    let body = response.into_body().collect().await;
    driver.abort();
    if status != hyper::StatusCode::OK {
        return Err(format!("HTTP status {status}"));
    }
    Ok(body.map_err(|e| format!("HTTP: {e}"))?.to_bytes().to_vec())
}

/// `mailq --fleet [--json]`: Postfix's layout over every node's queue; in JSON each
/// message also names its `node`.
pub fn mailq(cfg: &config::Config, json: bool) -> u8 {
    let rows = match fleet_rows(cfg) {
        Ok(rows) => rows,
        Err(code) => return code,
    };
    let out = BufWriter::new(io::stdout().lock());
    let written = if json {
        write_json(out, &rows)
    } else {
        let mut text = admin::showq::TextWriter::new(out);
        let listed = if rows.is_empty() {
            Ok(())
        } else {
            text.heading()
        };
        listed
            .and_then(|()| rows.iter().try_for_each(|(_, r)| text.row(r)))
            .and_then(|()| text.finish().map(drop))
    };
    finish(written)
}

fn write_json(mut out: impl Write, rows: &[(String, Row)]) -> io::Result<()> {
    for (node, row) in rows {
        let mut value = serde_json::to_value(row).map_err(io::Error::other)?;
        value["node"] = serde_json::Value::String(node.clone());
        serde_json::to_writer(&mut out, &value).map_err(io::Error::other)?;
        writeln!(out)?;
    }
    out.flush()
}

/// `qshape --fleet`: the age distribution over every node's queues named.
pub fn qshape(
    cfg: &config::Config,
    options: admin::qshape::Options,
    queues: &[State],
    json: bool,
) -> u8 {
    let rows = match fleet_rows(cfg) {
        Ok(rows) => rows,
        Err(code) => return code,
    };
    let width = options.width;
    let mut counter = admin::qshape::Counter::new(options, admin::duration::unix_now());
    for (_, r) in rows.iter().filter(|(_, r)| queues.contains(&r.queue_name)) {
        counter.add(
            r.arrival_time,
            &r.sender,
            r.recipients.iter().map(|x| x.address.as_str()),
        );
    }
    let shape = counter.finish();
    let mut out = io::stdout().lock();
    let written = match json {
        true => serde_json::to_writer(&mut out, &shape)
            .map_err(io::Error::other)
            .and_then(|()| writeln!(out)),
        false => admin::qshape::write_text(&mut out, &shape, width),
    };
    finish(written)
}

fn finish(written: io::Result<()>) -> u8 {
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => EX_SOFTWARE,
        _ => 0,
    }
}
