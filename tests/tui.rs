//! The full-screen client as a person uses it: the built binary runs in an 80×24 tmux pane
//! against a real server, keys are typed with `send-keys` and the screen is read with
//! `capture-pane`. A plain-text user in the same room checks both directions.
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
    plain.expect("* tuiuser joined #lobby").await;

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
    plain.expect("* tuiuser quit (Quit: see you)").await;
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
