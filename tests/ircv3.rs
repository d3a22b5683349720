//! The modern IRCv3 set over raw sockets, each checked against its spec's examples: MONITOR and
//! extended-monitor, setname, invite-notify, bot mode, no-implicit-names, STATUSMSG, WALLOPS
//! and HELP.

mod common;

use common::*;

/// Proves that no `command` was sent to `irc` before the answer to a PING sent now.
async fn assert_none(irc: &mut Irc, command: &str) {
    irc.send("PING :sync").await;
    loop {
        let next = irc.next().await;
        if next.command == "PONG" && next.params.last().map(|p| p.as_str()) == Some("sync") {
            return;
        }
        assert_ne!(next.command, command, "{next:?}");
    }
}

/// Proves that nothing at all was sent to `irc` before the answer to a PING sent now.
async fn assert_quiet(irc: &mut Irc) {
    irc.send("PING :sync").await;
    let next = irc.next().await;
    assert_eq!((next.command.as_str(), next.params.last().map(|p| p.as_str())), ("PONG", Some("sync")), "{next:?}");
}

/// The ISUPPORT tokens the server advertised, as a VERSION answer repeats them.
async fn isupport(irc: &mut Irc) -> Vec<String> {
    irc.send("VERSION").await;
    irc.expect("351").await;
    let mut tokens = Vec::new();
    loop {
        let line = irc.next().await;
        if line.command != "005" {
            assert_eq!(line.command, "PONG", "{line:?}");
            return tokens;
        }
        tokens.extend(line.params[1..line.params.len() - 1].iter().map(|p| p.to_string()));
        if tokens.iter().any(|t| t.starts_with("MSGREFTYPES")) {
            return tokens;
        }
    }
}

#[tokio::test]
async fn isupport_advertises_the_new_features() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    let tokens = isupport(&mut alice).await;
    for token in ["BOT=B", "MONITOR=100", "STATUSMSG=@+", "NAMELEN=128"] {
        assert!(tokens.iter().any(|t| t == token), "{token} in {tokens:?}");
    }
    let ls = alice.cap_ls().await;
    for cap in ["extended-monitor", "invite-notify", "no-implicit-names", "setname"] {
        assert!(ls.iter().any(|c| c == cap), "{cap} in {ls:?}");
    }
}

#[tokio::test]
async fn monitor_follows_nicks_online_and_offline() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    // The spec's `MONITOR + target[,target2]*`: 731 for the nicks offline, in one line.
    alice.send("MONITOR + bob,Carol").await;
    let offline = alice.expect("731").await;
    assert_eq!(offline.params[..], ["alice", "bob,Carol"]);
    // Added twice: not listed twice, and not answered again.
    alice.send("MONITOR + BOB").await;
    assert_quiet(&mut alice).await;
    alice.send("MONITOR L").await;
    assert_eq!(alice.expect("732").await.params[..], ["alice", "bob,Carol"]);
    assert_eq!(alice.expect("733").await.params[..], ["alice", "End of MONITOR list"]);

    // bob connects: `:<server> 730 * :bob!user@host`, the same line for every watcher.
    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    let online = alice.expect("730").await;
    assert_eq!(online.params[..], ["*", "bob!~bob@127.0.0.1"]);
    assert!(online.source.as_deref().is_some_and(|s| !s.contains('!')), "from the server: {online:?}");
    alice.send("MONITOR S").await;
    assert_eq!(alice.expect("730").await.params[1], "bob!~bob@127.0.0.1");
    assert_eq!(alice.expect("731").await.params[1], "Carol");

    // A nick change is the old nick going offline and the new one coming online.
    bob.send("NICK carol").await;
    assert_eq!(alice.expect("731").await.params[..], ["*", "bob"]);
    assert_eq!(alice.expect("730").await.params[..], ["*", "carol!~bob@127.0.0.1"]);
    bob.send("QUIT").await;
    assert_eq!(alice.expect("731").await.params[..], ["*", "carol"]);

    // `-` and `C` answer nothing; the list is then empty.
    alice.send("MONITOR - bob").await;
    assert_quiet(&mut alice).await;
    alice.send("MONITOR L").await;
    assert_eq!(alice.expect("732").await.params[1], "Carol");
    alice.expect("733").await;
    alice.send("MONITOR C").await;
    assert_quiet(&mut alice).await;
    alice.send("MONITOR L").await;
    assert_eq!(alice.next().await.command, "733", "an empty list is just its end");
    let _carol = Irc::register(server.addr, "carol", &[]).await;
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn a_full_monitor_list_refuses_the_rest_with_734() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    let first: Vec<String> = (0..95).map(|i| format!("n{i}")).collect();
    alice.send(&format!("MONITOR + {}", first.join(","))).await;
    alice.expect("731").await;
    alice.send("MONITOR + a1,a2,a3,a4,a5,a6,a7").await;
    let full = alice.expect("734").await;
    // `734 <nick> <limit> <targets> :Monitor list is full.`
    assert_eq!(full.params[..], ["alice", "100", "a6,a7", "Monitor list is full."]);
    alice.send("MONITOR L").await;
    let mut listed = 0;
    loop {
        let line = alice.next().await;
        match line.command.as_str() {
            "732" => listed += line.params[1].split(',').count(),
            "733" => break,
            _ => {}
        }
    }
    assert_eq!(listed, 100);
}

