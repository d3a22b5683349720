//! Accounts over real sockets: registering and logging in from plain text, IRC (REGISTER, SASL
//! PLAIN) and NickServ; owned nicks; the account shown to others; throttled logins.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{Client, Irc, TempDir, start_at, start_with};

const PASSWORD: &str = "hunter2-but-longer";

fn sasl_plain(account: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{account}\0{password}"))
}

/// Registers `nick` as an account from a plain-text connection, which stays open.
async fn plain_registered(addr: std::net::SocketAddr, nick: &str) -> Client {
    let mut client = Client::plain_as(addr, nick).await;
    client.send(&format!("/register {PASSWORD}")).await;
    client.expect_where(|l| l.starts_with(&format!("Account {nick} registered"))).await;
    client
}

#[tokio::test]
async fn plain_text_registers_and_logs_in_and_the_data_dir_has_no_password() {
    let dir = TempDir::new();
    let mut server = start_at(&dir.0, |_| {}).await;
    let mut alice = plain_registered(server.addr, "alice").await;
    alice.send("/register another-password").await;
    alice.expect("error: you are already logged in as alice").await;

    let (mut other, _) = Client::plain(server.addr).await;
    other.send("/login alice wrong-password").await;
    other.expect("error: wrong account name or password").await;
    other.send(&format!("/login alice {PASSWORD}")).await;
    other.expect("You are now logged in as alice.").await;
    other.send("/logout").await;
    other.expect("You are now logged out.").await;
    other.send("/register").await;
    other.expect_where(|l| l.starts_with("error: usage: /register PASSWORD")).await;
    other.send(&format!("/register {PASSWORD}")).await;
    other.expect_where(|l| l.starts_with("error: guest nicks cannot be registered")).await;
    other.send("/nick other").await;
    other.send("/register short").await;
    other.expect("error: a password needs at least 8 characters").await;
    drop((alice, other));
    server.stop().await;

    let mut found = 0;
    for entry in std::fs::read_dir(&dir.0).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()), "a plain password on disk");
        found += bytes.windows(10).filter(|w| w == b"$argon2id$").count();
    }
    assert!(found >= 1, "the account's argon2id hash is stored");

    // The account survives a restart.
    let server = start_at(&dir.0, |_| {}).await;
    let (mut again, _) = Client::plain(server.addr).await;
    again.send(&format!("/msg NickServ IDENTIFY alice {PASSWORD}")).await;
    let got = again.line().await;
    assert_eq!(got, "-NickServ- You are now logged in as alice.");
}

#[tokio::test]
async fn irc_sasl_plain_logs_in_before_registration_and_whois_shows_the_account() {
    let server = start_with(|_| {}).await;
    let _alice = plain_registered(server.addr, "alice").await;

    let mut irc = Irc { client: Client::connect(server.addr).await, nick: "alice_".into() };
    let ls = irc.cap_ls().await;
    assert!(ls.iter().any(|c| c == "sasl=PLAIN,EXTERNAL"), "{ls:?}");
    irc.send("CAP REQ :sasl").await;
    while irc.expect("CAP").await.params[1] != "ACK" {}
    irc.send("AUTHENTICATE PLAIN").await;
    assert_eq!(irc.next().await.params[..], ["+"]);
    irc.send(&format!("AUTHENTICATE {}", sasl_plain("alice", "not it"))).await;
    let failed = irc.expect("904").await;
    assert!(failed.params[1].contains("wrong account name or password"), "{failed:?}");
    irc.send("AUTHENTICATE SCRAM-SHA-256").await;
    assert_eq!(irc.expect("908").await.params[1], "PLAIN,EXTERNAL");
    irc.expect("904").await;
    irc.send("AUTHENTICATE PLAIN").await;
    irc.next().await;
    irc.send(&format!("AUTHENTICATE {}", sasl_plain("alice", PASSWORD))).await;
    let logged_in = irc.expect("900").await;
    assert_eq!(logged_in.params[2], "alice");
    irc.expect("903").await;
    irc.send("CAP END").await;
    irc.send("NICK alice_").await;
    irc.send("USER alice 0 * :Alice").await;
    irc.expect("001").await;
    irc.send("AUTHENTICATE PLAIN").await;
    irc.expect("907").await;

    let mut bob = Irc::register(server.addr, "bob", &[]).await;
    bob.send("WHOIS alice_").await;
    let account = bob.expect("330").await;
    assert_eq!(account.params[1..3], ["alice_", "alice"]);
    bob.send("WHO alice_ %na").await;
    assert_eq!(bob.expect("354").await.params[1..], ["alice_", "alice"]);
    bob.send("WHO bob %na").await;
    assert_eq!(bob.expect("354").await.params[1..], ["bob", "0"]);
}

