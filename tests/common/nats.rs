//! A private `nats-server` with JetStream for cluster tests: a child process on a loopback port
//! of its own, its store in a scratch directory, killed on drop and restartable on the same
//! port (to test a node's life without NATS).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// Where Debian's package puts it; else it is looked up on the PATH.
const BINARIES: [&str; 3] = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "nats-server"];

/// A running (or stopped) nats-server.
pub struct Nats {
    pub port: u16,
    binary: String,
    dir: TempDir,
    child: Option<Child>,
}

fn binary() -> String {
    for candidate in BINARIES {
        let found = Command::new(candidate).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if found.is_ok_and(|s| s.success()) {
            return candidate.to_string();
        }
    }
    panic!("nats-server is not installed: run scripts/test.sh, which installs it (Debian package nats-server)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Nats {
    /// Starts a nats-server with JetStream on a free loopback port.
    pub fn start() -> Nats {
        let dir = TempDir::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let mut nats = Nats { port: free_port(), binary: binary(), dir, child: None };
        nats.restart();
        nats
    }

    /// The URL nodes are given (`--bus`).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (after [`Nats::stop`]); returns once it accepts.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "nats-server is running already");
        let child = Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on port {} within 10 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL), as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
