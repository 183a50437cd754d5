//! The durable store: one SQLite file under `--data-dir`, so history survives a restart.
//!
//! Every Push is one transaction (records, counter deltas and the instance's applied sequence
//! numbers together), and the aggregator acknowledges the Push only after `apply_push`
//! returned, i.e. after COMMIT. The file is in WAL mode with `synchronous=NORMAL`: a commit is
//! a `write()` of the WAL frames into the kernel's page cache without an fsync, so a process
//! killed with SIGKILL (or OOM-killed) loses nothing it acknowledged, because the kernel still
//! writes those pages out; a power loss or kernel crash can lose the last commits (never
//! corrupt the file). `synchronous=FULL` would fsync the WAL on every commit and cost a disk
//! flush per Push; the filter buffers and retries what was not acknowledged anyway, so the
//! collector's job is to survive its own death, which NORMAL does.
//!
//! Layout: one row per Push in `batches` (sender, arrival time, record count, start-time range,
//! and the records encoded back to back, see [`codec`]), not one row per record. SQLite's cost is
//! per row and per index entry, so a batch row makes ingest a single insert per Push (≈0.35–0.4M
//! records/s on one core, against ≈0.03–0.1M/s for a row and a request-id index entry per
//! record), and retention deletes whole batches from the oldest end. Strings that repeat across
//! records are dictionary-coded (`strings`), the sender's identity is stored once per identity
//! (`identities`), so a typical failure record takes ~90 bytes in the file.
//!
//! Reads: the newest `max_records` records are also held in a [`MemoryStore`] (rebuilt from the
//! file at startup), which answers explain, counters, proxies and request-id lookups exactly as
//! the memory store does, so explain stays as fast and as bounded as before; record listings that
//! reach past what memory holds decode the batch rows they need (the slow path: a full scan when
//! the listing is unbounded in time). Retention (age, size) deletes the oldest rows in small
//! steps from [`Store::maintain`], never in one long delete.
//!
//! One process owns the file: it is opened in SQLite's exclusive locking mode, so a second
//! collector on the same directory fails at startup instead of interleaving sequence numbers.

mod codec;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use meshwhy_proto::v1::{Counter, ProxyIdentity};
use prost::Message;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub use self::codec::CorruptRecord;
use self::codec::Strings;
use super::memory::{CounterKey, ProxyState, PushPlan};
use super::sequence::SequenceWindow;
use super::{
    CounterFilter, CounterTotal, ExplainAnswer, ExplainQuery, MemoryStore, ProxyReport, PushBatch,
    PushOutcome, RecordFilter, RecordPage, Store, StoreError, StoreStats, StoredRecord,
};

/// The database file's name inside the data directory.
pub const FILE_NAME: &str = "meshwhy.db";

/// Rows deleted per retention step: a few milliseconds of work, so a Push queued behind a step
/// waits no longer than behind a large batch.
const RETENTION_STEP_ROWS: usize = 2_000;

/// Width of a counter bucket (the memory store's, so both window counters alike).
const BUCKET_NANOS: u64 = 60 * 1_000_000_000;

/// How long and how much the file keeps; `None` keeps everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Records and counter buckets older than this (by arrival) are deleted.
    pub max_age_nanos: Option<u64>,
    /// Oldest records are deleted while the data in the file exceeds this many bytes.
    pub max_bytes: Option<u64>,
}

/// Why the durable store could not open its file.
#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    /// The data directory could not be created.
    #[error("create data directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file was written by a newer collector.
    #[error(
        "{} has store schema version {found}, newer than the {supported} this meshwhy-collector supports: run the newer collector, or point --data-dir (env MESHWHY_DATA_DIR) at another directory",
        path.display()
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// Another process holds the file.
    #[error("{} is in use by another process (another meshwhy-collector on the same --data-dir?)", path.display())]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// SQLite failed.
    #[error("open store {}: {source}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored row could not be read back.
    #[error("read store {}: {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: CorruptRecord,
    },
}

impl StoreOpenError {
    /// Whether the user must change a setting (exit 64) rather than the file being unusable.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::NewerSchema { .. } | Self::InUse { .. } | Self::CreateDir { .. }
        )
    }
}

