//! Tests of the SQLite store on real files in a scratch directory under the system's temp dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::chat::{ServerBan, now_millis};

/// A fresh directory, removed with everything in it when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "charla-store-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }

    fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.0).expect("scratch store opens")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The store a case runs on: the same cases run on SQLite and on PostgreSQL (a database of its
/// own on the private server this test binary shares, see `tests/common/postgres.rs`), which
/// is what makes their answers the same.
enum Backend {
    Sqlite(Scratch),
    Postgres { url: String, _server: Arc<pg_server::Postgres> },
}

impl Backend {
    fn sqlite() -> Backend {
        Backend::Sqlite(Scratch::new())
    }

    fn postgres() -> Backend {
        let server = pg_server::Postgres::shared();
        Backend::Postgres { url: server.database(), _server: server }
    }

    /// Opens the store, again after it was dropped: the same data.
    fn open(&self) -> Box<dyn Store> {
        match self {
            Backend::Sqlite(scratch) => Box::new(scratch.open()),
            Backend::Postgres { url, .. } => Box::new(PgStore::open(url).expect("the test database opens")),
        }
    }

    /// The accounts of the store.
    fn accounts(&self) -> Box<dyn AccountStore> {
        match self {
            Backend::Sqlite(scratch) => {
                drop(scratch.open());
                Box::new(SqliteAccounts::open(&scratch.0).unwrap())
            }
            Backend::Postgres { url, .. } => Box::new(PgStore::open(url).unwrap().accounts()),
        }
    }
}

/// The private PostgreSQL server the cases run on.
#[path = "../../tests/common/postgres.rs"]
#[allow(dead_code)]
mod pg_server;

/// Makes each case (a function taking a [`Backend`]) a test on SQLite and a test on PostgreSQL.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test]
            fn $case() {
                super::$case(super::Backend::sqlite())
            })*
        }
        mod on_postgres {
            $(#[test]
            fn $case() {
                super::$case(super::Backend::postgres())
            })*
        }
    };
}

on_both!(
    append_flush_read_back,
    a_stored_id_is_stored_once,
    history_and_rooms_survive_reopening,
    room_state_is_replaced_and_forgotten,
    before_pages_from_latest_without_gaps_or_duplicates,
    after_pages_from_the_start_without_gaps_or_duplicates,
    between_pages_in_both_directions,
    latest_with_a_bound_only_returns_newer_records,
    around_centres_on_the_bound,
    timestamp_bounds_exclude_the_whole_millisecond,
    messages_only_skips_events_without_shrinking_pages,
    private_history_is_only_under_the_pair_key,
    targets_lists_conversations_and_given_rooms_in_range,
    retention_by_count_keeps_the_newest_of_each_target,
    retention_by_count_counts_messages_not_comings_and_goings,
    retention_by_age_drops_old_records_and_empty_targets,
    appends_go_through_while_retention_runs,
    a_target_without_messages_is_known_until_one_is_appended,
    client_tags_and_redactions_are_kept_across_a_reopen,
    the_last_guest_number_only_grows_and_survives_reopening,
    accounts_markers_certificates_and_bans,
);

/// Some time in 2023, in milliseconds.
const T0: u64 = 1_700_000_000_000;

/// The id of the `seq`-th record made in millisecond `ms`.
fn id(ms: u64, seq: u64) -> MsgId {
    MsgId(ms << 20 | seq)
}

fn record(id: MsgId, target: &str, text: &str) -> Record {
    Record {
        id,
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

/// `n` records for `#paging`, three per millisecond, with a record for `#other` between each.
fn fill(store: &dyn Store, n: u64) -> Vec<MsgId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mine = id(T0 + i / 3, 2 * (i % 3));
        store.append(record(mine, "#paging", &format!("line {i}"))).unwrap();
        let other = id(T0 + i / 3, 2 * (i % 3) + 1);
        store.append(record(other, "#other", "noise")).unwrap();
        ids.push(mine);
    }
    store.flush().wait().unwrap();
    ids
}

fn ids(records: &[Record]) -> Vec<MsgId> {
    records.iter().map(|r| r.id).collect()
}

fn history(store: &dyn Store, selector: Selector, limit: usize) -> Vec<MsgId> {
    ids(&store.history("#paging", &selector, limit, Include::Everything).unwrap())
}

fn append_flush_read_back(backend: Backend) {
    let store = backend.open();
    let mut records = vec![
        record(id(T0, 0), "#Lobby", "hello"),
        record(id(T0, 1), "#Lobby", "world"),
        record(id(T0 + 1, 0), "#Lobby", "again"),
    ];
    records[1].kind = RecordKind::Action;
    records[2].kind = RecordKind::Kick;
    records[2].extra = "bob".into();
    for r in &records {
        store.append(r.clone()).unwrap();
    }
    store.flush().wait().unwrap();
    let back = store.history("#lobby", &Selector::Latest(None), 10, Include::Everything).unwrap();
    assert_eq!(back, records);
    assert_eq!(back[2].time(), T0 + 1);
    assert!(store.history("#elsewhere", &Selector::Latest(None), 10, Include::Everything).unwrap().is_empty());
    assert!(store.history("#lobby", &Selector::Latest(None), 0, Include::Everything).unwrap().is_empty());
}

