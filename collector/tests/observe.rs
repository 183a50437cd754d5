//! `Observe` over a real port-0 collector: the filtered backlog, following new records, shutdown
//! with a follower attached, and `meshwhy observe` as a process (compact, follow as JSON lines).

use std::future::Future;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use meshwhy_collector::{CollectorConfig, CollectorHandle};
use meshwhy_proto::v1::ingest_client::IngestClient;
use meshwhy_proto::v1::query_client::QueryClient;
use meshwhy_proto::v1::{
    DecisionRecord, Direction, ObserveRequest, ProxyIdentity, PushRequest, StoredRecord,
};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{ChildStdout, Command};
use tonic::Streaming;
use tonic::transport::Channel;

const MESHWHY: &str = env!("CARGO_BIN_EXE_meshwhy");
/// Upper bound for anything a test waits on: a hang fails the test instead of the CI job.
const PATIENCE: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {PATIENCE:?}"))
}

async fn start() -> CollectorHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    meshwhy_collector::spawn(listener, CollectorConfig::default())
        .await
        .unwrap()
}

async fn clients(url: String) -> (IngestClient<Channel>, QueryClient<Channel>) {
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    (
        IngestClient::new(channel.clone()),
        QueryClient::new(channel),
    )
}

fn now_nanos() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    u64::try_from(since_epoch.as_nanos()).unwrap()
}

fn proxy(namespace: &str, workload: &str) -> ProxyIdentity {
    ProxyIdentity {
        instance_id: format!("{namespace}-{workload}-0"),
        pod: format!("{workload}-7d9c"),
        namespace: namespace.into(),
        workload: workload.into(),
        ..Default::default()
    }
}

fn record(
    request_id: &str,
    direction: Direction,
    authority: &str,
    cluster: &str,
) -> DecisionRecord {
    DecisionRecord {
        start_time_unix_nanos: now_nanos(),
        request_id: request_id.into(),
        direction: direction as i32,
        method: "GET".into(),
        authority: authority.into(),
        path: "/reviews/0".into(),
        response_code: 503,
        response_flags: (1 << 5) | (1 << 15),
        response_code_details: "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}".into(),
        route_name: "default".into(),
        cluster: cluster.into(),
        upstream_host: "10.0.0.9:9080".into(),
        attempt_count: 3,
        ..Default::default()
    }
}

/// productpage's client sidecar calling reviews.
fn to_reviews(request_id: &str) -> DecisionRecord {
    record(
        request_id,
        Direction::Outbound,
        "reviews:9080",
        "outbound|9080||reviews.shop.svc.cluster.local",
    )
}

/// productpage's client sidecar calling ratings.
fn to_ratings(request_id: &str) -> DecisionRecord {
    record(
        request_id,
        Direction::Outbound,
        "ratings:9080",
        "outbound|9080||ratings.shop.svc.cluster.local",
    )
}

/// reviews' server sidecar answering.
fn inbound_reviews(request_id: &str) -> DecisionRecord {
    record(
        request_id,
        Direction::Inbound,
        "reviews:9080",
        "inbound|9080||",
    )
}

