//! Tests of the full-screen client without a terminal or a socket: scripted IRC lines and key
//! presses reduced into [`App`] state, and screens drawn into ratatui's `TestBackend`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use time::UtcOffset;

use super::app::{Action, App, Config, Credentials, Link};
use super::ui;
use super::window::{EntryKind, WindowKind};
use crate::proto::irc::caps::Cap;
use crate::proto::irc::message::Message;
use proptest::prelude::*;

/// The local clock in these tests: 2025-11-24T16:00:00Z, before the scripted server times.
fn clock() -> u64 {
    1_764_000_000_000
}

/// An app for `join`, with the test clock.
fn new_app(join: &[&str]) -> App {
    let mut app = App::new(config(join));
    app.clock = clock;
    app
}

fn config(join: &[&str]) -> Config {
    Config {
        host: "irc.test".into(),
        port: 6667,
        nick: "me".into(),
        join: join.iter().map(|r| r.to_string()).collect(),
        utc_offset: UtcOffset::UTC,
        credentials: Credentials::default(),
    }
}

/// Feeds server lines; returns every line the app answered with.
fn feed(app: &mut App, lines: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for line in lines {
        let message = Message::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        out.extend(app.handle_irc(&message).iter().map(Message::to_line));
    }
    out
}

/// Registration with every capability the client wants and `CHATHISTORY=100`.
const WELCOME: &[&str] = &[
    ":srv CAP * LS * :multi-prefix server-time message-tags echo-message",
    ":srv CAP * LS :batch away-notify draft/chathistory sasl",
    ":srv CAP * ACK :server-time message-tags echo-message batch multi-prefix away-notify draft/chathistory",
    ":srv 001 me :Welcome to the test network, me",
    ":srv 005 me CHANTYPES=# PREFIX=(ov)@+ CHATHISTORY=100 :are supported by this server",
    ":srv 376 me :End of /MOTD command.",
];

/// A registered client in #lobby with alice (op), bob (voice) and carol.
fn in_lobby() -> App {
    let mut app = new_app(&["#lobby"]);
    app.connected();
    feed(&mut app, WELCOME);
    feed(
        &mut app,
        &[
            ":me!u@h JOIN #lobby",
            ":srv 332 me #lobby :Welcome to the \x02lobby\x02",
            ":srv 353 me = #lobby :me @alice",
            ":srv 353 me = #lobby :@+bob +carol",
            ":srv 366 me #lobby :End of /NAMES list",
            "@batch=h1 :srv BATCH +h1 chathistory #lobby",
            ":srv BATCH -h1",
        ],
    );
    app
}

/// A registered client in #lobby on a server that gives at most two history lines per
/// request, whose first page came back full: there is more to scroll back to.
fn with_small_history_pages() -> App {
    let mut app = new_app(&["#lobby"]);
    app.connected();
    feed(&mut app, WELCOME);
    feed(&mut app, &[":srv 005 me CHATHISTORY=2 :are supported by this server"]);
    assert_eq!(feed(&mut app, &[":me!u@h JOIN #lobby"]), ["CHATHISTORY LATEST #lobby * 2"]);
    let page = [
        ":srv BATCH +h1 chathistory #lobby".to_string(),
        in_batch("h1", &said("m10", 10, "ten")),
        in_batch("h1", &said("m11", 11, "eleven")),
        ":srv BATCH -h1".to_string(),
    ];
    let page: Vec<&str> = page.iter().map(String::as_str).collect();
    assert_eq!(feed(&mut app, &page), Vec::<String>::new());
    assert!(!app.windows[1].history.exhausted);
    app
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn alt(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::ALT)
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        assert_eq!(app.handle_key(key(KeyCode::Char(c))), None);
    }
}

/// Types a line and presses Enter; returns the lines it sends.
fn enter(app: &mut App, text: &str) -> Vec<String> {
    type_text(app, text);
    match app.handle_key(key(KeyCode::Enter)) {
        Some(Action::Send(lines)) => lines.iter().map(Message::to_line).collect(),
        Some(Action::Quit(reason)) => vec![format!("(quit) {reason}")],
        None => Vec::new(),
    }
}

/// The texts of a window's entries.
fn texts(app: &App, window: &str) -> Vec<String> {
    let i = app.find(window).unwrap_or_else(|| panic!("no window {window}"));
    app.windows[i].entries.iter().map(|e| e.text.clone()).collect()
}

/// The texts of the server window's entries.
fn server_texts(app: &App) -> Vec<String> {
    app.windows[0].entries.iter().map(|e| e.text.clone()).collect()
}

fn members(app: &App, room: &str) -> Vec<String> {
    let i = app.find(room).unwrap_or_else(|| panic!("no window {room}"));
    app.windows[i].members.sorted("@+").iter().map(|m| format!("{}{}", m.prefixes, m.nick)).collect()
}

// ---- registration and capabilities ----

#[test]
fn registers_negotiates_caps_and_joins() {
    let mut app = new_app(&["#lobby", "#dev"]);
    let hello: Vec<String> = app.connected().iter().map(Message::to_line).collect();
    assert_eq!(hello, ["CAP LS 302", "NICK me", "USER me 0 * :charla connect"]);
    assert_eq!(app.link, Link::Registering);
    assert_eq!(feed(&mut app, &WELCOME[..1]), Vec::<String>::new());
    assert_eq!(
        feed(&mut app, &WELCOME[1..2]),
        ["CAP REQ :server-time message-tags echo-message batch multi-prefix away-notify draft/chathistory"]
    );
    assert_eq!(feed(&mut app, &WELCOME[2..3]), ["CAP END"]);
    assert_eq!(feed(&mut app, &[":srv 433 * me :Nickname is already in use"]), ["NICK me_"]);
    assert_eq!(feed(&mut app, &[":srv 001 me_ :Welcome"]), ["JOIN #lobby,#dev"]);
    assert_eq!(app.nick, "me_");
    assert_eq!(app.link, Link::Ready);
    feed(&mut app, &WELCOME[4..]);
    assert_eq!(app.server.chathistory, Some(100));
    assert!(app.server.has(Cap::EchoMessage) && !app.server.offered.is_empty());
    assert!(app.server.offered.contains("sasl") && !app.server.enabled.contains("sasl"));
    // Joining a room asks for its recent history.
    assert_eq!(feed(&mut app, &[":me_!u@h JOIN #dev"]), ["CHATHISTORY LATEST #dev * 50"]);
    assert_eq!(feed(&mut app, &["PING :abc"]), ["PONG abc"]);
}

