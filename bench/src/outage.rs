//! Filter memory while the collector is down: meshwhy on failure traffic (every request a full
//! record) with its collector's port refusing connections, Envoy's RSS sampled for minutes. The
//! filter keeps at most `max_buffered_records` and counts the rest as dropped, so the RSS must
//! level off once that buffer is full instead of growing with the outage.

use crate::{
    envoy_bench::Placement,
    loadgen::{self, Target},
    procfs,
    scenario::{self, AUTHORITY, Scenario, Setup, Traffic, Wiring},
    upstream::FastUpstream,
};
use anyhow::{Context, Result, bail};
use meshwhy_e2e::{envoy::Envoy, upstream::ClosedPort};
use serde::Serialize;
use std::time::{Duration, Instant};

/// How the filter's warning about a failed push begins.
const PUSH_FAILED: &str = "meshwhy: push to collector cluster";

/// The outage run's settings.
#[derive(Debug, Clone)]
pub struct OutageLoad {
    /// How long the collector stays unreachable while traffic flows.
    pub duration: Duration,
    /// Failure requests per second.
    pub rate: f64,
    /// RSS samples over the run (one at start-up comes on top).
    pub samples: usize,
    /// Where Envoy runs.
    pub placement: Placement,
}

/// What the outage run saw.
#[derive(Debug, Clone, Serialize)]
pub struct OutageResult {
    /// Seconds the collector was unreachable.
    pub seconds: f64,
    /// Requests answered (all 503 from the app, each a full record).
    pub requests: u64,
    /// Failed exchanges or unexpected statuses.
    pub errors: u64,
    /// (seconds since the traffic started, Envoy RSS KiB); the first is before any request.
    pub rss_kib: Vec<(f64, u64)>,
    /// The filter's own account, from its last warning: records buffered and dropped.
    pub last_warning: String,
}

impl OutageResult {
    /// RSS growth over the second half of the run, KiB: the buffer is long full by then, so
    /// anything here is a leak.
    pub fn second_half_growth_kib(&self) -> i64 {
        let half = self.seconds / 2.0;
        let at_half = self
            .rss_kib
            .iter()
            .find(|(t, _)| *t >= half)
            .map_or(0, |(_, kib)| *kib);
        let end = self.rss_kib.last().map_or(0, |(_, kib)| *kib);
        i64::try_from(end).unwrap_or(i64::MAX) - i64::try_from(at_half).unwrap_or(i64::MAX)
    }

    /// The largest RSS seen, KiB.
    pub fn peak_kib(&self) -> u64 {
        self.rss_kib.iter().map(|(_, kib)| *kib).max().unwrap_or(0)
    }
}

/// Runs the outage: Envoy with meshwhy pointed at a reserved port nobody listens on.
pub async fn run(load: &OutageLoad, meshwhy_wasm: &str) -> Result<OutageResult> {
    let upstream = FastUpstream::start().await?;
    // Held for the whole run: the port stays reserved, so connecting to it is refused.
    let refused = ClosedPort::reserve()?;
    let outage = Scenario {
        name: "meshwhy-outage".to_owned(),
        setup: Setup::Meshwhy,
        traffic: Traffic::Failure,
    };
    let wiring = Wiring {
        upstream: upstream.addr,
        meshwhy_wasm: meshwhy_wasm.to_owned(),
        empty_wasm: String::new(),
        collector: Some(refused.addr),
        als: None,
    };
    let config = scenario::envoy_config(&outage, &wiring)?;
    let mut envoy = Envoy::start("bench-outage", &config)
        .await
        .context("start Envoy for the outage run")?;
    if let Some(cpu) = load.placement.cpu {
        crate::pin::pin(envoy.pid(), cpu)?;
    }
    let target = Target::get(
        envoy.listener("main")?,
        AUTHORITY,
        outage.traffic.path(),
        outage.traffic.status(),
    );
    let mut rss_kib = vec![(0.0, procfs::memory(envoy.pid())?.rss_kib)];
    let slice = load.duration.div_f64(load.samples.max(1) as f64);
    let (mut requests, mut errors) = (0, 0);
    let start = Instant::now();
    for _ in 0..load.samples.max(1) {
        let sent = loadgen::fixed_rate(&target, 4, load.rate, slice).await?;
        requests += sent.completed;
        errors += sent.errors;
        if !envoy.is_running() {
            bail!("Envoy exited during the outage run:\n{}", envoy.log_text());
        }
        rss_kib.push((
            start.elapsed().as_secs_f64(),
            procfs::memory(envoy.pid())?.rss_kib,
        ));
    }
    let last_warning = envoy
        .log_text()
        .lines()
        .rev()
        .find_map(|line| {
            // From the filter's own text on: Envoy's prefix carries nothing more.
            let from = line.find(PUSH_FAILED)?;
            line.get(from..).map(str::to_owned)
        })
        .unwrap_or_default();
    drop(refused);
    Ok(OutageResult {
        seconds: start.elapsed().as_secs_f64(),
        requests,
        errors,
        rss_kib,
        last_warning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_measured_over_the_second_half() {
        let result = OutageResult {
            seconds: 100.0,
            requests: 1,
            errors: 0,
            rss_kib: vec![
                (0.0, 1000),
                (25.0, 3000),
                (50.0, 3100),
                (75.0, 3050),
                (100.0, 3200),
            ],
            last_warning: String::new(),
        };
        assert_eq!(result.second_half_growth_kib(), 100);
        assert_eq!(result.peak_kib(), 3200);
    }
}
