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
    nc.expect("* cli quit (Connection closed)").await;
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