#[test]
fn gives_the_server_password_and_logs_in_with_sasl_before_registering() {
    let mut config = config(&["#lobby"]);
    config.credentials =
        Credentials { server_password: Some("clubhouse".into()), login: Some(("ana".into(), "correct horse".into())) };
    let mut app = App::new(config);
    app.clock = clock;
    let hello: Vec<String> = app.connected().iter().map(Message::to_line).collect();
    assert_eq!(hello, ["PASS clubhouse", "CAP LS 302", "NICK me", "USER me 0 * :charla connect"]);
    let asked = feed(&mut app, &[":srv CAP * LS :sasl=PLAIN,EXTERNAL server-time"]);
    assert_eq!(asked, ["CAP REQ :server-time sasl"]);
    assert_eq!(feed(&mut app, &[":srv CAP me ACK :server-time sasl"]), ["AUTHENTICATE PLAIN"]);
    // base64 of "ana\0ana\0correct horse"
    assert_eq!(feed(&mut app, &["AUTHENTICATE +"]), ["AUTHENTICATE YW5hAGFuYQBjb3JyZWN0IGhvcnNl"]);
    feed(&mut app, &[":srv 900 me me!~me@h ana :You are now logged in as ana"]);
    assert_eq!(feed(&mut app, &[":srv 903 me :SASL authentication successful"]), ["CAP END"]);
    assert!(server_texts(&app).iter().any(|t| t == "Logged in as ana"), "{:?}", server_texts(&app));
}

#[test]
fn register_and_login_from_the_input_line() {
    let mut app = new_app(&["#lobby"]);
    app.connected();
    feed(&mut app, &[":srv CAP * LS :sasl", ":srv CAP me ACK :sasl"]);
    feed(&mut app, &[":srv 001 me :Welcome"]);
    assert_eq!(enter(&mut app, "/register correct-horse"), ["REGISTER * * correct-horse"]);
    assert_eq!(enter(&mut app, "/login ana correct-horse"), ["AUTHENTICATE PLAIN"]);
    assert_eq!(feed(&mut app, &["AUTHENTICATE +"]), ["AUTHENTICATE YW5hAGFuYQBjb3JyZWN0LWhvcnNl"]);
    // Registered already: the success ends nothing.
    assert_eq!(feed(&mut app, &[":srv 903 me :SASL authentication successful"]), Vec::<String>::new());
}

#[test]
fn a_failed_login_goes_on_as_a_guest_and_a_refused_server_password_says_what_to_do() {
    let mut config = config(&["#lobby"]);
    config.credentials.login = Some(("ana".into(), "wrong".into()));
    let mut app = App::new(config);
    app.clock = clock;
    app.connected();
    feed(&mut app, &[":srv CAP * LS :sasl"]);
    assert_eq!(feed(&mut app, &[":srv CAP me ACK :sasl"]), ["AUTHENTICATE PLAIN"]);
    feed(&mut app, &["AUTHENTICATE +"]);
    let failed = ":srv 904 me :SASL authentication failed: wrong account name or password";
    assert_eq!(feed(&mut app, &[failed]), ["CAP END"]);
    assert!(server_texts(&app).iter().any(|t| t.starts_with("Login failed: SASL authentication failed")));

    let mut app = new_app(&["#lobby"]);
    app.connected();
    feed(&mut app, &[":srv 464 * :Password incorrect: this server is private (PASS password)"]);
    assert!(server_texts(&app).iter().any(|t| t.contains("--password-file")), "{:?}", server_texts(&app));
}

#[test]
fn a_server_without_caps_still_works() {
    let mut app = new_app(&["#lobby"]);
    app.connected();
    assert_eq!(feed(&mut app, &[":srv CAP * LS :sasl"]), ["CAP END"]);
    assert_eq!(feed(&mut app, &[":srv 001 me :Welcome"]), ["JOIN #lobby"]);
    // No chathistory: no request on join, and messages get local timestamps.
    assert_eq!(feed(&mut app, &[":me!u@h JOIN #lobby", ":bob!u@h PRIVMSG #lobby :hi"]), Vec::<String>::new());
    let entry = app.windows[1].entries.last().cloned().expect("an entry");
    assert_eq!(entry.kind, EntryKind::Message { nick: "bob".into() });
    assert!(!entry.server_time && entry.msgid.is_none());
    // No echo-message: our own lines are shown at once.
    assert_eq!(enter(&mut app, "hello"), ["PRIVMSG #lobby :hello"]);
    assert_eq!(texts(&app, "#lobby").last().map(String::as_str), Some("hello"));
}

// ---- membership and messages ----

#[test]
fn names_joins_parts_quits_nicks_kicks_and_modes_track_members() {
    let mut app = in_lobby();
    assert_eq!(members(&app, "#lobby"), ["@alice", "@+bob", "+carol", "me"]);
    assert_eq!(app.windows[1].topic.as_deref(), Some("Welcome to the \x02lobby\x02"));
    feed(
        &mut app,
        &[
            ":dave!d@h JOIN #lobby",
            ":alice!a@h NICK alicia",
            ":bob!b@h PART #lobby :bye",
            ":carol!c@h QUIT :gone",
            ":alicia!a@h MODE #lobby +v-o dave alicia",
            ":alicia!a@h KICK #lobby dave :behave",
            ":alicia!a@h TOPIC #lobby :New topic",
        ],
    );
    assert_eq!(members(&app, "#lobby"), ["alicia", "me"]);
    assert_eq!(app.windows[1].topic.as_deref(), Some("New topic"));
    let lines = texts(&app, "#lobby");
    let tail: Vec<&str> = lines.iter().rev().take(7).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "--> dave joined #lobby",
            "alice is now known as alicia",
            "<-- bob left #lobby (bye)",
            "<-- carol quit (gone)",
            "alicia sets mode +v-o dave alicia",
            "alicia kicked dave (behave)",
            "alicia changed the topic to: New topic",
        ]
    );
}

