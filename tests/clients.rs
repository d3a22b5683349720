//! Real client programs against a real server: the original lab client (its Python stand-in),
//! `charla connect` (the built binary) and a raw socket as `nc` would use, all in one room.

mod common;

use std::process::Stdio;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A client program run with piped standard input and output.
struct Program {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Program {
    fn start(command: &mut Command) -> Program {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("client program starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Program { child, stdin, stdout }
    }

    async fn type_line(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Reads printed lines until one contains `needle`.
    async fn expect(&mut self, needle: &str) {
        loop {
            let line = tokio::time::timeout(WAIT, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("waiting for {needle:?}"))
                .unwrap()
                .unwrap_or_else(|| panic!("program ended before printing {needle:?}"));
            if line.contains(needle) {
                return;
            }
        }
    }
}

#[tokio::test]
async fn lab_client_charla_connect_and_nc_chat_together() {
    let server = start_server().await;
    let port = server.addr.port().to_string();
    let mut nc = Client::plain_as(server.addr, "nc_user").await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab_client.py");
    let mut lab = Program::start(Command::new("python3").args([script, "127.0.0.1", &port]));
    lab.expect("Welcome to the chatroom!").await;
    lab.type_line("/nick lab").await;
    lab.expect("You are now known as lab.").await;
    nc.arrived("lab").await;

    let mut connect = Program::start(Command::new(env!("CARGO_BIN_EXE_charla")).args(["connect", "127.0.0.1", &port]));
    connect.expect("Welcome to the chatroom!").await;
    connect.type_line("/nick cli").await;
    connect.expect("You are now known as cli.").await;
    nc.arrived("cli").await;

    lab.type_line("hola desde el laboratorio").await;
    nc.expect("<lab> hola desde el laboratorio").await;
    connect.expect("<lab> hola desde el laboratorio").await;

    connect.type_line("hello from charla connect").await;
    nc.expect("<cli> hello from charla connect").await;
    lab.expect("<cli> hello from charla connect").await;

    nc.send("and from nc").await;
    lab.expect("<nc_user> and from nc").await;
    connect.expect("<nc_user> and from nc").await;

    // charla connect ends cleanly when its input ends.
    drop(connect.stdin);
    let status = tokio::time::timeout(WAIT, connect.child.wait()).await.unwrap().unwrap();
    assert!(status.success());
    nc.expect("*** cli quit (Connection closed)").await;
}

#[tokio::test]
async fn charla_connect_reports_a_refused_connection() {
    // Bind and drop a listener to find a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = Command::new(env!("CARGO_BIN_EXE_charla"))
        .args(["connect", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot connect to 127.0.0.1:") && stderr.contains("is `charla serve` running there?"),
        "{stderr}"
    );
}

/// `charla connect 127.0.0.1 PORT ARGS…` in line mode, reading `input` as its whole standard
/// input and printing to a pipe no one reads.
fn connect_piped(port: u16, args: &[&str], input: &'static [u8]) -> Child {
    let mut child =
        charla_connect(&["127.0.0.1", &port.to_string()]).args(args).spawn().expect("charla connect starts");
    let mut stdin = child.stdin.take().unwrap();
    tokio::spawn(async move {
        stdin.write_all(input).await.unwrap();
    });
    let mut stdout = child.stdout.take().unwrap();
    tokio::spawn(async move { tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await });
    child
}

#[tokio::test]
async fn charla_connect_pipes_lines_and_exits_when_input_ends() {
    let server = start_server().await;
    let mut nc = Client::plain_as(server.addr, "nc_user").await;
    // All of standard input is there, and ended, before the server has greeted.
    let connect = connect_piped(server.addr.port(), &[], b"a\nb\n");
    let joined = nc.line().await;
    let nick = joined.strip_prefix("*** ").and_then(|l| l.strip_suffix(" joined #lobby")).expect(&joined).to_string();
    assert_eq!(nc.line().await, format!("<{nick}> a"));
    assert_eq!(nc.line().await, format!("<{nick}> b"));
    assert_eq!(nc.line().await, format!("*** {nick} quit (Connection closed)"));
    let output = tokio::time::timeout(WAIT, connect.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn charla_connect_line_mode_takes_nick_and_room_and_is_never_taken_for_irc() {
    let server = start_server().await;
    let mut watcher = Client::plain_as(server.addr, "watcher").await;
    watcher.send("/join #ops").await;
    watcher.expect("You are now in #ops (no one else is here yet).").await;
    // First lines that look like IRC registration, sent before the server could greet.
    let connect = connect_piped(
        server.addr.port(),
        &["--nick", "deploy", "--join", "#ops"],
        b"USER accounts migrated ok\nNICK here\n",
    );
    assert_eq!(watcher.line().await, "*** deploy joined #ops");
    assert_eq!(watcher.line().await, "<deploy> USER accounts migrated ok");
    assert_eq!(watcher.line().await, "<deploy> NICK here");
    assert_eq!(watcher.line().await, "*** deploy quit (Connection closed)");
    let output = tokio::time::timeout(WAIT, connect.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "no warning about the flags");
}

#[tokio::test]
async fn charla_connect_refuses_several_rooms_in_line_mode() {
    let server = start_server().await;
    let connect = connect_piped(server.addr.port(), &["--join", "#a", "--join", "#b"], b"");
    let output = tokio::time::timeout(WAIT, connect.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("one room at a time") && stderr.contains("--join once"), "{stderr}");
}

#[tokio::test]
async fn charla_connect_ends_quietly_when_its_output_is_closed() {
    let server = start_server().await;
    let mut nc = Client::plain_as(server.addr, "nc_user").await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_charla"))
        .args(["connect", "127.0.0.1", &server.addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // `charla connect … | head -1` once head has exited; standard input stays open.
    drop(child.stdout.take());
    let _stdin = child.stdin.take();
    let output = tokio::time::timeout(WAIT, child.wait_with_output()).await.expect("charla connect ends").unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {stderr}", output.status);
    assert_eq!(stderr, "");
    nc.expect_where(|l| l.ends_with(" quit (Connection closed)")).await;
}

#[tokio::test]
async fn charla_connect_sends_nothing_to_a_server_that_does_not_greet() {
    // An IRC-only port, or no chat server at all: it waits for the client to speak first.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let connect = connect_piped(port, &["--nick", "deploy"], b"NICK here\n");
    let (mut socket, _) = silent.accept().await.unwrap();
    let mut received = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut socket, &mut received);
    tokio::time::timeout(WAIT, read).await.expect("charla connect gives up").unwrap();
    assert_eq!(String::from_utf8_lossy(&received), "", "nothing sent");
    let output = tokio::time::timeout(WAIT, connect.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("greeting") && stderr.contains("nothing was sent"), "{stderr}");
}
