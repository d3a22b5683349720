//! The writer thread: the one owner of the writing connection. See the
//! [parent module](super) for how it batches and what that means for durability.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, Params, TransactionBehavior, params};

use super::{
    COMMIT_WINDOW, QUEUE_LIMIT, RETAIN_CHUNK, RETRY_MAX, both_indexes, classify, events_condition, said_condition,
    sql_int, sql_limit, tags_to_sql,
};
use crate::chat::now_millis;
use crate::chat::text::fold;
use crate::store::{Bound, Retention, RoomState, StoreError, dm_parties};

use crate::store::command;
pub(super) use crate::store::command::{Answer, Command};

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

/// The queries of retention by count, for one kind of record (`said`: messages; else room
/// events): the newest record of a target that the count drops (`OFFSET` = the count kept), and
/// the delete of everything up to it that the count applies to. Dropping a message drops the room
/// events before it too. Each `kind` condition is its partial index's.
fn count_retention_sql(said: bool) -> (String, String) {
    let kinds = if said { said_condition() } else { events_condition() };
    let newest_dropped =
        format!("SELECT id FROM messages WHERE target_key = ?1 AND {kinds} ORDER BY id DESC LIMIT 1 OFFSET ?2");
    let condition = "target_key = ?1 AND id <= ?2";
    let up_to = match said {
        true => both_indexes("id", condition, "ASC", "?3"),
        false => format!("SELECT id FROM messages WHERE {condition} AND {kinds} ORDER BY id LIMIT ?3"),
    };
    (newest_dropped, format!("DELETE FROM messages WHERE id IN ({up_to})"))
}

/// Forgets the targets none of whose records is left.
fn forget_empty_targets_sql() -> String {
    let none = |kinds: String| {
        format!("NOT EXISTS (SELECT 1 FROM messages WHERE messages.target_key = targets.key AND {kinds})")
    };
    format!("DELETE FROM targets WHERE {} AND {}", none(said_condition()), none(events_condition()))
}

pub(super) struct Writer {
    conn: Connection,
    commands: mpsc::Receiver<Command>,
    /// Records queued and not yet written; shared with the store, which refuses more past a limit.
    backlog: Arc<AtomicUsize>,
    /// The newest record id committed; shared with the store ([`Store::committed`]).
    ///
    /// [`Store::committed`]: crate::store::Store::committed
    committed: Arc<AtomicU64>,
    /// Set while writes fail; shared with the store ([`Store::degraded`]).
    ///
    /// [`Store::degraded`]: crate::store::Store::degraded
    degraded: Arc<AtomicBool>,
    path: PathBuf,
    /// The commands being written, and while writes fail, those waiting to be retried.
    batch: Vec<Command>,
    /// Retention requests, run one at a time between batches.
    retains: VecDeque<(Retention, Answer<usize>)>,
    /// Why writing is paused, since when, and when to try again; `None` while writes succeed.
    paused: Option<Paused>,
    /// When the last batch began to be written.
    last_commit: Option<Instant>,
    /// How long after that the next batch may gather ([`GATHER`]).
    ///
    /// [`GATHER`]: super::GATHER
    gather: Duration,
}

/// A failing disk, as the writer sees it.
struct Paused {
    /// The last failure.
    error: StoreError,
    since: Instant,
    /// The wait before the next try: doubles after each failure, up to [`RETRY_MAX`].
    delay: Duration,
    next_try: Instant,
}

/// What the writer does next.
enum Next {
    Command(Command),
    /// Try again to write what waits.
    Retry,
    /// The store is closing.
    Closed,
}

/// The first wait before writing again after a failure.
const RETRY_FIRST: Duration = Duration::from_millis(50);

/// The write-ahead log's size in pages (of 4 KB) past which each commit checkpoints it, once
/// the disk has been full: SQLite's default, 1,000 pages, can be more than a small disk has.
const TIGHT_CHECKPOINT_PAGES: i64 = 64;

/// How many commands the writer takes from its queue at a time while a transaction is open,
/// between two looks at the clock.
const CHUNK: usize = 128;

impl Writer {
    pub(super) fn new(
        conn: Connection,
        commands: mpsc::Receiver<Command>,
        shared: super::WriterShared,
        path: PathBuf,
        gather: Duration,
    ) -> Writer {
        Writer {
            conn,
            commands,
            backlog: shared.backlog,
            committed: shared.committed,
            degraded: shared.degraded,
            path,
            batch: Vec::new(),
            retains: VecDeque::new(),
            paused: None,
            last_commit: None,
            gather,
        }
    }

