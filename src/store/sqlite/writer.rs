//! The writer thread: the one owner of the writing connection. See the
//! [parent module](super) for how it batches and what that means for durability.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, Params, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::{MAX_BATCH, RETAIN_CHUNK, classify, said_kinds, sql_int, sql_limit, tags_to_sql};
use crate::hub::MsgId;
use crate::hub::event::now_millis;
use crate::hub::text::fold;
use crate::store::{Bound, Record, Retention, RoomState, StoreError, dm_parties};

/// What the store asks of its writer.
pub(super) enum Command {
    Append(Record),
    SaveRoom(RoomState),
    /// Forget the room with this folded name.
    ForgetRoom(String),
    /// Guest number this was given out.
    SaveGuest(u64),
    /// Redact the record with this id of the target with this folded name; the last id is the
    /// redaction's own, which counts as committed with it.
    Redact(String, MsgId, MsgId),
    /// Answer once everything before this is committed.
    Flush(oneshot::Sender<Result<(), StoreError>>),
    Retain(Retention, oneshot::Sender<Result<usize, StoreError>>),
}

type Answer<T> = oneshot::Sender<Result<T, StoreError>>;

const INSERT: &str = "INSERT OR IGNORE INTO messages \
    (id, target_key, target, kind, nick, user, host, text, extra, tags) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

const REDACT: &str = "UPDATE messages SET text = '', tags = '', redacted = 1 WHERE id = ?1 AND target_key = ?2";

const TOUCH_TARGET: &str = "INSERT INTO targets (owner, key, name, latest) VALUES (?1, ?2, ?3, ?4) \
    ON CONFLICT (owner, key) DO UPDATE SET name = excluded.name, latest = excluded.latest \
    WHERE excluded.latest > targets.latest";

const SAVE_ROOM: &str = "INSERT OR REPLACE INTO rooms \
    (key, name, created, topic, topic_by, topic_at, modes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

const SAVE_GUEST: &str = "INSERT INTO counters (name, value) VALUES ('guest', ?1) \
    ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)";

const FORGET_ROOM: &str = "DELETE FROM rooms WHERE key = ?1";

const FORGET_BANS: &str = "DELETE FROM room_bans WHERE room_key = ?1";

const SAVE_BAN: &str = "INSERT INTO room_bans (room_key, position, mask, set_by, set_at) VALUES (?1, ?2, ?3, ?4, ?5)";

const DELETE_OLDER: &str =
    "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE id < ?1 ORDER BY id LIMIT ?2)";

const DELETE_UP_TO: &str = "DELETE FROM messages WHERE id IN \
    (SELECT id FROM messages WHERE target_key = ?1 AND id <= ?2 ORDER BY id LIMIT ?3)";

/// The queries of retention by count, for one kind of record (`said`: messages; else room
/// events): the newest record of a target that the count drops (`OFFSET` = the count kept), and
/// the delete of everything up to it that the count applies to. Dropping a message drops the room
/// events before it too; the messages' `kind` condition is the partial index's.
fn count_retention_sql(said: bool) -> (String, String) {
    let kinds = format!("kind {} {}", if said { "IN" } else { "NOT IN" }, said_kinds());
    let newest_dropped =
        format!("SELECT id FROM messages WHERE target_key = ?1 AND {kinds} ORDER BY id DESC LIMIT 1 OFFSET ?2");
    let delete = if said {
        DELETE_UP_TO.to_string()
    } else {
        format!(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages \
             WHERE target_key = ?1 AND id <= ?2 AND {kinds} ORDER BY id LIMIT ?3)"
        )
    };
    (newest_dropped, delete)
}

const FORGET_EMPTY_TARGETS: &str = "DELETE FROM targets WHERE NOT EXISTS \
    (SELECT 1 FROM messages WHERE messages.target_key = targets.key)";

