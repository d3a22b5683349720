//! IRC clients nobody here wrote — the Python `irc` library — in the same room as a plain-text
//! user, over the one port. Each test drives the real client program and checks both directions:
//! what the plain-text user reads and what the IRC client shows.
//!
//! The programs must be installed (`scripts/test.sh` installs them): a missing one fails the test.

mod common;

use std::process::Stdio;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

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
    alice.expect("* pybot joined #lobby").await;

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
    alice.expect("* pybot is now known as pysnake").await;
    alice.send("/nick alicia").await;
    alice.expect("You are now known as alicia.").await;
    lib.expect("nick alice alicia").await;

    lib.quit("see you").await;
    alice.expect("* pysnake quit (Quit: see you)").await;
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
