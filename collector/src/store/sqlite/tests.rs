//! The durable store against a real file in a temporary directory.

use meshwhy_proto::v1::{Counter, DecisionRecord, Direction, ProxyIdentity};

use super::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "meshwhy-store-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SECOND: u64 = 1_000_000_000;
const HOUR: u64 = 3600 * SECOND;

fn record(id: &str, start: u64) -> DecisionRecord {
    DecisionRecord {
        request_id: id.into(),
        response_code: 503,
        response_flags: 1 << 5,
        start_time_unix_nanos: start,
        direction: Direction::Outbound as i32,
        cluster: "outbound|9080||reviews.shop.svc.cluster.local".into(),
        response_code_details: "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}".into(),
        path: format!("/reviews/{id}"),
        ..Default::default()
    }
}

fn batch(instance: &str, sequence: u64, records: Vec<DecisionRecord>) -> PushBatch {
    PushBatch {
        proxy: ProxyIdentity {
            instance_id: instance.into(),
            pod: "productpage-1".into(),
            namespace: "shop".into(),
            workload: "productpage".into(),
            ..Default::default()
        },
        sequence,
        records,
        counters: vec![Counter {
            route_name: "default".into(),
            cluster: "outbound|9080||reviews.shop.svc.cluster.local".into(),
            response_code: 200,
            count: 5,
            route_provenance: "/vs/reviews".into(),
            ..Default::default()
        }],
        dropped_records: 0,
        dropped_counter_keys: 0,
    }
}

