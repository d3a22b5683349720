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
    keeper.join("#lobby").await;
    let mut maker = Irc::register(server.addr, "maker", &[]).await;
    for i in 0..19 {
        maker.join(&format!("#made{i}")).await;
        maker.send(&format!("PART #made{i}")).await;
    }
    maker.send("JOIN #made19").await;
    let refused = maker.expect("437").await;
    assert_eq!(refused.params[1], "#made19", "{refused:?}");
    assert!(refused.params[2].contains("too fast"), "{refused:?}");
    // Joining a room that exists is not creating one.
    maker.join("#lobby").await;
    // Nor does another connection from the same address start afresh.
    let mut other = Irc::register(server.addr, "maker2", &[]).await;
    other.send("JOIN #other").await;
    assert_eq!(other.expect("437").await.params[1], "#other");
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
