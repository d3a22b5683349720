//! The IRC protocol over raw sockets: registration, numerics, modes, IRCv3 features, and IRC
//! users sharing rooms with plain-text users.

mod common;

use common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn registration_and_welcome_numerics() {
    let server = start_server().await;
    let mut irc = Irc::register(server.addr, "alice", &[]).await;
    irc.send("LUSERS").await;
    let luserclient = irc.expect("251").await;
    assert!(luserclient.params[1].contains("1 users"), "{luserclient:?}");
    irc.send("VERSION").await;
    irc.send("PING :isupport-done").await;
    irc.expect("351").await;
    // Every ISUPPORT token, from however many 005 lines they take.
    let mut isupport = Vec::new();
    loop {
        let message = irc.next().await;
        match message.command.as_str() {
            "005" => isupport.extend(message.params[1..message.params.len() - 1].iter().cloned()),
            "PONG" => break,
            _ => {}
        }
    }
    for token in ["CASEMAPPING=ascii", "NICKLEN=30", "PREFIX=(ov)@+", "WHOX", "CHANLIMIT=#:50", "KEYLEN=23"] {
        assert!(isupport.iter().any(|p| p == token), "{token} in {isupport:?}");
    }
    // Re-registering is refused.
    irc.send("USER again 0 * :x").await;
    assert_eq!(irc.expect("462").await.params[0], "alice");
}

#[tokio::test]
async fn commands_before_registration_and_unknown_commands() {
    let server = start_server().await;
    let mut raw = Irc { client: Client::connect(server.addr).await, nick: String::new() };
    raw.send("NICK early").await;
    raw.send("JOIN #lobby").await;
    assert_eq!(raw.expect("451").await.params[..], ["early", "You have not registered"]);
    raw.send("USER early 0 * :Early").await;
    raw.expect("001").await;
    raw.send("FROBNICATE now").await;
    assert_eq!(raw.expect("421").await.params[1], "FROBNICATE");
    raw.send("KICK #lobby").await;
    assert_eq!(raw.expect("461").await.params[1], "KICK");
    // A NUL or a lone CR inside a line is refused out loud, never dropped in silence.
    for line in [&b"PRIVMSG #lobby :nul\0inside\r\n"[..], b"PRIVMSG #lobby :cr\rinside\r\n"] {
        raw.client.send_raw(line).await;
        let refused = raw.expect("400").await;
        assert_eq!(refused.params[2], "NUL, CR or LF inside a line; send one message per line");
    }
    raw.send("PING :still-here").await;
    assert_eq!(raw.expect("PONG").await.params[1], "still-here");
}

#[tokio::test]
async fn nick_collisions_and_bad_nicks() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    let mut late = Irc { client: Client::connect(server.addr).await, nick: String::new() };
    late.send("NICK ALICE").await;
    assert_eq!(late.expect("433").await.params[..2], ["*", "ALICE"]);
    late.send("NICK 1nvalid").await;
    assert_eq!(late.expect("432").await.params[1], "1nvalid");
    late.send("NICK").await;
    late.expect("431").await;
    late.send("NICK bob").await;
    late.send("USER bob 0 * :Bob").await;
    late.expect("001").await;
    alice.join("#r").await;
    late.join("#r").await;
    alice.expect("JOIN").await;
    late.send("NICK robert").await;
    let nick = late.expect("NICK").await;
    assert_eq!((nick.source.as_deref(), nick.params[0].as_str()), (Some("bob!~bob@127.0.0.1"), "robert"));
    let seen = alice.expect("NICK").await;
    assert_eq!(seen.params[0], "robert");
    late.send("NICK Alice").await;
    assert_eq!(late.expect("433").await.params[1], "Alice");
}