#[test]
fn messages_keep_server_time_and_msgid_and_are_shown_once() {
    let mut app = in_lobby();
    let line = "@time=2025-11-24T16:00:00.123Z;msgid=m1 :alice!a@h PRIVMSG #lobby :hello me";
    feed(&mut app, &[line, line, "@msgid=m2 :alice!a@h PRIVMSG #lobby :\x01ACTION waves\x01"]);
    let entries = &app.windows[1].entries;
    let hello = &entries[entries.len() - 2];
    assert_eq!(hello.text, "hello me");
    assert_eq!((hello.time, hello.server_time), (1_764_000_000_123, true));
    assert_eq!(hello.msgid.as_deref(), Some("m1"));
    assert!(hello.highlight);
    let action = &entries[entries.len() - 1];
    assert_eq!((action.kind.clone(), action.text.as_str()), (EntryKind::Action { nick: "alice".into() }, "waves"));
    assert_eq!(entries.iter().filter(|e| e.msgid.as_deref() == Some("m1")).count(), 1);
}

#[test]
fn control_characters_from_others_are_removed() {
    let mut app = in_lobby();
    feed(&mut app, &[":ev\x1b[1m!a@h PRIVMSG #lobby :a\x1b[2J\x1b]0;pwned\x07b\u{9b}31mc\x08\x7f"]);
    let entry = app.windows[1].entries.last().cloned().expect("an entry");
    assert_eq!(entry.text, "abc");
    assert_eq!(entry.kind, EntryKind::Message { nick: "ev".into() });
}

#[test]
fn private_messages_open_windows_and_count_unread() {
    let mut app = in_lobby();
    let asked = feed(&mut app, &["@msgid=d1 :bob!b@h PRIVMSG me :psst"]);
    assert_eq!(asked, ["CHATHISTORY LATEST bob * 50"]);
    let bob = app.find("bob").expect("a window for bob");
    assert_eq!(app.windows[bob].kind, WindowKind::Query);
    assert_eq!((app.windows[bob].unread, app.windows[bob].highlight), (1, true));
    // Events do not count as unread; messages in another room do.
    feed(&mut app, &[":srv 001 me :x", ":carol!c@h NICK caroline"]);
    app.show(bob);
    assert_eq!((app.windows[bob].unread, app.windows[bob].highlight), (0, false));
    feed(&mut app, &[":alice!a@h PRIVMSG #lobby :one", ":alice!a@h PRIVMSG #lobby :two"]);
    assert_eq!((app.windows[1].unread, app.windows[1].highlight), (2, false));

    // /msg opens (and shows) a window; with echo-message the line appears when echoed.
    let sent = enter(&mut app, "/msg carol are you there?");
    assert_eq!(sent, ["CHATHISTORY LATEST carol * 50", "PRIVMSG carol :are you there?"]);
    let carol = app.find("carol").expect("a window for carol");
    assert_eq!(app.current, carol);
    assert!(texts(&app, "carol").is_empty());
    feed(&mut app, &["@msgid=d2 :me!u@h PRIVMSG carol :are you there?"]);
    assert_eq!(texts(&app, "carol"), ["are you there?"]);
    assert_eq!(app.windows[carol].unread, 0);
}

// ---- history ----

fn said(id: &str, minute: u32, text: &str) -> String {
    format!("@time=2025-11-24T16:{minute:02}:00.000Z;msgid={id} :alice!a@h PRIVMSG #lobby :{text}")
}

/// `line` tagged as part of batch `reference`.
fn in_batch(reference: &str, line: &str) -> String {
    match line.strip_prefix('@') {
        Some(tagged) => format!("@batch={reference};{tagged}"),
        None => format!("@batch={reference} {line}"),
    }
}

