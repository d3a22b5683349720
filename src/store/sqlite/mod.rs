//! The default [`Store`]: one SQLite file, `charla.db` in the data directory.
//!
//! # Design
//!
//! One OS thread (`charla-store`) owns the only writing [`Connection`]. Everything that changes
//! the database travels to it over a channel, so writers never contend for SQLite's write lock.
//! The thread sleeps until something arrives, then takes everything queued, writes it with
//! cached prepared statements in ONE transaction, and goes on taking what queues up meanwhile
//! for at most [`COMMIT_WINDOW`] before it commits: under load, batches grow by themselves and
//! the cost of a commit is shared by hundreds of records, yet a commit comes every few
//! milliseconds however many records wait. A record that arrives [`GATHER`] (2 ms) or more after
//! the last commit began is committed at once; one that arrives sooner waits, with whatever
//! else arrives meanwhile, until that time has passed. The thread waits parked, where new
//! records do not wake it, so a steady stream of single records (joins and quits under
//! connection churn) costs one commit and two wake-ups per [`GATHER`] instead of one commit
//! and one wake-up per record. A flush ends the wait at once. Retention deletes in chunks of
//! [`RETAIN_CHUNK`] rows and commits what queued up between chunks, so a large clean-up never
//! holds up new records.
//!
//! Readers share a second, read-only connection behind a mutex. In WAL mode reads never block
//! the writer nor the other way round. Its query plans do not depend on the values bound to
//! them (SQLite's query planner stability guarantee): otherwise SQLite compiles a history query
//! again whenever its `LIMIT` is bound, which is every time. The store remembers which targets
//! hold no messages (a room where only joins and quits happened): a read of messages alone for
//! one of them is answered without a query.
//!
//! The queue counts the records it holds; past [`QUEUE_LIMIT`], [`Store::append`] refuses
//! ([`StoreError::Backlog`]) rather than let a slow disk grow memory without bound.
//!
//! # A failing disk
//!
//! A batch that fails to commit (a full disk, say) is rolled back and kept: its records and
//! room changes stay in memory, in order, and are tried again after 50 ms, then after twice as
//! long each time, up to [`RETRY_MAX`]; whatever arrives meanwhile waits behind them, within
//! [`QUEUE_LIMIT`]. Before each try the writer checkpoints the write-ahead log and truncates it
//! (`wal_checkpoint(TRUNCATE)`), so the space the log took goes back to the database; it does
//! so again once a try succeeds. The first failure is logged once as an error and the store
//! reports itself [degraded](Store::degraded) until a try succeeds, which is logged once too.
//! Meanwhile [`Store::flush`] answers at once with [`StoreError::Paused`]: nothing it waits for
//! can be written yet, and nothing is lost either.
//!
//! # Durability
//!
//! The database runs in WAL mode with `synchronous=NORMAL`: a commit is complete once its
//! pages are appended to the write-ahead log, without waiting for an `fsync` (SQLite syncs the
//! log at each checkpoint). So:
//!
//! - A clean shutdown loses nothing: [`Store::flush`] resolves only once everything appended
//!   before it is committed, and dropping the store lets the writer commit everything still
//!   queued before its thread ends (the drop waits for it). The writer then checkpoints: it
//!   moves the log into `charla.db` and empties it, so that after a clean stop `charla.db`
//!   alone holds everything. While the server runs, [`SqliteStore::backup`] makes a
//!   consistent copy.
//! - `kill -9` of the server loses only what was not yet committed: the batch being written
//!   and the records queued behind it. At chat rates the queue is empty and a record is
//!   committed within [`GATHER`] of its `append` and the time to write it, so that is all that
//!   can be lost. Under a burst, a transaction takes new
//!   records for at most [`COMMIT_WINDOW`], so what can be lost is what arrived in the last few
//!   milliseconds; and when the writer falls more than [`MAX_LAG`] behind what was appended,
//!   [`Store::behind`] says so and the sessions read their senders' next lines only once it
//!   has caught up, so the queue behind the transaction stays a few milliseconds long too. The
//!   README gives the figures measured with `kill -9` during a burst. `serve --ack-when-stored` goes further: an IRC client's message is
//!   acknowledged (echoed, or its labeled `ACK` sent) only once it is committed.
//!   Committed transactions survive: they are in the operating system's file cache.
//! - A power failure or kernel crash may also lose the transactions committed since the last
//!   checkpoint's `fsync` (`synchronous=FULL` would prevent that at a large cost in throughput);
//!   the database itself stays consistent.
//!
//! While writes fail (see above), what waits in memory is lost if the server is killed; a
//! clean shutdown tries once more and logs how many records it could not write.
//!
//! # Errors at start-up
//!
//! [`SqliteStore::open`] checks the directory by creating a scratch file in it before SQLite
//! sees it, so an unwritable directory is reported as such ([`StoreError::NotWritable`])
//! instead of SQLite's vague "unable to open database file". A file that is not an SQLite
//! database is [`StoreError::Corrupt`]; one from a newer charla is [`StoreError::TooNew`].