#[tokio::test]
async fn channel_modes_kicks_bans_and_numerics() {
    let server = start_server().await;
    let mut op = Irc::register(server.addr, "op", &[]).await;
    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    op.join("#room").await;
    bob.join("#room").await;
    op.expect("JOIN").await;

    op.send("MODE #room").await;
    assert_eq!(op.expect("324").await.params[1..], ["#room", "+nt"]);
    bob.send("MODE #room +m").await;
    assert_eq!(bob.expect("482").await.params[1], "#room");
    op.send("MODE #room +mv bob").await;
    let mode = bob.expect("MODE").await;
    assert_eq!(mode.params[..], ["#room", "+mv", "bob"]);
    op.send("MODE #room -v bob").await;
    bob.expect("MODE").await;
    bob.send("PRIVMSG #room :can I talk?").await;
    assert_eq!(bob.expect("404").await.params[1], "#room");
    op.send("MODE #room +z").await;
    assert_eq!(op.expect("472").await.params[1], "z");
    op.send("MODE #room +o ghost").await;
    assert_eq!(op.expect("401").await.params[1], "ghost");

    // Kick and ban.
    op.send("KICK #room bob :behave").await;
    let kick = bob.expect("KICK").await;
    assert_eq!(kick.params[..], ["#room", "bob", "behave"]);
    op.send("MODE #room +b bob!*@*").await;
    op.expect("MODE").await;
    bob.send("JOIN #room").await;
    assert_eq!(bob.expect("474").await.params[1], "#room");
    op.send("MODE #room b").await;
    assert_eq!(op.expect("367").await.params[1..3], ["#room", "bob!*@*"]);
    op.expect("368").await;

    // Keys, limits, invites.
    op.send("MODE #room -b+ki bob!*@* sesame").await;
    op.expect("MODE").await;
    bob.send("JOIN #room").await;
    assert_eq!(bob.expect("473").await.params[1], "#room");
    op.send("INVITE bob #room").await;
    assert_eq!(op.expect("341").await.params[1..], ["bob", "#room"]);
    let invite = bob.expect("INVITE").await;
    assert_eq!(invite.params[..], ["bob", "#room"]);
    bob.send("JOIN #room").await;
    assert_eq!(bob.expect("475").await.params[1], "#room");
    bob.send("JOIN #room sesame").await;
    bob.expect("366").await;
    op.send("KICK #room nobody").await;
    assert_eq!(op.expect("401").await.params[1], "nobody");
    bob.send("PART #elsewhere").await;
    assert_eq!(bob.expect("403").await.params[1], "#elsewhere");
    bob.send("TOPIC #room :mine now").await;
    assert_eq!(bob.expect("482").await.params[1], "#room");
    op.send("TOPIC #room :welcome").await;
    assert_eq!(bob.expect("TOPIC").await.params[..], ["#room", "welcome"]);
}

#[tokio::test]
async fn private_messages_away_whois_and_lists() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    let mut carol = Irc::register(server.addr, "carol", &[]).await;
    alice.send("PRIVMSG bob,nobody :psst").await;
    let pm = bob.expect("PRIVMSG").await;
    assert_eq!(
        (pm.source.as_deref(), &pm.params[..]),
        (Some("alice!~alice@127.0.0.1"), &["bob".into(), "psst".into()][..])
    );
    assert_eq!(alice.expect("401").await.params[1], "nobody");
    bob.send("AWAY :lunch").await;
    bob.expect("306").await;
    alice.send("PRIVMSG bob :hello?").await;
    assert_eq!(alice.expect("301").await.params[1..], ["bob", "lunch"]);
    alice.send("WHOIS bob").await;
    assert_eq!(alice.expect("311").await.params[1..3], ["bob", "~bob"]);
    alice.expect("301").await;
    alice.expect("318").await;
    alice.send("ISON bob nobody carol").await;
    assert_eq!(alice.expect("303").await.params[1], "bob carol");
    alice.send("USERHOST bob").await;
    assert_eq!(alice.expect("302").await.params[1], "bob=-~bob@127.0.0.1");
    // WHO by nick shows a room with the user's status there, as WHO by room does.
    bob.join("#w").await;
    for mask in ["bob", "#w"] {
        alice.send(&format!("WHO {mask}")).await;
        let row = alice.expect("352").await;
        assert_eq!((&row.params[1][..], &row.params[5][..], &row.params[6][..]), ("#w", "bob", "G@"), "WHO {mask}");
        alice.expect("315").await;
    }
    carol.send("QUIT :bye").await;
    assert_eq!(carol.expect("ERROR").await.params[0], "Closing link: Quit: bye");
    alice.send("WHOWAS carol").await;
    assert_eq!(alice.expect("314").await.params[1], "carol");
    alice.send("LIST").await;
    alice.expect("321").await;
    alice.expect("323").await;
}

