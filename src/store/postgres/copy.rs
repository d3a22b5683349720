//! `charla migrate-store`: copies what a server kept in SQLite (a data directory's `charla.db`)
//! into a PostgreSQL database, in ONE transaction, so the database gets all of it or none.
//!
//! # What it does with what is already there
//!
//! The copy merges, and running it again copies nothing new: a message whose id is already
//! stored, an account, a room, a certificate or a server ban that is already there is left as
//! it is (and counted as such); read markers and the guest counter only ever move forward.
//! It refuses, changing nothing, when the database already holds *different* data under the
//! same key, which would mean two servers' histories are being mixed up: a message with the
//! same id but another target or text, an account of the same name with another password, a
//! certificate that logs in to another account. Rooms already there keep their settings (the
//! database's are the newer, from a node that uses it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Mutex;

use rusqlite::Connection;
use tokio_postgres::Transaction;

use super::{Engine, Failure, PgStore, PgUrl};
use crate::store::{SqliteStore, StoreError};

/// A row of `rooms`: key, name, created, topic, topic_by, topic_at, modes.
type RoomRow = (String, String, i64, Option<String>, Option<String>, Option<i64>, String);

/// Messages read from SQLite and written to PostgreSQL at a time.
const CHUNK: usize = 5000;

/// How many rows of each kind were copied, and how many were there already.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    pub messages: Count,
    pub rooms: Count,
    pub accounts: Count,
    pub read_markers: Count,
    pub certs: Count,
    pub server_bans: Count,
    /// The guest counter after the copy.
    pub last_guest: u64,
}

/// Rows copied, and rows found already there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub copied: u64,
    pub present: u64,
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} copied, {} already there", self.copied, self.present)
    }
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "messages:     {}", self.messages)?;
        writeln!(f, "rooms:        {}", self.rooms)?;
        writeln!(f, "accounts:     {}", self.accounts)?;
        writeln!(f, "read markers: {}", self.read_markers)?;
        writeln!(f, "certificates: {}", self.certs)?;
        writeln!(f, "server bans:  {}", self.server_bans)?;
        write!(f, "last guest number: {}", self.last_guest)
    }
}

/// Copies the history, rooms, accounts, read markers, certificates, server bans and guest
/// counter of the SQLite store in `dir` into the PostgreSQL database at `url` (creating its
/// schema if needed). Data already there is kept; different data under the same key (a message id with another
/// text, an account with another password, a certificate of another account) makes it refuse,
/// copying nothing.
pub fn copy_from_sqlite(dir: &Path, url: &str) -> Result<Copied, StoreError> {
    let path = dir.join(SqliteStore::FILE_NAME);
    if !path.is_file() {
        return Err(StoreError::NotFound { path });
    }
    // Opening brings an older file's schema up to date, as starting the server would.
    drop(SqliteStore::open(dir)?);
    let conn = crate::store::sqlite::open_reader(&path).map_err(|e| source_failed(&path, e))?;
    let source = Source { conn: Mutex::new(conn), path };
    drop(PgStore::open(url)?);
    let url = PgUrl::parse(url)?;
    let engine = Engine::start(url.clone())?;
    let forever = Duration::from_secs(7 * 24 * 3600);
    engine.wait(forever, async move {
        let mut client = url.connect().await?;
        let tx = client.transaction().await?;
        let copied = copy(&source, &tx).await?;
        tx.commit().await?;
        Ok(copied)
    })
}

fn source_failed(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::Database { path: path.to_owned(), reason: e.to_string() }
}

/// The SQLite file being copied. Its connection is behind a mutex, taken only while rows are
/// read (never across an await), so that the copy can run as a task.
struct Source {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Source {
    /// The rows of `sql` with `params`, each through `map`.
    fn select<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, Failure> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let rows = conn.prepare_cached(sql).and_then(|mut s| s.query_map(params, map)?.collect());
        rows.map_err(|e| Failure::Db(format!("cannot read {}: {e}", self.path.display())))
    }
}

/// A refusal: the database holds different data under the same key.
fn conflict(what: String) -> Failure {
    Failure::Db(format!(
        "{what}: the database holds another server's data; nothing was copied. Copy into an empty database \
         (createdb …), or compare the two by hand"
    ))
}

