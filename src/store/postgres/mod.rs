//! The [`Store`] for several nodes: one PostgreSQL database (`serve --store postgres://…`),
//! with the same tables, the same semantics and the same answers as the SQLite store
//! ([`super::sqlite`]), which is what the store tests check by running one set of cases on both.
//!
//! # Design
//!
//! The [`Store`] trait is synchronous and is called from tokio workers and from plain threads
//! alike, so the driver (tokio-postgres) runs on a runtime of its own: one thread
//! (`charla-pg`) owned by the store, which no caller ever blocks on. Each call is a task sent to
//! it (an `Engine`); a synchronous read waits for its answer on a standard channel, as a read of
//! the SQLite store waits for its query, bounded by [`READ_TIMEOUT`].
//!
//! - One writer task owns the writing connection. It sleeps until something is queued, then
//!   takes everything queued and writes it in ONE transaction: each run of records is one
//!   `INSERT … SELECT FROM unnest(…) ON CONFLICT (id) DO NOTHING`, so a batch costs a few round
//!   trips whatever its size, and what queues up during a commit forms the next batch by
//!   itself. No gathering window is needed: the round trip is it.
//! - [`Store::append`] is idempotent by record id, as a cluster needs (every node appends every
//!   event it applies): a record whose id is stored is skipped, and the per-owner `targets`
//!   bookkeeping is updated only from the records the insert actually added. Rows are written
//!   in id and key order, so two nodes writing the same records never deadlock on each other;
//!   should PostgreSQL still report a deadlock or a serialization failure, the batch is simply
//!   run again.
//! - Reads share a second connection (tokio-postgres pipelines concurrent queries on it),
//!   opened again after it broke. They see what is committed, by any node. There is no
//!   process-local cache (unlike the SQLite store's memory of silent targets), so nothing a
//!   node reads can be stale because another node wrote.
//! - Retention deletes in chunks of [`RETAIN_CHUNK`] rows, each its own statement, writing
//!   what has queued in between, as the SQLite writer does.
//!
//! # PostgreSQL unreachable or failing
//!
//! A batch that fails to commit (PostgreSQL stopped, restarting, unreachable, refusing) is kept
//! in memory, in order, and tried again after 50 ms, then after twice as long each time, up to
//! [`RETRY_MAX`], on a new connection when the old one broke; what arrives meanwhile waits
//! behind it, up to [`QUEUE_LIMIT`] records, past which [`Store::append`] refuses. The store
//! says it is [degraded](Store::degraded) from the first failure until a try succeeds (both
//! logged once), and [`Store::flush`] answers [`StoreError::Paused`] meanwhile. Every write is
//! idempotent, so a batch whose commit was cut off (and may or may not have been committed) is
//! safely written again. A connection that stops answering without closing (a machine or a
//! network gone without a word) counts as failed after 10 s without an answer to a batch, so
//! a silent PostgreSQL holds up writes (and senders waiting for them) for that long at most. Reads fail with [`StoreError::PgConnect`] or [`StoreError::Pg`],
//! which say what to check; the next read connects again.
//!
//! # Durability
//!
//! A record is committed when PostgreSQL says so (with its default `synchronous_commit = on`,
//! once its write-ahead log is on disk). A clean shutdown loses nothing: dropping the store
//! lets the writer commit everything queued first (trying once more if PostgreSQL is failing
//! then, and logging what it could not write). `kill -9` of the server loses what was queued
//! and not yet committed: at chat rates the writer is idle and commits each record within a
//! round trip of its `append`; [`Store::behind`] makes senders wait when it falls more than
//! [`MAX_LAG`] behind, as with SQLite.
//!
//! TLS to PostgreSQL is not supported: run it on the same machine or a private network.

mod accounts;
mod copy;
mod schema;
mod writer;

pub use accounts::PgAccounts;
pub use copy::{Copied, copy_from_sqlite};

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio_postgres::{Client, NoTls, Row};

use super::sqlite::{END, FIRST, from_sql_int, sql_id, sql_limit, tags_from_sql};
use super::{
    Bound, Include, Pending, Record, RecordKind, Retention, RoomState, Selector, Store, StoreError, TargetActivity,
};
use crate::chat::text::fold;
use crate::chat::{Ban, MsgId, Topic};
use writer::{Command, Writer};

pub use super::sqlite::{MAX_LAG, QUEUE_LIMIT, RETAIN_CHUNK, RETRY_MAX};