#[test]
fn scrolling_to_the_top_loads_older_history_until_there_is_none() {
    let mut app = with_small_history_pages();
    let asked = match app.handle_key(key(KeyCode::PageUp)) {
        Some(Action::Send(lines)) => lines.iter().map(Message::to_line).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(asked, ["CHATHISTORY BEFORE #lobby msgid=m10 2"]);
    assert!(app.windows[1].history.pending);
    // No second request while one is in flight.
    assert_eq!(app.handle_key(key(KeyCode::PageUp)), None);
    let batch = [
        ":srv BATCH +b1 chathistory #lobby".to_string(),
        in_batch("b1", ":bob!b@h JOIN #lobby"),
        ":srv BATCH -b1".to_string(),
    ];
    let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
    assert_eq!(feed(&mut app, &batch), Vec::<String>::new());
    let lines = texts(&app, "#lobby");
    let n = lines.len();
    // Without a time tag bob's JOIN takes the local clock, the time of our own JOIN: an older
    // page goes before lines of the same time.
    assert_eq!(lines[n - 4..], ["--> bob joined #lobby", "You joined #lobby", "ten", "eleven"]);
    // A JOIN from history is shown, but does not make bob a member today.
    assert_eq!(app.windows[1].members.nicks().count(), 0);
    // Fewer than asked for: nothing older exists, so scrolling up asks no more.
    assert!(app.windows[1].history.exhausted);
    assert_eq!(app.handle_key(key(KeyCode::PageUp)), None);
    assert_eq!(app.windows[1].unread, 0);
}

#[test]
fn a_reconnect_rejoins_and_catches_up_page_by_page_without_gaps_or_duplicates() {
    let mut app = in_lobby();
    feed(&mut app, &[&said("m1", 1, "before the drop")]);
    app.show(0);
    app.disconnected("Connection reset by peer");
    assert!(matches!(app.link, Link::Lost(_)));
    assert!(!app.windows[1].joined);
    app.waiting(4);
    assert_eq!(app.link, Link::Waiting { secs: 4, reason: "Connection reset by peer".into() });

    app.connected();
    let mut answers = feed(&mut app, WELCOME);
    assert_eq!(answers.remove(1), "CAP END");
    assert_eq!(
        answers,
        [
            "CAP REQ :server-time message-tags echo-message batch multi-prefix away-notify draft/chathistory",
            "JOIN #lobby"
        ]
    );
    assert_eq!(feed(&mut app, &[":me!u@h JOIN #lobby"]), ["CHATHISTORY AFTER #lobby msgid=m1 100"]);

    // A live line arrives before the catch-up batch: it must still end up last.
    let live = said("m60", 59, "live after rejoin");
    feed(&mut app, &[&live]);
    // First page: full (100 lines, m2..m101 at minutes 2..), so the client asks for more.
    let mut page = vec![":srv BATCH +c1 chathistory #lobby".to_string()];
    for i in 0..100u32 {
        let line = format!(
            "@time=2025-11-24T16:{:02}:{:02}.000Z;msgid=p{i:03} :bob!b@h PRIVMSG #lobby :missed {i}",
            2 + i / 60,
            i % 60
        );
        page.push(in_batch("c1", &line));
    }
    page.push(":srv BATCH -c1".into());
    let page: Vec<&str> = page.iter().map(String::as_str).collect();
    assert_eq!(feed(&mut app, &page), ["CHATHISTORY AFTER #lobby msgid=p099 100"]);
    // Second page: short, with the live line again; the catch-up ends.
    let second = [
        ":srv BATCH +c2 chathistory #lobby".to_string(),
        in_batch("c2", "@time=2025-11-24T16:10:00.000Z;msgid=q1 :bob!b@h PRIVMSG #lobby :last missed"),
        in_batch("c2", &live),
        ":srv BATCH -c2".to_string(),
    ];
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    assert_eq!(feed(&mut app, &second), Vec::<String>::new());
    assert!(!app.windows[1].history.pending);

    let said: Vec<String> = app.windows[1].entries.iter().filter(|e| e.is_message()).map(|e| e.text.clone()).collect();
    let mut expected = vec!["before the drop".to_string()];
    expected.extend((0..100).map(|i| format!("missed {i}")));
    expected.push("last missed".into());
    expected.push("live after rejoin".into());
    assert_eq!(said, expected);
    // Everything missed counts as unread, once.
    assert_eq!(app.windows[1].unread, 102);
}

#[test]
fn without_chathistory_a_rejoin_says_what_may_be_missing() {
    let mut app = new_app(&["#lobby"]);
    app.connected();
    feed(&mut app, &[":srv 001 me :hi", ":me!u@h JOIN #lobby", ":bob!b@h PRIVMSG #lobby :hello"]);
    app.disconnected("Broken pipe");
    app.connected();
    assert_eq!(feed(&mut app, &[":srv 001 me :hi"]), ["JOIN #lobby"]);
    assert_eq!(feed(&mut app, &[":me!u@h JOIN #lobby"]), Vec::<String>::new());
    let lines = texts(&app, "#lobby");
    assert!(lines.iter().any(|l| l.starts_with("Disconnected: Broken pipe")), "{lines:?}");
    assert!(lines.last().is_some_and(|l| l.contains("anything said while you were away is not shown")), "{lines:?}");
}

#[test]
fn a_failed_history_request_is_not_retried() {
    let mut app = with_small_history_pages();
    assert!(matches!(app.handle_key(key(KeyCode::PageUp)), Some(Action::Send(_))));
    feed(&mut app, &[":srv FAIL CHATHISTORY MESSAGE_ERROR BEFORE #lobby :Messages could not be retrieved"]);
    let window = &app.windows[1];
    assert!(!window.history.pending && window.history.exhausted);
    assert_eq!(app.handle_key(key(KeyCode::PageUp)), None);
}

// ---- keys ----

#[test]
fn input_editing_and_history_keys() {
    let mut app = in_lobby();
    type_text(&mut app, "hello wrld");
    for code in [KeyCode::Left, KeyCode::Left, KeyCode::Left] {
        app.handle_key(key(code));
    }
    app.handle_key(key(KeyCode::Char('o')));
    assert_eq!(app.input.text(), "hello world");
    app.handle_key(key(KeyCode::End));
    app.handle_key(ctrl('w'));
    assert_eq!(app.input.text(), "hello ");
    app.handle_key(key(KeyCode::Home));
    app.handle_key(key(KeyCode::Delete));
    app.handle_key(key(KeyCode::End));
    app.handle_key(key(KeyCode::Backspace));
    assert_eq!(app.input.text(), "ello");
    app.handle_key(ctrl('u'));
    assert!(app.input.is_empty());

    assert_eq!(enter(&mut app, "first"), ["PRIVMSG #lobby :first"]);
    assert_eq!(enter(&mut app, "second"), ["PRIVMSG #lobby :second"]);
    app.handle_key(key(KeyCode::Up));
    assert_eq!(app.input.text(), "second");
    app.handle_key(key(KeyCode::Up));
    assert_eq!(app.input.text(), "first");
    app.handle_key(key(KeyCode::Down));
    app.handle_key(key(KeyCode::Down));
    assert!(app.input.is_empty());
}

#[test]
fn tab_completes_nicks_of_the_room_and_commands() {
    let mut app = in_lobby();
    feed(&mut app, &[":alan!a@h JOIN #lobby"]);
    type_text(&mut app, "al");
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "alan: ");
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "alice: ");
    type_text(&mut app, "ask c");
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "alice: ask carol ");
    app.handle_key(ctrl('u'));
    type_text(&mut app, "/jo");
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "/join ");
    type_text(&mut app, "#lo");
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "/join #lobby ");
    // Our own nick is not offered.
    app.handle_key(ctrl('u'));
    type_text(&mut app, "m");
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "m");
}

