//! History that survives restarts: every message and room event, the state of each room, and
//! the queries IRCv3 `draft/chathistory` (and `draft/event-playback`) need to replay them.
//!
//! # Shape
//!
//! [`Store`] is the interface the rest of charla talks to; [`SqliteStore`] is the default
//! implementation, an embedded SQLite file that needs no setup; [`PgStore`] keeps the same in
//! PostgreSQL, which several nodes share ([`postgres`]). [`StoreLocation`] (`serve --store`)
//! says which one a server opens; [`AccountStore`] is implemented by both too. The same test
//! cases run on both, so their answers are the same.
//!
//! - Writing never waits: [`Store::append`] and [`Store::save_room`] hand their data to ONE
//!   writer, which commits whatever has queued up in one transaction. The hub can call them
//!   while holding its lock.
//! - [`Store::flush`] and [`Store::retain`] return a [`Pending`] answer: `.await` it in async
//!   code, or [`Pending::wait`] for it on a plain thread.
//! - Reads ([`Store::history`], [`Store::targets`], [`Store::rooms`]) are synchronous and block
//!   for the length of one indexed query, typically well under a millisecond. They see what has
//!   been committed; after `flush` resolves, that includes everything appended before it.
//!
//! # Targets and privacy
//!
//! Every record belongs to one *target*. A room's target is its name; lookups fold its case
//! (`#Lobby` and `#lobby` are one room) while the records keep the name as it was displayed.
//! A private message's target is [`dm_key`] of its two parties, which only those two can
//! compute from their own nick and the other's: a history query for a conversation is always
//! made with the asker's own nick, so no one can read a conversation they are not part of.
//! Keys are per nick, so a conversation held under an old nick stays under the old pair.
//!
//! # Durability
//!
//! A clean shutdown loses nothing: once [`Store::flush`] resolves, everything appended before
//! it is committed, and dropping a [`SqliteStore`] commits whatever is still queued before it
//! returns. `kill -9` loses at most what was not yet committed, the last batch window: at
//! most [`sqlite::GATHER`] and the time to write it at chat rates, a few milliseconds under a
//! burst ([`sqlite::COMMIT_WINDOW`]). A failing disk loses
//! nothing either: records wait in memory and are retried until they are stored, and the store
//! says it is [degraded](Store::degraded) meanwhile. [`sqlite`] states the exact bounds.
//!
//! # Message ids and time
//!
//! A record's [`MsgId`] is its primary key and its clock: ids are unique and time-ordered, and
//! the time of a record is [`MsgId::millis`]. Paging by id therefore never skips or repeats a
//! record at a page border, even when many records share one millisecond, and a timestamp bound
//! is simply the range of ids made in that millisecond.

pub mod accounts;
mod command;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use compact_str::CompactString;
use tokio::sync::oneshot;

use crate::chat::text::fold;
use crate::chat::{Ban, MsgId, Tags, Topic};
pub use accounts::{AccountStore, StoredAccount};
pub use postgres::{PgAccounts, PgStore};
pub use sqlite::{SqliteAccounts, SqliteStore};

/// Where history and accounts are kept (`serve --store`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite file in the data directory (the default; no setup).
    #[default]
    Sqlite,
    /// A PostgreSQL database, by its URL (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`), which
    /// several nodes can share.
    Postgres(String),
}

impl std::str::FromStr for StoreLocation {
    type Err = String;

    /// `sqlite`, or a `postgres://` (`postgresql://`) URL.
    fn from_str(s: &str) -> Result<StoreLocation, String> {
        if s == "sqlite" {
            Ok(StoreLocation::Sqlite)
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            postgres::PgUrl::parse(s).map_err(|e| e.to_string())?;
            Ok(StoreLocation::Postgres(s.to_string()))
        } else {
            Err(format!(
                "'{s}' is not a store: write sqlite (a file in --data-dir, the default) or \
                 postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            ))
        }
    }
}

impl StoreLocation {
    /// Opens the history and the accounts kept at this location (`data_dir` for SQLite).
    pub fn open(&self, data_dir: &std::path::Path) -> Result<Opened, StoreError> {
        match self {
            StoreLocation::Sqlite => {
                let store = SqliteStore::open(data_dir)?;
                let accounts = SqliteAccounts::open(data_dir)?;
                Ok(Opened { store: Arc::new(store), accounts: Arc::new(accounts) })
            }
            StoreLocation::Postgres(url) => {
                let store = PgStore::open(url)?;
                let accounts = store.accounts();
                Ok(Opened { store: Arc::new(store), accounts: Arc::new(accounts) })
            }
        }
    }
}

/// The history and the accounts of one [`StoreLocation`].
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub accounts: Arc<dyn AccountStore>,
}

/// The history store: one writer, any number of readers. See the [module docs](self).
pub trait Store: Send + Sync {
    /// Queues `record` for the writer and returns at once. A record whose id is already stored
    /// is ignored, so handing the same event in twice stores it once.
    ///
    /// Fails without storing when the writer has fallen too far behind
    /// ([`StoreError::Backlog`]) or has stopped.
    fn append(&self, record: Record) -> Result<(), StoreError>;

