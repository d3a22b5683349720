//! The plain-text protocol over real sockets: the original lab's chat and everything around it.

mod common;

use std::time::Duration;

use charla::server::Limits;
use common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn three_clients_chat_like_the_original_lab() {
    let server = start_server().await;
    // The greeting arrives without the client sending anything.
    let (mut a, a_nick) = Client::plain(server.addr).await;
    let (mut b, b_nick) = Client::plain(server.addr).await;
    a.expect(&format!("*** {b_nick} joined #lobby")).await;
    let (mut c, c_nick) = Client::plain(server.addr).await;
    a.expect(&format!("*** {c_nick} joined #lobby")).await;
    b.expect(&format!("*** {c_nick} joined #lobby")).await;
    assert_ne!(a_nick, b_nick);

    // Raw `text\n` writes, as the original client does.
    a.send_raw(b"hola a todos\n").await;
    assert_eq!(b.line().await, format!("<{a_nick}> hola a todos"));
    assert_eq!(c.line().await, format!("<{a_nick}> hola a todos"));
    c.send_raw(b"hi\r\n").await;
    assert_eq!(a.line().await, format!("<{c_nick}> hi"));
    assert_eq!(b.line().await, format!("<{c_nick}> hi"));
    // No echo to the sender.
    a.assert_quiet().await;
    c.assert_quiet().await;
}

#[tokio::test]
async fn piped_text_that_starts_like_an_irc_command_or_http_is_still_text() {
    let server = start_server().await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    // Sent at once on connecting, as `echo … | nc` does: no waiting for the greeting.
    for line in ["User accounts migrated OK", "PASS all tests green", "nick here", "GET the build from CI first"] {
        let mut piped = Client::connect(server.addr).await;
        piped.send(line).await;
        assert_eq!(piped.line().await, "Welcome to the chatroom!");
        alice.expect_where(|l| l.ends_with(&format!("> {line}"))).await;
    }
}

#[tokio::test]
async fn nick_changes_and_collisions() {
    let server = start_server().await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    let (mut other, nick) = Client::plain(server.addr).await;
    alice.expect(&format!("*** {nick} joined #lobby")).await;

    other.send("/nick ALICE").await;
    assert_eq!(other.line().await, "error: nick 'ALICE' is taken, try /nick ALICE_");
    other.send("/nick 9lives").await;
    assert!(other.line().await.starts_with("error: '9lives' is not a valid nick"));
    other.send("/nick").await;
    assert_eq!(other.line().await, "error: usage: /nick NAME");
    other.send("/nick bob").await;
    assert_eq!(other.line().await, "You are now known as bob.");
    assert_eq!(alice.line().await, format!("*** {nick} is now known as bob"));
    other.send("hello").await;
    assert_eq!(alice.line().await, "<bob> hello");
}

#[tokio::test]
async fn rooms_and_private_messages_are_isolated() {
    let server = start_server().await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    let mut bob = Client::plain_as(server.addr, "bob").await;
    let mut carol = Client::plain_as(server.addr, "carol").await;

    bob.send("/join rust").await;
    bob.expect("You are now in #rust (no one else is here yet).").await;
    carol.send("/join #rust").await;
    carol.expect("You are now in #rust with bob.").await;
    bob.expect("*** carol joined #rust").await;
    alice.arrived("carol").await;
    alice.expect("*** bob left #lobby (moved to #rust)").await;
    alice.expect("*** carol left #lobby (moved to #rust)").await;

    carol.send("only for rust").await;
    assert_eq!(bob.line().await, "<carol> only for rust");
    alice.send("only for the lobby").await;
    alice.send("/msg bob just between us").await;
    assert_eq!(alice.line().await, "[private] to bob: just between us");
    assert_eq!(bob.line().await, "[private] <alice> just between us");
    // carol saw neither the lobby line nor the private message.
    carol.assert_quiet().await;
    bob.assert_quiet().await;

    alice.send("/msg nobody hi").await;
    assert_eq!(alice.line().await, "error: no one called 'nobody' is online; /who lists who is here");
    alice.send("/me waves").await;
    alice.send("/rooms").await;
    assert_eq!(alice.line().await, "2 room(s):");
    assert_eq!(alice.line().await, "  #lobby (1 here)");
    assert_eq!(alice.line().await, "  #rust (2 here)");
    bob.send("/who").await;
    assert_eq!(bob.line().await, "2 in #rust: @bob, carol");
}