#[test]
fn commands_send_what_irc_expects() {
    let mut app = in_lobby();
    assert_eq!(enter(&mut app, "/me waves"), ["PRIVMSG #lobby :\x01ACTION waves\x01"]);
    assert_eq!(enter(&mut app, "/topic"), ["TOPIC #lobby"]);
    assert_eq!(enter(&mut app, "/topic Hello all"), ["TOPIC #lobby :Hello all"]);
    assert_eq!(enter(&mut app, "/nick newme"), ["NICK newme"]);
    assert_eq!(enter(&mut app, "/who"), ["WHO #lobby"]);
    assert_eq!(enter(&mut app, "/quote MODE #lobby +m"), ["MODE #lobby +m"]);
    assert_eq!(enter(&mut app, "//slash"), ["PRIVMSG #lobby :/slash"]);
    assert_eq!(enter(&mut app, "/join dev"), ["JOIN #dev"]);
    // The window appears, and is shown, when the server confirms the join.
    assert_eq!(app.current, 1);
    feed(&mut app, &[":me!u@h JOIN #dev"]);
    assert_eq!(app.windows[app.current].name, "#dev");
    assert_eq!(enter(&mut app, "/part"), ["PART #dev"]);
    feed(&mut app, &[":me!u@h PART #dev"]);
    assert_eq!(app.find("#dev"), None);
    assert_eq!(app.current, 1);
    assert_eq!(enter(&mut app, "/quit gone fishing"), ["(quit) gone fishing"]);
    assert_eq!(enter(&mut app, "/frobnicate"), Vec::<String>::new());
    assert!(texts(&app, "#lobby").last().is_some_and(|l| l.starts_with("Unknown command /frobnicate")));
    assert_eq!(enter(&mut app, "/msg"), Vec::<String>::new());
    assert!(texts(&app, "#lobby").last().is_some_and(|l| l.starts_with("Usage: /msg NICK TEXT")));
    let long = "word ".repeat(200);
    let sent = enter(&mut app, long.trim_end());
    assert!(sent.len() == 3 && sent.iter().all(|l| l.len() <= 512), "{sent:?}");
}

#[test]
fn lines_typed_while_disconnected_are_kept() {
    let mut app = in_lobby();
    app.disconnected("timeout");
    assert_eq!(enter(&mut app, "are you there"), Vec::<String>::new());
    assert_eq!(app.input.text(), "are you there");
    assert!(texts(&app, "#lobby").last().is_some_and(|l| l.starts_with("Not connected")));
}

#[test]
fn window_switching_keys() {
    let mut app = in_lobby();
    feed(&mut app, &[":bob!b@h PRIVMSG me :hi", ":me!u@h JOIN #dev"]);
    assert_eq!(app.windows.len(), 4);
    app.handle_key(alt(KeyCode::Char('3')));
    assert_eq!(app.window().name, "bob");
    assert_eq!(app.window().unread, 0);
    app.handle_key(ctrl('n'));
    assert_eq!(app.window().name, "#dev");
    app.handle_key(ctrl('n'));
    assert_eq!(app.current, 0);
    app.handle_key(ctrl('p'));
    assert_eq!(app.window().name, "#dev");
    app.handle_key(alt(KeyCode::Left));
    assert_eq!(app.window().name, "bob");
    app.handle_key(alt(KeyCode::Right));
    assert_eq!(app.window().name, "#dev");
    app.handle_key(alt(KeyCode::Char('9')));
    assert_eq!(app.window().name, "#dev");
}

// ---- rendering ----

/// Draws the app on an 80×24 test terminal; returns the screen's rows.
fn screen(app: &mut App, width: u16, height: u16) -> Vec<String> {
    app.resize(width, height);
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal.draw(|frame| ui::draw(frame, app)).expect("draws");
    let buffer = terminal.backend().buffer().clone();
    (0..height).map(|y| (0..width).map(|x| buffer[(x, y)].symbol().to_string()).collect::<String>()).collect()
}

fn busy_lobby() -> App {
    let mut app = in_lobby();
    feed(
        &mut app,
        &[
            "@time=2025-11-24T16:05:00.000Z;msgid=a :alice!a@h PRIVMSG #lobby :good morning",
            "@time=2025-11-24T16:06:00.000Z;msgid=b :bob!b@h PRIVMSG #lobby :\x01ACTION waves\x01",
            "@time=2025-11-24T16:07:00.000Z;msgid=c :me!u@h PRIVMSG #lobby :hi both",
            "@time=2025-11-24T16:08:00.000Z;msgid=d :dan!d@h PRIVMSG me :psst",
            "@time=2025-11-24T16:09:00.000Z;msgid=e :dan!d@h PRIVMSG me :me, are you there?",
        ],
    );
    type_text(&mut app, "typing here");
    app
}

#[test]
fn the_main_view_at_80_by_24() {
    let mut app = busy_lobby();
    let rows = screen(&mut app, 80, 24);
    let text = rows.join("\n");
    assert!(rows[0].starts_with(" #lobby: Welcome to the lobby"), "{text}");
    assert!(rows[1].starts_with(" 1 irc.test   │"), "{text}");
    assert!(rows[2].starts_with(" 2 #lobby     │"), "{text}");
    assert!(rows[3].starts_with(" 3 dan       2│"), "{text}");
    assert!(rows[1].ends_with("│ 4 users      "), "{text}");
    assert!(rows[2].ends_with("│@alice        "), "{text}");
    assert!(rows[3].ends_with("│@bob          "), "{text}");
    assert!(rows[4].ends_with("│+carol        "), "{text}");
    assert!(rows[5].ends_with("│ me           "), "{text}");
    let pane: Vec<String> = rows[1..22].iter().map(|r| r[r.find('│').map_or(0, |i| i + 3)..].to_string()).collect();
    let pane = pane.join("\n");
    for line in ["─── Mon 24 Nov 2025 ───", "16:05 <alice> good morning", "16:06 * bob waves", "16:07 <me> hi both"]
    {
        assert!(pane.contains(line), "{line:?} in\n{text}");
    }
    assert!(rows[22].starts_with(" [me] [2:#lobby] [Act: 3!]"), "{text}");
    assert_eq!(rows[23].trim_end(), "> typing here");
}

#[test]
fn long_lines_wrap_under_the_text_and_the_input_scrolls() {
    let mut app = in_lobby();
    let long = "@time=2025-11-24T16:05:00.000Z :alice!a@h PRIVMSG #lobby :the quick brown fox jumps over the lazy dog and keeps running far away";
    feed(&mut app, &[long]);
    type_text(&mut app, &"x".repeat(100));
    let rows = screen(&mut app, 80, 24);
    let pane: Vec<&str> = rows[20..22].iter().map(|r| &r[r.find('│').map_or(0, |i| i + 3)..]).collect();
    assert_eq!(pane[0], "16:05 <alice> the quick brown fox jumps over the  │              ");
    assert_eq!(pane[1], "              lazy dog and keeps running far away │              ");
    // The cursor stays visible at the end of a line longer than the screen.
    assert!(rows[23].starts_with("> xxxx") && rows[23].trim_end().len() == 79, "{:?}", rows[23]);
}

