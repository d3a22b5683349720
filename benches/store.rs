//! Writer throughput of the SQLite history store: 100,000 records appended to a fresh database
//! and flushed, i.e. committed. Criterion reports the rate as `thrpt` in elements (records) per
//! second; the target is at least 100,000 records/s.
//!
//! Run with `cargo bench --bench store`.

use std::path::PathBuf;
use std::time::Duration;

use charla::hub::MsgId;
use charla::store::{Record, RecordKind, SqliteStore, Store};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

const RECORDS: u64 = 100_000;
const ROOMS: u64 = 100;

/// A fresh data directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Chat-like records: 100 rooms in turn, a few senders, one-line messages, several per ms.
fn records() -> Vec<Record> {
    let start = 1_700_000_000_000u64 << 20;
    (0..RECORDS)
        .map(|i| Record {
            id: MsgId(start + i * 300),
            target: format!("#room-{}", i % ROOMS),
            kind: RecordKind::Privmsg,
            nick: format!("user{}", i % 37).into(),
            user: "~u".into(),
            host: "203.0.113.7".into(),
            text: format!("message number {i}: the quick brown fox jumps over the lazy dog"),
            extra: String::new(),
            tags: Vec::new(),
            redacted: false,
        })
        .collect()
}

/// Appends, first letting the writer catch up when its queue is nearly full (as a server
/// under overload would have to), so the writer always has work and the rate measured is the
/// writer's.
fn append(store: &SqliteStore, record: Record) {
    while store.queued() > 50_000 {
        std::thread::sleep(Duration::from_micros(200));
    }
    store.append(record).expect("append");
}

fn append_and_flush(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    group
        .throughput(Throughput::Elements(RECORDS))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    let mut run = 0;
    group.bench_function("append_100k_and_flush", |b| {
        b.iter_batched(
            || {
                run += 1;
                let dir = std::env::temp_dir().join(format!("charla-bench-store-{}-{run}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                let store = SqliteStore::open(&dir).expect("bench store opens");
                (Scratch(dir), store, records())
            },
            |(dir, store, records)| {
                for record in records {
                    append(&store, record);
                }
                store.flush().wait().expect("flush");
                (store, dir)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, append_and_flush);
criterion_main!(benches);
