//! Unit tests of the chat rules, with no sockets: each user's outbox is read back directly.

use super::modes::parse;
use super::*;

struct Tester {
    hub: Hub,
}

fn hub() -> Tester {
    let mut config = HubConfig::default();
    config.opers.insert("admin".into(), "secret".into());
    Tester { hub: Hub::new(config, History::default()) }
}

impl Tester {
    fn add(&mut self, nick: &str) -> (ConnId, Outbox) {
        let outbox = Outbox::new(64);
        let (id, _) = self
            .hub
            .register(Registration {
                nick: Some(nick.into()),
                user: "u".into(),
                host: "127.0.0.1".into(),
                realname: nick.into(),
                protocol: Protocol::Plain,
                secure: false,
                certfp: None,
                outbox: outbox.clone(),
            })
            .unwrap();
        (id, outbox)
    }
}

/// Everything queued for one user, as events.
fn drain(outbox: &Outbox) -> Vec<EventKind> {
    let mut batch = std::collections::VecDeque::new();
    // What the server's `Deferred::run` does for comings and goings left waiting.
    outbox.release();
    let fut = outbox.next_batch(&mut batch);
    // The batch is ready or the queue is empty; never wait in a unit test.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let _ = std::pin::pin!(fut).poll(&mut cx);
    batch.iter().flat_map(Out::events).map(|e| e.kind.clone()).collect()
}

use std::future::Future;