#[test]
fn the_status_line_shows_reconnection_and_scrolling() {
    let mut app = busy_lobby();
    app.disconnected("Connection reset by peer");
    app.waiting(4);
    let rows = screen(&mut app, 80, 24);
    assert!(rows[22].contains("[reconnecting in 4 s: Connection reset by peer]"), "{}", rows[22]);
    assert!(rows[0].starts_with(" #lobby (not joined)"), "{}", rows[0]);

    let mut app = busy_lobby();
    for i in 0..40 {
        let line = format!("@time=2025-11-24T17:{i:02}:00.000Z;msgid=x{i} :bob!b@h PRIVMSG #lobby :line {i}");
        feed(&mut app, &[&line]);
    }
    screen(&mut app, 80, 24);
    app.handle_key(key(KeyCode::PageUp));
    let rows = screen(&mut app, 80, 24);
    let text = rows.join("\n");
    assert!(rows[22].contains("[-- more below: PgDn --]"), "{text}");
    assert!(text.contains("<bob> line 0") && !text.contains("<bob> line 39"), "{text}");
    app.handle_key(key(KeyCode::PageDown));
    let rows = screen(&mut app, 80, 24);
    assert!(rows.join("\n").contains("<bob> line 39"));
}

#[test]
fn narrow_terminals_drop_the_side_columns() {
    let mut app = busy_lobby();
    let rows = screen(&mut app, 40, 10);
    assert!(!rows.iter().any(|r| r.contains('│')), "{rows:#?}");
    assert_eq!(rows[2].trim_end(), "─── Mon 24 Nov 2025 ───");
    assert_eq!(rows[7].trim_end(), "16:07 <me> hi both");
}

#[test]
fn nothing_a_peer_sends_reaches_the_screen_as_a_control_character() {
    let mut app = in_lobby();
    feed(
        &mut app,
        &[
            ":ev\x1b[5m!a@h PRIVMSG #lobby :\x1b]52;c;ZXZpbA==\x07\x1b[2Jclear\u{9b}1;1H\x02bold\x02\x0304red",
            ":ev!a@h TOPIC #lobby :\x1b[31mred topic\x1b[0m",
            ":ev!a@h PRIVMSG me :\x1bc\x05\x7f",
        ],
    );
    let rows = screen(&mut app, 80, 24);
    let text = rows.join("\n");
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
    assert!(text.contains("<ev> clearboldred"), "{text}");
    assert!(rows[0].starts_with(" #lobby: red topic"), "{text}");
    assert!(text.contains(" 3 ev"), "{text}");
}

#[test]
fn a_long_member_list_says_how_many_more() {
    let mut app = in_lobby();
    let names: Vec<String> = (0..40).map(|i| format!("user{i:02}")).collect();
    let line = format!(":srv 353 me = #lobby :{}", names.join(" "));
    feed(&mut app, &[&line, ":srv 366 me #lobby :End"]);
    let rows = screen(&mut app, 80, 24);
    assert!(rows[1].ends_with("│ 40 users     "), "{}", rows[1]);
    assert!(rows[21].ends_with("│ +21 more     "), "{}", rows[21]);
}

#[test]
fn tiny_terminals_draw_without_panicking() {
    let mut app = busy_lobby();
    for (width, height) in [(1, 1), (2, 2), (3, 4), (10, 3), (49, 5), (50, 4), (70, 2), (200, 60)] {
        screen(&mut app, width, height);
        app.handle_key(key(KeyCode::PageUp));
    }
}

proptest! {
    /// Whatever a server sends, the client neither panics nor draws a control character.
    #[test]
    fn any_server_line_is_handled_and_drawn_safely(
        lines in proptest::collection::vec(
            "(@[a-z=;/+-]{0,12} )?(:[a-z!@.\\x1b\\x07]{0,8} )?(PRIVMSG|NOTICE|JOIN|PART|QUIT|NICK|KICK|MODE|TOPIC|BATCH|CAP|FAIL|PING|353|366|332|005|001|433|401)( [#a-z+@*,=-]{0,8}){0,4}( :[^\\r\\n\\x00]{0,30})?",
            1..30,
        )
    ) {
        let mut app = in_lobby();
        for line in &lines {
            if let Ok(message) = Message::parse(line) {
                app.handle_irc(&message);
            }
        }
        let rows = screen(&mut app, 80, 24);
        prop_assert!(!rows.iter().any(|r| r.chars().any(char::is_control)), "{rows:#?}");
    }
}

// ---- issue 15: what a new user met ----

/// The time tag of something at `minute` past 16:00 on the test day.
fn at(minute: u32) -> String {
    format!("time=2025-11-24T16:{minute:02}:00.000Z")
}

