//! Test helpers: a real server on 127.0.0.1:0 and a raw-socket client, as a user's client would be.

#![allow(dead_code)]

pub mod nats;
pub mod postgres;

use std::net::SocketAddr;
use std::time::Duration;

use charla::server::{Config, Limits, Server};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for something it expects before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// A server running in this process, stopped by [`TestServer::stop`] or on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Every bound address, in the order of `listen` then `irc_listen`.
    pub addrs: Vec<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<()>>,
    _dir: Option<TempDir>,
}

/// A scratch directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("charla-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Limits for tests: no flood control (scripts type fast), short sniff.
pub fn test_limits() -> Limits {
    Limits { flood: None, ..Limits::default() }
}

pub async fn start_server() -> TestServer {
    start_server_with(test_limits()).await
}

pub async fn start_server_with(limits: Limits) -> TestServer {
    start_with(|config| config.limits = limits).await
}

/// Starts a server on 127.0.0.1:0 after `adjust` has changed its default test config.
pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let dir = TempDir::new();
    let mut server = start_at(&dir.0, adjust).await;
    server._dir = Some(dir);
    server
}

/// Starts a server keeping its data in `data_dir`, which outlives it (for restarts).
pub async fn start_at(data_dir: &std::path::Path, adjust: impl FnOnce(&mut Config)) -> TestServer {
    let mut config =
        Config { limits: test_limits(), server_name: "irc.test".into(), ..Config::local(data_dir.to_path_buf()) };
    adjust(&mut config);
    let server = Server::bind(config).await.expect("server binds");
    let addrs = server.local_addrs();
    let addr = addrs[0];
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    TestServer { addr, addrs, stop: Some(stop), task: Some(task), _dir: None }
}

impl TestServer {
    /// Asks the server to shut down and waits until it has.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task).await.expect("server stops in time").unwrap();
        }
    }
}

