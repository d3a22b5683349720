//! [`AccountStore`] in the PostgreSQL database, on the store's read connection: each call is
//! one statement (or one transaction), answered synchronously. Nothing is cached in the
//! process, so every node sees the accounts, markers, certificates and bans another node wrote
//! as soon as they are committed.

use std::sync::Arc;

use super::{Engine, Failure};
use crate::chat::ServerBan;
use crate::chat::text::fold;
use crate::store::StoreError;
use crate::store::accounts::{AccountStore, StoredAccount};
use crate::store::sqlite::{from_sql_int, sql_int};

/// Accounts in the PostgreSQL database ([`super::PgStore::accounts`]).
pub struct PgAccounts {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for PgAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAccounts").field("url", &self.engine.url).finish()
    }
}

impl PgAccounts {
    pub(super) fn new(engine: Arc<Engine>) -> PgAccounts {
        PgAccounts { engine }
    }
}

impl AccountStore for PgAccounts {
    fn account(&self, name: &str) -> Result<Option<StoredAccount>, StoreError> {
        let key = fold(name);
        self.engine.read(move |c| async move {
            let row = c.query_opt("SELECT name, hash, created FROM accounts WHERE key = $1", &[&key]).await?;
            Ok(row.map(|row| StoredAccount { name: row.get(0), hash: row.get(1), created: from_sql_int(row.get(2)) }))
        })
    }

    fn create_account(&self, account: &StoredAccount) -> Result<bool, StoreError> {
        let (key, name, hash, created) =
            (fold(&account.name), account.name.clone(), account.hash.clone(), sql_int(account.created));
        self.engine.read(move |c| async move {
            let n = c
                .execute(
                    "INSERT INTO accounts (key, name, hash, created) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (key) DO NOTHING",
                    &[&key, &name, &hash, &created],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn account_names(&self) -> Result<Vec<String>, StoreError> {
        self.engine.read(|c| async move {
            let rows = c.query("SELECT name FROM accounts ORDER BY key", &[]).await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn read_marker(&self, account: &str, target: &str) -> Result<Option<u64>, StoreError> {
        let (account, target) = (fold(account), fold(target));
        self.engine.read(move |c| async move {
            let row = c
                .query_opt(
                    "SELECT at FROM read_markers WHERE account_key = $1 AND target_key = $2",
                    &[&account, &target],
                )
                .await?;
            Ok(row.map(|row| from_sql_int(row.get(0))))
        })
    }

    fn read_markers(&self, account: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let account = fold(account);
        self.engine.read(move |c| async move {
            let rows = c.query("SELECT target_key, at FROM read_markers WHERE account_key = $1", &[&account]).await?;
            Ok(rows.iter().map(|row| (row.get(0), from_sql_int(row.get(1)))).collect())
        })
    }

    fn set_read_marker(&self, account: &str, target: &str, at: u64) -> Result<u64, StoreError> {
        let (account, target, at) = (fold(account), fold(target), sql_int(at));
        self.engine.read(move |c| async move {
            let row = c
                .query_one(
                    "INSERT INTO read_markers (account_key, target_key, at) VALUES ($1, $2, $3) \
                     ON CONFLICT (account_key, target_key) DO UPDATE \
                     SET at = GREATEST(read_markers.at, excluded.at) RETURNING at",
                    &[&account, &target, &at],
                )
                .await?;
            Ok(from_sql_int(row.get(0)))
        })
    }

    fn certs(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let account = fold(account);
        self.engine.read(move |c| async move {
            let rows = c
                .query(
                    "SELECT fingerprint FROM account_certs WHERE account_key = $1 ORDER BY added, fingerprint",
                    &[&account],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn add_cert(&self, account: &str, fingerprint: &str, at: u64) -> Result<bool, StoreError> {
        let (account, fingerprint, at) = (fold(account), fingerprint.to_string(), sql_int(at));
        self.engine.read(move |c| async move {
            let n = c
                .execute(
                    "INSERT INTO account_certs (fingerprint, account_key, added) VALUES ($1, $2, $3) \
                     ON CONFLICT (fingerprint) DO NOTHING",
                    &[&fingerprint, &account, &at],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn remove_cert(&self, account: &str, fingerprint: &str) -> Result<bool, StoreError> {
        let (account, fingerprint) = (fold(account), fingerprint.to_string());
        self.engine.read(move |c| async move {
            let n = c
                .execute(
                    "DELETE FROM account_certs WHERE fingerprint = $1 AND account_key = $2",
                    &[&fingerprint, &account],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn cert_account(&self, fingerprint: &str) -> Result<Option<String>, StoreError> {
        let fingerprint = fingerprint.to_string();
        self.engine.read(move |c| async move {
            let row = c
                .query_opt(
                    "SELECT accounts.name FROM account_certs JOIN accounts ON accounts.key = account_certs.account_key \
                     WHERE account_certs.fingerprint = $1",
                    &[&fingerprint],
                )
                .await?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn server_bans(&self) -> Result<Vec<ServerBan>, StoreError> {
        self.engine.read(|c| async move {
            let rows = c
                .query("SELECT mask, reason, set_by, set_at, until FROM server_bans ORDER BY set_at, mask_key", &[])
                .await?;
            Ok(rows
                .iter()
                .map(|row| ServerBan {
                    mask: row.get(0),
                    reason: row.get(1),
                    set_by: row.get(2),
                    at: from_sql_int(row.get(3)),
                    until: row.get::<_, Option<i64>>(4).map(from_sql_int),
                })
                .collect())
        })
    }

    fn save_server_ban(&self, ban: &ServerBan) -> Result<(), StoreError> {
        let ban = ban.clone();
        self.engine.read(move |c| async move {
            c.execute(
                "INSERT INTO server_bans (mask_key, mask, reason, set_by, set_at, until) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (mask_key) DO UPDATE SET mask = excluded.mask, \
                 reason = excluded.reason, set_by = excluded.set_by, set_at = excluded.set_at, until = excluded.until",
                &[&fold(&ban.mask), &ban.mask, &ban.reason, &ban.set_by, &sql_int(ban.at), &ban.until.map(sql_int)],
            )
            .await
            .map(drop)
            .map_err(Failure::from)
        })
    }

    fn forget_server_ban(&self, mask: &str) -> Result<(), StoreError> {
        let key = fold(mask);
        self.engine.read(move |c| async move {
            c.execute("DELETE FROM server_bans WHERE mask_key = $1", &[&key]).await.map(drop).map_err(Failure::from)
        })
    }
}