    /// Queues the creation or replacement of a room's persisted state.
    fn save_room(&self, state: RoomState) -> Result<(), StoreError>;

    /// Queues the removal of a room's persisted state (its history stays).
    fn forget_room(&self, name: &str) -> Result<(), StoreError>;

    /// Queues a note that guest number `number` was given out, so that [`Store::last_guest`]
    /// is at least `number` from now on, also after a restart.
    fn save_guest(&self, number: u64) -> Result<(), StoreError>;

    /// The highest guest number given out so far (0 if none).
    fn last_guest(&self) -> Result<u64, StoreError>;

    /// Resolves once everything queued before this call is committed. While writes fail (see
    /// [`Store::degraded`]) it fails at once with [`StoreError::Paused`]: what was queued is
    /// kept and retried, not lost.
    fn flush(&self) -> Pending<()>;

    /// Whether history is not being written right now because writes fail (a full disk, say):
    /// what is appended meanwhile waits in memory, within a bound, and is retried until it is
    /// stored. For health checks, metrics and telling senders.
    fn degraded(&self) -> bool;

    /// Whether the writer has fallen more than [`sqlite::MAX_LAG`] behind what was appended:
    /// the sessions then read their senders' next lines only once it has caught up
    /// ([`Store::flush`]), so that what `kill -9` can lose stays a few milliseconds' worth.
    fn behind(&self) -> bool;

    /// The newest record id the writer has committed. Records are committed in the order they
    /// were appended, so every record appended with an id up to this one can be read.
    fn committed(&self) -> MsgId;

    /// Queues the redaction of the record `id` of `target`: its text and tags are removed and it
    /// is marked [`Record::redacted`]. Nothing happens if `target` has no such record. `by` is
    /// the redaction's own id: once it is written, [`Store::committed`] is at least `by`, so a
    /// read that waits for it sees the record redacted.
    fn redact(&self, target: &str, id: MsgId, by: MsgId) -> Result<(), StoreError>;

    /// The record `id` of `target` (a room name or a [`dm_key`]), if it has one.
    fn message(&self, target: &str, id: MsgId) -> Result<Option<Record>, StoreError>;

    /// Deletes what `policy` no longer keeps and resolves to the number of records deleted.
    /// The writer does this in small steps between batches of new records, so appends never
    /// wait for a long delete.
    fn retain(&self, policy: Retention) -> Pending<usize>;

    /// Up to `limit` records of `target` (a room name or a [`dm_key`]) chosen by `selector`
    /// among those `include` admits, oldest first. An unknown target has no history: the
    /// answer is empty, not an error.
    fn history(
        &self,
        target: &str,
        selector: &Selector,
        limit: usize,
        include: Include,
    ) -> Result<Vec<Record>, StoreError>;

    /// `CHATHISTORY TARGETS`: the conversations of `nick` and those of `rooms` (the rooms the
    /// asker may read, chosen by the caller) whose newest record of any kind lies strictly
    /// between `from` and `to`. Counted from `from` like [`Selector::Between`] (either order works), at most
    /// `limit`, returned oldest activity first.
    fn targets(
        &self,
        nick: &str,
        rooms: &[&str],
        from: Bound,
        to: Bound,
        limit: usize,
    ) -> Result<Vec<TargetActivity>, StoreError>;

    /// Every persisted room, in name order, to recreate them at start-up.
    fn rooms(&self) -> Result<Vec<RoomState>, StoreError>;
}

/// What a history record is; each becomes one IRC line when replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Privmsg,
    Notice,
    /// A `/me` line (CTCP ACTION).
    Action,
    /// Tags alone worth keeping, such as a reaction (`+draft/react`); a typing notice is not kept.
    TagMsg,
    Join,
    Part,
    Quit,
    Nick,
    Topic,
    Kick,
    Mode,
}

impl RecordKind {
    const ALL: [RecordKind; 11] = [
        RecordKind::Privmsg,
        RecordKind::Notice,
        RecordKind::Action,
        RecordKind::TagMsg,
        RecordKind::Join,
        RecordKind::Part,
        RecordKind::Quit,
        RecordKind::Nick,
        RecordKind::Topic,
        RecordKind::Kick,
        RecordKind::Mode,
    ];