#[tokio::test]
async fn extended_monitor_tells_of_away_and_setname_without_a_shared_room() {
    let server = start_server().await;
    let mut watcher = Irc::register(server.addr, "watcher", &["extended-monitor", "away-notify", "setname"]).await;
    let mut plain_watcher = Irc::register(server.addr, "plainwatch", &["away-notify", "setname"]).await;
    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    for w in [&mut watcher, &mut plain_watcher] {
        w.send("MONITOR + bob").await;
        w.expect("730").await;
    }
    bob.send("AWAY :lunch").await;
    bob.expect("306").await;
    let away = watcher.expect("AWAY").await;
    assert_eq!((away.source.as_deref(), away.params.as_slice()), (Some("bob!~bob@127.0.0.1"), &["lunch".into()][..]));
    bob.send("SETNAME :Bob Builder").await;
    let setname = watcher.expect("SETNAME").await;
    assert_eq!(setname.params[..], ["Bob Builder"]);
    // Without extended-monitor, and sharing no room: nothing.
    assert_quiet(&mut plain_watcher).await;
    // Turned off later: nothing more.
    watcher.send("CAP REQ :-extended-monitor").await;
    watcher.expect("CAP").await;
    bob.send("AWAY").await;
    bob.expect("305").await;
    assert_quiet(&mut watcher).await;
}

#[tokio::test]
async fn setname_changes_the_real_name_for_everyone() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &["setname"]).await;
    let mut bob = Irc::register(server.addr, "bob", &["setname"]).await;
    let mut old = Irc::register(server.addr, "old", &[]).await;
    for c in [&mut alice, &mut bob, &mut old] {
        c.join("#r").await;
    }
    // The spec's example: `SETNAME :Alice Liddell` comes back to the sender and its peers.
    alice.send("SETNAME :Alice Liddell").await;
    let own = alice.expect("SETNAME").await;
    assert_eq!(
        (own.source.as_deref(), own.params.as_slice()),
        (Some("alice!~alice@127.0.0.1"), &["Alice Liddell".into()][..])
    );
    assert_eq!(bob.expect("SETNAME").await.params[..], ["Alice Liddell"]);
    old.send("WHOIS alice").await;
    assert_eq!(old.expect("311").await.params[5], "Alice Liddell", "clients without the cap see it in WHOIS");
    // Invalid: `FAIL SETNAME INVALID_REALNAME :…`, and nothing changes.
    alice.send(&format!("SETNAME :{}", "x".repeat(129))).await;
    let fail = alice.expect("FAIL").await;
    assert_eq!(fail.params[..2], ["SETNAME", "INVALID_REALNAME"]);
    alice.send("WHOIS alice").await;
    assert_eq!(alice.expect("311").await.params[5], "Alice Liddell");
    assert_none(&mut old, "SETNAME").await;
}