#[tokio::test]
async fn unknown_commands_and_bad_arguments_get_an_error_not_a_disconnect() {
    let server = start_server().await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    let mut bob = Client::plain_as(server.addr, "bob").await;
    alice.arrived("bob").await;
    bob.send("/frobnicate now").await;
    assert_eq!(
        bob.line().await,
        "error: unknown command /frobnicate; /help lists the commands (start a line with // to say it as text)"
    );
    bob.send("/join bad,room").await;
    assert!(bob.line().await.starts_with("error: '#bad,room' is not a valid room name"));
    bob.send("/msg alice").await;
    assert_eq!(bob.line().await, "error: usage: /msg NICK TEXT");
    bob.send("//slash is text").await;
    assert_eq!(alice.line().await, "<bob> /slash is text");
    bob.send("/help").await;
    assert_eq!(bob.line().await, "commands:");
    let mut help = Vec::new();
    while help.last().is_none_or(|l: &String| !l.contains("//TEXT")) {
        help.push(bob.line().await);
    }
    let help = help.join("\n");
    for command in ["/nick", "/join", "/part", "/rooms", "/who", "/history", "/msg", "/me", "/topic", "/away"]
        .into_iter()
        .chain(["/invite NICK [#ROOM]", "/kick", "/ban", "/unban", "/op", "/deop", "/voice", "/devoice", "/mode"])
        .chain(["/oper NAME PASSWORD", "/kill NICK [REASON]", "/quit"])
    {
        assert!(help.contains(command), "/help lists {command}:\n{help}");
    }
}

#[tokio::test]
async fn a_client_that_does_not_read_is_still_heard() {
    // A queue deep enough not to overflow (100 MB): only the socket is full.
    let server = start_server_with(Limits { sendq: 400_000, ..test_limits() }).await;
    let mut watcher = Client::plain_as(server.addr, "watcher").await;
    let mut busy = Client::plain_as(server.addr, "busy").await;
    watcher.arrived("busy").await;

    // About 20 MB of answers, far more than the socket buffers hold, and `busy` reads none of
    // them: its lines are read and handled all the same, in order.
    busy.send_raw("/help\n".repeat(20_000).as_bytes()).await;
    busy.send("still here").await;
    assert_eq!(watcher.line().await, "<busy> still here");
}

#[tokio::test]
async fn a_slow_reader_is_dropped_and_the_room_keeps_chatting() {
    let limits = Limits { sendq: 32, ..test_limits() };
    let server = start_server_with(limits).await;
    let mut sender = Client::plain_as(server.addr, "sender").await;
    let mut reader = Client::plain_as(server.addr, "reader").await;
    let slow = Client::plain_as(server.addr, "slow").await;
    sender.arrived("slow").await;
    reader.arrived("slow").await;

    // `slow` never reads again. Send far more than its socket buffers and queue can hold, in
    // steps the reader keeps up with; lines short enough to stay one message each.
    let line = "x".repeat(400);
    let mut slow_quit = Vec::new();
    for step in 0..1500 {
        for i in 0..20 {
            sender.send(&format!("{step}.{i} {line}")).await;
        }
        for i in 0..20 {
            let mut got = reader.line().await;
            if got.starts_with("*** slow quit") {
                slow_quit.push(got);
                got = reader.line().await;
            }
            assert!(
                got.starts_with(&format!("<sender> {step}.{i} ")),
                "in order, none lost: {}",
                &got[..40.min(got.len())]
            );
        }
    }
    assert_eq!(slow_quit, ["*** slow quit (SendQ exceeded (not reading fast enough))"]);
    sender.expect("*** slow quit (SendQ exceeded (not reading fast enough))").await;
    reader.send("/who").await;
    assert_eq!(reader.line().await, "2 in #lobby: reader, @sender");
    drop(slow);
}

