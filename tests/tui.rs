//! The full-screen client as a person uses it: the built binary runs in an 80×24 tmux pane
//! against a real server, keys are typed with `send-keys` and the screen is read with
//! `capture-pane`. A plain-text user in the same room checks both directions. History runs
//! against charla's own server (catching up after a restart, loading older lines on PgUp) and
//! against a scripted IRC server on loopback, for what a test cannot make a real server do
//! (a live line before the catch-up batch, a batch repeating a line already seen).
//!
//! There is no event to wait on in a terminal, so the screen is polled every 100 ms for at most
//! 15 s. Needs `tmux` (scripts/test.sh installs it).

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::process::Command;

const POLL: Duration = Duration::from_millis(100);
const SCREEN_WAIT: Duration = Duration::from_secs(15);

/// A detached tmux server of its own (its own socket), killed on drop.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    /// Runs `command` in a new 80×24 session. When the command ends, the pane shows its exit
    /// status and stays, so a crash can be read from the screen.
    async fn start(command: &str) -> Tmux {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = std::env::temp_dir().join(format!("charla-tmux-{}-{n}", std::process::id()));
        let tmux = Tmux { socket };
        // No backtraces: an error must fit on the screen as a user would see it.
        let script = format!("RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 {command}; echo \"[exited with $?]\"; sleep 60");
        tmux.run(&["-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "80", "-y", "24", "sh", "-c", &script])
            .await;
        tmux
    }

    async fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .await
            .expect("tmux runs (apt-get install tmux; scripts/test.sh installs it)");
        assert!(output.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    async fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"]).await
    }

    /// Types text literally (no key names), then presses Enter.
    async fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "t", "-l", text]).await;
        self.run(&["send-keys", "-t", "t", "Enter"]).await;
    }

    /// Polls the screen until `ready` accepts it; fails with the last screen after 15 s.
    async fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen().await;
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "waited {SCREEN_WAIT:?} for {what}; the screen shows:\n{screen}");
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux").arg("-S").arg(&self.socket).arg("kill-server").output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_screen_client_chats_with_a_plain_text_user() {
    let server = start_server().await;
    let mut plain = Client::plain_as(server.addr, "plainuser").await;
    let command = format!("{} connect 127.0.0.1 {} --nick tuiuser", env!("CARGO_BIN_EXE_charla"), server.addr.port());
    let tmux = Tmux::start(&command).await;

    // Joined #lobby, with the plain-text user in the member list.
    let screen = tmux
        .wait_for("the client to join #lobby", |s| s.contains("You joined #lobby") && s.contains("plainuser"))
        .await;
    assert!(screen.lines().next().is_some_and(|top| top.trim_start().starts_with("#lobby")), "{screen}");
    assert!(screen.contains("2 users") && screen.contains("[tuiuser] [2:#lobby]"), "{screen}");
    plain.expect("*** tuiuser joined #lobby").await;
    // The room's history (asked for on joining) holds our own join too: it is shown once.
    let screen = tmux.wait_for("the room's history", |s| s.contains("is now known as plainuser")).await;
    assert_eq!(screen.matches("joined #lobby").count(), 2, "plainuser's guest nick and us:\n{screen}");
    assert!(screen.contains("You joined #lobby") && !screen.contains("tuiuser joined"), "{screen}");

    tmux.type_line("hello from the tui").await;
    plain.expect("<tuiuser> hello from the tui").await;
    tmux.wait_for("our own line", |s| s.contains("<tuiuser> hello from the tui")).await;

    plain.send("hi from plain").await;
    let screen = tmux.wait_for("the plain user's line", |s| s.contains("<plainuser> hi from plain")).await;
    // Timestamps in front of lines: HH:MM.
    let line = screen.lines().find(|l| l.contains("<plainuser> hi from plain")).unwrap_or_default();
    let stamp = line.split('│').nth(1).unwrap_or_default();
    assert!(stamp.len() > 5 && stamp.as_bytes()[2] == b':', "{line}");

    // /quit leaves the room, and the terminal is back to normal (the alternate screen is gone).
    tmux.type_line("/quit see you").await;
    plain.expect("*** tuiuser quit (Quit: see you)").await;
    let screen = tmux.wait_for("the client to exit", |s| s.contains("[exited with 0]")).await;
    assert!(!screen.contains("plainuser"), "{screen}");
}