pub(super) struct Writer {
    conn: Connection,
    commands: mpsc::Receiver<Command>,
    /// Records queued and not yet written; shared with the store, which refuses more past a limit.
    backlog: Arc<AtomicUsize>,
    /// The newest record id committed; shared with the store ([`Store::committed`]).
    ///
    /// [`Store::committed`]: crate::store::Store::committed
    committed: Arc<AtomicU64>,
    path: PathBuf,
    /// The commands being written; kept to reuse its allocation.
    batch: Vec<Command>,
    /// Retention requests, run one at a time between batches.
    retains: VecDeque<(Retention, Answer<usize>)>,
    /// The first write failure since the last flush, which that flush reports.
    failed: Option<StoreError>,
    /// When the last batch began to be written.
    last_commit: Option<Instant>,
    /// How long after that the next batch may gather ([`GATHER`]).
    ///
    /// [`GATHER`]: super::GATHER
    gather: Duration,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        commands: mpsc::Receiver<Command>,
        backlog: Arc<AtomicUsize>,
        committed: Arc<AtomicU64>,
        path: PathBuf,
        gather: Duration,
    ) -> Writer {
        Writer {
            conn,
            commands,
            backlog,
            committed,
            path,
            batch: Vec::new(),
            retains: VecDeque::new(),
            failed: None,
            last_commit: None,
            gather,
        }
    }

    /// Writes until the store closes the queue, then returns with everything committed and in
    /// the database file itself ([`Writer::checkpoint`]).
    pub(super) fn run(mut self) {
        while let Ok(first) = self.commands.recv() {
            self.batch.push(first);
            self.gather();
            self.write_queued();
            while let Some((policy, answer)) = self.retains.pop_front() {
                let result = self.retain(&policy);
                if let Err(e) = &result {
                    tracing::error!("history retention failed: {e}");
                }
                let _ = answer.send(result);
            }
        }
        self.checkpoint();
    }

    /// Copies every committed transaction from the write-ahead log into `charla.db` and empties
    /// the log, so that after a clean stop the database file alone holds all history (a copy of
    /// it is a complete backup). The readers' connection is still open, so SQLite would not do
    /// this by itself when this connection closes.
    fn checkpoint(&mut self) {
        let done = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get::<_, i64>(0));
        match done {
            Ok(0) => {}
            Ok(_) => {
                tracing::warn!(path = %self.path.display(), "history: the final checkpoint was blocked by a reader; the -wal file holds the newest history")
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), "history: the final checkpoint failed: {e}; the -wal file holds the newest history")
            }
        }
    }

    /// Lets commands gather in the batch until [`GATHER`] after the last batch began: a writer
    /// that committed that recently is busy, and what arrives meanwhile shares the next commit.
    /// Ends early for a flush (someone waits for its answer), a full batch or a closing store;
    /// [`SqliteStore`] wakes the thread for the first and the last. Parked, the writer is not
    /// woken by each new record.
    ///
    /// [`GATHER`]: super::GATHER
    /// [`SqliteStore`]: super::SqliteStore
    fn gather(&mut self) {
        let Some(until) = self.last_commit.map(|last| last + self.gather) else { return };
        let mut urgent = matches!(self.batch.last(), Some(Command::Flush(_)));
        while !urgent && self.batch.len() < MAX_BATCH {
            match self.commands.try_recv() {
                Ok(command) => {
                    urgent = matches!(command, Command::Flush(_));
                    self.batch.push(command);
                }
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= until {
                        return;
                    }
                    std::thread::park_timeout(until - now);
                }
            }
        }
    }

    /// Adds what else is queued to the batch (up to [`MAX_BATCH`] commands), commits it in one
    /// transaction, then answers its flushes.
    fn write_queued(&mut self) {
        self.batch.extend(self.commands.try_iter().take(MAX_BATCH.saturating_sub(self.batch.len())));
        let started = Instant::now();
        self.last_commit = Some(started);
        let result = self.commit_batch();
        let metrics = crate::metrics::get();
        metrics.store_batch.observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics.store_errors.inc();
        }
        if result.is_ok() {
            let newest = self.batch.iter().filter_map(|c| match c {
                Command::Append(Record { id, .. }) | Command::Redact(_, _, id) => Some(id.0),
                _ => None,
            });
            if let Some(newest) = newest.max() {
                self.committed.fetch_max(newest, Ordering::Release);
            }
        }
        let records = self.batch.iter().filter(|c| matches!(c, Command::Append(_))).count();
        self.backlog.fetch_sub(records, Ordering::Relaxed);
        if let Err(e) = result {
            tracing::error!("{records} history records were not stored: {e}");
            self.failed.get_or_insert(e);
        }
        let mut flushed = false;
        for command in self.batch.drain(..) {
            match command {
                Command::Flush(answer) => {
                    let _ = answer.send(self.failed.clone().map_or(Ok(()), Err));
                    flushed = true;
                }
                Command::Retain(policy, answer) => self.retains.push_back((policy, answer)),
                Command::Append(_)
                | Command::SaveRoom(_)
                | Command::ForgetRoom(_)
                | Command::SaveGuest(_)
                | Command::Redact(..) => {}
            }
        }
        if flushed {
            self.failed = None;
        }
    }

    /// Writes the batch's records and room changes in one transaction.
    fn commit_batch(&mut self) -> Result<(), StoreError> {
        let fail = |e| classify(&self.path, e);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
        {
            let mut insert = tx.prepare_cached(INSERT).map_err(fail)?;
            // The newest record of each target in this batch, by target as written.
            let mut newest: HashMap<&str, &Record> = HashMap::new();
            for command in &self.batch {
                match command {
                    Command::Append(r) => {
                        insert
                            .execute(params![
                                sql_int(r.id.0),
                                fold(&r.target),
                                r.target,
                                r.kind.as_str(),
                                r.nick,
                                r.user,
                                r.host,
                                r.text,
                                r.extra,
                                tags_to_sql(&r.tags),
                            ])
                            .map_err(fail)?;
                        let slot = newest.entry(r.target.as_str()).or_insert(r);
                        if r.id > slot.id {
                            *slot = r;
                        }
                    }
                    Command::SaveRoom(room) => save_room(&tx, room).map_err(fail)?,
                    Command::Redact(key, id, _) => {
                        let mut redact = tx.prepare_cached(REDACT).map_err(fail)?;
                        redact.execute(params![sql_int(id.0), key]).map_err(fail)?;
                    }
                    Command::ForgetRoom(key) => {
                        tx.prepare_cached(FORGET_ROOM).and_then(|mut forget| forget.execute([key])).map_err(fail)?;
                        tx.prepare_cached(FORGET_BANS).and_then(|mut forget| forget.execute([key])).map_err(fail)?;
                    }
                    Command::SaveGuest(number) => {
                        tx.prepare_cached(SAVE_GUEST)
                            .and_then(|mut save| save.execute([sql_int(*number)]))
                            .map_err(fail)?;
                    }
                    Command::Flush(_) | Command::Retain(..) => {}
                }
            }
            let mut touch = tx.prepare_cached(TOUCH_TARGET).map_err(fail)?;
            for (target, record) in newest {
                let key = fold(target);
                let id = sql_int(record.id.0);
                match dm_parties(&key) {
                    None => {
                        touch.execute(params!["", key, target, id]).map_err(fail)?;
                    }
                    Some((a, b)) => {
                        touch.execute(params![a, key, display(b, record), id]).map_err(fail)?;
                        touch.execute(params![b, key, display(a, record), id]).map_err(fail)?;
                    }
                }
            }
        }
        tx.commit().map_err(fail)
    }

    /// Writes whatever is queued, if anything: lets new records through between retention steps.
    fn write_pending(&mut self) {
        if let Ok(command) = self.commands.try_recv() {
            self.batch.push(command);
            self.write_queued();
        }
    }

    /// Applies `policy`, one chunk of at most [`RETAIN_CHUNK`] rows per transaction.
    fn retain(&mut self, policy: &Retention) -> Result<usize, StoreError> {
        let mut deleted = 0;
        if let Some(age) = policy.max_age {
            let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            let oldest_kept = Bound::Time(now_millis().saturating_sub(age)).first_id();
            deleted += self.delete_chunked(DELETE_OLDER, |chunk| (oldest_kept, chunk))?;
        }
        if let Some(keep) = policy.max_per_target {
            let keys = self
                .conn
                .prepare_cached("SELECT DISTINCT key FROM targets")
                .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
                .map_err(|e| classify(&self.path, e))?;
            let keys: Vec<String> = keys;
            // The newest `keep` messages stay, with the room events among them; room events
            // (joins, quits, …) are kept to `keep` on their own account too, so that a busy
            // door never pushes out what people said.
            let queries = [count_retention_sql(true), count_retention_sql(false)];
            for key in keys {
                self.write_pending();
                for (newest_dropped, delete) in &queries {
                    let dropped: Option<i64> = self
                        .conn
                        .prepare_cached(newest_dropped)
                        .and_then(|mut s| s.query_row(params![key, sql_limit(keep)], |row| row.get(0)).optional())
                        .map_err(|e| classify(&self.path, e))?;
                    if let Some(up_to) = dropped {
                        deleted += self.delete_chunked(delete, |chunk| (key.as_str(), up_to, chunk))?;
                    }
                }
            }
        }
        if deleted > 0 {
            self.conn.execute(FORGET_EMPTY_TARGETS, []).map_err(|e| classify(&self.path, e))?;
        }
        Ok(deleted)
    }

    /// Runs the delete `sql` (given a chunk size as its last parameter) until it deletes less
    /// than a whole chunk, committing queued records after each chunk. Returns the rows deleted.
    fn delete_chunked<P: Params>(&mut self, sql: &str, params: impl Fn(i64) -> P) -> Result<usize, StoreError> {
        let mut deleted = 0;
        loop {
            let n = self
                .conn
                .prepare_cached(sql)
                .and_then(|mut s| s.execute(params(sql_limit(RETAIN_CHUNK))))
                .map_err(|e| classify(&self.path, e))?;
            deleted += n;
            self.write_pending();
            if n < RETAIN_CHUNK {
                return Ok(deleted);
            }
        }
    }
}

/// Saves a room's settings and replaces its ban list.
fn save_room(tx: &rusqlite::Transaction, room: &RoomState) -> rusqlite::Result<()> {
    let key = fold(&room.name);
    let topic = room.topic.as_ref();
    tx.prepare_cached(SAVE_ROOM)?.execute(params![
        key,
        &room.name,
        sql_int(room.created),
        topic.map(|t| &t.text),
        topic.map(|t| &t.set_by),
        topic.map(|t| sql_int(t.at)),
        &room.modes,
    ])?;
    tx.prepare_cached(FORGET_BANS)?.execute([&key])?;
    let mut save_ban = tx.prepare_cached(SAVE_BAN)?;
    for (position, ban) in room.bans.iter().enumerate() {
        save_ban.execute(params![key, position as i64, &ban.mask, &ban.set_by, sql_int(ban.at)])?;
    }
    Ok(())
}

/// The nick of `party` (folded, one side of a private conversation) as `record` spells it.
fn display<'a>(party: &'a str, record: &'a Record) -> &'a str {
    [&record.nick, &record.extra].into_iter().find(|nick| fold(nick) == party).map_or(party, String::as_str)
}