/// An SQLite error while opening `path`; a lock held elsewhere is [`StoreOpenError::InUse`].
fn open_error(path: &Path, source: rusqlite::Error) -> StoreOpenError {
    match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreOpenError::InUse {
                path: path.to_owned(),
            }
        }
        _ => StoreOpenError::Sqlite {
            path: path.to_owned(),
            source,
        },
    }
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError(Box::new(error))
}

/// The durable store (see the module documentation).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    memory: MemoryStore,
    retention: Retention,
    dictionaries: Dictionaries,
    /// Records in the file. They only ever leave from the oldest end, so memory holds the
    /// newest `memory.len()` of them and the other `rows - memory.len()` are the oldest.
    rows: u64,
    /// The batch row being encoded (kept to reuse its allocation).
    scratch: Vec<u8>,
    /// Records deleted by retention since start.
    deleted: u64,
}

/// In-memory copies of the small tables, so ingest looks ids up without a query.
#[derive(Debug)]
struct Dictionaries {
    strings: Strings,
    /// Identities by instance, with their row ids (an instance has more than one only when its
    /// identity changed).
    identities: HashMap<String, Vec<(Arc<ProxyIdentity>, i64)>>,
    by_id: HashMap<i64, Arc<ProxyIdentity>>,
    next_identity: i64,
    /// Counter key → (row id, the latest counter as stored, count 0).
    counter_keys: HashMap<CounterKey, (i64, Vec<u8>)>,
    next_counter_key: i64,
}

impl Dictionaries {
    fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let mut statement = conn.prepare("SELECT id, value FROM strings")?;
        let rows = statement
            .query_map([], |row| Ok((row.get::<_, i64>(0)? as u64, row.get(1)?)))?
            .collect::<rusqlite::Result<Vec<(u64, String)>>>()?;
        let strings = Strings::load(rows);

