//! IRC clients nobody here wrote — the Python `irc` library, irssi and WeeChat — in the same room
//! as a plain-text user, over the one port. Each test drives the real client program and checks
//! both directions: what the plain-text user reads and what the IRC client shows.
//!
//! The programs must be installed (`scripts/test.sh` installs them): a missing one fails the test.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long a test waits for a client's screen or log to show something.
const SHOW_WAIT: Duration = Duration::from_secs(15);
/// How often a screen or log is looked at while waiting: there is no event to wait on.
const POLL: Duration = Duration::from_millis(100);

/// Fails the test unless `program args…` runs: the test needs `what`, which scripts/test.sh
/// installs.
async fn require(program: &str, args: &[&str], what: &str) {
    let ran = Command::new(program).args(args).stdin(Stdio::null()).output().await;
    let problem = match ran {
        Ok(output) if output.status.success() => return,
        Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_string(),
        Err(error) => error.to_string(),
    };
    panic!("this test needs {what} (scripts/test.sh installs it): `{program} {}` failed: {problem}", args.join(" "));
}

/// A name no other test in any running test process uses (for tmux sessions).
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Polls `look` until its text contains `needle`; fails the test after [`SHOW_WAIT`], showing
/// the last text seen.
async fn wait_until_shown(what: &str, needle: &str, mut look: impl AsyncFnMut() -> String) {
    let deadline = tokio::time::Instant::now() + SHOW_WAIT;
    loop {
        let text = look().await;
        if text.contains(needle) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what} did not show {needle:?} within {SHOW_WAIT:?}; it shows:\n{text}");
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---- the Python `irc` library ----

/// `tests/irc_lib_client.py`: an IRC client made with the `irc` library, one command per input
/// line, one `EVENT …` line per thing the library reports.
struct LibClient {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl LibClient {
    async fn start(server: &TestServer, nick: &str) -> LibClient {
        require("python3", &["-c", "import irc.client"], "the Python library irc (PyPI package irc)").await;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/irc_lib_client.py");
        let port = server.addr.port().to_string();
        let mut child = Command::new("python3")
            .args([script, "127.0.0.1", &port, nick, "20"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut client = LibClient { child, stdin, stdout };
        client.expect(&format!("welcome {nick}")).await;
        client
    }

    async fn command(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Reads events until one starts with `EVENT {prefix}`; returns it.
    async fn expect_prefix(&mut self, prefix: &str) -> String {
        let wanted = format!("EVENT {prefix}");
        loop {
            let line = tokio::time::timeout(WAIT, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("waiting for {wanted:?}"))
                .unwrap()
                .unwrap_or_else(|| panic!("irc_lib_client.py ended before printing {wanted:?}"));
            if line.starts_with(&wanted) {
                return line;
            }
        }
    }

    /// Reads events until `EVENT {event}` exactly.
    async fn expect(&mut self, event: &str) {
        let line = self.expect_prefix(event).await;
        assert_eq!(line, format!("EVENT {event}"));
    }

    /// Quits with `reason` and waits for the script to end by itself.
    async fn quit(mut self, reason: &str) {
        self.command(&format!("quit {reason}")).await;
        self.expect("disconnect").await;
        let status = tokio::time::timeout(WAIT, self.child.wait()).await.expect("script ends in time").unwrap();
        assert!(status.success(), "irc_lib_client.py exited with {status}");
    }
}

#[tokio::test]
async fn irc_library_and_a_plain_text_user_share_the_lobby() {
    let server = start_server().await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    let mut lib = LibClient::start(&server, "pybot").await;

    lib.command("join #lobby").await;
    lib.expect("join pybot #lobby").await;
    alice.expect("*** pybot joined #lobby").await;

    alice.send("hello from plain text").await;
    lib.expect("pubmsg alice #lobby hello from plain text").await;
    lib.command("say #lobby hello from python").await;
    alice.expect("<pybot> hello from python").await;
    lib.command("act #lobby waves").await;
    alice.expect("* pybot waves").await;
    alice.send("/me waves back").await;
    lib.expect("action alice #lobby waves back").await;

    alice.send("/msg pybot just for you").await;
    alice.expect("[private] to pybot: just for you").await;
    lib.expect("privmsg alice just for you").await;
    lib.command("say alice and just for you").await;
    alice.expect("[private] <pybot> and just for you").await;

    lib.command("nick pysnake").await;
    lib.expect("nick pybot pysnake").await;
    alice.expect("*** pybot is now known as pysnake").await;
    alice.send("/nick alicia").await;
    alice.expect("You are now known as alicia.").await;
    lib.expect("nick alice alicia").await;

    lib.quit("see you").await;
    alice.expect("*** pysnake quit (Quit: see you)").await;
    alice.assert_quiet().await;
}

#[tokio::test]
async fn two_irc_library_clients_talk_privately_and_see_nick_changes() {
    let server = start_server().await;
    let mut one = LibClient::start(&server, "py_one").await;
    let mut two = LibClient::start(&server, "py_two").await;

    one.command("say py_two are you there?").await;
    two.expect("privmsg py_one are you there?").await;
    two.command("say py_one yes, only you can read this").await;
    one.expect("privmsg py_two yes, only you can read this").await;

    one.command("join #py").await;
    one.expect("join py_one #py").await;
    two.command("join #py").await;
    two.expect("join py_two #py").await;
    one.expect("join py_two #py").await;
    two.command("say #py in the room now").await;
    one.expect("pubmsg py_two #py in the room now").await;

    one.command("nick py_first").await;
    one.expect("nick py_one py_first").await;
    two.expect("nick py_one py_first").await;
    // Nicks are unique whatever the case; the library gets 433 with the server's hint.
    two.command("nick PY_FIRST").await;
    let refused = two.expect_prefix("error 433 PY_FIRST ").await;
    assert!(refused.contains("try /nick PY_FIRST_"), "{refused}");

    two.command("say py_first still py_two here").await;
    one.expect("privmsg py_two still py_two here").await;
    one.quit("done").await;
    two.expect("quit py_first Quit: done").await;
    two.quit("done too").await;
}

// ---- irssi, in a terminal that tmux keeps ----

/// A program running in a detached tmux session, on a tmux server of its own whose socket lives
/// in a scratch directory. The server is killed when this is dropped (also when the test fails).
struct Tmux {
    name: String,
    dir: TempDir,
}

impl Tmux {
    async fn start(command: &str) -> Tmux {
        require("tmux", &["-V"], "the Debian package tmux").await;
        let dir = TempDir::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let tmux = Tmux { name: unique("charla-test"), dir };
        tmux.run(&["new-session", "-d", "-s", &tmux.name, "-x", "200", "-y", "50", command]).await;
        tmux
    }

    fn command(&self) -> std::process::Command {
        let mut command = std::process::Command::new("tmux");
        // No ~/.tmux.conf: the terminal is the same on every machine.
        command.args(["-f", "/dev/null", "-S"]).arg(self.dir.0.join("socket"));
        command.env_remove("TMUX").stdin(Stdio::null());
        command
    }

    /// Runs a tmux command against this session's server and returns what it printed.
    async fn run(&self, args: &[&str]) -> String {
        let output = Command::from(self.command()).args(args).output().await.expect("tmux runs");
        assert!(
            output.status.success(),
            "tmux {args:?} (did the program in it end?): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types `text` and presses Enter.
    async fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", &self.name, "-l", text]).await;
        self.run(&["send-keys", "-t", &self.name, "Enter"]).await;
    }

    /// What the terminal shows now.
    async fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-J", "-t", &self.name]).await
    }

    /// Waits until the terminal shows `needle`.
    async fn wait_for(&self, needle: &str) {
        wait_until_shown("the terminal", needle, async || self.screen().await).await;
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().args(["kill-server"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// An irssi home with only what irssi needs to connect where it is told: no networks, no
/// autoconnect, no queue between commands (the test server has no flood limit either), and
/// windows that irssi opens itself (queries) come to the front so the terminal shows them.
fn irssi_home() -> TempDir {
    let home = TempDir::new();
    std::fs::create_dir_all(&home.0).unwrap();
    let config = r#"settings = {
  core = { real_name = "irssi user"; user_name = "irssi"; nick = "irssi"; };
  "irc/core" = { cmd_queue_speed = "0msec"; };
  "fe-common/core" = { window_auto_change = "yes"; };
};
"#;
    std::fs::write(home.0.join("config"), config).unwrap();
    home
}

#[tokio::test]
async fn irssi_and_a_plain_text_user_share_the_lobby() {
    require("irssi", &["--version"], "the Debian package irssi").await;
    let server = start_server().await;
    let mut ann = Client::plain_as(server.addr, "ann").await;
    let home = irssi_home();
    let irssi =
        Tmux::start(&format!("irssi --home={} -n ivy -c 127.0.0.1 -p {}", home.0.display(), server.addr.port())).await;
    irssi.wait_for("End of /MOTD command").await;

    irssi.type_line("/join #lobby").await;
    ann.expect("*** ivy joined #lobby").await;
    irssi.wait_for("#lobby: Total of 2 nicks").await;

    irssi.type_line("hello from irssi").await;
    ann.expect("<ivy> hello from irssi").await;
    ann.send("hello from plain text").await;
    irssi.wait_for("ann> hello from plain text").await;
    irssi.type_line("/me waves").await;
    ann.expect("* ivy waves").await;
    ann.send("/me waves back").await;
    irssi.wait_for("* ann waves back").await;

    irssi.type_line("/nick ivy2").await;
    ann.expect("*** ivy is now known as ivy2").await;
    irssi.wait_for("You're now known as ivy2").await;
    ann.send("/nick annie").await;
    irssi.wait_for("ann is now known as annie").await;

    // irssi opens a query window for /msg and shows the answer there.
    irssi.type_line("/msg annie just for you").await;
    ann.expect("[private] <ivy2> just for you").await;
    ann.send("/msg ivy2 and just for you").await;
    irssi.wait_for("annie> and just for you").await;

    irssi.type_line("/quit see you").await;
    ann.expect("*** ivy2 quit (Quit: see you)").await;
    ann.assert_quiet().await;
}

// ---- WeeChat, headless: commands through its FIFO, what it shows through its logs ----

/// `weechat-headless` with a home of its own, connected to the test server as `nick`.
struct WeeChat {
    child: Child,
    home: TempDir,
}

impl WeeChat {
    async fn start(server: &TestServer, nick: &str) -> WeeChat {
        require("weechat-headless", &["--version"], "the Debian package weechat-headless").await;
        let home = TempDir::new();
        std::fs::create_dir_all(&home.0).unwrap();
        let fifo = home.0.join("fifo");
        let setup = [
            format!("/set fifo.file.path {}", fifo.display()),
            "/set logger.file.flush_delay 0".into(),
            format!("/server add charla 127.0.0.1/{} -notls", server.addr.port()),
            format!("/set irc.server.charla.nicks {nick}"),
            // No pause between lines sent (the test server has no flood limit either).
            "/set irc.server.charla.anti_flood_prio_high 0".into(),
            "/set irc.server.charla.anti_flood_prio_low 0".into(),
            "/connect charla".into(),
        ];
        let child = Command::new("weechat-headless")
            .args(["--dir", &home.0.display().to_string(), "--no-connect", "--plugins", "irc,logger,fifo"])
            .args(["--run-command", &setup.join(";")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("weechat-headless starts");
        let weechat = WeeChat { child, home };
        // The commands run in order, so the FIFO exists once the connection is up.
        weechat.wait_for("irc.server.charla", "End of /MOTD command").await;
        weechat
    }

    /// Runs `/command` or says `text` in `buffer` (`irc.server.charla`, `irc.charla.#lobby`).
    async fn input(&self, buffer: &str, text: &str) {
        let mut fifo = tokio::fs::OpenOptions::new()
            .append(true)
            .open(self.home.0.join("fifo"))
            .await
            .expect("WeeChat's FIFO opens");
        fifo.write_all(format!("{buffer} *{text}\n").as_bytes()).await.unwrap();
    }

    fn log_path(&self, buffer: &str) -> PathBuf {
        self.home.0.join("logs").join(format!("{buffer}.weechatlog"))
    }

    /// Waits until the log of `buffer` shows `needle`.
    async fn wait_for(&self, buffer: &str, needle: &str) {
        let path = self.log_path(buffer);
        let read = async || std::fs::read_to_string(&path).unwrap_or_default();
        wait_until_shown(&format!("WeeChat's {buffer}"), needle, read).await;
    }

    /// Quits and waits for WeeChat to end by itself.
    async fn quit(mut self, reason: &str) {
        self.input("irc.server.charla", &format!("/quit {reason}")).await;
        let status = tokio::time::timeout(WAIT, self.child.wait()).await.expect("WeeChat ends in time").unwrap();
        assert!(status.success(), "weechat-headless exited with {status}");
    }
}

#[tokio::test]
async fn weechat_and_a_plain_text_user_share_the_lobby() {
    let server = start_server().await;
    let mut ann = Client::plain_as(server.addr, "ann").await;
    let weechat = WeeChat::start(&server, "wee").await;

    weechat.input("irc.server.charla", "/join #lobby").await;
    ann.expect("*** wee joined #lobby").await;
    weechat.wait_for("irc.charla.#lobby", "Channel #lobby: 2 nicks").await;

    weechat.input("irc.charla.#lobby", "hello from weechat").await;
    ann.expect("<wee> hello from weechat").await;
    ann.send("hello from plain text").await;
    weechat.wait_for("irc.charla.#lobby", "ann\thello from plain text").await;

    weechat.input("irc.server.charla", "/nick wee2").await;
    ann.expect("*** wee is now known as wee2").await;
    ann.send("/nick annie").await;
    weechat.wait_for("irc.charla.#lobby", "ann is now known as annie").await;

    weechat.input("irc.server.charla", "/msg annie just for you").await;
    ann.expect("[private] <wee2> just for you").await;
    ann.send("/msg wee2 and just for you").await;
    weechat.wait_for("irc.charla.annie", "annie\tand just for you").await;

    weechat.quit("see you").await;
    ann.expect("*** wee2 quit (Quit: see you)").await;
    ann.assert_quiet().await;
}

#[tokio::test]
async fn irssi_logs_in_with_sasl_and_others_see_its_account() {
    require("irssi", &["--version"], "the Debian package irssi").await;
    let server = start_server().await;
    let password = "irssi-sasl-password";
    let mut owner = Client::plain_as(server.addr, "saslivy").await;
    owner.send(&format!("/register {password}")).await;
    owner.expect_where(|l| l.starts_with("Account saslivy registered")).await;
    owner.send("/quit").await;
    owner.until_closed().await;

    let home = irssi_home();
    let network = format!(
        r#"chatnets = {{ charla = {{ type = "IRC"; sasl_mechanism = "PLAIN"; sasl_username = "saslivy"; sasl_password = "{password}"; }}; }};
servers = ( {{ address = "127.0.0.1"; port = "{}"; chatnet = "charla"; use_tls = "no"; autoconnect = "no"; }} );
"#,
        server.addr.port()
    );
    let mut config = std::fs::read_to_string(home.0.join("config")).unwrap();
    config.push_str(&network);
    std::fs::write(home.0.join("config"), config).unwrap();
    let irssi = Tmux::start(&format!("irssi --home={} -n saslivy -c charla", home.0.display())).await;
    irssi.wait_for("You are now logged in as saslivy").await;
    irssi.wait_for("End of /MOTD command").await;

    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    bob.send("WHOIS saslivy").await;
    assert_eq!(bob.expect("330").await.params[1..3], ["saslivy", "saslivy"]);
}