fn ids(store: &SqliteStore) -> Vec<String> {
    let mut ids: Vec<String> = store
        .list_records(&RecordFilter::default(), usize::MAX)
        .unwrap()
        .records
        .into_iter()
        .map(|stored| stored.record.request_id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn history_and_sequences_survive_reopening() {
    let dir = TempDir::new("reopen");
    {
        let mut store = SqliteStore::open(&dir.0, 100, Retention::default()).unwrap();
        let pushed = store
            .apply_push(batch("a", 1, vec![record("r1", 1), record("r2", 2)]), 10)
            .unwrap();
        assert!(!pushed.duplicate);
        store
            .apply_push(batch("a", 3, vec![record("r3", 3)]), 11)
            .unwrap();
    }
    let mut store = SqliteStore::open(&dir.0, 100, Retention::default()).unwrap();
    assert_eq!(ids(&store), ["r1", "r2", "r3"]);
    let page = store
        .list_records(&RecordFilter::default(), usize::MAX)
        .unwrap();
    let r1 = page
        .records
        .iter()
        .find(|stored| stored.record.request_id == "r1")
        .unwrap();
    assert_eq!(r1.record, record("r1", 1), "every field comes back");
    assert_eq!(r1.proxy.pod, "productpage-1");
    assert_eq!(r1.received_unix_nanos, 10);
    // Applied sequences persisted: retries are duplicates, the gap is still a gap.
    assert!(
        store
            .apply_push(batch("a", 1, vec![record("r1", 1)]), 12)
            .unwrap()
            .duplicate
    );
    assert!(
        store
            .apply_push(batch("a", 3, vec![]), 12)
            .unwrap()
            .duplicate
    );
    let proxies = store.list_proxies().unwrap();
    assert_eq!(proxies[0].missing_batches, 1);
    assert_eq!(proxies[0].batches, 2);
    assert_eq!(proxies[0].records, 3);
    assert!(
        !store
            .apply_push(batch("a", 2, vec![]), 13)
            .unwrap()
            .duplicate
    );
    assert_eq!(ids(&store), ["r1", "r2", "r3"]);
    let counters = store.list_counters(&CounterFilter::default()).unwrap();
    assert_eq!(counters[0].counter.count, 15);
    assert_eq!(counters[0].counter.route_provenance, "/vs/reviews");
    // Explain sees the failures from before the restart.
    let ExplainAnswer::Window(report) = store.explain(&ExplainQuery::default()).unwrap() else {
        panic!("window expected");
    };
    assert_eq!(report.totals.failures, 3);
    assert_eq!(report.totals.successes, 15);
}

#[test]
fn memory_holds_the_newest_and_listings_reach_the_file() {
    let dir = TempDir::new("cap");
    {
        let mut store = SqliteStore::open(&dir.0, 2, Retention::default()).unwrap();
        let records = (1..=5).map(|n| record(&format!("r{n}"), n)).collect();
        store.apply_push(batch("a", 1, records), 1).unwrap();
        assert_eq!(ids(&store), ["r1", "r2", "r3", "r4", "r5"]);
    }
    let store = SqliteStore::open(&dir.0, 2, Retention::default()).unwrap();
    assert_eq!(store.memory.len(), 2);
    assert_eq!(store.stats().records, 5);
    assert_eq!(ids(&store), ["r1", "r2", "r3", "r4", "r5"]);
    let page = store.list_records(&RecordFilter::default(), 2).unwrap();
    assert_eq!(page.truncated, 3);
    let since = RecordFilter {
        since_unix_nanos: Some(2),
        ..Default::default()
    };
    let page = store.list_records(&since, 2).unwrap();
    assert_eq!(page.truncated, 2, "r2 and r3 matched beyond the page");
    let code = RecordFilter {
        response_code: Some(503),
        ..Default::default()
    };
    assert_eq!(store.list_records(&code, 1).unwrap().truncated, 4);
    let mut store = store;
    store
        .apply_push(batch("a", 2, vec![record("r6", 6), record("r7", 7)]), 2)
        .unwrap();
    let page = store.list_records(&RecordFilter::default(), 1).unwrap();
    assert_eq!(page.records[0].record.request_id, "r7");
    assert_eq!(page.truncated, 6, "whole batches counted without decoding");
    let one = RecordFilter {
        request_id: Some("r1".into()),
        ..Default::default()
    };
    assert_eq!(store.list_records(&one, 10).unwrap().records.len(), 1);
    let ExplainAnswer::Window(report) = store.explain(&ExplainQuery::default()).unwrap() else {
        panic!("window expected");
    };
    assert_eq!(
        report.totals.records_scanned, 2,
        "explain is bounded by the cap"
    );
    assert!(!report.totals.window_complete);
}

#[test]
fn retention_by_age_follows_the_given_clock() {
    let dir = TempDir::new("age");
    let retention = Retention {
        max_age_nanos: Some(24 * HOUR),
        max_bytes: None,
    };
    let mut store = SqliteStore::open(&dir.0, 100, retention).unwrap();
    store
        .apply_push(batch("a", 1, vec![record("old", 1)]), HOUR)
        .unwrap();
    store
        .apply_push(batch("a", 2, vec![record("new", 2)]), 20 * HOUR)
        .unwrap();
    // 24h after the first push nothing is older than 24h yet.
    while store.maintain(24 * HOUR).unwrap() {}
    assert_eq!(ids(&store), ["new", "old"]);
    while store.maintain(25 * HOUR + 1).unwrap() {}
    assert_eq!(ids(&store), ["new"]);
    // Its minute of counts goes once that minute has ended by the cutoff.
    assert_eq!(
        store.list_counters(&CounterFilter::default()).unwrap()[0]
            .counter
            .count,
        10
    );
    while store.maintain(25 * HOUR + 60 * SECOND).unwrap() {}
    assert_eq!(ids(&store), ["new"]);
    assert_eq!(store.stats().evicted_records, 1);
    // The first push's counters went with it.
    let counters = store.list_counters(&CounterFilter::default()).unwrap();
    assert_eq!(counters[0].counter.count, 5);
    drop(store);
    let mut store = SqliteStore::open(&dir.0, 100, retention).unwrap();
    assert_eq!(ids(&store), ["new"]);
    assert_eq!(
        store.list_counters(&CounterFilter::default()).unwrap()[0]
            .counter
            .count,
        5
    );
    while store.maintain(45 * HOUR).unwrap() {}
    assert!(ids(&store).is_empty());
    assert!(
        store
            .list_counters(&CounterFilter::default())
            .unwrap()
            .is_empty()
    );
    // The sequence high-water mark outlives the records.
    assert!(
        store
            .apply_push(batch("a", 2, vec![]), 45 * HOUR)
            .unwrap()
            .duplicate
    );
}

#[test]
fn retention_by_size_deletes_the_oldest_in_steps() {
    let dir = TempDir::new("size");
    let mut store = SqliteStore::open(&dir.0, 100_000, Retention::default()).unwrap();
    for sequence in 1..=20 {
        let records = (0..500)
            .map(|n| {
                let mut record = record(&format!("{sequence}-{n}"), sequence);
                record.path = format!("/{}", "x".repeat(400));
                record
            })
            .collect();
        store
            .apply_push(batch("a", sequence, records), sequence)
            .unwrap();
    }
    let (used, _) = store.sizes().unwrap();
    let max_bytes = used / 2;
    store.retention.max_bytes = Some(max_bytes);
    let mut steps = 0;
    while store.maintain(100).unwrap() {
        steps += 1;
    }
    assert!(steps > 1, "deleted in more than one step");
    assert!(store.sizes().unwrap().0 <= max_bytes);
    let left = store.stats().records;
    assert!(left > 0 && left < 10_000, "{left}");
    assert_eq!(
        store.memory.len() as u64,
        left,
        "memory dropped the same records"
    );
    // The newest survive, the oldest went.
    assert!(ids(&store).contains(&"20-499".to_owned()));
    assert!(!ids(&store).contains(&"1-0".to_owned()));
}

#[test]
fn a_newer_schema_refuses_to_open() {
    let dir = TempDir::new("newer");
    drop(SqliteStore::open(&dir.0, 10, Retention::default()).unwrap());
    let conn = Connection::open(dir.0.join(FILE_NAME)).unwrap();
    conn.execute(
        "INSERT INTO schema_version (version, applied_unix_nanos) VALUES (99, 0)",
        [],
    )
    .unwrap();
    drop(conn);
    let error = SqliteStore::open(&dir.0, 10, Retention::default()).unwrap_err();
    assert!(error.is_config());
    let message = error.to_string();
    assert!(message.contains("meshwhy.db"), "{message}");
    assert!(message.contains("version 99"), "{message}");
    assert!(
        message.contains(&format!("the {} this", schema::CURRENT)),
        "{message}"
    );
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let dir = TempDir::new("twice");
    let _first = SqliteStore::open(&dir.0, 10, Retention::default()).unwrap();
    let error = SqliteStore::open(&dir.0, 10, Retention::default()).unwrap_err();
    assert!(matches!(error, StoreOpenError::InUse { .. }), "{error}");
}

/// Scale check (prints, asserts no timing): ingest into the file, explain over everything,
/// reopen. For the bench figure run
/// `MESHWHY_STORE_RECORDS=1000000 cargo test --release -p meshwhy-collector --lib sqlite_at_scale -- --nocapture`.
#[test]
fn sqlite_at_scale() {
    let count: usize = std::env::var("MESHWHY_STORE_RECORDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(20_000);
    // Records per Push (a filter's flush holds what one worker saw in one interval).
    let per_push: usize = std::env::var("MESHWHY_STORE_BATCH")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1000)
        .max(1);
    // Pushes applied as one group (what the aggregator does with pushes that queued together).
    let group: usize = std::env::var("MESHWHY_STORE_GROUP")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut queued = Vec::new();
    let dir = TempDir::new("scale");
    let mut store = SqliteStore::open(&dir.0, count, Retention::default()).unwrap();
    let details = [
        "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
        "via_upstream",
        "response_timeout",
        "no_healthy_upstream",
    ];
    let flags = [(1 << 5) | (1 << 15), 0, 1 << 2, 1 << 1];
    let mut ingest = std::time::Duration::ZERO;
    for chunk in 0..count.div_ceil(per_push) {
        let records = (0..per_push.min(count - chunk * per_push))
            .map(|i| {
                let n = chunk * per_push + i;
                let kind = n % 4;
                DecisionRecord {
                    request_id: format!("{n:08x}-aaaa-bbbb-cccc-0123456789ab"),
                    response_code: 503,
                    response_flags: flags[kind],
                    start_time_unix_nanos: n as u64,
                    response_code_details: details[kind].into(),
                    cluster: format!("outbound|9080||svc{}.shop.svc.cluster.local", n % 7),
                    authority: format!("svc{}:9080", n % 7),
                    upstream_host: format!("10.0.{}.{}:9080", n % 7, n % 3),
                    endpoint_tls_mode: if n % 7 == 6 { "" } else { "istio" }.into(),
                    path: format!("/items/{}", n % 50),
                    route_name: "default".into(),
                    method: "GET".into(),
                    protocol: "HTTP/1.1".into(),
                    direction: if n % 10 == 9 {
                        Direction::Inbound as i32
                    } else {
                        Direction::Outbound as i32
                    },
                    ..Default::default()
                }
            })
            .collect();
        let mut batch = batch(
            &format!("i{}", chunk % 16),
            (chunk / 16) as u64 + 1,
            records,
        );
        batch.proxy.pod = format!("pod-{}", chunk % 16);
        queued.push(batch);
        if queued.len() == group || (chunk + 1) * per_push >= count {
            let started = std::time::Instant::now();
            for outcome in store.apply_pushes(std::mem::take(&mut queued), 1) {
                assert!(!outcome.unwrap().duplicate);
            }
            ingest += started.elapsed();
        }
    }
    let (used, file) = store.sizes().unwrap();
    println!(
        "sqlite ingest of {count} records, {per_push} per Push, {group} Push(es) per commit: {ingest:?} ({:.0} records/s), {} bytes/record in the file ({file} bytes)",
        count as f64 / ingest.as_secs_f64(),
        used / count as u64,
    );
    let started = std::time::Instant::now();
    let ExplainAnswer::Window(report) = store.explain(&ExplainQuery::default()).unwrap() else {
        panic!("window expected");
    };
    println!(
        "sqlite explain over {count} records: {:?}, {} groups",
        started.elapsed(),
        report.totals.groups
    );
    assert_eq!(report.totals.records_scanned, count as u64);
    drop(store);
    let started = std::time::Instant::now();
    let store = SqliteStore::open(&dir.0, count, Retention::default()).unwrap();
    println!(
        "sqlite reopen with {count} records: {:?}",
        started.elapsed()
    );
    assert_eq!(store.memory.len(), count);
}

#[test]
fn a_group_of_pushes_is_one_commit_with_the_same_outcomes() {
    let dir = TempDir::new("group");
    {
        let mut store = SqliteStore::open(&dir.0, 100, Retention::default()).unwrap();
        store
            .apply_push(batch("a", 1, vec![record("r1", 1)]), 1)
            .unwrap();
        let outcomes: Vec<bool> = store
            .apply_pushes(
                vec![
                    batch("a", 1, vec![record("r1", 1)]),
                    batch("a", 2, vec![record("r2", 2)]),
                    batch("b", 1, vec![record("r3", 3)]),
                    batch("a", 2, vec![record("r2", 2)]),
                    batch("a", 3, vec![record("r4", 4)]),
                ],
                2,
            )
            .into_iter()
            .map(|outcome| outcome.unwrap().duplicate)
            .collect();
        assert_eq!(outcomes, [true, false, false, true, false]);
        assert_eq!(ids(&store), ["r1", "r2", "r3", "r4"]);
    }
    let mut store = SqliteStore::open(&dir.0, 100, Retention::default()).unwrap();
    assert_eq!(ids(&store), ["r1", "r2", "r3", "r4"]);
    let proxies = store.list_proxies().unwrap();
    assert_eq!((proxies[0].last_sequence, proxies[0].batches), (3, 3));
    assert_eq!((proxies[1].last_sequence, proxies[1].batches), (1, 1));
    assert!(
        store
            .apply_push(batch("a", 3, vec![]), 3)
            .unwrap()
            .duplicate
    );
    let counters = store.list_counters(&CounterFilter::default()).unwrap();
    assert_eq!(counters[0].counter.count, 20, "four applied batches of 5");
}