#[tokio::test]
async fn invite_notify_tells_those_who_may_invite() {
    let server = start_server().await;
    let mut op = Irc::register(server.addr, "op", &["invite-notify"]).await;
    let mut member = Irc::register(server.addr, "member", &["invite-notify"]).await;
    let mut old = Irc::register(server.addr, "old", &[]).await;
    let mut guest = Irc::register(server.addr, "guest", &[]).await;
    let mut plain = Client::plain_as(server.addr, "plainy").await;
    op.join("#open").await;
    member.join("#open").await;
    old.join("#open").await;
    plain.send("/join #open").await;
    plain.expect_where(|l| l.starts_with("You are now in #open")).await;
    // An open room: every member with the cap sees `:<inviter> INVITE <target> <channel>`.
    member.send("INVITE guest #open").await;
    member.expect("341").await;
    let seen = op.expect("INVITE").await;
    assert_eq!(
        (seen.source.as_deref(), seen.params.as_slice()),
        (Some("member!~member@127.0.0.1"), &["guest".into(), "#open".into()][..])
    );
    assert_eq!(guest.expect("INVITE").await.params[..], ["guest", "#open"]);
    assert_none(&mut old, "INVITE").await;
    plain.assert_quiet().await;
    // A +i room: only its operators may invite, so only they are told.
    op.send("MODE #open +i").await;
    op.expect("MODE").await;
    member.expect("MODE").await;
    op.send("INVITE guest #open").await;
    op.expect("341").await;
    guest.expect("INVITE").await;
    assert_none(&mut member, "INVITE").await;
}

#[tokio::test]
async fn bot_mode_marks_a_bot_everywhere() {
    let server = start_server().await;
    let mut bot = Irc::register(server.addr, "robodan", &[]).await;
    let mut alice = Irc::register(server.addr, "alice", &["message-tags"]).await;
    let mut old = Irc::register(server.addr, "old", &[]).await;
    bot.join("#chat").await;
    alice.join("#chat").await;
    old.join("#chat").await;
    // The spec's example: `MODE robodan +B` is confirmed.
    bot.send("MODE robodan +B").await;
    assert_eq!(bot.expect("MODE").await.params[..], ["robodan", "+B"]);
    bot.send("MODE robodan").await;
    assert_eq!(bot.expect("221").await.params[1], "+B");
    alice.send("WHOIS robodan").await;
    let whoisbot = alice.expect("335").await;
    assert_eq!(whoisbot.params[..2], ["alice", "robodan"]);
    alice.expect("318").await;
    alice.send("WHO #chat").await;
    let mut flags = Vec::new();
    loop {
        let line = alice.next().await;
        match line.command.as_str() {
            "352" => flags.push((line.params[5].clone(), line.params[6].clone())),
            "315" => break,
            _ => {}
        }
    }
    flags.sort();
    assert_eq!(flags, [("alice".into(), "H".into()), ("old".into(), "H".into()), ("robodan".into(), "H@B".into())]);
    // `@bot :robodan!… PRIVMSG #chat :…` for clients with message-tags, no tag for others.
    bot.send("PRIVMSG #chat :Hello! Try typing .help").await;
    let tagged = alice.expect("PRIVMSG").await;
    assert_eq!(tagged.tag("bot"), Some(None), "a bare bot tag: {tagged:?}");
    assert!(old.expect("PRIVMSG").await.tags.is_empty());
    bot.send("MODE robodan -B").await;
    bot.expect("MODE").await;
    bot.send("PRIVMSG #chat :human again").await;
    assert_eq!(alice.expect("PRIVMSG").await.tag("bot"), None);
}

#[tokio::test]
async fn no_implicit_names_joins_without_names() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &["no-implicit-names"]).await;
    alice.send("JOIN #quiet").await;
    assert_eq!(alice.next().await.command, "JOIN");
    assert_quiet(&mut alice).await;
    // Asked for, the names still come.
    alice.send("NAMES #quiet").await;
    alice.expect("353").await;
    alice.expect("366").await;
}

