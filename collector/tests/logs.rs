//! The `meshwhy` binary on access-log lines, as a user runs it: `explain --line`, `--input-file`
//! on `explain`/`top`/`observe` (files and stdin), the exit codes and the one-line messages for
//! input with nothing readable in it, garbage that must not crash it, and `ingest-logs` into a
//! real port-0 collector (loaded once however often it is loaded).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use meshwhy_collector::{CollectorConfig, CollectorHandle};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::process::Command;

const MESHWHY: &str = env!("CARGO_BIN_EXE_meshwhy");
/// Upper bound for anything a test waits on: a hang fails the test instead of the CI job.
const PATIENCE: Duration = Duration::from_secs(60);
/// Istio's current default TEXT format: a connect refused behind retries.
const UF_LINE: &str = "[2023-11-14T22:13:20.123Z] \"GET /reviews/0 HTTP/1.1\" 503 UF,URX upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - \"delayed connect error: Connection refused\" 0 91 2 - \"-\" \"curl/8.5.0\" \"5f1c2d3e-aaaa-bbbb-cccc-0123456789ab\" \"reviews:9080\" \"10.0.0.9:9080\" outbound|9080||reviews.shop.svc.cluster.local - 10.96.12.3:9080 10.0.0.5:40000 - default";
/// The same format, a success.
const OK_LINE: &str = "[2023-11-14T22:13:20.250Z] \"GET /reviews/2 HTTP/1.1\" 200 - via_upstream - \"-\" 0 295 4 3 \"-\" \"curl/8.5.0\" \"a4\" \"reviews:9080\" \"10.0.0.10:9080\" outbound|9080||reviews.shop.svc.cluster.local 10.0.0.5:33334 10.96.12.3:9080 10.0.0.5:40008 - default";
/// Causes a refused connect behind retries may be read as.
const REFUSED_CAUSES: [&str; 2] = ["retries_exhausted", "upstream_connect_failed"];

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/istio-proxy.log")
}