/// Longest a read waits for PostgreSQL's answer before it fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a connection attempt waits.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the database is: a `postgres://` URL, parsed, and the same without its password for
/// messages and logs.
#[derive(Clone)]
pub struct PgUrl {
    config: tokio_postgres::Config,
    shown: String,
}

impl std::fmt::Debug for PgUrl {
    /// Without the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for PgUrl {
    /// Without the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PgUrl {
    /// Parses `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (or `postgresql://…`, with
    /// PostgreSQL's query parameters).
    pub fn parse(url: &str) -> Result<PgUrl, StoreError> {
        let shown = without_password(url);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Location(format!(
                "'{shown}' is not a PostgreSQL URL; write postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            )));
        }
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Location(format!(
                "'{shown}' is not a PostgreSQL URL ({e}); write postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("charla");
        }
        // A peer that vanished (a cable pulled, a machine gone) is noticed within a minute.
        config.keepalives_idle(Duration::from_secs(30));
        Ok(PgUrl { config, shown })
    }

    fn unreachable(&self, reason: String) -> StoreError {
        StoreError::PgConnect { url: self.shown.clone(), reason }
    }

    fn failed(&self, failure: Failure) -> StoreError {
        match failure {
            Failure::Connect(reason) => self.unreachable(reason),
            Failure::Db(reason) => StoreError::Pg { url: self.shown.clone(), reason },
        }
    }

    /// Opens a connection, its I/O driven by a task of the current runtime.
    async fn connect(&self) -> Result<Client, Failure> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(Failure::connect)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("a PostgreSQL connection ended: {e}");
            }
        });
        Ok(client)
    }
}

/// `url` with its password, if it has one, replaced by `***`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_string() };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// Why a PostgreSQL operation failed: it could not reach the server, or the server refused.
#[derive(Debug)]
pub(super) enum Failure {
    Connect(String),
    Db(String),
}

impl Failure {
    fn connect(e: tokio_postgres::Error) -> Failure {
        match Failure::from(e) {
            Failure::Db(reason) | Failure::Connect(reason) => Failure::Connect(reason),
        }
    }

    /// Whether running the same transaction again may well succeed at once.
    fn is_transient(e: &tokio_postgres::Error) -> bool {
        use tokio_postgres::error::SqlState;
        e.code().is_some_and(|c| *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        match e.as_db_error() {
            Some(db) => {
                let mut reason = format!("{} ({})", db.message(), db.code().code());
                if let Some(detail) = db.detail() {
                    reason.push_str(": ");
                    reason.push_str(detail);
                }
                Failure::Db(reason)
            }
            None => {
                // tokio-postgres says "error connecting to server"; the cause is in the chain.
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    reason.push_str(": ");
                    reason.push_str(&cause.to_string());
                    source = cause.source();
                }
                Failure::Connect(reason)
            }
        }
    }
}