mod accounts;
mod schema;
mod writer;

pub use accounts::SqliteAccounts;

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::config::DbConfig;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use super::{
    Bound, Include, Pending, Record, RecordKind, Retention, RoomState, Selector, Store, StoreError, TargetActivity,
};
use crate::chat::text::fold;
use crate::chat::{Ban, MsgId, Tags, Topic};
use schema::Outcome;
use writer::{Command, Writer};

/// Longest time one transaction takes in new records before it commits: under a burst, a
/// commit comes at least this often (plus the time the commit itself takes).
pub const COMMIT_WINDOW: Duration = Duration::from_millis(2);

/// Least time between the starts of two commits, unless a flush is waiting: what arrives
/// meanwhile shares the next commit. An idle writer commits at once. As long as
/// [`COMMIT_WINDOW`], so that a record waits no longer before its commit than a burst's
/// records may; each commit writes every page it changed to the log again (the table's and
/// its indexes' newest pages), so under connection churn a writer committing every 0.5 ms
/// took twice the CPU, and woke often enough to push the workers off their cores.
pub const GATHER: Duration = Duration::from_millis(2);

/// How far behind what is appended the writer may fall before [`Store::behind`] says so and
/// the sessions make their senders wait: with [`COMMIT_WINDOW`], what `kill -9` can lose.
pub const MAX_LAG: Duration = Duration::from_millis(5);

/// The longest wait between two tries while writes fail: how long history may stay paused
/// after the disk has room again.
pub const RETRY_MAX: Duration = Duration::from_secs(2);

/// Most records waiting for the writer before [`Store::append`] refuses more.
pub const QUEUE_LIMIT: usize = 65_536;

/// Most rows one retention step deletes before the writer commits what else has queued.
pub const RETAIN_CHUNK: usize = 2_000;

/// How long a connection waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// History in an SQLite file. See the [module docs](self).
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    /// The writer's queue; `None` only while dropping, to tell the writer to finish.
    queue: Option<mpsc::Sender<Command>>,
    /// Records queued and not yet written.
    backlog: Arc<AtomicUsize>,
    /// The newest record id committed by the writer.
    committed: Arc<AtomicU64>,
    /// Set by the writer while writes fail.
    degraded: Arc<AtomicBool>,
    /// The newest record id appended.
    appended: AtomicU64,
    /// The first record appended since the queue was last empty.
    behind_from: AtomicU64,
    reader: Mutex<Connection>,
    /// Targets known to hold no messages.
    silent: Mutex<Silent>,
    writer: Option<JoinHandle<()>>,
}

/// What the store and its writer thread share.
struct WriterShared {
    /// Records queued and not yet written.
    backlog: Arc<AtomicUsize>,
    /// The newest record id committed.
    committed: Arc<AtomicU64>,
    /// Set while writes fail.
    degraded: Arc<AtomicBool>,
}