    /// Writes until the store closes the queue, then returns with everything committed and in
    /// the database file itself ([`Writer::checkpoint`]); or, if the disk still fails then, with
    /// what is lost logged.
    pub(super) fn run(mut self) {
        loop {
            match self.next() {
                Next::Command(command) if self.paused.is_some() => {
                    self.hold(command);
                    continue;
                }
                Next::Command(command) => {
                    self.batch.push(command);
                    self.gather();
                }
                Next::Retry => {}
                Next::Closed => break,
            }
            self.write_queued();
            if self.paused.is_none() {
                self.run_retains();
            }
        }
        if self.paused.is_some() {
            self.write_queued();
        }
        if let Some(paused) = &self.paused {
            let lost = self.records_waiting();
            tracing::error!(
                "history: {lost} records could not be written before the store closed and are lost: {}",
                paused.error
            );
        }
        self.checkpoint();
    }

    /// The next command, or when writes have been failing and it is time, a retry.
    fn next(&self) -> Next {
        let Some(paused) = &self.paused else {
            return self.commands.recv().map_or(Next::Closed, Next::Command);
        };
        let wait = paused.next_try.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Next::Retry;
        }
        match self.commands.recv_timeout(wait) {
            Ok(command) => Next::Command(command),
            Err(RecvTimeoutError::Timeout) => Next::Retry,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    /// Keeps a command that arrives while writes fail: records and room changes wait in the
    /// batch, in order, for the next try; a flush is answered at once (nothing it waits for can
    /// be written now); retention waits until writing works again.
    fn hold(&mut self, command: Command) {
        match command {
            Command::Flush(answer) => {
                let _ = answer.send(Err(self.paused_error()));
            }
            Command::Retain(policy, answer) => self.retains.push_back((policy, answer)),
            data @ (Command::Append(_)
            | Command::SaveRoom(_)
            | Command::ForgetRoom(_)
            | Command::SaveGuest(_)
            | Command::Redact(..)) => self.batch.push(data),
        }
    }

    fn run_retains(&mut self) {
        while let Some((policy, answer)) = self.retains.pop_front() {
            let result = self.retain(&policy);
            if let Err(e) = &result {
                tracing::error!("history retention failed: {e}");
            }
            let _ = answer.send(result);
        }
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
    /// Ends early for a flush (someone waits for its answer) or a closing store; [`SqliteStore`]
    /// wakes the thread for both. Parked, the writer is not woken by each new record.
    ///
    /// [`GATHER`]: super::GATHER
    /// [`SqliteStore`]: super::SqliteStore
    fn gather(&mut self) {
        let Some(until) = self.last_commit.map(|last| last + self.gather) else { return };
        let mut urgent = matches!(self.batch.last(), Some(Command::Flush(_)));
        while !urgent {
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

    /// Commits the batch and what else queues up while it is written, for at most
    /// [`COMMIT_WINDOW`], in one transaction; then answers its flushes. When the commit fails,
    /// every record and room change stays in the batch, in order, to be tried again.
    ///
    /// [`COMMIT_WINDOW`]: super::COMMIT_WINDOW
    fn write_queued(&mut self) {
        let began = Instant::now();
        self.last_commit = Some(began);
        if self.paused.is_some() {
            // Give the space the log holds back to the database before trying again.
            let _ = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        let result = self.commit_batch(began);
        let metrics = crate::metrics::get();
        metrics.store_batch.observe(began.elapsed().as_secs_f64());
        if result.is_err() {
            metrics.store_errors.inc();
        }
        match result {
            Ok(()) => {
                let records = command::settle(&mut self.batch, &mut self.retains, &self.committed);
                self.backlog.fetch_sub(records, Ordering::Relaxed);
                if let Some(paused) = self.paused.take() {
                    self.resume(&paused, records);
                }
            }
            Err(error) => {
                // Paused first: whoever a failed flush wakes finds the store degraded.
                self.pause(error.clone());
                for command in std::mem::take(&mut self.batch) {
                    self.hold_failed(command, &error);
                }
            }
        }
    }

    /// Keeps a command of a batch that failed to commit ([`Writer::hold`], with the failure).
    fn hold_failed(&mut self, command: Command, error: &StoreError) {
        match command {
            Command::Flush(answer) => {
                let waiting = self.records_waiting();
                let _ = answer.send(Err(StoreError::Paused { waiting, reason: error.to_string() }));
            }
            other => self.hold(other),
        }
    }

    /// Records in the batch: while writes fail, those waiting to be retried.
    fn records_waiting(&self) -> usize {
        self.batch.iter().filter(|c| matches!(c, Command::Append(_))).count()
    }

    /// The answer to a flush while writes fail.
    fn paused_error(&self) -> StoreError {
        let reason = self.paused.as_ref().map_or_else(String::new, |p| p.error.to_string());
        StoreError::Paused { waiting: self.records_waiting(), reason }
    }

    /// Notes a failed commit: the first one pauses history (logged, and shown by
    /// [`Store::degraded`]); each one doubles the wait before the next try.
    ///
    /// [`Store::degraded`]: crate::store::Store::degraded
    fn pause(&mut self, error: StoreError) {
        let now = Instant::now();
        match &mut self.paused {
            Some(paused) => {
                paused.delay = (paused.delay * 2).min(RETRY_MAX);
                paused.next_try = now + paused.delay;
                paused.error = error;
            }
            None => {
                tracing::error!(
                    "history is paused: {error}. The {} records not written are kept in memory \
                     (up to {QUEUE_LIMIT}; messages beyond that are refused) and retried until they are stored",
                    self.records_waiting()
                );
                self.degraded.store(true, Ordering::Release);
                crate::metrics::get().store_degraded.set(1);
                // A disk that filled up once is tight: checkpoint the log into the database
                // every 256 KB from now on, not every 4 MB, lest the log take all the room.
                let _ = self.conn.pragma_update(None, "wal_autocheckpoint", TIGHT_CHECKPOINT_PAGES);
                self.paused = Some(Paused { error, since: now, delay: RETRY_FIRST, next_try: now + RETRY_FIRST });
            }
        }
    }

    /// Writing works again: says so, and empties the write-ahead log, which may have grown
    /// into whatever space the disk had left.
    fn resume(&mut self, paused: &Paused, records: usize) {
        self.degraded.store(false, Ordering::Release);
        crate::metrics::get().store_degraded.set(0);
        tracing::info!(
            "history is being written again after {:.1} s; the {records} records kept meanwhile are stored",
            paused.since.elapsed().as_secs_f64()
        );
        if let Err(e) = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            tracing::warn!("history: could not empty the write-ahead log after the pause: {e}");
        }
    }

    /// Writes the batch's records and room changes in one transaction, adding what queues up
    /// meanwhile until [`COMMIT_WINDOW`] has passed since `began` (not while retrying, when
    /// the batch is whatever waited).
    ///
    /// [`COMMIT_WINDOW`]: super::COMMIT_WINDOW
    fn commit_batch(&mut self, began: Instant) -> Result<(), StoreError> {
        let path = &self.path;
        let fail = |e| classify(path, e);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
        {
            let mut insert = tx.prepare_cached(INSERT).map_err(fail)?;
            // The newest record of each target in this transaction (by target as written), by
            // its place in the batch.
            let mut newest: HashMap<String, usize> = HashMap::new();
            let mut written = 0;
            loop {
                for (at, command) in self.batch.iter().enumerate().skip(written) {
                    match command {
                        Command::Append(r) => {
                            insert
                                .execute(params![
                                    sql_int(r.id.0),
                                    fold(&r.target),
                                    r.target,
                                    r.kind.as_str(),
                                    r.nick.as_str(),
                                    &*r.user,
                                    &*r.host,
                                    r.text,
                                    r.extra,
                                    tags_to_sql(&r.tags),
                                ])
                                .map_err(fail)?;
                            match newest.get_mut(r.target.as_str()) {
                                Some(slot) => {
                                    if matches!(&self.batch[*slot], Command::Append(old) if r.id > old.id) {
                                        *slot = at;
                                    }
                                }
                                None => {
                                    newest.insert(r.target.clone(), at);
                                }
                            }
                        }
                        Command::SaveRoom(room) => save_room(&tx, room).map_err(fail)?,
                        Command::Redact(key, id, _) => {
                            let mut redact = tx.prepare_cached(REDACT).map_err(fail)?;
                            redact.execute(params![sql_int(id.0), key]).map_err(fail)?;
                        }
                        Command::ForgetRoom(key) => {
                            tx.prepare_cached(FORGET_ROOM)
                                .and_then(|mut forget| forget.execute([key]))
                                .map_err(fail)?;
                            tx.prepare_cached(FORGET_BANS)
                                .and_then(|mut forget| forget.execute([key]))
                                .map_err(fail)?;
                        }
                        Command::SaveGuest(number) => {
                            tx.prepare_cached(SAVE_GUEST)
                                .and_then(|mut save| save.execute([sql_int(*number)]))
                                .map_err(fail)?;
                        }
                        Command::Flush(_) | Command::Retain(..) => {}
                    }
                }
                written = self.batch.len();
                if self.paused.is_some() || began.elapsed() >= COMMIT_WINDOW {
                    break;
                }
                self.batch.extend(self.commands.try_iter().take(CHUNK));
                if self.batch.len() == written {
                    break;
                }
            }
            let mut touch = tx.prepare_cached(TOUCH_TARGET).map_err(fail)?;
            for (target, &at) in &newest {
                let Command::Append(record) = &self.batch[at] else { continue };
                let key = fold(target);
                let id = sql_int(record.id.0);
                match dm_parties(&key) {
                    None => {
                        touch.execute(params!["", key, target, id]).map_err(fail)?;
                    }
                    Some((a, b)) => {
                        touch.execute(params![a, key, record.spelling(b), id]).map_err(fail)?;
                        touch.execute(params![b, key, record.spelling(a), id]).map_err(fail)?;
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
            self.conn.execute(&forget_empty_targets_sql(), []).map_err(|e| classify(&self.path, e))?;
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
