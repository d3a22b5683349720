//! Persistent history over real sockets: restarts, kill -9, CHATHISTORY paging, privacy,
//! retention, replay on join, and start-up errors.

mod common;

use std::time::Duration;

use common::*;

const CHATHISTORY_CAPS: &[&str] = &["batch", "draft/chathistory", "server-time", "message-tags"];

/// Texts of PRIVMSGs among `messages`.
fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().filter(|m| m.command == "PRIVMSG").map(|m| m.params[1].to_string()).collect()
}

#[tokio::test]
async fn messages_topics_and_modes_survive_a_clean_restart() {
    let dir = TempDir::new();
    let mut server = start_at(&dir.0, |_| {}).await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    alice.join("#keep").await;
    alice.send("TOPIC #keep :kept topic").await;
    alice.expect("TOPIC").await;
    alice.send("MODE #keep +m").await;
    alice.expect("MODE").await;
    alice.send("MODE #keep +b mallory!*@*").await;
    alice.expect("MODE").await;
    let mut bob = Client::plain_as(server.addr, "bob").await;
    bob.send("/join #keep").await;
    bob.expect_where(|l| l.starts_with("You are now in #keep")).await;
    alice.send("PRIVMSG #keep :first words").await;
    alice.send("PRIVMSG #keep :\x01ACTION waves\x01").await;
    bob.expect("* alice waves").await;
    server.stop().await;

    let server = start_at(&dir.0, |_| {}).await;
    // plain text: the replay on join, with times.
    let mut bob = Client::plain_as(server.addr, "bob").await;
    bob.send("/join #keep").await;
    let joined = bob.line().await;
    assert!(joined.starts_with("You are now in #keep"), "{joined}");
    assert_eq!(bob.line().await, "Topic: kept topic");
    assert_eq!(bob.line().await, "--- last 2 line(s) of #keep ---");
    let first = bob.line().await;
    assert!(first.ends_with("] <alice> first words") && first.starts_with('['), "{first}");
    assert!(bob.line().await.ends_with("] * alice waves"));
    assert_eq!(bob.line().await, "--- end of history ---");
    bob.send("/mode").await;
    assert_eq!(bob.line().await, "Modes of #keep: +mnt");

    // IRC with chathistory.
    let mut carol = Irc::register(server.addr, "carol", CHATHISTORY_CAPS).await;
    carol.join("#keep").await;
    let history = carol.chathistory("LATEST #keep * 10").await;
    assert_eq!(texts(&history), ["first words", "\x01ACTION waves\x01"]);
    assert!(history.iter().all(|m| m.tag("msgid").flatten().is_some() && m.tag("time").flatten().is_some()));

    // The ban list came back too: who set it, and it still keeps its target out.
    carol.send("MODE #keep +b").await;
    let ban = carol.expect("367").await;
    assert_eq!(&ban.params[1..4], ["#keep", "mallory!*@*", "alice"]);
    carol.expect("368").await;
    let mut mallory = Irc::register(server.addr, "mallory", &[]).await;
    mallory.send("JOIN #keep").await;
    assert_eq!(mallory.expect("474").await.params[1], "#keep");
}

#[tokio::test]
async fn messages_survive_kill_9_once_written() {
    let dir = TempDir::new();
    let server = ServerProcess::start(&dir.0, &[]).await;
    let mut watcher = Irc::register(server.addr, "watcher", CHATHISTORY_CAPS).await;
    watcher.join("#lobby").await;
    let mut nc = Client::plain_as(server.addr, "nc").await;
    for i in 0..50 {
        nc.send(&format!("line {i}")).await;
    }
    watcher.expect("PRIVMSG").await;
    // The writer commits as messages come; CHATHISTORY reads what is committed. Ask until all
    // fifty are there: there is no event for "committed".
    eventually(async || {
        let stored = watcher.chathistory("LATEST #lobby * 100").await;
        if texts(&stored).len() == 50 { Ok(()) } else { Err(format!("only {} stored", stored.len())) }
    })
    .await;
    server.kill9().await;

    let server = ServerProcess::start(&dir.0, &[]).await;
    let mut again = Irc::register(server.addr, "again", CHATHISTORY_CAPS).await;
    again.join("#lobby").await;
    let expected: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
    assert_eq!(texts(&again.chathistory("LATEST #lobby * 100").await), expected);
    assert!(server.terminate().await.success(), "SIGTERM exits 0");
}