/// Targets known to hold no messages, so that reading their messages (the replay when someone
/// joins a room where nothing was ever said) needs no query. A target is remembered when a read
/// of all its messages finds none, made while every message appended so far was committed
/// (records are committed in the order of their ids, see [`Store::committed`]), and no message
/// was appended meanwhile. A message for it makes the store forget it; deletions by retention
/// only make it silent again.
#[derive(Debug, Default)]
struct Silent {
    /// Folded target keys.
    keys: HashSet<String>,
    /// The newest message appended.
    newest: MsgId,
}

/// Most targets [`Silent`] holds; reads of others query as usual.
const SILENT_LIMIT: usize = 4096;

impl SqliteStore {
    /// The database's file name inside the data directory.
    pub const FILE_NAME: &str = "charla.db";

    /// Opens (creating if needed) `dir/charla.db`, brings its schema up to date and starts the
    /// writer thread.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_gathering(dir, GATHER)
    }

    /// [`SqliteStore::open`] with a writer that lets records gather for `gather` (instead of
    /// [`GATHER`]) after each commit.
    pub(super) fn open_gathering(dir: &Path, gather: Duration) -> Result<SqliteStore, StoreError> {
        let not_writable = |e: std::io::Error| StoreError::NotWritable { dir: dir.to_owned(), reason: e.to_string() };
        fs::create_dir_all(dir).map_err(not_writable)?;
        probe_writable(dir).map_err(not_writable)?;
        let path = dir.join(Self::FILE_NAME);
        let fail = |e| classify(&path, e);

        let mut conn = Connection::open(&path).map_err(fail)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        // The version check comes first: a database from a newer charla is left untouched.
        match schema::migrate(&mut conn) {
            Ok(Outcome::Current) => {}
            Ok(Outcome::TooNew(found)) => {
                return Err(StoreError::TooNew { path, found, known: schema::VERSION });
            }
            Err(e) => return Err(corrupt_unless_io(&path, e)),
        }
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database {
                path,
                reason: format!("cannot switch to WAL mode (journal mode stays {mode})"),
            });
        }
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(fail)?;

        let reader = open_reader(&path).map_err(fail)?;

        let (queue, commands) = mpsc::channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let committed = Arc::new(AtomicU64::new(0));
        let degraded = Arc::new(AtomicBool::new(false));
        let shared =
            WriterShared { backlog: backlog.clone(), committed: committed.clone(), degraded: degraded.clone() };
        let writer = Writer::new(conn, commands, shared, path.clone(), gather);
        let writer =
            std::thread::Builder::new().name("charla-store".into()).spawn(move || writer.run()).map_err(|e| {
                StoreError::Database { path: path.clone(), reason: format!("cannot start the writer thread: {e}") }
            })?;
        Ok(SqliteStore {
            path,
            queue: Some(queue),
            backlog,
            committed,
            degraded,
            appended: AtomicU64::new(0),
            behind_from: AtomicU64::new(0),
            reader: Mutex::new(reader),
            silent: Mutex::default(),
            writer: Some(writer),
        })
    }

    /// Copies the history database of the data directory `dir` to the file `to` with SQLite's
    /// online backup, and returns the copy's size in bytes. The copy is one consistent snapshot
    /// even while a server writes to the database: all pages are copied in one step, inside one
    /// read transaction, which in WAL mode holds up no writer. It is written next to `to` and
    /// renamed over it only once complete and checked, so `to` is never half a backup.
    pub fn backup(dir: &Path, to: &Path) -> Result<u64, StoreError> {
        let path = dir.join(Self::FILE_NAME);
        if !path.is_file() {
            return Err(StoreError::NotFound { path });
        }
        // Read-write (the server may have left no `-shm` file for a read-only connection to
        // use), but never created: a missing database is an error, not an empty backup.
        let source = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .and_then(|source| source.busy_timeout(BUSY_TIMEOUT).map(|()| source))
            .map_err(|e| classify(&path, e))?;
        let cannot_write = |reason: String| StoreError::Backup { path: to.to_owned(), reason };
        let mut partial = to.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .map_err(|e| cannot_write(e.to_string()))?;
        let copied = copy_database(&source, &partial).and_then(|()| {
            fs::rename(&partial, to).map_err(|e| e.to_string())?;
            fs::metadata(to).map(|m| m.len()).map_err(|e| e.to_string())
        });
        copied.map_err(|reason| {
            let _ = fs::remove_file(&partial);
            cannot_write(reason)
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many records wait for the writer (for metrics, and for callers that would rather
    /// slow down than meet [`StoreError::Backlog`]).
    pub fn queued(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        self.queue.as_ref().ok_or(StoreError::WriterGone)?.send(command).map_err(|_| StoreError::WriterGone)
    }

    /// Sends a command that answers, and returns the answer to come.
    fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command) -> Pending<T> {
        let (reply, answer) = oneshot::channel();
        // If the writer is gone, the reply sender is dropped with the command and the answer
        // resolves to `WriterGone`.
        let _ = self.send(command(reply));
        Pending(answer)
    }

    /// The read connection. A panic while it was held cannot have left a half-done write
    /// (it only reads), so a poisoned lock is taken anyway.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is known of targets without messages; it stays consistent whatever panicked while
    /// it was held (each change is one insert or remove).
    fn silent(&self) -> MutexGuard<'_, Silent> {
        self.silent.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |e| classify(&self.path, e)
    }
}

impl Drop for SqliteStore {
    /// Closes the queue and waits until the writer has committed everything in it.
    fn drop(&mut self) {
        self.queue = None;
        let Some(writer) = self.writer.take() else { return };
        // A gathering writer is parked: it is to write what it has now.
        writer.thread().unpark();
        if writer.join().is_err() {
            tracing::error!(path = %self.path.display(), "the history writer panicked");
        }
    }
}

impl Store for SqliteStore {
    fn append(&self, record: Record) -> Result<(), StoreError> {
        if sql_id(record.id).is_none() {
            return Err(StoreError::IdOutOfRange(record.id));
        }
        let waiting = self.backlog.fetch_add(1, Ordering::Relaxed);
        if waiting >= QUEUE_LIMIT {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Backlog(waiting));
        }
        self.appended.fetch_max(record.id.0, Ordering::Relaxed);
        if waiting == 0 {
            self.behind_from.store(record.id.0, Ordering::Relaxed);
        }
        if record.kind.is_message() {
            let mut silent = self.silent();
            silent.newest = silent.newest.max(record.id);
            if !silent.keys.is_empty() {
                silent.keys.remove(&fold(&record.target));
            }
        }
        self.send(Command::Append(record))
    }

    fn save_room(&self, state: RoomState) -> Result<(), StoreError> {
        self.send(Command::SaveRoom(state))
    }

    fn forget_room(&self, name: &str) -> Result<(), StoreError> {
        self.send(Command::ForgetRoom(fold(name)))
    }

    fn save_guest(&self, number: u64) -> Result<(), StoreError> {
        self.send(Command::SaveGuest(number))
    }

    fn last_guest(&self) -> Result<u64, StoreError> {
        let conn = self.reader();
        let value: Option<i64> = conn
            .query_row("SELECT value FROM counters WHERE name = 'guest'", [], |row| row.get(0))
            .optional()
            .map_err(self.fail())?;
        Ok(value.map_or(0, from_sql_int))
    }

    fn redact(&self, target: &str, id: MsgId, by: MsgId) -> Result<(), StoreError> {
        self.send(Command::Redact(fold(target), id, by))
    }

    fn message(&self, target: &str, id: MsgId) -> Result<Option<Record>, StoreError> {
        let Some(id) = sql_id(id) else { return Ok(None) };
        let conn = self.reader();
        let sql = format!("SELECT {RECORD_COLUMNS} FROM messages WHERE id = ?1 AND target_key = ?2");
        conn.prepare_cached(&sql)
            .and_then(|mut query| query.query_row(params![id, fold(target)], record).optional())
            .map_err(self.fail())
    }

    fn flush(&self) -> Pending<()> {
        let answer = self.ask(Command::Flush);
        // The writer may be letting a batch gather: the flush is not to wait for that.
        if let Some(writer) = &self.writer {
            writer.thread().unpark();
        }
        answer
    }

    fn committed(&self) -> MsgId {
        MsgId(self.committed.load(Ordering::Acquire))
    }

    fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// The time between the newest record appended and the newest committed, or if the queue
    /// was empty since, the first record appended after that: how far the writer is behind.
    fn behind(&self) -> bool {
        if self.backlog.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let since = self.committed().max(MsgId(self.behind_from.load(Ordering::Relaxed)));
        let lag = MsgId(self.appended.load(Ordering::Relaxed)).millis().saturating_sub(since.millis());
        lag > MAX_LAG.as_millis() as u64
    }

    fn retain(&self, policy: Retention) -> Pending<usize> {
        self.ask(|reply| Command::Retain(policy, reply))
    }

    fn history(
        &self,
        target: &str,
        selector: &Selector,
        limit: usize,
        include: Include,
    ) -> Result<Vec<Record>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = fold(target);
        // For a read of messages alone: the newest message appended, if every one is committed.
        let settled = match include {
            Include::Messages => {
                let silent = self.silent();
                if silent.keys.contains(&key) {
                    return Ok(Vec::new());
                }
                Some(silent.newest).filter(|&newest| self.committed() >= newest)
            }
            Include::Everything => None,
        };
        let conn = self.reader();
        let range = Range { conn: &conn, key: &key, limit, include };
        let records = match *selector {
            Selector::Latest(None) => range.newest(FIRST, END),
            Selector::Latest(Some(after)) => range.newest(after.last_id(), END),
            Selector::Before(before) => range.newest(FIRST, before.first_id()),
            Selector::After(after) => range.oldest(after.last_id(), END),
            Selector::Around(at) => range.around(at.first_id()),
            Selector::Between(from, to) if from.first_id() <= to.first_id() => {
                range.oldest(from.last_id(), to.first_id())
            }
            Selector::Between(from, to) => range.newest(to.last_id(), from.first_id()),
        };
        drop(conn);
        let records = records.map_err(self.fail())?;
        if let Some(newest) = settled
            && records.is_empty()
            && *selector == Selector::Latest(None)
        {
            let mut silent = self.silent();
            if silent.newest == newest && silent.keys.len() < SILENT_LIMIT {
                silent.keys.insert(key);
            }
        }
        Ok(records)
    }

    fn targets(
        &self,
        nick: &str,
        rooms: &[&str],
        from: Bound,
        to: Bound,
        limit: usize,
    ) -> Result<Vec<TargetActivity>, StoreError> {
        let newest_first = from.first_id() > to.first_id();
        let (after, before) =
            if newest_first { (to.last_id(), from.first_id()) } else { (from.last_id(), to.first_id()) };
        let conn = self.reader();
        let read = || -> rusqlite::Result<Vec<TargetActivity>> {
            let activity = |row: &Row<'_>| Ok(TargetActivity { name: row.get(0)?, latest: row.get(1)? });
            let sql = if newest_first {
                "SELECT name, latest FROM targets WHERE owner = ?1 AND latest > ?2 AND latest < ?3 \
                 ORDER BY latest DESC LIMIT ?4"
            } else {
                "SELECT name, latest FROM targets WHERE owner = ?1 AND latest > ?2 AND latest < ?3 \
                 ORDER BY latest ASC LIMIT ?4"
            };
            let mut found = conn
                .prepare_cached(sql)?
                .query_map(params![fold(nick), after, before, sql_limit(limit)], activity)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut room = conn.prepare_cached(
                "SELECT name, latest FROM targets WHERE owner = '' AND key = ?1 \
                 AND latest > ?2 AND latest < ?3",
            )?;
            let mut keys: Vec<String> = rooms.iter().map(|r| fold(r)).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                found.extend(
                    room.query_map(params![key, after, before], activity)?.collect::<rusqlite::Result<Vec<_>>>()?,
                );
            }
            found.sort_by_key(|t| t.latest);
            if newest_first {
                found.reverse();
            }
            found.truncate(limit);
            found.sort_by_key(|t| t.latest);
            Ok(found)
        };
        read().map_err(self.fail())
    }

    fn rooms(&self) -> Result<Vec<RoomState>, StoreError> {
        let conn = self.reader();
        let read = || -> rusqlite::Result<Vec<RoomState>> {
            let mut rooms = conn
                .prepare_cached("SELECT name, created, topic, topic_by, topic_at, modes FROM rooms ORDER BY key")?
                .query_map([], |row| {
                    let topic = match row.get::<_, Option<String>>(2)? {
                        Some(text) => Some(Topic {
                            text,
                            set_by: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                            at: row.get::<_, Option<i64>>(4)?.map_or(0, from_sql_int),
                        }),
                        None => None,
                    };
                    let state = RoomState {
                        name: row.get(0)?,
                        created: from_sql_int(row.get(1)?),
                        topic,
                        modes: row.get(5)?,
                        bans: Vec::new(),
                    };
                    Ok(state)
                })?
                .collect::<rusqlite::Result<Vec<RoomState>>>()?;
            let mut bans = conn
                .prepare_cached("SELECT mask, set_by, set_at FROM room_bans WHERE room_key = ?1 ORDER BY position")?;
            for room in &mut rooms {
                room.bans = bans
                    .query_map([fold(&room.name)], |row| {
                        Ok(Ban { mask: row.get(0)?, set_by: row.get(1)?, at: from_sql_int(row.get(2)?) })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
            }
            Ok(rooms)
        };
        read().map_err(self.fail())
    }
}

/// Lowest possible exclusive lower bound: every id is above it.
pub(super) const FIRST: i64 = -1;
/// Exclusive upper bound above every storable id (ids are below `i64::MAX`, see [`sql_id`]).
pub(super) const END: i64 = i64::MAX;

/// The id as stored, if it is storable: SQLite integers are signed, and `i64::MAX` is kept
/// free to serve as [`END`]. Every id made before the year 2248 is.
pub(super) fn sql_id(id: MsgId) -> Option<i64> {
    i64::try_from(id.0).ok().filter(|&id| id < END)
}

/// `x` as an SQLite integer; larger values cannot be stored and become the largest.
pub(super) fn sql_int(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// A time read back; a negative one (written by hand) is the epoch.
pub(super) fn from_sql_int(x: i64) -> u64 {
    u64::try_from(x).unwrap_or(0)
}

pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A [`MsgId`] is its millisecond shifted left by this many bits, plus a sequence number.
const SEQ_BITS: u32 = 20;

impl Bound {
    /// The lowest id at the bound: ids below it are before the bound.
    pub(super) fn first_id(self) -> i64 {
        match self {
            Bound::MsgId(id) => sql_int(id.0),
            Bound::Time(ms) => sql_int(ms.saturating_mul(1 << SEQ_BITS)),
        }
    }

    /// The highest id at the bound: ids above it are after the bound.
    pub(super) fn last_id(self) -> i64 {
        match self {
            Bound::MsgId(id) => sql_int(id.0),
            Bound::Time(ms) => sql_int(ms.saturating_add(1).saturating_mul(1 << SEQ_BITS)).saturating_sub(1),
        }
    }
}

/// The records of one target with ids strictly between two bounds, at most `limit` of them.
struct Range<'a> {
    conn: &'a Connection,
    key: &'a str,
    limit: usize,
    include: Include,
}

impl Range<'_> {
    /// The oldest records with `after < id < before`, oldest first.
    fn oldest(&self, after: i64, before: i64) -> rusqlite::Result<Vec<Record>> {
        self.query(false, after, before)
    }

    /// The newest records with `after < id < before`, oldest first.
    fn newest(&self, after: i64, before: i64) -> rusqlite::Result<Vec<Record>> {
        let mut records = self.query(true, after, before)?;
        records.reverse();
        Ok(records)
    }

    /// Half of `limit` (rounded down) before `at`, the rest from `at` on; a side with too few
    /// records leaves its share to the other.
    fn around(&self, at: i64) -> rusqlite::Result<Vec<Record>> {
        let mut before = self.newest(FIRST, at)?;
        let after = self.oldest(at - 1, END)?;
        let take_before = before.len().min((self.limit / 2).max(self.limit.saturating_sub(after.len())));
        let take_after = after.len().min(self.limit - take_before);
        before.drain(..before.len() - take_before);
        before.extend(after.into_iter().take(take_after));
        Ok(before)
    }

    /// The first `limit` records with `after < id < before`, newest first if `descending`.
    fn query(&self, descending: bool, after: i64, before: i64) -> rusqlite::Result<Vec<Record>> {
        self.conn
            .prepare_cached(range_sql(self.include, descending))?
            .query_map(params![self.key, after, before, sql_limit(self.limit)], record)?
            .collect()
    }
}