#[tokio::test]
async fn statusmsg_reaches_operators_or_voiced_members_only() {
    let server = start_server().await;
    let mut op = Irc::register(server.addr, "op", &["echo-message", "batch", "draft/chathistory"]).await;
    let mut voiced = Irc::register(server.addr, "voiced", &[]).await;
    let mut member = Irc::register(server.addr, "member", &[]).await;
    let mut plain_op = Client::plain_as(server.addr, "plainop").await;
    op.join("#room").await;
    voiced.join("#room").await;
    member.join("#room").await;
    plain_op.send("/join #room").await;
    plain_op.expect_where(|l| l.starts_with("You are now in #room")).await;
    op.send("MODE #room +vo voiced plainop").await;
    op.expect("MODE").await;
    member.expect("MODE").await;

    op.send("PRIVMSG @#room :ops only").await;
    let echo = op.expect("PRIVMSG").await;
    assert_eq!(echo.params[..], ["@#room", "ops only"]);
    plain_op.expect("[to operators] <op> ops only").await;
    voiced.send("PRIVMSG +#room :voiced and up").await;
    plain_op.expect("[to voiced] <voiced> voiced and up").await;
    let seen = op.expect("PRIVMSG").await;
    assert_eq!(
        (seen.source.as_deref(), seen.params.as_slice()),
        (Some("voiced!~voiced@127.0.0.1"), &["+#room".into(), "voiced and up".into()][..])
    );
    assert_none(&mut member, "PRIVMSG").await;
    assert_none(&mut voiced, "PRIVMSG").await;
    // Not in the room's history, which every member may read.
    let history = op.chathistory("LATEST #room * 10").await;
    assert!(history.is_empty(), "{history:?}");
    // The room's rules hold as for the room itself.
    let mut outsider = Irc::register(server.addr, "outsider", &[]).await;
    outsider.send("PRIVMSG @#room :let me in").await;
    assert_eq!(outsider.expect("404").await.params[1], "#room");
}

#[tokio::test]
async fn wallops_reach_users_with_mode_w() {
    let server = start_with(|config| {
        config.hub.opers.insert("admin".into(), "hunter2".into());
    })
    .await;
    let mut admin = Irc::register(server.addr, "admin", &[]).await;
    let mut listener = Irc::register(server.addr, "listener", &[]).await;
    let mut other = Irc::register(server.addr, "other", &[]).await;
    admin.send("WALLOPS :not yet").await;
    admin.expect("481").await;
    admin.send("OPER admin hunter2").await;
    admin.expect("381").await;
    listener.send("MODE listener +w").await;
    assert_eq!(listener.expect("MODE").await.params[..], ["listener", "+w"]);
    admin.send("WALLOPS :server restarts at noon").await;
    let wallops = listener.expect("WALLOPS").await;
    assert_eq!(
        (wallops.source.as_deref(), wallops.params.as_slice()),
        (Some("admin!~admin@127.0.0.1"), &["server restarts at noon".into()][..])
    );
    assert_none(&mut other, "WALLOPS").await;
    assert_none(&mut admin, "WALLOPS").await;
    // Plain-text operators may send them too.
    let mut plain = Client::plain_as(server.addr, "plainop").await;
    plain.send("/wallops hello").await;
    plain.expect_where(|l| l.starts_with("error: that needs server operator rights")).await;
    plain.send("/oper admin hunter2").await;
    plain.send("/wallops from the terminal").await;
    plain.expect("Wallops sent.").await;
    assert_eq!(listener.expect("WALLOPS").await.params[..], ["from the terminal"]);
}

