//! Headless Chromium for the queue page's tests: Debian's `chromium` driven by Playwright
//! (`playwright-core` from npm, the library only: no browser download), running a Node
//! script from `crates/mailroom/tests/browser/`.
//!
//! `playwright-core` is installed, at the version of that directory's `package.json`, into
//! `target/browser-test/` (scripts/test.sh does it first; a test run without it does it
//! once, under a lock file). [`run_script`] is `None`, after one line saying why, only when
//! node or chromium is missing; any other failure fails the test.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `crates/mailroom/tests/browser/`: the scripts and their `package.json`.
pub fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mailroom/tests/browser")
}

/// `target/browser-test/`, where `node_modules/playwright-core` goes.
pub fn install_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-test")
}

static INSTALL: Mutex<()> = Mutex::new(());

fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs `playwright-core` unless the installed one is the wanted version.
fn ensure_playwright() {
    let _one = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = install_dir();
    let wanted = std::fs::read_to_string(scripts_dir().join("package.json")).expect("package.json");
    let have = std::fs::read_to_string(dir.join("package.json")).unwrap_or_default();
    if have == wanted
        && dir
            .join("node_modules/playwright-core/package.json")
            .exists()
    {
        return;
    }
    std::fs::create_dir_all(&dir).expect("target/browser-test");
    std::fs::write(dir.join("package.json"), &wanted).expect("package.json copy");
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .output()
        .expect("run npm install");
    assert!(
        out.status.success(),
        "npm install playwright-core failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `node SCRIPT` with `env` (plus `NODE_PATH` and `CHROMIUM`); `None` (skipped, said
/// on stderr) when node or chromium cannot run here.
pub fn run_script(script: &str, env: &[(&str, &str)]) -> Option<Output> {
    if !runs("node", "--version") {
        eprintln!(
            "skipped: node is not installed (apt-get install nodejs npm; scripts/test.sh does)"
        );
        return None;
    }
    if !runs(CHROMIUM, "--version") {
        eprintln!(
            "skipped: {CHROMIUM} cannot run (apt-get install chromium; scripts/test.sh does)"
        );
        return None;
    }
    ensure_playwright();
    let out = Command::new("node")
        .arg(scripts_dir().join(script))
        .env("NODE_PATH", install_dir().join("node_modules"))
        .env("CHROMIUM", CHROMIUM)
        .envs(env.iter().copied())
        .output()
        .expect("run node");
    Some(out)
}
