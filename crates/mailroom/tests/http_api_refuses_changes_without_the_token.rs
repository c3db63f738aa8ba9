//! Issue 14, security of the HTTP server: off unless `http_listen` is set; a non-loopback
//! address refuses the start unless `http_allow_remote = yes`; every change needs the bearer
//! token — none is 401 (with `WWW-Authenticate: Bearer`), a wrong one 403, and without
//! `http_admin_token_file` every change is 403 — and a refused client is logged once, not
//! once per request. Listings stay open to loopback clients, as `showq.sock` is.

use testkit::*;

const BACKOFF: &str = "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n";

fn one_deferred(config: &str) -> (World, String) {
    let port = free_port();
    let world = World::builder()
        .smtp()
        .peer(&port)
        .config(&format!("{BACKOFF}{config}"))
        .start();
    world.submit(
        "sender@test.example",
        &["someone@far.example"],
        &message("guarded"),
    );
    world.wait_lines(&["status=deferred"], 1);
    let id = world.queue()[0].1.clone();
    (world, id)
}

#[test]
fn no_token_is_401_a_wrong_token_403_and_the_queue_is_unchanged() {
    let api = HttpApi::new();
    let (world, id) = one_deferred(&api.config());
    let hold = format!("/api/v1/queue/{id}/hold");
    let none = http_request(api.port, "POST", &hold, None, None);
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(none
        .header("WWW-Authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));
    let wrong = http_request(api.port, "POST", &hold, Some("not-the-token-at-all"), None);
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    let selector = http_request(
        api.port,
        "POST",
        "/api/v1/actions/delete",
        Some("x"),
        Some(r#"{"all":true}"#),
    );
    assert_eq!(selector.status, 403, "{}", selector.body);
    assert_eq!(
        world.queue()[0].0,
        "deferred",
        "nothing changed: {:?}",
        world.queue()
    );
    assert_eq!(world.queue().len(), 1);

    // Listings are open on loopback; the refusals above were logged once for this client.
    assert_eq!(api.get("/api/v1/queue").status, 200);
    let refused = world.lines_with(&["http", "refused", "from 127.0.0.1"]);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("401"), "{refused:?}");

    // The right token works.
    assert_eq!(api.post(&hold, None).status, 200);
    assert_eq!(world.queue()[0].0, "hold");
}

#[test]
fn without_a_token_file_every_change_is_forbidden() {
    let api = HttpApi::new();
    let config = format!("http_listen = [\"127.0.0.1:{}\"]\n", api.port);
    let (world, id) = one_deferred(&config);
    let reply = api.post(&format!("/api/v1/queue/{id}/delete"), None);
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply.body.contains("http_admin_token_file"),
        "{}",
        reply.body
    );
    assert_eq!(world.queue().len(), 1);
}

#[test]
fn the_http_server_is_off_by_default() {
    let env = TestEnv::new();
    for profile in [
        &["config", "-d", "http_listen"][..],
        &["config", "http_listen"][..],
    ] {
        let out = env.run(profile, b"");
        assert_success(&out, "mailroom config");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.trim(), "http_listen =", "{profile:?}");
    }
    let _daemon = env.start();
    env.wait_log("daemon started", 1);
    assert!(
        env.log_lines("listening on http").is_empty(),
        "{}",
        env.log()
    );
}

#[test]
fn a_non_loopback_http_listen_refuses_the_start_unless_allowed() {
    let port = free_port();
    let env = TestEnv::with_config(&format!("http_listen = [\"0.0.0.0:{port}\"]\n"));
    // Spawned rather than run: if the refusal ever broke, the daemon would serve forever.
    let mut child = env
        .command()
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mailroom serve");
    let exited = poll_for(DEADLINE, || child.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("serve output");
    assert!(exited, "the daemon started on a non-loopback address");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("http_allow_remote"),
        "{stderr}"
    );

    env.write_config(&format!(
        "http_listen = [\"0.0.0.0:{port}\"]\nhttp_allow_remote = true\n"
    ));
    let _daemon = env.start();
    let health = http_request(port, "GET", "/api/v1/health", None, None);
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["status"], "ok");
}

#[test]
fn under_privilege_separation_the_api_runs_as_mail_owner_with_a_root_only_token() {
    let api = HttpApi::new(); // its token file is root's, in a 0700 directory
    let dead = free_port();
    let extra = format!(
        "relayhost = \"[127.0.0.1]:{dead}\"\n{BACKOFF}{}",
        api.config()
    );
    let Some(p) = testkit::privsep::setup(&extra) else {
        return;
    };
    let daemon = p.env.start();
    testkit::privsep::send_smtp(p.port, "someone@remote.example", "held-by-api");
    p.env.wait_log("status=deferred", 1);
    let (uid, _) = p.owner;
    let pid = daemon.pid();
    assert_eq!(
        testkit::privsep::status_field(pid, "Uid"),
        format!("{uid} {uid} {uid} {uid}")
    );
    let id = p.env.queue_json()[0]["queue_id"]
        .as_str()
        .unwrap()
        .to_string();
    let held = api.post(&format!("/api/v1/queue/{id}/hold"), None);
    assert_eq!(
        held.status, 200,
        "the token read as root before the drop: {}",
        held.body
    );
    assert_eq!(p.env.queue_json()[0]["queue_name"], "hold");
}