/// The driver's runtime, on a thread of its own, and the connection reads share.
pub(super) struct Engine {
    url: PgUrl,
    handle: Handle,
    reader: Arc<tokio::sync::Mutex<Option<Arc<Client>>>>,
    /// Ends the runtime's thread when sent or dropped.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    fn start(url: PgUrl) -> Result<Arc<Engine>, StoreError> {
        let (ready, started) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("charla-pg".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| url.failed(Failure::Db(format!("cannot start the PostgreSQL thread: {e}"))))?;
        let handle = started
            .recv()
            .unwrap_or_else(|_| Err("its thread ended".into()))
            .map_err(|e| url.failed(Failure::Db(format!("cannot start the PostgreSQL runtime: {e}"))))?;
        Ok(Arc::new(Engine { url, handle, reader: Arc::default(), stop: Some(stop), thread: Some(thread) }))
    }

    /// Runs `task` on the engine's runtime and waits up to `timeout` for its answer.
    fn wait<T, F>(&self, timeout: Duration, task: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Failure>> + Send + 'static,
    {
        let (answer, answered) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = answer.send(task.await);
        });
        match answered.recv_timeout(timeout) {
            Ok(result) => result.map_err(|f| self.url.failed(f)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(self.url.failed(Failure::Connect(format!("no answer within {} s", timeout.as_secs()))))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(StoreError::WriterGone),
        }
    }

    /// Runs `read` with the shared read connection (connecting first if there is none, or it
    /// broke) and waits for its answer, up to [`READ_TIMEOUT`].
    pub(super) fn read<T, F, Fut>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Client>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Failure>> + Send,
    {
        let (slot, url) = (self.reader.clone(), self.url.clone());
        let give_up = format!("no answer within {} s", READ_TIMEOUT.as_secs());
        // The task ends by itself too, and a connection that did not answer in time is not used
        // again: one that stopped answering without closing (a peer gone without a word) would
        // otherwise hold up every later read until the system's TCP timeout.
        self.wait(READ_TIMEOUT + Duration::from_secs(1), async move {
            let answer = tokio::time::timeout(READ_TIMEOUT, async {
                let client = {
                    let mut slot = slot.lock().await;
                    match &*slot {
                        Some(client) if !client.is_closed() => client.clone(),
                        _ => {
                            *slot = None;
                            let client = Arc::new(url.connect().await?);
                            *slot = Some(client.clone());
                            client
                        }
                    }
                };
                read(client).await
            })
            .await;
            match answer {
                Ok(answer) => answer,
                Err(_) => {
                    *slot.lock().await = None;
                    Err(Failure::Connect(give_up))
                }
            }
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// History in a PostgreSQL database. See the [module docs](self).
pub struct PgStore {
    engine: Arc<Engine>,
    /// The writer's queue; `None` only while dropping, to tell the writer to finish.
    queue: Option<tokio::sync::mpsc::UnboundedSender<Command>>,
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
    /// Disconnected when the writer task has ended.
    writer_done: std::sync::Mutex<mpsc::Receiver<()>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.engine.url).finish_non_exhaustive()
    }
}

/// What the store and its writer task share.
pub(super) struct WriterShared {
    pub backlog: Arc<AtomicUsize>,
    pub committed: Arc<AtomicU64>,
    pub degraded: Arc<AtomicBool>,
}

impl PgStore {
    /// Connects to the database at `url`, brings its schema up to date (one node at a time, see
    /// the schema module) and starts the writer. Fails when PostgreSQL cannot be reached now: a server
    /// is better not started than started without its history.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let url = PgUrl::parse(url)?;
        let engine = Engine::start(url.clone())?;
        let client = engine.wait(CONNECT_TIMEOUT * 4, prepare(url.clone()))?;
        let client = match client {
            Ok(client) => client,
            Err(found) => {
                return Err(StoreError::PgTooNew { url: url.shown.clone(), found, known: schema::VERSION });
            }
        };
        let (queue, commands) = tokio::sync::mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let committed = Arc::new(AtomicU64::new(0));
        let degraded = Arc::new(AtomicBool::new(false));
        let shared =
            WriterShared { backlog: backlog.clone(), committed: committed.clone(), degraded: degraded.clone() };
        let (done, writer_done) = mpsc::channel();
        let writer = Writer::new(url, client, commands, shared);
        engine.handle.spawn(async move {
            writer.run().await;
            drop(done);
        });
        Ok(PgStore {
            engine,
            queue: Some(queue),
            backlog,
            committed,
            degraded,
            appended: AtomicU64::new(0),
            behind_from: AtomicU64::new(0),
            writer_done: std::sync::Mutex::new(writer_done),
        })
    }

    /// The accounts in the same database, on the same connections.
    pub fn accounts(&self) -> PgAccounts {
        PgAccounts::new(self.engine.clone())
    }

    /// The database, without its password.
    pub fn url(&self) -> &PgUrl {
        &self.engine.url
    }

    /// How many records wait for the writer.
    pub fn queued(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        self.queue.as_ref().ok_or(StoreError::WriterGone)?.send(command).map_err(|_| StoreError::WriterGone)
    }

    fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command) -> Pending<T> {
        let (reply, answer) = oneshot::channel();
        let _ = self.send(command(reply));
        Pending(answer)
    }
}

/// Connects the writer's connection, checks the database's encoding and migrates; `Err(found)`
/// inside when the schema is newer than this build's.
async fn prepare(url: PgUrl) -> Result<Result<Client, i64>, Failure> {
    let mut client = url.connect().await?;
    let encoding: String = client.query_one("SHOW server_encoding", &[]).await?.get(0);
    if !encoding.eq_ignore_ascii_case("UTF8") {
        return Err(Failure::Db(format!(
            "the database's encoding is {encoding}, and charla stores text of every language: \
             create it with ENCODING 'UTF8' (createdb -E UTF8 -T template0 …)"
        )));
    }
    match schema::migrate(&mut client).await? {
        schema::Outcome::Current => Ok(Ok(client)),
        schema::Outcome::TooNew(found) => Ok(Err(found)),
    }
}

