//! The real `meshwhy-collector` binary as a child process (what a pod runs), for tests that
//! need its flags and its HTTP port exactly as deployed: started on port 0, its bound addresses
//! read from its own log, killed when dropped.

use crate::{envoy::Scratch, process::ChildGuard, wait};
use anyhow::{Result, bail};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The `meshwhy-collector` binary built by `cargo build -p meshwhy-collector --bins`
/// (`MESHWHY_COLLECTOR_BIN` when set), see [`crate::paths::workspace_binary`].
pub fn collector_binary() -> Result<PathBuf> {
    crate::paths::workspace_binary("meshwhy-collector", "MESHWHY_COLLECTOR_BIN")
}

/// A running collector process.
#[derive(Debug)]
pub struct CollectorProcess {
    /// gRPC (Ingest, Query).
    pub grpc: SocketAddr,
    /// HTTP (/metrics, /healthz, /readyz, /filter.wasm).
    pub http: SocketAddr,
    /// Its log (stderr).
    pub log: PathBuf,
    child: ChildGuard,
    _scratch: Scratch,
}

impl CollectorProcess {
    /// Starts `meshwhy-collector` on 127.0.0.1 port 0 with `--filter-wasm module` when given.
    pub async fn start(module: Option<&Path>) -> Result<Self> {
        let scratch = Scratch::new("collector")?;
        let log = scratch.path.join("collector.log");
        let mut command = Command::new(collector_binary()?);
        command
            .args([
                "--grpc-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            // The durable default, as deployed, in the scratch directory.
            .arg("--data-dir")
            .arg(scratch.path.join("data"))
            .env_remove("MESHWHY_STORE")
            .env_remove("MESHWHY_FILTER_WASM")
            .env("MESHWHY_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        if let Some(module) = module {
            command.arg("--filter-wasm").arg(module);
        }
        let mut child = ChildGuard::spawn("meshwhy-collector", command)?;
        let addrs = wait::until("the collector to log its addresses", || {
            let exited = child.exited();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            async move {
                if exited.is_some() {
                    return Some(None);
                }
                let after = |marker: &str| {
                    let (_, rest) = text.split_once(marker)?;
                    let addr = rest.split_whitespace().next()?;
                    addr.trim_end_matches("/metrics").parse::<SocketAddr>().ok()
                };
                Some(Some((
                    after("meshwhy-collector listening on ")?,
                    after("meshwhy-collector metrics on http://")?,
                )))
            }
        })
        .await?;
        let Some((grpc, http)) = addrs else {
            bail!(
                "meshwhy-collector exited during startup:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Ok(Self {
            grpc,
            http,
            log,
            child,
            _scratch: scratch,
        })
    }

    /// `http://GRPC_ADDR`, for Query clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.exited().is_none()
    }
}
