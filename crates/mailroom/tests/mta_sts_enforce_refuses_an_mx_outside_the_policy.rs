//! Issue 12 part 3, MTA-STS (RFC 8461) with `smtp_mta_sts = yes`: the recipient domain
//! example.net publishes `_mta-sts.example.net TXT "v=STSv1; id=…"` in the test's DNS server
//! and its policy on a real HTTPS server (Python's http.server with ssl) at
//! `mta-sts.example.net` (resolved to 127.0.0.1 by that DNS server) with a certificate from
//! a CA the test makes with openssl, which mailroom trusts through `smtp_mta_sts_ca_file`
//! (the server listens on a free port: `smtp_mta_sts_policy_port`). Mail goes to the MX
//! host the DNS names, on the scripted peer's port (`smtp_default_port`).
//!
//! enforce + an MX outside the policy → deferred with the reason, no connection made;
//! enforce + an allowed MX without STARTTLS → deferred, TLS required; testing → delivered,
//! the mismatch logged; a policy host whose certificate does not verify → no policy
//! (delivered as without MTA-STS, with a warning).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use testkit::*;

/// Runs openssl with `args` in `dir`; fails the test on an error.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA (`ca.pem`), another (`other.pem`) and a certificate for mta-sts.example.net signed by it (`host.pem`,
/// `host.key`), in `dir`.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mailroom test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(dir, &ca);
    // Another CA, which signed nothing here: trusting only it, nothing verifies.
    let other: Vec<&str> = ca
        .iter()
        .map(|a| match *a {
            "ca.key" => "other.key",
            "ca.pem" => "other.pem",
            a => a,
        })
        .collect();
    openssl(dir, &other);
    leaf(dir, "host", "mta-sts.example.net");
}