#[tokio::test]
async fn chathistory_pages_without_gaps_or_duplicates() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", CHATHISTORY_CAPS).await;
    alice.join("#pages").await;
    let total = 250;
    for i in 0..total {
        alice.send(&format!("PRIVMSG #pages :m{i:03}")).await;
    }
    let all: Vec<String> = (0..total).map(|i| format!("m{i:03}")).collect();
    let mut bob = Irc::register(server.addr, "bob", CHATHISTORY_CAPS).await;
    bob.join("#pages").await;
    // Wait until everything is stored (the last one is enough: one writer, in order).
    let latest = eventually(async || {
        let latest = bob.chathistory("LATEST #pages * 37").await;
        if texts(&latest).last() == all.last() { Ok(latest) } else { Err("alice's last line is not there yet".into()) }
    })
    .await;

    // BEFORE, from the latest page back to the start.
    let mut seen = texts(&latest);
    let mut oldest = latest[0].tag("msgid").flatten().unwrap().to_string();
    loop {
        let page = bob.chathistory(&format!("BEFORE #pages msgid={oldest} 37")).await;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 37);
        oldest = page[0].tag("msgid").flatten().unwrap().to_string();
        let mut older = texts(&page);
        older.extend(seen);
        seen = older;
    }
    assert_eq!(seen, all);

    // AFTER, from the first message forward.
    let first = bob.chathistory(&format!("BEFORE #pages msgid={} 1", latest[0].tag("msgid").flatten().unwrap())).await;
    assert_eq!(first.len(), 1);
    let first_page = bob.chathistory("LATEST #pages * 100").await;
    drop(first_page);
    let mut forward = Vec::new();
    let mut after = format!("timestamp={}", "1970-01-01T00:00:00.000Z");
    loop {
        let page = bob.chathistory(&format!("AFTER #pages {after} 37")).await;
        if page.is_empty() {
            break;
        }
        after = format!("msgid={}", page.last().unwrap().tag("msgid").flatten().unwrap());
        forward.extend(texts(&page));
    }
    assert_eq!(forward, all);

    // BETWEEN, both directions, bounds excluded; AROUND includes its centre.
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        let mut after = "timestamp=1970-01-01T00:00:00.000Z".to_string();
        loop {
            let page = bob.chathistory(&format!("AFTER #pages {after} 100")).await;
            if page.is_empty() {
                break ids;
            }
            after = format!("msgid={}", page.last().unwrap().tag("msgid").flatten().unwrap());
            ids.extend(page.iter().map(|m| m.tag("msgid").flatten().unwrap().to_string()));
        }
    };
    let between = bob.chathistory(&format!("BETWEEN #pages msgid={} msgid={} 100", ids[10], ids[20])).await;
    assert_eq!(texts(&between), all[11..20]);
    let between = bob.chathistory(&format!("BETWEEN #pages msgid={} msgid={} 3", ids[20], ids[10])).await;
    assert_eq!(texts(&between), all[17..20]);
    let around = bob.chathistory(&format!("AROUND #pages msgid={} 5", ids[100])).await;
    assert!(texts(&around).contains(&all[100]), "{:?}", texts(&around));
    assert_eq!(around.len(), 5);

    // Bad requests get standard replies.
    bob.send("CHATHISTORY BEFORE #pages yesterday 10").await;
    let fail = bob.expect("NOTICE").await;
    assert!(fail.params[1].starts_with("CHATHISTORY INVALID_PARAMS"), "{fail:?}");
    bob.send("CHATHISTORY LATEST #elsewhere * 10").await;
    let fail = bob.expect("NOTICE").await;
    assert!(fail.params[1].starts_with("CHATHISTORY INVALID_TARGET"), "{fail:?}");
}