fn a_stored_id_is_stored_once(backend: Backend) {
    let store = backend.open();
    let r = record(id(T0, 0), "#lobby", "hello");
    store.append(r.clone()).unwrap();
    store.append(r.clone()).unwrap();
    store.flush().wait().unwrap();
    store.append(r.clone()).unwrap();
    store.flush().wait().unwrap();
    assert_eq!(store.history("#lobby", &Selector::Latest(None), 10, Include::Everything).unwrap(), vec![r]);
}

fn history_and_rooms_survive_reopening(backend: Backend) {
    let room = RoomState {
        name: "#Lobby".into(),
        created: T0,
        topic: Some(Topic { text: "welcome".into(), set_by: "alice".into(), at: T0 + 5 }),
        modes: "+knt secret".into(),
        bans: vec![
            Ban { mask: "troll!*@*".into(), set_by: "alice".into(), at: T0 + 6 },
            Ban { mask: "*!*@203.0.113.*".into(), set_by: "bob".into(), at: T0 + 7 },
        ],
    };
    {
        let store = backend.open();
        fill(&*store, 100);
        store.save_room(room.clone()).unwrap();
        // No flush: dropping the store is a clean shutdown and must commit what is queued.
        store.append(record(id(T0 + 1000, 0), "#paging", "last words")).unwrap();
    }
    let store = backend.open();
    let all = store.history("#paging", &Selector::Latest(None), 1000, Include::Everything).unwrap();
    assert_eq!(all.len(), 101);
    assert_eq!(all[100].text, "last words");
    assert_eq!(store.rooms().unwrap(), vec![room]);
}

fn room_state_is_replaced_and_forgotten(backend: Backend) {
    let store = backend.open();
    let room = |name: &str, modes: &str, bans: &[&str]| RoomState {
        name: name.into(),
        created: T0,
        topic: None,
        modes: modes.into(),
        bans: bans.iter().map(|&mask| Ban { mask: mask.into(), set_by: "op".into(), at: T0 }).collect(),
    };
    store.save_room(room("#b", "+nt", &["a!*@*", "b!*@*"])).unwrap();
    store.save_room(room("#a", "+nt", &["c!*@*"])).unwrap();
    store.save_room(room("#B", "+mnt", &["b!*@*"])).unwrap();
    store.flush().wait().unwrap();
    assert_eq!(store.rooms().unwrap(), vec![room("#a", "+nt", &["c!*@*"]), room("#B", "+mnt", &["b!*@*"])]);
    store.forget_room("#b").unwrap();
    store.save_room(room("#c", "+nt", &[])).unwrap();
    store.flush().wait().unwrap();
    assert_eq!(store.rooms().unwrap(), vec![room("#a", "+nt", &["c!*@*"]), room("#c", "+nt", &[])]);
    store.save_room(room("#b", "+nt", &[])).unwrap();
    store.flush().wait().unwrap();
    assert_eq!(store.rooms().unwrap()[1], room("#b", "+nt", &[]), "a forgotten room's bans are gone");
}

fn before_pages_from_latest_without_gaps_or_duplicates(backend: Backend) {
    let store = backend.open();
    let all = fill(&*store, 1000);
    let mut page = history(&*store, Selector::Latest(None), 37);
    let mut seen: Vec<MsgId> = Vec::new();
    while let Some(&oldest) = page.first() {
        assert!(page.len() == 37 || seen.len() + page.len() == 1000);
        seen.splice(0..0, page.iter().copied());
        page = history(&*store, Selector::Before(Bound::MsgId(oldest)), 37);
    }
    assert_eq!(seen, all);
}

fn after_pages_from_the_start_without_gaps_or_duplicates(backend: Backend) {
    let store = backend.open();
    let all = fill(&*store, 1000);
    let mut page = history(&*store, Selector::After(Bound::Time(T0 - 1)), 37);
    let mut seen: Vec<MsgId> = Vec::new();
    while let Some(&newest) = page.last() {
        assert!(page.len() == 37 || seen.len() + page.len() == 1000);
        seen.extend(&page);
        page = history(&*store, Selector::After(Bound::MsgId(newest)), 37);
    }
    assert_eq!(seen, all);
}

fn between_pages_in_both_directions(backend: Backend) {
    let store = backend.open();
    let all = fill(&*store, 1000);
    let (low, high) = (all[100], all[899]);
    let inside = &all[101..899];

    let mut seen: Vec<MsgId> = Vec::new();
    let mut from = low;
    loop {
        let page = history(&*store, Selector::Between(Bound::MsgId(from), Bound::MsgId(high)), 37);
        let Some(&newest) = page.last() else { break };
        seen.extend(&page);
        from = newest;
    }
    assert_eq!(seen, inside);

    let mut seen: Vec<MsgId> = Vec::new();
    let mut from = high;
    loop {
        let page = history(&*store, Selector::Between(Bound::MsgId(from), Bound::MsgId(low)), 37);
        let Some(&oldest) = page.first() else { break };
        assert!(page.windows(2).all(|w| w[0] < w[1]), "pages are ascending");
        seen.splice(0..0, page.iter().copied());
        from = oldest;
    }
    assert_eq!(seen, inside);

    let same = Bound::MsgId(all[5]);
    assert!(history(&*store, Selector::Between(same, same), 10).is_empty());
}

