//! [`AccountStore`] on the history's SQLite file, with a connection of its own (see
//! [`crate::store::accounts`] for why account writes do not go through the batching writer).
//! The schema is migration 6, client certificates migration 7 ([`super::schema`]).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use super::{BUSY_TIMEOUT, SqliteStore, classify, from_sql_int, sql_int};
use crate::chat::ServerBan;
use crate::chat::text::fold;
use crate::store::StoreError;
use crate::store::accounts::{AccountStore, StoredAccount};

/// Accounts in `charla.db`. Open it after [`SqliteStore::open`], which brings the schema up to
/// date.
#[derive(Debug)]
pub struct SqliteAccounts {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteAccounts {
    /// Opens the accounts of the database in `dir`.
    pub fn open(dir: &Path) -> Result<SqliteAccounts, StoreError> {
        let path = dir.join(SqliteStore::FILE_NAME);
        let conn = Connection::open(&path).map_err(|e| classify(&path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| classify(&path, e))?;
        Ok(SqliteAccounts { path, conn: Mutex::new(conn) })
    }

    /// The connection; a panic while it was held leaves at most a rolled-back statement.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |e| classify(&self.path, e)
    }
}

impl AccountStore for SqliteAccounts {
    fn account(&self, name: &str) -> Result<Option<StoredAccount>, StoreError> {
        self.conn()
            .prepare_cached("SELECT name, hash, created FROM accounts WHERE key = ?1")
            .and_then(|mut query| {
                query
                    .query_row([fold(name)], |row| {
                        Ok(StoredAccount { name: row.get(0)?, hash: row.get(1)?, created: from_sql_int(row.get(2)?) })
                    })
                    .optional()
            })
            .map_err(self.fail())
    }

    fn create_account(&self, account: &StoredAccount) -> Result<bool, StoreError> {
        let created = self
            .conn()
            .prepare_cached("INSERT OR IGNORE INTO accounts (key, name, hash, created) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut insert| {
                insert.execute(params![fold(&account.name), account.name, account.hash, sql_int(account.created)])
            })
            .map_err(self.fail())?;
        Ok(created == 1)
    }

    fn account_names(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let read = || -> rusqlite::Result<Vec<String>> {
            conn.prepare_cached("SELECT name FROM accounts ORDER BY key")?.query_map([], |row| row.get(0))?.collect()
        };
        read().map_err(self.fail())
    }

    fn read_marker(&self, account: &str, target: &str) -> Result<Option<u64>, StoreError> {
        self.conn()
            .prepare_cached("SELECT at FROM read_markers WHERE account_key = ?1 AND target_key = ?2")
            .and_then(|mut query| query.query_row([fold(account), fold(target)], |row| row.get(0)).optional())
            .map(|at| at.map(from_sql_int))
            .map_err(self.fail())
    }

    fn read_markers(&self, account: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.conn();
        let read = || -> rusqlite::Result<Vec<(String, u64)>> {
            conn.prepare_cached("SELECT target_key, at FROM read_markers WHERE account_key = ?1")?
                .query_map([fold(account)], |row| Ok((row.get(0)?, from_sql_int(row.get(1)?))))?
                .collect()
        };
        read().map_err(self.fail())
    }

    fn set_read_marker(&self, account: &str, target: &str, at: u64) -> Result<u64, StoreError> {
        let conn = self.conn();
        let write = || -> rusqlite::Result<i64> {
            conn.prepare_cached(
                "INSERT INTO read_markers (account_key, target_key, at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (account_key, target_key) DO UPDATE SET at = max(at, excluded.at)",
            )?
            .execute(params![fold(account), fold(target), sql_int(at)])?;
            conn.prepare_cached("SELECT at FROM read_markers WHERE account_key = ?1 AND target_key = ?2")?
                .query_row([fold(account), fold(target)], |row| row.get(0))
        };
        write().map(from_sql_int).map_err(self.fail())
    }

