//! The PostgreSQL schema and its migrations.
//!
//! The same tables as the SQLite store's ([`crate::store::sqlite`]'s `schema`), with the same
//! meaning, so that `charla migrate-store` copies rows as they are: `messages` (one row per
//! [`Record`](crate::store::Record), `id` the [`MsgId`](crate::chat::MsgId)), `targets` (the
//! newest id of each target per owner, for `CHATHISTORY TARGETS`), `rooms` and `room_bans`,
//! `counters` (the last guest number), `accounts`, `read_markers`, `server_bans` and
//! `account_certs`. Integers are `bigint`; `messages.redacted` is a `boolean`; tags are the
//! same JSON text as SQLite's. `user` is a keyword in PostgreSQL, so that column is quoted.
//!
//! The version is the one row of `charla_schema`: migration `n` (counting from 1) takes the
//! database from version `n - 1` to `n`. All of them run in one transaction that first takes a
//! transaction-wide advisory lock ([`LOCK`]), so when several nodes start at once one migrates
//! and the others wait for it, then find the schema current. A database of a version above
//! [`VERSION`] was written by a newer charla and is refused, never guessed at.

use tokio_postgres::Client;

/// The steps from an empty database to the current schema; never edit one that has shipped,
/// add a new one.
const MIGRATIONS: &[&str] = &["
CREATE TABLE messages (
    id          bigint PRIMARY KEY,
    target_key  text NOT NULL,
    target      text NOT NULL,
    kind        text NOT NULL,
    nick        text NOT NULL,
    \"user\"      text NOT NULL,
    host        text NOT NULL,
    text        text NOT NULL,
    extra       text NOT NULL,
    tags        text NOT NULL DEFAULT '',
    redacted    boolean NOT NULL DEFAULT false
);
CREATE INDEX messages_by_target ON messages (target_key, id);
CREATE INDEX messages_said ON messages (target_key, id) WHERE kind IN ('privmsg', 'notice', 'action', 'tagmsg');

CREATE TABLE targets (
    owner   text NOT NULL,
    key     text NOT NULL,
    name    text NOT NULL,
    latest  bigint NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX targets_by_latest ON targets (owner, latest);

CREATE TABLE rooms (
    key         text PRIMARY KEY,
    name        text NOT NULL,
    created     bigint NOT NULL,
    topic       text,
    topic_by    text,
    topic_at    bigint,
    modes       text NOT NULL
);

CREATE TABLE room_bans (
    room_key    text NOT NULL,
    position    bigint NOT NULL,
    mask        text NOT NULL,
    set_by      text NOT NULL,
    set_at      bigint NOT NULL,
    PRIMARY KEY (room_key, position)
);

CREATE TABLE counters (
    name        text PRIMARY KEY,
    value       bigint NOT NULL
);

CREATE TABLE accounts (
    key         text PRIMARY KEY,
    name        text NOT NULL,
    hash        text NOT NULL,
    created     bigint NOT NULL
);

CREATE TABLE read_markers (
    account_key text NOT NULL,
    target_key  text NOT NULL,
    at          bigint NOT NULL,
    PRIMARY KEY (account_key, target_key)
);

CREATE TABLE server_bans (
    mask_key    text PRIMARY KEY,
    mask        text NOT NULL,
    reason      text NOT NULL,
    set_by      text NOT NULL,
    set_at      bigint NOT NULL,
    until       bigint
);

CREATE TABLE account_certs (
    fingerprint text PRIMARY KEY,
    account_key text NOT NULL,
    added       bigint NOT NULL
);
CREATE INDEX account_certs_by_account ON account_certs (account_key, added);
"];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock that makes migrations one node's at a time ("charla" in ASCII).
pub const LOCK: i64 = 0x6368_6172_6c61;

/// How a database's version compares with this build's.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Already current, or brought up to date.
    Current,
    /// Written by a newer build, at this version; left untouched.
    TooNew(i64),
}

/// Brings the database up to [`VERSION`], in one transaction.
pub async fn migrate(client: &mut Client) -> Result<Outcome, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS charla_schema (version bigint NOT NULL)").await?;
    let found: i64 = match tx.query_opt("SELECT version FROM charla_schema", &[]).await? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO charla_schema (version) VALUES (0)", &[]).await?;
            0
        }
    };
    if found > VERSION {
        return Ok(Outcome::TooNew(found));
    }
    let found = found.max(0);
    for step in &MIGRATIONS[found as usize..] {
        tx.batch_execute(step).await?;
    }
    tx.execute("UPDATE charla_schema SET version = $1", &[&VERSION]).await?;
    tx.commit().await?;
    Ok(Outcome::Current)
}
