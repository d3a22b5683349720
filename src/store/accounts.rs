//! What the store keeps of accounts: each account's name and password hash, the client
//! certificates it logs in with (SASL EXTERNAL, by SHA-256 fingerprint), and how far each
//! account has read each room or conversation (`draft/read-marker`); and the server bans
//! (`KLINE`), rare writes that need no batching either.
//!
//! Unlike history, account data is written rarely and its writes need an answer (was the name
//! free?), so it does not go through the batching history writer: [`AccountStore`] is
//! synchronous, and its callers ([`crate::accounts`]) run it on a blocking thread, never on an
//! async worker or under the hub's lock. The SQLite implementation shares the history's file
//! and keeps a connection of its own.

use super::StoreError;
use crate::chat::ServerBan;

/// One registered account.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredAccount {
    /// The name as registered (the nick it owns), case kept.
    pub name: String,
    /// The password's argon2id hash as a PHC string (`$argon2id$v=19$…`), salt included.
    pub hash: String,
    /// When it was registered, in milliseconds since the Unix epoch.
    pub created: u64,
}

impl std::fmt::Debug for StoredAccount {
    /// Without the hash: debug output ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAccount").field("name", &self.name).field("created", &self.created).finish()
    }
}

/// Accounts and read markers. Names and targets are matched with their case folded.
pub trait AccountStore: Send + Sync {
    /// The account called `name`, if there is one.
    fn account(&self, name: &str) -> Result<Option<StoredAccount>, StoreError>;

    /// Creates an account; `false` (and nothing changed) when the name is taken.
    fn create_account(&self, account: &StoredAccount) -> Result<bool, StoreError>;

    /// The names of every account, to know at start-up which nicks are owned.
    fn account_names(&self) -> Result<Vec<String>, StoreError>;

    /// How far `account` has read `target` (a room, or the nick of the other party of a
    /// private conversation): milliseconds since the Unix epoch.
    fn read_marker(&self, account: &str, target: &str) -> Result<Option<u64>, StoreError>;

    /// Every read marker of `account`: folded target and where it is.
    fn read_markers(&self, account: &str) -> Result<Vec<(String, u64)>, StoreError>;

    /// Moves the marker of `account` on `target` to `at`, never back; returns where it is now.
    fn set_read_marker(&self, account: &str, target: &str, at: u64) -> Result<u64, StoreError>;

    /// The fingerprints of the client certificates `account` logs in with, oldest first.
    fn certs(&self, account: &str) -> Result<Vec<String>, StoreError>;

    /// Adds the certificate `fingerprint` (lowercase hex) to `account`, at `at` (milliseconds
    /// since the Unix epoch); `false` (and nothing changed) when it belongs to an account
    /// already, this one or another.
    fn add_cert(&self, account: &str, fingerprint: &str, at: u64) -> Result<bool, StoreError>;

    /// Removes the certificate `fingerprint` from `account`; whether it was there.
    fn remove_cert(&self, account: &str, fingerprint: &str) -> Result<bool, StoreError>;

    /// The account (its name as registered) the certificate `fingerprint` logs in to.
    fn cert_account(&self, fingerprint: &str) -> Result<Option<String>, StoreError>;

    /// Every server ban kept.
    fn server_bans(&self) -> Result<Vec<ServerBan>, StoreError>;

    /// Keeps a server ban, replacing one of the same mask.
    fn save_server_ban(&self, ban: &ServerBan) -> Result<(), StoreError>;

    /// Forgets the server ban of `mask`.
    fn forget_server_ban(&self, mask: &str) -> Result<(), StoreError>;
}
