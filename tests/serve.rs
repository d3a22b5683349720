//! `charla serve` as a user runs it, as its own process: its output going away, stopping it,
//! what a clean stop leaves on disk, backups, and its errors and help.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use common::{Client, TempDir, WAIT};
use tokio::process::{Child, Command};

/// `charla serve 127.0.0.1 0 --flood-limit off --data-dir DIR ARGS…`, not yet started.
fn serve_command(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_charla"));
    command
        .args(["serve", "127.0.0.1", "0", "--flood-limit", "off", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Reads the server's first line from `output` and returns the address it listens on.
async fn listening(output: impl std::io::Read + Send + 'static) -> SocketAddr {
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(output).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(WAIT, read).await.expect("charla says where it listens").unwrap().unwrap();
    let addr =
        line.trim_end().strip_prefix("charla listening on ").unwrap_or_else(|| panic!("not the banner: {line:?}"));
    addr.parse().unwrap()
}

/// Sends `signal` (`INT`, `TERM`) and waits for the exit status.
async fn signal(child: &mut Child, signal: &str) -> std::process::ExitStatus {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill runs");
    assert!(sent.success());
    tokio::time::timeout(WAIT, child.wait()).await.expect("charla exits after the signal").unwrap()
}

/// Two plain-text clients: a line one says reaches the other.
async fn relays(addr: SocketAddr) {
    let mut alice = Client::plain_as(addr, "alice").await;
    let mut bob = Client::plain_as(addr, "bob").await;
    alice.arrived("bob").await;
    alice.send("still there?").await;
    bob.expect("<alice> still there?").await;
}

#[tokio::test]
async fn a_server_whose_standard_error_is_gone_still_relays_lines() {
    // `charla serve &` over SSH and the terminal closed, or `charla serve 2>&1 | head -2`:
    // every log line (with debug logging, many) fails to be written.
    let dir = TempDir::new();
    let (output, input) = std::io::pipe().unwrap();
    let (errors, errors_in) = std::io::pipe().unwrap();
    drop(errors);
    let mut child = serve_command(&dir.0, &[])
        .env("RUST_LOG", "debug")
        .stdout(input)
        .stderr(errors_in)
        .spawn()
        .expect("charla starts");
    let addr = listening(output).await;
    relays(addr).await;
    // And again: the first round logged plenty.
    relays(addr).await;
    assert_eq!(child.try_wait().unwrap(), None, "still running");
}

#[tokio::test]
async fn a_server_whose_standard_error_is_not_read_still_relays_lines() {
    // `charla serve 2>&1 | less`, and less waits for a key: the pipe fills up and every write
    // to it would block.
    let dir = TempDir::new();
    let (output, input) = std::io::pipe().unwrap();
    let (_unread, errors_in) = std::io::pipe().unwrap();
    // No per-address cap: the passers close one after the other, faster than a loaded server
    // may notice, and the cap is not what this test is about.
    let _server = serve_command(&dir.0, &["--max-conns-per-ip", "0"])
        .stdout(input)
        .stderr(errors_in)
        .spawn()
        .expect("charla starts");
    let addr = listening(output).await;
    // Each connection logs a line when it comes and one when it goes, some 200 bytes: far more
    // than the 64 KiB a pipe holds.
    let passers = async {
        for _ in 0..1000 {
            let mut passer = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut passer, b"hi\n").await.unwrap();
        }
    };
    tokio::time::timeout(3 * WAIT, passers).await.expect("the server keeps accepting connections");
    relays(addr).await;
}

#[tokio::test]
async fn stopping_a_server_whose_output_pipe_is_gone_says_goodbye_and_exits_0() {
    // `charla serve 2>&1 | tee log`, then Ctrl-C: the terminal sends SIGINT to tee as well, so
    // both standard output and standard error are a pipe without a reader when charla stops.
    for sig in ["INT", "TERM"] {
        let dir = TempDir::new();
        let (output, input) = std::io::pipe().unwrap();
        let mut child =
            serve_command(&dir.0, &[]).stdout(input.try_clone().unwrap()).stderr(input).spawn().expect("charla starts");
        let addr = listening(output).await;
        let mut client = Client::plain_as(addr, "stayer").await;
        // The reader is gone (`listening` dropped it).
        let status = signal(&mut child, sig).await;
        assert_eq!(status.code(), Some(0), "SIG{sig}: {status}");
        client.expect("*** disconnected: Server shutting down").await;
    }
}

/// Starts `charla serve` on `data_dir` with its output piped to no one, and returns it with
/// the address it listens on.
async fn start(data_dir: &Path, args: &[&str]) -> (Child, SocketAddr) {
    let (output, input) = std::io::pipe().unwrap();
    let child = serve_command(data_dir, args).stdout(input).stderr(Stdio::null()).spawn().expect("charla starts");
    (child, listening(output).await)
}

/// The last 50 lines of `#lobby` as `/history` shows them, each `[HH:MM] ` cut off, from a
/// server started with `--join-replay 0`.
async fn lobby_history(addr: SocketAddr) -> Vec<String> {
    let (mut reader, _) = Client::plain(addr).await;
    reader.send("/history 50").await;
    let mut shown = Vec::new();
    loop {
        let line = reader.line().await;
        if line == "--- end of history ---" || line == "No messages in #lobby yet." {
            return shown;
        }
        if let Some((_, said)) = line.split_once("] ") {
            shown.push(said.to_string());
        }
    }
}

#[tokio::test]
async fn after_a_clean_stop_charla_db_alone_holds_all_history() {
    let dir = TempDir::new();
    let (mut child, addr) = start(&dir.0, &[]).await;
    let mut alice = Client::plain_as(addr, "alice").await;
    let mut bob = Client::plain_as(addr, "bob").await;
    alice.arrived("bob").await;
    for n in 0..35 {
        alice.send(&format!("message {n}")).await;
    }
    bob.expect("<alice> message 34").await;
    assert_eq!(signal(&mut child, "TERM").await.code(), Some(0));
    // A backup made by copying the database file alone, as people do.
    let copy = TempDir::new();
    std::fs::create_dir_all(&copy.0).unwrap();
    std::fs::copy(dir.0.join("charla.db"), copy.0.join("charla.db")).unwrap();
    let (_restored, addr) = start(&copy.0, &["--join-replay", "0"]).await;
    let expected: Vec<String> = (0..35).map(|n| format!("<alice> message {n}")).collect();
    assert_eq!(lobby_history(addr).await, expected);
}

#[tokio::test]
async fn charla_backup_copies_the_history_of_a_running_server() {
    let dir = TempDir::new();
    let (_server, addr) = start(&dir.0, &[]).await;
    let mut alice = Client::plain_as(addr, "alice").await;
    for n in 0..35 {
        alice.send(&format!("message {n}")).await;
    }
    // A history read waits for the writer: every message is committed once it answers.
    alice.send("/history 1").await;
    alice.expect_where(|line| line.ends_with("<alice> message 34")).await;
    let backups = TempDir::new();
    std::fs::create_dir_all(&backups.0).unwrap();
    let file = backups.0.join("backup.db");
    let backup = Command::new(env!("CARGO_BIN_EXE_charla"))
        .arg("backup")
        .arg(&file)
        .arg("--data-dir")
        .arg(&dir.0)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&backup.stdout);
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    assert!(stdout.starts_with("backed up ") && stdout.contains("backup.db"), "{stdout}");
    // The server goes on meanwhile.
    alice.send("after the backup").await;
    alice.send("/history 1").await;
    alice.expect_where(|line| line.ends_with("<alice> after the backup")).await;
    // Restored, as README says: the backup as charla.db of a data directory.
    let restored = TempDir::new();
    std::fs::create_dir_all(&restored.0).unwrap();
    std::fs::copy(&file, restored.0.join("charla.db")).unwrap();
    let (_restored, addr) = start(&restored.0, &["--join-replay", "0"]).await;
    let expected: Vec<String> = (0..35).map(|n| format!("<alice> message {n}")).collect();
    assert_eq!(lobby_history(addr).await, expected);
}

#[tokio::test]
async fn charla_backup_says_when_there_is_nothing_to_back_up() {
    let dir = TempDir::new();
    let output = Command::new(env!("CARGO_BIN_EXE_charla"))
        .args(["backup", "copy.db", "--data-dir"])
        .arg(&dir.0)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no history database at") && stderr.contains("--data-dir"), "{stderr}");
}

/// Runs `charla ARGS…` to its end and returns its exit code and standard error.
async fn charla(args: &[&str]) -> (Option<i32>, String) {
    let run = Command::new(env!("CARGO_BIN_EXE_charla")).args(args).stdin(Stdio::null()).output();
    let output = tokio::time::timeout(WAIT, run).await.expect("charla ends").unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn a_port_that_is_not_a_number_is_named_as_such() {
    let (code, stderr) = charla(&["serve", "--port", "abc"]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("invalid value 'abc' for '--port <PORT>': a port is a number from 1 to 65535"), "{stderr}");
    let (code, stderr) = charla(&["serve", "127.0.0.1", "abc"]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("a port is a number from 1 to 65535"), "{stderr}");
    // A mistyped flag: the usage line shows what may be given, and no option as if required.
    let (code, stderr) = charla(&["serve", "--prot", "1414"]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("Usage: charla serve [HOST] [PORT] [OPTIONS]"), "{stderr}");
    assert!(!stderr.contains("--oper"), "{stderr}");
}

#[tokio::test]
async fn an_address_this_machine_does_not_have_is_named_as_such() {
    let dir = TempDir::new();
    let data_dir = dir.0.to_str().unwrap();
    // 192.0.2.0/24 is reserved for documentation: no machine has it.
    let (code, stderr) = charla(&["serve", "--listen", "192.0.2.1:1313", "--data-dir", data_dir]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("192.0.2.1 is not an address of this machine"), "{stderr}");
    assert!(!stderr.contains("another"), "{stderr}");
}

#[tokio::test]
async fn a_port_in_use_is_named_as_such() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = TempDir::new();
    let (code, stderr) = charla(&["serve", "127.0.0.1", &port, "--data-dir", dir.0.to_str().unwrap()]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&format!("another program is using port {port}")), "{stderr}");
}