    fn certs(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let read = || -> rusqlite::Result<Vec<String>> {
            conn.prepare_cached("SELECT fingerprint FROM account_certs WHERE account_key = ?1 ORDER BY added")?
                .query_map([fold(account)], |row| row.get(0))?
                .collect()
        };
        read().map_err(self.fail())
    }

    fn add_cert(&self, account: &str, fingerprint: &str, at: u64) -> Result<bool, StoreError> {
        let added = self
            .conn()
            .prepare_cached("INSERT OR IGNORE INTO account_certs (fingerprint, account_key, added) VALUES (?1, ?2, ?3)")
            .and_then(|mut insert| insert.execute(params![fingerprint, fold(account), sql_int(at)]))
            .map_err(self.fail())?;
        Ok(added == 1)
    }

    fn remove_cert(&self, account: &str, fingerprint: &str) -> Result<bool, StoreError> {
        let removed = self
            .conn()
            .prepare_cached("DELETE FROM account_certs WHERE fingerprint = ?1 AND account_key = ?2")
            .and_then(|mut delete| delete.execute(params![fingerprint, fold(account)]))
            .map_err(self.fail())?;
        Ok(removed == 1)
    }

    fn cert_account(&self, fingerprint: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .prepare_cached(
                "SELECT accounts.name FROM account_certs JOIN accounts ON accounts.key = account_certs.account_key \
                 WHERE account_certs.fingerprint = ?1",
            )
            .and_then(|mut query| query.query_row([fingerprint], |row| row.get(0)).optional())
            .map_err(self.fail())
    }

    fn server_bans(&self) -> Result<Vec<ServerBan>, StoreError> {
        let conn = self.conn();
        let read = || -> rusqlite::Result<Vec<ServerBan>> {
            conn.prepare_cached("SELECT mask, reason, set_by, set_at, until FROM server_bans ORDER BY set_at")?
                .query_map([], |row| {
                    Ok(ServerBan {
                        mask: row.get(0)?,
                        reason: row.get(1)?,
                        set_by: row.get(2)?,
                        at: from_sql_int(row.get(3)?),
                        until: row.get::<_, Option<i64>>(4)?.map(from_sql_int),
                    })
                })?
                .collect()
        };
        read().map_err(self.fail())
    }

    fn save_server_ban(&self, ban: &ServerBan) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO server_bans (mask_key, mask, reason, set_by, set_at, until) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    fold(&ban.mask),
                    ban.mask,
                    ban.reason,
                    ban.set_by,
                    sql_int(ban.at),
                    ban.until.map(sql_int)
                ])
            })
            .map(drop)
            .map_err(self.fail())
    }

    fn forget_server_ban(&self, mask: &str) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("DELETE FROM server_bans WHERE mask_key = ?1")
            .and_then(|mut delete| delete.execute([fold(mask)]))
            .map(drop)
            .map_err(self.fail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_belongs_to_one_account() {
        let dir = std::env::temp_dir().join(format!("charla-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        drop(SqliteStore::open(&dir).unwrap());
        let accounts = SqliteAccounts::open(&dir).unwrap();
        for name in ["Alice", "bob"] {
            let account = StoredAccount { name: name.into(), hash: "$argon2id$x".into(), created: 1 };
            assert!(accounts.create_account(&account).unwrap());
        }
        let fp = "ab".repeat(32);
        assert!(accounts.add_cert("alice", &fp, 5).unwrap());
        assert!(!accounts.add_cert("bob", &fp, 6).unwrap(), "taken by alice");
        assert!(!accounts.add_cert("ALICE", &fp, 7).unwrap(), "already there");
        assert_eq!(accounts.cert_account(&fp).unwrap().as_deref(), Some("Alice"));
        assert_eq!(accounts.certs("alice").unwrap(), vec![fp.clone()]);
        assert!(accounts.certs("bob").unwrap().is_empty());
        assert!(!accounts.remove_cert("bob", &fp).unwrap(), "not bob's to remove");
        assert!(accounts.remove_cert("alice", &fp).unwrap());
        assert_eq!(accounts.cert_account(&fp).unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
