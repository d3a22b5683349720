//! What the fuzz targets that run sessions share: a real hub, history store and account store
//! behind a [`Shared`], as the server builds them, without sockets.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use charla::accounts::Accounts;
use charla::hub::{History, Hub, HubConfig};
use charla::net::{ConnLimiter, Limits, Sessions};
use charla::proto::{HistoryConfig, Shared, Stage};
use charla::store::{AccountStore, SqliteAccounts, SqliteStore, Store};

/// How many inputs share one history store and one account store. Opening stores costs a
/// writer thread and a database file, so they are shared; but every input stores its joins and
/// lines, and one store for a whole run grew by hundreds of megabytes a minute (a CI machine's
/// disk filled up), so they are renewed now and then, the old files removed.
const INPUTS_PER_STORE: u32 = 5_000;

struct Stores {
    dir: PathBuf,
    store: Arc<dyn Store>,
    accounts: Arc<dyn AccountStore>,
    inputs: u32,
}

fn stores() -> (Arc<dyn Store>, Arc<dyn AccountStore>) {
    static STORES: Mutex<Option<Stores>> = Mutex::new(None);
    static OPENED: AtomicU32 = AtomicU32::new(0);
    let mut stores = STORES.lock().expect("the stores' lock");
    if stores.as_ref().is_some_and(|s| s.inputs >= INPUTS_PER_STORE) {
        // Last input's hub is gone: these are the stores' last owners, and dropping the history
        // store waits for its writer.
        let old = stores.take().expect("stores");
        drop((old.store, old.accounts));
        let _ = std::fs::remove_dir_all(&old.dir);
    }
    let current = stores.get_or_insert_with(|| {
        let n = OPENED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("charla-fuzz-stores-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).expect("a store"));
        let accounts: Arc<dyn AccountStore> = Arc::new(SqliteAccounts::open(&dir).expect("an account store"));
        Stores { dir, store, accounts, inputs: 0 }
    });
    current.inputs += 1;
    (current.store.clone(), current.accounts.clone())
}

/// What every session shares, around a fresh hub. (Where `Shared` and its parts live is the
/// server's business: when they move, only this function changes.)
pub fn shared() -> Shared {
    let mut config = HubConfig::default();
    config.opers.insert("admin".into(), "secret".into());
    let (store, account_store) = stores();
    let hub = Arc::new(Mutex::new(Hub::new(config, History::new(store.clone()))));
    let limits = Limits::default();
    Shared {
        accounts: Accounts::new(account_store, hub.clone(), limits.logins),
        hub,
        sessions: Arc::new(Sessions::default()),
        store,
        history: HistoryConfig::default(),
        limiter: ConnLimiter::new(limits.max_conns, limits.max_conns_per_ip),
        limits: limits.into(),
        motd: Default::default(),
        server_name: "charla".into(),
        started: std::time::SystemTime::now(),
        allowed_origins: Vec::new(),
        stage: AtomicU8::new(Stage::Ready as u8),
        tls: Default::default(),
        bus: None,
    }
}