        let mut identities: HashMap<String, Vec<(Arc<ProxyIdentity>, i64)>> = HashMap::new();
        let mut by_id = HashMap::new();
        let mut next_identity = 1;
        let mut statement = conn.prepare("SELECT id, body FROM identities ORDER BY id")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let body: Vec<u8> = row.get(1)?;
            // An identity that does not parse is kept as an empty one: its records still load.
            let identity = Arc::new(ProxyIdentity::decode(body.as_slice()).unwrap_or_default());
            identities
                .entry(identity.instance_id.clone())
                .or_default()
                .push((Arc::clone(&identity), id));
            by_id.insert(id, identity);
            next_identity = next_identity.max(id + 1);
        }

        let mut counter_keys = HashMap::new();
        let mut next_counter_key = 1;
        let mut statement = conn.prepare(
            "SELECT id, namespace, workload, pod, route_name, cluster, response_code, latest
             FROM counter_keys",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let key = CounterKey {
                namespace: row.get(1)?,
                workload: row.get(2)?,
                pod: row.get(3)?,
                route_name: row.get(4)?,
                cluster: row.get(5)?,
                response_code: row.get(6)?,
            };
            counter_keys.insert(key, (id, row.get(7)?));
            next_counter_key = next_counter_key.max(id + 1);
        }
        Ok(Self {
            strings,
            identities,
            by_id,
            next_identity,
            counter_keys,
            next_counter_key,
        })
    }

    /// The row id of `identity`, inserting a row the first time it is seen.
    fn identity_id(
        &mut self,
        tx: &Transaction<'_>,
        identity: &Arc<ProxyIdentity>,
    ) -> rusqlite::Result<i64> {
        let known = self
            .identities
            .entry(identity.instance_id.clone())
            .or_default();
        if let Some((_, id)) = known.iter().find(|(have, _)| **have == **identity) {
            return Ok(*id);
        }
        let id = self.next_identity;
        tx.prepare_cached("INSERT INTO identities (id, instance_id, body) VALUES (?1, ?2, ?3)")?
            .execute(params![id, identity.instance_id, identity.encode_to_vec()])?;
        self.next_identity += 1;
        known.push((Arc::clone(identity), id));
        self.by_id.insert(id, Arc::clone(identity));
        Ok(id)
    }

    /// The row id of a counter key, storing the counter's provenance as the key's latest.
    fn counter_key_id(
        &mut self,
        tx: &Transaction<'_>,
        key: CounterKey,
        counter: &Counter,
    ) -> rusqlite::Result<i64> {
        let latest = Counter {
            count: 0,
            ..counter.clone()
        }
        .encode_to_vec();
        if let Some((id, stored)) = self.counter_keys.get_mut(&key) {
            if *stored != latest {
                tx.prepare_cached("UPDATE counter_keys SET latest = ?2 WHERE id = ?1")?
                    .execute(params![*id, latest])?;
                *stored = latest;
            }
            return Ok(*id);
        }
        let id = self.next_counter_key;
        tx.prepare_cached(
            "INSERT INTO counter_keys
             (id, namespace, workload, pod, route_name, cluster, response_code, latest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            id,
            key.namespace,
            key.workload,
            key.pod,
            key.route_name,
            key.cluster,
            key.response_code,
            latest
        ])?;
        self.next_counter_key += 1;
        self.counter_keys.insert(key, (id, latest));
        Ok(id)
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `DIR/meshwhy.db`, migrates it, and loads what memory serves.
    pub fn open(
        dir: &Path,
        max_records: usize,
        retention: Retention,
    ) -> Result<Self, StoreOpenError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreOpenError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let sqlite = |source| open_error(&path, source);
        let mut conn = Connection::open(&path).map_err(sqlite)?;
        // Exclusive before WAL: the lock is taken at the first access below and held until the
        // process ends (the kernel drops it even on SIGKILL), and no shared-memory index is
        // needed. Incremental auto-vacuum must be chosen before the first table exists.
        conn.busy_timeout(std::time::Duration::ZERO)
            .map_err(sqlite)?;
        conn.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA auto_vacuum = INCREMENTAL;",
        )
        .map_err(sqlite)?;
        let journal: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(sqlite)?;
        if !journal.eq_ignore_ascii_case("wal") {
            tracing::warn!(journal, "the store file could not switch to WAL mode");
        }
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL;
             PRAGMA journal_size_limit = 67108864;
             PRAGMA wal_autocheckpoint = 16384;
             PRAGMA cache_size = -65536;
             BEGIN EXCLUSIVE; COMMIT;",
        )
        .map_err(sqlite)?;
        schema::migrate(&mut conn, &path)?;
        let dictionaries = Dictionaries::load(&conn).map_err(sqlite)?;
        let mut store = Self {
            conn,
            path: path.clone(),
            memory: MemoryStore::new(max_records),
            retention,
            dictionaries,
            rows: 0,
            scratch: Vec::new(),
            deleted: 0,
        };
        store.load().map_err(|error| match error {
            LoadError::Sqlite(source) => sqlite(source),
            LoadError::Corrupt(source) => StoreOpenError::Corrupt {
                path: path.clone(),
                source,
            },
        })?;
        tracing::info!(
            path = %path.display(),
            records = store.rows,
            loaded = store.memory.len(),
            proxies = store.memory.stats().proxies,
            "store opened"
        );
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rebuilds the memory side from the file.
    fn load(&mut self) -> Result<(), LoadError> {
        let by_id = &self.dictionaries.by_id;
        let identity = |id: i64| {
            by_id
                .get(&id)
                .cloned()
                .unwrap_or_else(|| Arc::new(ProxyIdentity::default()))
        };

        let mut statement = self.conn.prepare(
            "SELECT identity, contiguous, above, abandoned, batches, records, dropped_records,
                    dropped_counter_keys, last_seen FROM proxies",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let above: Vec<u8> = row.get(2)?;
            let mut bytes = above.as_slice();
            let above = std::iter::from_fn(|| codec::varint(&mut bytes)).collect::<Vec<_>>();
            self.memory.restore_proxy(ProxyState {
                identity: identity(row.get(0)?),
                window: SequenceWindow::from_parts(
                    row.get::<_, i64>(1)? as u64,
                    above,
                    row.get::<_, i64>(3)? as u64,
                ),
                batches: row.get::<_, i64>(4)? as u64,
                records: row.get::<_, i64>(5)? as u64,
                dropped_records: row.get::<_, i64>(6)? as u64,
                dropped_counter_keys: row.get::<_, i64>(7)? as u64,
                last_seen_unix_nanos: row.get::<_, i64>(8)? as u64,
            });
        }
        drop(rows);
        drop(statement);

        let mut buckets: HashMap<i64, Vec<(u64, u64)>> = HashMap::new();
        let mut statement = self
            .conn
            .prepare("SELECT minute, key, count FROM counter_buckets ORDER BY minute")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let (minute, key, count): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
            buckets
                .entry(key)
                .or_default()
                .push((minute as u64, count as u64));
        }
        drop(rows);
        drop(statement);
        for (key, (id, latest)) in &self.dictionaries.counter_keys {
            if let Some(buckets) = buckets.remove(id) {
                let latest = Counter::decode(latest.as_slice()).unwrap_or_default();
                self.memory.restore_counter(key.clone(), latest, buckets);
            }
        }

        // The newest batches holding `max_records` records (or all), newest first.
        let mut selected: Vec<(i64, u64)> = Vec::new();
        let mut unloaded_until = 0u64;
        let max_records = self.memory.max_records() as u64;
        let mut statement = self
            .conn
            .prepare("SELECT id, records, max_start FROM batches ORDER BY id DESC")?;
        let mut rows = statement.query([])?;
        let mut total = 0u64;
        let mut loading = 0u64;
        while let Some(row) = rows.next()? {
            let (id, count, max_start): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
            total += count as u64;
            if loading < max_records {
                loading += count as u64;
                selected.push((id, count as u64));
            } else {
                unloaded_until = unloaded_until.max(max_start as u64);
            }
        }
        drop(rows);
        drop(statement);
        self.rows = total;
        // The oldest selected batch may hold more than fit: its first records stay unloaded.
        let mut skip = loading.saturating_sub(max_records);
        // Memory positions count from the unloaded records, which come first.
        let unloaded = total - loading.min(max_records);
        if unloaded > 0 {
            self.memory.restore_unloaded(unloaded, unloaded_until);
        }
        let mut statement = self
            .conn
            .prepare("SELECT identity, received, data FROM batches WHERE id = ?1")?;
        for &(id, _) in selected.iter().rev() {
            let mut rows = statement.query([id])?;
            let Some(row) = rows.next()? else { continue };
            let proxy = identity(row.get(0)?);
            let received = row.get::<_, i64>(1)? as u64;
            let mut data = row.get_ref(2)?.as_blob()?;
            while !data.is_empty() {
                let record = codec::decode(&mut data, &self.dictionaries.strings)?;
                if skip > 0 {
                    skip -= 1;
                    unloaded_until = unloaded_until.max(record.start_time_unix_nanos);
                    continue;
                }
                self.memory.restore_record(&proxy, record, received);
            }
        }
        self.memory.restore_unloaded(0, unloaded_until);
        Ok(())
    }

    /// Writes one planned batch in one transaction; returns how many records it stored.
    fn write(
        tx: &Transaction<'_>,
        dictionaries: &mut Dictionaries,
        scratch: &mut Vec<u8>,
        batch: &mut PushBatch,
        plan: &PushPlan,
        now_unix_nanos: u64,
    ) -> rusqlite::Result<()> {
        let identity = dictionaries.identity_id(tx, &plan.identity)?;
        let state_identity = dictionaries.identity_id(tx, &plan.state.identity)?;
        if !batch.records.is_empty() {
            let mut new_strings = Vec::new();
            let data = scratch;
            data.clear();
            let (mut min_start, mut max_start) = (u64::MAX, 0);
            for record in &mut batch.records {
                codec::encode(record, &mut dictionaries.strings, &mut new_strings, data);
                min_start = min_start.min(record.start_time_unix_nanos);
                max_start = max_start.max(record.start_time_unix_nanos);
            }
            let mut insert_string =
                tx.prepare_cached("INSERT INTO strings (id, value) VALUES (?1, ?2)")?;
            for (string_id, value) in new_strings.drain(..) {
                insert_string.execute(params![string_id as i64, value])?;
            }
            tx.prepare_cached(
                "INSERT INTO batches (identity, received, records, min_start, max_start, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                identity,
                now_unix_nanos as i64,
                batch.records.len() as i64,
                min_start as i64,
                max_start as i64,
                &data[..],
            ])?;
        }
        {
            let minute = (now_unix_nanos - now_unix_nanos % BUCKET_NANOS) as i64;
            for counter in &batch.counters {
                let key = CounterKey::of(&plan.identity, counter);
                let key = dictionaries.counter_key_id(tx, key, counter)?;
                tx.prepare_cached(
                    "INSERT INTO counter_buckets (minute, key, count) VALUES (?1, ?2, ?3)
                     ON CONFLICT (minute, key) DO UPDATE SET count = count + excluded.count",
                )?
                .execute(params![minute, key, counter.count as i64])?;
            }
        }
        let state = &plan.state;
        let (contiguous, above, abandoned) = state.window.parts();
        let mut above_bytes = Vec::new();
        for sequence in above {
            codec::put_varint(&mut above_bytes, sequence);
        }
        tx.prepare_cached(
            "INSERT OR REPLACE INTO proxies (instance_id, identity, contiguous, above, abandoned,
                batches, records, dropped_records, dropped_counter_keys, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            state.identity.instance_id,
            state_identity,
            contiguous as i64,
            above_bytes,
            abandoned as i64,
            state.batches as i64,
            state.records as i64,
            state.dropped_records as i64,
            state.dropped_counter_keys as i64,
            state.last_seen_unix_nanos as i64,
        ])?;
        Ok(())
    }

    /// Plans, writes and commits `batches` in one transaction, then applies them to memory.
    /// All succeed or all fail (the transaction rolls back and memory is untouched).
    fn apply_group(
        &mut self,
        batches: Vec<PushBatch>,
        now_unix_nanos: u64,
    ) -> Result<Vec<PushOutcome>, StoreError> {
        // Later batches of an instance are planned from the state its earlier ones lead to.
        let mut pending: HashMap<String, ProxyState> = HashMap::new();
        let mut planned = Vec::with_capacity(batches.len());
        for batch in batches {
            let current = pending.get(&batch.proxy.instance_id);
            let plan = self.memory.plan_push_from(current, &batch, now_unix_nanos);
            if let Some(plan) = &plan {
                pending.insert(batch.proxy.instance_id.clone(), plan.state.clone());
            }
            planned.push((batch, plan));
        }
        let written = (|| {
            let Self {
                conn,
                dictionaries,
                scratch,
                ..
            } = self;
            let tx = conn.transaction()?;
            for (batch, plan) in &mut planned {
                if let Some(plan) = plan {
                    Self::write(&tx, dictionaries, scratch, batch, plan, now_unix_nanos)?;
                }
            }
            tx.commit()
        })();
        if let Err(error) = written {
            // The transaction rolled back; the dictionaries may hold ids it would have stored.
            if let Ok(dictionaries) = Dictionaries::load(&self.conn) {
                self.dictionaries = dictionaries;
            }
            return Err(backend(error));
        }
        let mut outcomes = Vec::with_capacity(planned.len());
        for (batch, plan) in planned {
            outcomes.push(PushOutcome {
                duplicate: plan.is_none(),
            });
            if let Some(plan) = plan {
                self.rows += batch.records.len() as u64;
                self.memory.commit_push(plan, batch, now_unix_nanos);
            }
        }
        Ok(outcomes)
    }

    /// Deletes the oldest batches while `old(received)` holds, about one step's worth of
    /// records; returns how many records went. The memory side drops the same records.
    /// Arrival order is the row order, so this stops at the first batch that is not old (a
    /// clock stepping back only delays retention).
    fn delete_oldest(&mut self, old: impl Fn(u64) -> bool) -> rusqlite::Result<u64> {
        let mut bound = None;
        let mut deleted = 0u64;
        {
            let mut statement = self
                .conn
                .prepare_cached("SELECT id, received, records FROM batches ORDER BY id")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let (id, received, count): (i64, i64, i64) =
                    (row.get(0)?, row.get(1)?, row.get(2)?);
                if !old(received as u64) {
                    break;
                }
                bound = Some(id + 1);
                deleted += count as u64;
                if deleted >= RETENTION_STEP_ROWS as u64 {
                    break;
                }
            }
        }
        let Some(bound) = bound else {
            return Ok(0);
        };
        self.conn
            .prepare_cached("DELETE FROM batches WHERE id < ?1")?
            .execute([bound])?;
        // The oldest `rows - memory.len()` records are not in memory; memory loses the rest.
        let only_in_file = self.rows - self.memory.len() as u64;
        let from_memory = deleted.saturating_sub(only_in_file);
        self.memory
            .evict_oldest(usize::try_from(from_memory).unwrap_or(usize::MAX));
        self.rows -= deleted.min(self.rows);
        self.deleted += deleted;
        Ok(deleted)
    }

    /// Bytes of data in the main file (free pages excluded), and the file's size.
    fn sizes(&self) -> rusqlite::Result<(u64, u64)> {
        let pragma = |name: &str| -> rusqlite::Result<u64> {
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |row| row.get::<_, i64>(0))
                .map(|value| value as u64)
        };
        let (pages, free, size) = (
            pragma("page_count")?,
            pragma("freelist_count")?,
            pragma("page_size")?,
        );
        Ok(((pages - free.min(pages)) * size, pages * size))
    }

    fn step_retention(&mut self, now_unix_nanos: u64) -> rusqlite::Result<bool> {
        let mut more = false;
        if let Some(age) = self.retention.max_age_nanos {
            let cutoff = now_unix_nanos.saturating_sub(age);
            let deleted = self.delete_oldest(|received| received < cutoff)?;
            more |= deleted >= RETENTION_STEP_ROWS as u64;
            // One minute of buckets per step; a minute is gone once it ended by the cutoff.
            let oldest: Option<i64> = self
                .conn
                .prepare_cached("SELECT minute FROM counter_buckets ORDER BY minute LIMIT 1")?
                .query_row([], |row| row.get(0))
                .optional()?;
            if let Some(minute) = oldest
                && (minute as u64).saturating_add(BUCKET_NANOS) <= cutoff
            {
                self.conn
                    .prepare_cached("DELETE FROM counter_buckets WHERE minute = ?1")?
                    .execute([minute])?;
                more = true;
            }
            self.memory.forget_counts_before(cutoff);
        }
        if let Some(max_bytes) = self.retention.max_bytes {
            let (used, file) = self.sizes()?;
            if used > max_bytes && self.delete_oldest(|_| true)? > 0 {
                more = true;
            }
            if file > max_bytes {
                // Give free pages back to the file system, a bounded number per step.
                self.conn.execute_batch("PRAGMA incremental_vacuum(2048)")?;
            }
        }
        Ok(more)
    }
}

