//! Log setup shared by both binaries: level from `MESHWHY_LOG`, else `RUST_LOG`, else info.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Environment variable for the log filter, e.g. `debug` or `meshwhy_collector=debug`.
pub const LOG_ENV: &str = "MESHWHY_LOG";
/// Log filter used when neither `MESHWHY_LOG` nor `RUST_LOG` is set.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Logs to stderr (stdout stays clean for data); colour only on a terminal without `NO_COLOR`.
/// An unparsable filter falls back to the default and says so.
pub fn init() {
    let requested = std::env::var(LOG_ENV)
        .or_else(|_| std::env::var(EnvFilter::DEFAULT_ENV))
        .ok();
    let (filter, rejected) = match requested.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => (filter, None),
        Some(Err(error)) => (EnvFilter::new(DEFAULT_LOG_FILTER), Some(error)),
        None => (EnvFilter::new(DEFAULT_LOG_FILTER), None),
    };
    let stderr = std::io::stderr();
    let ansi = stderr.is_terminal() && !no_color();
    // Ignore the error: a second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
    if let Some(error) = rejected {
        tracing::warn!(%error, "ignoring unparsable {LOG_ENV}/RUST_LOG; logging at {DEFAULT_LOG_FILTER}");
    }
}

/// Whether the user asked for no colour (<https://no-color.org>: set and non-empty).
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty())
}
