//! The `meshwhy` CLI as the user runs it: a real process against the collector.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// The `meshwhy` binary built by `cargo build -p meshwhy-collector --bins` (`MESHWHY_CLI` when
/// set), see [`crate::paths::workspace_binary`].
pub fn meshwhy_binary() -> Result<PathBuf> {
    crate::paths::workspace_binary("meshwhy", "MESHWHY_CLI")
}

/// Runs `meshwhy --collector <url> <args…>` and returns its stdout; a non-zero exit is an error
/// carrying stderr.
pub fn run(collector_url: &str, args: &[&str]) -> Result<String> {
    let binary = meshwhy_binary()?;
    let output = Command::new(&binary)
        .arg("--collector")
        .arg(collector_url)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .with_context(|| format!("run {}", binary.display()))?;
    let stdout = String::from_utf8(output.stdout).context("meshwhy's stdout is UTF-8")?;
    if !output.status.success() {
        bail!(
            "`meshwhy --collector {collector_url} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// Runs a `meshwhy` command with `-o json` appended and parses its output.
pub fn json(collector_url: &str, args: &[&str]) -> Result<serde_json::Value> {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    let stdout = run(collector_url, &args)?;
    serde_json::from_str(&stdout).with_context(|| format!("meshwhy's JSON output: {stdout}"))
}