/// Why loading the file into memory failed.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Corrupt(#[from] codec::CorruptRecord),
}

impl Store for SqliteStore {
    fn apply_push(
        &mut self,
        batch: PushBatch,
        now_unix_nanos: u64,
    ) -> Result<PushOutcome, StoreError> {
        let outcomes = self.apply_group(vec![batch], now_unix_nanos)?;
        Ok(outcomes
            .first()
            .copied()
            .unwrap_or(PushOutcome { duplicate: true }))
    }

    /// One transaction (one commit) for the whole group.
    fn apply_pushes(
        &mut self,
        batches: Vec<PushBatch>,
        now_unix_nanos: u64,
    ) -> Vec<Result<PushOutcome, StoreError>> {
        let count = batches.len();
        match self.apply_group(batches, now_unix_nanos) {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(error) => {
                let message = error.to_string();
                (0..count)
                    .map(|_| Err(backend(std::io::Error::other(message.clone()))))
                    .collect()
            }
        }
    }

    fn list_records(&self, filter: &RecordFilter, limit: usize) -> Result<RecordPage, StoreError> {
        // Memory answers exactly when it holds every record the filter can match.
        if self.memory.len() as u64 == self.rows
            || filter
                .since_unix_nanos
                .is_some_and(|since| self.memory.records_complete_since(since))
        {
            return self.memory.list_records(filter, limit);
        }
        self.list_from_file(filter, limit).map_err(backend)
    }

