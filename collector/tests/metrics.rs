//! The collector's HTTP endpoints over real port-0 listeners: real gRPC pushes in, then
//! `/metrics` read over plain HTTP/1.1 with exact values; `/healthz`, `/readyz` (also while the
//! aggregator is stuck) and unknown paths.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

mod support;
use support::GateStore;

use meshwhy_collector::CollectorConfig;
use meshwhy_collector::store::MemoryStore;
use meshwhy_proto::v1::ingest_client::IngestClient;
use meshwhy_proto::v1::{Counter, DecisionRecord, Direction, ProxyIdentity, PushRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::Code;

/// Upper bound for anything a test waits on: a hang fails the test instead of the CI job.
const PATIENCE: Duration = Duration::from_secs(30);

const CLOSED: &str = "outbound|80||closed.shop.svc.cluster.local";
const REVIEWS: &str = "outbound|9080||reviews.shop.svc.cluster.local";

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {PATIENCE:?}"))
}

/// A response: status code, headers (lowercase names) and body.
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

/// One HTTP/1.1 request over a fresh connection, read to the end.
async fn http(addr: SocketAddr, method: &str, path: &str) -> Reply {
    within(&format!("{method} {path}"), async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request =
            format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Reply {
            status,
            headers: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    })
    .await
}

fn record(id: &str, code: u32, flags: u64, details: &str, cluster: &str) -> DecisionRecord {
    DecisionRecord {
        start_time_unix_nanos: 1_700_000_000_000_000_000,
        request_id: id.into(),
        direction: Direction::Outbound as i32,
        method: "GET".into(),
        authority: "svc:80".into(),
        path: "/".into(),
        response_code: code,
        response_flags: flags,
        response_code_details: details.into(),
        route_name: "default".into(),
        cluster: cluster.into(),
        upstream_host: "10.0.0.9:80".into(),
        attempt_count: 1,
        ..Default::default()
    }
}

fn push(sequence: u64, records: Vec<DecisionRecord>) -> PushRequest {
    PushRequest {
        proxy: Some(ProxyIdentity {
            instance_id: "vm-1".into(),
            pod: "productpage-v1-7d9c".into(),
            namespace: "shop".into(),
            workload: "productpage-v1".into(),
            ..Default::default()
        }),
        sequence,
        records,
        ..Default::default()
    }
}

/// The value of the one sample line that starts with `series ` (name and labels exactly).
fn value(metrics: &str, series: &str) -> u64 {
    let found: Vec<&str> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .collect();
    assert_eq!(found.len(), 1, "{series} once in\n{metrics}");
    found[0].parse().unwrap()
}

const UF: u64 = 1 << 5;
const REFUSED: &str = "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}";

