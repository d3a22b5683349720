//! Several nodes, one chat (`serve --bus nats://… --store postgres://…`): charla nodes on one
//! private nats-server and one private PostgreSQL, with clients of every kind on different
//! nodes.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;

use charla::store::StoreLocation;
use common::nats::Nats;
use common::postgres::Postgres;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as Frame;

/// What the nodes of one test share: a nats-server, and a database of the PostgreSQL server
/// of this test binary.
struct Engines {
    nats: Nats,
    store: String,
    _postgres: Arc<Postgres>,
}

fn engines() -> Engines {
    let postgres = Postgres::shared();
    Engines { nats: Nats::start(), store: postgres.database(), _postgres: postgres }
}

impl Engines {
    /// The flags a `charla serve` process is given to be a node.
    fn flags(&self) -> Vec<String> {
        vec!["--bus".into(), self.nats.url(), "--store".into(), self.store.clone()]
    }
}

/// An in-process node on `engines`, with its own data directory.
async fn node(engines: &Engines) -> TestServer {
    node_with(engines, |_| {}).await
}

async fn node_with(engines: &Engines, adjust: impl FnOnce(&mut charla::server::Config)) -> TestServer {
    let (bus, store) = (engines.nats.url(), engines.store.clone());
    start_with(|config| {
        config.bus = Some(bus);
        config.store = StoreLocation::Postgres(store);
        adjust(config);
    })
    .await
}

/// A node as a `charla serve` process (to be killed).
async fn node_process(engines: &Engines, dir: &TempDir) -> ServerProcess {
    let flags = engines.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    ServerProcess::start(&dir.0, &flags).await
}

/// An IRC client over WebSocket (the browser's way in), reading one line per frame.
struct WsIrc {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl WsIrc {
    async fn register(addr: SocketAddr, nick: &str) -> WsIrc {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.expect("WebSocket opens");
        let mut irc = WsIrc { ws };
        irc.send(&format!("NICK {nick}")).await;
        irc.send(&format!("USER {nick} 0 * :{nick}")).await;
        irc.expect(|m| m.command == "376").await;
        irc
    }

    async fn send(&mut self, line: &str) {
        self.ws.send(Frame::text(line.to_string())).await.expect("frame sent");
    }

    async fn expect(&mut self, pred: impl Fn(&Message) -> bool) -> Message {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next()).await.expect("a frame in time");
            let text = match frame.expect("open").expect("valid frame") {
                Frame::Text(text) => text.to_string(),
                Frame::Binary(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
                _ => continue,
            };
            let message = Message::parse(text.trim_end()).expect("an IRC line");
            if pred(&message) {
                return message;
            }
        }
    }
}

/// Whose a message is, by the nick of its source.
trait Nick {
    fn nick_is(&self, nick: &str) -> bool;
}

impl Nick for Message {
    fn nick_is(&self, nick: &str) -> bool {
        self.source.as_deref().and_then(|s| s.split('!').next()) == Some(nick)
    }
}

fn is(command: &'static str, text: &'static str) -> impl Fn(&Message) -> bool {
    move |m: &Message| m.command == command && m.params.last().is_some_and(|p| p == text)
}

async fn expect_irc(irc: &mut Irc, pred: impl Fn(&Message) -> bool) -> Message {
    loop {
        let message = irc.next().await;
        if pred(&message) {
            return message;
        }
    }
}

