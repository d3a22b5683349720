//! The database schema and its migrations.
//!
//! The schema version is SQLite's `PRAGMA user_version`: migration `n` (counting from 1) takes
//! a database from version `n - 1` to `n`, in one transaction with the version bump, so a
//! crash mid-migration leaves the old version intact. A database of a version above
//! [`VERSION`] was written by a newer charla and is refused, never guessed at.
//!
//! - `messages`: one row per [`Record`](crate::store::Record). `id` is the [`MsgId`]
//!   (the rowid, so id ranges are primary-key ranges); `target_key` is the folded target and
//!   `target` the name as displayed; `time` is derived from the id, for people reading the
//!   database by hand. Two partial indexes on `(target_key, id)` split the records between
//!   them: `messages_said` holds what people said (migration 2), so a room whose history is
//!   mostly joins and quits does not make a read of messages scan them all, and
//!   `messages_events` everything else (migration 9). A read of everything merges the two
//!   (SQLite's `MERGE (UNION ALL)`, in id order, stopping at the limit). Until migration 9 a
//!   third index, `messages_by_target`, held every record again, so each message went into
//!   two indexes (`cargo bench --bench store`: 280 K records/s then, 408 K after).
//! - `targets`: the newest id of each target, per *owner*: `''` for rooms, each party's folded
//!   nick for a private conversation (two rows, `name` being the other party), so
//!   `CHATHISTORY TARGETS` reads a handful of rows instead of scanning history.
//! - `rooms`: persisted room state, keyed by folded name.
//! - `room_bans`: each persisted room's ban list, in the order the bans were set (migration 3).
//! - Migration 4: `messages.tags`, a message's client-only tags as a JSON array of
//!   `[key, value or null]` pairs (`''` for none); `messages.redacted`, 1 once a message was
//!   redacted (its text and tags are then emptied); and kept reactions (`tagmsg`) among the
//!   kinds `messages_said` serves.
//! - `counters`: numbers that must never repeat across restarts, by name: `guest`, the last
//!   guest number given out (migration 5).
//! - Migration 6, accounts ([`crate::store::accounts`]): `accounts`, keyed by the folded name, with
//!   the name as registered and its argon2id hash (a PHC string; never the password); and
//!   `read_markers`, how far each account has read each target (`draft/read-marker`); and
//!   `server_bans`, the operators' `KLINE`s, keyed by the folded mask.
//! - Migration 7: `account_certs`, the client certificates an account logs in with (SASL
//!   EXTERNAL), keyed by SHA-256 fingerprint (lowercase hex), each with its account's folded
//!   name and when it was added.
//!
//! [`MsgId`]: crate::chat::MsgId

use rusqlite::Connection;

/// The steps from an empty database to the current schema; never edit one that has shipped,
/// add a new one.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    target_key  TEXT NOT NULL,
    target      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    nick        TEXT NOT NULL,
    user        TEXT NOT NULL,
    host        TEXT NOT NULL,
    text        TEXT NOT NULL,
    extra       TEXT NOT NULL,
    time        INTEGER GENERATED ALWAYS AS (id >> 20) VIRTUAL
);
CREATE INDEX messages_by_target ON messages (target_key, id);

CREATE TABLE targets (
    owner   TEXT NOT NULL,
    key     TEXT NOT NULL,
    name    TEXT NOT NULL,
    latest  INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
) WITHOUT ROWID;
CREATE INDEX targets_by_latest ON targets (owner, latest);

CREATE TABLE rooms (
    key         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created     INTEGER NOT NULL,
    topic       TEXT,
    topic_by    TEXT,
    topic_at    INTEGER,
    modes       TEXT NOT NULL
) WITHOUT ROWID;
",
    "
CREATE INDEX messages_said ON messages (target_key, id) WHERE kind IN ('privmsg', 'notice', 'action');
",
    "
CREATE TABLE room_bans (
    room_key    TEXT NOT NULL,
    position    INTEGER NOT NULL,
    mask        TEXT NOT NULL,
    set_by      TEXT NOT NULL,
    set_at      INTEGER NOT NULL,
    PRIMARY KEY (room_key, position)
) WITHOUT ROWID;
",
    "
ALTER TABLE messages ADD COLUMN tags TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;
DROP INDEX messages_said;
CREATE INDEX messages_said ON messages (target_key, id) WHERE kind IN ('privmsg', 'notice', 'action', 'tagmsg');
",
    "
CREATE TABLE counters (
    name        TEXT PRIMARY KEY,
    value       INTEGER NOT NULL
) WITHOUT ROWID;
",
    "
CREATE TABLE accounts (
    key         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    created     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE read_markers (
    account_key TEXT NOT NULL,
    target_key  TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (account_key, target_key)
) WITHOUT ROWID;

CREATE TABLE server_bans (
    mask_key    TEXT PRIMARY KEY,
    mask        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    set_by      TEXT NOT NULL,
    set_at      INTEGER NOT NULL,
    until       INTEGER
) WITHOUT ROWID;
",
    "
CREATE TABLE account_certs (
    fingerprint TEXT PRIMARY KEY,
    account_key TEXT NOT NULL,
    added       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX account_certs_by_account ON account_certs (account_key, added);
",
    // Comparisons instead of `kind IN (…)`, which made every insert build a temporary table
    // (see `said_condition`, which the queries use: the same condition, or the index is not used).
    "
DROP INDEX messages_said;
CREATE INDEX messages_said ON messages (target_key, id)
    WHERE kind = 'privmsg' OR kind = 'notice' OR kind = 'action' OR kind = 'tagmsg';
",
    // Every record in one index of the two, not in two of them (see the module's docs).
    "
DROP INDEX messages_by_target;
CREATE INDEX messages_events ON messages (target_key, id)
    WHERE NOT (kind = 'privmsg' OR kind = 'notice' OR kind = 'action' OR kind = 'tagmsg');
",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// How a database's version compares with this build's.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Already current, or brought up to date.
    Current,
    /// Written by a newer build, at this version; left untouched.
    TooNew(i64),
}

/// Brings the database up to [`VERSION`].
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Outcome> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > VERSION {
        return Ok(Outcome::TooNew(found));
    }
    let found = found.max(0);
    for (done, step) in (found..).zip(&MIGRATIONS[found as usize..]) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", done + 1)?;
        tx.commit()?;
    }
    Ok(Outcome::Current)
}