fn latest_with_a_bound_only_returns_newer_records(backend: Backend) {
    let store = backend.open();
    let all = fill(&*store, 100);
    let after = Some(Bound::MsgId(all[89]));
    assert_eq!(history(&*store, Selector::Latest(after), 5), all[95..]);
    assert_eq!(history(&*store, Selector::Latest(after), 50), all[90..]);
    assert_eq!(history(&*store, Selector::Latest(None), 5), all[95..]);
}

fn around_centres_on_the_bound(backend: Backend) {
    let store = backend.open();
    let all = fill(&*store, 100);
    let around = |at, limit| history(&*store, Selector::Around(Bound::MsgId(at)), limit);
    assert_eq!(around(all[50], 5), all[48..53], "two before, itself, two after");
    assert_eq!(around(all[50], 4), all[48..52]);
    assert_eq!(around(all[50], 1), all[50..51], "the message itself");
    assert_eq!(around(all[1], 5), all[0..5], "after fills in for a short start");
    assert_eq!(around(all[98], 5), all[95..100], "before fills in for a short end");
    assert_eq!(around(all[50], 500), all, "everything when the limit allows");
}

fn timestamp_bounds_exclude_the_whole_millisecond(backend: Backend) {
    let store = backend.open();
    // Records 30, 31 and 32 share millisecond T0 + 10.
    let all = fill(&*store, 100);
    let at = Bound::Time(T0 + 10);
    assert_eq!(history(&*store, Selector::Before(at), 3), all[27..30]);
    assert_eq!(history(&*store, Selector::After(at), 3), all[33..36]);
    assert_eq!(history(&*store, Selector::Latest(Some(at)), 1000), all[33..]);
    assert_eq!(history(&*store, Selector::Between(Bound::Time(T0 + 9), Bound::Time(T0 + 11)), 10), all[30..33]);
    assert_eq!(
        history(&*store, Selector::Between(Bound::Time(T0 + 11), Bound::Time(T0 + 9)), 2),
        all[31..33],
        "counted from the first bound: the newest two"
    );
    assert_eq!(history(&*store, Selector::Around(at), 4), all[28..32], "the millisecond itself starts the after side");
    // Bounds far outside the stored range, including ones no id can reach.
    assert_eq!(history(&*store, Selector::Before(Bound::Time(u64::MAX)), 1000), all);
    assert_eq!(history(&*store, Selector::Before(Bound::MsgId(MsgId(u64::MAX))), 1000), all);
    assert!(history(&*store, Selector::After(Bound::Time(u64::MAX)), 10).is_empty());
    assert!(history(&*store, Selector::Before(Bound::Time(0)), 10).is_empty());
}

fn messages_only_skips_events_without_shrinking_pages(backend: Backend) {
    let store = backend.open();
    let mut messages = Vec::new();
    for i in 0..300 {
        let mut r = record(id(T0 + i, 0), "#lobby", "x");
        if i % 3 == 0 {
            messages.push(r.id);
        } else {
            r.kind = [RecordKind::Join, RecordKind::Nick][i as usize % 2];
        }
        store.append(r).unwrap();
    }
    store.flush().wait().unwrap();
    let page = |selector| ids(&store.history("#lobby", &selector, 10, Include::Messages).unwrap());
    assert_eq!(page(Selector::Latest(None)), messages[90..]);
    assert_eq!(page(Selector::Before(Bound::MsgId(messages[90]))), messages[80..90]);
    assert_eq!(page(Selector::Around(Bound::MsgId(messages[50]))), messages[45..55]);
    let everything = store.history("#lobby", &Selector::Latest(None), 10, Include::Everything).unwrap();
    assert_eq!(everything.first().map(Record::time), Some(T0 + 290));
}

/// A private message from `from` to `to` in millisecond `ms`, recorded the way the hub records
/// it: under the pair's key, naming its recipient.
fn private(ms: u64, from: &str, to: &str, text: &str) -> Vec<Record> {
    let message = Record {
        nick: from.into(),
        user: "u".into(),
        host: "h".into(),
        extra: to.into(),
        ..record(id(ms, 0), &dm_key(from, to), text)
    };
    vec![message]
}

fn private_history_is_only_under_the_pair_key(backend: Backend) {
    let store = backend.open();
    for r in [
        private(T0, "Alice", "bob", "hi bob"),
        private(T0 + 1, "Bob", "alice", "hi alice"),
        private(T0 + 2, "alice", "carol", "psst"),
    ]
    .into_iter()
    .flatten()
    {
        store.append(r).unwrap();
    }
    store.flush().wait().unwrap();
    let texts = |target: &str| -> Vec<String> {
        store
            .history(target, &Selector::Latest(None), 10, Include::Everything)
            .unwrap()
            .into_iter()
            .map(|r| r.text)
            .collect()
    };
    assert_eq!(texts(&dm_key("bob", "ALICE")), ["hi bob", "hi alice"]);
    assert_eq!(texts(&dm_key("alice", "carol")), ["psst"]);
    for outsider in ["alice", "bob", "carol", "#alice", &dm_key("bob", "carol")] {
        assert!(texts(outsider).is_empty(), "{outsider:?} sees nothing");
    }
    let first = &store.history(&dm_key("alice", "bob"), &Selector::Latest(None), 1, Include::Everything).unwrap()[0];
    assert_eq!((first.nick.as_str(), first.extra.as_str()), ("Bob", "alice"));
}