#[tokio::test]
async fn irc_register_creates_an_account_at_once() {
    let server = start_with(|_| {}).await;
    let mut carol = Irc::register(server.addr, "carol", &["standard-replies", "draft/account-registration"]).await;
    carol.send("REGISTER * * short").await;
    let weak = carol.expect("FAIL").await;
    assert_eq!(weak.params[..3], ["REGISTER", "WEAK_PASSWORD", "carol"]);
    carol.send(&format!("REGISTER * * {PASSWORD}")).await;
    let done = carol.expect("REGISTER").await;
    assert_eq!(done.params[..2], ["SUCCESS", "carol"]);
    assert_eq!(carol.expect("900").await.params[2], "carol");
    carol.send(&format!("REGISTER * * {PASSWORD}")).await;
    assert_eq!(carol.expect("FAIL").await.params[1], "ALREADY_REGISTERED");

    let mut dave = Irc::register(server.addr, "dave", &["standard-replies"]).await;
    dave.send(&format!("REGISTER carol * {PASSWORD}")).await;
    assert_eq!(dave.expect("FAIL").await.params[..3], ["REGISTER", "ACCOUNT_EXISTS", "carol"]);
    dave.send(&format!("REGISTER NickServ * {PASSWORD}")).await;
    assert_eq!(dave.expect("FAIL").await.params[1], "BAD_ACCOUNT_NAME");
    dave.send("VERIFY dave 1234").await;
    assert_eq!(dave.expect("FAIL").await.params[..2], ["VERIFY", "INVALID_CODE"]);

    // Before registration the client is told to come back once connected.
    let mut early = Client::connect(server.addr).await;
    early.send("CAP LS 302\r\nCAP REQ standard-replies\r\nREGISTER * * whatever-long").await;
    early.expect_where(|l| l.contains("FAIL REGISTER COMPLETE_CONNECTION_REQUIRED")).await;

    // NickServ, from IRC.
    let mut erin = Irc::register(server.addr, "erin", &[]).await;
    erin.send(&format!("PRIVMSG NickServ :IDENTIFY carol {PASSWORD}")).await;
    let notice = erin.expect("NOTICE").await;
    assert!(notice.source.as_deref().unwrap().starts_with("NickServ!"), "{notice:?}");
    assert_eq!(notice.params[1], "You are now logged in as carol.");
    erin.send("NICK NickServ").await;
    erin.expect("433").await;
}

#[tokio::test]
async fn others_see_the_account_in_tags_joins_and_notifications() {
    let server = start_with(|_| {}).await;
    let mut watcher = Irc::register(server.addr, "watcher", &["account-tag", "account-notify", "extended-join"]).await;
    watcher.join("#room").await;
    let mut frank = Irc::register(server.addr, "frank", &[]).await;
    frank.join("#room").await;
    assert_eq!(watcher.expect("JOIN").await.params[..], ["#room", "*", "frank Real"]);
    frank.send(&format!("REGISTER * * {PASSWORD}")).await;
    frank.expect("900").await;
    let notify = watcher.expect("ACCOUNT").await;
    assert_eq!(
        (notify.source.as_deref(), notify.params.as_slice()),
        (Some("frank!~frank@127.0.0.1"), &["frank".into()][..])
    );
    frank.send("PRIVMSG #room :hello").await;
    let said = watcher.expect("PRIVMSG").await;
    assert_eq!(said.tag("account").flatten(), Some("frank"));
    frank.send("PART #room").await;
    frank.send("JOIN #room").await;
    assert_eq!(watcher.expect("JOIN").await.params[..], ["#room", "frank", "frank Real"]);
    frank.send("PRIVMSG NickServ :LOGOUT").await;
    assert_eq!(watcher.expect("ACCOUNT").await.params[..], ["*"]);
}

