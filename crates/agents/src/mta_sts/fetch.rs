//! Fetching a policy: `GET /.well-known/mta-sts.txt` from `mta-sts.DOMAIN` over HTTPS
//! (RFC 8461 3.3) with hyper's HTTP/1.1 client on a tokio-rustls connection. The host is
//! resolved with the SMTP client's resolver (so `dns_nameservers` applies), its certificate
//! must verify for `mta-sts.DOMAIN`, only a 200 answer counts (redirects are not followed),
//! and the body may be at most [`MAX_POLICY`] bytes. The whole fetch has one deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hickory_resolver::TokioResolver;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// RFC 8461 3.3 leaves the limit to the sender; 64 KiB is far above any real policy.
const MAX_POLICY: usize = 64 * 1024;

/// The policy text of `domain`, or why there is none.
pub(super) async fn policy(
    resolver: &TokioResolver,
    domain: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    limit: Duration,
) -> Result<String, String> {
    let host = format!("mta-sts.{}", domain.trim_end_matches('.'));
    match tokio::time::timeout(limit, fetch(resolver, &host, port, tls)).await {
        Ok(result) => {
            result.map_err(|why| format!("https://{host}/.well-known/mta-sts.txt: {why}"))
        }
        Err(_) => Err(format!("https://{host}/.well-known/mta-sts.txt: timed out")),
    }
}

async fn fetch(
    resolver: &TokioResolver,
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
) -> Result<String, String> {
    let ips = resolver
        .lookup_ip(format!("{host}."))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut last = format!("no address for {host}");
    for ip in ips.iter() {
        let addr = SocketAddr::new(ip, port);
        match TcpStream::connect(addr).await {
            Ok(tcp) => return get(tcp, host, tls).await,
            Err(e) => last = format!("connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// The request on one connection.
async fn get(tcp: TcpStream, host: &str, tls: Arc<rustls::ClientConfig>) -> Result<String, String> {
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
    let stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get("/.well-known/mta-sts.txt")
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "mailroom")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("HTTP request: {e}"))?;
    let result = read(sender.send_request(request).await).await;
    driver.abort();
    result
}

async fn read(
    response: Result<hyper::Response<hyper::body::Incoming>, hyper::Error>,
) -> Result<String, String> {
    let response = response.map_err(|e| format!("HTTP: {e}"))?;
    if response.status() != hyper::StatusCode::OK {
        return Err(format!("HTTP status {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_POLICY)
        .collect()
        .await
        .map_err(|e| format!("reading the policy: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| "the policy is not UTF-8 text".to_string())
}