async fn push(
    ingest: &mut IngestClient<Channel>,
    proxy: ProxyIdentity,
    sequence: u64,
    records: Vec<DecisionRecord>,
) {
    within(
        "push",
        ingest.push(PushRequest {
            proxy: Some(proxy),
            sequence,
            records,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
}

fn id(stored: &StoredRecord) -> &str {
    &stored.record.as_ref().unwrap().request_id
}

async fn backlog(query: &mut QueryClient<Channel>, request: ObserveRequest) -> Vec<String> {
    let mut stream = within("observe", query.observe(request))
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    while let Some(stored) = within("next record", stream.message()).await.unwrap() {
        ids.push(id(&stored).to_owned());
    }
    ids
}

async fn next(stream: &mut Streaming<StoredRecord>) -> StoredRecord {
    within("next record", stream.message())
        .await
        .unwrap()
        .expect("the stream is still open")
}

/// Five records over three proxies, pushed in order r1..r5.
async fn collector_with_mixed_records()
-> (CollectorHandle, IngestClient<Channel>, QueryClient<Channel>) {
    let collector = start().await;
    let (mut ingest, query) = clients(collector.url()).await;
    let productpage = proxy("shop", "productpage-v1");
    push(
        &mut ingest,
        productpage.clone(),
        1,
        vec![to_reviews("r1"), to_ratings("r2")],
    )
    .await;
    push(
        &mut ingest,
        proxy("shop", "reviews-v1"),
        1,
        vec![inbound_reviews("r3")],
    )
    .await;
    push(
        &mut ingest,
        proxy("other", "productpage-v1"),
        1,
        vec![to_reviews("r4")],
    )
    .await;
    push(&mut ingest, productpage, 2, vec![to_reviews("r5")]).await;
    (collector, ingest, query)
}

#[tokio::test]
async fn the_backlog_is_filtered_and_oldest_first() {
    let (_collector, _ingest, mut query) = collector_with_mixed_records().await;
    let all = backlog(&mut query, ObserveRequest::default()).await;
    assert_eq!(all, ["r1", "r2", "r3", "r4", "r5"]);

    let newest_two = backlog(
        &mut query,
        ObserveRequest {
            limit: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(newest_two, ["r4", "r5"]);

    // The inbound record of reviews mentions reviews too, but is not sent by productpage.
    let from_to = backlog(
        &mut query,
        ObserveRequest {
            namespace: "shop".into(),
            from_workload: "productpage-v1".into(),
            to_service: "reviews".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(from_to, ["r1", "r5"]);

    // The cluster host counts: `reviews.shop` is only in the cluster name.
    let by_cluster_host = backlog(
        &mut query,
        ObserveRequest {
            to_service: "reviews.shop".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_cluster_host, ["r1", "r4", "r5"]);

    let limited_after_filter = backlog(
        &mut query,
        ObserveRequest {
            to_service: "reviews".into(),
            limit: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(limited_after_filter, ["r5"]);

    let none = backlog(
        &mut query,
        ObserveRequest {
            response_code: 404,
            ..Default::default()
        },
    )
    .await;
    assert!(none.is_empty());

    let future = backlog(
        &mut query,
        ObserveRequest {
            since_unix_nanos: now_nanos() + 3_600_000_000_000,
            ..Default::default()
        },
    )
    .await;
    assert!(future.is_empty());
}

#[tokio::test]
async fn following_sends_the_backlog_then_each_new_matching_record() {
    let (collector, mut ingest, mut query) = collector_with_mixed_records().await;
    let mut stream = within(
        "observe",
        query.observe(ObserveRequest {
            from_workload: "productpage-v1".into(),
            namespace: "shop".into(),
            to_service: "reviews".into(),
            follow: true,
            ..Default::default()
        }),
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(id(&next(&mut stream).await), "r1");
    assert_eq!(id(&next(&mut stream).await), "r5");

    // The subscription was taken with the backlog: whatever is stored from now on arrives once.
    let productpage = proxy("shop", "productpage-v1");
    push(
        &mut ingest,
        productpage.clone(),
        3,
        vec![to_ratings("r6"), to_reviews("r7")],
    )
    .await;
    push(
        &mut ingest,
        proxy("shop", "reviews-v1"),
        2,
        vec![inbound_reviews("r8")],
    )
    .await;
    // A retried batch is a duplicate: not published again.
    push(
        &mut ingest,
        productpage.clone(),
        3,
        vec![to_ratings("r6"), to_reviews("r7")],
    )
    .await;
    push(&mut ingest, productpage, 4, vec![to_reviews("r9")]).await;
    let live = next(&mut stream).await;
    assert_eq!(id(&live), "r7");
    assert_eq!(live.flag_names, ["UF", "URX"]);
    assert_eq!(live.proxy.as_ref().unwrap().workload, "productpage-v1");
    assert!(live.received_time_unix_nanos > 0);
    assert_eq!(id(&next(&mut stream).await), "r9");

    // Shutdown ends the follower instead of waiting for it.
    within("shutdown with a follower", collector.shutdown())
        .await
        .unwrap();
    let end = within("end of stream", stream.message()).await;
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}

#[tokio::test]
async fn cli_prints_compact_lines() {
    let (collector, _ingest, _query) = collector_with_mixed_records().await;
    let out = within(
        "meshwhy observe",
        Command::new(MESHWHY)
            .args([
                "--collector",
                &collector.url(),
                "observe",
                "-n",
                "shop",
                "--to-service",
                "reviews",
                "--from-workload",
                "productpage-v1",
                "-o",
                "compact",
            ])
            .env("NO_COLOR", "1")
            .env_remove("MESHWHY_COLLECTOR")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        assert!(
            line.contains(
                " shop/productpage-v1-7d9c -> reviews:9080 /reviews/0 503 UF,URX \
                 upstream_reset_before_response_started{remote_connection_failure|"
            ),
            "{line}"
        );
        assert!(line.ends_with(" cause=retries_exhausted"), "{line}");
        assert!(!line.contains('\x1b'), "no colour with NO_COLOR: {line}");
    }
}

/// The next stdout line of a running `meshwhy observe -o jsonl`, parsed.
async fn json_line(lines: &mut Lines<BufReader<ChildStdout>>) -> serde_json::Value {
    let line = within("a line from meshwhy observe -f", lines.next_line()).await;
    let line = line.unwrap().expect("meshwhy observe is still running");
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn cli_follows_as_json_lines_until_interrupted() {
    let (collector, mut ingest, _query) = collector_with_mixed_records().await;
    let mut child = Command::new(MESHWHY)
        .args([
            "--collector",
            &collector.url(),
            "observe",
            "-f",
            "-o",
            "jsonl",
            "--to-service",
            "ratings",
        ])
        .env("NO_COLOR", "1")
        .env_remove("MESHWHY_COLLECTOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The backlog line proves the subscription exists: the next push must arrive.
    let first = json_line(&mut lines).await;
    assert_eq!(first["request_id"], "r2");
    push(
        &mut ingest,
        proxy("shop", "productpage-v1"),
        3,
        vec![to_reviews("r6"), to_ratings("r7")],
    )
    .await;
    let second = json_line(&mut lines).await;
    assert_eq!(second["request_id"], "r7");
    assert_eq!(second["authority"], "ratings:9080");
    assert_eq!(second["cause"], "retries_exhausted");

    // Ctrl-C ends a follow cleanly.
    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = within("meshwhy observe exits on SIGINT", child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn cli_reports_an_unreachable_collector_in_one_line() {
    // A port that was just free: nothing listens there.
    let url = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let out = within(
        "meshwhy observe",
        Command::new(MESHWHY)
            .args(["--collector", &url, "observe", "-f"])
            .env_remove("MESHWHY_COLLECTOR")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&url), "{stderr}");
}
