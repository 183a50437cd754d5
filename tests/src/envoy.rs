//! Runs a real Envoy: writes its config to a scratch directory, starts it with a dynamic base id
//! and port-0 listeners, waits until it is ready, learns the bound ports from the admin API, and
//! kills it when dropped.

use crate::{paths, process::ChildGuard, wait};
use anyhow::{Context, Result, bail};
use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

/// A scratch directory for one Envoy (config, logs), removed on drop unless
/// `MESHWHY_KEEP_SCRATCH` is set (then its path is printed for post-mortems).
#[derive(Debug)]
pub struct Scratch {
    /// The directory.
    pub path: PathBuf,
}

impl Scratch {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(name: &str) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let unique = format!(
            "meshwhy-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("MESHWHY_KEEP_SCRATCH").is_some() {
            eprintln!("kept scratch directory {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A running Envoy.
#[derive(Debug)]
pub struct Envoy {
    /// Admin API address.
    pub admin: SocketAddr,
    /// Bound address of each listener, by listener name.
    pub listeners: HashMap<String, SocketAddr>,
    /// Envoy's file access log (JSON lines, see [`crate::access_log`]).
    pub access_log: PathBuf,
    /// Envoy's own log.
    pub log: PathBuf,
    child: ChildGuard,
    // Dropped after the child: Envoy is dead before its files go.
    _scratch: Scratch,
}

impl Envoy {
    /// Starts Envoy with `config` (YAML). `{ACCESS_LOG}` in the config is replaced by the access
    /// log's path. Waits until the admin API reports LIVE.
    pub async fn start(name: &str, config: &str) -> Result<Self> {
        let binary = paths::envoy_binary()?;
        let scratch = Scratch::new(name)?;
        let access_log = scratch.path.join("access.log");
        let log = scratch.path.join("envoy.log");
        let admin_file = scratch.path.join("admin.txt");
        let config_path = scratch.path.join("envoy.yaml");
        let config = config.replace("{ACCESS_LOG}", &access_log.display().to_string());
        std::fs::write(&config_path, config)?;

        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(&config_path)
            .arg("--use-dynamic-base-id")
            .args([
                "--concurrency",
                "1",
                "--file-flush-interval-msec",
                "100",
                "-l",
                "info",
            ])
            .arg("--log-path")
            .arg(&log)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = ChildGuard::spawn(&format!("envoy {name}"), command)?;

        let admin = wait::until("Envoy's admin address file", || {
            let exited = child.exited();
            let admin_file = admin_file.clone();
            async move {
                if exited.is_some() {
                    return Some(None);
                }
                let text = std::fs::read_to_string(&admin_file).ok()?;
                text.trim().parse::<SocketAddr>().ok().map(Some)
            }
        })
        .await?;
        let Some(admin) = admin else {
            bail!("Envoy exited during startup:\n{}", tail(&log, 30));
        };

        let ready_url = format!("http://{admin}/ready");
        let ready = wait::until("Envoy to report LIVE on /ready", || {
            let url = ready_url.clone();
            let exited = child.exited();
            async move {
                if exited.is_some() {
                    return Some(false);
                }
                let body = http_get(&url).await.ok()?;
                (body.trim() == "LIVE").then_some(true)
            }
        })
        .await;
        if !matches!(ready, Ok(true)) {
            bail!("Envoy did not become ready:\n{}", tail(&log, 30));
        }

        let listeners = listener_addresses(admin).await?;
        Ok(Self {
            admin,
            listeners,
            access_log,
            log,
            child,
            _scratch: scratch,
        })
    }

    /// The bound address of listener `name`.
    pub fn listener(&self, name: &str) -> Result<SocketAddr> {
        self.listeners
            .get(name)
            .copied()
            .with_context(|| format!("Envoy has no listener named {name}: {:?}", self.listeners))
    }

    /// Envoy's own log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A stat from the admin API (`/stats?filter=^name$`), or None when absent.
    pub async fn stat(&self, name: &str) -> Result<Option<u64>> {
        let body = http_get(&format!(
            "http://{}/stats?format=json&filter=^{name}$",
            self.admin
        ))
        .await?;
        let json: serde_json::Value = serde_json::from_str(&body)?;
        Ok(json["stats"]
            .as_array()
            .and_then(|stats| stats.iter().find(|stat| stat["name"] == name))
            .and_then(|stat| stat["value"].as_u64()))
    }

    /// Envoy's pid.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Whether the Envoy process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.exited().is_none()
    }
}

/// Runs `envoy --mode validate` on `config`: Ok(log) when valid, Err(log) otherwise.
pub fn validate(config: &str) -> Result<std::result::Result<String, String>> {
    let binary = paths::envoy_binary()?;
    let scratch = Scratch::new("validate")?;
    let config_path = scratch.path.join("envoy.yaml");
    let config = config.replace(
        "{ACCESS_LOG}",
        &scratch.path.join("access.log").display().to_string(),
    );
    std::fs::write(&config_path, config)?;
    let output = Command::new(binary)
        .arg("-c")
        .arg(&config_path)
        .args(["--mode", "validate", "--use-dynamic-base-id", "-l", "info"])
        .stdin(Stdio::null())
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(if output.status.success() {
        Ok(text)
    } else {
        Err(text)
    })
}

async fn listener_addresses(admin: SocketAddr) -> Result<HashMap<String, SocketAddr>> {
    let body = http_get(&format!("http://{admin}/listeners?format=json")).await?;
    let json: serde_json::Value = serde_json::from_str(&body)?;
    let mut listeners = HashMap::new();
    for status in json["listener_statuses"].as_array().into_iter().flatten() {
        let socket = &status["local_address"]["socket_address"];
        let (Some(name), Some(ip), Some(port)) = (
            status["name"].as_str(),
            socket["address"].as_str(),
            socket["port_value"].as_u64(),
        ) else {
            continue;
        };
        listeners.insert(name.to_owned(), format!("{ip}:{port}").parse()?);
    }
    Ok(listeners)
}

/// A plain HTTP GET returning the body (admin API).
pub async fn http_get(url: &str) -> Result<String> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let response = client.get(url.parse()?).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// For error messages: the log's critical/error lines when it has any, else its last `lines` lines.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let errors: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("][critical][") || line.contains("][error]["))
        .collect();
    let all: Vec<&str> = if errors.is_empty() {
        text.lines().collect()
    } else {
        errors
    };
    all[all.len().saturating_sub(lines)..].join("\n")
}
