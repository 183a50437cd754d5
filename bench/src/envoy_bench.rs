//! The Envoy side of the benchmark. Every scenario gets its own Envoy, upstream and sink, all
//! started up front and warmed up once; then each round gives every scenario one short burst in
//! turn (saturate for Envoy CPU per request and requests/s, then a fixed rate for latency).
//! Bursts of different scenarios are seconds apart, so a noisy neighbour on this shared machine
//! hits them all alike instead of spoiling one scenario's whole run. At the end each Envoy's
//! memory is read and what it shipped is checked. Everything stops on drop, also on error (the
//! harness kills Envoy when its handle drops).

use crate::{
    als::AlsSink,
    loadgen::{self, Target},
    procfs,
    scenario::{self, AUTHORITY, Scenario, Setup, Traffic, Wiring},
    upstream::FastUpstream,
};
use anyhow::{Context, Result, bail};
use meshwhy_collector::{CollectorConfig, CollectorHandle};
use meshwhy_e2e::{envoy::Envoy, scenario::query};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Load settings.
#[derive(Debug, Clone)]
pub struct Load {
    /// Closed-loop connections.
    pub connections: usize,
    /// Requests once per scenario before the rounds (V8 tiers up, pools fill, caches warm).
    pub warmup_requests: u64,
    /// Requests in each measured closed-loop burst.
    pub requests: u64,
    /// Upper bound on each closed-loop phase.
    pub time_limit: Duration,
    /// Fixed rate for the latency phase, requests/s.
    pub rate: f64,
    /// Length of each latency phase.
    pub rate_duration: Duration,
    /// Connections the fixed rate is spread over.
    pub rate_connections: usize,
    /// How long to wait for shipped data to arrive after the last round.
    pub ship_patience: Duration,
    /// Where each Envoy runs.
    pub placement: Placement,
}

/// Where the measured processes run (see [`crate::pin`]).
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    /// Pin to this CPU.
    pub cpu: Option<usize>,
    /// Raise the scheduling priority.
    pub boost: bool,
}

/// The modules the wasm scenarios load.
#[derive(Debug, Clone)]
pub struct Modules {
    /// meshwhy, after wasm-opt.
    pub meshwhy: String,
    /// The empty filter, after wasm-opt.
    pub empty: String,
}

/// What one burst measured.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Scenario name.
    pub scenario: String,
    /// Round (0-based).
    pub round: usize,
    /// Envoy CPU (user + system) per completed request in the closed-loop phase, µs.
    pub cpu_us_per_request: f64,
    /// Completed requests per second in the closed-loop phase.
    pub requests_per_second: f64,
    /// Envoy CPU used per wall second in the closed-loop phase (1.0 = one core).
    pub envoy_cpu_share: f64,
    /// Requests completed in the closed-loop phase.
    pub requests: u64,
    /// Envoy CPU per request at the fixed rate, µs (coarser: fewer requests, same 10 ms ticks).
    pub fixed_rate_cpu_us_per_request: f64,
    /// Achieved fixed rate, requests/s.
    pub fixed_rate: f64,
    /// Median latency at the fixed rate, µs.
    pub p50_us: f64,
    /// 99th percentile latency at the fixed rate, µs.
    pub p99_us: f64,
    /// Failed exchanges or unexpected statuses.
    pub errors: u64,
}

/// What a scenario's Envoy looked like at the end.
#[derive(Debug, Clone, Serialize)]
pub struct Finish {
    /// Scenario name.
    pub scenario: String,
    /// Envoy RSS after start-up, before any request, KiB.
    pub rss_before_kib: u64,
    /// Envoy RSS after every round, KiB.
    pub rss_after_kib: u64,
    /// Warm-up failures (bursts count their own).
    pub warmup_errors: u64,
    /// What the scenario ships, when it ships something.
    pub shipped: Option<Shipped>,
}

/// Delivery check: what reached the sink versus what was sent.
#[derive(Debug, Clone, Serialize)]
pub struct Shipped {
    /// What is counted (records, counter increments, log entries, log lines).
    pub unit: &'static str,
    /// Requests Envoy answered, warm-up and every round.
    pub expected: u64,
    /// Units that arrived.
    pub arrived: u64,
    /// Units the sender reported dropping (meshwhy's `dropped_records`).
    pub dropped: u64,
}

/// One scenario's Envoy and everything it talks to. Dropping it stops Envoy first (field
/// order), then the upstream and the sinks.
pub struct Running {
    scenario: Scenario,
    envoy: Envoy,
    _upstream: FastUpstream,
    collector: Option<CollectorHandle>,
    als: Option<AlsSink>,
    target: Target,
    rss_before_kib: u64,
    warmup_errors: u64,
    /// Requests answered so far, all phases: what a shipping scenario must account for.
    answered: u64,
}