#[tokio::test]
async fn metrics_count_real_pushes_exactly() {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = CollectorConfig {
        max_records: 2,
        ..CollectorConfig::default()
    };
    let collector = meshwhy_collector::spawn_with_metrics(grpc, Some(http_listener), config)
        .await
        .unwrap();
    let addr = collector.metrics_addr.unwrap();
    let mut ingest = IngestClient::connect(collector.url()).await.unwrap();

    // Before anything arrives: zeros, no failure series, the aggregator answers.
    let empty = http(addr, "GET", "/metrics").await;
    assert_eq!(empty.status, 200);
    assert_eq!(value(&empty.body, "meshwhy_pushes_accepted_total"), 0);
    assert_eq!(value(&empty.body, "meshwhy_store_records"), 0);
    assert!(!empty.body.contains("\nmeshwhy_failures_total{"));

    // 3 records: 2 connect failures (UF) and the app's own 503; 5 successes counted; the filter
    // dropped 4 records.
    let mut first = push(
        1,
        vec![
            record("a", 503, UF, REFUSED, CLOSED),
            record("b", 503, UF, REFUSED, CLOSED),
            record("c", 503, 0, "via_upstream", REVIEWS),
        ],
    );
    first.counters = vec![Counter {
        route_name: "default".into(),
        cluster: REVIEWS.into(),
        response_code: 200,
        count: 5,
        ..Default::default()
    }];
    first.dropped_records = 4;
    ingest.push(first.clone()).await.unwrap();
    // The same batch again (a retry): accepted as a duplicate, nothing counted twice.
    assert!(ingest.push(first).await.unwrap().into_inner().duplicate);
    // A malformed batch.
    let refused = ingest.push(push(0, vec![])).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    let reply = http(addr, "GET", "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .headers
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        reply.headers
    );
    let metrics = &reply.body;
    let expected = [
        ("meshwhy_pushes_accepted_total", 2),
        ("meshwhy_pushes_duplicate_total", 1),
        (
            "meshwhy_pushes_rejected_total{reason=\"resource_exhausted\"}",
            0,
        ),
        ("meshwhy_pushes_rejected_total{reason=\"invalid\"}", 1),
        ("meshwhy_records_ingested_total", 3),
        ("meshwhy_successes_ingested_total", 5),
        ("meshwhy_filter_dropped_records_total", 4),
        (
            "meshwhy_failures_total{cause=\"upstream_connect_failed\",namespace=\"shop\",workload=\"productpage-v1\",cluster=\"outbound|80||closed.shop.svc.cluster.local\"}",
            2,
        ),
        (
            "meshwhy_failures_total{cause=\"app_returned_error\",namespace=\"shop\",workload=\"productpage-v1\",cluster=\"outbound|9080||reviews.shop.svc.cluster.local\"}",
            1,
        ),
        // The store keeps 2: one evicted.
        ("meshwhy_store_records", 2),
        ("meshwhy_store_evictions_total", 1),
        ("meshwhy_store_capacity_records", 2),
        ("meshwhy_proxies", 1),
        ("meshwhy_aggregator_queue_depth", 0),
        ("meshwhy_aggregator_queue_capacity", 1024),
        ("meshwhy_aggregator_up", 1),
        ("meshwhy_failure_series_overflow_total", 0),
    ];
    for (series, want) in expected {
        assert_eq!(value(metrics, series), want, "{series} in\n{metrics}");
    }
    assert_eq!(
        metrics.matches("\nmeshwhy_failures_total{").count(),
        2,
        "{metrics}"
    );

    let health = http(addr, "GET", "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = http(addr, "GET", "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    let head = http(addr, "HEAD", "/healthz").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(http(addr, "GET", "/nope").await.status, 404);
    assert_eq!(http(addr, "GET", "/metrics/extra").await.status, 404);
    let post = http(addr, "POST", "/metrics").await;
    assert_eq!(post.status, 405);
    assert!(
        post.headers.contains("allow: get, head"),
        "{}",
        post.headers
    );

    // Shutdown closes the metrics port too.
    within("shutdown", collector.shutdown()).await.unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_aggregator_is_unready_and_refusals_are_counted() {
    let (entered, mut entered_rx) = mpsc::unbounded_channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let store = GateStore {
        inner: MemoryStore::new(100),
        entered,
        release: release_rx,
    };
    let config = CollectorConfig {
        queue_capacity: 1,
        ..CollectorConfig::default()
    };
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", grpc.local_addr().unwrap());
    let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = http_listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(meshwhy_collector::run_with_listeners(
        grpc,
        Some(http_listener),
        config,
        store,
        async move {
            let _ = stopped.await;
        },
    ));
    let ingest = IngestClient::connect(url).await.unwrap();
    let send = |sequence| {
        let mut ingest = ingest.clone();
        tokio::spawn(async move { ingest.push(push(sequence, vec![])).await })
    };

    // Batch 1 is held in the store; batch 2 waits in the single queue slot; batch 3 is refused.
    let first = send(1);
    assert_eq!(
        within("batch 1 reaches the store", entered_rx.recv()).await,
        Some(1)
    );
    let second = send(2);
    let refused = loop {
        // Batch 2 must be queued before batch 3 is sent, or 3 could take the slot.
        let metrics = http(addr, "GET", "/metrics").await.body;
        if value(&metrics, "meshwhy_aggregator_queue_depth") == 1 {
            break within("batch 3", send(3)).await.unwrap().unwrap_err();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.code(), Code::ResourceExhausted);

    // The owner task is stuck: alive, not ready; the scrape still answers, without store gauges.
    assert_eq!(http(addr, "GET", "/healthz").await.status, 200);
    let ready = http(addr, "GET", "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let metrics = http(addr, "GET", "/metrics").await.body;
    assert_eq!(value(&metrics, "meshwhy_aggregator_up"), 0);
    assert!(!metrics.contains("\nmeshwhy_store_records "), "{metrics}");
    assert_eq!(
        value(
            &metrics,
            "meshwhy_pushes_rejected_total{reason=\"resource_exhausted\"}"
        ),
        1
    );
    assert_eq!(value(&metrics, "meshwhy_pushes_accepted_total"), 0);

    // Released: both stored and counted, ready again.
    release.send(()).unwrap();
    release.send(()).unwrap();
    assert!(within("batch 1", first).await.unwrap().is_ok());
    assert!(within("batch 2", second).await.unwrap().is_ok());
    assert_eq!(http(addr, "GET", "/readyz").await.status, 200);
    let metrics = http(addr, "GET", "/metrics").await.body;
    assert_eq!(value(&metrics, "meshwhy_pushes_accepted_total"), 2);
    assert_eq!(value(&metrics, "meshwhy_aggregator_queue_depth"), 0);

    stop.send(()).unwrap();
    within("server stops", server).await.unwrap().unwrap();
}