#[test]
fn your_own_join_is_shown_once_also_after_a_reconnect() {
    let mut app = new_app(&["#lobby"]);
    app.connected();
    feed(&mut app, WELCOME);
    // The server sends the JOIN with its msgid, and the history asked for on joining holds
    // the same JOIN (draft/event-playback).
    let join = format!("@{};msgid=j1 :me!u@h JOIN #lobby", at(1));
    assert_eq!(feed(&mut app, &[&join]), ["CHATHISTORY LATEST #lobby * 50"]);
    let latest = [
        ":srv BATCH +h1 chathistory #lobby".to_string(),
        in_batch("h1", &format!("@{};msgid=b0 :bob!b@h JOIN #lobby", at(0))),
        in_batch("h1", &join),
        ":srv BATCH -h1".to_string(),
    ];
    feed(&mut app, &latest.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(texts(&app, "#lobby"), ["--> bob joined #lobby", "You joined #lobby"]);

    // After a reconnect the catch-up holds the rejoin too.
    app.disconnected("Connection reset by peer");
    app.connected();
    feed(&mut app, WELCOME);
    let rejoin = format!("@{};msgid=j2 :me!u@h JOIN #lobby", at(3));
    assert_eq!(feed(&mut app, &[&rejoin]), ["CHATHISTORY AFTER #lobby msgid=j1 100"]);
    let after = [
        ":srv BATCH +c1 chathistory #lobby".to_string(),
        in_batch("c1", &format!("@{};msgid=q1 :me!u@h QUIT :Connection reset by peer", at(2))),
        in_batch("c1", &rejoin),
        ":srv BATCH -c1".to_string(),
    ];
    feed(&mut app, &after.iter().map(String::as_str).collect::<Vec<_>>());
    let lines = texts(&app, "#lobby");
    assert_eq!(lines.iter().filter(|l| l.as_str() == "You joined #lobby").count(), 2, "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("me joined")), "{lines:#?}");
}

#[test]
fn help_shows_in_the_server_window_and_says_how_to_get_back() {
    let mut app = in_lobby();
    feed(&mut app, &["@msgid=d1 :bob!b@h PRIVMSG me :psst"]);
    let bob = app.find("bob").expect("a window for bob");
    app.show(bob);
    assert_eq!(enter(&mut app, "/help"), Vec::<String>::new());
    assert_eq!(texts(&app, "bob"), ["psst"], "nothing printed into the conversation");
    assert_eq!(app.current, 0);
    let server = &app.windows[0].entries;
    assert!(server.iter().any(|e| e.text.contains("/history [N]")));
    assert_eq!(server.last().map(|e| e.text.as_str()), Some("Alt-3 goes back to bob."));

    // The start of the help is at the top of the pane; the rest is a PgDn away.
    let rows = screen(&mut app, 80, 24);
    let text = rows.join("\n");
    assert!(rows[1].contains("│16:00 Commands (Tab completes them):"), "{text}");
    assert!(rows[22].starts_with(" [me] [1:irc.test]") && rows[22].contains("more below"), "{text}");
    app.handle_key(key(KeyCode::PageDown));
    let rows = screen(&mut app, 80, 24);
    assert!(rows[21].contains("│16:00 Alt-3 goes back to bob."), "{}", rows.join("\n"));
    assert!(!rows[22].contains("more below"), "{}", rows.join("\n"));
}

/// What charla itself sends when a client registers (three users on the server).
const CHARLA_BURST: &[&str] = &[
    ":charla 001 me :Welcome to the charla chat network, me!~me@127.0.0.1",
    ":charla 002 me :Your host is charla, running version charla-0.1.0",
    ":charla 003 me :This server was created 2026-12-04T16:41:23.791Z",
    ":charla 004 me charla charla-0.1.0 io biklmnostv :bklov",
    ":charla 005 me AWAYLEN=390 CASEMAPPING=ascii CHANMODES=b,k,l,imnst CHANTYPES=# :are supported by this server",
    ":charla 005 me NETWORK=charla PREFIX=(ov)@+ CHATHISTORY=100 :are supported by this server",
    ":charla 251 me :There are 3 users and 0 invisible on 1 servers",
    ":charla 252 me 0 :operator(s) online",
    ":charla 254 me 1 :channels formed",
    ":charla 255 me :I have 3 clients and 0 servers",
    ":charla 265 me 3 3 :Current local users 3, max 3",
    ":charla 266 me 3 3 :Current global users 3, max 3",
    ":charla 375 me :- charla Message of the day - ",
    ":charla 372 me :- Welcome to charla: one server, every kind of client.",
    ":charla 376 me :End of /MOTD command.",
];

#[test]
fn the_server_window_reads_like_text_not_numerics() {
    let mut app = new_app(&["#lobby"]);
    app.connected();
    feed(&mut app, &[":charla CAP * LS :server-time"]);
    feed(&mut app, CHARLA_BURST);
    assert_eq!(
        server_texts(&app)[1..],
        [
            "Welcome to the charla chat network, me!~me@127.0.0.1",
            "Your host is charla, running version charla-0.1.0",
            "This server was created 2026-12-04T16:41:23.791Z",
            "There are 3 users and 0 invisible on 1 servers",
            "0 operator(s) online",
            "1 channels formed",
            "I have 3 clients and 0 servers",
            "Current local users 3, max 3",
            "Current global users 3, max 3",
            "charla Message of the day",
            "Welcome to charla: one server, every kind of client.",
        ]
    );
    app.show(0);
    for (width, height) in [(80, 24), (160, 40)] {
        let text = screen(&mut app, width, height).join("\n");
        for raw in ["biklmnostv", "bklov", "3 3", "are supported", "End of /MOTD", "- Welcome"] {
            assert!(!text.contains(raw), "{raw:?} on\n{text}");
        }
    }
}

#[test]
fn replies_to_commands_read_as_sentences_where_the_user_looks() {
    let mut app = in_lobby();
    let start = texts(&app, "#lobby").len();
    feed(
        &mut app,
        &[
            ":srv 311 me ana ~ana 10.0.0.7 * :Ana Lima",
            ":srv 319 me ana :@#lobby #dev",
            ":srv 312 me ana srv :the test server",
            ":srv 317 me ana 300 1764000000 :seconds idle, signon time",
            ":srv 318 me ana :End of /WHOIS list",
            ":srv 352 me #lobby ~ana 10.0.0.7 srv ana G@ :0 Ana Lima",
            ":srv 352 me #lobby ~u h srv me H :0 charla connect",
            ":srv 315 me #lobby :End of /WHO list",
            ":srv 421 me FOO :Unknown command",
            ":srv 324 me #lobby +nt",
            ":srv 333 me #lobby alice!a@h 1764000000",
        ],
    );
    assert_eq!(
        texts(&app, "#lobby")[start..],
        [
            "ana is ~ana@10.0.0.7 (Ana Lima)",
            "ana is in @#lobby #dev",
            "ana is on srv (the test server)",
            "ana has been idle 5 min, online since Mon 24 Nov 2025 16:00",
            "@ana is ~ana@10.0.0.7 (Ana Lima), away",
            "me is ~u@h (charla connect)",
            "2 in #lobby",
            "FOO: Unknown command",
            "#lobby has modes +nt",
            "Topic set by alice, Mon 24 Nov 2025 16:00",
        ]
    );
    assert!(app.away.contains("ana"));
    // A reply about a conversation that is open goes there.
    feed(&mut app, &[":bob!b@h PRIVMSG me :brb", ":srv 301 me bob :lunch"]);
    assert_eq!(texts(&app, "bob"), ["brb", "bob is away: lunch"]);
}

/// A client in #lobby that asked for the room list and got three rooms.
fn with_room_list() -> App {
    let mut app = in_lobby();
    assert_eq!(enter(&mut app, "/list"), ["LIST"]);
    assert_eq!(app.window().kind, WindowKind::Rooms);
    let rows = screen(&mut app, 80, 24);
    assert!(rows.join("\n").contains("Asking the server for its rooms"), "{}", rows.join("\n"));
    feed(
        &mut app,
        &[
            ":srv 321 me Channel :Users  Name",
            ":srv 322 me #quiet 0 :",
            ":srv 322 me #lobby 4 :Welcome to the \x02lobby\x02",
            ":srv 322 me #dev 2 :[+nt] builds and deploys",
            ":srv 323 me :End of /LIST",
        ],
    );
    app
}

#[test]
fn list_shows_the_rooms_in_a_window_of_their_own_to_join_from() {
    let mut app = with_room_list();
    let rows = screen(&mut app, 80, 24);
    let text = rows.join("\n");
    let pane: Vec<&str> = rows.iter().map(|r| r.split('│').nth(1).unwrap_or("").trim_end()).collect();
    assert!(rows[0].starts_with(" Rooms on this server: 3 rooms"), "{text}");
    assert_eq!(pane[1], " Room   Users  Topic", "{text}");
    assert_eq!(pane[2], " #lobby     4  Welcome to the lobby", "{text}");
    assert_eq!(pane[3], " #dev       2  builds and deploys", "{text}");
    assert_eq!(pane[4], " #quiet     0", "{text}");
    assert!(pane[21].contains("Enter shows #lobby"), "{text}");
    assert!(text.contains(" 3 room list"), "{text}");

    // ↓ and Enter join the room chosen; its window is shown once the server confirms.
    app.handle_key(key(KeyCode::Down));
    let rows = screen(&mut app, 80, 24);
    assert!(rows[21].contains("Enter joins #dev"), "{}", rows.join("\n"));
    assert_eq!(app.handle_key(key(KeyCode::Enter)), Some(Action::Send(vec![Message::new("JOIN", &["#dev"])])));
    feed(&mut app, &[":me!u@h JOIN #dev"]);
    assert_eq!(app.window().name, "#dev");

    // Typing filters the list; Enter joins the one room left, or creates the room typed.
    app.handle_key(alt(KeyCode::Char('3')));
    assert_eq!(app.window().kind, WindowKind::Rooms);
    type_text(&mut app, "qui");
    let rows = screen(&mut app, 80, 24);
    assert!(rows.iter().any(|r| r.contains("#quiet")) && !rows.iter().any(|r| r.contains("#lobby     4")));
    assert_eq!(app.handle_key(key(KeyCode::Enter)), Some(Action::Send(vec![Message::new("JOIN", &["#quiet"])])));
    assert!(app.input.is_empty());
    type_text(&mut app, "brandnew");
    let rows = screen(&mut app, 80, 24);
    assert!(rows[21].contains("Enter creates #brandnew"), "{}", rows.join("\n"));
    assert_eq!(app.handle_key(key(KeyCode::Enter)), Some(Action::Send(vec![Message::new("JOIN", &["#brandnew"])])));
    // /rooms asks again; /close closes the list.
    assert_eq!(enter(&mut app, "/rooms"), ["LIST"]);
    assert_eq!(enter(&mut app, "/close"), Vec::<String>::new());
    assert!(app.windows.iter().all(|w| w.kind != WindowKind::Rooms));
}

#[test]
fn history_loads_earlier_lines_into_the_window_page_by_page() {
    let mut app = with_small_history_pages();
    // Three lines in pages of at most two.
    assert_eq!(enter(&mut app, "/history 3"), ["CHATHISTORY BEFORE #lobby msgid=m10 2"]);
    let page = [
        ":srv BATCH +b1 chathistory #lobby".to_string(),
        in_batch("b1", &said("m8", 8, "eight")),
        in_batch("b1", &said("m9", 9, "nine")),
        ":srv BATCH -b1".to_string(),
    ];
    assert_eq!(
        feed(&mut app, &page.iter().map(String::as_str).collect::<Vec<_>>()),
        ["CHATHISTORY BEFORE #lobby msgid=m8 1"]
    );
    let page = [
        ":srv BATCH +b2 chathistory #lobby".to_string(),
        in_batch("b2", &said("m7", 7, "seven")),
        ":srv BATCH -b2".to_string(),
    ];
    assert_eq!(feed(&mut app, &page.iter().map(String::as_str).collect::<Vec<_>>()), Vec::<String>::new());
    let said: Vec<String> = app.windows[1].entries.iter().filter(|e| e.is_message()).map(|e| e.text.clone()).collect();
    assert_eq!(said, ["seven", "eight", "nine", "ten", "eleven"]);
    let text = screen(&mut app, 80, 24).join("\n");
    assert!(text.contains("16:07 <alice> seven"), "{text}");

    // Nothing earlier: the server sends an empty page, and then it is not asked again.
    assert_eq!(enter(&mut app, "/history"), ["CHATHISTORY BEFORE #lobby msgid=m7 2"]);
    feed(&mut app, &[":srv BATCH +b3 chathistory #lobby", ":srv BATCH -b3"]);
    assert!(texts(&app, "#lobby").last().is_some_and(|l| l.starts_with("Nothing earlier")));
    assert_eq!(enter(&mut app, "/history 5"), Vec::<String>::new());
    assert_eq!(enter(&mut app, "/history lots"), Vec::<String>::new());
    assert!(texts(&app, "#lobby").last().is_some_and(|l| l.starts_with("Usage: /history [N]")));
    app.show(0);
    assert_eq!(enter(&mut app, "/history"), Vec::<String>::new());
    assert!(server_texts(&app).last().is_some_and(|l| l.contains("use it in its window")));
}

#[test]
fn history_says_clearly_when_the_server_keeps_none() {
    let mut app = new_app(&["#lobby"]);
    app.connected();
    feed(&mut app, &[":srv CAP * LS :sasl", ":srv 001 me :Welcome", ":me!u@h JOIN #lobby"]);
    assert_eq!(enter(&mut app, "/history 10"), Vec::<String>::new());
    let last = texts(&app, "#lobby").pop().unwrap_or_default();
    assert!(last.starts_with("This server keeps no history") && last.contains("draft/chathistory"), "{last}");
}
