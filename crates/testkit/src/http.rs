//! The daemon's HTTP server from a test: [`HttpApi`] picks a free loopback port and an admin
//! token (in its own temp file), gives the TOML lines that turn the server on, and speaks
//! HTTP/1.1 to it over a plain `TcpStream` (one request per connection, bounded in time).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One answer.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    /// The body as JSON; fails the test if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP listener and its token.
pub struct HttpApi {
    pub port: u16,
    pub token: String,
    dir: tempfile::TempDir,
}

impl Default for HttpApi {
    fn default() -> Self {
        HttpApi::new()
    }
}

impl HttpApi {
    pub fn new() -> HttpApi {
        let dir = tempfile::tempdir().expect("temp dir");
        let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        std::fs::write(dir.path().join("admin.token"), format!("{token}\n")).expect("token file");
        HttpApi {
            port: crate::free_port(),
            token,
            dir,
        }
    }

    /// `http_listen` and `http_admin_token_file` for the configuration.
    pub fn config(&self) -> String {
        format!(
            "http_listen = [\"127.0.0.1:{}\"]\nhttp_admin_token_file = \"{}\"\n",
            self.port,
            self.dir.path().join("admin.token").display()
        )
    }

    /// `http_admin_token_file` alone (for daemons that set their own `http_listen`).
    pub fn token_config(&self) -> String {
        format!(
            "http_admin_token_file = \"{}\"\n",
            self.dir.path().join("admin.token").display()
        )
    }

    /// `GET path` without a token.
    pub fn get(&self, path: &str) -> HttpReply {
        request(self.port, "GET", path, None, None)
    }

    /// `GET path` with the token.
    pub fn get_with_token(&self, path: &str) -> HttpReply {
        request(self.port, "GET", path, Some(&self.token), None)
    }

    /// `POST path` with the token and an optional JSON body.
    pub fn post(&self, path: &str, body: Option<&str>) -> HttpReply {
        request(self.port, "POST", path, Some(&self.token), body)
    }
}

/// One request with `Connection: close`; `token` goes in `Authorization: Bearer`.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> HttpReply {
    request_at(&format!("127.0.0.1:{port}"), method, path, token, body)
}

/// [`request`] to the server at `address` (`HOST:PORT`).
pub fn request_at(
    address: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> HttpReply {
    let mut stream = TcpStream::connect(address)
        .unwrap_or_else(|e| panic!("connect to the HTTP server at {address}: {e}"));
    stream
        .set_read_timeout(Some(crate::DEADLINE))
        .expect("timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head += &format!("Authorization: Bearer {token}\r\n");
    }
    let body = body.unwrap_or("");
    if method == "POST" {
        head += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    head += "\r\n";
    stream.write_all(head.as_bytes()).expect("send request");
    stream.write_all(body.as_bytes()).expect("send body");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read answer");
    parse(&String::from_utf8_lossy(&answer))
}

fn parse(text: &str) -> HttpReply {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpReply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The value of the series `series` (its name with its labels, exactly as `/metrics` exposes
/// them) in a Prometheus text exposition, if present.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}