/// The columns [`record`] reads, in its order.
const RECORD_COLUMNS: &str = "id, target, kind, nick, user, host, text, extra, tags, redacted";

/// A record from a row of [`RECORD_COLUMNS`].
fn record(row: &Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        id: row.get(0)?,
        target: row.get(1)?,
        kind: row.get(2)?,
        nick: row.get::<_, String>(3)?.into(),
        user: row.get::<_, String>(4)?.into(),
        host: row.get::<_, String>(5)?.into(),
        text: row.get(6)?,
        extra: row.get(7)?,
        tags: tags_from_sql(&row.get::<_, String>(8)?),
        redacted: row.get(9)?,
    })
}

/// Client tags as stored: a JSON array of `[key, value or null]`, or `''` for none (most
/// messages), which costs nothing to write or read.
pub(super) fn tags_to_sql(tags: &Tags) -> String {
    if tags.is_empty() { String::new() } else { serde_json::to_string(tags).unwrap_or_default() }
}

/// The tags of [`tags_to_sql`] read back; what cannot be read (edited by hand) counts as none.
pub(super) fn tags_from_sql(text: &str) -> Tags {
    if text.is_empty() { Tags::new() } else { serde_json::from_str(text).unwrap_or_default() }
}

/// What people said ([`RecordKind::is_message`]) as a condition on `kind`, the partial index
/// `messages_said`'s own: `(kind = 'privmsg' OR kind = 'notice' OR …)`. Comparisons, not
/// `kind IN (…)`: SQLite builds a temporary table for an `IN` list each time a statement
/// evaluates it, and every insert evaluates the index's condition.
pub(super) fn said_condition() -> String {
    let kinds: Vec<String> =
        RecordKind::ALL.into_iter().filter(|k| k.is_message()).map(|k| format!("kind = '{}'", k.as_str())).collect();
    format!("({})", kinds.join(" OR "))
}

