//! The writer task: the one owner of the writing connection. See the [parent module](super)
//! for how it batches, retries and what that means for durability.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use tokio_postgres::{Client, Transaction};

use super::{Failure, PgUrl, QUEUE_LIMIT, RETAIN_CHUNK, RETRY_MAX, WriterShared, said_kinds};
use crate::chat::now_millis;
use crate::chat::text::fold;
use crate::store::sqlite::{sql_int, sql_limit, tags_to_sql};
use crate::store::{Bound, Record, Retention, RoomState, StoreError, dm_parties};

use crate::store::command;
pub(super) use crate::store::command::{Answer, Command};

/// Most commands one transaction takes from the queue.
const BATCH_MAX: usize = 8192;

/// The first wait before writing again after a failure.
const RETRY_FIRST: Duration = Duration::from_millis(50);

/// Longest a batch may take to commit before the connection is given up as gone: a peer that
/// vanished without closing it would otherwise hold up every write (and every sender waiting
/// for one) until the system's TCP timeout.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a batch that met a deadlock or a serialization failure is run again at once.
const TRANSIENT_TRIES: usize = 3;

const INSERT: &str = "INSERT INTO messages (id, target_key, target, kind, nick, \"user\", host, text, extra, tags) \
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
    $7::text[], $8::text[], $9::text[], $10::text[]) \
    ON CONFLICT (id) DO NOTHING RETURNING id";

const TOUCH_TARGETS: &str = "INSERT INTO targets (owner, key, name, latest) \
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) \
    ON CONFLICT (owner, key) DO UPDATE SET name = excluded.name, latest = excluded.latest \
    WHERE excluded.latest > targets.latest";

const REDACT: &str = "UPDATE messages SET text = '', tags = '', redacted = true WHERE id = $1 AND target_key = $2";

const SAVE_ROOM: &str = "INSERT INTO rooms (key, name, created, topic, topic_by, topic_at, modes) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO UPDATE SET name = excluded.name, \
    created = excluded.created, topic = excluded.topic, topic_by = excluded.topic_by, \
    topic_at = excluded.topic_at, modes = excluded.modes";

const SAVE_GUEST: &str = "INSERT INTO counters (name, value) VALUES ('guest', $1) \
    ON CONFLICT (name) DO UPDATE SET value = GREATEST(counters.value, excluded.value)";

const FORGET_ROOM: &str = "DELETE FROM rooms WHERE key = $1";

const FORGET_BANS: &str = "DELETE FROM room_bans WHERE room_key = $1";

const SAVE_BANS: &str = "INSERT INTO room_bans (room_key, position, mask, set_by, set_at) \
    SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[])";

const DELETE_OLDER: &str =
    "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE id < $1 ORDER BY id LIMIT $2)";

const DELETE_UP_TO: &str = "DELETE FROM messages WHERE id IN \
    (SELECT id FROM messages WHERE target_key = $1 AND id <= $2 ORDER BY id LIMIT $3)";

const FORGET_EMPTY_TARGETS: &str = "DELETE FROM targets WHERE NOT EXISTS \
    (SELECT 1 FROM messages WHERE messages.target_key = targets.key)";

/// The queries of retention by count for one kind of record, as the SQLite writer's.
fn count_retention_sql(said: bool) -> (String, String) {
    let kinds = format!("kind {} {}", if said { "IN" } else { "NOT IN" }, said_kinds());
    let newest_dropped =
        format!("SELECT id FROM messages WHERE target_key = $1 AND {kinds} ORDER BY id DESC LIMIT 1 OFFSET $2");
    let delete = if said {
        DELETE_UP_TO.to_string()
    } else {
        format!(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages \
             WHERE target_key = $1 AND id <= $2 AND {kinds} ORDER BY id LIMIT $3)"
        )
    };
    (newest_dropped, delete)
}

pub(super) struct Writer {
    url: PgUrl,
    /// The connection; `None` after it broke, until the next try connects again.
    client: Option<Client>,
    commands: UnboundedReceiver<Command>,
    backlog: Arc<AtomicUsize>,
    committed: Arc<AtomicU64>,
    degraded: Arc<AtomicBool>,
    /// The commands being written, and while writes fail, those waiting to be retried.
    batch: Vec<Command>,
    retains: VecDeque<(Retention, Answer<usize>)>,
    paused: Option<Paused>,
}

