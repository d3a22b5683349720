//! One client must not hurt the others: each attack of issue 12 scaled down over real sockets,
//! asserting the limit that now stops it (counts, numerics), never timings.

mod common;

use charla::hub::limits::HubLimits;
use common::*;

/// A server whose room creation is not paced, for tests of other limits that create many rooms.
async fn unpaced() -> TestServer {
    start_with(|config| config.hub.limits = HubLimits { room_creation: None, ..HubLimits::default() }).await
}

#[tokio::test]
async fn a_user_is_in_at_most_chanlimit_rooms() {
    let server = unpaced().await;
    let mut irc = Irc::register(server.addr, "hoarder", &[]).await;
    irc.send("VERSION").await;
    let isupport = irc.expect("005").await;
    assert!(isupport.params.iter().any(|p| p == "CHANLIMIT=#:50"), "{isupport:?}");
    let rooms: Vec<String> = (1..=51).map(|i| format!("#r{i}")).collect();
    irc.send(&format!("JOIN {}", rooms.join(","))).await;
    let refused = irc.expect("405").await;
    assert_eq!(refused.params[1], "#r51", "{refused:?}");
    // The 50 joins went through, and they are all the user is in.
    irc.send("WHOIS hoarder").await;
    let mut joined = 0;
    loop {
        let reply = irc.next().await;
        match reply.command.as_str() {
            "319" => joined += reply.params[2].split(' ').count(),
            "318" => break,
            _ => {}
        }
    }
    assert_eq!(joined, 50);
    // Leaving one makes room for another.
    irc.send("PART #r1").await;
    irc.join("#r51").await;
}

#[tokio::test]
async fn rooms_are_created_at_a_paced_rate_per_address() {
    let server = start_server().await;
    // Every client here comes from 127.0.0.1: they share one allowance of 20 rooms at once.
    let mut keeper = Irc::register(server.addr, "keeper", &[]).await;
    keeper.join("#kept").await;
    let mut maker = Irc::register(server.addr, "maker", &[]).await;
    // Rooms that stay after their maker leaves (something was said there) count.
    for i in 0..19 {
        maker.join(&format!("#made{i}")).await;
        maker.send(&format!("PRIVMSG #made{i} :kept for its history")).await;
        maker.send(&format!("PART #made{i}")).await;
    }
    maker.send("JOIN #made19").await;
    let refused = maker.expect("437").await;
    assert_eq!(refused.params[1], "#made19", "{refused:?}");
    assert!(refused.params[2].contains("too fast"), "{refused:?}");
    // Joining a room that exists is not creating one, nor is joining the lobby, where everyone
    // lands.
    maker.join("#kept").await;
    maker.join("#lobby").await;
    // Nor does another connection from the same address start afresh.
    let mut other = Irc::register(server.addr, "maker2", &[]).await;
    other.send("JOIN #other").await;
    assert_eq!(other.expect("437").await.params[1], "#other");
}

#[tokio::test]
async fn rooms_made_and_left_empty_are_not_counted() {
    // A bot that comes and goes through a room of its own, or a class behind one address
    // trying rooms out: the rooms are forgotten when left, and so is what they cost.
    let server = start_server().await;
    for round in 0..3 {
        let mut visitor = Irc::register(server.addr, &format!("visitor{round}"), &[]).await;
        for i in 0..15 {
            visitor.join(&format!("#passing{i}")).await;
            visitor.send(&format!("PART #passing{i}")).await;
        }
        visitor.send("QUIT").await;
    }
    let mut last = Irc::register(server.addr, "last", &[]).await;
    last.join("#passing0").await;
}

/// Which of `rooms` exist: MODE answers 324 for a room, 403 for none.
async fn existing(irc: &mut Irc, rooms: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for room in rooms {
        irc.send(&format!("MODE {room}")).await;
        let reply = irc.expect_any(&["324", "403"]).await;
        if reply.command == "324" {
            found.push(room.to_string());
        }
    }
    found
}

