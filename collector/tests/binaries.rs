//! The two binaries run as processes: the `meshwhy` CLI against an in-process collector, and
//! `meshwhy-collector` itself (bad config, port in use, start and SIGTERM).

use std::process::Output;
use std::time::Duration;

use meshwhy_collector::{CollectorConfig, CollectorHandle};
use meshwhy_proto::v1::ingest_client::IngestClient;
use meshwhy_proto::v1::{DecisionRecord, Direction, ProxyIdentity, PushRequest};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;

const MESHWHY: &str = env!("CARGO_BIN_EXE_meshwhy");
const COLLECTOR: &str = env!("CARGO_BIN_EXE_meshwhy-collector");
/// Upper bound for anything a test waits on: a hang fails the test instead of the CI job.
const PATIENCE: Duration = Duration::from_secs(60);
const REQUEST_ID: &str = "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab";

/// A command with none of the caller's meshwhy settings leaking in.
fn command(program: &str) -> Command {
    let mut command = Command::new(program);
    // These tests are about flags, ports and signals; the durable store (the binary's default,
    // which writes under the working directory) has its own process tests in tests/store.rs.
    command.env("MESHWHY_STORE", "memory");
    for var in [
        "MESHWHY_COLLECTOR",
        "MESHWHY_GRPC_ADDR",
        "MESHWHY_METRICS_ADDR",
        "MESHWHY_MAX_RECORDS",
        "MESHWHY_QUEUE_CAPACITY",
        "MESHWHY_LOG",
        "RUST_LOG",
    ] {
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

async fn collector_with_one_failure() -> CollectorHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = meshwhy_collector::spawn(listener, CollectorConfig::default())
        .await
        .unwrap();
    let mut ingest = IngestClient::connect(collector.url()).await.unwrap();
    ingest
        .push(PushRequest {
            proxy: Some(ProxyIdentity {
                instance_id: "0af3".into(),
                pod: "productpage-v1-7d9c".into(),
                namespace: "shop".into(),
                workload: "productpage-v1".into(),
                ..Default::default()
            }),
            sequence: 1,
            records: vec![DecisionRecord {
                start_time_unix_nanos: 1_700_000_000_123_000_000,
                request_id: REQUEST_ID.into(),
                direction: Direction::Outbound as i32,
                method: "GET".into(),
                authority: "reviews:9080".into(),
                path: "/reviews/0".into(),
                response_code: 503,
                response_flags: (1 << 5) | (1 << 15),
                response_code_details:
                    "upstream_reset_before_response_started{remote_connection_failure}".into(),
                route_name: "default".into(),
                cluster: "outbound|9080||reviews.shop.svc.cluster.local".into(),
                upstream_host: "10.0.0.9:9080".into(),
                attempt_count: 3,
                duration_nanos: 2_500_000,
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    collector
}

#[tokio::test]
async fn records_table() {
    let collector = collector_with_one_failure().await;
    let out = output(command(MESHWHY).args(["--collector", &collector.url(), "records"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for header in [
        "TIME",
        "NAMESPACE/POD",
        "DIR",
        "METHOD",
        "AUTHORITY+PATH",
        "CODE",
        "FLAGS",
        "DETAILS",
        "ROUTE",
        "CLUSTER",
        "UPSTREAM",
        "ATTEMPTS",
        "REQUEST-ID",
    ] {
        assert!(lines[0].contains(header), "{header} missing: {}", lines[0]);
    }
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row,
        [
            "22:13:20.123",
            "shop/productpage-v1-7d9c",
            "out",
            "GET",
            "reviews:9080/reviews/0",
            "503",
            "UF,URX",
            "upstream_reset_before_response_started{remote_connection_failure}",
            "default",
            "outbound|9080||reviews.shop.svc.cluster.local",
            "10.0.0.9:9080",
            "3",
            REQUEST_ID,
        ]
    );
}

#[tokio::test]
async fn records_json_and_jsonl() {
    let collector = collector_with_one_failure().await;
    // Host:port without a scheme, from the environment.
    let address = collector.addr.to_string();
    let out = output(
        command(MESHWHY)
            .env("MESHWHY_COLLECTOR", &address)
            .args(["records", "-o", "json", "--flag", "UF", "--code", "503"]),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["truncated"], 0);
    let record = &json["records"][0];
    assert_eq!(record["time"], "2023-11-14T22:13:20.123000000Z");
    assert_eq!(record["request_id"], REQUEST_ID);
    assert_eq!(record["direction"], "outbound");
    assert_eq!(record["proxy"]["pod"], "productpage-v1-7d9c");
    assert_eq!(record["proxy"]["instance_id"], "0af3");
    assert_eq!(record["response_code"], 503);
    assert_eq!(record["response_flags"], (1 << 5) | (1 << 15));
    assert_eq!(record["flags"], serde_json::json!(["UF", "URX"]));
    assert_eq!(record["attempt_count"], 3);
    assert_eq!(record["duration_ms"], 2.5);
    assert_eq!(record["grpc_status"], serde_json::Value::Null);

    let out = output(command(MESHWHY).args([
        "--collector",
        &address,
        "records",
        "-o",
        "jsonl",
        "--request-id",
        REQUEST_ID,
        "--since",
        "10000d",
    ]))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        line["cluster"],
        "outbound|9080||reviews.shop.svc.cluster.local"
    );

    // A filter that matches nothing: empty JSON, success.
    let out = output(command(MESHWHY).args([
        "--collector",
        &address,
        "records",
        "-o",
        "json",
        "--flag",
        "NR",
    ]))
    .await;
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["records"], serde_json::json!([]));
}

#[tokio::test]
async fn proxies_and_flags() {
    let collector = collector_with_one_failure().await;
    let out = output(command(MESHWHY).args(["--collector", &collector.url(), "proxies"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let row: Vec<&str> = stdout.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..9],
        [
            "productpage-v1-7d9c",
            "shop",
            "productpage-v1",
            "0af3",
            "1",
            "1",
            "0",
            "0",
            "0"
        ]
    );

    let out = output(command(MESHWHY).arg("flags")).await;
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 31);
    assert!(stdout.contains("URX"));
}

#[tokio::test]
async fn unreachable_collector_is_one_line_and_exit_69() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let out = output(command(MESHWHY).args(["--collector", &address.to_string(), "records"])).await;
    assert_eq!(out.status.code(), Some(69));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let prefix = format!("meshwhy: cannot reach the collector at http://{address}: ");
    assert!(stderr.starts_with(&prefix), "{stderr}");
    assert!(
        stderr
            .trim_end()
            .ends_with(". Is meshwhy-collector running? Set --collector or MESHWHY_COLLECTOR."),
        "{stderr}"
    );
}

#[tokio::test]
async fn cli_usage_errors_exit_64() {
    let out = output(command(MESHWHY).args(["records", "--flag", "XX"])).await;
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unknown response flag \"XX\""), "{stderr}");
    assert!(stderr.contains("UAEX"), "{stderr}");

    let out = output(command(MESHWHY).args(["records", "--since", "yesterday"])).await;
    assert_eq!(out.status.code(), Some(64));

    let out = output(command(MESHWHY).arg("nonsense")).await;
    assert_eq!(out.status.code(), Some(64));

    let out = output(command(MESHWHY).arg("--help")).await;
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test]
async fn collector_bad_config_is_one_line_and_exit_64() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--grpc-addr", "nonsense"],
            "--grpc-addr (env MESHWHY_GRPC_ADDR)",
        ),
        (
            &["--queue-capacity", "0"],
            "--queue-capacity (env MESHWHY_QUEUE_CAPACITY)",
        ),
        (
            &["--max-records", "lots"],
            "--max-records (env MESHWHY_MAX_RECORDS)",
        ),
        (&["--no-such-flag"], "--no-such-flag"),
    ];
    for (args, named) in cases {
        let out = output(command(COLLECTOR).args(args)).await;
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("meshwhy-collector: "), "{stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }

    // The same through the environment.
    let out = output(command(COLLECTOR).env("MESHWHY_GRPC_ADDR", "nonsense")).await;
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("MESHWHY_GRPC_ADDR"));
}