/// Failing writes, as the writer sees them.
struct Paused {
    error: StoreError,
    since: Instant,
    delay: Duration,
    next_try: Instant,
}

enum Next {
    Command(Command),
    Retry,
    Closed,
}

impl Writer {
    pub(super) fn new(
        url: PgUrl,
        client: Client,
        commands: UnboundedReceiver<Command>,
        shared: WriterShared,
    ) -> Writer {
        Writer {
            url,
            client: Some(client),
            commands,
            backlog: shared.backlog,
            committed: shared.committed,
            degraded: shared.degraded,
            batch: Vec::new(),
            retains: VecDeque::new(),
            paused: None,
        }
    }

    /// Writes until the store closes the queue, then returns with everything committed, or
    /// with what could not be written logged.
    pub(super) async fn run(mut self) {
        loop {
            match self.next().await {
                Next::Command(command) if self.paused.is_some() => {
                    self.hold(command);
                    continue;
                }
                Next::Command(command) => {
                    self.batch.push(command);
                    self.take_queued();
                }
                Next::Retry => {}
                Next::Closed => break,
            }
            self.write_queued().await;
            if self.paused.is_none() {
                self.run_retains().await;
            }
        }
        if self.paused.is_some() {
            self.write_queued().await;
        }
        if let Some(paused) = &self.paused {
            let lost = self.records_waiting();
            tracing::error!(
                "history: {lost} records could not be written to PostgreSQL before the store closed and are lost: {}",
                paused.error
            );
        }
        for (_, answer) in self.retains.drain(..) {
            let _ = answer.send(Err(StoreError::WriterGone));
        }
    }

    async fn next(&mut self) -> Next {
        let Some(next_try) = self.paused.as_ref().map(|p| p.next_try) else {
            return self.commands.recv().await.map_or(Next::Closed, Next::Command);
        };
        tokio::select! {
            command = self.commands.recv() => command.map_or(Next::Closed, Next::Command),
            () = tokio::time::sleep_until(next_try) => Next::Retry,
        }
    }

    /// Takes what else is queued into the batch, up to [`BATCH_MAX`] commands.
    fn take_queued(&mut self) {
        while self.batch.len() < BATCH_MAX {
            match self.commands.try_recv() {
                Ok(command) => self.batch.push(command),
                Err(_) => return,
            }
        }
    }

    /// Keeps a command that arrives while writes fail (as the SQLite writer does).
    fn hold(&mut self, command: Command) {
        match command {
            Command::Flush(answer) => {
                let _ = answer.send(Err(self.paused_error()));
            }
            Command::Retain(policy, answer) => self.retains.push_back((policy, answer)),
            data => self.batch.push(data),
        }
    }

    fn records_waiting(&self) -> usize {
        self.batch.iter().filter(|c| matches!(c, Command::Append(_))).count()
    }

    fn paused_error(&self) -> StoreError {
        let reason = self.paused.as_ref().map_or_else(String::new, |p| p.error.to_string());
        StoreError::Paused { waiting: self.records_waiting(), reason }
    }

    async fn run_retains(&mut self) {
        while let Some((policy, answer)) = self.retains.pop_front() {
            let result = self.retain(&policy).await;
            if let Err(e) = &result {
                tracing::error!("history retention failed: {e}");
            }
            let _ = answer.send(result);
        }
    }