#[tokio::test]
async fn an_empty_room_with_nothing_worth_keeping_is_forgotten_also_after_a_restart() {
    let dir = TempDir::new();
    let mut server = start_at(&dir.0, |_| {}).await;
    let mut irc = Irc::register(server.addr, "owner", &[]).await;
    // Settings changed and undone, a topic set and cleared: nothing left to keep.
    irc.join("#fleeting").await;
    irc.send("MODE #fleeting +m").await;
    irc.send("MODE #fleeting -m").await;
    irc.send("TOPIC #fleeting :for a moment").await;
    irc.send("TOPIC #fleeting :").await;
    // A room with a message, and one with a topic, are kept.
    irc.join("#talked").await;
    irc.send("PRIVMSG #talked :hello").await;
    irc.join("#titled").await;
    irc.send("TOPIC #titled :kept").await;
    irc.send("PART #fleeting,#talked,#titled").await;
    let rooms = ["#fleeting", "#talked", "#titled"];
    assert_eq!(existing(&mut irc, &rooms).await, ["#talked", "#titled"]);
    drop(irc);
    server.stop().await;

    let server = start_at(&dir.0, |_| {}).await;
    let mut irc = Irc::register(server.addr, "owner", &[]).await;
    assert_eq!(existing(&mut irc, &rooms).await, ["#talked", "#titled"], "after a restart");
}

#[tokio::test]
async fn ban_masks_and_keys_are_bounded() {
    let server = start_server().await;
    let mut op = Irc::register(server.addr, "op", &[]).await;
    op.join("#bans").await;
    op.send(&format!("MODE #bans +b {}!*@*", "x".repeat(200))).await;
    let refused = op.expect("696").await;
    assert_eq!(refused.params[1..3], ["#bans", "b"], "{refused:?}");
    op.send(&format!("MODE #bans +k {}", "k".repeat(24))).await;
    assert_eq!(op.expect("696").await.params[2], "k");
    for i in 0..100 {
        op.send(&format!("MODE #bans +b mask{i}!*@*")).await;
    }
    op.send("MODE #bans +b onemore!*@*").await;
    assert_eq!(op.expect("478").await.params[1], "#bans");
    // Nothing too long was set: the list holds exactly the 100 masks.
    op.send("MODE #bans +b").await;
    let mut listed = 0;
    while op.expect_any(&["367", "368"]).await.command == "367" {
        listed += 1;
    }
    assert_eq!(listed, 100);
}

#[tokio::test]
async fn a_ban_follows_a_member_who_changes_nick_and_lifts_when_removed() {
    let server = start_server().await;
    let mut op = Irc::register(server.addr, "op", &[]).await;
    op.join("#room").await;
    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    bob.join("#room").await;
    bob.send("PRIVMSG #room :one").await;
    op.expect("PRIVMSG").await;
    op.send("MODE #room +b evil!*@*").await;
    bob.send("PRIVMSG #room :two").await;
    assert_eq!(op.expect("PRIVMSG").await.params[1], "two");
    bob.send("NICK evil").await;
    bob.expect("NICK").await;
    bob.send("PRIVMSG #room :three").await;
    assert_eq!(bob.expect("404").await.params[1], "#room", "banned under the new nick");
    op.send("MODE #room -b evil!*@*").await;
    op.expect("MODE").await;
    bob.send("PRIVMSG #room :four").await;
    assert_eq!(op.expect("PRIVMSG").await.params[1], "four", "the ban is lifted");
}

#[tokio::test]
async fn room_names_must_read_as_what_they_are() {
    let server = start_server().await;
    let mut irc = Irc::register(server.addr, "namer", &[]).await;
    irc.join("#lobby").await;
    for name in ["#lobby\u{200b}", "#\u{202e}ybbol", "#l\u{43e}bby", "#a\u{a0}b"] {
        irc.send(&format!("JOIN {name}")).await;
        let refused = irc.expect("403").await;
        assert_eq!(refused.params[1], name);
    }
    irc.send("JOIN #1obby").await;
    let refused = irc.expect("403").await;
    assert!(refused.params[2].contains("looks too much like the room #lobby"), "{refused:?}");
    // Keys and masks too.
    irc.send("MODE #lobby +k pass\u{202e}word").await;
    assert_eq!(irc.expect("696").await.params[2], "k");
    irc.send("MODE #lobby +b \u{202e}x!*@*").await;
    assert_eq!(irc.expect("696").await.params[2], "b");
    // Names of other alphabets are fine.
    irc.join("#café").await;
    irc.join("#чат").await;
}

#[tokio::test]
async fn tag_values_reach_others_without_control_characters() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &["message-tags"]).await;
    alice.join("#t").await;
    let mut bob = Irc::register(server.addr, "bob", &["message-tags"]).await;
    bob.join("#t").await;
    bob.send("@+draft/react=ok\x07\x1b[2J\u{202e}x;+bad\x01key=1 PRIVMSG #t :hi").await;
    let got = alice.expect("PRIVMSG").await;
    assert_eq!(got.tag("+draft/react").flatten(), Some("okx"), "{got:?}");
    assert!(got.tag("+bad\x01key").is_none(), "{got:?}");
}