/// A command with none of the caller's meshwhy settings leaking in, and no collector to ask.
fn meshwhy() -> Command {
    let mut command = Command::new(MESHWHY);
    for var in [
        "MESHWHY_COLLECTOR",
        "MESHWHY_LOG_FORMAT",
        "MESHWHY_LOG",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    // Nothing listens on port 1: a command that asked the collector would fail with 69.
    command
        .env("MESHWHY_COLLECTOR", "127.0.0.1:1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn output(command: &mut Command) -> Output {
    tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("the process finished in time")
        .expect("the process started")
}

/// Runs `command` with `input` on its stdin.
async fn with_stdin(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the process started");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        // The process may stop reading early; that is its business.
        let _ = stdin.write_all(&input).await;
    });
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("the process finished in time")
        .unwrap();
    writer.await.unwrap();
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A file in a fresh temporary directory, removed with it.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "meshwhy-logs-{}-{name}-{:x}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        Self { dir, path }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Distinct per call within this process (tests run in parallel threads).
fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn explain_line_gives_a_finding_naming_the_pod() {
    let out = output(meshwhy().args([
        "explain",
        "--line",
        UF_LINE,
        "--pod",
        "productpage-v1-545db77b95-22jzk",
        "-n",
        "shop",
        "-o",
        "json",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let json = json(&out);
    let finding = &json["findings"][0];
    let cause = finding["cause"].as_str().unwrap();
    assert!(REFUSED_CAUSES.contains(&cause), "{cause}");
    assert_eq!(finding["group"]["namespace"], "shop");
    assert_eq!(finding["group"]["workload"], "productpage-v1");
    assert_eq!(
        finding["evidence"]["pods"],
        serde_json::json!(["productpage-v1-545db77b95-22jzk"])
    );
    let commands = finding["next_commands"].to_string();
    assert!(
        commands.contains("productpage-v1-545db77b95-22jzk.shop"),
        "{commands}"
    );
    assert_eq!(json["totals"]["failures"], 1);

    // Repeated --line: several lines; human output.
    let out = output(meshwhy().args(["explain", "--line", UF_LINE, "--line", OK_LINE])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("1 failures in 1 groups over all records; 1 successes known"),
        "{stdout}"
    );
}

#[tokio::test]
async fn line_and_input_file_are_exclusive_and_pod_needs_a_log() {
    let out = output(meshwhy().args(["explain", "--line", UF_LINE, "--input-file", "-"])).await;
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("cannot be used with"));

    let out = output(meshwhy().args(["explain", "--pod", "p"])).await;
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("meshwhy: --pod names the proxy"),
        "{stderr}"
    );

    let out = output(meshwhy().args([
        "explain", "--line", UF_LINE, "--proxy", "p.shop", "-n", "prod",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("but -n says \"prod\""));
}

#[tokio::test]
async fn garbage_only_is_exit_65_with_one_line() {
    let garbage = TempFile::new("garbage.log", b"hello\nthis is not\nan access log\n");
    let out = output(meshwhy().args(["explain", "--input-file", garbage.arg()])).await;
    assert_eq!(out.status.code(), Some(65));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let expected = format!(
        "meshwhy: {}: none of its 3 lines is an Envoy access-log entry (e.g. `hello`); \
         see `meshwhy explain --help` for the formats read, or pass --log-format",
        garbage.arg()
    );
    assert_eq!(stderr.trim_end(), expected);

    // The same from stdin, and on top and observe.
    for command in ["explain", "top", "observe"] {
        let out = with_stdin(
            meshwhy().args([command, "--input-file", "-"]),
            b"hello\nworld\n",
        )
        .await;
        assert_eq!(out.status.code(), Some(65), "{command}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.starts_with("meshwhy: stdin: none of its 2 lines"),
            "{command}: {stderr}"
        );
    }

    let out = output(meshwhy().args(["explain", "--line", "nothing to see"])).await;
    assert_eq!(out.status.code(), Some(65));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "meshwhy: --line: its one line is not an Envoy access-log entry (`nothing to see`)"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn empty_input_is_exit_65_saying_so() {
    let empty = TempFile::new("empty.log", b"");
    let out = output(meshwhy().args(["explain", "--input-file", empty.arg()])).await;
    assert_eq!(out.status.code(), Some(65));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "meshwhy: {} is empty: there are no access-log lines to read",
            empty.arg()
        )
    );
    let out = with_stdin(meshwhy().args(["top", "--input-file", "-"]), b"\n  \n").await;
    assert_eq!(out.status.code(), Some(65));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("meshwhy: stdin is empty"), "{stderr}");
}

#[tokio::test]
async fn mixed_input_is_exit_0_with_a_sampled_warning() {
    let mixed = format!(
        "2023-11-14T22:13:19.000000Z\tinfo\tEnvoy proxy is ready\n{UF_LINE}\nwarming up\n{OK_LINE}\n"
    );
    let file = TempFile::new("mixed.log", mixed.as_bytes());
    let out = output(meshwhy().args(["explain", "--input-file", file.arg(), "-o", "json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json = json(&out);
    let cause = json["findings"][0]["cause"].as_str().unwrap();
    assert!(REFUSED_CAUSES.contains(&cause), "{cause}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("meshwhy: {}: 2 of 4 lines", file.arg())),
        "{stderr}"
    );
    assert!(stderr.contains("e.g. warming up"), "{stderr}");
    assert!(stderr.contains("Envoy proxy is ready"), "{stderr}");
}

#[tokio::test]
async fn invalid_utf8_and_a_1_mb_line_do_not_crash() {
    let mut bytes = vec![0xff, 0xfe, b'\n', 0xc3, 0x28, 0x00, 0x1b, b'\n'];
    bytes.extend(std::iter::repeat_n(b'x', 1024 * 1024));
    bytes.push(b'\n');
    bytes.extend_from_slice(UF_LINE.as_bytes());
    bytes.push(b'\n');
    let file = TempFile::new("binary.log", &bytes);
    let out = output(meshwhy().args(["explain", "--input-file", file.arg(), "-o", "json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let cause = json(&out)["findings"][0]["cause"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(REFUSED_CAUSES.contains(&cause.as_str()), "{cause}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("3 of 4 lines"), "{stderr}");
    // Samples are cut short and their control characters escaped: no raw ESC on the terminal.
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert!(stderr.len() < 2_000, "the 1 MB line is not echoed whole");

    // Garbage alone: exit 65, still one line.
    bytes.truncate(bytes.len() - UF_LINE.len() - 1);
    let garbage = TempFile::new("binary-only.log", &bytes);
    let out = with_stdin(
        meshwhy().args(["observe", "--input-file", "-"]),
        &std::fs::read(garbage.path()).unwrap(),
    )
    .await;
    assert_eq!(out.status.code(), Some(65));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.len() < 1_000, "{stderr}");
}

#[tokio::test]
async fn unreadable_file_is_66_and_bad_format_is_64() {
    let out = output(meshwhy().args(["top", "--input-file", "/nonexistent/meshwhy.log"])).await;
    assert_eq!(out.status.code(), Some(66));
    assert_eq!(text(&out.stderr).lines().count(), 1);

    let out = output(meshwhy().args(["explain", "--line", UF_LINE, "--log-format", ""])).await;
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("meshwhy: --log-format: "), "{stderr}");
    // The same through the environment, on ingest-logs too (before any collector is asked).
    let out = output(
        meshwhy()
            .env("MESHWHY_LOG_FORMAT", " ")
            .args(["ingest-logs", fixture().to_str().unwrap()]),
    )
    .await;
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with("meshwhy: --log-format: "));
}

#[tokio::test]
async fn top_and_observe_read_a_file() {
    let log = fixture();
    let log = log.to_str().unwrap();
    let out = output(meshwhy().args(["top", "--input-file", log, "-o", "json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json = json(&out);
    let groups = json["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3, "{json}");
    assert_eq!(groups[0]["count"], 2);
    assert_eq!(groups[0]["flags"], serde_json::json!(["UF", "URX"]));

    // observe prints every record of the file with its filters applied, oldest first.
    let out = output(meshwhy().args([
        "observe",
        "--input-file",
        log,
        "--proxy",
        "productpage-v1-7d9c.shop",
        "--code",
        "503",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with(
            "22:13:20.123 shop/productpage-v1-7d9c -> reviews:9080 /reviews/0 503 UF,URX"
        ),
        "{stdout}"
    );
    assert!(lines[2].contains("/ratings/0 503"), "{stdout}");

    let out = output(meshwhy().args([
        "observe",
        "--input-file",
        log,
        "--cause",
        "no_route",
        "-o",
        "jsonl",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let record: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(record["request_id"], "r-nr");
    assert_eq!(record["cause"], "no_route");

    // --limit keeps the newest that pass.
    let out = output(meshwhy().args([
        "observe",
        "--input-file",
        log,
        "--flag",
        "UF",
        "--limit",
        "1",
        "-o",
        "jsonl",
    ]))
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("/reviews/1"), "{stdout}");

    // -f follows the collector only.
    let out = output(meshwhy().args(["observe", "--input-file", log, "-f"])).await;
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot be used with --input-file/--line"),
        "{stderr}"
    );
    assert!(stderr.contains("kubectl logs -f"), "{stderr}");
}

async fn collector() -> CollectorHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    meshwhy_collector::spawn(listener, CollectorConfig::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn ingest_logs_then_explain_and_a_second_load_counts_once() {
    let collector = collector().await;
    let url = collector.url();
    let log = fixture();
    let log = log.to_str().unwrap();
    let ingest = |command: &mut Command| {
        command.args([
            "--collector",
            &url,
            "ingest-logs",
            log,
            "--pod",
            "productpage-v1-545db77b95-22jzk",
            "-n",
            "shop",
        ]);
    };
    let mut first = meshwhy();
    ingest(&mut first);
    let out = output(&mut first).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.trim_end(),
        format!(
            "{log}: loaded 4 failure records and 3 successful requests (1 proxy: \
             productpage-v1-545db77b95-22jzk.shop) into {url}; already loaded before: 0 records \
             and 0 successes; unreadable: 0 of 8 lines, and 1 of the proxy's own log"
        )
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("1 of 8 lines"), "{stderr}");
    assert!(
        stderr.contains("--since 0s"),
        "the 2023 lines are old: {stderr}"
    );

    let explain = || {
        let mut command = meshwhy();
        command.args([
            "--collector",
            &url,
            "explain",
            "--since",
            "0s",
            "-o",
            "json",
        ]);
        command
    };
    let out = output(&mut explain()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let once = json(&out);
    let finding = &once["findings"][0];
    let cause = finding["cause"].as_str().unwrap();
    assert!(REFUSED_CAUSES.contains(&cause), "{cause}");
    assert_eq!(finding["evidence"]["count"], 2);
    assert_eq!(finding["group"]["workload"], "productpage-v1");
    assert_eq!(once["totals"]["failures"], 4);
    assert_eq!(once["totals"]["successes"], 3);

    // Loaded again, from stdin this time: every batch is a duplicate; nothing counts twice.
    let mut second = meshwhy();
    second.args([
        "--collector",
        &url,
        "ingest-logs",
        "-",
        "--proxy",
        "productpage-v1-545db77b95-22jzk.shop",
    ]);
    let out = with_stdin(&mut second, &std::fs::read(log).unwrap()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "loaded 0 failure records and 0 successful requests (1 proxy: \
             productpage-v1-545db77b95-22jzk.shop)"
        ) && stdout.contains("already loaded before: 4 records and 3 successes"),
        "{stdout}"
    );
    let out = output(&mut explain()).await;
    let twice = json(&out);
    assert_eq!(twice["totals"], once["totals"]);
    assert_eq!(twice["findings"][0]["evidence"]["count"], 2);

    // One proxy instance, one batch.
    let out = output(meshwhy().args(["--collector", &url, "proxies", "-o", "json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let proxies = json(&out);
    let proxies = proxies["proxies"].as_array().unwrap();
    assert_eq!(proxies.len(), 1, "{proxies:?}");
    assert!(
        proxies[0]["instance_id"]
            .as_str()
            .unwrap()
            .starts_with("log-")
    );

    // Garbage loads nothing: 65, and the collector is unchanged.
    let garbage = TempFile::new("garbage.log", b"not a log\n");
    let out = output(meshwhy().args(["--collector", &url, "ingest-logs", garbage.arg()])).await;
    assert_eq!(out.status.code(), Some(65));
    collector.shutdown().await.unwrap();
}

#[tokio::test]
async fn ingest_logs_to_an_unreachable_collector_is_69() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let log = fixture();
    let out = output(meshwhy().args([
        "--collector",
        &address.to_string(),
        "ingest-logs",
        log.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(69));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "meshwhy: cannot reach the collector at http://{address}: "
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_pod_named_by_a_prefix_is_that_lines_proxy() {
    // `kubectl logs -l app=productpage --prefix` and stern, one pod each; the bare line is --pod's.
    let lines = format!(
        "[pod/productpage-v1-545db77b95-22jzk/istio-proxy] {UF_LINE}\n\
         productpage-v1-545db77b95-x7v2q istio-proxy {UF_LINE}\n\
         {UF_LINE}\n"
    );
    let file = TempFile::new("pods.log", lines.as_bytes());
    let out = output(meshwhy().args([
        "explain",
        "--input-file",
        file.arg(),
        "--pod",
        "productpage-v1-545db77b95-b9hk2",
        "-n",
        "shop",
        "-o",
        "json",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let explained = json(&out);
    assert_eq!(
        explained["findings"].as_array().unwrap().len(),
        1,
        "{explained}"
    );
    let finding = &explained["findings"][0];
    assert_eq!(finding["group"]["workload"], "productpage-v1");
    let mut pods: Vec<&str> = finding["evidence"]["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pod| pod.as_str().unwrap())
        .collect();
    pods.sort_unstable();
    assert_eq!(
        pods,
        [
            "productpage-v1-545db77b95-22jzk",
            "productpage-v1-545db77b95-b9hk2",
            "productpage-v1-545db77b95-x7v2q"
        ]
    );

    // Loaded into a collector: one proxy instance per pod.
    let collector = collector().await;
    let url = collector.url();
    let out = output(meshwhy().args([
        "--collector",
        &url,
        "ingest-logs",
        file.arg(),
        "--pod",
        "productpage-v1-545db77b95-b9hk2",
        "-n",
        "shop",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("loaded 3 failure records"), "{stdout}");
    assert!(stdout.contains("(3 proxies: "), "{stdout}");
    let out = output(meshwhy().args(["--collector", &url, "proxies", "-o", "json"])).await;
    let proxies = json(&out);
    let mut pods: Vec<&str> = proxies["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|proxy| proxy["pod"].as_str().unwrap())
        .collect();
    pods.sort_unstable();
    assert_eq!(
        pods,
        [
            "productpage-v1-545db77b95-22jzk",
            "productpage-v1-545db77b95-b9hk2",
            "productpage-v1-545db77b95-x7v2q"
        ]
    );
    collector.shutdown().await.unwrap();
}