#[tokio::test]
async fn help_explains_every_command() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    alice.send("HELP").await;
    let start = alice.expect("704").await;
    assert_eq!(start.params[1], "*");
    let mut index = String::new();
    loop {
        let line = alice.next().await;
        match line.command.as_str() {
            "705" => index.push_str(&format!("{} ", line.params[2])),
            "706" => break,
            other => panic!("unexpected {other}"),
        }
    }
    for command in ["PRIVMSG", "MONITOR", "SETNAME", "WALLOPS", "HELP"] {
        assert!(index.split(' ').any(|w| w == command), "{command} in {index}");
    }
    alice.send("HELP monitor").await;
    let start = alice.expect("704").await;
    assert_eq!(start.params[1], "MONITOR");
    assert!(start.params[2].starts_with("MONITOR +"), "{start:?}");
    assert_eq!(alice.expect("706").await.params[1], "MONITOR");
    alice.send("HELP frobnicate").await;
    let missing = alice.expect("524").await;
    assert_eq!(missing.params[1], "frobnicate");
}

#[tokio::test]
async fn replies_and_reactions_survive_a_restart() {
    let dir = TempDir::new();
    let caps = ["message-tags", "echo-message", "batch", "draft/chathistory", "server-time"];
    let mut server = start_at(&dir.0, |_| {}).await;
    let mut alice = Irc::register(server.addr, "alice", &caps).await;
    alice.join("#r").await;
    alice.send("PRIVMSG #r :hello").await;
    let hello = alice.expect("PRIVMSG").await;
    let first = hello.tag("msgid").flatten().expect("a msgid").to_string();
    alice.send(&format!("@+draft/reply={first} PRIVMSG #r :a reply")).await;
    alice.expect("PRIVMSG").await;
    alice.send(&format!("@+draft/react=👍;+draft/reply={first} TAGMSG #r")).await;
    alice.expect("TAGMSG").await;
    alice.send("@+typing=active TAGMSG #r").await;
    alice.expect("TAGMSG").await;
    drop(alice);
    server.stop().await;

    let server = start_at(&dir.0, |_| {}).await;
    let mut alice = Irc::register(server.addr, "alice", &caps).await;
    alice.join("#r").await;
    let history = alice.chathistory("LATEST #r * 10").await;
    let seen: Vec<(&str, Option<&str>, Option<&str>)> = history
        .iter()
        .map(|m| (m.command.as_str(), m.tag("+draft/reply").flatten(), m.tag("+draft/react").flatten()))
        .collect();
    assert_eq!(
        seen,
        [
            ("PRIVMSG", None, None),
            ("PRIVMSG", Some(first.as_str()), None),
            ("TAGMSG", Some(first.as_str()), Some("👍"))
        ],
        "the typing notice is not kept: {history:?}"
    );
}

