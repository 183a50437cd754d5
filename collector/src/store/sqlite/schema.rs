//! The file's schema: numbered migrations, applied in order, each recorded in `schema_version`.

use std::path::Path;

use rusqlite::Connection;

use super::StoreOpenError;

/// Migration `n` (1-based) is `MIGRATIONS[n - 1]`. Append only: a released migration never
/// changes, so a file's recorded versions say exactly what it contains.
const MIGRATIONS: &[&str] = &[
    // 1: records, counters, proxies, dictionaries.
    "
    CREATE TABLE strings (id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE);
    CREATE TABLE identities (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, body BLOB NOT NULL);
    CREATE TABLE proxies (
        instance_id TEXT PRIMARY KEY,
        identity INTEGER NOT NULL,
        contiguous INTEGER NOT NULL,
        above BLOB NOT NULL,
        abandoned INTEGER NOT NULL,
        batches INTEGER NOT NULL,
        records INTEGER NOT NULL,
        dropped_records INTEGER NOT NULL,
        dropped_counter_keys INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        identity INTEGER NOT NULL,
        received INTEGER NOT NULL,
        records INTEGER NOT NULL,
        min_start INTEGER NOT NULL,
        max_start INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE TABLE counter_keys (
        id INTEGER PRIMARY KEY,
        namespace TEXT NOT NULL,
        workload TEXT NOT NULL,
        pod TEXT NOT NULL,
        route_name TEXT NOT NULL,
        cluster TEXT NOT NULL,
        response_code INTEGER NOT NULL,
        latest BLOB NOT NULL
    );
    CREATE TABLE counter_buckets (
        minute INTEGER NOT NULL,
        key INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (minute, key)
    ) WITHOUT ROWID;
    ",
];

/// The newest schema this build knows.
pub(crate) const CURRENT: i64 = MIGRATIONS.len() as i64;

/// Brings the file at `path` to [`CURRENT`]; refuses a file written by a newer collector
/// (its rows may mean something this build would misread or destroy).
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreOpenError> {
    let sqlite = |source| super::open_error(path, source);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version INTEGER PRIMARY KEY,
            applied_unix_nanos INTEGER NOT NULL
        )",
    )
    .map_err(sqlite)?;
    let found: i64 = conn
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_version",
            [],
            |row| row.get(0),
        )
        .map_err(sqlite)?;
    if found > CURRENT {
        return Err(StoreOpenError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: CURRENT,
        });
    }
    let now = crate::time::unix_nanos(std::time::SystemTime::now()) as i64;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        let tx = conn.transaction().map_err(sqlite)?;
        tx.execute_batch(sql).map_err(sqlite)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_unix_nanos) VALUES (?1, ?2)",
            (version, now),
        )
        .map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        tracing::info!(version, path = %path.display(), "store schema migrated");
    }
    Ok(())
}
