//! A real Valkey or Redis server on a free port, for the fleet-wide limit
//! tests: `valkey-server` when installed, else `redis-server`
//! (`SLUICE_REDIS_SERVER` names another binary). It keeps nothing on disk.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Process, free_port};

pub struct Store {
    pub port: u16,
    process: Option<Process>,
    password: Option<String>,
}

fn server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("SLUICE_REDIS_SERVER") {
        return p.into();
    }
    for name in ["valkey-server", "redis-server"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "neither valkey-server nor redis-server is installed: run scripts/test (it installs redis-server) or apt-get install redis-server"
    );
}

impl Store {
    pub fn start() -> Store {
        Self::start_with_password(None)
    }

    pub fn start_with_password(password: Option<&str>) -> Store {
        let port = free_port();
        let mut s = Store {
            port,
            process: None,
            password: password.map(str::to_string),
        };
        s.restart();
        s
    }

    /// (Re)starts the server on the same port, empty.
    pub fn restart(&mut self) {
        let mut cmd = Command::new(server_binary());
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--logfile", ""]);
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        self.process = Some(Process::spawn(cmd));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the store did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (as in an outage).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// The keys the gateways wrote.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap();
        redis::cmd("KEYS").arg(pattern).query(&mut conn).unwrap()
    }
}