#[tokio::test]
async fn a_server_that_is_not_there_is_reported_before_the_screen_changes() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let command = format!("{} connect 127.0.0.1 {port}", env!("CARGO_BIN_EXE_charla"));
    let tmux = Tmux::start(&command).await;
    tmux.wait_for("the client to give up", |s| s.contains("[exited with 1]")).await;
    // The message is longer than the pane is wide: read it with the wrapping undone (-J).
    let text = tmux.run(&["capture-pane", "-p", "-J", "-t", "t"]).await;
    assert!(
        text.contains("cannot connect to 127.0.0.1:") && text.contains("is `charla serve` running there?"),
        "{text}"
    );
}

#[tokio::test]
async fn a_private_server_that_refuses_the_password_is_reported_not_retried() {
    let server = start_with(|config| config.hub.password = Some("clubhouse".into())).await;
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let wrong = dir.0.join("password");
    std::fs::write(&wrong, "guess\n").unwrap();
    let charla = env!("CARGO_BIN_EXE_charla");
    let port = server.addr.port();
    for (given, told) in [
        ("", "to let you in without its password"),
        (&*format!("--password-file {}", wrong.display()), "the password given"),
    ] {
        // No retry in a loop behind the screen: the client exits and says what to do.
        let tmux = Tmux::start(&format!("{charla} connect {given} 127.0.0.1 {port}")).await;
        tmux.wait_for("the client to give up", |s| s.contains("[exited with 1]")).await;
        let text = tmux.run(&["capture-pane", "-p", "-J", "-t", "t"]).await;
        assert!(text.contains(&format!("127.0.0.1:{port} is a private server and refused {told}")), "{text}");
        assert!(text.contains("--password-file FILE") && text.contains("CHARLA_SERVER_PASSWORD"), "{text}");
    }
}

/// One connection to a scripted IRC server that offers `draft/chathistory`, answering only
/// what the test tells it to.
struct Scripted {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Scripted {
    async fn accept(listener: &tokio::net::TcpListener) -> Scripted {
        use tokio::io::AsyncBufReadExt;
        let (stream, _) = tokio::time::timeout(SCREEN_WAIT, listener.accept())
            .await
            .expect("the client connects in time")
            .expect("accepts");
        let (reader, writer) = stream.into_split();
        Scripted { lines: tokio::io::BufReader::new(reader).lines(), writer }
    }

    async fn send(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        self.writer.write_all(format!("{line}\r\n").as_bytes()).await.expect("the client reads");
    }