#[tokio::test]
async fn users_of_three_nodes_chat_in_one_room_and_privately() {
    let engines = engines();
    let (a, b, c) = (node(&engines).await, node(&engines).await, node(&engines).await);
    let mut alice = Irc::register(a.addr, "alice", &[]).await;
    alice.join("#lobby").await;
    let mut bob = WsIrc::register(b.addr, "bob").await;
    bob.send("JOIN #lobby").await;
    bob.expect(|m| m.command == "366").await;
    let joined = alice.expect("JOIN").await;
    assert!(joined.nick_is("bob"), "alice on node A sees bob of node B join: {joined:?}");
    let (mut carol, carol_nick) = Client::plain(c.addr).await;
    expect_irc(&mut alice, |m| m.command == "JOIN" && m.nick_is(&carol_nick)).await;

    alice.send("PRIVMSG #lobby :hello from A").await;
    bob.expect(is("PRIVMSG", "hello from A")).await;
    carol.expect("<alice> hello from A").await;

    carol.send("hello from C").await;
    let heard = expect_irc(&mut alice, is("PRIVMSG", "hello from C")).await;
    assert!(heard.nick_is(&carol_nick), "{heard:?}");
    bob.expect(is("PRIVMSG", "hello from C")).await;

    bob.send("PRIVMSG alice :psst, from B").await;
    let private = expect_irc(&mut alice, is("PRIVMSG", "psst, from B")).await;
    assert_eq!(private.params[0], "alice");
    alice.send(&format!("PRIVMSG {carol_nick} :just for you")).await;
    carol.expect("[private] <alice> just for you").await;

    // Everyone sees everyone: NAMES on node C lists the users of A and B.
    let mut dave = Irc::register(c.addr, "dave", &[]).await;
    dave.send("NAMES #lobby").await;
    let names = dave.expect("353").await;
    let listed = names.params.last().unwrap();
    for nick in ["alice", "bob", carol_nick.as_str()] {
        assert!(listed.split(' ').any(|n| n.trim_start_matches(['@', '+']) == nick), "{nick} in {listed}");
    }
    dave.send("WHOIS bob").await;
    let whois = dave.expect("311").await;
    assert_eq!(whois.params[1], "bob");
}

#[tokio::test]
async fn a_nick_taken_on_one_node_is_refused_on_another() {
    let engines = engines();
    let (a, b) = (node(&engines).await, node(&engines).await);
    let mut alice = Irc::register(a.addr, "alice", &[]).await;
    let mut other = Client::connect(b.addr).await;
    other.send("NICK alice\r\nUSER x 0 * :x").await;
    let refused = other.expect_where(|l| l.contains(" 433 ")).await;
    drop(refused);
    let mut plain = Client::plain_as(b.addr, "someone").await;
    plain.send("/nick alice").await;
    plain.expect_where(|l| l.starts_with("error: nick 'alice' is taken")).await;
    // Once alice has gone, her nick is free on every node.
    alice.send("QUIT :bye").await;
    alice.client.until_closed().await;
    eventually(async || {
        plain.send("/nick alice").await;
        let answer = plain.line().await;
        if answer == "You are now known as alice." { Ok(()) } else { Err(answer) }
    })
    .await;
}

#[tokio::test]
async fn a_killed_node_s_users_are_seen_quitting_on_the_others() {
    let engines = engines();
    let a = node(&engines).await;
    let dir = TempDir::new();
    let b = node_process(&engines, &dir).await;
    let mut alice = Irc::register(a.addr, "alice", &[]).await;
    alice.join("#lobby").await;
    let mut bob = Irc::register(b.addr, "bob", &[]).await;
    bob.join("#lobby").await;
    expect_irc(&mut alice, |m| m.command == "JOIN" && m.nick_is("bob")).await;
    let killed = Instant::now();
    b.kill9().await;
    let quit = expect_irc(&mut alice, |m| m.command == "QUIT").await;
    let took = killed.elapsed();
    assert!(quit.nick_is("bob"), "{quit:?}");
    assert!(took < Duration::from_secs(10), "bob was seen quitting after {took:?}");
    eprintln!("bob of a killed node was seen quitting after {took:?}");
    // Its nick is free again.
    alice.send("NICK bob").await;
    let changed = expect_irc(&mut alice, |m| m.command == "NICK" || m.command == "433").await;
    assert_eq!(changed.command, "NICK", "{changed:?}");
}