    /// The name stored in the database: the IRC command, lowercase (`action` for `/me`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Privmsg => "privmsg",
            RecordKind::Notice => "notice",
            RecordKind::Action => "action",
            RecordKind::TagMsg => "tagmsg",
            RecordKind::Join => "join",
            RecordKind::Part => "part",
            RecordKind::Quit => "quit",
            RecordKind::Nick => "nick",
            RecordKind::Topic => "topic",
            RecordKind::Kick => "kick",
            RecordKind::Mode => "mode",
        }
    }

    /// The kind stored as `name`, if it is one.
    pub fn from_name(name: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// A line someone said, or a reaction to one (as opposed to a change of state): what a
    /// client without `event-playback` is shown.
    pub fn is_message(self) -> bool {
        matches!(self, RecordKind::Privmsg | RecordKind::Notice | RecordKind::Action | RecordKind::TagMsg)
    }
}

/// One stored line of history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Unique and time-ordered; also the record's time ([`Record::time`]).
    pub id: MsgId,
    /// The room name as displayed (`#Lobby`), or for a private message the [`dm_key`] of its
    /// sender and recipient.
    pub target: String,
    pub kind: RecordKind,
    /// Who said or did it: shared with the event the record keeps (the nick inline up to 24
    /// bytes), so that recording it copies no string.
    pub nick: CompactString,
    pub user: Arc<str>,
    pub host: Arc<str>,
    /// The message; the part, quit or kick reason; the new nick; the topic; the mode changes
    /// (`+o bob`); the real name of a joiner.
    pub text: String,
    /// The kicked nick, or the recipient of a private message; empty otherwise.
    pub extra: String,
    /// The client-only tags a message was sent with (`+draft/reply`, `+draft/react`, …), but
    /// never `+typing`, which is of no use later.
    pub tags: Tags,
    /// The message was redacted: its text and tags are gone.
    pub redacted: bool,
}

impl Record {
    /// When the record was made, in milliseconds since the Unix epoch.
    pub fn time(&self) -> u64 {
        self.id.millis()
    }

    /// The nick of `party` (folded, one side of a private conversation) as this record spells
    /// it: its sender's or its recipient's, else `party` itself.
    pub fn spelling<'a>(&'a self, party: &'a str) -> &'a str {
        [self.nick.as_str(), self.extra.as_str()].into_iter().find(|nick| fold(nick) == party).unwrap_or(party)
    }
}

/// The target under which the private messages between nicks `a` and `b` are stored, the same
/// whichever of the two asks: both nicks folded (ASCII lowercase), in order, each after a
/// `\x01`. No nick contains `\x01` and every room name starts with `#`, so the key can never
/// be mistaken for a room or for another pair.
///
/// ```
/// use charla::store::dm_key;
/// assert_eq!(dm_key("Bob", "alice"), "\u{1}alice\u{1}bob");
/// assert_eq!(dm_key("alice", "BOB"), dm_key("bob", "Alice"));
/// ```
pub fn dm_key(a: &str, b: &str) -> String {
    let (a, b) = (fold(a), fold(b));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("{DM_MARK}{lo}{DM_MARK}{hi}")
}

/// Starts and separates the two nicks of a [`dm_key`].
const DM_MARK: char = '\u{1}';

/// The two folded nicks of a [`dm_key`], or `None` for a room.
fn dm_parties(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(DM_MARK)?.split_once(DM_MARK)
}

/// A point in history, as a `CHATHISTORY` command names it: `msgid=…` or `timestamp=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A message id; the message itself is never part of a range it bounds.
    MsgId(MsgId),
    /// Milliseconds since the Unix epoch; every record made in that millisecond lies *at* the
    /// bound, so none of them is part of a range it bounds.
    Time(u64),
}

/// Which records of a target [`Store::history`] returns, with the meaning of IRCv3
/// `draft/chathistory`. Bounds are exclusive; every answer is in ascending id (time) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// `LATEST`: the newest records; with a bound, only records after it.
    Latest(Option<Bound>),
    /// `BEFORE`: the newest records before the bound.
    Before(Bound),
    /// `AFTER`: the oldest records after the bound.
    After(Bound),
    /// `AROUND`: a window centred on the bound: half of `limit` before it, the rest at or after
    /// it (so `msgid=X` includes X itself); when one side runs out, the other fills in.
    Around(Bound),
    /// `BETWEEN`: records between the two bounds, counted from the first: the oldest after it
    /// when it is the earlier bound, the newest before it when it is the later one.
    Between(Bound, Bound),
}