#[tokio::test]
async fn a_megabyte_without_newline_is_refused_and_the_client_goes_on() {
    let server = start_server().await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    let mut bob = Client::plain_as(server.addr, "bob").await;
    alice.arrived("bob").await;
    bob.send_raw(&vec![b'y'; 1 << 20]).await;
    assert_eq!(
        bob.line().await,
        "error: line too long (over 4096 bytes); it was not sent. Split it into shorter lines."
    );
    bob.send_raw(b"\nafter\n").await;
    assert_eq!(alice.line().await, "<bob> after");
    alice.assert_quiet().await;
}

#[tokio::test]
async fn invalid_utf8_is_replaced() {
    let server = start_server().await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    let mut bob = Client::plain_as(server.addr, "bob").await;
    alice.arrived("bob").await;
    bob.send_raw(b"caf\xe9 \xff\xfe ok\n").await;
    assert_eq!(alice.line().await, "<bob> caf\u{fffd} \u{fffd}\u{fffd} ok");
    bob.send("still here").await;
    assert_eq!(alice.line().await, "<bob> still here");
}

#[tokio::test]
async fn escape_sequences_never_reach_another_terminal() {
    let server = start_server().await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    let mut bob = Client::plain_as(server.addr, "bob").await;
    alice.arrived("bob").await;
    bob.send_raw(b"\x1b[2J\x1b[31mred\x1b[0m \x1b]0;owned\x07title\x07\x08\n").await;
    let line = alice.line().await;
    assert_eq!(line, "<bob> red title");
    assert!(!line.chars().any(|c| c.is_control()));
}

#[tokio::test]
async fn two_hundred_abrupt_disconnects_then_normal_chat() {
    let server = start_server_with(Limits { max_conns_per_ip: 0, ..test_limits() }).await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    for _ in 0..4 {
        let mut clients = Vec::new();
        for _ in 0..50 {
            clients.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
        }
        for (i, mut c) in clients.into_iter().enumerate() {
            match i % 3 {
                // Vanish before the greeting, mid-line, or with a reset.
                0 => drop(c),
                1 => {
                    let _ = c.write_all(b"half a li").await;
                }
                _ => {
                    let _ = c.set_zero_linger();
                }
            }
        }
    }
    let mut bob = Client::plain_as(server.addr, "bob").await;
    alice.arrived("bob").await;
    bob.send("still works").await;
    alice.expect("<bob> still works").await;

    // Every departed client leaves the room; no event says "all gone", so ask until it is so.
    eventually(async || {
        bob.send("/who").await;
        let who = loop {
            let line = bob.line().await;
            if line.contains(" in #lobby: ") {
                break line;
            }
        };
        if who == "2 in #lobby: @alice, bob" { Ok(()) } else { Err(format!("departed clients still listed: {who}")) }
    })
    .await;

    // No CPU spin for departed clients (the original server spun a core for each).
    let before = cpu_time();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_time() - before;
    assert!(used < Duration::from_millis(200), "idle server used {used:?} of CPU in 1 s");
}

/// CPU time used by this process so far (user + system), from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[tokio::test]
async fn per_ip_connection_cap() {
    let server = start_server_with(Limits { max_conns_per_ip: 2, ..test_limits() }).await;
    let _a = Client::plain(server.addr).await;
    let _b = Client::plain(server.addr).await;
    let mut refused = Client::connect(server.addr).await;
    assert_eq!(
        refused.line().await,
        "ERROR :too many connections from your address (limit 2); close one and try again"
    );
    assert_eq!(refused.try_line().await, None);
}

