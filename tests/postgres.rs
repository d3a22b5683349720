//! PostgreSQL as the store (`serve --store postgres://…`), on a private PostgreSQL server
//! (tests/common/postgres.rs): several stores on one database as cluster nodes use it,
//! PostgreSQL going away and coming back under a store and under a chatting server, history
//! across a restart of a real `charla serve`, and `charla migrate-store`. The store's query
//! semantics are checked by the store's own cases, which run on SQLite and PostgreSQL alike
//! (src/store/tests.rs).

mod common;

use std::time::Duration;

use charla::chat::MsgId;
use charla::store::{
    AccountStore, Include, PgStore, Record, RecordKind, Selector, SqliteAccounts, SqliteStore, Store, StoreError,
    StoreLocation, StoredAccount, dm_key,
};
use common::postgres::Postgres;
use common::*;

/// Some time in 2023, in milliseconds.
const T0: u64 = 1_700_000_000_000;

fn record(seq: u64, target: &str, text: &str) -> Record {
    Record {
        id: MsgId((T0 + seq) << 20),
        target: target.into(),
        kind: RecordKind::Privmsg,
        nick: "alice".into(),
        user: "a".into(),
        host: "127.0.0.1".into(),
        text: text.into(),
        extra: String::new(),
        tags: Vec::new(),
        redacted: false,
    }
}

fn texts(store: &dyn Store, target: &str) -> Vec<String> {
    let records = store.history(target, &Selector::Latest(None), 10_000, Include::Messages).unwrap();
    records.into_iter().map(|r| r.text).collect()
}

#[test]
fn two_nodes_on_one_database_store_each_event_once_and_see_each_others_writes() {
    let pg = Postgres::shared();
    let url = pg.database();
    let (a, b) = (PgStore::open(&url).unwrap(), PgStore::open(&url).unwrap());
    // Every node appends every event it applies: its own and the other's.
    let mut dm = record(3, &dm_key("Alice", "Bob"), "psst");
    dm.extra = "Bob".into();
    let events = [record(1, "#Lobby", "one"), record(2, "#lobby", "two"), dm];
    for event in &events {
        a.append(event.clone()).unwrap();
    }
    a.flush().wait().unwrap();
    let activity = |store: &PgStore| {
        let (from, to) = (charla::store::Bound::Time(0), charla::store::Bound::Time(u64::MAX));
        let mut found = store.targets("bob", &["#lobby"], from, to, 10).unwrap();
        found.sort_by(|x, y| x.name.cmp(&y.name));
        found
    };
    let before = activity(&a);
    for event in events.iter().rev() {
        b.append(event.clone()).unwrap();
    }
    b.append(record(4, "#lobby", "three")).unwrap();
    b.flush().wait().unwrap();
    assert!(b.committed() >= events[2].id, "a duplicate counts as committed");
    for node in [&a, &b] {
        assert_eq!(texts(node, "#LOBBY"), ["one", "two", "three"]);
        assert_eq!(texts(node, &dm_key("bob", "alice")), ["psst"]);
    }
    let after = activity(&b);
    assert_eq!(before.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["#lobby", "alice"]);
    assert_eq!(after[1], before[1], "the conversation's activity is unchanged by the duplicate");
    assert_eq!((after[0].name.as_str(), after[0].latest), ("#lobby", record(4, "", "").id), "the room's moved on");

    // Accounts written on one node are read on the other at once: nothing is cached.
    let (accounts_a, accounts_b) = (a.accounts(), b.accounts());
    let alice = StoredAccount { name: "Alice".into(), hash: "$argon2id$x".into(), created: T0 };
    assert!(accounts_a.create_account(&alice).unwrap());
    assert!(!accounts_b.create_account(&alice).unwrap(), "taken on the other node");
    assert_eq!(accounts_b.account("alice").unwrap().map(|a| a.name), Some("Alice".into()));
    accounts_b.set_read_marker("alice", "#lobby", T0 + 9).unwrap();
    assert_eq!(accounts_a.read_marker("alice", "#LOBBY").unwrap(), Some(T0 + 9));
}