#[tokio::test]
async fn redaction_by_the_sender_and_by_a_room_operator() {
    let server = start_server().await;
    let caps =
        ["message-tags", "echo-message", "draft/message-redaction", "batch", "draft/chathistory", "standard-replies"];
    let mut op = Irc::register(server.addr, "op", &caps).await;
    let mut bob = Irc::register(server.addr, "bob", &caps).await;
    let mut old = Irc::register(server.addr, "old", &[]).await;
    let mut plain = Client::plain_as(server.addr, "plainy").await;
    op.join("#r").await;
    bob.join("#r").await;
    old.join("#r").await;
    plain.send("/join #r").await;
    plain.expect_where(|l| l.starts_with("You are now in #r")).await;
    let say = async |irc: &mut Irc, text: &str| {
        irc.send(&format!("PRIVMSG #r :{text}")).await;
        irc.expect("PRIVMSG").await.tag("msgid").flatten().expect("msgid").to_string()
    };
    // The spec's first example: the sender redacts its own message, with a reason.
    let example = say(&mut bob, "an example").await;
    bob.send(&format!("REDACT #r {example} :bad example")).await;
    let echo = bob.expect("REDACT").await;
    assert_eq!(echo.params[..], ["#r", example.as_str(), "bad example"]);
    let seen = op.expect("REDACT").await;
    assert_eq!((seen.source.as_deref(), seen.params.as_slice()), (Some("bob!~bob@127.0.0.1"), echo.params.as_slice()));
    plain.expect("*** bob removed a message of bob (bad example)").await;
    assert_none(&mut old, "REDACT").await;

    // Someone else's message: only a room operator may.
    let op_line = say(&mut op, "op line").await;
    bob.send(&format!("REDACT #r {op_line}")).await;
    let forbidden = bob.expect("FAIL").await;
    assert_eq!(forbidden.params[..4], ["REDACT", "REDACT_FORBIDDEN", "#r", op_line.as_str()]);
    let spam = say(&mut bob, "join my network for cold hard chats").await;
    op.send(&format!("REDACT #r {spam} spam")).await;
    assert_eq!(bob.expect("REDACT").await.params[..], ["#r", spam.as_str(), "spam"]);

    // Unknown messages and targets.
    op.send(&format!("REDACT #r {example}")).await;
    assert_eq!(op.expect("FAIL").await.params[1], "UNKNOWN_MSGID", "already redacted");
    op.send("REDACT #r nonsense").await;
    assert_eq!(op.expect("FAIL").await.params[1], "UNKNOWN_MSGID");
    op.send(&format!("REDACT #elsewhere {op_line}")).await;
    assert_eq!(op.expect("FAIL").await.params[..3], ["REDACT", "INVALID_TARGET", "#elsewhere"]);

    // History leaves the redacted messages out; plain text shows them removed.
    let history = op.chathistory("LATEST #r * 10").await;
    let texts: Vec<&str> = history.iter().map(|m| m.params[1].as_str()).collect();
    assert_eq!(texts, ["op line"]);
    plain.send("/history").await;
    plain.expect_where(|l| l.starts_with("--- last")).await;
    let lines = [plain.line().await, plain.line().await, plain.line().await];
    assert!(lines[0].ends_with("<bob> (message removed)"), "{lines:?}");
    assert!(lines[1].ends_with("<op> op line"), "{lines:?}");
    assert!(lines[2].ends_with("<bob> (message removed)"), "{lines:?}");
}

/// Sends the multiline spec's example batch from `irc` to `target`, with `tags` on its opening.
async fn send_spec_example(irc: &mut Irc, target: &str, tags: &str) {
    irc.send(&format!("{tags}BATCH +123 draft/multiline {target}")).await;
    irc.send(&format!("@batch=123 PRIVMSG {target} hello")).await;
    irc.send(&format!("@batch=123 privmsg {target} :how is ")).await;
    irc.send(&format!("@batch=123;draft/multiline-concat PRIVMSG {target} :everyone?")).await;
    irc.send("BATCH -123").await;
}

/// Reads a `draft/multiline` batch: its opening line and the lines inside.
async fn multiline_batch(irc: &mut Irc) -> (Message, Vec<Message>) {
    let start = irc.expect("BATCH").await;
    assert_eq!(start.params[1], "draft/multiline", "{start:?}");
    let reference = start.params[0].strip_prefix('+').expect("an opening").to_string();
    let mut lines = Vec::new();
    loop {
        let line = irc.next().await;
        if line.command == "BATCH" {
            assert_eq!(line.params[..], [format!("-{reference}")]);
            return (start, lines);
        }
        assert_eq!(line.tag("batch").flatten(), Some(reference.as_str()), "{line:?}");
        lines.push(line);
    }
}