#[tokio::test]
async fn echo_message_with_server_time_and_msgid() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &["echo-message", "server-time", "message-tags"]).await;
    let mut bob = Irc::register(server.addr, "bob", &["server-time", "message-tags"]).await;
    let mut old = Irc::register(server.addr, "old", &[]).await;
    for c in [&mut alice, &mut bob, &mut old] {
        c.join("#lobby").await;
    }
    alice.send("@+draft/reply=abc PRIVMSG #lobby :tagged").await;
    let echo = alice.expect("PRIVMSG").await;
    let seen = bob.expect("PRIVMSG").await;
    assert_eq!(echo.params[..], ["#lobby", "tagged"]);
    let msgid = echo.tag("msgid").flatten().expect("echo has a msgid");
    assert_eq!(seen.tag("msgid").flatten(), Some(msgid), "everyone sees the same msgid");
    assert_eq!(seen.tag("+draft/reply").flatten(), Some("abc"), "client tags are relayed");
    let time = echo.tag("time").flatten().expect("echo has server-time");
    assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    let plain = old.expect("PRIVMSG").await;
    assert!(plain.tags.is_empty(), "no tags for clients that did not ask: {plain:?}");
    // TAGMSG reaches only clients with message-tags.
    alice.send("@+typing=active TAGMSG #lobby").await;
    let typing = bob.expect("TAGMSG").await;
    assert_eq!(typing.tag("+typing").flatten(), Some("active"));
    old.send("PING :sync").await;
    assert_eq!(old.next().await.command, "PONG", "old client got nothing before its PONG");
}

#[tokio::test]
async fn labeled_responses() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &["labeled-response", "batch", "echo-message"]).await;
    // One reply: labelled directly.
    alice.send("@label=one PING :x").await;
    let pong = alice.next().await;
    assert_eq!((pong.command.as_str(), pong.tag("label").flatten()), ("PONG", Some("one")));
    // Several: wrapped in one labeled-response batch, the JOIN line included, and the refusal
    // for a second room of the same command.
    let mut labeled_batch = async |command: &str, label: &str| {
        alice.send(&format!("@label={label} {command}")).await;
        let start = alice.next().await;
        assert_eq!(start.command, "BATCH");
        assert_eq!(start.tag("label").flatten(), Some(label));
        let reference = start.params[0].strip_prefix('+').expect("batch start").to_string();
        assert_eq!(start.params[1], "labeled-response");
        let mut inside = Vec::new();
        loop {
            let message = alice.next().await;
            if message.command == "BATCH" {
                assert_eq!(message.params[0], format!("-{reference}"));
                return inside;
            }
            assert_eq!(message.tag("batch").flatten(), Some(reference.as_str()), "{message:?}");
            inside.push(message.command);
        }
    };
    assert_eq!(labeled_batch("JOIN #lobby", "two").await, ["JOIN", "353", "366"]);
    assert_eq!(labeled_batch("JOIN #a,#b,#", "2b").await, ["JOIN", "353", "366", "JOIN", "353", "366", "403"]);
    alice.send("@label=2c JOIN #").await;
    let refused = alice.next().await;
    assert_eq!((refused.command.as_str(), refused.tag("label").flatten()), ("403", Some("2c")), "one line: no batch");
    // Without a label, several rooms answer in order all the same: each JOIN, then its names.
    alice.send("JOIN #c,#d").await;
    let mut answers = Vec::new();
    while answers.len() < 6 {
        answers.push(alice.next().await.command);
    }
    assert_eq!(answers, ["JOIN", "353", "366", "JOIN", "353", "366"]);
    // None: acknowledged.
    alice.send("@label=three PONG :x").await;
    let ack = alice.next().await;
    assert_eq!((ack.command.as_str(), ack.tag("label").flatten()), ("ACK", Some("three")));
    // Echo of a message carries the label.
    alice.send("@label=four PRIVMSG #lobby :hi").await;
    let echo = alice.next().await;
    assert_eq!((echo.command.as_str(), echo.tag("label").flatten()), ("PRIVMSG", Some("four")));
}

