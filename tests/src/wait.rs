//! Waiting for conditions instead of sleeping: poll until true or a deadline, with the patience
//! scaled by `MESHWHY_TEST_PATIENCE` (a factor, default 1) for slow machines.

use std::time::{Duration, Instant};

/// The default patience for one condition (30 s × MESHWHY_TEST_PATIENCE).
pub fn patience() -> Duration {
    let factor = std::env::var("MESHWHY_TEST_PATIENCE")
        .ok()
        .and_then(|value| value.parse::<f64>().ok())
        .filter(|factor| *factor > 0.0)
        .unwrap_or(1.0);
    Duration::from_secs_f64(30.0 * factor)
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after [`patience`] with `what`.
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + patience();
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {:?} waiting for {what}", patience());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