#[tokio::test]
async fn a_registered_nick_taken_by_someone_else_is_renamed_after_the_grace_period() {
    let server = start_with(|config| config.hub.nick_grace = Duration::from_millis(400)).await;
    let owner = plain_registered(server.addr, "grace").await;
    drop(owner);

    // An IRC client connecting with the nick is told, then renamed.
    let mut squatter = Irc::register(server.addr, "grace", &[]).await;
    let notice = squatter.expect("NOTICE").await;
    assert!(notice.source.as_deref().unwrap().starts_with("NickServ!"), "{notice:?}");
    assert!(notice.params[1].contains("grace belongs to a registered account"), "{notice:?}");
    let renamed = squatter.expect("NICK").await;
    assert!(renamed.params[0].starts_with("guest-"), "{renamed:?}");

    // A plain-text user taking it is renamed too, unless it logs in in time.
    let mut plain = Client::plain_as(server.addr, "grace").await;
    plain.expect_where(|l| l.starts_with("[private] -NickServ- grace belongs to a registered account")).await;
    plain.expect_where(|l| l.starts_with("*** You are now known as guest-")).await;
    plain.send("/nick grace").await;
    plain.send(&format!("/login grace {PASSWORD}")).await;
    plain.expect("You are now logged in as grace.").await;
    // Nothing announces a rename that does not happen: wait past the grace period, then check.
    tokio::time::sleep(Duration::from_millis(600)).await;
    plain.send("/who").await;
    let who = plain.expect_where(|l| l.contains(" in #lobby")).await;
    assert!(!who.iter().any(|l| l.contains("You are now known as guest-")), "{who:?}");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_address() {
    let server = start_with(|_| {}).await;
    let _henry = plain_registered(server.addr, "henry").await;
    let (mut guesser, _) = Client::plain(server.addr).await;
    for _ in 0..5 {
        guesser.send("/login henry guess-guess").await;
        guesser.expect("error: wrong account name or password").await;
    }
    // The refusal names the wait, and holds even with the right password, from any address.
    guesser.send(&format!("/login henry {PASSWORD}")).await;
    let refused = guesser.line().await;
    assert!(refused.starts_with("error: too many failed logins; try again in"), "{refused}");
    let mut irc = Irc::register(server.addr, "ivy", &[]).await;
    irc.send(&format!("PRIVMSG NickServ :IDENTIFY henry {PASSWORD}")).await;
    let notice = irc.expect("NOTICE").await;
    assert!(notice.params[1].starts_with("too many failed logins; try again in"), "{notice:?}");
}

/// An IRC client registered as `nick` and logged in to `account` through NickServ.
async fn logged_in(addr: std::net::SocketAddr, nick: &str, account: &str, caps: &[&str]) -> Irc {
    let mut irc = Irc::register(addr, nick, caps).await;
    irc.send(&format!("PRIVMSG NickServ :IDENTIFY {account} {PASSWORD}")).await;
    // The service may first have asked the owner of the nick to log in.
    let answer = format!("You are now logged in as {account}.");
    while irc.expect("NOTICE").await.params[1] != answer {}
    irc
}

#[tokio::test]
async fn private_history_follows_the_account_and_reaches_no_one_else() {
    let server = start_with(|_| {}).await;
    let history = ["batch", "draft/chathistory", "server-time", "message-tags"];
    for name in ["alice", "bob", "carol"] {
        drop(plain_registered(server.addr, name).await);
    }
    let mut alice = logged_in(server.addr, "alice", "alice", &history).await;
    let mut bob = logged_in(server.addr, "bob", "bob", &[]).await;
    alice.send("PRIVMSG bob :for bob's eyes only").await;
    bob.expect("PRIVMSG").await;

    // Alice on another device, under another nick, reads the conversation.
    let mut phone = logged_in(server.addr, "alice_phone", "alice", &history).await;
    let lines = phone.chathistory("LATEST bob * 10").await;
    assert_eq!(lines.iter().map(|m| m.params[1].as_str()).collect::<Vec<_>>(), ["for bob's eyes only"]);
    let start = "timestamp=2000-01-01T00:00:00.000Z";
    let targets = phone.chathistory(&format!("TARGETS {start} timestamp=2100-01-01T00:00:00.000Z 10")).await;
    assert_eq!(targets.iter().map(|m| m.params[1].as_str()).collect::<Vec<_>>(), ["bob"]);

    // Another account, and someone without one, read nothing of it.
    let mut carol = logged_in(server.addr, "carol", "carol", &history).await;
    assert!(carol.chathistory("LATEST bob * 10").await.is_empty());
    assert!(carol.chathistory("LATEST alice * 10").await.is_empty());
    let mut stranger = Irc::register(server.addr, "stranger", &history).await;
    assert!(stranger.chathistory("LATEST bob * 10").await.is_empty());
    assert!(stranger.chathistory("LATEST alice * 10").await.is_empty());
}

#[tokio::test]
async fn read_markers_are_shared_by_an_accounts_connections_alone_and_guests_keep_their_own() {
    let server = start_with(|_| {}).await;
    for name in ["dora", "eve"] {
        drop(plain_registered(server.addr, name).await);
    }
    let caps = ["draft/read-marker", "standard-replies"];
    let mut laptop = logged_in(server.addr, "dora", "dora", &caps).await;
    let mut phone = logged_in(server.addr, "dora_phone", "dora", &caps).await;
    let mut eve = logged_in(server.addr, "eve", "eve", &caps).await;

    laptop.send("MARKREAD #room").await;
    assert_eq!(laptop.expect("MARKREAD").await.params[..], ["#room", "*"]);
    let read = "timestamp=2026-01-02T03:04:05.678Z";
    laptop.send(&format!("MARKREAD #room {read}")).await;
    assert_eq!(laptop.expect("MARKREAD").await.params[..], ["#room", read]);
    assert_eq!(phone.expect("MARKREAD").await.params[..], ["#room", read]);
    // Never back.
    phone.send("MARKREAD #room timestamp=2025-01-01T00:00:00.000Z").await;
    assert_eq!(phone.expect("MARKREAD").await.params[..], ["#room", read]);

    // Another account has its own marker and hears nothing of dora's.
    eve.send("MARKREAD #room").await;
    assert_eq!(eve.expect("MARKREAD").await.params[..], ["#room", "*"]);
    eve.send("MARKREAD dora timestamp=2026-02-02T00:00:00.000Z").await;
    eve.expect("MARKREAD").await;
    laptop.send("MARKREAD dora").await;
    assert_eq!(laptop.expect("MARKREAD").await.params[..], ["dora", "*"]);
    eve.send("PING done").await;
    let next = eve.next().await;
    assert_eq!((next.command.as_str(), next.params[1].as_str()), ("PONG", "done"), "eve got no MARKREAD of dora's");

    // Joining a room tells how far the account has read it, before the end of NAMES; a new
    // connection of the account knows it too.
    laptop.send("JOIN #room").await;
    assert_eq!(laptop.expect("MARKREAD").await.params[..], ["#room", read]);
    laptop.expect("366").await;
    let mut tablet = logged_in(server.addr, "dora_tablet", "dora", &caps).await;
    tablet.send("JOIN #room").await;
    assert_eq!(tablet.expect("MARKREAD").await.params[..], ["#room", read]);
    eve.send("JOIN #room").await;
    assert_eq!(eve.expect("MARKREAD").await.params[..], ["#room", "*"]);

    // A guest (web clients such as gamja send MARKREAD logged in or not) has a marker of its
    // own for as long as its connection lasts, and hears nothing of the accounts'.
    let mut anonymous = Irc::register(server.addr, "anon", &caps).await;
    anonymous.send("JOIN #room").await;
    assert_eq!(anonymous.expect("MARKREAD").await.params[..], ["#room", "*"]);
    let guest_read = "timestamp=2026-03-04T05:06:07.890Z";
    anonymous.send(&format!("MARKREAD #room {guest_read}")).await;
    assert_eq!(anonymous.expect("MARKREAD").await.params[..], ["#room", guest_read]);
    anonymous.send("MARKREAD #room timestamp=2025-01-01T00:00:00.000Z").await;
    assert_eq!(anonymous.expect("MARKREAD").await.params[..], ["#room", guest_read]);
    anonymous.send("MARKREAD #room").await;
    assert_eq!(anonymous.expect("MARKREAD").await.params[..], ["#room", guest_read]);
    laptop.send("MARKREAD #room").await;
    assert_eq!(laptop.expect("MARKREAD").await.params[..], ["#room", read]);
    let mut other_guest = Irc::register(server.addr, "anon2", &caps).await;
    other_guest.send("MARKREAD #room").await;
    assert_eq!(other_guest.expect("MARKREAD").await.params[..], ["#room", "*"]);
}

#[tokio::test]
async fn a_registered_only_room_refuses_users_without_an_account() {
    let server = start_with(|_| {}).await;
    let mut owner = plain_registered(server.addr, "owner").await;
    owner.send("/join #members").await;
    owner.expect_where(|l| l.starts_with("You are now in #members")).await;
    owner.send("/mode +R").await;
    owner.expect("Mode +R set on #members.").await;

    let mut irc = Irc::register(server.addr, "visitor", &[]).await;
    irc.send("JOIN #members").await;
    let refused = irc.expect("477").await;
    assert_eq!(refused.params[1], "#members");
    let (mut plain, _) = Client::plain(server.addr).await;
    plain.send("/join #members").await;
    plain.expect_where(|l| l.starts_with("error: #members is for registered users only (+R): log in first")).await;

    // Logged in, the same user gets in.
    drop(plain_registered(server.addr, "member").await);
    let mut member = logged_in(server.addr, "member", "member", &[]).await;
    member.join("#members").await;
    irc.send("MODE #members").await;
    assert!(irc.expect("324").await.params[2].contains('R'));
}

#[tokio::test]
async fn a_private_server_lets_in_only_who_gives_its_password() {
    let server = start_with(|config| config.hub.password = Some("letmein".into())).await;

    // IRC: a wrong or missing PASS is refused with 464 and the connection closed.
    for pass in ["PASS wrong\r\n", ""] {
        let mut irc = Client::connect(server.addr).await;
        irc.send_raw(format!("{pass}NICK intruder\r\nUSER i 0 * :I\r\n").as_bytes()).await;
        let lines = irc.until_closed().await;
        assert!(lines.iter().any(|l| l.contains(" 464 ")), "{lines:?}");
        assert!(!lines.iter().any(|l| l.contains(" 001 ")), "{lines:?}");
    }
    let mut irc = Client::connect(server.addr).await;
    irc.send_raw(b"PASS letmein\r\nNICK friend\r\nUSER f 0 * :F\r\n").await;
    irc.expect_where(|l| l.contains(" 001 ")).await;

    // Plain text: asked for /pass, and nothing else works until then.
    let mut plain = Client::connect(server.addr).await;
    assert_eq!(plain.line().await, "Welcome to the chatroom!");
    assert_eq!(plain.line().await, "This server is private: type /pass PASSWORD to come in.");
    plain.send("hello everyone").await;
    assert!(plain.line().await.starts_with("error: this server is private: type /pass PASSWORD first"));
    plain.send("/pass nope").await;
    assert!(plain.line().await.starts_with("error: wrong password"));
    plain.send("/pass letmein").await;
    assert_eq!(plain.line().await, "Welcome in.");
    assert!(plain.line().await.starts_with("You are guest-"));
    plain.expect_where(|l| l.starts_with("You are now in #lobby")).await;
    plain.send("hello everyone").await;
    irc.send("JOIN #lobby").await;
    irc.expect_where(|l| l.contains(" 366 ")).await;
}

#[tokio::test]
async fn server_bans_by_operators_keep_a_mask_out_and_survive_a_restart() {
    let dir = TempDir::new();
    let opers = |config: &mut charla::server::Config| {
        config.hub.opers.insert("boss".into(), "boss-password".into());
    };
    let mut server = start_at(&dir.0, opers).await;
    let mut victim = Irc::register(server.addr, "badguy", &[]).await;
    let mut boss = Irc::register(server.addr, "boss", &[]).await;
    boss.send("KLINE 0 badguy!*@* :spamming").await;
    boss.expect("481").await;
    let (mut plain, _) = Client::plain(server.addr).await;
    plain.send("/kline badguy").await;
    plain.expect("error: that needs server operator rights (/oper NAME PASSWORD)").await;

    boss.send("OPER boss boss-password").await;
    boss.expect("381").await;
    boss.send("KLINE 0 badguy!*@* :spamming").await;
    let notice = boss.expect("NOTICE").await;
    assert_eq!(notice.params[1], "badguy!*@* is banned from the server until lifted; 1 user(s) removed.");
    let gone = victim.client.until_closed().await;
    assert!(gone.iter().any(|l| l.starts_with("ERROR") && l.contains("Banned: spamming")), "{gone:?}");

    let refused = async |addr| {
        let mut again = Client::connect(addr).await;
        again.send_raw(b"NICK badguy\r\nUSER b 0 * :B\r\n").await;
        let lines = again.until_closed().await;
        assert!(lines.iter().any(|l| l.contains(" 465 ") && l.contains("spamming")), "{lines:?}");
        assert!(!lines.iter().any(|l| l.contains(" 001 ")), "{lines:?}");
    };
    refused(server.addr).await;
    drop((boss, plain));
    server.stop().await;

    // Kept across a restart, until an operator lifts it (here from plain text).
    let server = start_at(&dir.0, opers).await;
    refused(server.addr).await;
    let mut op = Client::plain_as(server.addr, "op").await;
    op.send("/oper boss boss-password").await;
    op.expect("You are now a server operator.").await;
    op.send("/unkline badguy!*@*").await;
    op.expect("The server ban on badguy!*@* is lifted.").await;
    Irc::register(server.addr, "badguy", &[]).await;
}

#[tokio::test]
async fn a_nick_banned_from_the_server_cannot_be_taken_after_connecting_either() {
    let server = start_with(|config| {
        config.hub.opers.insert("boss".into(), "boss-password".into());
    })
    .await;
    let mut boss = Irc::register(server.addr, "boss", &[]).await;
    boss.send("OPER boss boss-password").await;
    boss.expect("381").await;
    boss.send("KLINE 0 badguy!*@* :spamming").await;
    boss.expect("NOTICE").await;

    // Registered under another nick, then renamed: refused the same way.
    let mut irc = Irc::register(server.addr, "goodguy", &[]).await;
    irc.send("NICK badguy").await;
    let refused = irc.expect("432").await;
    assert_eq!(refused.params[1], "badguy");
    assert!(refused.params[2].contains("banned from this server (spamming)"), "{refused:?}");
    let (mut plain, _) = Client::plain(server.addr).await;
    plain.send("/nick badguy").await;
    plain.expect("error: the nick 'badguy' is banned from this server (spamming); pick another with /nick").await;
    plain.send("/nick fineguy").await;
    plain.expect("You are now known as fineguy.").await;

    // Banned by address, a plain-text user is told why when connecting, and let go.
    boss.send("KLINE 5 127.0.0.1 :closed for today").await;
    boss.expect("NOTICE").await;
    let mut refused = Client::connect(server.addr).await;
    let lines = refused.until_closed().await;
    assert!(lines.iter().any(|l| l == "error: you are banned from this server: closed for today"), "{lines:?}");
}