#[tokio::test]
async fn cap_negotiation() {
    let server = start_server().await;
    let mut c = Irc { client: Client::connect(server.addr).await, nick: String::new() };
    let offered = c.cap_ls().await;
    c.send("NICK capper").await;
    c.send("USER capper 0 * :Capper").await;
    for cap in [
        "message-tags",
        "server-time",
        "echo-message",
        "batch",
        "labeled-response",
        "multi-prefix",
        "sasl=PLAIN,EXTERNAL",
    ] {
        assert!(offered.iter().any(|c| c == cap), "{cap} offered: {offered:?}");
    }
    c.send("CAP REQ :multi-prefix bogus-cap").await;
    assert_eq!(c.expect("CAP").await.params[1..], ["NAK", "multi-prefix bogus-cap"]);
    c.send("CAP REQ :multi-prefix userhost-in-names").await;
    assert_eq!(c.expect("CAP").await.params[1], "ACK");
    // Registration waits for CAP END.
    c.send("CAP LIST").await;
    let list = c.expect("CAP").await;
    assert_eq!(list.params[1..], ["LIST", "cap-notify multi-prefix userhost-in-names"]);
    c.send("CAP END").await;
    c.expect("001").await;
    c.send("JOIN #x").await;
    let names = c.expect("353").await;
    assert_eq!(names.params[3], "@capper!~capper@127.0.0.1");
}

#[tokio::test]
async fn plain_text_and_irc_users_share_the_lobby() {
    let server = start_server().await;
    let mut irc = Irc::register(server.addr, "ircuser", &[]).await;
    irc.join("#lobby").await;
    let mut nc = Client::plain_as(server.addr, "ncuser").await;
    let join = irc.expect("JOIN").await;
    assert_eq!(join.source.as_deref().map(|s| s.split('!').next().unwrap_or(s)), Some("guest-1"));
    let nick = irc.expect("NICK").await;
    assert_eq!(nick.params[0], "ncuser");
    nc.send("hello irc").await;
    let msg = irc.expect("PRIVMSG").await;
    assert_eq!(msg.source.as_deref(), Some("ncuser!plain@127.0.0.1"));
    assert_eq!(msg.params[..], ["#lobby", "hello irc"]);
    irc.send("PRIVMSG #lobby :hello nc \x02bold\x02").await;
    assert_eq!(nc.line().await, "<ircuser> hello nc bold");
    irc.send("PRIVMSG #lobby :\x01ACTION waves\x01").await;
    assert_eq!(nc.line().await, "* ircuser waves");
    irc.send("PRIVMSG ncuser :private hi").await;
    assert_eq!(nc.line().await, "[private] <ircuser> private hi");
    nc.send("/msg ircuser back at you").await;
    let pm = irc.expect("PRIVMSG").await;
    assert_eq!(pm.params[..], ["ircuser", "back at you"]);
    // The hub's rules apply to both: a plain-text operator moderates IRC users.
    nc.send("/join #mod").await;
    nc.expect("You are now in #mod (no one else is here yet).").await;
    irc.join("#mod").await;
    nc.expect("*** ircuser joined #mod").await;
    nc.send("/mode +m").await;
    nc.expect("Mode +m set on #mod.").await;
    irc.expect("MODE").await;
    irc.send("PRIVMSG #mod :may I?").await;
    assert_eq!(irc.expect("404").await.params[1], "#mod");
    nc.send("/kick ircuser enough").await;
    let kick = irc.expect("KICK").await;
    assert_eq!(kick.params[..], ["#mod", "ircuser", "enough"]);
    // Without a reason: IRC shows the kicker's nick as one, plain text shows none.
    irc.join("#mod").await;
    nc.expect("*** ircuser joined #mod").await;
    nc.send("/op ircuser").await;
    irc.expect("MODE").await;
    irc.send("KICK #mod ncuser").await;
    nc.expect("*** ircuser removed you from #mod; /join #lobby to go on chatting").await;
    nc.send("/join #mod").await;
    irc.expect("JOIN").await;
    irc.send("MODE #mod +o ncuser").await;
    nc.expect("*** ircuser set mode +o ncuser on #mod").await;
    nc.send("/kick ircuser").await;
    assert_eq!(irc.expect("KICK").await.params[..], ["#mod", "ircuser", "ncuser"]);
}