#[test]
fn nodes_starting_at_once_migrate_the_schema_once() {
    let pg = Postgres::shared();
    let url = pg.database();
    let nodes: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn({
                let url = url.clone();
                move || PgStore::open(&url).map(drop)
            })
        })
        .collect();
    for node in nodes {
        node.join().unwrap().expect("every node opens the database");
    }
}

#[test]
fn an_unreachable_database_says_what_to_check_and_hides_the_password() {
    let url = format!("postgres://charla:s3cret@127.0.0.1:{}/nowhere", free_port());
    let error = PgStore::open(&url).unwrap_err();
    assert!(matches!(error, StoreError::PgConnect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("cannot connect to PostgreSQL at postgres://charla:***@127.0.0.1:"), "{message}");
    assert!(message.contains("is it running") && message.contains("--store"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    let wrong = "mysql://x@y/z".parse::<StoreLocation>().unwrap_err();
    assert!(wrong.contains("postgres://USER:PASSWORD@HOST:PORT/DATABASE"), "{wrong}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn records_wait_while_postgresql_is_down_and_are_stored_when_it_returns() {
    let pg = Postgres::start();
    let url = pg.database();
    let store = PgStore::open(&url).unwrap();
    store.append(record(0, "#lobby", "before")).unwrap();
    store.flush().wait().unwrap();

    pg.stop();
    for i in 1..=50 {
        store.append(record(i, "#lobby", &format!("during {i}"))).unwrap();
    }
    let paused = store.flush().wait().unwrap_err();
    assert!(matches!(paused, StoreError::Paused { waiting: 50, .. }), "{paused:?}");
    assert!(store.degraded());
    let read = store.history("#lobby", &Selector::Latest(None), 10, Include::Everything).unwrap_err();
    assert!(read.to_string().contains("PostgreSQL"), "{read}");
    assert!(read.to_string().contains("is it running"), "{read}");

    pg.start_again();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while store.flush().wait().is_err() {
        assert!(std::time::Instant::now() < deadline, "writes did not resume: {}", pg.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!store.degraded());
    assert_eq!(store.queued(), 0);
    let mut expected = vec!["before".to_string()];
    expected.extend((1..=50).map(|i| format!("during {i}")));
    assert_eq!(texts(&store, "#lobby"), expected, "the read connection is opened again too");
}

#[test]
fn a_database_that_stops_answering_pauses_writes_within_a_bound() {
    let pg = Postgres::start();
    let url = pg.database();
    let store = std::sync::Arc::new(PgStore::open(&url).unwrap());
    store.append(record(0, "#lobby", "before")).unwrap();
    store.flush().wait().unwrap();

    pg.freeze(true);
    store.append(record(1, "#lobby", "while frozen")).unwrap();
    // The write hangs on a connection that never answers; it is given up after 10 s.
    let (answer, answered) = std::sync::mpsc::channel();
    let flushing = store.clone();
    std::thread::spawn(move || answer.send(flushing.flush().wait()));
    let flushed = answered.recv_timeout(Duration::from_secs(30));
    let degraded = store.degraded();
    let read = store.history("#lobby", &Selector::Latest(None), 10, Include::Everything);
    pg.freeze(false);
    let read = read.expect_err("no answer while frozen").to_string();
    assert!(read.contains("no answer within"), "{read}");
    let flushed = flushed.expect("a flush is answered within the write timeout");
    assert!(matches!(flushed, Err(StoreError::Paused { waiting: 1, .. })), "{flushed:?}");
    assert!(degraded);

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while store.flush().wait().is_err() {
        assert!(std::time::Instant::now() < deadline, "writes did not resume: {}", pg.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(texts(&*store, "#lobby"), ["before", "while frozen"]);
}

/// The status line and the body of `GET path`.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, Vec<String>) {
    let mut http = Client::connect(addr).await;
    http.send_raw(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await;
    let response = http.until_closed().await;
    (response.first().cloned().unwrap_or_default(), response)
}

#[tokio::test]
async fn chat_goes_on_while_postgresql_is_down_and_nothing_said_is_lost() {
    let pg = std::sync::Arc::new(Postgres::start());
    let url = pg.database();
    let mut server = start_with(|config| config.store = StoreLocation::Postgres(url.clone())).await;
    let mut alice = Client::plain_as(server.addr, "alice").await;
    let mut bob = Client::plain_as(server.addr, "bob").await;
    alice.arrived("bob").await;
    let mut said = Vec::new();
    let mut say = async |text: String| {
        alice.send(&text).await;
        bob.expect_where(|l| l.ends_with(&text)).await;
        said.push(text);
    };
    say("before".into()).await;
    assert_eq!(get(server.addr, "/healthz").await.0, "HTTP/1.1 200 OK");

    tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || pg.stop()
    })
    .await
    .unwrap();
    for n in 0..20 {
        say(format!("while down {n}")).await;
    }
    eventually(async || {
        let (status, body) = get(server.addr, "/healthz").await;
        if status == "HTTP/1.1 503 Service Unavailable" && body.iter().any(|l| l.starts_with("degraded")) {
            Ok(())
        } else {
            Err(format!("/healthz: {status}"))
        }
    })
    .await;
    let metrics = get(server.addr, "/metrics").await.1;
    assert!(metrics.iter().any(|l| l == "charla_store_degraded 1"), "{metrics:?}");

    tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || pg.start_again()
    })
    .await
    .unwrap();
    for n in 0..5 {
        say(format!("after {n}")).await;
    }
    eventually(async || match get(server.addr, "/healthz").await.0.as_str() {
        "HTTP/1.1 200 OK" => Ok(()),
        other => Err(format!("/healthz: {other}")),
    })
    .await;
    let metrics = get(server.addr, "/metrics").await.1;
    assert!(metrics.iter().any(|l| l == "charla_store_degraded 0"), "{metrics:?}");
    server.stop().await;

    let stored = tokio::task::spawn_blocking(move || {
        let store = PgStore::open(&url).unwrap();
        let records = store.history("#lobby", &Selector::Latest(None), 1000, Include::Messages).unwrap();
        records.into_iter().map(|r| r.text).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(stored, said, "every line is stored, in order");
}

#[tokio::test]
async fn a_server_on_postgresql_keeps_history_across_a_restart() {
    let pg = Postgres::shared();
    let url = pg.database();
    let dir = TempDir::new();
    let server = ServerProcess::start(&dir.0, &["--store", &url]).await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    alice.join("#keep").await;
    alice.send("TOPIC #keep :kept in PostgreSQL").await;
    alice.expect("TOPIC").await;
    for n in 0..3 {
        alice.send(&format!("PRIVMSG #keep :line {n}")).await;
    }
    alice.send("PING :sync").await;
    alice.expect("PONG").await;
    assert!(server.terminate().await.success());
    assert!(!dir.0.join(SqliteStore::FILE_NAME).exists(), "nothing went to SQLite");

    let server = ServerProcess::start(&dir.0, &["--store", &url]).await;
    let caps = &["batch", "draft/chathistory", "server-time", "message-tags"];
    let mut carol = Irc::register(server.addr, "carol", caps).await;
    carol.send("JOIN #keep").await;
    let topic = carol.expect("332").await;
    assert_eq!(topic.params.last().map(|p| p.as_str()), Some("kept in PostgreSQL"));
    carol.expect("366").await;
    let lines: Vec<String> = carol
        .chathistory("LATEST #keep * 10")
        .await
        .into_iter()
        .filter(|m| m.command == "PRIVMSG")
        .map(|m| m.params[1].to_string())
        .collect();
    assert_eq!(lines, ["line 0", "line 1", "line 2"]);
}

#[tokio::test]
async fn migrate_store_copies_a_servers_sqlite_data_once_and_refuses_another_servers() {
    let pg = Postgres::shared();
    let url = pg.database();
    let dir = TempDir::new();
    let mut server = start_at(&dir.0, |_| {}).await;
    let mut alice = Irc::register(server.addr, "alice", &[]).await;
    alice.join("#old").await;
    alice.send("TOPIC #old :from SQLite").await;
    alice.expect("TOPIC").await;
    let mut bob = Client::plain(server.addr).await.0;
    bob.send("/join #old").await;
    bob.expect_where(|l| l.starts_with("You are now in #old")).await;
    for n in 0..10 {
        alice.send(&format!("PRIVMSG #old :said {n}")).await;
        let said = format!("said {n}");
        bob.expect_where(|l| l.ends_with(&said)).await;
    }
    server.stop().await;
    let accounts = SqliteAccounts::open(&dir.0).unwrap();
    let account = StoredAccount { name: "alice".into(), hash: "$argon2id$alice".into(), created: T0 };
    assert!(accounts.create_account(&account).unwrap());
    accounts.set_read_marker("alice", "#old", T0 + 1).unwrap();
    drop(accounts);

    let migrate = |from: &std::path::Path| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_charla"))
            .args(["migrate-store", "--from"])
            .arg(format!("sqlite:{}", from.display()))
            .args(["--to", &url])
            .output()
            .expect("charla runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, out, err) = migrate(&dir.0);
    assert!(ok, "{out}{err}");
    let sqlite = SqliteStore::open(&dir.0).unwrap();
    let all = |store: &dyn Store| store.history("#old", &Selector::Latest(None), 1000, Include::Everything).unwrap();
    let records = all(&sqlite);
    assert!(records.len() >= 12, "joins, a topic and ten lines: {records:?}");
    let file = rusqlite::Connection::open(dir.0.join(SqliteStore::FILE_NAME)).unwrap();
    let stored: i64 = file.query_row("SELECT count(*) FROM messages", [], |row| row.get(0)).unwrap();
    drop(file);
    assert!(out.contains(&format!("messages:     {stored} copied, 0 already there")), "{out}");
    assert!(out.contains("accounts:     1 copied"), "{out}");
    let (ok, again, err) = migrate(&dir.0);
    assert!(ok, "{again}{err}");
    assert!(again.contains(&format!("messages:     0 copied, {stored} already there")), "{again}");

    let pg_store = PgStore::open(&url).unwrap();
    assert_eq!(all(&pg_store), records, "the same records, ids and all");
    assert_eq!(pg_store.rooms().unwrap(), sqlite.rooms().unwrap());
    assert_eq!(pg_store.last_guest().unwrap(), sqlite.last_guest().unwrap());
    assert!(pg_store.last_guest().unwrap() > 0, "bob was a guest");
    let pg_accounts = pg_store.accounts();
    assert_eq!(pg_accounts.account("ALICE").unwrap().map(|a| a.hash), Some("$argon2id$alice".into()));
    assert_eq!(pg_accounts.read_marker("alice", "#old").unwrap(), Some(T0 + 1));

    // Another server's alice is someone else: nothing of that server is copied.
    let other = TempDir::new();
    let other_store = SqliteStore::open(&other.0).unwrap();
    other_store.append(record(99_999, "#elsewhere", "not to be copied")).unwrap();
    drop(other_store);
    let impostor = StoredAccount { name: "Alice".into(), hash: "$argon2id$other".into(), created: T0 };
    assert!(SqliteAccounts::open(&other.0).unwrap().create_account(&impostor).unwrap());
    let (ok, out, err) = migrate(&other.0);
    assert!(!ok, "{out}");
    assert!(err.contains("Alice") && err.contains("another password") && err.contains("nothing was copied"), "{err}");
    assert!(texts(&pg_store, "#elsewhere").is_empty(), "the copy is one transaction");
}

#[tokio::test]
async fn an_account_registered_on_one_node_logs_in_on_another() {
    let pg = Postgres::shared();
    let url = pg.database();
    let on_postgres = |config: &mut charla::server::Config| config.store = StoreLocation::Postgres(url.clone());
    let node_a = start_with(on_postgres).await;
    let node_b = start_with(on_postgres).await;
    let mut alice = Client::plain_as(node_a.addr, "alice").await;
    alice.send("/register hunter2-but-longer").await;
    alice.expect_where(|l| l.starts_with("Account alice registered")).await;

    let (mut elsewhere, _) = Client::plain(node_b.addr).await;
    elsewhere.send("/login alice wrong-password").await;
    elsewhere.expect("error: wrong account name or password").await;
    elsewhere.send("/login ALICE hunter2-but-longer").await;
    elsewhere.expect("You are now logged in as alice.").await;
}