#[tokio::test]
async fn no_line_over_512_bytes_reaches_an_irc_client() {
    let server = start_server().await;
    // The longest nick and room name there may be, so that every line is as long as it gets.
    let nick = format!("long{}", "w".repeat(26));
    let room = format!("#{}", "r".repeat(49));
    let mut plain = Client::plain_as(server.addr, &nick).await;
    plain.send(&format!("/join {room}")).await;
    plain.expect_where(|l| l.starts_with("You are now in #")).await;
    let mut watcher = Irc::register(server.addr, "watcher", &["away-notify"]).await;
    watcher.join(&room).await;
    let long = "w".repeat(4000);
    plain.send(&format!("/away {long}")).await;
    plain.expect("You are marked away.").await;
    plain.send(&format!("/topic {long}")).await;
    plain.expect(&format!("Topic of {room} set.")).await;
    for command in ["/ban", "/mode +k"] {
        plain.send(&format!("{command} {long}")).await;
        plain.expect_where(|l| l.starts_with("error: that cannot be")).await;
    }
    // Four masks of the longest length, set at once: more than one line can say.
    let masks: Vec<String> = (0..4).map(|i| format!("{i}{}", "m".repeat(104))).collect();
    plain.send(&format!("/mode +bbbb {}", masks.join(" "))).await;
    plain.expect_where(|l| l.starts_with("Mode +bbbb")).await;
    plain.send(&format!("/kick watcher {long}")).await;
    plain.expect_where(|l| l.starts_with("You removed watcher")).await;
    watcher.send(&format!("WHOIS {nick}")).await;
    watcher.send(&format!("TOPIC {room}")).await;
    watcher.send(&format!("MODE {room} +b")).await;
    watcher.send("PING :done").await;
    let mut seen = std::collections::HashSet::new();
    loop {
        let line = watcher.client.line().await;
        assert!(line.len() + 2 <= 512, "{} bytes: {line:.80}…", line.len() + 2);
        let message = Message::parse(&line).unwrap();
        seen.insert(message.command.clone());
        if message.command == "PONG" {
            break;
        }
    }
    for command in ["AWAY", "TOPIC", "MODE", "KICK", "301", "332", "367"] {
        assert!(seen.contains(command), "{command} in {seen:?}");
    }
}

#[tokio::test]
async fn a_message_goes_to_each_target_once_and_at_most_targmax_targets() {
    let server = start_server().await;
    let mut sender = Irc::register(server.addr, "sender", &[]).await;
    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    let mut last = Irc::register(server.addr, "last", &[]).await;
    // bob ten times over, nine unknown nicks, then `last`: the 11th distinct target.
    let mut targets = vec!["bob"; 5];
    targets.extend(["Bob"; 5]);
    let unknown: Vec<String> = (0..9).map(|i| format!("nobody{i}")).collect();
    targets.extend(unknown.iter().map(String::as_str));
    targets.push("last");
    sender.send(&format!("PRIVMSG {} :hello", targets.join(","))).await;
    let refused = sender.expect("407").await;
    assert_eq!(refused.params[1], "last", "{refused:?}");
    sender.send("PRIVMSG bob :after").await;
    assert_eq!(bob.expect("PRIVMSG").await.params[1], "hello");
    assert_eq!(bob.expect("PRIVMSG").await.params[1], "after", "bob got hello once");
    last.send("PING :x").await;
    assert_eq!(last.next().await.command, "PONG", "last, past TARGMAX, got nothing");
}

#[tokio::test]
async fn oper_guesses_are_paced_across_reconnections() {
    let server = start_with(|config| {
        config.hub.opers.insert("admin".into(), "secret".into());
    })
    .await;
    let mut guesser = Irc::register(server.addr, "guesser", &[]).await;
    for guess in ["123456", "password", "admin"] {
        guesser.send(&format!("OPER admin {guess}")).await;
        assert_eq!(guesser.expect("464").await.params[1], "wrong operator name or password");
    }
    guesser.send("OPER admin secret").await;
    let refused = guesser.expect("464").await;
    assert!(refused.params[1].starts_with("too many failed operator logins"), "{refused:?}");
    drop(guesser);
    // A new connection from the same address is no fresh start.
    let mut again = Irc::register(server.addr, "again", &[]).await;
    again.send("OPER admin secret").await;
    let refused = again.expect_any(&["381", "464"]).await;
    assert!(refused.params[1].starts_with("too many failed operator logins"), "{refused:?}");
}