#[tokio::test]
async fn overlong_lines_get_417_and_the_session_goes_on() {
    let server = start_server().await;
    let mut irc = Irc::register(server.addr, "long", &[]).await;
    irc.send(&format!("PRIVMSG #lobby :{}", "x".repeat(600))).await;
    irc.expect("417").await;
    irc.client.send_raw(&vec![b'y'; 20_000]).await;
    irc.send("").await;
    irc.expect("417").await;
    irc.send("PING :ok").await;
    assert_eq!(irc.expect("PONG").await.params[1], "ok");
}

#[tokio::test]
async fn long_texts_reach_irc_clients_in_lines_of_512_bytes() {
    let server = start_server().await;
    let mut listener = Irc::register(server.addr, "listener", &[]).await;
    listener.join("#lobby").await;
    let mut plain = Client::plain_as(server.addr, "plainwriter").await;
    let long_nick = "L".repeat(30);
    let mut irc = Irc::register(server.addr, &long_nick, &["echo-message"]).await;
    irc.join("#lobby").await;
    let words: Vec<String> = (0..500).map(|i| format!("word{i}")).collect();
    let plain_text = words.join(" ");
    assert!(plain_text.len() < 4096 && plain_text.len() > 3500);
    // With `PRIVMSG #lobby :`, the longest line a client may send; two-byte characters, so that
    // a cut can fall inside one.
    let irc_text = format!("x{}", "é".repeat(246));
    assert_eq!(irc_text.len(), 493);
    plain.send(&plain_text).await;
    irc.send(&format!("PRIVMSG #lobby :{irc_text}")).await;
    irc.send("PRIVMSG #lobby :done").await;
    let mut by_sender: Vec<(String, String)> = Vec::new();
    loop {
        // `line` fails the test unless the line is UTF-8: no character was cut in two.
        let line = listener.client.line().await;
        assert!(line.len() + 2 <= 512, "{} bytes: {line}", line.len() + 2);
        let message = charla::proto::irc::message::Message::parse(&line).unwrap();
        if message.command != "PRIVMSG" {
            continue;
        }
        if message.params[1] == "done" {
            break;
        }
        let nick = message.source.unwrap_or_default().split('!').next().unwrap_or_default().to_string();
        by_sender.push((nick, message.params[1].to_string()));
    }
    let said_by = |nick: &str| by_sender.iter().filter(|(n, _)| n == nick).map(|(_, t)| t.clone()).collect::<Vec<_>>();
    assert_eq!(said_by("plainwriter").join(" "), plain_text, "a plain-text line is split between words, nothing lost");
    // An IRC client's line stays one message: its end is cut off to fit the relayed line.
    let relayed = said_by(&long_nick);
    assert_eq!(relayed.len(), 1, "one message, not {}: {relayed:?}", relayed.len());
    assert!(irc_text.starts_with(&relayed[0]) && relayed[0].len() < irc_text.len(), "{}", relayed[0]);
    assert!(relayed[0].len() > 400, "only what did not fit is cut: {} bytes left", relayed[0].len());
    // The sender's echo and history say the same as everyone saw.
    let echo = loop {
        let message = irc.expect("PRIVMSG").await;
        if message.source.as_deref().is_some_and(|s| s.starts_with(&format!("{long_nick}!"))) {
            break message;
        }
    };
    assert_eq!(echo.params[1], relayed[0]);
}

