//! The real `meshwhy-collector` process serves the filter module it was started with over its
//! HTTP port (`/filter.wasm`, `/filter.wasm.sha256`), 404s saying how to configure one when it
//! has none, and refuses to start on a module that is missing or not wasm.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const COLLECTOR: &str = env!("CARGO_BIN_EXE_meshwhy-collector");
/// Upper bound for anything a test waits on: a hang fails the test instead of the CI job.
const PATIENCE: Duration = Duration::from_secs(60);

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("meshwhy-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small but real WebAssembly module: the header, then an empty custom section, so its bytes
/// are not all header.
fn tiny_module() -> Vec<u8> {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.extend_from_slice(&[0x00, 0x05, 0x04, b'm', b'w', b'h', b'y']);
    bytes
}

fn command() -> Command {
    let mut command = Command::new(COLLECTOR);
    for var in [
        "MESHWHY_GRPC_ADDR",
        "MESHWHY_METRICS_ADDR",
        "MESHWHY_FILTER_WASM",
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
        // About serving the module; the durable store (the default, written under the working
        // directory) has its own process tests in tests/store.rs.
        .env("MESHWHY_STORE", "memory")
        .env("MESHWHY_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the collector; returns it and its HTTP address, read from its log.
async fn start(mut command: Command) -> (Child, SocketAddr) {
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let metrics = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, rest)) = line.split_once("meshwhy-collector metrics on http://") {
                let rest = rest.split_whitespace().next().unwrap();
                return rest
                    .trim_end_matches("/metrics")
                    .parse::<SocketAddr>()
                    .unwrap();
            }
        }
        panic!("the collector exited without saying where it serves HTTP");
    })
    .await
    .expect("the collector logged its HTTP address in time");
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, metrics)
}

async fn stop(mut child: Child) {
    child.start_kill().unwrap();
    tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the collector stopped in time")
        .unwrap();
}

/// One real HTTP/1.1 GET: status, lowercase head, body bytes.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    tokio::time::timeout(PATIENCE, async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let split = raw
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .expect("a complete response");
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head, raw[split + 4..].to_vec())
    })
    .await
    .expect("the collector answered in time")
}

#[tokio::test]
async fn serves_the_module_and_its_sha256() {
    let scratch = Scratch::new("module-served");
    let path = scratch.0.join("meshwhy_filter.wasm");
    let module = tiny_module();
    std::fs::write(&path, &module).unwrap();
    let expected: String = Sha256::digest(&module)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();

    let mut flag = command();
    flag.arg("--filter-wasm").arg(&path);
    let (child, http) = start(flag).await;
    let (status, head, body) = get(http, "/filter.wasm").await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: application/wasm"), "{head}");
    assert_eq!(body, module);
    let (status, _, body) = get(http, "/filter.wasm.sha256").await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(body).unwrap(), format!("{expected}\n"));

    // Read once at start: a module replaced on disk is not served (the pinned digest stays true).
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    assert_eq!(get(http, "/filter.wasm").await.2, module);
    stop(child).await;

    // The environment variable works the same.
    std::fs::write(&path, &module).unwrap();
    let mut env = command();
    env.env("MESHWHY_FILTER_WASM", &path);
    let (child, http) = start(env).await;
    let (status, _, body) = get(http, "/filter.wasm.sha256").await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(body).unwrap(), format!("{expected}\n"));
    stop(child).await;
}

#[tokio::test]
async fn without_a_module_both_paths_say_how_to_configure_one() {
    let (child, http) = start(command()).await;
    for path in ["/filter.wasm", "/filter.wasm.sha256"] {
        let (status, _, body) = get(http, path).await;
        assert_eq!(status, 404, "{path}");
        let body = String::from_utf8(body).unwrap();
        assert!(
            body.contains("no filter module is configured")
                && body.contains("--filter-wasm PATH (env MESHWHY_FILTER_WASM)"),
            "{body}"
        );
    }
    // The other endpoints are unaffected.
    assert_eq!(get(http, "/healthz").await.0, 200);
    stop(child).await;
}

#[tokio::test]
async fn a_missing_or_non_wasm_module_stops_the_start_with_exit_64() {
    let scratch = Scratch::new("module-bad");
    let not_wasm = scratch.0.join("filter.wasm");
    std::fs::write(&not_wasm, b"<html>404</html>").unwrap();
    for (path, says) in [
        (not_wasm, "is not a WebAssembly module"),
        (scratch.0.join("missing.wasm"), "missing.wasm"),
    ] {
        let mut bad = command();
        bad.arg("--filter-wasm").arg(&path);
        let out = tokio::time::timeout(PATIENCE, bad.output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.status.code(), Some(64));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("--filter-wasm"),
            "{stderr}"
        );
    }
}
