//! The durable store through the real `meshwhy-collector` process: SIGKILL during ingest and a
//! restart on the same data directory lose nothing acknowledged and double nothing retried; a
//! file from a newer collector is refused with one line.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshwhy_proto::v1::ingest_client::IngestClient;
use meshwhy_proto::v1::query_client::QueryClient;
use meshwhy_proto::v1::{
    DecisionRecord, Direction, ExplainRequest, ListProxiesRequest, ListRecordsRequest,
    ProxyIdentity, PushRequest,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const COLLECTOR: &str = env!("CARGO_BIN_EXE_meshwhy-collector");
/// Upper bound for anything a test waits on: a hang fails the test instead of the CI job.
const PATIENCE: Duration = Duration::from_secs(60);
const RECORDS_PER_BATCH: u64 = 50;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("meshwhy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The collector binary on a free port with the sqlite store in `dir`; killed when dropped.
fn collector(dir: &Path) -> Command {
    let mut command = Command::new(COLLECTOR);
    for var in [
        "MESHWHY_GRPC_ADDR",
        "MESHWHY_METRICS_ADDR",
        "MESHWHY_MAX_RECORDS",
        "MESHWHY_QUEUE_CAPACITY",
        "MESHWHY_RETENTION",
        "MESHWHY_MAX_DB_SIZE",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command
        .args([
            "--grpc-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(["--store", "sqlite", "--data-dir"])
        .arg(dir)
        .env("MESHWHY_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the collector and returns it with its gRPC URL.
async fn start(dir: &Path) -> (Child, String) {
    let mut child = collector(dir).spawn().expect("the collector starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let address = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.expect("stderr reads") {
            if let Some((_, rest)) = line.split_once("meshwhy-collector listening on ") {
                return rest.split_whitespace().next().map(str::to_owned);
            }
        }
        None
    })
    .await
    .expect("the collector logged its address in time")
    .expect("the collector exited without saying where it listens");
    // Keep draining stderr so the collector never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{address}"))
}

/// Proxies pushing at once (so the collector applies queued pushes as groups).
const PROXIES: u64 = 4;

fn request_id(proxy: u64, sequence: u64, n: u64) -> String {
    format!("{proxy}-{sequence:06}-{n:03}-aaaa-bbbb-0123456789ab")
}

fn push(proxy: u64, sequence: u64) -> PushRequest {
    PushRequest {
        proxy: Some(ProxyIdentity {
            instance_id: format!("vm-{proxy}"),
            pod: "productpage-v1-7d9c".into(),
            namespace: "shop".into(),
            workload: "productpage-v1".into(),
            ..Default::default()
        }),
        sequence,
        records: (0..RECORDS_PER_BATCH)
            .map(|n| DecisionRecord {
                request_id: request_id(proxy, sequence, n),
                start_time_unix_nanos: 1_700_000_000_000_000_000 + sequence * 1000 + n,
                response_code: 503,
                response_flags: 1 << 5,
                direction: Direction::Outbound as i32,
                cluster: "outbound|9080||reviews.shop.svc.cluster.local".into(),
                response_code_details: "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}".into(),
                path: format!("/reviews/{n}"),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Every stored request id, sorted.
async fn stored_ids(url: &str) -> Vec<String> {
    let mut query = QueryClient::connect(url.to_owned()).await.expect("connect");
    let page = query
        .list_records(ListRecordsRequest {
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .expect("list records")
        .into_inner();
    assert_eq!(page.truncated, 0);
    let mut ids: Vec<String> = page
        .records
        .into_iter()
        .filter_map(|stored| stored.record.map(|record| record.request_id))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn sigkill_during_ingest_loses_nothing_acknowledged_and_doubles_nothing() {
    let dir = TempDir::new("store-kill");
    let (mut child, url) = start(&dir.0).await;

    // Each proxy pushes batches back to back until the collector dies under it.
    let acked = Arc::new(Mutex::new(0usize));
    let pushers: Vec<_> = (0..PROXIES)
        .map(|proxy| {
            let (acked, url) = (Arc::clone(&acked), url.clone());
            tokio::spawn(async move {
                let mut ingest = IngestClient::connect(url).await.expect("connect");
                let mut sequences = Vec::new();
                for sequence in 1.. {
                    match ingest.push(push(proxy, sequence)).await {
                        Ok(response) => {
                            assert!(!response.into_inner().duplicate);
                            sequences.push(sequence);
                            *acked.lock().expect("not poisoned") += 1;
                        }
                        // The kill: this push may or may not have been committed.
                        Err(_) => return (sequences, sequence),
                    }
                }
                unreachable!("the collector is killed first")
            })
        })
        .collect();
    tokio::time::timeout(PATIENCE, async {
        while *acked.lock().expect("not poisoned") < 40 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("40 pushes acknowledged in time");
    child.start_kill().expect("SIGKILL sent");
    child.wait().await.expect("the collector died");
    let mut outcomes = Vec::new();
    for pusher in pushers {
        let (sequences, failed) = tokio::time::timeout(PATIENCE, pusher)
            .await
            .expect("the pusher noticed")
            .expect("the pusher did not panic");
        assert_eq!(sequences, (1..failed).collect::<Vec<_>>());
        outcomes.push(failed);
    }

    // Restart on the same directory: every acknowledged record is there.
    let (mut child, url) = start(&dir.0).await;
    let ids = stored_ids(&url).await;
    let acknowledged: Vec<String> = (0..PROXIES)
        .flat_map(|proxy| {
            (1..outcomes[proxy as usize]).flat_map(move |sequence| {
                (0..RECORDS_PER_BATCH).map(move |n| request_id(proxy, sequence, n))
            })
        })
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| ids.binary_search(id).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    // Beyond them at most the one batch per proxy that was in flight at the kill.
    assert!(ids.len() <= acknowledged.len() + (PROXIES * RECORDS_PER_BATCH) as usize);

    // Explain after the restart sees the failures from before it.
    let mut query = QueryClient::connect(url.clone()).await.expect("connect");
    let explained = query
        .explain(ExplainRequest::default())
        .await
        .expect("explain")
        .into_inner();
    let totals = explained.totals.expect("totals");
    assert_eq!(totals.records_scanned, ids.len() as u64);
    assert_eq!(totals.failures, ids.len() as u64);
    assert!(!explained.findings.is_empty());
    let one = query
        .explain(ExplainRequest {
            request_id: acknowledged[0].clone(),
            ..Default::default()
        })
        .await
        .expect("explain one request")
        .into_inner();
    assert_eq!(
        one.hops.len(),
        1,
        "the request from before the restart, hop by hop"
    );

    // The filters retry: an acknowledged batch is a duplicate, the one in flight at the kill
    // is applied now unless it had been committed; nothing is doubled either way.
    let mut ingest = IngestClient::connect(url.clone()).await.expect("connect");
    for proxy in 0..PROXIES {
        let failed = outcomes[proxy as usize];
        // (A proxy may have been killed before its first answer.)
        if failed > 1 {
            let retried = ingest.push(push(proxy, failed - 1)).await.expect("retry");
            assert!(
                retried.into_inner().duplicate,
                "an acknowledged sequence is a duplicate"
            );
        }
        let committed = ids.binary_search(&request_id(proxy, failed, 0)).is_ok();
        let in_flight = ingest.push(push(proxy, failed)).await.expect("retry");
        assert_eq!(in_flight.into_inner().duplicate, committed);
    }
    let ids = stored_ids(&url).await;
    let total: u64 = outcomes.iter().sum();
    assert_eq!(ids.len(), (total * RECORDS_PER_BATCH) as usize);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no record stored twice");

    let mut query = QueryClient::connect(url).await.expect("connect");
    let proxies = query
        .list_proxies(ListProxiesRequest::default())
        .await
        .expect("list proxies")
        .into_inner();
    assert_eq!(proxies.proxies.len(), PROXIES as usize);
    for status in &proxies.proxies {
        let proxy = status.proxy.as_ref().expect("identity");
        let index: usize = proxy.instance_id["vm-".len()..].parse().expect("vm-N");
        assert_eq!(status.last_sequence, outcomes[index]);
        assert_eq!(status.missing_batches, 0);
    }

    child.start_kill().expect("SIGKILL sent");
    child.wait().await.expect("the collector died");
}

#[tokio::test]
async fn a_newer_schema_refuses_to_start_with_one_line() {
    let dir = TempDir::new("store-newer");
    let (mut child, _) = start(&dir.0).await;
    child.start_kill().expect("SIGKILL sent");
    child.wait().await.expect("the collector died");

    let file = dir.0.join("meshwhy.db");
    let conn = rusqlite::Connection::open(&file).expect("open the file");
    conn.execute(
        "INSERT INTO schema_version (version, applied_unix_nanos) VALUES (99, 0)",
        [],
    )
    .expect("pretend a newer collector wrote it");
    drop(conn);

    let out = tokio::time::timeout(PATIENCE, collector(&dir.0).output())
        .await
        .expect("the collector exited in time")
        .expect("the collector ran");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("meshwhy-collector: "))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    assert!(line.contains(&file.display().to_string()), "{line}");
    assert!(line.contains("version 99"), "{line}");
    assert!(
        line.contains("the 1 this meshwhy-collector supports"),
        "{line}"
    );
}
