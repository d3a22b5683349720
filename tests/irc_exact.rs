//! IRC replies as picky clients expect them: each compared with RFC 2812, modern.ircdocs.horse
//! and the IRCv3 specs (and, where they are silent, with what InspIRCd answers).

mod common;

use common::*;

/// A registered client that also asked for `caps`, with `server-name` set to this name.
const SERVER: &str = "irc.example.org";

async fn named_server() -> TestServer {
    start_with(|config| {
        config.server_name = SERVER.into();
        config.hub.opers.insert("admin".into(), "hunter2".into());
    })
    .await
}

#[tokio::test]
async fn the_server_name_is_used_everywhere_a_server_name_goes() {
    let server = named_server().await;
    let mut alice = Irc { client: Client::connect(server.addr).await, nick: String::new() };
    alice.send("NICK alice").await;
    alice.send("USER alice 0 * :Alice").await;
    let welcome = alice.expect("001").await;
    assert_eq!(welcome.source.as_deref(), Some(SERVER));
    assert_eq!(alice.expect("004").await.params[1], SERVER);
    alice.expect("376").await;
    alice.join("#r").await;
    alice.send("WHOIS alice").await;
    assert_eq!(alice.expect("312").await.params[1..3], ["alice", SERVER]);
    alice.send("WHO #r").await;
    assert_eq!(alice.expect("352").await.params[4], SERVER);
    alice.send("WHO #r %ts,7").await;
    assert_eq!(alice.expect("354").await.params[1..], ["7", SERVER]);
    alice.send("PING :x").await;
    let pong = alice.expect("PONG").await;
    assert_eq!((pong.source.as_deref(), &pong.params[..]), (Some(SERVER), &[SERVER.into(), "x".into()][..]));
    alice.send("LINKS").await;
    assert_eq!(alice.expect("364").await.params[1..3], [SERVER, SERVER]);
    assert_eq!(alice.expect("365").await.params[1..], ["*", "End of /LINKS list"]);
    alice.send("TIME").await;
    assert_eq!(alice.expect("391").await.params[1], SERVER);
    alice.send("VERSION").await;
    assert_eq!(alice.expect("351").await.params[2], SERVER);
    alice.send("ADMIN").await;
    assert_eq!(alice.expect("256").await.params[1], SERVER);
    // A KILL names its path: this server, then the operator.
    let mut victim = Irc::register(server.addr, "victim", &[]).await;
    alice.send("OPER admin hunter2").await;
    alice.expect("381").await;
    alice.send("KILL victim :spam").await;
    let kill = victim.expect("KILL").await;
    assert_eq!(kill.source.as_deref(), Some("alice!~alice@127.0.0.1"));
    assert_eq!(kill.params[..], ["victim", &format!("{SERVER}!alice (spam)")]);
    assert_eq!(victim.next().await.params[0], "Closing link: Killed by alice: spam");
}

#[tokio::test]
async fn input_over_the_limits_gets_417_and_is_not_relayed() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &["message-tags", "labeled-response", "batch"]).await;
    let mut bob = Irc::register(server.addr, "bob", &["message-tags"]).await;
    alice.join("#r").await;
    bob.join("#r").await;
    // 510 bytes before CRLF is the most; one more is refused, whatever tags come before.
    let fits = format!("PRIVMSG #r :{}", "a".repeat(510 - "PRIVMSG #r :".len()));
    alice.send(&fits).await;
    assert!(bob.expect("PRIVMSG").await.params[1].starts_with("aaaa"), "relayed (its end cut to fit)");
    alice.send(&format!("@label=long {fits}b")).await;
    assert_eq!(alice.expect("417").await.tag("label").flatten(), Some("long"));
    // Client tags: 4094 bytes of tag data at most (message-tags), TAGMSG included.
    let tag = |len: usize| format!("+x={}", "t".repeat(len - 3));
    alice.send(&format!("@{} TAGMSG #r", tag(4094))).await;
    assert_eq!(bob.expect("TAGMSG").await.tag("+x").flatten().map(str::len), Some(4091));
    for command in ["TAGMSG #r", "PRIVMSG #r :hi"] {
        alice.send(&format!("@label=l1;{} {command}", tag(4095 - "label=l1;".len()))).await;
        assert_eq!(alice.expect("417").await.tag("label").flatten(), Some("l1"), "{command}");
        // Over the whole tag section's 8191 bytes too.
        alice.send(&format!("@label=l2;{} {command}", tag(8300))).await;
        assert_eq!(alice.expect("417").await.tag("label").flatten(), Some("l2"), "{command}");
    }
    // Nothing refused reached bob: the next thing he sees is this.
    alice.send("PRIVMSG #r :after").await;
    assert_eq!(bob.expect("PRIVMSG").await.params[1], "after");
}