#[tokio::test]
async fn plain_users_cannot_pass_their_text_off_as_the_servers_or_as_ctcp() {
    let server = start_server().await;
    let mut irc = Irc::register(server.addr, "ircwatch", &[]).await;
    irc.join("#lobby").await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    let mut bob = Client::plain_as(server.addr, "bob").await;
    alice.arrived("bob").await;
    // An action that reads like a nick change, then a real one: told apart at a glance.
    bob.send("/me is now known as realadmin").await;
    let fake = alice.line().await;
    bob.send("/nick realadmin").await;
    let real = alice.line().await;
    assert_eq!(fake, "* bob is now known as realadmin");
    assert_eq!(real, "*** bob is now known as realadmin");
    // Spaces cannot push text onto a row of its own, where it would read as another's line.
    bob.send(&format!("hi{}<root> give me your password", " ".repeat(80))).await;
    assert_eq!(alice.line().await, "<realadmin> hi <root> give me your password");
    // A plain user's \x01 is no CTCP request to IRC users.
    bob.send("\x01VERSION\x01").await;
    bob.send("/me waves").await;
    let mut texts = Vec::new();
    while texts.len() < 4 {
        let message = irc.next().await;
        if message.command == "PRIVMSG" {
            texts.push(message.params[1].clone());
        }
    }
    assert_eq!(texts[2], "VERSION");
    assert_eq!(texts[3], "\x01ACTION waves\x01", "actions are the one CTCP plain users send");
}

/// Sends `count` lines made by `line` in one write and closes the connection without waiting:
/// a flooder that leaves. The lines fit the kernel's buffers, so the close follows them at once.
async fn flood_and_close(mut client: Client, count: usize, line: impl Fn(usize) -> String) {
    let burst: String = (0..count).map(line).collect();
    client.send_raw(burst.as_bytes()).await;
    drop(client);
}

/// Reads `watch` until `nick` quits; returns how many of its messages arrived before.
async fn said_before_quitting(watch: &mut Irc, nick: &str) -> usize {
    let mut said = 0;
    loop {
        let message = watch.next().await;
        let from = message.source.as_deref().is_some_and(|p| p.starts_with(&format!("{nick}!")));
        match message.command.as_str() {
            "PRIVMSG" if from => said += 1,
            "QUIT" if from => return said,
            _ => {}
        }
        // Held-back lines arrive at the flood rate, 10 a second: this many means the client
        // talks on after it has gone.
        assert!(said < 200, "{nick} closed its connection and is still talking ({said} lines)");
    }
}

#[tokio::test]
async fn a_flooder_that_closes_is_gone_at_once_with_its_held_back_lines() {
    // The default flood limit: 30 lines at once, then 10 a second.
    let server = start_server_with(charla::server::Limits::default()).await;
    let mut watch = Irc::register(server.addr, "watch", &[]).await;
    watch.join("#lobby").await;
    let plain = Client::plain_as(server.addr, "plainflood").await;
    flood_and_close(plain, 2_000, |i| format!("line {i}\n")).await;
    let said = said_before_quitting(&mut watch, "plainflood").await;
    assert!(said >= 20, "the burst the flood limit allows is said ({said})");
    let mut irc = Irc::register(server.addr, "ircflood", &[]).await;
    irc.join("#lobby").await;
    flood_and_close(irc.client, 2_000, |i| format!("PRIVMSG #lobby :line {i}\r\n")).await;
    let said = said_before_quitting(&mut watch, "ircflood").await;
    assert!(said >= 20, "the burst the flood limit allows is said ({said})");
    // A browser's WebSocket: its lines wait in the bridge's pipe to the session, which watches
    // the socket for the hang-up.
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message as Frame;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr)).await.expect("a WebSocket");
    for line in ["NICK wsflood", "USER wsflood 0 * :browser", "JOIN #lobby"] {
        ws.send(Frame::text(line)).await.unwrap();
    }
    loop {
        let message = watch.next().await;
        if message.command == "JOIN" && message.source.as_deref().is_some_and(|s| s.starts_with("wsflood!")) {
            break;
        }
    }
    for i in 0..2_000 {
        ws.feed(Frame::text(format!("PRIVMSG #lobby :line {i}"))).await.unwrap();
    }
    ws.flush().await.unwrap();
    drop(ws);
    let said = said_before_quitting(&mut watch, "wsflood").await;
    assert!(said >= 20, "the burst the flood limit allows is said ({said})");
    // Gone from the room too, for anyone who asks.
    watch.send("NAMES #lobby").await;
    let names = watch.expect("353").await;
    assert!(!names.params[3].contains("flood"), "{names:?}");
}