/// Which records a history query considers, counting towards its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// Only what people said ([`RecordKind::is_message`]): for clients without
    /// `draft/event-playback`, which must be sent nothing else.
    Messages,
    /// Messages and changes of state alike: joins, parts, quits, nick changes, topics, kicks
    /// and modes.
    Everything,
}

/// When the newest record of one target was made, for `CHATHISTORY TARGETS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetActivity {
    /// The room's name as displayed, or for a private conversation the other party's nick.
    pub name: String,
    /// The newest record's id; its time is [`MsgId::millis`].
    pub latest: MsgId,
}

/// A room's persisted settings, enough to recreate it after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomState {
    /// The name as displayed; rooms are keyed by its folded form.
    pub name: String,
    /// When the room was created, in milliseconds since the Unix epoch.
    pub created: u64,
    pub topic: Option<Topic>,
    /// The modes as rendered for members, key included (`+klnt secret 10`).
    pub modes: String,
    /// The ban list, oldest first.
    pub bans: Vec<Ban>,
}

/// What history to keep. `None` keeps everything on that account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many newest messages per target, with the room events (joins, quits,
    /// …) among them, and at most this many room events.
    pub max_per_target: Option<usize>,
    /// Keep records no older than this.
    pub max_age: Option<Duration>,
}

/// A failure of the store, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {dir} is not writable: {reason}; fix its permissions or pick another with --data-dir")]
    NotWritable { dir: PathBuf, reason: String },
    #[error(
        "{path} is damaged or is not a charla history database ({reason}); move it aside to start with empty history, or restore it from a backup"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path} was written by a newer charla (schema version {found}, this one knows up to {known}); upgrade charla, or pick another --data-dir"
    )]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("the history database {path} failed: {reason}; check that the disk is healthy and not full")]
    Database { path: PathBuf, reason: String },
    #[error(
        "history is not being written fast enough ({0} records are waiting), so this one was not stored; check that the disk is healthy and not full"
    )]
    Backlog(usize),
    #[error(
        "history is not being written ({reason}); {waiting} records wait in memory and are retried until they are stored"
    )]
    Paused { waiting: usize, reason: String },
    #[error("there is no history database at {path}; is the data directory right (--data-dir)?")]
    NotFound { path: PathBuf },
    #[error("cannot write the backup {path}: {reason}")]
    Backup { path: PathBuf, reason: String },
    #[error("the history writer has stopped (the log says why); restart charla")]
    WriterGone,
    #[error("message id {0} is beyond what the store can keep (year 2248); check the system clock")]
    IdOutOfRange(MsgId),
    #[error("{0}")]
    Location(String),
    #[error(
        "cannot connect to PostgreSQL at {url}: {reason}; is it running, and are the host, port, user, password and database of --store right?"
    )]
    PgConnect { url: String, reason: String },
    #[error("PostgreSQL at {url} failed: {reason}; its log may say more")]
    Pg { url: String, reason: String },
    #[error(
        "the PostgreSQL database at {url} was written by a newer charla (schema version {found}, this one knows up to {known}); upgrade charla, or point --store at another database"
    )]
    PgTooNew { url: String, found: i64, known: i64 },
}

impl StoreError {
    /// What a chat client is told of this failure: what happened, in a few words, without the
    /// server's paths or SQLite's wording, which are for the operators' log.
    pub fn brief(&self) -> &'static str {
        match self {
            StoreError::Backlog(_) | StoreError::Paused { .. } => {
                "history cannot be written right now; the server's operators have been told"
            }
            StoreError::Corrupt { .. } => "the history database is damaged; the server's operators have the details",
            StoreError::IdOutOfRange(_) => "the server's clock is wrong; the server's operators have the details",
            _ => "history is unavailable right now; the server's operators have the details",
        }
    }
}

/// An answer the writer will give: `.await` it, or [`wait`](Pending::wait) for it.
#[derive(Debug)]
#[must_use = "the answer says whether the operation succeeded"]
pub struct Pending<T>(oneshot::Receiver<Result<T, StoreError>>);

impl<T> Pending<T> {
    /// Blocks the calling thread until the answer comes.
    ///
    /// # Panics
    ///
    /// When called from inside an async runtime, which must not block: `.await` there instead.
    pub fn wait(self) -> Result<T, StoreError> {
        self.0.blocking_recv().unwrap_or(Err(StoreError::WriterGone))
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|answer| answer.unwrap_or(Err(StoreError::WriterGone)))
    }
}