#[tokio::test]
async fn flood_control_paces_without_losing_lines() {
    let limits = Limits { flood: Some("20/5".parse().unwrap()), ..test_limits() };
    let server = start_server_with(limits).await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    let mut bob = Client::plain_as(server.addr, "bob").await;
    alice.arrived("bob").await;
    let started = tokio::time::Instant::now();
    let burst: String = (0..25).map(|i| format!("line {i}\n")).collect();
    bob.send_raw(burst.as_bytes()).await;
    for i in 0..25 {
        assert_eq!(alice.line().await, format!("<bob> line {i}"));
    }
    // 5 lines of burst, then 20 at 20 per second: at least about one second.
    assert!(started.elapsed() >= Duration::from_millis(900), "flood limit paced the lines");
}

#[tokio::test]
async fn graceful_shutdown_tells_every_client() {
    let mut server = start_server().await;
    let (mut a, _) = Client::plain(server.addr).await;
    let (mut b, _) = Client::plain(server.addr).await;
    server.stop().await;
    for client in [&mut a, &mut b] {
        let rest = client.until_closed().await;
        assert_eq!(rest.last().map(String::as_str), Some("*** disconnected: Server shutting down"), "{rest:?}");
    }
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn browsers_and_monitors_get_http_and_tls_is_refused() {
    let server = start_server().await;
    let mut http = Client::connect(server.addr).await;
    http.send_raw(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await;
    let response = http.until_closed().await;
    assert_eq!(response.first().map(String::as_str), Some("HTTP/1.1 200 OK"));
    assert_eq!(response.last().map(String::as_str), Some("ok"));
    let mut page = Client::connect(server.addr).await;
    page.send_raw(b"GET / HTTP/1.1\r\nHost: localhost:1313\r\nConnection: close\r\n\r\n").await;
    assert!(page.until_closed().await.iter().any(|l| l.contains("nc localhost 1313")));

    let mut tls = Client::connect(server.addr).await;
    tls.send_raw(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]).await;
    assert_eq!(tls.try_line().await, None, "closed without a chat greeting");
}

#[tokio::test]
async fn joining_a_big_room_names_a_few_and_counts_the_rest() {
    let server = start_server().await;
    let mut clients = Vec::new();
    for _ in 0..11 {
        clients.push(Client::plain(server.addr).await);
    }
    let mut late = Client::connect(server.addr).await;
    late.expect_where(|l| l.starts_with("You are guest-12")).await;
    let joined = late.line().await;
    assert!(joined.ends_with(" and 1 more; /who lists everyone."), "{joined}");
    assert_eq!(joined.matches(", ").count(), 9, "ten names: {joined}");
}

#[tokio::test]
async fn listens_on_ipv6_too() {
    let server = start_with(|config| config.listen = vec!["[::1]:0".parse().unwrap()]).await;
    assert!(server.addr.is_ipv6());
    let mut alice = Client::plain_as(server.addr, "alice").await;
    alice.send("/who").await;
    assert_eq!(alice.line().await, "1 in #lobby: @alice");
}

#[tokio::test]
async fn mode_arguments_cannot_carry_escape_sequences() {
    let server = start_server().await;
    let mut op = Client::plain_as(server.addr, "op").await;
    let mut other = Client::plain_as(server.addr, "other").await;
    op.arrived("other").await;
    op.send("/mode +k \x1b]0;PWNED\x07\x1b[2J").await;
    assert_eq!(
        op.line().await,
        "error: that cannot be a +k value: use no spaces, commas, control or invisible characters, and at most 23 bytes for a key, 113 for a ban mask"
    );
    op.send("/ban \x1b[31mred").await;
    assert_eq!(
        op.line().await,
        "error: that cannot be a +b value: use no spaces, commas, control or invisible characters, and at most 23 bytes for a key, 113 for a ban mask"
    );
    op.send("/ban red").await;
    assert_eq!(op.line().await, "Mode +b red!*@* set on #lobby.");
    assert_eq!(other.line().await, "*** op set mode +b red!*@* on #lobby");
}

/// `charla serve ARGS… --data-dir DIR` as its own process, standard output piped.
fn spawn_serve(data_dir: &std::path::Path, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_charla"))
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("charla starts")
}

/// Sends SIGTERM and waits for the exit status.
async fn terminate(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(sent.success());
    tokio::time::timeout(WAIT, child.wait()).await.expect("charla exits after SIGTERM").unwrap()
}

/// Starts `charla serve ARGS…`, stops it once it has said where it listens, and returns
/// everything it printed.
async fn serve_output(args: &[&str]) -> Vec<String> {
    use tokio::io::AsyncBufReadExt;
    let dir = TempDir::new();
    let mut child = spawn_serve(&dir.0, args);
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, stdout.next_line()).await.expect("charla says where it listens");
    let mut printed = vec![first.unwrap().expect("charla printed a line")];
    // It watches for SIGTERM before it prints anything.
    assert!(terminate(&mut child).await.success());
    while let Some(line) = stdout.next_line().await.unwrap() {
        printed.push(line);
    }
    printed
}

