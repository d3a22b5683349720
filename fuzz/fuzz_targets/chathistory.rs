//! `CHATHISTORY` selectors, parsed as the IRC session parses them and answered by the real
//! SQLite store, against a model of what the answer must be.
//!
//! The input is what follows `CHATHISTORY ` on a client's line: a subcommand, a target, one
//! or two bounds (`*`, `msgid=…`, `timestamp=…`), a limit. The store (one per process, in a
//! temporary directory) holds a fixed set of records in `#room` and `#other`, a few in each
//! millisecond, messages and joins. Checked:
//! - parsing the bounds and running the query never panic and never fail;
//! - the answer is exactly what the documented meaning of the selector gives on the records
//!   (`Selector` in src/store/mod.rs: exclusive bounds, oldest or newest first, `AROUND`'s
//!   window), for any limit, for messages only or for everything.
#![no_main]

use std::sync::{Arc, OnceLock};

use charla::hub::MsgId;
use charla::hub::text::fold;
use charla::proto::irc::history::{MAX_LIMIT, selector};
use charla::proto::irc::message::Message;
use charla::store::{Bound, Include, Record, RecordKind, Selector, SqliteStore, Store};
use libfuzzer_sys::fuzz_target;

/// The first record's millisecond: 2023-11-14T22:13:20.000Z.
const BASE_MS: u64 = 1_700_000_000_000;
const SEQ_BITS: u32 = 20;

struct Fixture {
    store: Arc<SqliteStore>,
    records: Vec<Record>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("charla-fuzz-chathistory-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let store = Arc::new(SqliteStore::open(&dir).expect("a store"));
        let mut records = Vec::new();
        for i in 0..90u64 {
            let ms = BASE_MS + i / 3;
            let id = MsgId((ms << SEQ_BITS) | (i % 3));
            let target = if i % 5 == 4 { "#other" } else { "#Room" };
            let kind = if i % 4 == 3 { RecordKind::Join } else { RecordKind::Privmsg };
            let record = Record {
                id,
                target: target.into(),
                kind,
                nick: "nick".into(),
                user: "user".into(),
                host: "host".into(),
                text: format!("line {i}"),
                extra: String::new(),
                tags: Default::default(),
                redacted: false,
            };
            store.append(record.clone()).expect("append");
            records.push(record);
        }
        store.flush().wait().expect("flush");
        Fixture { store, records }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(message) = Message::parse(&format!("CHATHISTORY {text}")) else { return };
    let params: Vec<&str> = message.params.iter().map(|p| p.as_str()).collect();
    let [sub, target, rest @ ..] = &params[..] else { return };
    let sub = sub.to_ascii_uppercase();
    let Some((limit, bounds)) = rest.split_last() else { return };
    let Some(selector) = selector(&sub, bounds) else { return };
    let Some(limit) = limit.parse::<usize>().ok().filter(|&l| l > 0) else { return };
    let limit = limit.min(MAX_LIMIT);

    let fixture = fixture();
    for include in [Include::Messages, Include::Everything] {
        let answer = fixture.store.history(target, &selector, limit, include).expect("a history read");
        let ids: Vec<MsgId> = answer.iter().map(|r| r.id).collect();
        let candidates: Vec<&Record> = fixture
            .records
            .iter()
            .filter(|r| fold(&r.target) == fold(target) && (include == Include::Everything || r.kind.is_message()))
            .collect();
        let expected = model(&selector, limit, &candidates);
        assert_eq!(ids, expected, "{selector:?} limit {limit} {include:?} on {target:?}");
    }
});

/// Whether a record lies after the bound (exclusive: a time bound covers its millisecond).
fn after(bound: Bound, r: &Record) -> bool {
    match bound {
        Bound::MsgId(id) => r.id > id,
        Bound::Time(ms) => r.id.millis() > ms,
    }
}

fn before(bound: Bound, r: &Record) -> bool {
    match bound {
        Bound::MsgId(id) => r.id < id,
        Bound::Time(ms) => r.id.millis() < ms,
    }
}

/// The first id a bound covers, to tell which of two bounds comes first.
fn first_id(bound: Bound) -> u64 {
    match bound {
        Bound::MsgId(id) => id.0,
        Bound::Time(ms) => ms.saturating_mul(1 << SEQ_BITS),
    }
}

/// What `Selector` documents, on `records` in id order.
fn model(selector: &Selector, limit: usize, records: &[&Record]) -> Vec<MsgId> {
    let ids = |rs: Vec<&&Record>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let oldest = |rs: Vec<&&Record>| ids(rs.into_iter().take(limit).collect());
    let newest = |rs: Vec<&&Record>| {
        let skip = rs.len().saturating_sub(limit);
        ids(rs.into_iter().skip(skip).collect())
    };
    match *selector {
        Selector::Latest(None) => newest(records.iter().collect()),
        Selector::Latest(Some(b)) => newest(records.iter().filter(|r| after(b, r)).collect()),
        Selector::Before(b) => newest(records.iter().filter(|r| before(b, r)).collect()),
        Selector::After(b) => oldest(records.iter().filter(|r| after(b, r)).collect()),
        Selector::Between(from, to) if first_id(from) <= first_id(to) => {
            oldest(records.iter().filter(|r| after(from, r) && before(to, r)).collect())
        }
        Selector::Between(from, to) => newest(records.iter().filter(|r| after(to, r) && before(from, r)).collect()),
        Selector::Around(b) => {
            let (earlier, later): (Vec<&&Record>, Vec<&&Record>) = records.iter().partition(|r| before(b, r));
            let take_before = earlier.len().min((limit / 2).max(limit.saturating_sub(later.len())));
            let take_after = later.len().min(limit - take_before);
            let mut window = ids(earlier[earlier.len() - take_before..].to_vec());
            window.extend(later.iter().take(take_after).map(|r| r.id));
            window
        }
    }
}
