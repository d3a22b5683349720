//! A private PostgreSQL server for tests: `initdb` and `postgres` from the Debian package
//! (`/usr/lib/postgresql/*/bin`), run as the `postgres` user when the tests run as root (the
//! server refuses root), in a temporary directory, on a free loopback port; stopped and removed
//! when dropped.
//!
//! [`Postgres::shared`] gives tests of one binary one server (each test then takes a database
//! of its own, [`Postgres::database`]), started by the first test that needs it and stopped
//! when the last one holding it is done. A test that stops and starts PostgreSQL takes a
//! server of its own ([`Postgres::start`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// A running (or stopped, see [`Postgres::stop`]) PostgreSQL server of this test process.
pub struct Postgres {
    bin: PathBuf,
    /// The temporary directory: `data` (the cluster), the socket and `log`.
    dir: PathBuf,
    pub port: u16,
}

/// The newest PostgreSQL's programs, or a failure saying how to get them.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(|d| d.ok()).map(|d| d.path().join("bin")).filter(|b| b.join("initdb").is_file()).collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|b| b.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0));
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/test.sh, which installs \
             Debian's postgresql package, or apt-get install postgresql"
        )
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program` from PostgreSQL's bin directory, as the `postgres` user when this is root.
fn as_owner(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

fn run(mut command: Command, what: &str) {
    let output = command.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

static SHARED: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());
static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Postgres {
    /// A new server of this test's own, running.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        // As root, the directory is handed to the `postgres` user, who must be able to reach
        // it: /tmp, whatever TMPDIR says (it may be under root's home).
        let base = if is_root() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        let dir = base.join(format!("charla-pg-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:").arg(&dir);
                    c
                },
                "chown postgres",
            );
        }
        let mut initdb = as_owner(&bin, "initdb");
        initdb.arg("-D").arg(dir.join("data")).args(["-U", "charla", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        run(initdb, "initdb");
        let server = Postgres { bin, dir, port: free_port() };
        server.start_again();
        server
    }

    /// The server this test binary's tests share, started if none is running.
    pub fn shared() -> Arc<Postgres> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = shared.upgrade() {
            return server;
        }
        let server = Arc::new(Postgres::start());
        *shared = Arc::downgrade(&server);
        server
    }

    /// Starts the server again after [`Postgres::stop`] (on the same port).
    pub fn start_again(&self) {
        let mut pg_ctl = as_owner(&self.bin, "pg_ctl");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        pg_ctl.arg("-D").arg(self.dir.join("data")).args(["-o", &options, "-l"]).arg(self.dir.join("log"));
        pg_ctl.args(["-w", "-t", "60", "start"]);
        pg_ctl.stdout(Stdio::null());
        run(pg_ctl, "pg_ctl start");
    }

    /// Stops the server (fast: open connections are cut, as when PostgreSQL goes down).
    pub fn stop(&self) {
        let mut pg_ctl = as_owner(&self.bin, "pg_ctl");
        pg_ctl.arg("-D").arg(self.dir.join("data")).args(["-m", "fast", "-w", "stop"]);
        run(pg_ctl, "pg_ctl stop");
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the server and every one of its processes:
    /// while frozen its connections stay open and nothing answers, as when the machine or the
    /// network between has gone away without a word.
    pub fn freeze(&self, frozen: bool) {
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).expect("the server runs");
        let pid = pid.lines().next().expect("postmaster.pid names the server").trim().to_string();
        let children = Command::new("pgrep").args(["-P", &pid]).output().expect("pgrep runs");
        let mut pids = vec![pid];
        pids.extend(String::from_utf8_lossy(&children.stdout).split_whitespace().map(str::to_string));
        let mut kill = Command::new("kill");
        kill.arg(if frozen { "-STOP" } else { "-CONT" }).args(&pids);
        run(kill, "kill");
    }

    /// The URL of database `name` on this server (which must exist, see [`Postgres::database`]).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://charla@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub fn database(&self) -> String {
        let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut createdb = Command::new(self.bin.join("createdb"));
        createdb.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "charla", "-E", "UTF8", &name]);
        run(createdb, "createdb");
        self.url(&name)
    }

    /// The server's log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut pg_ctl = as_owner(&self.bin, "pg_ctl");
        pg_ctl.arg("-D").arg(self.dir.join("data")).args(["-m", "immediate", "-w", "stop"]);
        let _ = pg_ctl.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