#[tokio::test]
async fn serve_exits_0_on_sigterm_when_its_output_is_closed() {
    use tokio::io::AsyncBufReadExt;
    // `charla serve | tee log`, then tee is gone before charla says it stopped.
    let dir = TempDir::new();
    let mut child = spawn_serve(&dir.0, &["127.0.0.1", "0"]);
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, stdout.next_line()).await.expect("charla says where it listens");
    assert!(first.unwrap().unwrap().starts_with("charla listening on "));
    drop(stdout);
    let status = terminate(&mut child).await;
    assert_eq!(status.code(), Some(0), "a closed standard output is no reason to fail: {status}");
}

#[tokio::test]
async fn listen_alone_replaces_the_default_address() {
    let printed = serve_output(&["--listen", "127.0.0.1:0"]).await;
    let listening: Vec<_> = printed.iter().filter(|l| l.starts_with("charla listening on ")).collect();
    assert_eq!(listening.len(), 1, "{printed:?}");
    assert!(listening[0].starts_with("charla listening on 127.0.0.1:"), "{printed:?}");
    assert_eq!(printed.last().map(String::as_str), Some("charla stopped"));
}

#[tokio::test]
async fn the_banner_shows_only_tls_ways_in_when_tls_is_required() {
    let printed = serve_output(&["127.0.0.1", "0", "--tls-self-signed", "--tls-required"]).await;
    let join = printed.iter().find(|l| l.trim_start().starts_with("join with:")).expect("a join line");
    let port = printed[0].rsplit(':').next().unwrap();
    assert!(join.contains(&format!("connect --tls 127.0.0.1 {port}")), "{printed:?}");
    assert!(!printed.iter().any(|l| l.contains("nc 127.0.0.1") || l.contains("http://127.0.0.1")), "{printed:?}");
    assert!(printed.iter().any(|l| l.contains(&format!("https://127.0.0.1:{port}/"))), "{printed:?}");
}

#[tokio::test]
async fn the_banner_says_an_irc_only_port_is_for_irc_clients() {
    let printed = serve_output(&["127.0.0.1", "0", "--irc-listen", "127.0.0.1:0"]).await;
    let [any, any_join, browser, irc, irc_join, stopped] = &printed[..] else { panic!("{printed:?}") };
    let port = |line: &str| line.rsplit(':').next().unwrap().split(' ').next().unwrap().to_string();
    let (any_port, irc_port) = (port(any), port(irc));
    assert_eq!(any, &format!("charla listening on 127.0.0.1:{any_port}"));
    assert!(any_join.contains(&format!("nc 127.0.0.1 {any_port}")), "{any_join}");
    assert!(any_join.contains(&format!("charla connect 127.0.0.1 {any_port}")), "{any_join}");
    assert!(browser.ends_with(&format!("open in a browser:  http://127.0.0.1:{any_port}/")), "{browser}");
    assert_eq!(irc, &format!("charla listening on 127.0.0.1:{irc_port} for IRC clients only"));
    assert!(irc_join.contains(&format!("irssi -c 127.0.0.1 -p {irc_port}")), "{irc_join}");
    assert!(!irc_join.contains("nc 127.0.0.1") && !irc_join.contains("| charla connect"), "{irc_join}");
    assert_eq!(stopped, "charla stopped");
}