impl Running {
    /// Starts the scenario's processes and sends the warm-up.
    pub async fn start(scenario: &Scenario, modules: &Modules, load: &Load) -> Result<Self> {
        let upstream = FastUpstream::start().await?;
        let collector = match scenario.setup {
            Setup::Meshwhy => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                Some(
                    meshwhy_collector::spawn(listener, CollectorConfig::default())
                        .await
                        .context("start the collector")?,
                )
            }
            _ => None,
        };
        let als = match scenario.setup {
            Setup::NativeAls => Some(AlsSink::start().await?),
            _ => None,
        };
        let wiring = Wiring {
            upstream: upstream.addr,
            meshwhy_wasm: modules.meshwhy.clone(),
            empty_wasm: modules.empty.clone(),
            collector: collector.as_ref().map(|c| c.addr),
            als: als.as_ref().map(|sink| sink.addr),
        };
        let config = scenario::envoy_config(scenario, &wiring)?;
        let envoy = Envoy::start(&format!("bench-{}", scenario.name), &config)
            .await
            .with_context(|| format!("start Envoy for {}", scenario.name))?;
        if let Some(cpu) = load.placement.cpu {
            crate::pin::pin(envoy.pid(), cpu)?;
        }
        if load.placement.boost {
            crate::pin::boost(envoy.pid())?;
        }
        let rss_before_kib = procfs::memory(envoy.pid())?.rss_kib;
        let target = Target::get(
            envoy.listener("main")?,
            AUTHORITY,
            scenario.traffic.path(),
            scenario.traffic.status(),
        );
        let warmup = loadgen::saturate(
            &target,
            load.connections,
            load.warmup_requests,
            load.time_limit,
        )
        .await?;
        Ok(Self {
            scenario: scenario.clone(),
            envoy,
            _upstream: upstream,
            collector,
            als,
            target,
            rss_before_kib,
            warmup_errors: warmup.errors,
            answered: warmup.completed,
        })
    }

    /// One burst: saturate, then the fixed rate.
    pub async fn measure(&mut self, round: usize, load: &Load) -> Result<Sample> {
        let pid = self.envoy.pid();
        let cpu_start = procfs::cpu_time(pid)?;
        let saturated = loadgen::saturate(
            &self.target,
            load.connections,
            load.requests,
            load.time_limit,
        )
        .await?;
        let cpu_saturated = procfs::cpu_time(pid)? - cpu_start;

        let cpu_start = procfs::cpu_time(pid)?;
        let fixed = loadgen::fixed_rate(
            &self.target,
            load.rate_connections,
            load.rate,
            load.rate_duration,
        )
        .await?;
        let cpu_fixed = procfs::cpu_time(pid)? - cpu_start;
        if !self.envoy.is_running() {
            bail!(
                "Envoy exited during {}:\n{}",
                self.scenario.name,
                self.envoy.log_text()
            );
        }
        self.answered += saturated.completed + fixed.completed;

        let per_request = |cpu: Duration, n: u64| cpu.as_secs_f64() * 1e6 / n.max(1) as f64;
        let seconds = saturated.elapsed.as_secs_f64().max(1e-9);
        Ok(Sample {
            scenario: self.scenario.name.clone(),
            round,
            cpu_us_per_request: per_request(cpu_saturated, saturated.completed),
            requests_per_second: saturated.completed as f64 / seconds,
            envoy_cpu_share: cpu_saturated.as_secs_f64() / seconds,
            requests: saturated.completed,
            fixed_rate_cpu_us_per_request: per_request(cpu_fixed, fixed.completed),
            fixed_rate: fixed.completed as f64 / fixed.elapsed.as_secs_f64().max(1e-9),
            p50_us: fixed.quantile(0.50).as_secs_f64() * 1e6,
            p99_us: fixed.quantile(0.99).as_secs_f64() * 1e6,
            errors: saturated.errors + fixed.errors,
        })
    }

    /// Reads Envoy's memory, waits (up to the patience) for what the scenario ships, and stops
    /// everything. A shipping shortfall is reported, not hidden: a filter that sheds load looks
    /// cheaper than it is.
    pub async fn finish(self, load: &Load) -> Result<Finish> {
        let rss_after_kib = procfs::memory(self.envoy.pid())?.rss_kib;
        // The empty filter's variants report work they could not do (e.g. a CEL evaluation
        // that failed): such a run measured less than it claims.
        if let Some(line) = self
            .envoy
            .log_text()
            .lines()
            .find(|l| l.contains("empty filter:"))
        {
            bail!("{} did not do its work: {line}", self.scenario.name);
        }
        let deadline = Instant::now() + load.ship_patience;
        let shipped = loop {
            let now = self.shipped().await?;
            let done = now
                .as_ref()
                .is_none_or(|s| s.arrived + s.dropped >= s.expected);
            if done || Instant::now() >= deadline {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Ok(Finish {
            scenario: self.scenario.name.clone(),
            rss_before_kib: self.rss_before_kib,
            rss_after_kib,
            warmup_errors: self.warmup_errors,
            shipped,
        })
    }

    async fn shipped(&self) -> Result<Option<Shipped>> {
        let expected = self.answered;
        Ok(match (self.scenario.setup, self.scenario.traffic) {
            (Setup::Meshwhy, traffic) => {
                let url = self.collector.as_ref().context("collector")?.url();
                match traffic {
                    Traffic::Success => {
                        let arrived =
                            query::counted(&url, "ok", scenario::UPSTREAM_CLUSTER, 200).await?;
                        Some(Shipped {
                            unit: "counted",
                            expected,
                            arrived,
                            dropped: 0,
                        })
                    }
                    Traffic::Failure => {
                        let proxies = query::proxies(&url).await?;
                        let arrived = proxies.iter().map(|p| p.records).sum();
                        let dropped = proxies.iter().map(|p| p.dropped_records).sum();
                        Some(Shipped {
                            unit: "records",
                            expected,
                            arrived,
                            dropped,
                        })
                    }
                }
            }
            (Setup::NativeAls, _) => {
                let arrived = self.als.as_ref().context("ALS sink")?.entries();
                Some(Shipped {
                    unit: "log entries",
                    expected,
                    arrived,
                    dropped: 0,
                })
            }
            (Setup::JsonLog, _) => {
                let text = std::fs::read_to_string(&self.envoy.access_log).unwrap_or_default();
                let arrived = text.lines().count() as u64;
                Some(Shipped {
                    unit: "log lines",
                    expected,
                    arrived,
                    dropped: 0,
                })
            }
            (Setup::RouterOnly | Setup::EmptyWasm(_), _) => None,
        })
    }
}