    /// The connection, connecting first if there is none.
    async fn client(&mut self) -> Result<&mut Client, Failure> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.client = Some(self.url.connect().await?);
        }
        Ok(self.client.as_mut().expect("connected just now"))
    }

    /// Commits the batch in one transaction, then answers its flushes; when that fails, every
    /// record and room change stays in the batch, in order, to be tried again.
    async fn write_queued(&mut self) {
        let began = std::time::Instant::now();
        let mut result = self.commit_batch().await;
        for _ in 1..TRANSIENT_TRIES {
            match &result {
                Err(Transient(true, _)) => result = self.commit_batch().await,
                _ => break,
            }
        }
        let metrics = crate::metrics::get();
        metrics.store_batch.observe(began.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                let records = command::settle(&mut self.batch, &mut self.retains, &self.committed);
                self.backlog.fetch_sub(records, Ordering::Relaxed);
                if let Some(paused) = self.paused.take() {
                    self.degraded.store(false, Ordering::Release);
                    crate::metrics::get().store_degraded.set(0);
                    tracing::info!(
                        "history is being written to PostgreSQL again after {:.1} s; the {records} records kept meanwhile are stored",
                        paused.since.elapsed().as_secs_f64()
                    );
                }
            }
            Err(Transient(_, failure)) => {
                metrics.store_errors.inc();
                // Paused first: whoever a failed flush wakes finds the store degraded.
                self.pause(self.url.failed(failure));
                for command in std::mem::take(&mut self.batch) {
                    self.hold(command);
                }
            }
        }
    }

    fn pause(&mut self, error: StoreError) {
        let now = Instant::now();
        match &mut self.paused {
            Some(paused) => {
                paused.delay = (paused.delay * 2).min(RETRY_MAX);
                paused.next_try = now + paused.delay;
                paused.error = error;
            }
            None => {
                tracing::error!(
                    "history is paused: {error}. The {} records not written are kept in memory \
                     (up to {QUEUE_LIMIT}; messages beyond that are refused) and retried until they are stored",
                    self.records_waiting()
                );
                self.degraded.store(true, Ordering::Release);
                crate::metrics::get().store_degraded.set(1);
                self.paused = Some(Paused { error, since: now, delay: RETRY_FIRST, next_try: now + RETRY_FIRST });
            }
        }
    }

    /// Writes the batch in one transaction; a failure says whether trying again at once is
    /// worth it (a deadlock, a serialization failure).
    async fn commit_batch(&mut self) -> Result<(), Transient> {
        if self.batch.iter().all(|c| matches!(c, Command::Flush(_) | Command::Retain(..))) {
            // Nothing to write: a flush of an idle writer needs no round trip.
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let write = async {
            let client = self.client().await?;
            let tx = client.transaction().await?;
            write_batch(&tx, &batch).await?;
            Ok::<(), Either>(tx.commit().await?)
        };
        let result = match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(result) => result,
            Err(_) => {
                // A connection that stopped answering (a peer gone without a word): the next
                // try opens another.
                self.client = None;
                Err(Either::Failure(Failure::Connect(format!(
                    "no answer to a write within {} s",
                    WRITE_TIMEOUT.as_secs()
                ))))
            }
        };
        self.batch = batch;
        result.map_err(|e| match e {
            Either::Failure(f) => Transient(false, f),
            Either::Pg(e) => Transient(Failure::is_transient(&e), Failure::from(e)),
        })
    }

    /// Writes whatever is queued, if anything: lets new records through between retention
    /// steps.
    async fn write_pending(&mut self) {
        if let Ok(command) = self.commands.try_recv() {
            self.batch.push(command);
            self.take_queued();
            self.write_queued().await;
        }
    }

    /// Applies `policy`, one chunk of at most [`RETAIN_CHUNK`] rows per statement.
    async fn retain(&mut self, policy: &Retention) -> Result<usize, StoreError> {
        let url = self.url.clone();
        let fail = |e: tokio_postgres::Error| url.failed(Failure::from(e));
        let mut deleted = 0;
        if let Some(age) = policy.max_age {
            let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            let oldest_kept = Bound::Time(now_millis().saturating_sub(age)).first_id();
            deleted += self.delete_chunked(DELETE_OLDER, None, oldest_kept).await?;
        }
        if let Some(keep) = policy.max_per_target {
            let rows = self.conn().await?.query("SELECT DISTINCT key FROM targets", &[]).await.map_err(fail)?;
            let keys: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            let queries = [count_retention_sql(true), count_retention_sql(false)];
            for key in keys {
                self.write_pending().await;
                for (newest_dropped, delete) in &queries {
                    let row =
                        self.conn().await?.query_opt(newest_dropped, &[&key, &sql_limit(keep)]).await.map_err(fail)?;
                    if let Some(up_to) = row.map(|row| row.get::<_, i64>(0)) {
                        deleted += self.delete_chunked(delete, Some(&key), up_to).await?;
                    }
                }
            }
        }
        if deleted > 0 {
            self.conn().await?.execute(FORGET_EMPTY_TARGETS, &[]).await.map_err(fail)?;
        }
        Ok(deleted)
    }

    /// The connection for a retention step.
    async fn conn(&mut self) -> Result<&Client, StoreError> {
        let url = self.url.clone();
        match self.client().await {
            Ok(client) => Ok(client),
            Err(f) => Err(url.failed(f)),
        }
    }

    /// Runs the delete `sql` (`$1` the key if there is one, then the bound, then the chunk
    /// size) until it deletes less than a whole chunk, writing queued records after each chunk.
    async fn delete_chunked(&mut self, sql: &str, key: Option<&str>, bound: i64) -> Result<usize, StoreError> {
        let url = self.url.clone();
        let mut deleted = 0;
        let chunk = sql_limit(RETAIN_CHUNK);
        loop {
            let client = self.conn().await?;
            let n = match key {
                Some(key) => client.execute(sql, &[&key, &bound, &chunk]).await,
                None => client.execute(sql, &[&bound, &chunk]).await,
            }
            .map_err(|e| url.failed(Failure::from(e)))?;
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            deleted += n;
            self.write_pending().await;
            if n < RETAIN_CHUNK {
                return Ok(deleted);
            }
        }
    }
}

