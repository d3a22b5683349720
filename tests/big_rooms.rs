//! Big rooms stay cheap: above `--quiet-joins-above` members, a room takes new members in
//! quietly (delayed join). Their join, part and quit reach no one else until they first speak;
//! their first message is preceded by their JOIN. Rooms up to the threshold behave as always.
//! Each test runs `charla serve --quiet-joins-above 3`, so the fourth member of a room is the
//! first quiet one.

mod common;

use common::{Client, Irc, Message, ServerProcess, TempDir};

/// The nick a message comes from.
fn nick(message: &Message) -> Option<&str> {
    message.source.as_deref().and_then(|source| source.split('!').next())
}

async fn server() -> (ServerProcess, TempDir) {
    let dir = TempDir::new();
    let server = ServerProcess::start(&dir.0, &["--quiet-joins-above", "3", "--max-conns-per-ip", "0"]).await;
    (server, dir)
}

/// `alice`, `bob` and `carol` in `#big`, each having seen the others arrive: the room is at
/// the threshold.
async fn three_members(addr: std::net::SocketAddr) -> (Irc, Irc, Irc) {
    let mut alice = Irc::register(addr, "alice", &[]).await;
    alice.join("#big").await;
    let mut bob = Irc::register(addr, "bob", &[]).await;
    bob.join("#big").await;
    let mut carol = Irc::register(addr, "carol", &[]).await;
    carol.join("#big").await;
    for joiner in ["bob", "carol"] {
        assert_eq!(nick(&alice.expect("JOIN").await), Some(joiner));
    }
    assert_eq!(nick(&bob.expect("JOIN").await), Some("carol"));
    (alice, bob, carol)
}

/// The nicks of the next NAMES reply for `#big`.
async fn names(irc: &mut Irc) -> Vec<String> {
    irc.send("NAMES #big").await;
    let mut nicks = Vec::new();
    loop {
        let message = irc.next().await;
        match message.command.as_str() {
            "353" => nicks.extend(message.params[3].split(' ').map(|n| n.trim_start_matches(['@', '+']).to_string())),
            "366" => break,
            other => panic!("expected only the names list, got {other}: {message:?}"),
        }
    }
    nicks.sort();
    nicks
}

#[tokio::test]
async fn a_join_above_the_threshold_is_shown_with_the_first_message() {
    let (server, _dir) = server().await;
    let (mut alice, _bob, mut carol) = three_members(server.addr).await;

    let mut dave = Irc::register(server.addr, "dave", &[]).await;
    dave.join("#big").await;
    // Dave is told who is there, himself included.
    assert_eq!(names(&mut dave).await, ["alice", "bob", "carol", "dave"]);

    // Alice is not told of dave: carol's message is the next thing she receives.
    carol.send("PRIVMSG #big :after dave came").await;
    let next = alice.next().await;
    assert_eq!((next.command.as_str(), nick(&next)), ("PRIVMSG", Some("carol")), "{next:?}");
    assert_eq!(names(&mut alice).await, ["alice", "bob", "carol"]);

    // Dave speaks: alice gets his JOIN first, then the message.
    dave.send("PRIVMSG #big :hello all").await;
    let join = alice.next().await;
    assert_eq!((join.command.as_str(), nick(&join)), ("JOIN", Some("dave")), "{join:?}");
    assert_eq!(join.params[0], "#big");
    let said = alice.next().await;
    assert_eq!((said.command.as_str(), nick(&said)), ("PRIVMSG", Some("dave")), "{said:?}");
    assert_eq!(said.params[1], "hello all");
    assert_eq!(names(&mut alice).await, ["alice", "bob", "carol", "dave"]);

    // Once shown, he is shown: his second message comes alone.
    dave.send("PRIVMSG #big :again").await;
    let again = alice.next().await;
    assert_eq!((again.command.as_str(), again.params[1].as_str()), ("PRIVMSG", "again"), "{again:?}");
}

#[tokio::test]
async fn a_silent_members_quit_is_not_seen_a_shown_members_is() {
    let (server, _dir) = server().await;
    let (mut alice, _bob, _carol) = three_members(server.addr).await;

    let mut dave = Irc::register(server.addr, "dave", &[]).await;
    dave.join("#big").await;
    let mut erin = Irc::register(server.addr, "erin", &[]).await;
    erin.join("#big").await;
    dave.send("PRIVMSG #big :dave here").await;
    alice.expect("PRIVMSG").await;

    // Erin (silent) leaves first, then dave (shown): alice hears only of dave.
    erin.send("QUIT :bye").await;
    erin.client.until_closed().await;
    dave.send("QUIT :bye too").await;
    dave.client.until_closed().await;
    let next = alice.next().await;
    assert_eq!((next.command.as_str(), nick(&next)), ("QUIT", Some("dave")), "{next:?}");

    // A silent member's PART is not seen either.
    let mut fred = Irc::register(server.addr, "fred", &[]).await;
    fred.join("#big").await;
    fred.send("PART #big").await;
    fred.expect("PART").await;
    let mut bob_again = Irc::register(server.addr, "gwen", &[]).await;
    bob_again.join("#big").await;
    bob_again.send("PRIVMSG #big :gwen speaks").await;
    let next = alice.next().await;
    assert_eq!((next.command.as_str(), nick(&next)), ("JOIN", Some("gwen")), "fred's part or quit leaked: {next:?}");
}