#[tokio::test]
async fn every_reply_to_a_labeled_command_carries_the_label() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &["labeled-response", "batch"]).await;
    let labeled = async |alice: &mut Irc, line: &str| {
        alice.send(line).await;
        let reply = alice.next().await;
        (reply.command.clone(), reply.tag("label").flatten().map(str::to_string), reply)
    };
    for (line, command) in [
        ("@label=e1 FROBNICATE", "421"),
        ("@label=e2 12x3 oops", "421"),
        ("@label=e3 PRIVMSG nobody :hi", "401"),
        ("@label=e4 KICK #r", "461"),
        ("@label=e5 PRIVMSG #r :nul\0inside", "400"),
        ("@label=e6 PONG :nothing to say", "ACK"),
        ("@label=e7 NOTICE nobody :notices get no errors", "ACK"),
        ("@label=e8 MODE alice +i", "MODE"),
    ] {
        let label = line[7..9].to_string();
        let (got, got_label, reply) = labeled(&mut alice, line).await;
        assert_eq!((got.as_str(), got_label.as_deref()), (command, Some(label.as_str())), "{line}: {reply:?}");
    }
}

#[tokio::test]
async fn registration_needs_a_real_name() {
    let server = start_server().await;
    let mut c = Irc { client: Client::connect(server.addr).await, nick: String::new() };
    c.send("NICK nameless").await;
    c.send("USER nameless 0 * :").await;
    assert_eq!(c.expect("461").await.params[..], ["nameless", "USER", "Not enough parameters"]);
    c.send("USER nameless 0 * :Has One").await;
    c.expect("001").await;
}

#[tokio::test]
async fn names_of_several_rooms_and_kicks_of_several_nicks() {
    let server = start_server().await;
    let mut op = Irc::register(server.addr, "op", &[]).await;
    let mut a = Irc::register(server.addr, "a", &[]).await;
    let mut b = Irc::register(server.addr, "b", &[]).await;
    op.join("#one").await;
    op.join("#two").await;
    for c in [&mut a, &mut b] {
        c.join("#one").await;
    }
    op.send("NAMES #one,#two,#none").await;
    let mut answers = Vec::new();
    while answers.len() < 5 {
        let m = op.next().await;
        if m.command == "353" || m.command == "366" {
            answers.push((m.command.to_string(), m.params[1..].join(" ")));
        }
    }
    assert_eq!(
        answers,
        [
            ("353".to_string(), "= #one a b @op".to_string()),
            ("366".into(), "#one End of /NAMES list".into()),
            ("353".into(), "= #two @op".into()),
            ("366".into(), "#two End of /NAMES list".into()),
            ("366".into(), "#none End of /NAMES list".into()),
        ]
    );
    op.send("KICK #one a,b :out").await;
    for (who, nick) in [(&mut a, "a"), (&mut b, "b")] {
        who.client.expect_where(|l| l.ends_with(&format!("KICK #one {nick} :out"))).await;
    }
    let first = op.expect("KICK").await;
    let second = op.expect("KICK").await;
    assert_eq!((first.params[1].as_str(), second.params[1].as_str()), ("a", "b"), "one KICK line per nick");
}

#[tokio::test]
async fn an_invalid_mode_parameter_gets_696_with_all_its_parameters() {
    let server = start_server().await;
    let mut op = Irc::register(server.addr, "op", &[]).await;
    op.join("#r").await;
    op.send("MODE #r +l many").await;
    assert_eq!(op.expect("696").await.params[..], ["op", "#r", "l", "many", "Invalid limit: give a number above 0"]);
    op.send("MODE #r +k a,b").await;
    assert_eq!(op.expect("696").await.params[..4], ["op", "#r", "k", "a,b"]);
    op.send("MODE #r +b :a b").await;
    assert_eq!(op.expect("696").await.params[..4], ["op", "#r", "b", "*"], "a value that cannot be a parameter");
}