fn targets_lists_conversations_and_given_rooms_in_range(backend: Backend) {
    let store = backend.open();
    for r in [
        private(T0 + 10, "Alice", "Bob", "1"),
        private(T0 + 20, "carol", "alice", "2"),
        private(T0 + 30, "bob", "carol", "not alice's"),
        private(T0 + 40, "alice", "bob", "3"),
    ]
    .into_iter()
    .flatten()
    {
        store.append(r).unwrap();
    }
    store.append(record(id(T0 + 25, 0), "#Rust", "x")).unwrap();
    store.append(record(id(T0 + 50, 0), "#secret", "y")).unwrap();
    store.flush().wait().unwrap();
    let targets = |nick, rooms: &[&str], from, to, limit| -> Vec<(String, u64)> {
        store
            .targets(nick, rooms, Bound::Time(from), Bound::Time(to), limit)
            .unwrap()
            .into_iter()
            .map(|t| (t.name, t.latest.millis()))
            .collect()
    };
    let all = [("carol".to_string(), T0 + 20), ("#Rust".to_string(), T0 + 25), ("bob".to_string(), T0 + 40)];
    assert_eq!(targets("ALICE", &["#rust"], T0, T0 + 100, 10), all);
    assert_eq!(targets("alice", &["#rust"], T0, T0 + 100, 2), all[..2]);
    assert_eq!(targets("alice", &["#rust"], T0 + 100, T0, 2), all[1..], "counted from the later bound");
    assert_eq!(targets("alice", &["#rust"], T0 + 20, T0 + 40, 10), all[1..2]);
    assert_eq!(targets("dave", &[], T0, T0 + 100, 10), [], "no one else's conversations");
}

fn retention_by_count_keeps_the_newest_of_each_target(backend: Backend) {
    let store = backend.open();
    let mut seq = 0;
    for (target, n) in [("#big", 5000), ("#small", 10), ("#mid", 50)] {
        for _ in 0..n {
            seq += 1;
            store.append(record(id(T0 + seq, 0), target, "x")).unwrap();
        }
    }
    store.flush().wait().unwrap();
    let policy = Retention { max_per_target: Some(20), max_age: None };
    assert_eq!(store.retain(policy).wait().unwrap(), 4980 + 30);
    for (target, kept, newest) in [("#big", 20, 5000), ("#small", 10, 5010), ("#mid", 20, 5060)] {
        let left = store.history(target, &Selector::Latest(None), 1000, Include::Everything).unwrap();
        assert_eq!(left.len(), kept, "{target}");
        assert_eq!(left.last().map(Record::time), Some(T0 + newest));
    }
    assert_eq!(store.retain(policy).wait().unwrap(), 0, "nothing left to do");
}

fn retention_by_count_counts_messages_not_comings_and_goings(backend: Backend) {
    let store = backend.open();
    let mut seq = 0;
    let mut next_id = || {
        seq += 1;
        id(T0 + seq, 0)
    };
    // 30 messages, each followed by a join, then a crowd passing through the door.
    for i in 0..30 {
        store.append(record(next_id(), "#door", &format!("said {i}"))).unwrap();
        store.append(Record { kind: RecordKind::Join, ..record(next_id(), "#door", "") }).unwrap();
    }
    for _ in 0..200 {
        store.append(Record { kind: RecordKind::Quit, ..record(next_id(), "#door", "bye") }).unwrap();
    }
    store.flush().wait().unwrap();
    let policy = Retention { max_per_target: Some(10), max_age: None };
    store.retain(policy).wait().unwrap();
    let left = store.history("#door", &Selector::Latest(None), 1000, Include::Everything).unwrap();
    let said: Vec<&str> = left.iter().filter(|r| r.kind == RecordKind::Privmsg).map(|r| &r.text[..]).collect();
    let expected: Vec<String> = (20..30).map(|i| format!("said {i}")).collect();
    assert_eq!(said, expected, "the newest ten messages stay, whatever happened at the door since");
    assert_eq!(left.len() - said.len(), 10, "ten room events stay");
    assert!(left.iter().rev().take(10).all(|r| r.kind == RecordKind::Quit), "the newest events");
}

fn retention_by_age_drops_old_records_and_empty_targets(backend: Backend) {
    let store = backend.open();
    let now = now_millis();
    let hours_ago = |h: u64| now - h * 3_600_000;
    for i in 0..3000 {
        store.append(record(id(hours_ago(3), i), "#old", "x")).unwrap();
    }
    store.append(record(id(hours_ago(2), 0), "#mixed", "old")).unwrap();
    store.append(record(id(now, 0), "#mixed", "new")).unwrap();
    store.flush().wait().unwrap();
    let policy = Retention { max_per_target: None, max_age: Some(Duration::from_secs(3600)) };
    assert_eq!(store.retain(policy).wait().unwrap(), 3001);
    assert!(store.history("#old", &Selector::Latest(None), 10, Include::Everything).unwrap().is_empty());
    let mixed = store.history("#mixed", &Selector::Latest(None), 10, Include::Everything).unwrap();
    assert_eq!(mixed.iter().map(|r| &r.text[..]).collect::<Vec<_>>(), ["new"]);
    let names: Vec<String> = store
        .targets("alice", &["#old", "#mixed"], Bound::Time(0), Bound::Time(u64::MAX), 10)
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["#mixed"]);
}