#[tokio::test]
async fn opers_kill() {
    let server = start_with(|config| {
        config.hub.opers.insert("admin".into(), "hunter2".into());
    })
    .await;
    let mut admin = Irc::register(server.addr, "admin", &[]).await;
    let mut victim = Irc::register(server.addr, "victim", &[]).await;
    admin.send("KILL victim :spam").await;
    admin.expect("481").await;
    admin.send("OPER admin wrong").await;
    admin.expect("464").await;
    admin.send("OPER admin hunter2").await;
    admin.expect("381").await;
    admin.send("KILL victim :spam").await;
    let error = victim.expect("ERROR").await;
    assert_eq!(error.params[0], "Closing link: Killed by admin: spam");
    assert_eq!(victim.client.try_line().await, None);
    // The server goes on; the victim is gone, and a killed plain-text user is handled alike.
    let mut plain = Client::plain_as(server.addr, "plainvictim").await;
    admin.send("KILL plainvictim :you too").await;
    assert_eq!(
        plain.until_closed().await.last().map(String::as_str),
        Some("*** disconnected: Killed by admin: you too")
    );
    // Their sessions quit them just after closing; no event says when, so ask until they are gone.
    for nick in ["victim", "plainvictim"] {
        eventually(async || {
            admin.send(&format!("ISON {nick}")).await;
            if admin.expect("303").await.params[1].is_empty() { Ok(()) } else { Err(format!("{nick} still online")) }
        })
        .await;
    }
    // An operator may give the rights up, and then has none.
    admin.send("MODE admin -o").await;
    let mode = admin.expect("MODE").await;
    assert_eq!(mode.params[..], ["admin", "-o"]);
    admin.send("MODE admin").await;
    assert_eq!(admin.expect("221").await.params[1], "+");
    let _victim = Irc::register(server.addr, "victim2", &[]).await;
    admin.send("KILL victim2 :again").await;
    admin.expect("481").await;
}

#[tokio::test]
async fn a_killed_client_that_reads_nothing_is_closed_all_the_same() {
    let server = start_with(|config| {
        config.hub.opers.insert("admin".into(), "hunter2".into());
        config.limits.sendq = 1_000_000;
    })
    .await;
    let mut admin = Irc::register(server.addr, "admin", &[]).await;
    admin.send("OPER admin hunter2").await;
    admin.expect("381").await;
    // `stuck` asks for megabytes of answers, more than the sockets between it and the server
    // hold, and reads none of them; its queue is deep enough not to overflow.
    let mut stuck = Irc::register(server.addr, "stuck", &[]).await;
    stuck.client.send_raw("MOTD\r\n".repeat(50_000).as_bytes()).await;
    stuck.send("PRIVMSG admin :all asked").await;
    admin.expect("PRIVMSG").await;
    admin.send("KILL stuck :enough").await;
    // Its last words cannot be written, but the connection goes all the same, and with it the
    // user (before, it stayed until the client read or its queue overflowed).
    let mut watcher = Irc::register(server.addr, "watcher", &[]).await;
    eventually(async || {
        watcher.send("ISON stuck").await;
        if watcher.expect("303").await.params[1].is_empty() { Ok(()) } else { Err("stuck still online".into()) }
    })
    .await;
    drop(stuck);
}

#[tokio::test]
async fn idle_clients_are_pinged_and_dropped() {
    let server = start_server_with(charla::server::Limits {
        ping_interval: std::time::Duration::from_millis(300),
        ..test_limits()
    })
    .await;
    let mut quiet = Irc::register(server.addr, "quiet", &[]).await;
    let ping = quiet.expect("PING").await;
    quiet.send(&format!("PONG :{}", ping.params[0])).await;
    quiet.expect("PING").await;
    let error = quiet.expect("ERROR").await;
    assert!(error.params[0].contains("Ping timeout"), "{error:?}");
}