#[tokio::test]
async fn invisible_users_are_seen_only_by_those_who_share_a_room() {
    let server = start_server().await;
    let mut shy = Irc::register(server.addr, "shy", &[]).await;
    let mut friend = Irc::register(server.addr, "friend", &[]).await;
    let mut stranger = Irc::register(server.addr, "stranger", &[]).await;
    shy.send("MODE shy +i").await;
    shy.expect("MODE").await;
    shy.join("#den").await;
    friend.join("#den").await;
    let who = async |c: &mut Irc, mask: &str| {
        c.send(&format!("WHO {mask}")).await;
        let mut nicks = Vec::new();
        loop {
            let m = c.next().await;
            match m.command.as_str() {
                "352" => nicks.push(m.params[5].clone()),
                "315" => return nicks,
                _ => {}
            }
        }
    };
    let names = async |c: &mut Irc, room: &str| {
        c.send(&format!("NAMES {room}")).await;
        let mut nicks = String::new();
        loop {
            let m = c.next().await;
            match m.command.as_str() {
                "353" => nicks = m.params[3].to_string(),
                "366" => return nicks,
                _ => {}
            }
        }
    };
    let mut seen = who(&mut stranger, "*").await;
    seen.sort();
    assert_eq!(seen, ["friend", "stranger"]);
    assert_eq!(who(&mut stranger, "#den").await, ["friend"]);
    assert_eq!(who(&mut stranger, "sh*").await, Vec::<String>::new());
    assert_eq!(who(&mut stranger, "shy").await, ["shy"], "a nick without wildcards finds the user");
    assert_eq!(names(&mut stranger, "#den").await, "friend");
    // Those who share a room see the invisible user; and so does the user.
    let mut seen = who(&mut friend, "*").await;
    seen.sort();
    assert_eq!(seen, ["friend", "shy", "stranger"]);
    assert_eq!(names(&mut friend, "#den").await, "friend @shy");
    assert_eq!(who(&mut shy, "shy").await, ["shy"]);
    // LUSERS counts the invisible user apart, and a connection that has not registered.
    let mut pending = Irc { client: Client::connect(server.addr).await, nick: String::new() };
    pending.send("CAP LS 302").await;
    pending.expect("CAP").await;
    stranger.send("LUSERS").await;
    assert_eq!(stranger.expect("251").await.params[1], "There are 2 users and 1 invisible on 1 servers");
    let unknown = stranger.expect("253").await;
    assert_eq!(unknown.params[1..], ["1", "unknown connection(s)"]);
    shy.send("MODE shy").await;
    assert_eq!(shy.expect("221").await.params[1], "+i");
}

#[tokio::test]
async fn list_shows_rooms_with_members_and_secret_rooms_to_members_only() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    // A room with history stays when its last member leaves; IRC clients do not see it.
    alice.join("#kept").await;
    alice.send("PRIVMSG #kept :remember me").await;
    alice.send("PART #kept").await;
    alice.expect("PART").await;
    alice.join("#secret").await;
    alice.send("MODE #secret +s").await;
    alice.expect("MODE").await;
    alice.join("#open").await;
    let list = async |c: &mut Irc| {
        c.send("LIST").await;
        c.expect("321").await;
        let mut rooms = Vec::new();
        loop {
            let m = c.next().await;
            match m.command.as_str() {
                "322" => rooms.push(m.params[1].clone()),
                "323" => return rooms,
                other => panic!("unexpected {other}"),
            }
        }
    };
    assert_eq!(list(&mut bob).await, ["#open"]);
    assert_eq!(list(&mut alice).await, ["#open", "#secret"]);
}