fn appends_go_through_while_retention_runs(backend: Backend) {
    let store = Arc::new(backend.open());
    for i in 0..20_000 {
        store.append(record(id(T0, i), "#old", "x")).unwrap();
    }
    store.flush().wait().unwrap();
    let retention = store.retain(Retention { max_per_target: Some(1), max_age: None });
    store.append(record(id(T0 + 1, 0), "#new", "during")).unwrap();
    let flushed = store.flush();
    assert_eq!(retention.wait().unwrap(), 19_999);
    flushed.wait().unwrap();
    assert_eq!(store.history("#new", &Selector::Latest(None), 10, Include::Everything).unwrap().len(), 1);
}

#[test]
fn a_failed_write_is_kept_and_retried_until_it_is_stored() {
    let scratch = Scratch::new();
    let store = scratch.open();
    let side = rusqlite::Connection::open(scratch.0.join(SqliteStore::FILE_NAME)).unwrap();
    side.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.text = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'refused by test'); END;",
    )
    .unwrap();
    assert!(!store.degraded());
    store.append(record(id(T0, 0), "#lobby", "poison")).unwrap();
    let err = store.flush().wait().unwrap_err();
    assert!(matches!(err, StoreError::Paused { waiting: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("refused by test"), "{err}");
    assert!(store.degraded());
    // What comes meanwhile waits behind it.
    store.append(record(id(T0, 1), "#lobby", "fine")).unwrap();
    assert!(matches!(store.flush().wait(), Err(StoreError::Paused { waiting: 2, .. })));
    assert_eq!(store.queued(), 2);
    side.execute_batch("DROP TRIGGER refuse").unwrap();
    // The writer tries again on its own, within [`RETRY_MAX`]; nothing tells when it has.
    let deadline = std::time::Instant::now() + sqlite::RETRY_MAX * 5;
    while store.flush().wait().is_err() {
        assert!(std::time::Instant::now() < deadline, "writes did not resume");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!store.degraded());
    assert_eq!(store.queued(), 0);
    let stored = store.history("#lobby", &Selector::Latest(None), 10, Include::Everything).unwrap();
    assert_eq!(stored.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), ["poison", "fine"]);
}

#[test]
fn a_clients_view_of_a_store_error_names_no_path() {
    let path = PathBuf::from("/srv/secret/charla.db");
    let errors = [
        StoreError::Corrupt { path: path.clone(), reason: "database disk image is malformed".into() },
        StoreError::Database { path: path.clone(), reason: "disk I/O error".into() },
        StoreError::NotWritable { dir: path.clone(), reason: "read-only".into() },
        StoreError::Paused { waiting: 3, reason: format!("{} is full", path.display()) },
    ];
    for error in errors {
        assert!(error.to_string().contains("/srv/secret"), "the log's text has the details: {error}");
        let brief = error.brief();
        assert!(!brief.contains("/srv") && !brief.contains("disk image") && !brief.contains("I/O"), "{brief}");
    }
}

#[test]
fn a_file_that_is_not_a_database_is_reported_as_such() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(&scratch.0).unwrap();
    let junk: Vec<u8> = (0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let path = scratch.0.join(SqliteStore::FILE_NAME);
    std::fs::write(&path, junk).unwrap();
    let err = SqliteStore::open(&scratch.0).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("move it aside"), "{message}");
}

/// Permission bits do not stop root, and tests often run as root, so these directories are
/// unwritable for reasons root cannot override.
#[test]
fn an_unwritable_data_directory_is_reported_as_such() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(&scratch.0).unwrap();
    let file = scratch.0.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    // Below a regular file, no directory can ever be made.
    let under_file = file.join("data");
    let err = SqliteStore::open(&under_file).unwrap_err();
    assert!(matches!(err, StoreError::NotWritable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&under_file.display().to_string()) && message.contains("--data-dir"), "{message}");
    // An existing directory where no one may create files: procfs refuses even root.
    if cfg!(target_os = "linux") {
        let err = SqliteStore::open(Path::new("/proc")).unwrap_err();
        assert!(matches!(err, StoreError::NotWritable { .. }), "{err:?}");
    }
}

#[test]
fn the_schema_version_is_recorded_and_a_newer_one_refused() {
    let scratch = Scratch::new();
    drop(scratch.open());
    let path = scratch.0.join(SqliteStore::FILE_NAME);
    let version =
        |conn: &rusqlite::Connection| -> i64 { conn.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap() };
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert!(version(&conn) >= 1);
    conn.execute_batch(
        "INSERT INTO messages (id, target_key, target, kind, nick, user, host, text, extra) \
         VALUES (1700000000000 << 20 | 5, '#a', '#a', 'privmsg', 'n', 'u', 'h', 't', '')",
    )
    .unwrap();
    let time: i64 = conn.query_row("SELECT time FROM messages", [], |row| row.get(0)).unwrap();
    assert_eq!(time, 1_700_000_000_000, "time is readable by hand");
    conn.pragma_update(None, "user_version", version(&conn) + 1).unwrap();
    drop(conn);
    let err = SqliteStore::open(&scratch.0).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { .. }), "{err:?}");
    assert!(err.to_string().contains("upgrade charla"), "{err}");
}