#[tokio::test]
async fn a_data_dir_that_is_a_file_is_named_as_such() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("notes.txt");
    std::fs::write(&file, "not a directory").unwrap();
    let file = file.to_str().unwrap();
    let (code, stderr) = charla(&["serve", "127.0.0.1", "0", "--data-dir", file]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&format!("{file} is a file, not a directory")), "{stderr}");
    let inside = format!("{file}/data");
    let (code, stderr) = charla(&["serve", "127.0.0.1", "0", "--data-dir", &inside]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&format!("{file} is a file, not a directory")), "{stderr}");
}

#[tokio::test]
async fn a_data_dir_on_a_file_system_without_directories_is_named_as_such() {
    let (code, stderr) = charla(&["serve", "127.0.0.1", "0", "--data-dir", "/proc/charla"]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("/proc lets no directory be created in it"), "{stderr}");
}

#[tokio::test]
async fn a_server_name_that_does_not_resolve_is_named_as_such() {
    // `.invalid` never resolves (RFC 6761).
    let (code, stderr) = charla(&["connect", "nosuchhost.invalid", "--plain"]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot find the server nosuchhost.invalid:1313: its name does not resolve"), "{stderr}");
    assert!(!stderr.contains("running there"), "{stderr}");
}

/// Whether `/oper NAME PASSWORD` makes a plain-text user a server operator.
async fn opers(addr: SocketAddr, name: &str, password: &str) -> bool {
    let (mut client, _) = Client::plain(addr).await;
    client.send(&format!("/oper {name} {password}")).await;
    let answer = client.line().await;
    answer == "You are now a server operator."
}

#[tokio::test]
async fn operators_come_from_a_file_or_the_environment_too() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("opers");
    std::fs::write(&file, "# who may /kill\nadmin:s3cret\n\nsecond:an0ther\n").unwrap();
    let data = dir.0.join("data");
    let (mut server, addr) = start(&data, &["--oper-file", file.to_str().unwrap()]).await;
    assert!(opers(addr, "admin", "s3cret").await);
    assert!(opers(addr, "second", "an0ther").await);
    assert!(!opers(addr, "admin", "wrong").await);
    assert_eq!(signal(&mut server, "TERM").await.code(), Some(0));

    let (output, input) = std::io::pipe().unwrap();
    let _server = serve_command(&data, &[])
        .env("CHARLA_OPER", "env:pw1 other:pw2")
        .stdout(input)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = listening(output).await;
    assert!(opers(addr, "env", "pw1").await);
    assert!(opers(addr, "other", "pw2").await);
}