#[tokio::test]
async fn server_queries_answer_with_the_numerics_of_the_specs() {
    let server = named_server().await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    alice.send("INFO").await;
    assert_eq!(alice.expect("371").await.params[0], "alice");
    assert_eq!(alice.expect("374").await.params[1], "End of /INFO list");
    alice.send("TIME").await;
    let time = alice.expect("391").await;
    assert_eq!(time.params.len(), 5, "<client> <server> <timestamp> <offset> :<time>: {time:?}");
    assert!(time.params[2].parse::<u64>().is_ok(), "{time:?}");
    alice.send("ADMIN").await;
    for code in ["256", "257", "258", "259"] {
        alice.expect(code).await;
    }
    // WHOWAS: 314 and 312 for each time the nick was used, then 369; 406 then 369 for none.
    for _ in 0..2 {
        let gone = Irc::register(server.addr, "gone", &[]).await;
        drop(gone);
        eventually(async || {
            alice.send("ISON gone").await;
            if alice.expect("303").await.params[1].is_empty() { Ok(()) } else { Err("gone still online".into()) }
        })
        .await;
    }
    alice.send("WHOWAS gone").await;
    let mut codes = Vec::new();
    loop {
        let m = alice.next().await;
        codes.push(m.command.clone());
        match m.command.as_str() {
            "314" => assert_eq!(m.params[1..5], ["gone", "~gone", "127.0.0.1", "*"]),
            "312" => assert_eq!(m.params[1..3], ["gone", SERVER]),
            "369" => break,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(codes, ["314", "312", "314", "312", "369"], "no count: every entry");
    alice.send("WHOWAS gone 1").await;
    assert_eq!(alice.expect("314").await.params[1], "gone");
    alice.expect("312").await;
    alice.expect("369").await;
    alice.send("WHOWAS never").await;
    assert_eq!(alice.next().await.params[..2], ["alice", "never"]);
    assert_eq!(alice.next().await.command, "369");
}

#[tokio::test]
async fn away_notify_tells_changes_only_and_away_joiners() {
    let server = start_server().await;
    let mut watcher = Irc::register(server.addr, "watcher", &["away-notify"]).await;
    let mut napper = Irc::register(server.addr, "napper", &[]).await;
    watcher.join("#r").await;
    napper.join("#r").await;
    watcher.expect("JOIN").await;
    // Back while not away: no change, nothing to tell.
    napper.send("AWAY").await;
    napper.expect("305").await;
    napper.send("AWAY :nap").await;
    napper.expect("306").await;
    let away = watcher.next().await;
    assert_eq!((away.command.as_str(), &away.params[..]), ("AWAY", &["nap".into()][..]));
    // Joining while away: the room's away-notify members hear it after the JOIN.
    napper.join("#s").await;
    watcher.join("#s").await;
    napper.send("PART #s").await;
    watcher.expect("PART").await;
    napper.send("JOIN #s").await;
    assert_eq!(watcher.next().await.command, "JOIN");
    let away = watcher.next().await;
    assert_eq!((away.command.as_str(), &away.params[..]), ("AWAY", &["nap".into()][..]));
}

#[tokio::test]
async fn invalid_utf8_is_replaced_and_the_sender_warned() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &["standard-replies", "labeled-response", "batch"]).await;
    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    alice.join("#r").await;
    bob.join("#r").await;
    alice.client.send_raw(b"@label=u PRIVMSG #r :caf\xe9\r\n").await;
    // UTF8ONLY: never relayed as it came; the sender hears that it was modified.
    assert_eq!(bob.expect("PRIVMSG").await.params[1], "caf\u{fffd}");
    let warn = alice.expect("WARN").await;
    assert_eq!(
        warn.params[..],
        ["PRIVMSG", "INVALID_UTF8", "Your message was not correctly encoded as UTF-8 and had to be modified"]
    );
    assert_eq!(warn.tag("label").flatten(), Some("u"));
    alice.send("PRIVMSG #r :café").await;
    assert_eq!(bob.expect("PRIVMSG").await.params[1], "café");
    alice.send("PING :x").await;
    assert_eq!(alice.expect_any(&["WARN", "PONG"]).await.command, "PONG", "valid UTF-8 gets no warning");
}

#[tokio::test]
async fn queries_for_another_server_or_user_get_402_and_401() {
    let server = named_server().await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    let _bob = Irc::register(server.addr, "bob", &[]).await;
    for command in ["TIME elsewhere.org", "VERSION elsewhere.org", "MOTD elsewhere.org", "ADMIN x", "INFO x"] {
        alice.send(command).await;
        let refused = alice.next().await;
        assert_eq!(
            (refused.command.as_str(), refused.params[1].as_str()),
            ("402", &command[command.find(' ').unwrap() + 1..]),
            "{command}"
        );
    }
    alice.send("LUSERS * elsewhere.org").await;
    assert_eq!(alice.next().await.command, "402");
    // This server by name, or a mask that matches it, answers as usual.
    alice.send(&format!("TIME {SERVER}")).await;
    assert_eq!(alice.next().await.command, "391");
    alice.send("VERSION irc.*").await;
    assert_eq!(alice.next().await.command, "351");
    // Another user's modes: 502 if online, 401 if no one has that nick.
    alice.send("MODE bob +i").await;
    assert_eq!(alice.expect_any(&["502", "401"]).await.command, "502");
    alice.send("MODE nobody").await;
    assert_eq!(alice.next().await.params[..2], ["alice", "nobody"]);
}

#[tokio::test]
async fn charla_serve_takes_its_server_name_from_the_command_line_or_the_host() {
    for (args, name) in [(&["--server-name", SERVER][..], SERVER.to_string()), (&[][..], charla::server::host_name())] {
        let dir = TempDir::new();
        let process = ServerProcess::start(&dir.0, args).await;
        let mut alice = Irc { client: Client::connect(process.addr).await, nick: String::new() };
        alice.send("NICK alice").await;
        alice.send("USER alice 0 * :Alice").await;
        assert_eq!(alice.expect("001").await.source.as_deref(), Some(name.as_str()), "{args:?}");
        assert_eq!(alice.expect("004").await.params[1], name);
        alice.send("PING :x").await;
        assert_eq!(alice.expect("PONG").await.params[0], name);
        assert_eq!(process.terminate().await.code(), Some(0));
    }
}