/// The reading half of a client's connection (TCP, or TLS over it).
pub type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half.
pub type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// A client speaking raw bytes.
pub struct Client {
    pub reader: BufReader<ReadHalf>,
    pub writer: WriteHalf,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connects");
        let (reader, writer) = stream.into_split();
        Client { reader: BufReader::new(Box::new(reader)), writer: Box::new(writer) }
    }

    /// A client over an already connected stream (a TLS one, say).
    pub fn over(stream: impl AsyncRead + AsyncWrite + Send + 'static) -> Client {
        let (reader, writer) = tokio::io::split(stream);
        Client { reader: BufReader::new(Box::new(reader)), writer: Box::new(writer) }
    }

    /// Connects as a plain-text client and reads the greeting; returns the client and its nick.
    pub async fn plain(addr: SocketAddr) -> (Client, String) {
        Client::plain_over(Client::connect(addr).await).await
    }

    /// Reads a plain-text client's greeting on `client`; returns it and its nick.
    pub async fn plain_over(mut client: Client) -> (Client, String) {
        assert_eq!(client.line().await, "Welcome to the chatroom!");
        let intro = client.line().await;
        let nick = intro
            .strip_prefix("You are ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected introduction: {intro}"))
            .to_string();
        let joined = client.line().await;
        assert!(joined.starts_with("You are now in #lobby"), "{joined}");
        (client, nick)
    }

    /// Connects as a plain-text client and takes `nick`.
    pub async fn plain_as(addr: SocketAddr, nick: &str) -> Client {
        let (mut client, _) = Client::plain(addr).await;
        client.send(&format!("/nick {nick}")).await;
        client.expect(&format!("You are now known as {nick}.")).await;
        client
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("server accepts bytes");
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    /// The next line (without line end); fails the test after [`WAIT`].
    pub async fn line(&mut self) -> String {
        self.try_line().await.expect("connection still open")
    }

    /// The next line, or `None` at end of stream.
    pub async fn try_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(WAIT, self.reader.read_until(b'\n', &mut buf))
            .await
            .expect("a line arrives in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        let text = String::from_utf8(buf).expect("server sends UTF-8");
        Some(text.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Reads lines until one equals `expected`; returns the lines skipped.
    pub async fn expect(&mut self, expected: &str) -> Vec<String> {
        self.expect_where(|l| l == expected).await
    }

    /// Reads lines until one satisfies `pred`; returns the lines skipped.
    pub async fn expect_where(&mut self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut skipped = Vec::new();
        loop {
            let line = self.line().await;
            if pred(&line) {
                return skipped;
            }
            skipped.push(line);
        }
    }

    /// Waits until a plain-text user who joined as a guest has taken `nick`.
    pub async fn arrived(&mut self, nick: &str) {
        let suffix = format!(" is now known as {nick}");
        self.expect_where(|l| l.ends_with(&suffix)).await;
    }

    /// Reads until the server closes the connection; returns every line read.
    pub async fn until_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.try_line().await {
            lines.push(line);
        }
        lines
    }

    /// Proves that nothing more was sent to this client so far: asks the server something and
    /// checks that its answer is the very next line.
    pub async fn assert_quiet(&mut self) {
        self.send("/who").await;
        let next = self.line().await;
        assert!(next.contains(" in #"), "expected nothing before the /who answer, got: {next}");
    }
}

/// An IRC client speaking raw lines, parsed with charla's own parser for assertions.
pub struct Irc {
    pub client: Client,
    pub nick: String,
}

pub use charla::proto::irc::message::Message;

impl Irc {
    /// Connects and registers as `nick`, requesting `caps` first if any; returns after 001 and
    /// the end of the MOTD.
    pub async fn register(addr: SocketAddr, nick: &str, caps: &[&str]) -> Irc {
        Irc::register_over(Client::connect(addr).await, nick, caps).await
    }

    /// Registers as `nick` on an already connected `client` (see [`Irc::register`]).
    pub async fn register_over(client: Client, nick: &str, caps: &[&str]) -> Irc {
        let mut irc = Irc { client, nick: nick.to_string() };
        if !caps.is_empty() {
            irc.send("CAP LS 302").await;
            irc.send(&format!("CAP REQ :{}", caps.join(" "))).await;
            let ack = irc.expect("CAP").await;
            while ack.params.get(1).map(|p| p.as_str()) == Some("LS") {
                let ack = irc.expect("CAP").await;
                if ack.params[1] != "LS" {
                    assert_eq!(ack.params[1], "ACK", "{ack:?}");
                    break;
                }
            }
            irc.send("CAP END").await;
        }
        irc.send(&format!("NICK {nick}")).await;
        irc.send(&format!("USER {nick} 0 * :{nick} Real")).await;
        irc.expect("001").await;
        irc.expect("376").await;
        irc
    }

    pub async fn send(&mut self, line: &str) {
        self.client.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// The next message.
    pub async fn next(&mut self) -> Message {
        let line = self.client.line().await;
        Message::parse(&line).unwrap_or_else(|e| panic!("server sent an unparsable line {line:?}: {e}"))
    }

    /// Reads until a message with this command (or numeric) arrives.
    pub async fn expect(&mut self, command: &str) -> Message {
        loop {
            let message = self.next().await;
            if message.command == command {
                return message;
            }
        }
    }

    /// Sends `CAP LS 302` and gathers the capabilities offered, over every line of the answer.
    pub async fn cap_ls(&mut self) -> Vec<String> {
        self.send("CAP LS 302").await;
        let mut offered = Vec::new();
        loop {
            let ls = self.expect("CAP").await;
            assert_eq!(ls.params[1], "LS", "{ls:?}");
            offered.extend(ls.params.last().unwrap().split(' ').map(str::to_string));
            if ls.params[2] != "*" {
                return offered;
            }
        }
    }

    /// Reads until a message with one of these commands arrives.
    pub async fn expect_any(&mut self, commands: &[&str]) -> Message {
        loop {
            let message = self.next().await;
            if commands.contains(&message.command.as_str()) {
                return message;
            }
        }
    }

    /// Joins a room and reads through the names list.
    pub async fn join(&mut self, room: &str) {
        self.send(&format!("JOIN {room}")).await;
        self.expect("366").await;
    }
}

/// `charla serve` run as its own process, for what needs a real process (kill -9, exit codes).
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `charla serve 127.0.0.1 0 --data-dir DIR ARGS…` and waits for it to say where it
    /// listens.
    pub async fn start(data_dir: &std::path::Path, args: &[&str]) -> ServerProcess {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_charla"))
            .args(["serve", "127.0.0.1", "0", "--flood-limit", "off", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("charla starts");
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(WAIT, stdout.next_line()).await.expect("charla says where it listens");
        let line = line.unwrap().expect("charla printed a line");
        let addr = line.strip_prefix("charla listening on ").expect("the listening line").parse().unwrap();
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        ServerProcess { child, addr }
    }

    /// SIGKILL: no shutdown, no flush.
    pub async fn kill9(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, and the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("still running").to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success());
        tokio::time::timeout(WAIT, self.child.wait()).await.expect("charla exits after SIGTERM").unwrap()
    }
}

impl Irc {
    /// `CHATHISTORY …`: the messages of the answer's batch (the client must have `batch`).
    pub async fn chathistory(&mut self, args: &str) -> Vec<Message> {
        self.send(&format!("CHATHISTORY {args}")).await;
        let start = self.expect("BATCH").await;
        let reference = start.params[0].strip_prefix('+').expect("a batch start").to_string();
        let mut messages = Vec::new();
        loop {
            let message = self.next().await;
            if message.command == "BATCH" && message.params[0] == format!("-{reference}") {
                return messages;
            }
            assert_eq!(message.tag("batch").flatten(), Some(reference.as_str()), "{message:?}");
            messages.push(message);
        }
    }
}

/// Asks `check` until it answers `Ok`, for what no event announces (a background task, another
/// client's session still at work); fails after [`WAIT`] with the last answer's description.
pub async fn eventually<T>(mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => {
                assert!(tokio::time::Instant::now() < deadline, "gave up waiting: {last}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// `charla connect ARGS…` (the binary under test) with its standard streams piped, killed when
/// dropped; the caller adds what else it needs and spawns it.
pub fn charla_connect(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_charla"));
    command
        .arg("connect")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}