#[tokio::test]
async fn private_history_is_never_shown_to_a_third_user() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", CHATHISTORY_CAPS).await;
    let mut bob = Irc::register(server.addr, "bob", CHATHISTORY_CAPS).await;
    let mut carol = Irc::register(server.addr, "carol", &["batch", "draft/chathistory", "standard-replies"]).await;
    alice.send("PRIVMSG bob :our secret").await;
    bob.expect("PRIVMSG").await;
    // Stored before it was delivered, and history reads wait for the writer: no need to wait.
    assert_eq!(texts(&bob.chathistory("LATEST alice * 10").await), ["our secret"]);
    assert_eq!(texts(&alice.chathistory("LATEST bob * 10").await), ["our secret"]);
    // carol asks every way she can.
    assert!(carol.chathistory("LATEST alice * 10").await.is_empty());
    assert!(carol.chathistory("LATEST bob * 10").await.is_empty());
    let targets =
        carol.chathistory("TARGETS timestamp=1970-01-01T00:00:00.000Z timestamp=2999-01-01T00:00:00.000Z 10").await;
    assert!(targets.is_empty(), "{targets:?}");
    let bobs =
        bob.chathistory("TARGETS timestamp=1970-01-01T00:00:00.000Z timestamp=2999-01-01T00:00:00.000Z 10").await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].params[1], "alice");
    carol.send("CHATHISTORY LATEST #nowhere * 10").await;
    assert_eq!(carol.expect("FAIL").await.params[..2], ["CHATHISTORY", "INVALID_TARGET"]);
}

#[tokio::test]
async fn retention_keeps_only_the_newest() {
    let server = start_with(|config| {
        config.history.retention.max_per_target = Some(5);
        config.history.retention_every = Duration::from_millis(100);
    })
    .await;
    let mut alice = Irc::register(server.addr, "alice", CHATHISTORY_CAPS).await;
    alice.join("#short").await;
    for i in 0..20 {
        alice.send(&format!("PRIVMSG #short :r{i}")).await;
    }
    let expected: Vec<String> = (15..20).map(|i| format!("r{i}")).collect();
    eventually(async || {
        let kept = texts(&alice.chathistory("LATEST #short * 100").await);
        if kept == expected { Ok(()) } else { Err(format!("still kept: {kept:?}")) }
    })
    .await;
}

#[tokio::test]
async fn clients_without_chathistory_get_a_replay_on_join_and_event_playback_on_request() {
    let server = start_with(|config| config.history.join_replay = 3).await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    alice.join("#r").await;
    for i in 0..5 {
        alice.send(&format!("PRIVMSG #r :old {i}")).await;
    }
    alice.send("PRIVMSG #r :\x01VERSION\x01").await;
    alice.send("PRIVMSG #r :old 5").await;
    alice.send("PING :stored").await;
    alice.expect("PONG").await;
    let mut late = Irc::register(server.addr, "late", &["server-time"]).await;
    late.send("JOIN #r").await;
    late.expect("366").await;
    late.send("PING :replayed").await;
    let mut replay = Vec::new();
    while let message = late.next().await
        && message.command != "PONG"
    {
        replay.push(message);
    }
    // The last three lines, less the CTCP request: replayed live, every joiner would answer it.
    assert_eq!(texts(&replay), ["old 4", "old 5"]);
    assert!(replay.iter().all(|m| m.tag("time").flatten().is_some()), "server-time on replayed lines");

    let mut playback = Irc::register(server.addr, "pb", &["batch", "draft/chathistory", "draft/event-playback"]).await;
    playback.join("#r").await;
    let events = playback.chathistory("LATEST #r * 100").await;
    let commands: Vec<&str> = events.iter().map(|m| m.command.as_str()).collect();
    assert_eq!(commands.iter().filter(|c| **c == "JOIN").count(), 3, "{commands:?}");
    assert_eq!(commands.iter().filter(|c| **c == "PRIVMSG").count(), 7, "CHATHISTORY returns CTCP too");
}

#[tokio::test]
async fn plain_history_command() {
    let server = start_server().await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    alice.send("/history").await;
    assert_eq!(alice.line().await, "No messages in #lobby yet.");
    alice.send("one").await;
    alice.send("two").await;
    alice.send("/history 1").await;
    assert_eq!(alice.line().await, "--- last 1 line(s) of #lobby ---");
    let line = alice.line().await;
    assert!(line.ends_with("] <alice> two") && line.len() == "[HH:MM] <alice> two".len(), "{line}");
    assert_eq!(alice.line().await, "--- end of history ---");
    alice.send("/history lots").await;
    assert_eq!(alice.line().await, "error: usage: /history [N], N from 1 to 500");
}