#[tokio::test]
async fn a_node_that_stops_cleanly_says_goodbye_at_once() {
    let engines = engines();
    let a = node(&engines).await;
    let dir = TempDir::new();
    let b = node_process(&engines, &dir).await;
    let mut alice = Irc::register(a.addr, "alice", &[]).await;
    alice.join("#lobby").await;
    let mut bob = Irc::register(b.addr, "bob", &[]).await;
    bob.join("#lobby").await;
    expect_irc(&mut alice, |m| m.command == "JOIN" && m.nick_is("bob")).await;
    let stopped = Instant::now();
    assert!(b.terminate().await.success());
    let quit = expect_irc(&mut alice, |m| m.command == "QUIT").await;
    assert!(quit.nick_is("bob") && quit.params[0].contains("shutting down"), "{quit:?}");
    assert!(stopped.elapsed() < Duration::from_secs(3), "seen after {:?}", stopped.elapsed());
}

#[tokio::test]
async fn chat_resumes_when_nats_comes_back() {
    let mut engines = engines();
    let (a, b) = (node(&engines).await, node(&engines).await);
    let mut alice = Irc::register(a.addr, "alice", &[]).await;
    alice.join("#lobby").await;
    let mut bob = Irc::register(b.addr, "bob", &[]).await;
    bob.join("#lobby").await;
    expect_irc(&mut alice, |m| m.command == "JOIN" && m.nick_is("bob")).await;
    let mut anna = Irc::register(a.addr, "anna", &[]).await;
    anna.join("#lobby").await;

    engines.nats.stop();
    // Alone, node A's users still chat, and A says it is degraded.
    alice.send("PRIVMSG #lobby :while NATS is down").await;
    expect_irc(&mut anna, is("PRIVMSG", "while NATS is down")).await;
    eventually(async || {
        let health = http_get(a.addr, "/healthz").await;
        if health.contains("degraded: cut off from the other nodes") { Ok(()) } else { Err(health) }
    })
    .await;
    let metrics = http_get(a.addr, "/metrics").await;
    assert!(metrics.contains("charla_bus_degraded 1"), "{metrics}");
    // Cut off for longer than a node may be silent: each side sees the other's users leave.
    let quit = expect_irc(&mut alice, |m| m.command == "QUIT").await;
    assert!(quit.nick_is("bob"), "{quit:?}");

    engines.nats.restart();
    // Back together: the nodes exchange snapshots, and bob is in the room again for alice.
    let rejoined = expect_irc(&mut alice, |m| m.command == "JOIN").await;
    assert!(rejoined.nick_is("bob"), "{rejoined:?}");
    eventually(async || {
        let health = http_get(a.addr, "/healthz").await;
        if health.ends_with("ok\n") { Ok(()) } else { Err(health) }
    })
    .await;
    // Bob hears alice again: she says something until a line gets through.
    let mut n = 0;
    eventually(async || {
        n += 1;
        alice.send(&format!("PRIVMSG #lobby :back {n}")).await;
        match tokio::time::timeout(Duration::from_millis(300), async {
            expect_irc(&mut bob, |m| m.command == "PRIVMSG" && m.params[1].starts_with("back ")).await
        })
        .await
        {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("bob heard none of {n} lines")),
        }
    })
    .await;
    // And both see each other in the room.
    bob.send("NAMES #lobby").await;
    let names = bob.expect("353").await;
    assert!(names.params.last().unwrap().contains("alice"), "{names:?}");
    // What was said on A while the nodes were apart is in the history B answers from, once.
    let mut dave = Irc::register(b.addr, "dave", HISTORY_CAPS).await;
    dave.join("#lobby").await;
    let history = dave.chathistory("LATEST #lobby * 100").await;
    let apart = history.iter().filter(|m| m.command == "PRIVMSG" && m.params[1] == "while NATS is down").count();
    assert_eq!(apart, 1, "{history:?}");
}

