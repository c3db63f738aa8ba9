//! A real `redis-server` (Debian's package) on a free port, for the fleet tests:
//! started without persistence in the test's directory, killed (SIGKILL) and started
//! again on the same port by the test, asked through `redis-cli`. Killed on drop.

use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::machine::free_port;
use crate::wait::{poll_for, wait_until, DEADLINE};

pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

pub struct Redis {
    child: Option<Child>,
    pub host: Ipv4Addr,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// `redis-server` on a free port of 127.0.0.1, answering PING when this returns.
    pub fn start(dir: &Path) -> Redis {
        Redis::start_at(dir, Ipv4Addr::LOCALHOST)
    }

    /// `redis-server` on a free port of `host` (a fleet's gateway, [`crate::fleet::Hosts`]).
    pub fn start_at(dir: &Path, host: Ipv4Addr) -> Redis {
        assert!(
            Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is not installed (apt-get install redis-server; scripts/test.sh does it)"
        );
        let mut redis = Redis {
            child: None,
            host,
            port: free_port(),
            dir: dir.to_path_buf(),
        };
        redis.restart();
        redis
    }

    /// `redis://HOST:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://{}:{}/0", self.host, self.port)
    }

    /// Starts it (again) on the same port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let log = std::fs::File::create(self.dir.join(format!("redis-{}.log", self.port)))
            .expect("redis log file");
        let child = Command::new(REDIS_SERVER)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                &self.host.to_string(),
            ])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_until("redis-server to answer PING", || {
            self.cli(&["PING"]) == "PONG"
        });
    }

    /// SIGKILL, then waits until the port refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let closed = poll_for(DEADLINE, || {
            TcpStream::connect((self.host, self.port)).is_err()
        });
        assert!(closed, "redis-server on {} did not go away", self.port);
    }

    /// `redis-cli -h HOST -p PORT ARGS`, its output trimmed ("" when it cannot connect).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", &self.host.to_string(), "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// Calls per command since the start or the last `CONFIG RESETSTAT` (INFO commandstats).
    pub fn command_calls(&self) -> Vec<(String, u64)> {
        let info = self.cli(&["INFO", "commandstats"]);
        let calls = info.lines().filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        });
        calls.collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