async fn copy(source: &Source, tx: &Transaction<'_>) -> Result<Copied, Failure> {
    let mut copied = Copied::default();

    // Messages, in id order, a chunk at a time.
    let mut after = -1i64;
    loop {
        let rows: Vec<(i64, [String; 9], bool)> = source.select(
            "SELECT id, target_key, target, kind, nick, user, host, text, extra, tags, redacted \
             FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2",
            rusqlite::params![after, CHUNK as i64],
            |row| {
                let text = [
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                    row.get(8)?,
                    row.get(9)?,
                ];
                Ok((row.get(0)?, text, row.get(10)?))
            },
        )?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let column = |i: usize| -> Vec<&str> { rows.iter().map(|r| r.1[i].as_str()).collect() };
        let redacted: Vec<bool> = rows.iter().map(|r| r.2).collect();
        let inserted = tx
            .query(
                "INSERT INTO messages (id, target_key, target, kind, nick, \"user\", host, text, extra, tags, redacted) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::boolean[]) \
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                &[
                    &ids,
                    &column(0),
                    &column(1),
                    &column(2),
                    &column(3),
                    &column(4),
                    &column(5),
                    &column(6),
                    &column(7),
                    &column(8),
                    &redacted,
                ],
            )
            .await?;
        let new: std::collections::HashSet<i64> = inserted.iter().map(|row| row.get(0)).collect();
        copied.messages.copied += new.len() as u64;
        let present: Vec<i64> = ids.iter().copied().filter(|id| !new.contains(id)).collect();
        copied.messages.present += present.len() as u64;
        if !present.is_empty() {
            let there =
                tx.query("SELECT id, target_key, text, redacted FROM messages WHERE id = ANY($1)", &[&present]).await?;
            for row in &there {
                let id: i64 = row.get(0);
                let Some(mine) = rows.iter().find(|r| r.0 == id) else { continue };
                let (key, text, redacted): (&str, &str, bool) = (row.get(1), row.get(2), row.get(3));
                if key != mine.1[0] || (text != mine.1[6] && !redacted && !mine.2) {
                    return Err(conflict(format!(
                        "message {id} is in the database already, with another target or text"
                    )));
                }
            }
        }
    }

    // The newest record of each target, per owner: only ever forward.
    let targets: Vec<(String, String, String, i64)> =
        source.select("SELECT owner, key, name, latest FROM targets", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    for (owner, key, name, latest) in &targets {
        tx.execute(
            "INSERT INTO targets (owner, key, name, latest) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (owner, key) DO UPDATE SET name = excluded.name, latest = excluded.latest \
             WHERE excluded.latest > targets.latest",
            &[owner, key, name, latest],
        )
        .await?;
    }

    // Rooms and their bans; a room already there keeps its settings.
    let rooms: Vec<RoomRow> = source.select(
        "SELECT key, name, created, topic, topic_by, topic_at, modes FROM rooms ORDER BY key",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
    )?;
    for (key, name, created, topic, topic_by, topic_at, modes) in &rooms {
        let n = tx
            .execute(
                "INSERT INTO rooms (key, name, created, topic, topic_by, topic_at, modes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING",
                &[key, name, created, topic, topic_by, topic_at, modes],
            )
            .await?;
        if n == 0 {
            copied.rooms.present += 1;
            continue;
        }
        copied.rooms.copied += 1;
        let bans: Vec<(i64, String, String, i64)> = source.select(
            "SELECT position, mask, set_by, set_at FROM room_bans WHERE room_key = ?1",
            [key.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        for (position, mask, set_by, set_at) in &bans {
            tx.execute(
                "INSERT INTO room_bans (room_key, position, mask, set_by, set_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT DO NOTHING",
                &[key, position, mask, set_by, set_at],
            )
            .await?;
        }
    }

    // Accounts: the same name with another password is someone else.
    let accounts: Vec<(String, String, String, i64)> =
        source.select("SELECT key, name, hash, created FROM accounts ORDER BY key", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    for (key, name, hash, created) in &accounts {
        let n = tx
            .execute(
                "INSERT INTO accounts (key, name, hash, created) VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
                &[key, name, hash, created],
            )
            .await?;
        if n == 1 {
            copied.accounts.copied += 1;
            continue;
        }
        copied.accounts.present += 1;
        let there: String = tx.query_one("SELECT hash FROM accounts WHERE key = $1", &[key]).await?.get(0);
        if &there != hash {
            return Err(conflict(format!("the account {name} is in the database already, with another password")));
        }
    }

    let markers: Vec<(String, String, i64)> =
        source.select("SELECT account_key, target_key, at FROM read_markers", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    for (account, target, at) in &markers {
        let fresh = tx
            .query_one(
                "INSERT INTO read_markers (account_key, target_key, at) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_key, target_key) DO UPDATE SET at = GREATEST(read_markers.at, excluded.at) \
                 RETURNING (xmax = 0)",
                &[account, target, at],
            )
            .await?
            .get::<_, bool>(0);
        if fresh {
            copied.read_markers.copied += 1;
        } else {
            copied.read_markers.present += 1;
        }
    }

    // Certificates: one that logs in to another account is a conflict.
    let certs: Vec<(String, String, i64)> =
        source.select("SELECT fingerprint, account_key, added FROM account_certs", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    for (fingerprint, account, added) in &certs {
        let n = tx
            .execute(
                "INSERT INTO account_certs (fingerprint, account_key, added) VALUES ($1, $2, $3) \
                 ON CONFLICT (fingerprint) DO NOTHING",
                &[fingerprint, account, added],
            )
            .await?;
        if n == 1 {
            copied.certs.copied += 1;
            continue;
        }
        copied.certs.present += 1;
        let owner: String =
            tx.query_one("SELECT account_key FROM account_certs WHERE fingerprint = $1", &[fingerprint]).await?.get(0);
        if &owner != account {
            return Err(conflict(format!(
                "the certificate {fingerprint} logs in to {owner} in the database, to {account} here"
            )));
        }
    }

    let bans: Vec<(String, String, String, String, i64, Option<i64>)> =
        source.select("SELECT mask_key, mask, reason, set_by, set_at, until FROM server_bans", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?;
    for (key, mask, reason, set_by, set_at, until) in &bans {
        let n = tx
            .execute(
                "INSERT INTO server_bans (mask_key, mask, reason, set_by, set_at, until) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (mask_key) DO NOTHING",
                &[key, mask, reason, set_by, set_at, until],
            )
            .await?;
        if n == 1 {
            copied.server_bans.copied += 1;
        } else {
            copied.server_bans.present += 1;
        }
    }

    let guest: Option<i64> = source.select("SELECT value FROM counters WHERE name = 'guest'", [], |r| r.get(0))?.pop();
    if let Some(guest) = guest {
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('guest', $1) \
             ON CONFLICT (name) DO UPDATE SET value = GREATEST(counters.value, excluded.value)",
            &[&guest],
        )
        .await?;
    }
    let last: Option<i64> =
        tx.query_opt("SELECT value FROM counters WHERE name = 'guest'", &[]).await?.map(|row| row.get(0));
    copied.last_guest = last.map_or(0, super::from_sql_int);
    Ok(copied)
}