#[tokio::test]
async fn irc_only_listener_needs_no_sniffing() {
    let server = start_with(|config| config.irc_listen.push("127.0.0.1:0".parse().unwrap())).await;
    let irc_addr = server.addrs[1];
    // A client that waits for the server to speak first still gets IRC, not the plain greeting.
    let mut c = Irc { client: Client::connect(irc_addr).await, nick: String::new() };
    c.send("PING :first").await;
    assert_eq!(c.expect("PONG").await.params[1], "first");
    c.send("NICK only").await;
    c.send("USER only 0 * :Only").await;
    c.expect("001").await;
}

// Two worker threads: the race needs the sender's session to run while the joiner's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_sees_its_join_before_any_message_of_the_room() {
    let server = start_server().await;
    let mut talker = Irc::register(server.addr, "talker", &[]).await;
    talker.join("#race").await;
    let mut joiner = Irc::register(server.addr, "joiner", &[]).await;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let chatter = tokio::spawn(async move {
        let mut i = 0;
        while stopped.try_recv().is_err() {
            talker.send(&format!("PRIVMSG #race :m{i}")).await;
            i += 1;
            if i % 10 == 0 {
                // Pacing, not synchronisation: about 10,000 lines/s, which the history writer
                // of a debug build keeps up with.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    });
    // Join and part while the room is busy: a PRIVMSG for #race must only ever arrive between
    // the joiner's own JOIN and its PART.
    let mut inside = false;
    let mut seen = 0;
    for _ in 0..50 {
        joiner.send("JOIN #race").await;
        joiner.send("PART #race").await;
        loop {
            let message = joiner.next().await;
            match message.command.as_str() {
                "JOIN" => inside = true,
                "PART" => {
                    inside = false;
                    break;
                }
                "PRIVMSG" => {
                    assert!(inside, "a room message before the joiner's JOIN: {message:?}");
                    seen += 1;
                }
                _ => {}
            }
        }
    }
    stop.send(()).unwrap();
    chatter.await.unwrap();
    assert!(seen > 0, "the room was busy while joining");
}

#[tokio::test]
async fn shutdown_says_goodbye_to_unregistered_clients_too() {
    let mut server = start_server().await;
    let mut registered = Irc::register(server.addr, "done", &[]).await;
    let mut negotiating = Irc { client: Client::connect(server.addr).await, nick: String::new() };
    negotiating.send("CAP LS 302").await;
    negotiating.expect("CAP").await;
    let started = tokio::time::Instant::now();
    server.stop().await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "no wait for the grace period");
    assert_eq!(registered.expect("ERROR").await.params[0], "Closing link: Server shutting down");
    assert_eq!(negotiating.expect("ERROR").await.params[0], "Closing link: Server shutting down");
}

#[tokio::test]
async fn clients_that_talk_without_registering_are_dropped() {
    let server = start_server_with(charla::server::Limits {
        ping_interval: std::time::Duration::from_millis(300),
        ..test_limits()
    })
    .await;
    let mut stalling = Irc { client: Client::connect(server.addr).await, nick: String::new() };
    let error = eventually(async || {
        stalling.send("CAP LS 302").await;
        // Every line of the answer (the capability list takes several), or the goodbye.
        loop {
            let message = stalling.next().await;
            if message.command == "ERROR" {
                return Ok(message);
            }
            if message.params.get(2).map(|p| p.as_str()) != Some("*") {
                return Err(format!("still talking: {message:?}"));
            }
        }
    })
    .await;
    assert_eq!(error.params[0], "Closing link: Registration timed out");
}

#[tokio::test]
async fn a_client_that_waits_for_the_server_first_gets_irc() {
    let server = start_server().await;
    let mut watcher = Client::plain_as(server.addr, "watcher").await;
    // Greeted as plain text (it said nothing while sniffing), then each way of registering.
    let registrations: [&[&str]; 4] = [
        &["CAP LS 302", "NICK capbot", "USER capbot 0 * :Bot", "CAP END"],
        &["PASS secret", "NICK passbot", "USER passbot 0 * :Bot"],
        &["NICK nickbot", "USER nickbot 0 * :Bot"],
        &["USER userbot 0 * :Bot", "NICK userbot"],
    ];
    for lines in registrations {
        let (client, guest) = Client::plain(server.addr).await;
        watcher.expect(&format!("*** {guest} joined #lobby")).await;
        let mut bot = Irc { client, nick: String::new() };
        bot.client.send_raw(lines.iter().map(|l| format!("{l}\r\n")).collect::<String>().as_bytes()).await;
        let welcome = bot.expect("001").await;
        let nick = lines.iter().find_map(|l| l.strip_prefix("NICK ")).unwrap();
        assert_eq!(welcome.params[0], nick, "{lines:?}");
        // The guest it was goes; nothing it sent was said as text.
        assert_eq!(watcher.line().await, format!("*** {guest} quit (Switched to IRC)"), "{lines:?}");
        bot.send("PRIVMSG watcher :hi").await;
        assert_eq!(watcher.line().await, format!("[private] <{nick}> hi"));
    }
    // A NICK and USER sent in two writes, as a bot that waits a moment between them might.
    let (client, guest) = Client::plain(server.addr).await;
    watcher.expect(&format!("*** {guest} joined #lobby")).await;
    let mut bot = Irc { client, nick: String::new() };
    bot.send("NICK slowbot").await;
    bot.send("USER slowbot 0 * :Bot").await;
    bot.expect("001").await;
    // An unknown CAP subcommand as the first line, early or late, is an IRC client's mistake.
    let mut early = Irc { client: Client::connect(server.addr).await, nick: String::new() };
    early.send("CAP NOTACOMMAND").await;
    assert_eq!(early.next().await.params[..], ["*", "NOTACOMMAND", "Invalid CAP command"]);
    let (client, _) = Client::plain(server.addr).await;
    let mut late = Irc { client, nick: String::new() };
    late.send("CAP NOTACOMMAND").await;
    let refused = late.expect("410").await;
    assert_eq!(refused.params[..], ["*", "NOTACOMMAND", "Invalid CAP command"]);
}

#[tokio::test]
async fn a_person_typing_irc_words_stays_plain_text() {
    let server = start_server().await;
    let mut watcher = Client::plain_as(server.addr, "watcher").await;
    let (mut person, guest) = Client::plain(server.addr).await;
    watcher.expect(&format!("*** {guest} joined #lobby")).await;
    // Half a registration, then text: both lines are said, in order.
    person.send("NICK bob").await;
    person.send("hello?").await;
    assert_eq!(watcher.line().await, format!("<{guest}> NICK bob"));
    assert_eq!(watcher.line().await, format!("<{guest}> hello?"));
    person.send("CAP LS 302").await;
    assert_eq!(watcher.line().await, format!("<{guest}> CAP LS 302"), "only first lines open IRC");
    // Half a registration alone goes out as text after a moment.
    let (mut other, guest) = Client::plain(server.addr).await;
    watcher.expect(&format!("*** {guest} joined #lobby")).await;
    other.send("NICK alice").await;
    assert_eq!(watcher.line().await, format!("<{guest}> NICK alice"));
    // Nor is it lost when the connection closes.
    let (mut leaving, guest) = Client::plain(server.addr).await;
    watcher.expect(&format!("*** {guest} joined #lobby")).await;
    leaving.send("NICK carol").await;
    leaving.writer.shutdown().await.unwrap();
    assert_eq!(watcher.line().await, format!("<{guest}> NICK carol"));
    for line in ["CAP of the day", "NICK is my name", "PASS all tests green"] {
        let (mut typist, guest) = Client::plain(server.addr).await;
        watcher.expect(&format!("*** {guest} joined #lobby")).await;
        typist.send(line).await;
        assert_eq!(watcher.line().await, format!("<{guest}> {line}"));
    }
}
