//! The `meshwhy` CLI as the user runs it: a real process against the collector.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// The `meshwhy` binary built by `cargo build -p meshwhy-collector --bins`: `MESHWHY_CLI` when
/// set, else next to the running executable (test binaries live in `target/<profile>/deps`, so
/// its parent is looked at too). Missing is an error with the fix, never a silent build.
pub fn meshwhy_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("MESHWHY_CLI") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "MESHWHY_CLI points at {}, which is not a file",
                path.display()
            );
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("locate the running executable")?;
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("meshwhy"))
        .collect();
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "the meshwhy CLI was not found (looked at {}): run `cargo build -p \
                 meshwhy-collector --bins` first (or set MESHWHY_CLI)",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
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