/// The server process's resident memory, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in kB");
    kb / 1024.0
}

/// A client whose receive buffer is 4 KB, as a slow link's would be small: what it does not
/// read stays with the server, not in the kernel's buffers of a loopback connection.
async fn small_window(addr: std::net::SocketAddr) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small receive buffer");
    Client::over(socket.connect(addr).await.expect("connects"))
}

#[tokio::test]
async fn clients_that_ask_for_history_and_never_read_are_dropped_and_their_memory_given_back() {
    const LINES: usize = 200;
    const ATTACKERS: usize = 8;
    const ASKS: usize = 30;
    let dir = TempDir::new();
    let server = ServerProcess::start(&dir.0, &[]).await;
    let pid = server.child.id().expect("running");
    let mut watch = Irc::register(server.addr, "watch", &[]).await;
    watch.join("#lobby").await;
    // A room of 4 KB lines (each stored as the lines an IRC client would get, ~450 bytes), so
    // each `/history 500` answer is about 250 KB.
    let mut writer = Client::plain_as(server.addr, "writer").await;
    let long: String = "x".repeat(4000);
    let burst: String = (0..LINES).map(|i| format!("{i:04}{long}\n")).collect();
    writer.send_raw(burst.as_bytes()).await;
    for _ in 0..LINES {
        watch.expect("PRIVMSG").await;
    }
    let header = "--- last 500 line(s) of #lobby ---";
    eventually(async || {
        writer.send("/history 500").await;
        let lines = writer.expect("--- end of history ---").await;
        let first = lines.iter().find(|l| l.starts_with("--- last")).cloned().unwrap_or_default();
        if first == header { Ok(()) } else { Err(format!("history so far: {first}")) }
    })
    .await;
    let before = rss_mib(pid);
    // The attackers connect, then each asks once a round, 30 rounds, never reading: all of
    // them are asking at once. 30 answers are 7 MB, more than the kernel's buffers of a
    // loopback connection take (about 4 MB) and the queue's budget after them.
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        let mut attacker = small_window(server.addr).await;
        for _ in 0..3 {
            attacker.line().await;
        }
        attackers.push(attacker);
    }
    // The highest resident memory seen, in KiB, sampled every 10 ms.
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampling = tokio::spawn({
        let peak = peak.clone();
        async move {
            loop {
                peak.fetch_max((rss_mib(pid) * 1024.0) as u64, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    });
    for _ in 0..ASKS {
        for attacker in &mut attackers {
            // Once dropped, an attacker's writes fail: it is not asking any more.
            let _ = tokio::io::AsyncWriteExt::write_all(&mut attacker.writer, b"/history 500\n").await;
        }
        // The pace of the attack, not a wait for the server.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The server answers a history query at a time (a debug build takes tens of ms for each):
    // the watcher's pings keep its reads from timing out while the answers are made.
    let mut dropped = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while dropped < ATTACKERS {
        assert!(tokio::time::Instant::now() < deadline, "{dropped} of {ATTACKERS} attackers dropped");
        watch.send("PING wait").await;
        let message = watch.expect_any(&["QUIT", "PONG"]).await;
        if message.command == "QUIT" {
            assert!(message.params[0].starts_with("SendQ exceeded"), "{message:?}");
            dropped += 1;
        }
    }
    sampling.abort();
    drop(attackers);
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0;
    println!("RSS before {before:.1} MiB, after the attack {peak:.1} MiB");
    // Each answer is 230 KB; an attacker may have half the 1 MiB budget and one answer waiting.
    assert!(peak < before + 24.0, "RSS grew from {before:.1} to {peak:.1} MiB");
    // The memory is given back to the system within seconds.
    eventually(async || {
        let now = rss_mib(pid);
        if now < before + 8.0 { Ok(()) } else { Err(format!("RSS {now:.1} MiB, {before:.1} before the attack")) }
    })
    .await;
    server.kill9().await;
}

/// The rooms of a `LIST` answer, in order, after sending `LIST params`.
async fn list(irc: &mut Irc, params: &str) -> Vec<String> {
    irc.send(&format!("LIST {params}")).await;
    let mut rooms = Vec::new();
    loop {
        let reply = irc.expect_any(&["322", "323"]).await;
        if reply.command == "323" {
            return rooms;
        }
        rooms.push(reply.params[1].to_string());
    }
}

#[tokio::test]
async fn list_filters_by_elist_conditions() {
    let server = unpaced().await;
    let mut a = Irc::register(server.addr, "a", &[]).await;
    let mut b = Irc::register(server.addr, "b", &[]).await;
    let mut c = Irc::register(server.addr, "c", &[]).await;
    for room in ["#apple", "#apricot", "#banana"] {
        a.join(room).await;
    }
    b.join("#apple").await;
    b.join("#apricot").await;
    c.join("#apple").await;
    a.send("TOPIC #banana :yellow").await;
    a.expect("TOPIC").await;
    a.send("VERSION").await;
    let isupport = a.expect("005").await;
    assert!(isupport.params.iter().any(|p| p == "ELIST=CMNTU"), "{isupport:?}");
    assert_eq!(list(&mut a, "").await, ["#apple", "#apricot", "#banana"]);
    assert_eq!(list(&mut a, ">1").await, ["#apple", "#apricot"]);
    assert_eq!(list(&mut a, "<2").await, ["#banana"]);
    assert_eq!(list(&mut a, ">1,<3").await, ["#apricot"]);
    assert_eq!(list(&mut a, "#ap*").await, ["#apple", "#apricot"]);
    assert_eq!(list(&mut a, "!#ap*").await, ["#banana"]);
    assert_eq!(list(&mut a, "#a*,!#apr*").await, ["#apple"]);
    assert_eq!(list(&mut a, "#BANANA").await, ["#banana"]);
    assert_eq!(list(&mut a, "C<60").await, ["#apple", "#apricot", "#banana"]);
    assert!(list(&mut a, "C>60").await.is_empty());
    assert_eq!(list(&mut a, "T<60").await, ["#banana"]);
    assert!(list(&mut a, "T>60").await.is_empty());
    // A condition that is none of ELIST's is refused, and the list is empty.
    a.send("LIST >many").await;
    let refused = a.expect_any(&["FAIL", "NOTICE"]).await;
    assert!(refused.params.last().unwrap().contains("no LIST condition"), "{refused:?}");
    a.expect("323").await;
    // Plain text's /rooms takes a mask too.
    let mut plain = Client::plain_as(server.addr, "plainlister").await;
    plain.send("/rooms #ap*").await;
    assert_eq!(plain.line().await, "2 room(s):");
    assert!(plain.line().await.starts_with("  #apple (3 here)"));
    assert!(plain.line().await.starts_with("  #apricot (2 here)"));
}

#[tokio::test]
async fn a_list_is_sent_as_it_is_read_and_others_are_answered_meanwhile() {
    const ROOMS: usize = 3_000;
    const LISTS: usize = 60;
    let server =
        start_with(|config| config.hub.limits = HubLimits { room_creation: None, max_rooms_per_user: ROOMS }).await;
    let mut holder = Irc::register(server.addr, "holder", &[]).await;
    let rooms: Vec<String> = (0..ROOMS).map(|i| format!("#room{i:05}")).collect();
    for chunk in rooms.chunks(40) {
        holder.send(&format!("JOIN {}", chunk.join(","))).await;
    }
    for _ in 0..ROOMS {
        holder.expect("366").await;
    }
    // Sixty lists of 3,000 rooms are 10 MB: more than the kernel's buffers and any queue hold.
    let mut lister = Irc::register(server.addr, "lister", &[]).await;
    lister.client.send_raw("LIST\r\n".repeat(LISTS).as_bytes()).await;
    // Meanwhile others are answered: 20 round trips, each within the usual wait.
    let mut other = Irc::register(server.addr, "other", &[]).await;
    for i in 0..20 {
        other.send(&format!("PING :{i}")).await;
        assert_eq!(other.expect("PONG").await.params.last().unwrap(), &i.to_string());
    }
    // The lister, reading at last, gets every list whole and in order: it was not dropped.
    for _ in 0..LISTS {
        lister.expect("321").await;
        let mut count = 0;
        loop {
            let reply = lister.next().await;
            match reply.command.as_str() {
                "322" => {
                    assert_eq!(reply.params.get(1).map(|p| p.as_str()), Some(rooms[count].as_str()), "{reply:?}");
                    count += 1;
                }
                "323" => break,
                other => panic!("unexpected {other} in a list: {reply:?}"),
            }
        }
        assert_eq!(count, ROOMS);
    }
}