#[tokio::test]
async fn a_client_that_moves_node_catches_up_with_chathistory_exactly() {
    let engines = engines();
    let (a, b, c) = (node(&engines).await, node(&engines).await, node(&engines).await);
    let mut alice = Irc::register(a.addr, "alice", HISTORY_CAPS).await;
    alice.join("#lobby").await;
    let mut bob = Irc::register(b.addr, "bob", &[]).await;
    bob.join("#lobby").await;
    let mut carol = Irc::register(c.addr, "carol", &[]).await;
    carol.join("#lobby").await;
    for n in 1..=5 {
        bob.send(&format!("PRIVMSG #lobby :before {n}")).await;
    }
    let mut last = String::new();
    for n in 1..=5 {
        let text = format!("before {n}");
        let seen = expect_irc(&mut alice, |m| m.command == "PRIVMSG" && m.params[1] == text).await;
        last = seen.tag("msgid").flatten().expect("a msgid").to_string();
    }
    alice.send("QUIT :moving").await;
    alice.client.until_closed().await;
    for n in 1..=5 {
        bob.send(&format!("PRIVMSG #lobby :after {n}")).await;
    }
    // Node C has had them all once carol has.
    expect_irc(&mut carol, is("PRIVMSG", "after 5")).await;
    let mut alice = register_when_free(c.addr, "alice", HISTORY_CAPS).await;
    alice.join("#lobby").await;
    let history = alice.chathistory(&format!("AFTER #lobby msgid={last} 100")).await;
    let texts: Vec<&str> = history.iter().filter(|m| m.command == "PRIVMSG").map(|m| m.params[1].as_str()).collect();
    assert_eq!(texts, ["after 1", "after 2", "after 3", "after 4", "after 5"], "{history:?}");

    // A node that was not there when it was said has it too: the store is shared.
    let d = node(&engines).await;
    alice.send("QUIT :moving again").await;
    alice.client.until_closed().await;
    let mut alice = register_when_free(d.addr, "alice", HISTORY_CAPS).await;
    alice.join("#lobby").await;
    let history = alice.chathistory(&format!("AFTER #lobby msgid={last} 100")).await;
    let texts: Vec<&str> = history.iter().filter(|m| m.command == "PRIVMSG").map(|m| m.params[1].as_str()).collect();
    assert_eq!(texts, ["after 1", "after 2", "after 3", "after 4", "after 5"], "{history:?}");
}

#[tokio::test]
async fn a_node_started_later_learns_who_is_there() {
    let engines = engines();
    let a = node(&engines).await;
    let mut alice = Irc::register(a.addr, "alice", &[]).await;
    alice.join("#later").await;
    alice.send("TOPIC #later :set before C came").await;
    alice.expect("TOPIC").await;
    let c = node(&engines).await;
    let mut dave = Irc::register(c.addr, "dave", &[]).await;
    eventually(async || {
        dave.send("NAMES #later").await;
        let names = dave.expect_any(&["353", "366"]).await;
        if names.command == "366" {
            return Err("no names yet".to_string());
        }
        dave.expect("366").await;
        let listed = names.params.last().unwrap().to_string();
        if listed.contains("alice") { Ok(()) } else { Err(listed) }
    })
    .await;
    dave.join("#later").await;
    dave.send("TOPIC #later").await;
    let topic = dave.expect("332").await;
    assert_eq!(topic.params.last().unwrap(), "set before C came");
    let joined = alice.expect("JOIN").await;
    assert!(joined.nick_is("dave"), "{joined:?}");
}