    /// Reads until a line starting with `prefix`; returns it.
    async fn expect(&mut self, prefix: &str) -> String {
        loop {
            let line = tokio::time::timeout(SCREEN_WAIT, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("waited for {prefix:?}"))
                .expect("reads")
                .unwrap_or_else(|| panic!("the client closed the connection before sending {prefix:?}"));
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Registration with the capabilities history needs, then the client's join of #lobby.
    async fn register_and_join(&mut self) {
        self.expect("CAP LS 302").await;
        self.send(":srv CAP * LS :server-time message-tags batch echo-message draft/chathistory").await;
        let request = self.expect("CAP REQ").await;
        let caps = request.trim_start_matches("CAP REQ ").trim_start_matches(':').to_string();
        self.send(&format!(":srv CAP * ACK :{caps}")).await;
        self.expect("CAP END").await;
        self.send(":srv 001 tui :Welcome").await;
        self.send(":srv 005 tui CHANTYPES=# CHATHISTORY=100 :are supported").await;
        self.send(":srv 376 tui :End of MOTD").await;
        self.expect("JOIN #lobby").await;
        self.send(":tui!u@h JOIN #lobby").await;
        self.send(":srv 353 tui = #lobby :tui @alice").await;
        self.send(":srv 366 tui #lobby :End of /NAMES list").await;
    }
}

/// The server time of something said now, as the `time` tag carries it.
async fn now() -> String {
    // Each stamp is later than the one before, even at millisecond precision.
    tokio::time::sleep(Duration::from_millis(5)).await;
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// alice's PRIVMSG to #lobby, tagged with a msgid, a time and optionally a batch.
fn said(batch: Option<&str>, msgid: &str, time: &str, text: &str) -> String {
    let batch = batch.map(|b| format!("batch={b};")).unwrap_or_default();
    format!("@{batch}time={time};msgid={msgid} :alice!a@h PRIVMSG #lobby :{text}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_reconnects_rejoins_and_catches_up_with_chathistory() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let port = listener.local_addr().expect("an address").port();
    let command = format!("{} connect 127.0.0.1 {port} --nick tui", env!("CARGO_BIN_EXE_charla"));
    let tmux = Tmux::start(&command).await;

    let mut first = Scripted::accept(&listener).await;
    first.register_and_join().await;
    first.expect("CHATHISTORY LATEST #lobby * 50").await;
    first.send(":srv BATCH +h1 chathistory #lobby").await;
    let t0 = now().await;
    first.send(&said(Some("h1"), "m0", &t0, "from history")).await;
    first.send(":srv BATCH -h1").await;
    let t1 = now().await;
    first.send(&said(None, "m1", &t1, "before the drop")).await;
    tmux.wait_for("history and a live line", |s| {
        s.contains("<alice> from history") && s.contains("<alice> before the drop")
    })
    .await;
    drop(first);

    tmux.wait_for("the reconnect countdown", |s| s.contains("Disconnected: the server closed")).await;
    // Someone speaks while the client is away.
    let t2 = now().await;
    let mut second = Scripted::accept(&listener).await;
    second.register_and_join().await;
    second.expect("CHATHISTORY AFTER #lobby msgid=m1 100").await;
    // A live line arrives before the catch-up batch, which repeats the last line seen.
    second.send(&said(None, "m3", &now().await, "live after the rejoin")).await;
    second.send(":srv BATCH +c1 chathistory #lobby").await;
    second.send(&said(Some("c1"), "m1", &t1, "before the drop")).await;
    second.send(&said(Some("c1"), "m2", &t2, "said while away")).await;
    second.send(":srv BATCH -c1").await;
    let screen = tmux.wait_for("the caught-up line", |s| s.contains("<alice> said while away")).await;
    assert_eq!(screen.matches("before the drop").count(), 1, "no duplicate:\n{screen}");
    let order: Vec<usize> = ["from history", "before the drop", "said while away", "live after the rejoin"]
        .iter()
        .map(|text| screen.find(text).unwrap_or_else(|| panic!("{text:?} on\n{screen}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order:\n{screen}");
    assert!(!screen.contains("reconnecting"), "{screen}");
}

/// `charla connect` against `addr` as `nick`, in a new tmux pane.
async fn tui_at(addr: std::net::SocketAddr, nick: &str) -> Tmux {
    Tmux::start(&format!("{} connect 127.0.0.1 {} --nick {nick}", env!("CARGO_BIN_EXE_charla"), addr.port())).await
}

/// The seconds of a `[reconnecting in N s: connection refused]` countdown on the status line.
fn refused_countdown(screen: &str) -> Option<u64> {
    let (_, rest) = screen.split_once("[reconnecting in ")?;
    let (secs, reason) = rest.split_once(" s: ")?;
    reason.starts_with("connection refused").then(|| secs.parse().ok()).flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_is_caught_up_from_its_history_without_gap_or_duplicate() {
    let dir = TempDir::new();
    let mut server = start_at(&dir.0, |_| {}).await;
    let addr = server.addr;
    let mut plain = Client::plain_as(addr, "plainuser").await;
    let tmux = tui_at(addr, "tuiuser").await;
    tmux.wait_for("the client to join #lobby", |s| s.contains("You joined #lobby") && s.contains("plainuser")).await;
    plain.expect("*** tuiuser joined #lobby").await;
    tmux.type_line("tui before the restart").await;
    plain.expect("<tuiuser> tui before the restart").await;
    plain.send("plain before the restart").await;
    tmux.wait_for("the plain user's line", |s| s.contains("<plainuser> plain before the restart")).await;

    // A clean shutdown. The client counts down to its attempts (1 s, 2 s, 4 s …); once two are
    // refused there are at least 2 s before the next.
    server.stop().await;
    drop(plain);
    tmux.wait_for("a refused reconnect", |s| refused_countdown(s).is_some_and(|n| n >= 3)).await;

    // The same port (rebound at once: tokio sets SO_REUSEADDR) and the same data directory.
    // The plain user is back first and speaks while the client is still waiting.
    let _server = start_at(&dir.0, |config| config.listen = vec![addr]).await;
    let mut plain = Client::plain_as(addr, "plainuser").await;
    plain.send("said while you were away").await;
    // The hub takes one connection's lines in order: if the client is not in the room at the
    // /who, it joins after the line, which can reach it only through CHATHISTORY.
    plain.send("/who").await;
    let mut who = plain.line().await;
    while !who.contains(" in #lobby: ") {
        who = plain.line().await;
    }
    assert_eq!(who, "1 in #lobby: @plainuser", "the client came back too early to test a catch-up");

    // A chathistory batch is shown whole when it ends, so the catch-up is complete here.
    let screen = tmux.wait_for("the caught-up line", |s| s.contains("<plainuser> said while you were away")).await;
    assert!(!screen.contains("reconnecting"), "{screen}");
    // The catch-up holds the rejoin as well: each join is shown once.
    assert_eq!(screen.matches("You joined #lobby").count(), 2, "{screen}");
    assert!(!screen.contains("tuiuser joined"), "{screen}");
    plain.expect("*** tuiuser joined #lobby").await;
    plain.send("live after the catch-up").await;
    let screen = tmux.wait_for("a live line after the catch-up", |s| s.contains("live after the catch-up")).await;
    let said =
        ["tui before the restart", "plain before the restart", "said while you were away", "live after the catch-up"];
    for text in said {
        assert_eq!(screen.matches(text).count(), 1, "{text:?} exactly once:\n{screen}");
    }
    let order: Vec<usize> = said.iter().map(|text| screen.find(text).unwrap_or_default()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order:\n{screen}");
}

/// The numbers of the `line NNN` messages on a screen, top to bottom.
fn numbered(screen: &str) -> Vec<u32> {
    screen
        .lines()
        .filter_map(|l| l.split_once("<plainuser> line ").and_then(|(_, n)| n.get(..3)?.parse().ok()))
        .collect()
}

/// Presses `key` (a tmux key name) and waits until the screen is no longer `before`.
async fn press(tmux: &Tmux, key: &str, before: &str) -> String {
    tmux.run(&["send-keys", "-t", "t", key]).await;
    tmux.wait_for(&format!("the screen to change after {key}"), |s| s != before).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrolling_up_loads_older_history_up_to_the_first_line() {
    const LINES: u32 = 120;
    let server = start_server().await;
    let mut plain = Client::plain_as(server.addr, "plainuser").await;
    for i in 0..LINES {
        plain.send(&format!("line {i:03}")).await;
    }
    // Every line has reached the hub before the client joins, so none arrives live.
    plain.send("/who").await;
    plain.expect_where(|l| l.contains(" in #lobby: ")).await;

    // The server replays nothing to a client that can ask; on join this one asks for the
    // latest 50 lines (CHATHISTORY LATEST) and shows the newest at the bottom.
    let tmux = tui_at(server.addr, "tuiuser").await;
    let screen = tmux.wait_for("the latest lines", |s| s.contains("<plainuser> line 119")).await;
    let shown = numbered(&screen);
    assert_eq!(shown.last(), Some(&(LINES - 1)), "{screen}");
    assert!(!screen.contains("more below"), "{screen}");
    assert!(shown.windows(2).all(|w| w[1] == w[0] + 1), "{screen}");

    // PgUp past the top of what is loaded asks for older pages (CHATHISTORY BEFORE), until the
    // first line and the plain user's arrival before it are there.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut presses = 0;
    let screen = loop {
        let screen = tmux.screen().await;
        if screen.contains("is now known as plainuser") {
            break screen;
        }
        assert!(Instant::now() < deadline, "after {presses} PgUp the screen shows:\n{screen}");
        tmux.run(&["send-keys", "-t", "t", "PPage"]).await;
        presses += 1;
        tokio::time::sleep(POLL * 2).await;
    };
    let arrival = screen.find("is now known as plainuser").unwrap_or_default();
    let first = screen.find("<plainuser> line 000").unwrap_or_else(|| panic!("line 000 at the top:\n{screen}"));
    assert!(arrival < first, "{screen}");
    assert_eq!(numbered(&screen).first(), Some(&0), "{screen}");

    // Back down a page at a time: every line once, in order, no gap and no duplicate.
    let mut seen = Vec::new();
    let mut screen = screen;
    loop {
        let shown = numbered(&screen);
        assert!(shown.windows(2).all(|w| w[1] == w[0] + 1), "out of order:\n{screen}");
        // Pages overlap (by one row, or more at the bottom).
        let last = seen.last().copied();
        seen.extend(shown.into_iter().filter(|&n| last.is_none_or(|last| n > last)));
        if !screen.contains("more below") {
            break;
        }
        screen = press(&tmux, "NPage", &screen).await;
    }
    assert_eq!(seen, (0..LINES).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_window_the_room_list_and_help_read_as_a_person_expects() {
    let server = start_server().await;
    let mut plain = Client::plain_as(server.addr, "plainuser").await;
    plain.send("/join #dev").await;
    plain.expect_where(|l| l.contains("#dev")).await;
    plain.send("/topic builds and deploys").await;
    plain.expect("Topic of #dev set.").await;
    let tmux = tui_at(server.addr, "tuiuser").await;
    tmux.wait_for("the client to join #lobby", |s| s.contains("You joined #lobby")).await;

    // The server window: what a person reads, no raw numerics.
    tmux.run(&["send-keys", "-t", "t", "M-1"]).await;
    let screen = tmux.wait_for("the server window", |s| s.contains("irc.test Message of the day")).await;
    for raw in ["biklmnostv", "bklov", "2 2 Current", "End of /MOTD", "- Welcome to charla"] {
        assert!(!screen.contains(raw), "{raw:?} on\n{screen}");
    }
    assert!(screen.contains("Current local users 2, max 2"), "{screen}");

    // /list shows the rooms in a window of their own; typing filters, Enter joins.
    tmux.run(&["send-keys", "-t", "t", "M-2"]).await;
    tmux.type_line("/list").await;
    let screen = tmux.wait_for("the room list", |s| s.contains("Rooms on this server: 2 rooms")).await;
    let dev = screen.lines().find(|l| l.contains("#dev")).unwrap_or_default();
    assert!(dev.contains(" 1  builds and deploys"), "{screen}");
    tmux.type_line("dev").await;
    tmux.wait_for("the join of #dev", |s| s.contains("You joined #dev") && s.contains("[tuiuser] [4:#dev]")).await;
    plain.expect("*** tuiuser joined #dev").await;

    // /help shows in the server window and says how to get back.
    tmux.type_line("/help").await;
    let screen = tmux.wait_for("the help", |s| s.contains("[1:127.0.0.1]") && s.contains("Commands")).await;
    assert!(screen.contains("/history [N]") && screen.contains("more below"), "{screen}");
}