#[test]
fn record_kinds_have_names() {
    for kind in RecordKind::ALL {
        assert_eq!(RecordKind::from_name(kind.as_str()), Some(kind));
    }
}

#[tokio::test]
async fn flush_can_be_awaited() {
    let scratch = Scratch::new();
    let store = scratch.open();
    store.append(record(id(T0, 0), "#lobby", "hi")).unwrap();
    store.flush().await.unwrap();
    assert_eq!(store.history("#lobby", &Selector::Latest(None), 1, Include::Everything).unwrap().len(), 1);
}

#[test]
fn storing_a_message_builds_no_temporary_table() {
    let scratch = Scratch::new();
    drop(scratch.open());
    let conn = rusqlite::Connection::open(scratch.0.join(SqliteStore::FILE_NAME)).unwrap();
    // Every insert evaluates the condition of the partial index `messages_said`; written as
    // `kind IN (…)`, it made SQLite open a temporary table for the list at each insert.
    let sql = "EXPLAIN INSERT OR IGNORE INTO messages (id, target_key, target, kind, nick, user, host, text, extra, tags) \
               VALUES (1, '#a', '#a', 'privmsg', 'n', 'u', 'h', 'hi', '', '')";
    let ops: Vec<String> =
        conn.prepare(sql).unwrap().query_map([], |row| row.get::<_, String>(1)).unwrap().map(Result::unwrap).collect();
    assert!(ops.iter().any(|op| op == "Insert"), "{ops:?}");
    assert!(!ops.iter().any(|op| op == "OpenEphemeral"), "{ops:?}");
}

#[test]
fn history_queries_are_compiled_once_and_use_their_index() {
    let scratch = Scratch::new();
    let store = scratch.open();
    for seq in 0..5 {
        store.append(record(id(T0, seq), "#a", "hi")).unwrap();
    }
    store.flush().wait().unwrap();
    let reader = sqlite::open_reader(store.path()).unwrap();
    let both: &[&str] = &["messages_said", "messages_events"];
    for (include, indexes) in [(Include::Messages, &["messages_said"][..]), (Include::Everything, both)] {
        let sql = sqlite::range_sql(include, true);
        let plan: Vec<String> = reader
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params!["#a", -1, i64::MAX, 20], |row| row.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for index in indexes {
            assert!(plan.iter().any(|step| step.contains(&format!("USING INDEX {index} "))), "{include:?}: {plan:?}");
        }
        // Read in the indexes' order, not sorted afterwards.
        assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "{include:?}: {plan:?}");
        // Each read binds another limit; none may make SQLite compile the query again.
        for limit in 1..=3 {
            let mut query = reader.prepare_cached(sql).unwrap();
            let rows = query.query_map(rusqlite::params!["#a", -1, i64::MAX, limit], |_| Ok(())).unwrap().count();
            assert_eq!(rows, limit as usize);
            assert_eq!(query.get_status(rusqlite::StatementStatus::RePrepare), 0, "{include:?}, limit {limit}");
        }
    }
}

#[test]
fn a_flush_does_not_wait_for_a_batch_to_gather() {
    let scratch = Scratch::new();
    let store = SqliteStore::open_gathering(&scratch.0, Duration::from_secs(3600)).unwrap();
    // The first record is committed at once; the writer then lets the next ones gather for an
    // hour, and each flush must end that wait.
    for seq in 0..3 {
        store.append(record(id(T0, seq), "#paging", "hi")).unwrap();
        store.flush().wait().unwrap();
        assert_eq!(history(&store, Selector::Latest(None), 10).len(), seq as usize + 1);
    }
    for seq in 3..6 {
        store.append(record(id(T0, seq), "#paging", "hi")).unwrap();
    }
    store.flush().wait().unwrap();
    assert_eq!(history(&store, Selector::Latest(None), 10).len(), 6);
}

#[test]
fn dropping_the_store_writes_what_was_gathering() {
    let scratch = Scratch::new();
    let store = SqliteStore::open_gathering(&scratch.0, Duration::from_secs(3600)).unwrap();
    store.append(record(id(T0, 0), "#paging", "hi")).unwrap();
    store.flush().wait().unwrap();
    // The writer lets these gather for an hour, unless the store closes.
    store.append(record(id(T0, 1), "#paging", "hi")).unwrap();
    store.append(record(id(T0, 2), "#paging", "hi")).unwrap();
    drop(store);
    assert_eq!(history(&scratch.open(), Selector::Latest(None), 10), [id(T0, 0), id(T0, 1), id(T0, 2)]);
}

/// A record of `kind` for `target`.
fn event(id: MsgId, target: &str, kind: RecordKind) -> Record {
    Record { kind, ..record(id, target, "") }
}