#[tokio::test]
async fn a_bad_operator_line_is_named_without_showing_it() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("opers");
    std::fs::write(&file, "admin:ok\nadminsecretpassword\n").unwrap();
    let (code, stderr) = charla(&["serve", "--oper-file", file.to_str().unwrap()]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&format!("line 2 of the --oper-file {} is not NAME:PASSWORD", file.display())), "{stderr}");
    assert!(!stderr.contains("adminsecretpassword"), "{stderr}");
}

/// The line of the banner that says how to join, from `charla serve` run in `cwd` with `path`
/// as its PATH.
async fn join_line(cwd: &Path, path: &std::ffi::OsStr) -> String {
    let dir = TempDir::new();
    let (output, input) = std::io::pipe().unwrap();
    let mut child = serve_command(&dir.0, &[])
        .current_dir(cwd)
        .env("PATH", path)
        .stdout(input)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let read = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(output).lines();
        lines.next();
        lines.next().unwrap().unwrap()
    });
    let line = tokio::time::timeout(WAIT, read).await.expect("charla prints its banner").unwrap();
    assert_eq!(signal(&mut child, "TERM").await.code(), Some(0));
    line
}

#[tokio::test]
async fn the_banner_shows_a_connect_command_that_works_here() {
    let binary = Path::new(env!("CARGO_BIN_EXE_charla")).canonicalize().unwrap();
    let elsewhere = TempDir::new();
    std::fs::create_dir_all(&elsewhere.0).unwrap();
    // After `cargo run` there is no `charla` on PATH: the banner names the binary itself.
    let line = join_line(&elsewhere.0, "/usr/bin:/bin".as_ref()).await;
    assert!(line.contains(&format!("|   {} connect 127.0.0.1 ", binary.display())), "{line}");
    // From the project directory, as `./target/…/charla`.
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).canonicalize().unwrap();
    let line = join_line(&project, "/usr/bin:/bin".as_ref()).await;
    let relative = binary.strip_prefix(&project).unwrap();
    assert!(line.contains(&format!("|   ./{} connect 127.0.0.1 ", relative.display())), "{line}");
    // Installed (`cargo install --path .`): plain `charla`.
    let bin = elsewhere.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&binary, bin.join("charla")).unwrap();
    let line = join_line(&elsewhere.0, bin.as_os_str()).await;
    assert!(line.contains("|   charla connect 127.0.0.1 "), "{line}");
}

