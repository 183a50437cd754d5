//! Explain end to end through the public surface: pushes over a real port-0 collector, the
//! Explain RPC, and the `meshwhy explain` / `meshwhy top` binaries (JSON and human output).

use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshwhy_collector::{CollectorConfig, CollectorHandle};
use meshwhy_proto::v1::ingest_client::IngestClient;
use meshwhy_proto::v1::query_client::QueryClient;
use meshwhy_proto::v1::{
    Counter, DecisionRecord, Direction, ExplainRequest, ProxyIdentity, PushRequest,
};
use tokio::net::TcpListener;
use tokio::process::Command;

const MESHWHY: &str = env!("CARGO_BIN_EXE_meshwhy");
/// Upper bound for anything a test waits on.
const PATIENCE: Duration = Duration::from_secs(60);
const REFUSED: &str = "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}";

fn now_nanos() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

fn proxy(instance: &str, pod: &str, workload: &str, ip: &str) -> ProxyIdentity {
    ProxyIdentity {
        instance_id: instance.into(),
        node_id: format!("sidecar~{ip}~{pod}.shop~shop.svc.cluster.local"),
        pod: pod.into(),
        namespace: "shop".into(),
        workload: workload.into(),
        envoy_version: "1.40.0".into(),
        ..Default::default()
    }
}

fn record(
    id: &str,
    direction: Direction,
    code: u32,
    flags: u64,
    details: &str,
    start: u64,
) -> DecisionRecord {
    let outbound = direction == Direction::Outbound;
    DecisionRecord {
        start_time_unix_nanos: start,
        request_id: id.into(),
        direction: direction as i32,
        method: "GET".into(),
        authority: "reviews:9080".into(),
        path: "/reviews/0".into(),
        response_code: code,
        response_flags: flags,
        response_code_details: details.into(),
        route_name: "default".into(),
        virtual_host: if outbound {
            "reviews.shop.svc.cluster.local:9080"
        } else {
            "inbound|http|9080"
        }
        .into(),
        cluster: if outbound {
            "outbound|9080||reviews.shop.svc.cluster.local"
        } else {
            "inbound|9080||"
        }
        .into(),
        upstream_host: "10.0.0.9:9080".into(),
        attempt_count: if flags & (1 << 15) != 0 { 3 } else { 1 },
        source_address: "10.0.0.5:40000".into(),
        ..Default::default()
    }
}