#[tokio::test]
async fn collector_port_in_use_exits_64() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out =
        output(command(COLLECTOR).args(["--grpc-addr", &address, "--metrics-addr", "127.0.0.1:0"]))
            .await;
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(stderr.contains("--grpc-addr"), "{stderr}");
}

#[tokio::test]
async fn collector_metrics_port_in_use_exits_64() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out =
        output(command(COLLECTOR).args(["--grpc-addr", "127.0.0.1:0", "--metrics-addr", &address]))
            .await;
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("--metrics-addr / MESHWHY_METRICS_ADDR"),
        "{stderr}"
    );
    let bad = output(command(COLLECTOR).env("MESHWHY_METRICS_ADDR", "nonsense")).await;
    assert_eq!(bad.status.code(), Some(64));
    assert!(
        text(&bad.stderr).contains("--metrics-addr (env MESHWHY_METRICS_ADDR)"),
        "{}",
        text(&bad.stderr)
    );
}

#[tokio::test]
async fn collector_serves_until_sigterm() {
    let mut child = command(COLLECTOR)
        .args([
            "--grpc-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("MESHWHY_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Both addresses are logged (port 0 becomes a real port): metrics first, then gRPC.
    let (metrics, address) = tokio::time::timeout(PATIENCE, async {
        let mut metrics = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, rest)) = line.split_once("meshwhy-collector metrics on http://") {
                let rest = rest.split_whitespace().next().unwrap();
                metrics = Some(rest.trim_end_matches("/metrics").to_owned());
            }
            if let Some((_, rest)) = line.split_once("meshwhy-collector listening on ") {
                let address = rest.split_whitespace().next().unwrap().to_owned();
                return (metrics.expect("the metrics address first"), address);
            }
        }
        panic!("the collector exited without saying where it listens");
    })
    .await
    .expect("the collector logged its addresses in time");

    // The real process answers its health check over HTTP.
    let mut stream = tokio::net::TcpStream::connect(&metrics).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut stream,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut reply = String::new();
    tokio::time::timeout(
        PATIENCE,
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut reply),
    )
    .await
    .expect("healthz answered in time")
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");

    let out =
        output(command(MESHWHY).args(["--collector", &address, "records", "-o", "json"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let pid = child.id().unwrap().to_string();
    let killed = output(Command::new("kill").args(["-TERM", &pid])).await;
    assert!(killed.status.success());
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the collector stopped in time")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