#[tokio::test]
async fn unusable_data_directories_are_clear_errors_at_start() {
    /// The one line charla prints (each cause said once, no backtrace even when asked for).
    async fn start_error(data_dir: &std::path::Path) -> String {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_charla"))
            .args(["serve", "127.0.0.1", "0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_BACKTRACE", "1")
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "exits with 1, not a panic (101)");
        let error = String::from_utf8(output.stderr).unwrap();
        assert_eq!(error.lines().count(), 1, "one line, no backtrace: {error}");
        error
    }
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    // A file where the directory should be.
    let file = dir.0.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let error = start_error(&file).await;
    assert!(error.starts_with("Error: cannot use data directory") && error.contains("--data-dir"), "{error}");
    assert_eq!(error.matches("is a file, not a directory").count(), 1, "the cause once: {error}");
    assert!(!error.contains("File exists"), "{error}");
    // A directory no one can write to, not even root.
    let error = start_error(std::path::Path::new("/proc/charla-data")).await;
    assert!(error.contains("--data-dir"), "{error}");
    // A damaged database.
    let damaged = dir.0.join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(damaged.join("charla.db"), vec![0x5a; 8192]).unwrap();
    let error = start_error(&damaged).await;
    assert_eq!(error.matches("is damaged or is not a charla history database").count(), 1, "{error}");
}

#[tokio::test]
async fn private_history_is_not_handed_to_the_next_holder_of_a_nick() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", CHATHISTORY_CAPS).await;
    let mut bob = Irc::register(server.addr, "bob", CHATHISTORY_CAPS).await;
    alice.send("PRIVMSG bob :my password is hunter2").await;
    bob.expect("PRIVMSG").await;
    alice.send("QUIT").await;
    alice.expect("ERROR").await;
    // mallory waits for the nick, then takes it by NICK (and another by registering as it).
    let mut mallory = Irc::register(server.addr, "mallory", CHATHISTORY_CAPS).await;
    eventually(async || {
        mallory.send("NICK alice").await;
        let answer = mallory.next().await;
        if answer.command == "NICK" { Ok(()) } else { Err(format!("{answer:?}")) }
    })
    .await;
    assert!(mallory.chathistory("LATEST bob * 50").await.is_empty());
    let targets =
        mallory.chathistory("TARGETS timestamp=1970-01-01T00:00:00.000Z timestamp=2999-01-01T00:00:00.000Z 10").await;
    assert!(targets.is_empty(), "{targets:?}");
    // bob still has the conversation, and new messages to the new alice are hers to read.
    assert_eq!(texts(&bob.chathistory("LATEST alice * 50").await), ["my password is hunter2"]);
    bob.send("PRIVMSG alice :hello new alice").await;
    mallory.expect("PRIVMSG").await;
    assert_eq!(texts(&mallory.chathistory("LATEST bob * 50").await), ["hello new alice"]);
}

#[tokio::test]
async fn a_replay_on_join_shows_the_message_said_just_before() {
    let server = start_with(|config| config.history.join_replay = 3).await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    alice.join("#now").await;
    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    bob.join("#now").await;
    for i in 0..10 {
        alice.send(&format!("PRIVMSG #now :said {i}")).await;
        // Stored before bob receives it; joins and quits come and go in between.
        bob.expect("PRIVMSG").await;
        let mut late = Irc::register(server.addr, &format!("late{i}"), &[]).await;
        late.join("#now").await;
        let mut lines = Vec::new();
        for _ in 0..(i + 1).min(3) {
            lines.push(late.next().await);
        }
        assert_eq!(texts(&lines).last().map(String::as_str), Some(format!("said {i}").as_str()), "{lines:?}");
        late.send("QUIT").await;
        late.expect("ERROR").await;
    }
}

#[tokio::test]
async fn guest_nicks_do_not_repeat_after_a_restart() {
    let dir = TempDir::new();
    let mut server = start_at(&dir.0, |_| {}).await;
    let (mut first, first_nick) = Client::plain(server.addr).await;
    let (mut second, second_nick) = Client::plain(server.addr).await;
    first.expect(&format!("*** {second_nick} joined #lobby")).await;
    first.send("a line of the first guest").await;
    second.expect(&format!("<{first_nick}> a line of the first guest")).await;
    server.stop().await;

    let mut server = start_at(&dir.0, |_| {}).await;
    let (mut newcomer, nick) = Client::plain(server.addr).await;
    assert_ne!(nick, first_nick);
    assert_ne!(nick, second_nick);
    // What the newcomer is shown of history is under others' nicks, not its own.
    newcomer.send("/history").await;
    let shown = newcomer.expect("--- end of history ---").await;
    assert!(shown.iter().any(|line| line.ends_with(&format!("<{first_nick}> a line of the first guest"))), "{shown:?}");
    assert!(!shown.iter().any(|line| line.contains(&format!("<{nick}>"))), "{shown:?}");
    server.stop().await;
}