impl Drop for PgStore {
    /// Closes the queue and waits until the writer has committed everything in it.
    fn drop(&mut self) {
        self.queue = None;
        let _ = self.writer_done.lock().unwrap_or_else(|e| e.into_inner()).recv();
    }
}

impl Store for PgStore {
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
        self.engine.read(|c| async move {
            let row = c.query_opt("SELECT value FROM counters WHERE name = 'guest'", &[]).await?;
            Ok(row.map_or(0, |row| from_sql_int(row.get(0))))
        })
    }

    fn flush(&self) -> Pending<()> {
        self.ask(Command::Flush)
    }

    fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    fn behind(&self) -> bool {
        if self.backlog.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let since = self.committed().max(MsgId(self.behind_from.load(Ordering::Relaxed)));
        let lag = MsgId(self.appended.load(Ordering::Relaxed)).millis().saturating_sub(since.millis());
        lag > MAX_LAG.as_millis() as u64
    }

    fn committed(&self) -> MsgId {
        MsgId(self.committed.load(Ordering::Acquire))
    }

    fn redact(&self, target: &str, id: MsgId, by: MsgId) -> Result<(), StoreError> {
        self.send(Command::Redact(fold(target), id, by))
    }

    fn message(&self, target: &str, id: MsgId) -> Result<Option<Record>, StoreError> {
        let Some(id) = sql_id(id) else { return Ok(None) };
        let key = fold(target);
        self.engine.read(move |c| async move {
            let sql = format!("SELECT {RECORD_COLUMNS} FROM messages WHERE id = $1 AND target_key = $2");
            c.query_opt(&sql, &[&id, &key]).await?.map(|row| record(&row)).transpose()
        })
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
        let selector = *selector;
        self.engine.read(move |c| async move {
            let range = Range { client: &c, key: &key, limit, include };
            match selector {
                Selector::Latest(None) => range.newest(FIRST, END).await,
                Selector::Latest(Some(after)) => range.newest(after.last_id(), END).await,
                Selector::Before(before) => range.newest(FIRST, before.first_id()).await,
                Selector::After(after) => range.oldest(after.last_id(), END).await,
                Selector::Around(at) => range.around(at.first_id()).await,
                Selector::Between(from, to) if from.first_id() <= to.first_id() => {
                    range.oldest(from.last_id(), to.first_id()).await
                }
                Selector::Between(from, to) => range.newest(to.last_id(), from.first_id()).await,
            }
        })
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
        let owner = fold(nick);
        let mut keys: Vec<String> = rooms.iter().map(|r| fold(r)).collect();
        keys.sort_unstable();
        keys.dedup();
        self.engine.read(move |c| async move {
            let activity = |row: &Row| TargetActivity { name: row.get(0), latest: MsgId(from_sql_int(row.get(1))) };
            let sql = if newest_first {
                "SELECT name, latest FROM targets WHERE owner = $1 AND latest > $2 AND latest < $3 \
                 ORDER BY latest DESC LIMIT $4"
            } else {
                "SELECT name, latest FROM targets WHERE owner = $1 AND latest > $2 AND latest < $3 \
                 ORDER BY latest ASC LIMIT $4"
            };
            let mut found: Vec<TargetActivity> =
                c.query(sql, &[&owner, &after, &before, &sql_limit(limit)]).await?.iter().map(activity).collect();
            let rooms = c
                .query(
                    "SELECT name, latest FROM targets WHERE owner = '' AND key = ANY($1) \
                     AND latest > $2 AND latest < $3",
                    &[&keys, &after, &before],
                )
                .await?;
            found.extend(rooms.iter().map(activity));
            found.sort_by_key(|t| t.latest);
            if newest_first {
                found.reverse();
            }
            found.truncate(limit);
            found.sort_by_key(|t| t.latest);
            Ok(found)
        })
    }

    fn rooms(&self) -> Result<Vec<RoomState>, StoreError> {
        self.engine.read(|c| async move {
            let rows = c
                .query("SELECT name, created, topic, topic_by, topic_at, modes, key FROM rooms ORDER BY key", &[])
                .await?;
            let mut rooms: Vec<(String, RoomState)> = rows
                .iter()
                .map(|row| {
                    let topic = row.get::<_, Option<String>>(2).map(|text| Topic {
                        text,
                        set_by: row.get::<_, Option<String>>(3).unwrap_or_default(),
                        at: row.get::<_, Option<i64>>(4).map_or(0, from_sql_int),
                    });
                    let state = RoomState {
                        name: row.get(0),
                        created: from_sql_int(row.get(1)),
                        topic,
                        modes: row.get(5),
                        bans: Vec::new(),
                    };
                    (row.get(6), state)
                })
                .collect();
            let bans = c
                .query("SELECT room_key, mask, set_by, set_at FROM room_bans ORDER BY room_key, position", &[])
                .await?;
            for row in &bans {
                let key: &str = row.get(0);
                if let Ok(at) = rooms.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
                    let ban = Ban { mask: row.get(1), set_by: row.get(2), at: from_sql_int(row.get(3)) };
                    rooms[at].1.bans.push(ban);
                }
            }
            Ok(rooms.into_iter().map(|(_, room)| room).collect())
        })
    }
}