/// What an IRC client sees of a server at `addr`: its name (the source of its lines), the
/// rooms one may be in (`CHANLIMIT`), the MOTD lines.
async fn what_irc_sees(addr: SocketAddr) -> (String, String, Vec<String>) {
    let nick = fresh_nick("looker");
    let mut irc = common::Irc { client: Client::connect(addr).await, nick: nick.clone() };
    irc.send(&format!("NICK {nick}")).await;
    irc.send("USER looker 0 * :Looker").await;
    let welcome = irc.expect("001").await;
    let name = welcome.source.as_deref().unwrap_or_default().to_string();
    let mut chanlimit = String::new();
    let mut motd = Vec::new();
    loop {
        let message = irc.next().await;
        match message.command.as_str() {
            "005" => {
                if let Some(limit) = message.params.iter().find_map(|p| p.strip_prefix("CHANLIMIT=")) {
                    chanlimit = limit.to_string();
                }
            }
            "372" => motd.push(message.params[1].to_string()),
            "376" | "422" => return (name, chanlimit, motd),
            _ => {}
        }
    }
}

/// `prefix` and a number no other client of this test run has: a client that has just gone
/// may hold its nick a moment longer.
fn fresh_nick(prefix: &str) -> String {
    static CLIENTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("{prefix}{}", CLIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// A file `name` in `dir` holding `text`; its path.
fn file(dir: &Path, name: &str, text: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Whether IRC `OPER name password` makes a new client an operator (381) at `addr`.
async fn irc_opers(addr: SocketAddr, name: &str, password: &str) -> bool {
    let mut irc = common::Irc::register(addr, &fresh_nick("operator"), &[]).await;
    irc.send(&format!("OPER {name} {password}")).await;
    irc.expect_any(&["381", "464"]).await.command == "381"
}

#[tokio::test]
async fn a_config_file_and_the_environment_give_the_same_server_as_the_flags() {
    let dir = TempDir::new();
    let motd = file(&dir.0, "motd", "Hola desde el archivo.\n");
    let flags = [
        "--server-name",
        "chat.example.org",
        "--max-rooms-per-user",
        "7",
        "--oper",
        "boss:s3cret",
        "--motd",
        &motd,
        "--ack-when-stored",
    ];
    let (_by_flags, addr) = start(&dir.0.join("flags"), &flags).await;
    let seen = what_irc_sees(addr).await;
    assert_eq!(seen, ("chat.example.org".into(), "#:7".into(), vec!["- Hola desde el archivo.".to_string()]));
    assert!(irc_opers(addr, "boss", "s3cret").await);

    let config = file(
        &dir.0,
        "charla.toml",
        &format!(
            "server-name = \"chat.example.org\"\nmax-rooms-per-user = 7\noper = [\"boss:s3cret\"]\nmotd = \"{motd}\"\nack-when-stored = true\n"
        ),
    );
    let (_by_file, addr) = start(&dir.0.join("file"), &["--config", &config]).await;
    assert_eq!(what_irc_sees(addr).await, seen);
    assert!(irc_opers(addr, "boss", "s3cret").await);

    let (output, input) = std::io::pipe().unwrap();
    let _by_env = serve_command(&dir.0.join("env"), &[])
        .env("CHARLA_SERVER_NAME", "chat.example.org")
        .env("CHARLA_MAX_ROOMS_PER_USER", "7")
        .env("CHARLA_OPER", "boss:s3cret")
        .env("CHARLA_MOTD", &motd)
        .env("CHARLA_ACK_WHEN_STORED", "true")
        .stdout(input)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = listening(output).await;
    assert_eq!(what_irc_sees(addr).await, seen);
    assert!(irc_opers(addr, "boss", "s3cret").await);
}

#[tokio::test]
async fn the_command_line_wins_over_the_environment_which_wins_over_the_config_file() {
    let dir = TempDir::new();
    let config = file(&dir.0, "charla.toml", "server-name = \"file.example\"\nmax-rooms-per-user = 5\n");
    let run = |data: &str, args: &[&str], env: &[(&str, &str)]| {
        let (output, input) = std::io::pipe().unwrap();
        let mut command = serve_command(&dir.0.join(data), args);
        command.arg("--config").arg(&config).envs(env.iter().copied()).stdout(input).stderr(Stdio::null());
        (command.spawn().unwrap(), output)
    };
    let (_file, output) = run("a", &[], &[]);
    let (name, chanlimit, _) = what_irc_sees(listening(output).await).await;
    assert_eq!((name.as_str(), chanlimit.as_str()), ("file.example", "#:5"));

    let (_env, output) = run("b", &[], &[("CHARLA_SERVER_NAME", "env.example")]);
    let (name, chanlimit, _) = what_irc_sees(listening(output).await).await;
    assert_eq!((name.as_str(), chanlimit.as_str()), ("env.example", "#:5"));

    let (_line, output) = run("c", &["--server-name", "line.example"], &[("CHARLA_SERVER_NAME", "env.example")]);
    let (name, chanlimit, _) = what_irc_sees(listening(output).await).await;
    assert_eq!((name.as_str(), chanlimit.as_str()), ("line.example", "#:5"));
}

#[tokio::test]
async fn a_config_file_with_a_mistake_is_named_with_its_key() {
    let dir = TempDir::new();
    let cases = [
        ("max-conn = 10\n", "sets 'max-conn', which is not a setting of charla serve"),
        ("max-conns = \"lots\"\n", "sets 'max-conns' to a value it does not take: invalid digit found in string"),
        ("listen = 1313\n", "sets 'listen' to a value it does not take"),
        ("ack-when-stored = \"yes\"\n", "sets 'ack-when-stored' to a string, but it takes true or false"),
        ("server-name = [\"a\", \"b\"]\n", "sets 'server-name' to a list, but it takes one NAME"),
        ("max-conns = \n", "is not valid TOML"),
    ];
    for (n, (text, said)) in cases.into_iter().enumerate() {
        let config = file(&dir.0, &format!("bad{n}.toml"), text);
        let (code, stderr) = charla(&["serve", "--config", &config]).await;
        assert_eq!(code, Some(1), "{text}");
        assert!(stderr.contains(said), "{text}: {stderr}");
        assert!(stderr.contains(&format!("the config file {config}")), "{text}: {stderr}");
    }
    let (code, stderr) = charla(&["serve", "--config", "/nonexistent/charla.toml"]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot read the config file /nonexistent/charla.toml"), "{stderr}");
}

/// The server's log lines, one by one, from its standard error.
struct Log(tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>);

impl Log {
    /// Reads log lines until one contains `text`; returns it.
    async fn until(&mut self, text: &str) -> String {
        let read = async {
            while let Some(line) = self.0.next_line().await.unwrap() {
                if line.contains(text) {
                    return line;
                }
            }
            panic!("the log ended before a line with {text:?}");
        };
        tokio::time::timeout(WAIT, read).await.unwrap_or_else(|_| panic!("no log line with {text:?}"))
    }
}

#[tokio::test]
async fn sighup_reloads_the_motd_operators_and_limits_and_keeps_connections() {
    let dir = TempDir::new();
    let motd = file(&dir.0, "motd", "Primera versión.\n");
    let opers = file(&dir.0, "opers", "admin:old\n");
    let config = file(&dir.0, "charla.toml", "max-conns-per-ip = 50\n");
    let (output, input) = std::io::pipe().unwrap();
    let mut server = serve_command(&dir.0.join("data"), &["--motd", &motd, "--oper-file", &opers, "--config", &config])
        .stdout(input)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = Log(tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(server.stderr.take().unwrap())));
    let addr = listening(output).await;
    assert_eq!(what_irc_sees(addr).await.2, ["- Primera versión."]);
    let mut stayer = common::Irc::register(addr, "stayer", &[]).await;
    let mut plain = Client::connect(addr).await;
    plain.expect("Primera versión.").await;

    std::fs::write(&motd, format!("Segunda versión.\n{}\n", "larga ".repeat(100))).unwrap();
    std::fs::write(&opers, "admin:new\nsecond:two\n").unwrap();
    std::fs::write(&config, "max-conns-per-ip = 60\n").unwrap();
    signal_only(&server, "HUP");
    assert!(log.until("motd: ").await.contains("motd: reloaded (3 lines)"));
    assert!(log.until("opers: ").await.contains("opers: 1 → 2"));
    assert!(log.until("limits: ").await.contains("limits: max-conns-per-ip 50 → 60"));

    let (_, _, seen) = what_irc_sees(addr).await;
    assert_eq!(seen[0], "- Segunda versión.");
    assert_eq!(seen.len(), 3, "a 600-byte line is split in two: {seen:?}");
    assert!(seen.iter().all(|line| line.len() <= 402), "{seen:?}");
    assert!(irc_opers(addr, "admin", "new").await);
    assert!(irc_opers(addr, "second", "two").await);
    assert!(!irc_opers(addr, "admin", "old").await);
    let mut newcomer = Client::connect(addr).await;
    assert_eq!(newcomer.line().await, "Welcome to the chatroom!");
    assert!(newcomer.line().await.starts_with("You are "));
    assert_eq!(newcomer.line().await, "Segunda versión.");
    assert_eq!(newcomer.line().await.len(), 6 * 66 - 1, "split at a space, within 400 bytes");

    // Connections from before the reload are still there.
    stayer.send("PING :still").await;
    assert_eq!(stayer.expect("PONG").await.params.last().map(|p| p.as_str()), Some("still"));
    plain.send("/nick plainstayer").await;
    plain.expect("You are now known as plainstayer.").await;

    // A file that cannot be read keeps what was there, and the log says why.
    std::fs::remove_file(&motd).unwrap();
    std::fs::write(&config, "max-conns-per-ip = \"many\"\n").unwrap();
    signal_only(&server, "HUP");
    let config_line = log.until("config: ").await;
    assert!(config_line.contains("sets 'max-conns-per-ip' to a value it does not take"), "{config_line}");
    assert!(config_line.contains("keeping the previous settings"), "{config_line}");
    let motd_line = log.until("motd: ").await;
    assert!(motd_line.contains("cannot read the --motd file"), "{motd_line}");
    assert!(motd_line.contains("keeping the previous one"), "{motd_line}");
    assert!(log.until("limits: ").await.contains("limits: unchanged"));
    assert_eq!(what_irc_sees(addr).await.2[0], "- Segunda versión.");
    assert_eq!(signal(&mut server, "TERM").await.code(), Some(0));
}

/// The nicks in the next NAMES reply for `room`.
async fn names(irc: &mut common::Irc, room: &str) -> Vec<String> {
    irc.send(&format!("NAMES {room}")).await;
    let mut nicks = Vec::new();
    loop {
        let message = irc.expect_any(&["353", "366"]).await;
        if message.command == "366" {
            nicks.sort();
            return nicks;
        }
        nicks.extend(message.params[3].split(' ').map(|n| n.trim_start_matches(['@', '+']).to_string()));
    }
}

#[tokio::test]
async fn sighup_reloads_the_size_above_which_rooms_take_newcomers_in_quietly() {
    let dir = TempDir::new();
    let config = file(&dir.0, "charla.toml", "quiet-joins-above = 200\n");
    let (output, input) = std::io::pipe().unwrap();
    let mut server = serve_command(&dir.0.join("data"), &["--config", &config])
        .stdout(input)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = Log(tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(server.stderr.take().unwrap())));
    let addr = listening(output).await;
    let mut alice = common::Irc::register(addr, "alice", &[]).await;
    alice.join("#before").await;
    let mut bob = common::Irc::register(addr, "bob", &[]).await;
    bob.join("#before").await;
    assert_eq!(names(&mut alice, "#before").await, ["alice", "bob"], "a small room shows every join");

    std::fs::write(&config, "quiet-joins-above = 1\n").unwrap();
    signal_only(&server, "HUP");
    assert!(log.until("limits: ").await.contains("limits: quiet-joins-above 200 → 1"));
    alice.join("#after").await;
    bob.join("#after").await;
    assert_eq!(names(&mut alice, "#after").await, ["alice"], "bob, the second member, came in quietly");
    assert_eq!(names(&mut alice, "#before").await, ["alice", "bob"], "who was shown stays shown");
    assert_eq!(signal(&mut server, "TERM").await.code(), Some(0));
}

/// Sends `signal` to a running server without waiting for anything.
fn signal_only(child: &Child, signal: &str) {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill runs");
    assert!(sent.success());
}