fn a_target_without_messages_is_known_until_one_is_appended(backend: Backend) {
    let store = backend.open();
    let messages = |store: &dyn Store, target| {
        ids(&store.history(target, &Selector::Latest(None), 10, Include::Messages).unwrap())
    };
    store.append(event(id(T0, 0), "#quiet", RecordKind::Join)).unwrap();
    store.flush().wait().unwrap();
    assert!(messages(&*store, "#quiet").is_empty());
    // Known now, and it changes nothing: the join is there for whoever asks for events.
    assert!(messages(&*store, "#Quiet").is_empty());
    assert_eq!(ids(&store.history("#quiet", &Selector::Latest(None), 10, Include::Everything).unwrap()), [id(T0, 0)]);
    store.append(record(id(T0, 1), "#QUIET", "at last")).unwrap();
    store.flush().wait().unwrap();
    assert_eq!(messages(&*store, "#quiet"), [id(T0, 1)]);
}

#[test]
fn a_read_before_a_message_is_committed_does_not_make_its_target_known_silent() {
    let scratch = Scratch::new();
    let store = SqliteStore::open_gathering(&scratch.0, Duration::from_secs(3600)).unwrap();
    store.append(event(id(T0, 0), "#late", RecordKind::Join)).unwrap();
    store.flush().wait().unwrap();
    // The writer lets this one gather for an hour: a read now does not see it.
    store.append(record(id(T0, 1), "#late", "hello")).unwrap();
    assert!(store.history("#late", &Selector::Latest(None), 10, Include::Messages).unwrap().is_empty());
    store.flush().wait().unwrap();
    assert_eq!(ids(&store.history("#late", &Selector::Latest(None), 10, Include::Messages).unwrap()), [id(T0, 1)]);
}

fn client_tags_and_redactions_are_kept_across_a_reopen(backend: Backend) {
    let store = backend.open();
    let reply = vec![("+draft/reply".to_string(), Some("abc".to_string()))];
    store.append(Record { tags: reply.clone(), ..record(id(T0, 0), "#a", "a reply; with spaces") }).unwrap();
    let react = vec![("+draft/react".to_string(), Some("👍".to_string()))];
    store.append(Record { kind: RecordKind::TagMsg, tags: react.clone(), ..record(id(T0, 1), "#a", "") }).unwrap();
    store.append(record(id(T0, 2), "#a", "regrettable")).unwrap();
    store.flush().wait().unwrap();
    drop(store);

    let store = backend.open();
    let all = store.history("#a", &Selector::Latest(None), 10, Include::Messages).unwrap();
    assert_eq!(all.iter().map(|r| r.tags.clone()).collect::<Vec<_>>(), [reply, react, vec![]]);
    assert_eq!(all[1].kind, RecordKind::TagMsg, "a reaction counts as a message");
    // A redaction in another target changes nothing; in its own, the text goes.
    store.redact("#b", id(T0, 2), id(T0, 3)).unwrap();
    store.flush().wait().unwrap();
    assert!(!store.message("#a", id(T0, 2)).unwrap().unwrap().redacted);
    store.redact("#A", id(T0, 2), id(T0, 4)).unwrap();
    store.flush().wait().unwrap();
    assert!(store.committed() >= id(T0, 4), "a read waiting for the redaction sees it done");
    drop(store);
    let store = backend.open();
    let gone = store.message("#a", id(T0, 2)).unwrap().expect("still there, redacted");
    assert!(gone.redacted && gone.text.is_empty(), "{gone:?}");
    assert_eq!(store.message("#b", id(T0, 2)).unwrap(), None, "found only in its own target");
}

#[test]
fn a_version_3_database_gains_tags_and_redactions() {
    let scratch = Scratch::new();
    let store = scratch.open();
    store.append(record(id(T0, 0), "#a", "from before")).unwrap();
    store.flush().wait().unwrap();
    drop(store);
    // Take the database back to what version 3 wrote.
    let conn = rusqlite::Connection::open(scratch.0.join(SqliteStore::FILE_NAME)).unwrap();
    conn.execute_batch(
        "DROP TABLE counters;
         DROP INDEX messages_said; ALTER TABLE messages DROP COLUMN tags; ALTER TABLE messages DROP COLUMN redacted;
         CREATE INDEX messages_said ON messages (target_key, id) WHERE kind IN ('privmsg', 'notice', 'action');
         DROP TABLE accounts; DROP TABLE read_markers; DROP TABLE server_bans; DROP TABLE account_certs;
         DROP INDEX messages_events; CREATE INDEX messages_by_target ON messages (target_key, id);
         PRAGMA user_version = 3;",
    )
    .unwrap();
    drop(conn);
    let store = scratch.open();
    let old = store.history("#a", &Selector::Latest(None), 10, Include::Messages).unwrap();
    assert_eq!(
        (old.len(), old[0].text.as_str(), old[0].tags.is_empty(), old[0].redacted),
        (1, "from before", true, false)
    );
    store.redact("#a", id(T0, 0), id(T0, 1)).unwrap();
    store.flush().wait().unwrap();
    assert!(store.message("#a", id(T0, 0)).unwrap().unwrap().redacted);
}

