//! Issue 14: the API does what its OpenAPI document (`/api/v1/openapi.json`) says, checked
//! by schemathesis (PyPI) against a real daemon with a real queue and the admin token:
//! every answer's status code, content type and JSON schema are documented, nothing gives
//! a 5xx, schema-valid requests are accepted and schema-violating ones refused, requests
//! without the token are refused, unsupported methods get 405 with `Allow`. The run is
//! bounded (a fixed seed and number of examples per operation) so it is the same each time.

use std::process::Command;
use testkit::*;

const BACKOFF: &str = "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n";

#[test]
fn schemathesis_finds_no_difference_from_the_openapi_document() {
    if Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: schemathesis is not installed (pip install schemathesis; scripts/test.sh does)");
        return;
    }
    let api = HttpApi::new();
    let port = free_port();
    let world = World::builder()
        .smtp()
        .peer(&port)
        .config(&format!("{BACKOFF}{}", api.config()))
        .start();
    for i in 0..4 {
        world.submit(
            "sender@test.example",
            &[&format!("r{i}@far.example")],
            &message(&format!("s-{i}")),
        );
    }
    world.wait_lines(&["status=deferred"], 4);
    // Path IDs are a real queued message's, so the detail and change operations are tested
    // past their 404 (schemathesis cannot guess a queue ID).
    let id = world.queue()[0].1.clone();
    let config = world.env.root.join("schemathesis.toml");
    std::fs::write(&config, format!("[parameters]\n\"path.id\" = \"{id}\"\n")).expect("config");
    let url = format!("http://127.0.0.1:{}/api/v1/openapi.json", api.port);
    let out = Command::new("schemathesis")
        .current_dir(&world.env.root) // its .hypothesis/ cache stays in the test's directory
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&config)
        .args([
            "run",
            &url,
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--no-shrink",
        ])
        .args(["-H", &format!("Authorization: Bearer {}", api.token)])
        // A loaded CI box is slow: Hypothesis's "too slow" health check is about the
        // machine, not the API; every request still has a generous bound.
        .args([
            "--suppress-health-check",
            "all",
            "--request-timeout",
            "60",
            "--workers",
            "1",
        ])
        .output()
        .expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(report.contains("No issues found"), "{report}");
}