#[tokio::test]
async fn under_the_threshold_every_join_part_and_quit_is_seen() {
    let (server, _dir) = server().await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    alice.join("#small").await;
    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    bob.join("#small").await;
    let join = alice.next().await;
    assert_eq!((join.command.as_str(), nick(&join)), ("JOIN", Some("bob")), "{join:?}");
    bob.send("PART #small :later").await;
    let part = alice.next().await;
    assert_eq!((part.command.as_str(), nick(&part)), ("PART", Some("bob")), "{part:?}");
    bob.join("#small").await;
    assert_eq!(alice.next().await.command, "JOIN");
    let mut carol = Irc::register(server.addr, "carol", &[]).await;
    carol.join("#small").await;
    assert_eq!(nick(&alice.next().await), Some("carol"));
    bob.send("QUIT :gone").await;
    let quit = alice.next().await;
    assert_eq!((quit.command.as_str(), nick(&quit)), ("QUIT", Some("bob")), "{quit:?}");
}

#[tokio::test]
async fn plain_text_users_in_a_big_lobby() {
    let (server, _dir) = server().await;
    let mut first = Client::plain_as(server.addr, "ann").await;
    let mut others = Vec::new();
    for nick in ["ben", "cat"] {
        others.push(Client::plain_as(server.addr, nick).await);
        first.arrived(nick).await;
    }
    // The fourth arrives quietly: ann's /who answer comes next, without it.
    let mut quiet = Client::plain_as(server.addr, "dan").await;
    first.send("/who").await;
    let who = first.line().await;
    assert!(who.starts_with("3 in #lobby: "), "{who}");
    assert!(who.contains("1 more who have not spoken"), "{who}");
    assert!(!who.contains("dan"), "{who}");
    // Dan's own /who lists him too.
    quiet.send("/who").await;
    let who = loop {
        let line = quiet.line().await;
        if line.contains(" in #lobby: ") {
            break line;
        }
    };
    assert!(who.starts_with("4 in #lobby: ") && who.contains("dan"), "{who}");

    // Dan speaks: ann sees him join, then his line.
    quiet.send("hello").await;
    let joined = first.line().await;
    assert!(joined.contains("dan") && joined.contains("joined #lobby"), "{joined}");
    let said = first.line().await;
    assert!(said.contains("dan") && said.ends_with("hello"), "{said}");
}

#[tokio::test]
async fn a_voice_shows_a_quiet_member_and_a_kick_of_one_stays_quiet() {
    let (server, _dir) = server().await;
    // Alice created the room: she is its operator.
    let (mut alice, mut bob, _carol) = three_members(server.addr).await;
    let mut dave = Irc::register(server.addr, "dave", &[]).await;
    dave.join("#big").await;
    let mut erin = Irc::register(server.addr, "erin", &[]).await;
    erin.join("#big").await;

    // Giving dave a voice shows him first.
    alice.send("MODE #big +v dave").await;
    let join = bob.next().await;
    assert_eq!((join.command.as_str(), nick(&join)), ("JOIN", Some("dave")), "{join:?}");
    let mode = bob.next().await;
    assert_eq!((mode.command.as_str(), mode.params[1].as_str()), ("MODE", "+v"), "{mode:?}");

    // Kicking erin, never shown, is news to erin alone.
    alice.send("KICK #big erin :out").await;
    let kick = erin.expect("KICK").await;
    assert_eq!(kick.params[1], "erin");
    alice.send("PRIVMSG #big :after the kick").await;
    let next = bob.next().await;
    assert_eq!((next.command.as_str(), next.params[1].as_str()), ("PRIVMSG", "after the kick"), "{next:?}");
}

/// `draft/event-playback`: history shows the room as its members saw it. A quiet member who
/// comes and goes without a word leaves no JOIN or PART in it; one who speaks has its JOIN
/// just before its first message, where the members received it, not where it joined.
#[tokio::test]
async fn history_replays_a_quiet_join_where_the_members_saw_it() {
    let (server, _dir) = server().await;
    let (_alice, _bob, mut carol) = three_members(server.addr).await;
    let mut dave = Irc::register(server.addr, "dave", &[]).await;
    dave.join("#big").await;
    let mut erin = Irc::register(server.addr, "erin", &[]).await;
    erin.join("#big").await;
    carol.send("PRIVMSG #big :before dave speaks").await;
    // Dave speaks once carol's line has reached him, so the two are in that order.
    let heard = dave.expect("PRIVMSG").await;
    assert_eq!(heard.params[1], "before dave speaks");
    dave.send("PRIVMSG #big :dave here").await;
    erin.send("PART #big").await;
    erin.expect("PART").await;

    let caps = ["batch", "draft/chathistory", "draft/event-playback"];
    let mut reader = Irc::register(server.addr, "reader", &caps).await;
    reader.join("#big").await;
    let events = reader.chathistory("LATEST #big * 100").await;
    let seen: Vec<(&str, Option<&str>)> = events.iter().map(|m| (m.command.as_str(), nick(m))).collect();
    assert_eq!(
        seen,
        [
            ("JOIN", Some("alice")),
            ("JOIN", Some("bob")),
            ("JOIN", Some("carol")),
            ("PRIVMSG", Some("carol")),
            ("JOIN", Some("dave")),
            ("PRIVMSG", Some("dave")),
        ],
        "{events:?}"
    );
}