/// `NAME.pem` and `NAME.key` in `dir`: a certificate for `host` signed by `ca.pem`.
fn leaf(dir: &Path, name: &str, host: &str) {
    let (key, csr, ext, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
        format!("{name}.pem"),
    );
    let subject = format!("/CN={host}");
    let mut request = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    request.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
    openssl(dir, &request);
    fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName=DNS:{host}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

/// Python's HTTPS file server on a free loopback port, serving `root`; killed on drop.
struct PolicyServer {
    child: Child,
    port: u16,
}

const SERVE_PY: &str = r#"
import functools, http.server, ssl, sys
cert, key, root = sys.argv[1:4]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"#;

impl PolicyServer {
    /// Serves `policy` at /.well-known/mta-sts.txt with the certificate made in `dir`.
    fn start(dir: &Path, policy: &str) -> PolicyServer {
        let root = dir.join("www");
        fs::create_dir_all(root.join(".well-known")).unwrap();
        fs::write(root.join(".well-known/mta-sts.txt"), policy).unwrap();
        let mut child = Command::new("python3")
            .args(["-c", SERVE_PY])
            .arg(dir.join("host.pem"))
            .arg(dir.join("host.key"))
            .arg(&root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 https server");
        // The port line is printed after the socket is listening: wait for exactly it.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("port line");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("port line {line:?}"));
        PolicyServer { child, port }
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scenario: example.net's MX is `mx_host` (127.0.0.1, the peer's port), its policy
/// `policy`; `trust` says whether mailroom trusts the CA that signed the policy host.
struct Scenario {
    world: World,
    peer: Peer,
    _dns: Dns,
    _https: PolicyServer,
    _certs: tempfile::TempDir,
}

fn scenario(mx_host: &str, policy: &str, trust: bool) -> Scenario {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let peer = Peer::start();
    scenario_with(certs, mx_host, policy, trust, peer.port, peer)
}

/// [`scenario`] with the certificates made already and mail for the MX going to `port`.
fn scenario_with(
    certs: tempfile::TempDir,
    mx_host: &str,
    policy: &str,
    trust: bool,
    port: u16,
    peer: Peer,
) -> Scenario {
    let https = PolicyServer::start(certs.path(), policy);
    let dns = Dns::start(
        Zone::default()
            .mx("example.net", 10, mx_host)
            .a(mx_host, "127.0.0.1")
            .txt("_mta-sts.example.net", "v=STSv1; id=20261201T000000;")
            .a("mta-sts.example.net", "127.0.0.1"),
    );
    let ca = match trust {
        true => certs.path().join("ca.pem"),
        false => certs.path().join("other.pem"),
    }
    .display()
    .to_string();
    let world = World::builder()
        .smtp()
        .dns(&dns)
        .config(&format!(
            "smtp_mta_sts = true\nsmtp_mta_sts_ca_file = \"{ca}\"\nsmtp_tls_CAfile = \"{ca}\"\nsmtp_mta_sts_policy_port = {}\nsmtp_default_port = {}\n",
            https.port, port
        ))
        .start();
    world.submit(
        "sender@test.example",
        &["user@example.net"],
        &message("sts"),
    );
    Scenario {
        world,
        peer,
        _dns: dns,
        _https: https,
        _certs: certs,
    }
}

/// The delay reason of the one queued recipient, once there is one.
fn wait_reason(world: &World, needle: &str) -> String {
    let mut reason = String::new();
    wait_until(
        &format!("a queued recipient deferred with {needle:?}"),
        || {
            reason = world
                .env
                .queue_json()
                .first()
                .and_then(|m| {
                    m["recipients"][0]["delay_reason"]
                        .as_str()
                        .map(str::to_string)
                })
                .unwrap_or_default();
            reason.contains(needle)
        },
    );
    // A retry while the destination is marked dead says the same reason behind this prefix.
    match reason.strip_prefix("delivery temporarily suspended: ") {
        Some(inner) => inner.to_string(),
        None => reason,
    }
}

const ENFORCE: &str = "version: STSv1\nmode: enforce\nmx: *.example.net\nmax_age: 86400\n";

#[test]
fn enforce_defers_mail_to_an_mx_outside_the_policy() {
    let s = scenario("mx.elsewhere.example", ENFORCE, true);
    let reason = wait_reason(&s.world, "MTA-STS policy of example.net");
    assert_eq!(
        reason,
        "MTA-STS policy of example.net (mode enforce) does not allow MX host mx.elsewhere.example (mx: *.example.net)"
    );
    s.world.wait_lines(
        &["to=<user@example.net>", "status=deferred", "dsn=4.7.0"],
        1,
    );
    assert_eq!(
        s.peer.connections(),
        0,
        "no connection to a host outside the policy"
    );
    s.world.wait_lines(
        &["MTA-STS policy of example.net: mode enforce, mx *.example.net, max_age 86400s"],
        1,
    );
}

#[test]
fn enforce_defers_mail_to_an_allowed_mx_without_tls() {
    let s = scenario("mx1.example.net", ENFORCE, true);
    let reason = wait_reason(&s.world, "TLS");
    assert_eq!(
        reason,
        "TLS is required, but was not offered by host mx1.example.net[127.0.0.1] (MTA-STS policy of example.net: verified TLS required)"
    );
    assert!(s.peer.messages().is_empty());
}

#[test]
fn testing_logs_the_mismatch_and_delivers() {
    let policy = ENFORCE.replace("enforce", "testing");
    let s = scenario("mx.elsewhere.example", &policy, true);
    wait_until("the delivered copy", || !s.peer.messages().is_empty());
    s.world.wait_lines(&[
        "MTA-STS policy of example.net (mode testing) does not allow MX host mx.elsewhere.example",
        "delivering anyway",
    ], 1);
}

#[test]
fn a_policy_host_whose_certificate_does_not_verify_gives_no_policy() {
    // Trusting another CA only, the policy host's certificate does not verify: the fetch fails, and
    // with nothing cached the mail goes as without MTA-STS (RFC 8461 5.1), with a warning.
    let s = scenario("mx.elsewhere.example", ENFORCE, false);
    wait_until("the delivered copy", || !s.peer.messages().is_empty());
    s.world.wait_lines(
        &[
            "MTA-STS policy of example.net: cannot fetch it",
            "delivering as without MTA-STS",
        ],
        1,
    );
}

/// A second mailroom as the MX, offering STARTTLS with a certificate for mx1.example.net
/// from the test CA and delivering example.net mail to a local mailbox; and the
/// certificates' directory.
fn tls_mx() -> (World, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    leaf(certs.path(), "mx1", "mx1.example.net");
    let dir = certs.path().display().to_string();
    let mx = World::started(&format!(
        "smtpd_tls_cert_file = \"{dir}/mx1.pem\"\nsmtpd_tls_key_file = \"{dir}/mx1.key\"\n\
         smtpd_tls_security_level = \"may\"\nmydestination = [\"example.net\"]\n"
    ));
    (mx, certs)
}

#[test]
fn enforce_delivers_to_an_allowed_mx_over_verified_tls() {
    let (mx, certs) = tls_mx();
    let s = scenario_with(
        certs,
        "mx1.example.net",
        ENFORCE,
        true,
        mx.port,
        Peer::start(),
    );
    mx.env.wait_mbox("user", 1);
    s.world.wait_lines(
        &[
            "to=<user@example.net>",
            "relay=mx1.example.net[127.0.0.1]",
            "status=sent",
        ],
        1,
    );
}

#[test]
fn enforce_defers_mail_to_an_mx_whose_certificate_names_another_host() {
    // mx2.example.net matches the policy, but its server shows mx1's certificate.
    let (mx, certs) = tls_mx();
    let s = scenario_with(
        certs,
        "mx2.example.net",
        ENFORCE,
        true,
        mx.port,
        Peer::start(),
    );
    let reason = wait_reason(&s.world, "MTA-STS");
    assert_eq!(
        reason,
        "Server certificate not verified (MTA-STS policy of example.net: verified TLS required)"
    );
    assert_eq!(mx.env.count_mbox("user"), 0);
}

#[test]
fn a_cached_policy_survives_a_restart_with_the_policy_server_down() {
    let Scenario {
        mut world,
        peer,
        _dns,
        _https,
        _certs,
    } = scenario("mx.elsewhere.example", ENFORCE, true);
    wait_reason(&world, "MTA-STS policy of example.net");
    let file = world.env.root.join("mta-sts/example.net");
    wait_until("the policy saved on disk", || {
        fs::read_to_string(&file).is_ok_and(|text| text.ends_with(ENFORCE))
    });
    // The policy host goes away and the daemon restarts: the policy on disk still holds
    // (RFC 8461 3.3), the MX outside it still gets nothing.
    drop(_https);
    world.daemon = None;
    world.start();
    world.submit(
        "sender@test.example",
        &["user@example.net"],
        &message("sts again"),
    );
    wait_until("both messages deferred by the cached policy", || {
        let queue = world.env.queue_json();
        queue.len() == 2
            && queue.iter().all(|m| {
                m["recipients"][0]["delay_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("MTA-STS policy of example.net (mode enforce)"))
            })
    });
    assert_eq!(peer.connections(), 0);
    assert_eq!(
        world
            .lines_with(&["MTA-STS policy of example.net: mode enforce"])
            .len(),
        1,
        "fetched once, before the restart"
    );
    assert!(world
        .lines_with(&["delivering as without MTA-STS"])
        .is_empty());
}