#[tokio::test]
async fn a_server_ban_and_a_kill_on_one_node_act_on_another() {
    let engines = engines();
    let a = node_with(&engines, |config| {
        config.hub.opers.insert("boss".into(), "boss-password".into());
    })
    .await;
    let b = node(&engines).await;
    let mut boss = Irc::register(a.addr, "boss", &[]).await;
    boss.send("OPER boss boss-password").await;
    boss.expect("381").await;
    let mut victim = Irc::register(b.addr, "badguy", &[]).await;
    boss.send("KLINE 0 badguy!*@* :spamming").await;
    boss.expect("NOTICE").await;
    let gone = victim.client.until_closed().await;
    assert!(gone.iter().any(|l| l.starts_with("ERROR") && l.contains("Banned: spamming")), "{gone:?}");
    // Node B keeps the mask out from now on.
    let mut again = Client::connect(b.addr).await;
    again.send("NICK badguy\r\nUSER b 0 * :B").await;
    let refused = again.until_closed().await;
    assert!(refused.iter().any(|l| l.contains(" 465 ")), "{refused:?}");

    let mut other = Irc::register(b.addr, "other", &[]).await;
    // Once node A knows of other:
    eventually(async || {
        boss.send("WHOIS other").await;
        let answer = boss.expect_any(&["311", "401"]).await;
        boss.expect("318").await;
        if answer.command == "311" { Ok(()) } else { Err(format!("{answer:?}")) }
    })
    .await;
    boss.send("KILL other :enough").await;
    let gone = other.client.until_closed().await;
    assert!(gone.iter().any(|l| l.starts_with("ERROR") && l.contains("enough")), "{gone:?}");
}

#[tokio::test]
async fn an_account_registered_on_one_node_logs_in_on_another_and_its_read_markers_follow() {
    let engines = engines();
    let (a, b) = (node(&engines).await, node(&engines).await);
    let mut maker = Client::plain_as(a.addr, "dora").await;
    maker.send("/register dora-password-1").await;
    maker.expect_where(|l| l.starts_with("Account dora registered")).await;
    let caps = ["draft/read-marker", "standard-replies"];
    let mut laptop = Irc::register(a.addr, "laptop", &caps).await;
    let mut phone = Irc::register(b.addr, "phone", &caps).await;
    for device in [&mut laptop, &mut phone] {
        device.send("PRIVMSG NickServ :IDENTIFY dora dora-password-1").await;
        while device.expect("NOTICE").await.params[1] != "You are now logged in as dora." {}
    }
    // Once node A knows that phone is dora too:
    eventually(async || {
        laptop.send("WHOIS phone").await;
        let answer = laptop.expect_any(&["330", "318"]).await;
        if answer.command == "330" {
            laptop.expect("318").await;
            Ok(())
        } else {
            Err(format!("{answer:?}"))
        }
    })
    .await;
    let read = "timestamp=2026-01-02T03:04:05.678Z";
    laptop.send(&format!("MARKREAD #room {read}")).await;
    assert_eq!(laptop.expect("MARKREAD").await.params[..], ["#room", read]);
    assert_eq!(phone.expect("MARKREAD").await.params[..], ["#room", read]);
}

const HISTORY_CAPS: &[&str] = &["batch", "draft/chathistory", "server-time", "message-tags"];

/// Registers as `nick` with `caps`, asking again while the nick is taken: a nick given up on
/// another node is released there a moment after its user has gone.
async fn register_when_free(addr: SocketAddr, nick: &str, caps: &[&str]) -> Irc {
    let mut irc = Irc { client: Client::connect(addr).await, nick: nick.to_string() };
    irc.send(&format!("CAP REQ :{}", caps.join(" "))).await;
    irc.expect("CAP").await;
    irc.send(&format!("NICK {nick}")).await;
    irc.send(&format!("USER {nick} 0 * :{nick}")).await;
    irc.send("CAP END").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let message = irc.expect_any(&["001", "433"]).await;
        if message.command == "001" {
            break;
        }
        assert!(Instant::now() < deadline, "{nick} was not free within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        irc.send(&format!("NICK {nick}")).await;
    }
    irc.expect("376").await;
    irc
}

/// `GET path` over HTTP/1.0; the whole answer.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_string(&mut answer)).await;
    answer
}