/// Everything else, the partial index `messages_events`'s condition.
pub(super) fn events_condition() -> String {
    format!("NOT {}", said_condition())
}

/// `SELECT {columns} FROM messages WHERE {condition}` over both partial indexes, each record
/// once, in id order (`ASC` or `DESC`), as far as `limit`: `condition` must narrow to one
/// target, as the indexes are by target.
pub(super) fn both_indexes(columns: &str, condition: &str, order: &str, limit: &str) -> String {
    let from = |kinds: String| format!("SELECT {columns} FROM messages WHERE {condition} AND {kinds}");
    format!("{} UNION ALL {} ORDER BY id {order} LIMIT {limit}", from(said_condition()), from(events_condition()))
}

/// The query behind [`Range`], newest first if `descending`. Its parameters: the target key, the
/// exclusive id bounds, the limit. Built once: every history read looks its statement up by
/// this text, and a read of everything would otherwise format the kinds' conditions three times.
pub(super) fn range_sql(include: Include, descending: bool) -> &'static str {
    static QUERIES: LazyLock<[String; 4]> = LazyLock::new(|| {
        [
            (Include::Messages, "ASC"),
            (Include::Messages, "DESC"),
            (Include::Everything, "ASC"),
            (Include::Everything, "DESC"),
        ]
        .map(|(include, order)| build_range_sql(include, order))
    });
    let include_at = match include {
        Include::Messages => 0,
        Include::Everything => 2,
    };
    &QUERIES[include_at + usize::from(descending)]
}