/// The records of one target with ids strictly between two bounds, at most `limit` of them.
struct Range<'a> {
    client: &'a Client,
    key: &'a str,
    limit: usize,
    include: Include,
}

impl Range<'_> {
    /// The oldest records with `after < id < before`, oldest first.
    async fn oldest(&self, after: i64, before: i64) -> Result<Vec<Record>, Failure> {
        self.query("ASC", after, before).await
    }

    /// The newest records with `after < id < before`, oldest first.
    async fn newest(&self, after: i64, before: i64) -> Result<Vec<Record>, Failure> {
        let mut records = self.query("DESC", after, before).await?;
        records.reverse();
        Ok(records)
    }

    /// Half of `limit` (rounded down) before `at`, the rest from `at` on; a side with too few
    /// records leaves its share to the other (as the SQLite store does).
    async fn around(&self, at: i64) -> Result<Vec<Record>, Failure> {
        let mut before = self.newest(FIRST, at).await?;
        let after = self.oldest(at - 1, END).await?;
        let take_before = before.len().min((self.limit / 2).max(self.limit.saturating_sub(after.len())));
        let take_after = after.len().min(self.limit - take_before);
        before.drain(..before.len() - take_before);
        before.extend(after.into_iter().take(take_after));
        Ok(before)
    }

    async fn query(&self, order: &str, after: i64, before: i64) -> Result<Vec<Record>, Failure> {
        let sql = range_sql(self.include, order);
        let rows = self.client.query(&sql, &[&self.key, &after, &before, &sql_limit(self.limit)]).await?;
        rows.iter().map(record).collect()
    }
}

/// The columns [`record`] reads, in its order.
const RECORD_COLUMNS: &str = "id, target, kind, nick, \"user\", host, text, extra, tags, redacted";

/// The kinds of what people said ([`RecordKind::is_message`]) as an SQL list,
/// `('privmsg', 'notice', …)`, as the partial index `messages_said` has it.
fn said_kinds() -> String {
    let kinds: Vec<String> =
        RecordKind::ALL.into_iter().filter(|k| k.is_message()).map(|k| format!("'{}'", k.as_str())).collect();
    format!("({})", kinds.join(", "))
}

/// The history query: the target key, the exclusive id bounds, the limit.
fn range_sql(include: Include, order: &str) -> String {
    let only = match include {
        Include::Everything => String::new(),
        Include::Messages => format!("AND kind IN {}", said_kinds()),
    };
    format!(
        "SELECT {RECORD_COLUMNS} FROM messages \
         WHERE target_key = $1 AND id > $2 AND id < $3 {only} ORDER BY id {order} LIMIT $4"
    )
}

/// A record from a row of [`RECORD_COLUMNS`].
fn record(row: &Row) -> Result<Record, Failure> {
    let kind: &str = row.get(2);
    let kind = RecordKind::from_name(kind)
        .ok_or_else(|| Failure::Db(format!("the messages table holds an unknown record kind {kind:?}")))?;
    Ok(Record {
        id: MsgId(from_sql_int(row.get(0))),
        target: row.get(1),
        kind,
        nick: row.get::<_, String>(3).into(),
        user: row.get::<_, String>(4).into(),
        host: row.get::<_, String>(5).into(),
        text: row.get(6),
        extra: row.get(7),
        tags: tags_from_sql(row.get(8)),
        redacted: row.get(9),
    })
}