#[tokio::test]
async fn multiline_messages_as_a_batch_or_line_by_line() {
    let server = start_server().await;
    let caps = ["batch", "draft/multiline", "message-tags", "echo-message", "server-time"];
    let mut alice = Irc::register(server.addr, "alice", &caps).await;
    let mut bob = Irc::register(server.addr, "bob", &["batch", "draft/multiline", "message-tags"]).await;
    let mut old = Irc::register(server.addr, "old", &[]).await;
    let mut plain = Client::plain_as(server.addr, "plainy").await;
    let ls = alice.cap_ls().await;
    assert!(ls.iter().any(|c| c == "draft/multiline=max-bytes=4096,max-lines=100"), "{ls:?}");
    for irc in [&mut alice, &mut bob, &mut old] {
        irc.join("#lobby").await;
    }

    send_spec_example(&mut alice, "#lobby", "@+draft/reply=x ").await;
    // With the capability: one batch from the sender, its id and tags on the opening line.
    let (start, lines) = multiline_batch(&mut bob).await;
    assert_eq!((start.source.as_deref(), start.params[2].as_str()), (Some("alice!~alice@127.0.0.1"), "#lobby"));
    let msgid = start.tag("msgid").flatten().expect("the message's id").to_string();
    assert_eq!(start.tag("+draft/reply").flatten(), Some("x"));
    let texts: Vec<&str> = lines.iter().map(|l| l.params[1].as_str()).collect();
    assert_eq!(texts, ["hello", "how is everyone?"]);
    assert!(lines.iter().all(|l| l.command == "PRIVMSG" && l.tag("msgid").is_none()));
    let (echo, _) = multiline_batch(&mut alice).await;
    assert_eq!(echo.tag("msgid").flatten(), Some(msgid.as_str()), "the echo is the same message");
    // Without: one PRIVMSG per line; plain text: one line each.
    let first = old.expect("PRIVMSG").await;
    let second = old.next().await;
    assert_eq!((first.params[1].as_str(), second.params[1].as_str()), ("hello", "how is everyone?"));
    plain.expect("<alice> hello").await;
    plain.expect("<alice> how is everyone?").await;

    // A line longer than one IRC line reaches everyone whole, in pieces under 512 bytes.
    let long: String = (0..120).map(|i| format!("word{i} ")).collect();
    alice.send("BATCH +long draft/multiline bob").await;
    for chunk in long.as_bytes().chunks(300) {
        let chunk = std::str::from_utf8(chunk).unwrap();
        alice.send(&format!("@batch=long;draft/multiline-concat PRIVMSG bob :{chunk}")).await;
    }
    alice.send("BATCH -long").await;
    let (_, pieces) = multiline_batch(&mut bob).await;
    assert!(pieces.len() > 1 && pieces[1..].iter().all(|p| p.tag("draft/multiline-concat").is_some()), "{pieces:?}");
    assert_eq!(pieces.iter().map(|p| p.params[1].as_str()).collect::<String>(), long);
}

#[tokio::test]
async fn multiline_batches_that_break_the_rules_are_refused() {
    let server = start_server().await;
    let mut alice = Irc::register(server.addr, "alice", &["batch", "draft/multiline"]).await;
    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    alice.join("#foo").await;
    bob.join("#foo").await;
    // The spec's examples of refusals.
    alice.send("BATCH +456 draft/multiline #foo").await;
    alice.send("@batch=456 PRIVMSG #bar hello").await;
    alice.send("@batch=456 PRIVMSG #foo :dropped with the rest").await;
    alice.send("BATCH -456").await;
    assert_eq!(
        alice.expect("FAIL").await.params[..],
        ["BATCH", "MULTILINE_INVALID_TARGET", "#foo", "#bar", "Invalid multiline target"]
    );
    alice.send("BATCH +abc draft/multiline #foo").await;
    for i in 0..101 {
        alice.send(&format!("@batch=abc PRIVMSG #foo :line {i}")).await;
    }
    alice.send("BATCH -abc").await;
    assert_eq!(alice.expect("FAIL").await.params[..3], ["BATCH", "MULTILINE_MAX_LINES", "100"]);
    alice.send("BATCH +big draft/multiline #foo").await;
    for _ in 0..9 {
        alice.send(&format!("@batch=big PRIVMSG #foo :{}", "x".repeat(460))).await;
    }
    alice.send("BATCH -big").await;
    assert_eq!(alice.expect("FAIL").await.params[..3], ["BATCH", "MULTILINE_MAX_BYTES", "4096"]);
    alice.send("BATCH +blank draft/multiline #foo").await;
    alice.send("@batch=blank PRIVMSG #foo :").await;
    alice.send("BATCH -blank").await;
    assert_eq!(alice.expect("FAIL").await.params[..2], ["BATCH", "MULTILINE_INVALID"]);
    alice.send("BATCH +x chathistory #foo").await;
    assert_eq!(alice.expect("FAIL").await.params[..2], ["BATCH", "UNKNOWN_TYPE"]);
    // Nothing of it reached the room.
    assert_none(&mut bob, "PRIVMSG").await;
    // A client without the capability cannot open one.
    bob.send("BATCH +1 draft/multiline #foo").await;
    assert_eq!(bob.expect("FAIL").await.params[..2], ["BATCH", "MULTILINE_INVALID"]);
}