/// [`range_sql`]'s text, with `order` `ASC` or `DESC`.
fn build_range_sql(include: Include, order: &str) -> String {
    let condition = "target_key = ?1 AND id > ?2 AND id < ?3";
    match include {
        Include::Everything => both_indexes(RECORD_COLUMNS, condition, order, "?4"),
        Include::Messages => format!(
            "SELECT {RECORD_COLUMNS} FROM messages WHERE {condition} AND {} ORDER BY id {order} LIMIT ?4",
            said_condition()
        ),
    }
}

impl FromSql for MsgId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let id = i64::column_result(value)?;
        u64::try_from(id).map(MsgId).map_err(|_| FromSqlError::OutOfRange(id))
    }
}

impl FromSql for RecordKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        RecordKind::from_name(name).ok_or_else(|| FromSqlError::Other(format!("unknown record kind {name:?}").into()))
    }
}

/// The read-only connection [`Store::history`] and the other reads share.
pub(super) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let reader = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    reader.busy_timeout(BUSY_TIMEOUT)?;
    reader.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(reader)
}

/// Copies the database `source` into the (empty) file `to` in one backup step, and checks the
/// copy.
fn copy_database(source: &Connection, to: &Path) -> Result<(), String> {
    let mut copy = Connection::open(to).map_err(|e| e.to_string())?;
    {
        let backup = Backup::new(source, &mut copy).map_err(|e| e.to_string())?;
        let started = std::time::Instant::now();
        // Busy or locked: the server is checkpointing, or its writer holds a lock; it lets go
        // within a commit.
        while backup.step(-1).map_err(|e| e.to_string())? != StepResult::Done {
            if started.elapsed() > BUSY_TIMEOUT {
                return Err(format!("the database stayed busy for {BUSY_TIMEOUT:?}; try again"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let check: String = copy.query_row("PRAGMA quick_check", [], |row| row.get(0)).map_err(|e| e.to_string())?;
    if check != "ok" {
        return Err(format!("the copy fails SQLite's check: {check}"));
    }
    Ok(())
}

/// Creates and removes a scratch file in `dir`: the one sure test that files can be made there
/// (permission bits alone do not tell, e.g. for root or on a read-only mount).
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(".charla-write-test");
    OpenOptions::new().write(true).create(true).truncate(true).open(&probe)?;
    fs::remove_file(&probe)
}

/// A database error as the store reports it, sorted by what the operator can do about it.
fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    let reason = e.to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt { path: path.to_owned(), reason }
        }
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            StoreError::NotWritable { dir: path.parent().unwrap_or(path).to_owned(), reason }
        }
        _ => StoreError::Database { path: path.to_owned(), reason },
    }
}

/// A failed migration: the file is an SQLite database but not one charla can use (tables of
/// the same name and another shape, say), unless the failure was the disk's.
fn corrupt_unless_io(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure | ErrorCode::ReadOnly) => classify(path, e),
        _ => StoreError::Corrupt { path: path.to_owned(), reason: e.to_string() },
    }
}