/// A failed commit: whether it is worth trying again at once, and why it failed.
struct Transient(bool, Failure);

/// A failure before the transaction (connecting) or in it.
enum Either {
    Failure(Failure),
    Pg(tokio_postgres::Error),
}

impl From<Failure> for Either {
    fn from(f: Failure) -> Either {
        Either::Failure(f)
    }
}

impl From<tokio_postgres::Error> for Either {
    fn from(e: tokio_postgres::Error) -> Either {
        Either::Pg(e)
    }
}

/// Writes `batch` in `tx`, in order: each run of records in one statement, the other commands
/// one by one, then the targets of the records that were new.
async fn write_batch(tx: &Transaction<'_>, batch: &[Command]) -> Result<(), tokio_postgres::Error> {
    let mut inserted: HashSet<i64> = HashSet::new();
    let mut run: Vec<&Record> = Vec::new();
    for command in batch {
        match command {
            Command::Append(record) => {
                run.push(record);
                continue;
            }
            Command::Flush(_) | Command::Retain(..) => continue,
            _ => {}
        }
        insert(tx, &mut run, &mut inserted).await?;
        match command {
            Command::SaveRoom(room) => save_room(tx, room).await?,
            Command::Redact(key, id, _) => {
                tx.execute(REDACT, &[&sql_int(id.0), key]).await?;
            }
            Command::ForgetRoom(key) => {
                tx.execute(FORGET_ROOM, &[key]).await?;
                tx.execute(FORGET_BANS, &[key]).await?;
            }
            Command::SaveGuest(number) => {
                tx.execute(SAVE_GUEST, &[&sql_int(*number)]).await?;
            }
            Command::Append(_) | Command::Flush(_) | Command::Retain(..) => {}
        }
    }
    insert(tx, &mut run, &mut inserted).await?;
    touch_targets(tx, batch, &inserted).await
}