    fn list_counters(&self, filter: &CounterFilter) -> Result<Vec<CounterTotal>, StoreError> {
        self.memory.list_counters(filter)
    }

    fn list_proxies(&self) -> Result<Vec<ProxyReport>, StoreError> {
        self.memory.list_proxies()
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            records: self.rows,
            evicted_records: self.deleted,
            proxies: self.memory.stats().proxies,
        }
    }

    fn maintain(&mut self, now_unix_nanos: u64) -> Result<bool, StoreError> {
        self.step_retention(now_unix_nanos).map_err(backend)
    }

    /// Over the records memory holds (the newest `max_records`), like the memory store: its
    /// window is marked incomplete when older records exist only in the file.
    fn explain(&self, query: &ExplainQuery) -> Result<ExplainAnswer, StoreError> {
        self.memory.explain(query)
    }
}

impl SqliteStore {
    /// A record listing read from the file (newest arrivals first, like memory's scan). Reads
    /// every batch row the window can reach: the slow path, for listings past what memory holds.
    fn list_from_file(&self, filter: &RecordFilter, limit: usize) -> Result<RecordPage, ListError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT identity, received, data, records, min_start FROM batches
             WHERE max_start >= ?1 ORDER BY id DESC",
        )?;
        let since = filter.since_unix_nanos.unwrap_or(0) as i64;
        let mut rows = statement.query([since])?;
        let mut page = RecordPage::default();
        let empty = Arc::new(ProxyIdentity::default());
        let mut batch = Vec::new();
        let by_sender_and_time =
            filter.response_code.is_none() && filter.flags_all == 0 && filter.request_id.is_none();
        while let Some(row) = rows.next()? {
            let proxy = self
                .dictionaries
                .by_id
                .get(&row.get::<_, i64>(0)?)
                .unwrap_or(&empty);
            let sender =
                |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
            if !(sender(&filter.namespace, &proxy.namespace)
                && sender(&filter.workload, &proxy.workload)
                && sender(&filter.pod, &proxy.pod))
            {
                continue;
            }
            // A full page only counts what else matches: when the sender and the time decide
            // for the whole batch, count it without decoding.
            let (count, min_start): (i64, i64) = (row.get(3)?, row.get(4)?);
            if page.records.len() >= limit
                && by_sender_and_time
                && min_start as u64 >= filter.since_unix_nanos.unwrap_or(0)
            {
                page.truncated += count as u64;
                continue;
            }
            let received = row.get::<_, i64>(1)? as u64;
            let mut data = row.get_ref(2)?.as_blob()?;
            batch.clear();
            while !data.is_empty() {
                let record = codec::decode(&mut data, &self.dictionaries.strings)?;
                if filter.matches(proxy, &record) {
                    batch.push(record);
                }
            }
            // Newest first within the batch too.
            for record in batch.drain(..).rev() {
                if page.records.len() < limit {
                    page.records.push(StoredRecord {
                        record,
                        proxy: Arc::clone(proxy),
                        received_unix_nanos: received,
                    });
                } else {
                    page.truncated += 1;
                }
            }
        }
        page.records.sort_by(|a, b| {
            b.record
                .start_time_unix_nanos
                .cmp(&a.record.start_time_unix_nanos)
        });
        Ok(page)
    }
}

/// Why a listing from the file failed.
#[derive(Debug, thiserror::Error)]
enum ListError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    FromSql(#[from] rusqlite::types::FromSqlError),
    #[error(transparent)]
    Corrupt(#[from] codec::CorruptRecord),
}

impl From<rusqlite::types::FromSqlError> for LoadError {
    fn from(error: rusqlite::types::FromSqlError) -> Self {
        Self::Sqlite(error.into())
    }
}

#[cfg(test)]
mod tests;