/// A collector holding a mixed run: 4 refused connects behind retries, one app 503 recorded by
/// both sidecars, and 16 counted successes.
async fn collector_with_a_mixed_run() -> CollectorHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = meshwhy_collector::spawn(listener, CollectorConfig::default())
        .await
        .unwrap();
    let mut ingest = IngestClient::connect(collector.url()).await.unwrap();
    let start = now_nanos() - 60_000_000_000;
    let client_records = (0..4)
        .map(|i| {
            record(
                &format!("uf-{i}"),
                Direction::Outbound,
                503,
                (1 << 5) | (1 << 15),
                REFUSED,
                start + i,
            )
        })
        .chain([record(
            "app-503",
            Direction::Outbound,
            503,
            0,
            "via_upstream",
            start + 10,
        )])
        .collect();
    ingest
        .push(PushRequest {
            proxy: Some(proxy(
                "c1",
                "productpage-v1-7d9c",
                "productpage-v1",
                "10.0.0.5",
            )),
            sequence: 1,
            records: client_records,
            counters: vec![Counter {
                route_name: "default".into(),
                cluster: "outbound|9080||reviews.shop.svc.cluster.local".into(),
                response_code: 200,
                count: 16,
                virtual_host: "reviews.shop.svc.cluster.local:9080".into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    ingest
        .push(PushRequest {
            proxy: Some(proxy("s1", "reviews-v1-5d8c", "reviews-v1", "10.0.0.9")),
            sequence: 1,
            records: vec![record(
                "app-503",
                Direction::Inbound,
                503,
                0,
                "via_upstream",
                start + 11,
            )],
            ..Default::default()
        })
        .await
        .unwrap();
    collector
}

fn command() -> Command {
    let mut command = Command::new(MESHWHY);
    for var in ["MESHWHY_COLLECTOR", "MESHWHY_LOG", "RUST_LOG"] {
        command.env_remove(var);
    }
    command.env("NO_COLOR", "1").kill_on_drop(true);
    command
}

async fn output(command: &mut Command) -> Output {
    tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("the process finished in time")
        .expect("the process started")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn explain_rpc_ranks_findings_and_joins_hops() {
    let collector = collector_with_a_mixed_run().await;
    let mut query = QueryClient::connect(collector.url()).await.unwrap();
    let response = query
        .explain(ExplainRequest::default())
        .await
        .unwrap()
        .into_inner();
    let causes: Vec<&str> = response.findings.iter().map(|f| f.cause.as_str()).collect();
    assert_eq!(causes, ["retries_exhausted", "app_returned_error"]);
    let totals = response.totals.unwrap();
    assert_eq!(totals.failures, 5, "the app 503 hop counts once");
    assert_eq!(totals.joined_hops, 1);
    assert_eq!(totals.successes, 16);
    assert!(totals.window_complete);
    let top = response.findings[0].evidence.as_ref().unwrap();
    assert_eq!(top.count, 4);
    // 4 failures + 1 forwarded 503 + 16 successes from productpage to that cluster.
    assert_eq!(top.share_of_traffic, Some(4.0 / 21.0));
    assert_eq!(
        response.findings[0].last_attempt_cause,
        "upstream_connect_failed"
    );

    let one = query
        .explain(ExplainRequest {
            request_id: "app-503".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.hops.len(), 1);
    assert!(one.hops[0].client.is_some() && one.hops[0].server.is_some());
    assert!(
        one.hops[0].summary.contains("saw the app answer 503"),
        "{}",
        one.hops[0].summary
    );
    assert_eq!(one.findings[0].cause, "app_returned_error");

    let filtered = query
        .explain(ExplainRequest {
            service: "ratings".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(filtered.findings.is_empty());
}

#[tokio::test]
async fn meshwhy_explain_json_and_human() {
    let collector = collector_with_a_mixed_run().await;
    let out = output(command().args([
        "--collector",
        &collector.url(),
        "explain",
        "-o",
        "json",
        "--request-id",
        "uf-2",
    ]))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["request_id"], "uf-2");
    let finding = &json["findings"][0];
    assert_eq!(finding["cause"], "retries_exhausted");
    assert_eq!(finding["last_attempt_cause"], "upstream_connect_failed");
    assert_eq!(
        finding["next_commands"][0],
        "istioctl proxy-config endpoints productpage-v1-7d9c.shop --cluster \"outbound|9080||reviews.shop.svc.cluster.local\""
    );
    assert_eq!(json["hops"][0]["client"]["request_id"], "uf-2");
    assert_eq!(json["hops"][0]["server"], serde_json::Value::Null);

    let out =
        output(command().args(["--collector", &collector.url(), "explain", "-n", "shop"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("5 failures in 2 groups since "),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n1. retries_exhausted [high] last attempt: upstream_connect_failed\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n2. app_returned_error [high]\n"),
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b'), "NO_COLOR and not a terminal");

    let out = output(command().args(["--collector", &collector.url(), "top", "-o", "json"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["groups"][0]["flags"], serde_json::json!(["UF", "URX"]));
    assert_eq!(json["groups"][0]["cause"], "retries_exhausted");

    let out = output(command().args(["--collector", &collector.url(), "top"])).await;
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .starts_with("COUNT  %FAIL  %TRAFFIC  SOURCE")
    );
}

#[tokio::test]
async fn meshwhy_explain_input_file_needs_no_collector() {
    let log = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/istio-proxy.log"
    );
    let out = output(command().args([
        "--collector",
        "127.0.0.1:1",
        "explain",
        "--input-file",
        log,
        "-o",
        "json",
    ]))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The interleaved istio-proxy log line is counted and quoted, not silently dropped.
    let stderr = text(&out.stderr);
    assert!(stderr.contains("1 of 8 lines"), "{stderr}");
    assert!(stderr.contains("Envoy proxy is ready"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["findings"][0]["cause"], "retries_exhausted");

    let mut child = command()
        .args([
            "explain",
            "--input-file",
            "-",
            "--request-id",
            "r-nr",
            "-o",
            "json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, std::fs::read(log).unwrap().as_slice())
        .await
        .unwrap();
    drop(stdin);
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["findings"][0]["cause"], "no_route");

    let out = output(command().args(["explain", "--input-file", "/nonexistent.log"])).await;
    assert_eq!(out.status.code(), Some(66));
    assert_eq!(text(&out.stderr).lines().count(), 1);
}