#[test]
fn a_version_8_database_keeps_every_record_in_one_index_of_two() {
    let scratch = Scratch::new();
    let store = scratch.open();
    store.append(record(id(T0, 0), "#a", "said")).unwrap();
    store.append(event(id(T0, 1), "#a", RecordKind::Join)).unwrap();
    store.append(record(id(T0, 2), "#a", "said again")).unwrap();
    store.flush().wait().unwrap();
    drop(store);
    // Take the database back to what version 8 wrote: one index of every record besides
    // the one of messages.
    let path = scratch.0.join(SqliteStore::FILE_NAME);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP INDEX messages_events; CREATE INDEX messages_by_target ON messages (target_key, id);
         PRAGMA user_version = 8;",
    )
    .unwrap();
    drop(conn);
    let store = scratch.open();
    store.append(event(id(T0, 3), "#a", RecordKind::Part)).unwrap();
    store.flush().wait().unwrap();
    let everything = store.history("#a", &Selector::Latest(None), 10, Include::Everything).unwrap();
    assert_eq!(ids(&everything), vec![id(T0, 0), id(T0, 1), id(T0, 2), id(T0, 3)]);
    let said = store.history("#a", &Selector::Latest(None), 10, Include::Messages).unwrap();
    assert_eq!(ids(&said), vec![id(T0, 0), id(T0, 2)]);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    // Each partial index counted on its own: what it holds must match its condition.
    let count = |index: &str, kinds: String| -> i64 {
        let sql = format!("SELECT count(*) FROM messages INDEXED BY {index} WHERE target_key = '#a' AND {kinds}");
        conn.query_row(&sql, [], |row| row.get(0)).unwrap()
    };
    let said = count("messages_said", sqlite::said_condition());
    assert_eq!((said, count("messages_events", sqlite::events_condition())), (2, 2));
    let old: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'messages_by_target'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(old, 0, "the index of every record is gone");
}

fn the_last_guest_number_only_grows_and_survives_reopening(backend: Backend) {
    let store = backend.open();
    assert_eq!(store.last_guest().unwrap(), 0);
    store.save_guest(7).unwrap();
    store.save_guest(3).unwrap();
    store.flush().wait().unwrap();
    assert_eq!(store.last_guest().unwrap(), 7);
    drop(store);
    assert_eq!(backend.open().last_guest().unwrap(), 7);
}

fn accounts_markers_certificates_and_bans(backend: Backend) {
    let accounts = backend.accounts();
    for name in ["Alice", "bob"] {
        let account = StoredAccount { name: name.into(), hash: format!("$argon2id${name}"), created: T0 };
        assert!(accounts.create_account(&account).unwrap());
    }
    let taken = StoredAccount { name: "ALICE".into(), hash: "other".into(), created: T0 + 1 };
    assert!(!accounts.create_account(&taken).unwrap(), "the name is taken, whatever its case");
    assert_eq!(
        accounts.account("alice").unwrap().map(|a| (a.name, a.hash)),
        Some(("Alice".into(), "$argon2id$Alice".into()))
    );
    assert_eq!(accounts.account("carol").unwrap(), None);
    assert_eq!(accounts.account_names().unwrap(), ["Alice", "bob"]);

    assert_eq!(accounts.read_marker("alice", "#Lobby").unwrap(), None);
    assert_eq!(accounts.set_read_marker("ALICE", "#Lobby", T0 + 5).unwrap(), T0 + 5);
    assert_eq!(accounts.set_read_marker("alice", "#lobby", T0 + 2).unwrap(), T0 + 5, "never back");
    assert_eq!(accounts.read_marker("alice", "#LOBBY").unwrap(), Some(T0 + 5));
    assert_eq!(accounts.read_markers("Alice").unwrap(), [("#lobby".to_string(), T0 + 5)]);

    let fp = "ab".repeat(32);
    assert!(accounts.add_cert("alice", &fp, 5).unwrap());
    assert!(!accounts.add_cert("bob", &fp, 6).unwrap(), "taken by alice");
    assert_eq!(accounts.cert_account(&fp).unwrap().as_deref(), Some("Alice"));
    assert_eq!(accounts.certs("ALICE").unwrap(), std::slice::from_ref(&fp));
    assert!(!accounts.remove_cert("bob", &fp).unwrap(), "not bob's to remove");
    assert!(accounts.remove_cert("alice", &fp).unwrap());
    assert_eq!(accounts.cert_account(&fp).unwrap(), None);

    let ban = |mask: &str, reason: &str, at| ServerBan {
        mask: mask.into(),
        reason: reason.into(),
        set_by: "oper".into(),
        at,
        until: Some(at + 1000),
    };
    accounts.save_server_ban(&ban("troll!*@*", "first", T0)).unwrap();
    accounts.save_server_ban(&ban("*!*@203.0.113.*", "net", T0 + 1)).unwrap();
    accounts.save_server_ban(&ban("TROLL!*@*", "again", T0 + 2)).unwrap();
    assert_eq!(
        accounts.server_bans().unwrap(),
        [ban("*!*@203.0.113.*", "net", T0 + 1), ban("TROLL!*@*", "again", T0 + 2)]
    );
    accounts.forget_server_ban("troll!*@*").unwrap();
    assert_eq!(accounts.server_bans().unwrap(), [ban("*!*@203.0.113.*", "net", T0 + 1)]);
}