/// Inserts the records of `run` (emptying it) in id order, adding the ids that were new to
/// `inserted`.
async fn insert(
    tx: &Transaction<'_>,
    run: &mut Vec<&Record>,
    inserted: &mut HashSet<i64>,
) -> Result<(), tokio_postgres::Error> {
    if run.is_empty() {
        return Ok(());
    }
    run.sort_by_key(|r| r.id);
    let text = |f: fn(&Record) -> &str| -> Vec<String> { run.iter().map(|r| storable(f(r))).collect() };
    let ids: Vec<i64> = run.iter().map(|r| sql_int(r.id.0)).collect();
    let keys: Vec<String> = run.iter().map(|r| storable(&fold(&r.target))).collect();
    let targets = text(|r| &r.target);
    let kinds: Vec<&str> = run.iter().map(|r| r.kind.as_str()).collect();
    let nicks = text(|r| &r.nick);
    let users = text(|r| &r.user);
    let hosts = text(|r| &r.host);
    let texts = text(|r| &r.text);
    let extras = text(|r| &r.extra);
    let tags: Vec<String> = run.iter().map(|r| storable(&tags_to_sql(&r.tags))).collect();
    let rows =
        tx.query(INSERT, &[&ids, &keys, &targets, &kinds, &nicks, &users, &hosts, &texts, &extras, &tags]).await?;
    inserted.extend(rows.iter().map(|row| row.get::<_, i64>(0)));
    run.clear();
    Ok(())
}

/// Text as PostgreSQL can keep it: `text` cannot hold NUL, which charla's sanitiser removes
/// from what clients send anyway; should one slip through, it becomes U+FFFD rather than
/// stop the writer for good.
fn storable(s: &str) -> String {
    if s.contains('\0') { s.replace('\0', "\u{FFFD}") } else { s.to_string() }
}

/// Moves each target's newest record forward for the records that were new, per owner (`''`
/// for rooms, each party of a private conversation), in key order.
async fn touch_targets(
    tx: &Transaction<'_>,
    batch: &[Command],
    inserted: &HashSet<i64>,
) -> Result<(), tokio_postgres::Error> {
    // (owner, key) -> (latest, name)
    let mut newest: BTreeMap<(String, String), (i64, String)> = BTreeMap::new();
    let mut touch = |owner: &str, key: &str, name: &str, id: i64| {
        let slot = newest.entry((owner.to_string(), key.to_string())).or_insert((id, name.to_string()));
        if id > slot.0 {
            *slot = (id, name.to_string());
        }
    };
    for command in batch {
        let Command::Append(record) = command else { continue };
        let id = sql_int(record.id.0);
        if !inserted.contains(&id) {
            continue;
        }
        let key = fold(&record.target);
        match dm_parties(&key) {
            None => touch("", &key, &record.target, id),
            Some((a, b)) => {
                touch(a, &key, record.spelling(b), id);
                touch(b, &key, record.spelling(a), id);
            }
        }
    }
    if newest.is_empty() {
        return Ok(());
    }
    let mut owners = Vec::new();
    let mut keys = Vec::new();
    let mut names = Vec::new();
    let mut latest = Vec::new();
    for ((owner, key), (id, name)) in newest {
        owners.push(storable(&owner));
        keys.push(storable(&key));
        names.push(storable(&name));
        latest.push(id);
    }
    tx.execute(TOUCH_TARGETS, &[&owners, &keys, &names, &latest]).await?;
    Ok(())
}

/// Saves a room's settings and replaces its ban list.
async fn save_room(tx: &Transaction<'_>, room: &RoomState) -> Result<(), tokio_postgres::Error> {
    let key = storable(&fold(&room.name));
    let topic = room.topic.as_ref();
    tx.execute(
        SAVE_ROOM,
        &[
            &key,
            &storable(&room.name),
            &sql_int(room.created),
            &topic.map(|t| storable(&t.text)),
            &topic.map(|t| storable(&t.set_by)),
            &topic.map(|t| sql_int(t.at)),
            &storable(&room.modes),
        ],
    )
    .await?;
    tx.execute(FORGET_BANS, &[&key]).await?;
    if !room.bans.is_empty() {
        let positions: Vec<i64> = (0..room.bans.len() as i64).collect();
        let masks: Vec<String> = room.bans.iter().map(|b| storable(&b.mask)).collect();
        let by: Vec<String> = room.bans.iter().map(|b| storable(&b.set_by)).collect();
        let at: Vec<i64> = room.bans.iter().map(|b| sql_int(b.at)).collect();
        tx.execute(SAVE_BANS, &[&key, &positions, &masks, &by, &at]).await?;
    }
    Ok(())
}