#[tokio::test]
async fn multiline_messages_come_back_from_history() {
    let server = start_server().await;
    let caps = ["batch", "draft/multiline", "draft/chathistory", "message-tags", "echo-message"];
    let mut alice = Irc::register(server.addr, "alice", &caps).await;
    let mut reader = Irc::register(server.addr, "reader", &["batch", "draft/chathistory"]).await;
    let mut plain = Client::plain_as(server.addr, "plainy").await;
    alice.join("#lobby").await;
    reader.join("#lobby").await;
    send_spec_example(&mut alice, "#lobby", "").await;
    multiline_batch(&mut alice).await;
    // With draft/multiline: a multiline batch inside the chathistory batch.
    alice.send("CHATHISTORY LATEST #lobby * 10").await;
    let outer = alice.expect("BATCH").await;
    assert_eq!(outer.params[1], "chathistory");
    let mut history = Vec::new();
    loop {
        let line = alice.next().await;
        if line.command == "BATCH" && line.params[0] == outer.params[0].replacen('+', "-", 1) {
            break;
        }
        history.push(line);
    }
    let commands: Vec<&str> = history.iter().map(|m| m.command.as_str()).collect();
    assert_eq!(commands, ["BATCH", "PRIVMSG", "PRIVMSG", "BATCH"], "{history:?}");
    assert_eq!(history[0].params[1], "draft/multiline");
    // Without: the lines one by one, the message's id on the first.
    let history = reader.chathistory("LATEST #lobby * 10").await;
    let texts: Vec<&str> = history.iter().map(|m| m.params[1].as_str()).collect();
    assert_eq!(texts, ["hello", "how is everyone?"]);
    assert!(history[0].tag("msgid").is_some() && history[1].tag("msgid").is_none());
    plain.send("/history").await;
    plain.expect_where(|l| l.starts_with("--- last")).await;
    assert!(plain.line().await.ends_with("<alice> hello"));
    assert!(plain.line().await.ends_with("<alice> how is everyone?"));
}

#[tokio::test]
async fn a_labeled_multiline_echo_carries_its_label_on_the_opening_batch() {
    let server = start_server().await;
    let caps = ["batch", "draft/multiline", "echo-message", "labeled-response", "message-tags"];
    let mut alice = Irc::register(server.addr, "alice", &caps).await;
    alice.join("#lobby").await;
    send_spec_example(&mut alice, "#lobby", "@label=paste ").await;
    let (start, lines) = multiline_batch(&mut alice).await;
    assert_eq!(start.tag("label").flatten(), Some("paste"), "{start:?}");
    assert!(lines.iter().all(|l| l.tag("label").is_none()));
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn plain_text_users_redact_their_last_message() {
    let server = start_server().await;
    let mut irc = Irc::register(server.addr, "watcher", &["message-tags", "draft/message-redaction"]).await;
    irc.join("#lobby").await;
    let mut plain = Client::plain_as(server.addr, "typo").await;
    plain.send("/redact").await;
    plain.expect("error: you have said nothing in #lobby lately that could be removed").await;
    plain.send("first").await;
    plain.send("secnod, oops").await;
    irc.expect("PRIVMSG").await;
    let oops = irc.expect("PRIVMSG").await;
    plain.send("/redact typo").await;
    plain.expect("Your last message in #lobby was removed.").await;
    let redact = irc.expect("REDACT").await;
    assert_eq!(redact.params[..], ["#lobby", oops.tag("msgid").flatten().unwrap(), "typo"]);
    plain.send("/history").await;
    plain.expect_where(|l| l.starts_with("--- last")).await;
    assert!(plain.line().await.ends_with("<typo> first"));
    assert!(plain.line().await.ends_with("<typo> (message removed)"));
}