fn texts(events: &[EventKind]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn guests_get_unique_nicks() {
    let mut t = hub();
    t.add("guest-1");
    let reg = |outbox| Registration {
        nick: None,
        user: "u".into(),
        host: "h".into(),
        realname: "".into(),
        protocol: Protocol::Plain,
        secure: false,
        certfp: None,
        outbox,
    };
    let (_, a) = t.hub.register(reg(Outbox::new(1))).unwrap();
    let (_, b) = t.hub.register(reg(Outbox::new(1))).unwrap();
    assert_eq!(a, "guest-2");
    assert_eq!(b, "guest-3");
}

#[test]
fn nicks_are_unique_ignoring_case() {
    let mut t = hub();
    let (a, _) = t.add("alice");
    let (b, _) = t.add("bob");
    assert_eq!(t.hub.set_nick(b, "ALICE").unwrap_err(), HubError::NickInUse("ALICE".into()));
    assert!(matches!(t.hub.set_nick(b, "1bad"), Err(HubError::BadNick(_))));
    // Changing only the case of one's own nick is allowed.
    t.hub.set_nick(a, "Alice").unwrap();
    assert_eq!(t.hub.nick(a), "Alice");
    assert_eq!(t.hub.online("ALICE"), Some("Alice"));
    // The old nick is free after a change.
    t.hub.set_nick(b, "carol").unwrap();
    t.hub.set_nick(a, "bob").unwrap();
}

#[test]
fn room_messages_reach_other_members_only() {
    let mut t = hub();
    let (a, ao) = t.add("alice");
    let (b, bo) = t.add("bob");
    let (c, co) = t.add("carol");
    let (_, outsider) = t.add("dave");
    for id in [a, b, c] {
        t.hub.join(id, "#lobby", None).unwrap();
    }
    drain(&ao);
    drain(&bo);
    drain(&co);
    t.hub.say(a, "#lobby", MsgKind::Privmsg, "hi all", vec![]).unwrap();
    assert!(texts(&drain(&ao)).is_empty(), "no echo to the sender");
    assert_eq!(texts(&drain(&bo)), ["hi all"]);
    assert_eq!(texts(&drain(&co)), ["hi all"]);
    assert!(drain(&outsider).is_empty());
}

#[test]
fn a_text_too_long_for_one_line_is_said_as_several_messages() {
    let mut t = hub();
    let (a, _) = t.add("alice");
    let (_, bo) = t.add("bob");
    let words: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
    let text = words.join(" ");
    let said = t.hub.say(a, "bob", MsgKind::Action, &text, vec![]).unwrap();
    let received = texts(&drain(&bo));
    assert!(received.len() > 1 && said.events.len() == received.len(), "{} pieces", received.len());
    assert_eq!(received.join(" "), text, "nothing lost, cut between words");
    // `:alice!user@host PRIVMSG bob :\x01ACTION …\x01\r\n` fits in 512 bytes.
    let source = t.hub.source(a).clone();
    let frame = format!(":{}!{}@{} PRIVMSG bob :\x01ACTION \x01\r\n", source.nick, source.user, source.host).len();
    assert!(received.iter().all(|piece| frame + piece.len() <= 512), "every piece fits one IRC line");
    assert!(received.iter().any(|piece| frame + piece.len() > 500), "pieces are not needlessly short");
}

#[test]
fn private_messages_reach_only_their_target() {
    let mut t = hub();
    let (a, _) = t.add("alice");
    let (_, bo) = t.add("bob");
    let (c, co) = t.add("carol");
    t.hub.join(a, "#x", None).unwrap();
    t.hub.join(c, "#x", None).unwrap();
    drain(&co);
    t.hub.say(a, "BOB", MsgKind::Privmsg, "secret", vec![]).unwrap();
    assert_eq!(texts(&drain(&bo)), ["secret"]);
    assert!(drain(&co).is_empty());
    assert_eq!(
        t.hub.say(a, "nobody", MsgKind::Privmsg, "x", vec![]).unwrap_err(),
        HubError::NoSuchNick("nobody".into())
    );
}

#[test]
fn text_is_sanitised_and_must_not_be_empty() {
    let mut t = hub();
    let (a, _) = t.add("alice");
    let (_, bo) = t.add("bob");
    t.hub.say(a, "bob", MsgKind::Privmsg, "\x1b[2Jhi\x07", vec![]).unwrap();
    assert_eq!(texts(&drain(&bo)), ["hi"]);
    assert_eq!(t.hub.say(a, "bob", MsgKind::Privmsg, "\x1b[2J", vec![]).unwrap_err(), HubError::NoText);
}

#[test]
fn first_joiner_is_operator_and_empty_rooms_vanish() {
    let mut t = hub();
    let (a, _) = t.add("alice");
    let (b, _) = t.add("bob");
    t.hub.join(a, "#Room", None).unwrap();
    t.hub.join(b, "#room", None).unwrap();
    let info = t.hub.room_info(a, "#ROOM").unwrap();
    assert_eq!(info.name, "#Room");
    let ops: Vec<_> = info.members.iter().map(|m| (m.info.nick.as_str(), m.status.op)).collect();
    assert_eq!(ops, [("alice", true), ("bob", false)]);
    assert_eq!(t.hub.join(a, "#room", None).unwrap().map(|j| j.room), None);
    t.hub.part(a, "#room", "bye").unwrap();
    t.hub.quit(b, "gone");
    assert!(t.hub.list_rooms(a, &ListFilter::default()).is_empty());
    assert!(matches!(t.hub.part(a, "#room", ""), Err(HubError::NoSuchRoom(_))));
}

#[test]
fn joins_parts_and_nick_changes_are_announced_to_others() {
    let mut t = hub();
    let (a, ao) = t.add("alice");
    let (b, bo) = t.add("bob");
    t.hub.join(a, "#lobby", None).unwrap().unwrap();
    assert!(matches!(&drain(&ao)[..], [EventKind::Join { who, .. }] if who.nick == "alice"), "a joiner gets its JOIN");
    t.hub.join(b, "#lobby", None).unwrap();
    assert!(matches!(&drain(&ao)[..], [EventKind::Join { who, .. }] if who.nick == "bob"));
    assert!(matches!(&drain(&bo)[..], [EventKind::Join { .. }]));
    let event = t.hub.set_nick(b, "robert").unwrap();
    assert!(matches!(&event.kind, EventKind::Nick { new, .. } if new == "robert"));
    assert!(matches!(&drain(&ao)[..], [EventKind::Nick { new, .. }] if new == "robert"));
    assert!(drain(&bo).is_empty(), "other verbs give the actor its event back from the call");
    assert!(t.hub.set_away(b, Some("lunch")));
    assert!(matches!(&drain(&ao)[..], [EventKind::Away { message: Some(m), .. }] if m == "lunch"));
    t.hub.part(a, "#lobby", "brb").unwrap();
    assert!(matches!(&drain(&bo)[..], [EventKind::Part { reason, .. }] if reason == "brb"));
    t.hub.join(a, "#lobby", None).unwrap();
    t.hub.quit(b, "bye");
    assert!(matches!(&drain(&ao)[..], [EventKind::Join { .. }, EventKind::Quit { reason, .. }] if reason == "bye"));
    assert_eq!(t.hub.whowas("robert", 5).len(), 1);
    assert!(t.hub.online("robert").is_none());
}

#[test]
fn moderation_bans_keys_limits_invites() {
    let mut t = hub();
    let (op, _) = t.add("op");
    let (v, _) = t.add("voiced");
    let (b, _) = t.add("bob");
    let (c, _) = t.add("carol");
    t.hub.join(op, "#r", None).unwrap();
    t.hub.join(v, "#r", None).unwrap();
    t.hub.join(b, "#r", None).unwrap();

    // Only operators change modes.
    assert_eq!(t.hub.set_modes(b, "#r", parse("+m", &[]).changes).unwrap_err(), HubError::NeedOps("#r".into()));
    let applied = t.hub.set_modes(op, "#r", parse("+mv", &["VOICED"]).changes).unwrap();
    assert_eq!(modes::render(&applied.applied), "+mv voiced");
    assert_eq!(t.hub.say(b, "#r", MsgKind::Privmsg, "hi", vec![]).unwrap_err(), HubError::Moderated("#r".into()));
    t.hub.say(v, "#r", MsgKind::Privmsg, "hi", vec![]).unwrap();
    t.hub.say(op, "#r", MsgKind::Privmsg, "hi", vec![]).unwrap();

    // +n: outsiders cannot send.
    assert_eq!(t.hub.say(c, "#r", MsgKind::Privmsg, "x", vec![]).unwrap_err(), HubError::External("#r".into()));

    // +b: banned users cannot join.
    t.hub.set_modes(op, "#r", parse("+b", &["carol"]).changes).unwrap();
    assert_eq!(t.hub.join(c, "#r", None).unwrap_err(), HubError::Banned("#r".into()));
    assert_eq!(t.hub.bans(c, "#r").unwrap()[0].mask, "carol!*@*", "outsiders see a public room's bans");
    t.hub.set_modes(op, "#r", parse("-b", &["carol!*@*"]).changes).unwrap();

    // +k and +l.
    t.hub.set_modes(op, "#r", parse("+kl", &["pw", "3"]).changes).unwrap();
    assert_eq!(t.hub.join(c, "#r", None).unwrap_err(), HubError::BadKey("#r".into()));
    assert_eq!(t.hub.join(c, "#r", Some("pw")).unwrap_err(), HubError::RoomFull("#r".into()));
    t.hub.set_modes(op, "#r", parse("-l", &[]).changes).unwrap();
    t.hub.join(c, "#r", Some("pw")).unwrap();
    t.hub.part(c, "#r", "").unwrap();

    // +i: only invited users join; only operators may invite.
    t.hub.set_modes(op, "#r", parse("+i-k", &[]).changes).unwrap();
    assert_eq!(t.hub.join(c, "#r", None).unwrap_err(), HubError::InviteOnly("#r".into()));
    assert_eq!(t.hub.invite(b, "carol", "#r").unwrap_err(), HubError::NeedOps("#r".into()));
    t.hub.invite(op, "carol", "#r").unwrap();
    t.hub.join(c, "#r", None).unwrap();
    assert_eq!(
        t.hub.invite(op, "carol", "#r").unwrap_err(),
        HubError::UserInRoom { nick: "carol".into(), room: "#r".into() }
    );
    // An invitation never used goes when the invited user leaves the server, from each room.
    let (e, _) = t.add("erin");
    t.hub.join(op, "#s", None).unwrap();
    for room in ["#r", "#s", "#r"] {
        t.hub.invite(op, "erin", room).unwrap();
    }
    assert!(t.hub.rooms["#r"].invited.contains(&e) && t.hub.rooms["#s"].invited.contains(&e));
    t.hub.quit(e, "bye");
    assert!(t.hub.rooms["#r"].invited.is_empty() && t.hub.rooms["#s"].invited.is_empty());
}

#[test]
fn mode_errors_are_reported_per_change() {
    let mut t = hub();
    let (op, _) = t.add("op");
    t.add("outside");
    t.hub.join(op, "#r", None).unwrap();
    let result = t.hub.set_modes(op, "#r", parse("+oom", &["ghost", "outside"]).changes).unwrap();
    assert_eq!(modes::render(&result.applied), "+m");
    assert_eq!(
        result.errors,
        [HubError::NoSuchNick("ghost".into()), HubError::UserNotInRoom { nick: "outside".into(), room: "#r".into() }]
    );
    // Setting a mode already set announces nothing.
    assert!(t.hub.set_modes(op, "#r", parse("+n", &[]).changes).unwrap().applied.is_empty());
}

#[test]
fn kicks_need_ops_and_remove_the_target() {
    let mut t = hub();
    let (op, _) = t.add("op");
    let (b, bo) = t.add("bob");
    t.hub.join(op, "#r", None).unwrap();
    t.hub.join(b, "#r", None).unwrap();
    assert_eq!(t.hub.kick(b, "#r", "op", "x").unwrap_err(), HubError::NeedOps("#r".into()));
    drain(&bo);
    t.hub.kick(op, "#r", "BOB", "behave").unwrap();
    assert!(
        matches!(&drain(&bo)[..], [EventKind::Kick { target, reason, .. }] if target == "bob" && reason == "behave")
    );
    assert!(t.hub.rooms_of(b).is_empty());
    assert!(matches!(t.hub.kick(op, "#r", "bob", ""), Err(HubError::UserNotInRoom { .. })));
}

#[test]
fn topics_follow_plus_t() {
    let mut t = hub();
    let (op, _) = t.add("op");
    let (b, _) = t.add("bob");
    t.hub.join(op, "#r", None).unwrap();
    t.hub.join(b, "#r", None).unwrap();
    assert_eq!(t.hub.set_topic(b, "#r", "mine").unwrap_err(), HubError::NeedOps("#r".into()));
    t.hub.set_topic(op, "#r", "welcome").unwrap();
    assert_eq!(t.hub.topic(b, "#r").unwrap().unwrap().text, "welcome");
    t.hub.set_modes(op, "#r", parse("-t", &[]).changes).unwrap();
    t.hub.set_topic(b, "#r", "").unwrap();
    assert_eq!(t.hub.topic(b, "#r").unwrap(), None);
}

#[test]
fn secret_rooms_are_hidden_from_outsiders() {
    let mut t = hub();
    let (op, _) = t.add("op");
    let (b, _) = t.add("bob");
    t.hub.join(op, "#hidden", None).unwrap();
    t.hub.set_modes(op, "#hidden", parse("+s", &[]).changes).unwrap();
    assert!(t.hub.list_rooms(b, &ListFilter::default()).is_empty());
    assert_eq!(t.hub.list_rooms(op, &ListFilter::default()).len(), 1);
    assert!(t.hub.user_info(b, "op").unwrap().rooms.is_empty());
    assert!(t.hub.room_info(b, "#hidden").is_err());
    assert!(t.hub.names(b, "#hidden", false).is_err());
    assert!(t.hub.room_modes(b, "#hidden").is_err());
    assert!(t.hub.bans(b, "#hidden").is_err());
    assert!(t.hub.bans(op, "#hidden").is_ok());
    assert!(t.hub.names(op, "#hidden", false).unwrap().secret);
}

#[test]
fn names_lists_whom_room_info_lists() {
    let mut t = hub();
    t.hub.set_quiet_joins_above(2);
    let (a, _) = t.add("alice");
    let (b, _) = t.add("Bob");
    let (quiet, _) = t.add("carol");
    let (outsider, _) = t.add("dave");
    for id in [a, b, quiet] {
        t.hub.join(id, "#r", None).unwrap();
    }
    t.hub.set_modes(a, "#r", parse("+k", &["sesame"]).changes).unwrap();
    // NAMES lists whom `room_info` lists, which is sorted; NAMES is not.
    let names = |hub: &Hub, asker| {
        let info: Vec<String> =
            hub.room_info(asker, "#r").unwrap().members.iter().map(|m| m.info.nick.to_string()).collect();
        let mut names: Vec<String> =
            hub.names(asker, "#r", false).unwrap().members.iter().map(|m| m.nick.to_string()).collect();
        names.sort_by(|x, y| text::cmp_folded(x, y));
        assert_eq!(names, info);
        info
    };
    assert_eq!(names(&t.hub, a), ["alice", "Bob"], "a quiet joiner is not listed");
    assert_eq!(names(&t.hub, quiet), ["alice", "Bob", "carol"], "except to itself");
    assert_eq!(names(&t.hub, outsider), ["alice", "Bob"]);
    t.hub.say(quiet, "#r", MsgKind::Privmsg, "hi", vec![]).unwrap();
    assert_eq!(names(&t.hub, a), ["alice", "Bob", "carol"], "shown once it speaks");
    t.hub.part(b, "#r", "").unwrap();
    assert_eq!(names(&t.hub, a), ["alice", "carol"]);
    let listed = t.hub.names(a, "#r", true).unwrap();
    assert!(listed.members.iter().all(|m| m.userhost == Some(("u".into(), "127.0.0.1".into()))));
    assert!(t.hub.names(a, "#r", false).unwrap().members.iter().all(|m| m.userhost.is_none()));
    assert_eq!(t.hub.room_modes(a, "#r").unwrap().2.key.as_deref(), Some("sesame"));
    assert_eq!(t.hub.room_modes(outsider, "#r").unwrap().2.key.as_deref(), Some("*"), "the key only to members");
}

#[test]
fn away_opers_and_kills() {
    let mut t = hub();
    let (a, _) = t.add("alice");
    let (b, bo) = t.add("bob");
    assert!(t.hub.set_away(b, Some("lunch")));
    let said = t.hub.say(a, "bob", MsgKind::Privmsg, "hi", vec![]).unwrap();
    assert_eq!(said.away.as_deref(), Some("lunch"));
    assert_eq!(t.hub.say(a, "bob", MsgKind::Notice, "hi", vec![]).unwrap().away, None);
    assert_eq!(t.hub.kill(a, "bob", "x").unwrap_err(), HubError::NotOper);
    assert_eq!(t.hub.oper(a, "admin", "wrong").unwrap_err(), HubError::BadOperLogin);
    t.hub.oper(a, "admin", "secret").unwrap();
    t.hub.kill(a, "bob", "spam").unwrap();
    assert_eq!(bo.closed().map(|closed| closed.reason()), Some("Killed by alice: spam".into()));
    // The killed user's session quits it, as it would on any disconnect.
    assert!(t.hub.online("bob").is_some());
    t.hub.quit(b, "Killed by alice: spam");
    assert!(t.hub.online("bob").is_none());
}

#[test]
fn a_full_outbox_does_not_stop_delivery_to_others() {
    let mut t = hub();
    let (a, _) = t.add("alice");
    let slow = Outbox::new(2);
    let (s, _) = t
        .hub
        .register(Registration {
            nick: Some("slow".into()),
            user: "u".into(),
            host: "h".into(),
            realname: "".into(),
            protocol: Protocol::Plain,
            secure: false,
            certfp: None,
            outbox: slow.clone(),
        })
        .unwrap();
    let (b, bo) = t.add("bob");
    for id in [a, s, b] {
        t.hub.join(id, "#r", None).unwrap();
    }
    drain(&bo);
    for i in 0..10 {
        t.hub.say(a, "#r", MsgKind::Privmsg, &format!("m{i}"), vec![]).unwrap();
    }
    assert_eq!(slow.closed(), Some(Closed::Overflow));
    assert_eq!(texts(&drain(&bo)).len(), 10);
}

#[test]
fn msgids_increase() {
    let mut ids = crate::chat::MsgIdGen::default();
    let a = ids.next_id();
    let b = ids.next_id();
    assert!(b > a);
    assert!(a.to_string() < b.to_string());
    assert_eq!(a.to_string().parse::<MsgId>().unwrap(), a);
}

#[test]
fn invisible_users_show_only_to_those_who_share_a_room() {
    let mut t = hub();
    let (shy, _) = t.add("shy");
    let (friend, _) = t.add("friend");
    let (stranger, _) = t.add("stranger");
    assert!(t.hub.set_invisible(shy, true));
    assert!(!t.hub.set_invisible(shy, true), "no change the second time");
    t.hub.join(shy, "#den", None).unwrap();
    t.hub.join(friend, "#den", None).unwrap();
    let nicks = |users: Vec<UserInfo>| {
        let mut nicks: Vec<String> = users.into_iter().map(|u| u.nick.to_string()).collect();
        nicks.sort();
        nicks
    };
    assert_eq!(nicks(t.hub.all_users(stranger)), ["friend", "stranger"]);
    assert_eq!(nicks(t.hub.all_users(friend)), ["friend", "shy", "stranger"]);
    assert_eq!(nicks(t.hub.all_users(shy)), ["friend", "shy", "stranger"]);
    assert_eq!(nicks(t.hub.find_users(stranger, "SHY")), ["shy"], "a nick finds the user");
    assert_eq!(nicks(t.hub.find_users(stranger, "s*")), ["stranger"], "a mask finds those one may see");
    assert_eq!(nicks(t.hub.find_users(friend, "*!u@127.0.0.1")), ["friend", "shy", "stranger"]);
    let members = |info: RoomInfo| info.members.into_iter().map(|m| m.info.nick).collect::<Vec<_>>();
    assert_eq!(members(t.hub.room_info(stranger, "#den").unwrap()), ["friend"]);
    assert_eq!(members(t.hub.room_info(friend, "#den").unwrap()), ["friend", "shy"]);
    assert_eq!(t.hub.invisible_count(), 1);
    assert!(t.hub.user_info(stranger, "shy").unwrap().invisible, "WHOIS still finds the user");
}

/// LUSERS's counts of operators and invisible users, as a count of every user gives them.
fn counted(hub: &Hub) -> (usize, usize) {
    (hub.users.values().filter(|u| u.oper).count(), hub.users.values().filter(|u| u.invisible).count())
}

#[test]
fn lusers_counts_follow_modes_and_departures() {
    let mut t = hub();
    let (a, _) = t.add("alice");
    let (b, _) = t.add("bob");
    let (c, _) = t.add("carol");
    let steps: [&dyn Fn(&mut Hub); 8] = [
        &|hub| assert!(hub.set_invisible(a, true)),
        &|hub| assert!(!hub.set_invisible(a, true), "no change the second time"),
        &|hub| assert!(hub.set_invisible(b, true)),
        &|hub| hub.oper(a, "admin", "secret").unwrap(),
        &|hub| hub.oper(a, "admin", "secret").unwrap(),
        &|hub| assert!(hub.unoper(a) && !hub.unoper(a)),
        &|hub| hub.oper(b, "admin", "secret").unwrap(),
        &|hub| hub.quit(b, "gone"),
    ];
    let mut seen = Vec::new();
    for step in steps {
        step(&mut t.hub);
        let counts = (t.hub.oper_count(), t.hub.invisible_count());
        assert_eq!(counts, counted(&t.hub));
        seen.push(counts);
    }
    assert_eq!(seen, [(0, 1), (0, 1), (0, 2), (1, 2), (1, 2), (0, 2), (1, 2), (0, 1)]);
    assert!(t.hub.set_invisible(c, true) && t.hub.set_invisible(a, false));
    assert_eq!((t.hub.oper_count(), t.hub.invisible_count()), (0, 1));
}

#[test]
fn away_changes_only_are_told_and_an_away_joiner_is_announced() {
    let mut t = hub();
    let (a, ao) = t.add("alice");
    let (b, bo) = t.add("bob");
    t.hub.join(a, "#r", None).unwrap();
    t.hub.join(b, "#r", None).unwrap();
    drain(&ao);
    assert!(!t.hub.set_away(b, None));
    assert!(t.hub.set_away(b, Some("lunch")));
    assert!(t.hub.set_away(b, Some("lunch")));
    assert!(matches!(&drain(&ao)[..], [EventKind::Away { message: Some(m), .. }] if m == "lunch"), "once");
    t.hub.part(b, "#r", "").unwrap();
    drain(&ao);
    t.hub.join(b, "#r", None).unwrap();
    assert!(
        matches!(&drain(&ao)[..], [EventKind::Join { .. }, EventKind::Away { message: Some(m), .. }] if m == "lunch")
    );
    assert!(matches!(&drain(&bo)[..], [.., EventKind::Join { .. }]), "the joiner is not told its own away");
}

#[test]
fn a_line_said_whole_is_cut_to_fit_and_split_otherwise() {
    let mut t = hub();
    let (a, _) = t.add("alice");
    let (_, bo) = t.add("bob");
    let text = "é".repeat(400);
    let said = t.hub.say_line(a, "bob", MsgKind::Privmsg, &text, Vec::new()).unwrap();
    assert_eq!(said.events.len(), 1);
    let cut = texts(&drain(&bo)).remove(0);
    assert!(text.starts_with(&cut) && cut.len() < text.len() && cut.len() > 400);
    let said = t.hub.say(a, "bob", MsgKind::Privmsg, &text, Vec::new()).unwrap();
    assert_eq!(said.events.len(), 2);
    assert_eq!(texts(&drain(&bo)).concat(), text, "split, nothing lost");
}

#[test]
fn a_watcher_that_leaves_is_forgotten_and_presence_follows_the_nick() {
    let mut t = hub();
    let (alice, ao) = t.add("alice");
    let added = t.hub.monitor_add(alice, ["bob", "not a nick", "Bob"]);
    assert_eq!((added.online.len(), added.offline), (0, vec!["bob".to_string()]));
    let (bob, _) = t.add("bob");
    assert!(matches!(&drain(&ao)[..], [EventKind::Presence { who, online: true }] if who.nick == "bob"));
    t.hub.set_nick(bob, "robert").unwrap();
    assert!(matches!(&drain(&ao)[..], [EventKind::Presence { who, online: false }] if who.nick == "bob"));
    t.hub.quit(alice, "bye");
    assert!(t.hub.watchers.is_empty(), "no one monitors anything any more");
    t.hub.set_nick(bob, "bob").unwrap();
}

#[test]
fn statusmsg_and_invites_go_to_those_the_room_allows() {
    let mut t = hub();
    let (op, oo) = t.add("op");
    let (voiced, vo) = t.add("voiced");
    let (member, mo) = t.add("member");
    let (guest, go) = t.add("guest");
    for id in [op, voiced, member] {
        t.hub.join(id, "#r", None).unwrap();
    }
    t.hub.set_modes(op, "#r", parse("+v", &["voiced"]).changes).unwrap();
    for o in [&oo, &vo, &mo] {
        drain(o);
    }
    t.hub.say(member, "@#r", MsgKind::Privmsg, "to ops", Vec::new()).unwrap();
    t.hub.say(member, "+#r", MsgKind::Privmsg, "to voiced", Vec::new()).unwrap();
    assert_eq!(texts(&drain(&oo)), ["to ops", "to voiced"]);
    assert_eq!(texts(&drain(&vo)), ["to voiced"]);
    assert!(drain(&mo).is_empty());
    // An open room: every member may invite, so every member is told; a +i room: its operators.
    t.hub.invite(member, "guest", "#r").unwrap();
    assert_eq!((drain(&oo).len(), drain(&vo).len(), drain(&go).len()), (1, 1, 1));
    t.hub.set_modes(op, "#r", parse("+i", &[]).changes).unwrap();
    drain(&vo);
    drain(&mo);
    t.hub.quit(guest, "");
    let (_, go) = t.add("guest");
    t.hub.invite(op, "guest", "#r").unwrap();
    assert_eq!((drain(&vo).len(), drain(&mo).len(), drain(&go).len()), (0, 0, 1));
}

#[test]
fn the_server_holds_at_most_max_server_bans() {
    let mut config = HubConfig::default();
    config.limits.room_creation = None;
    config.limits.max_rooms_per_user = 0;
    let mut t = Tester { hub: Hub::new(config, History::default()) };
    let (op, _) = t.add("op");
    let ban = |i: usize| parse("+b", &[&format!("m{i}")]).changes;
    for r in 0..MAX_SERVER_BANS / MAX_BANS {
        let room = format!("#r{r}");
        t.hub.join(op, &room, None).unwrap();
        for i in 0..MAX_BANS {
            assert!(t.hub.set_modes(op, &room, ban(i)).unwrap().errors.is_empty());
        }
    }
    t.hub.join(op, "#one-more", None).unwrap();
    let refused = t.hub.set_modes(op, "#one-more", ban(0)).unwrap();
    assert_eq!(refused.errors, [HubError::ServerBansFull]);
    // Lifting one ban anywhere makes room for one.
    let lifted = parse("-b", &["m0"]).changes;
    assert!(t.hub.set_modes(op, "#r0", lifted).unwrap().events.len() == 1);
    assert!(t.hub.set_modes(op, "#one-more", ban(0)).unwrap().errors.is_empty());
}
