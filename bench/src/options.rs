//! Command-line settings (each with a `MESHWHY_BENCH_*` variable) and the `--smoke` preset.

use clap::Parser;
use std::path::PathBuf;

/// Default rounds: each scenario gets one burst per round, interleaved with the others. Many
/// short bursts beat few long ones on a shared machine: a neighbour's busy spell spoils a few
/// bursts of every scenario rather than one scenario's whole run.
pub const DEFAULT_ROUNDS: usize = 40;
/// Default measured closed-loop requests per burst: 0.3–0.7 s of Envoy CPU here, 30–70 ticks of
/// /proc's 10 ms clock (the rounding averages out over the rounds).
pub const DEFAULT_REQUESTS: u64 = 2_500;
/// Default warm-up requests per scenario, sent once before the rounds.
pub const DEFAULT_WARMUP_REQUESTS: u64 = 10_000;
/// Default closed-loop connections.
pub const DEFAULT_CONNECTIONS: usize = 16;
/// Default lines per log reader round and input kind: about a second each at the budget's
/// 1M lines/s, many 10 ms CPU ticks.
pub const DEFAULT_LOGREAD_LINES: u64 = 1_000_000;
/// Default fixed rate for latency, requests/s: well below the slowest scenario's saturation.
pub const DEFAULT_RATE: f64 = 2_000.0;

/// meshwhy's benchmarks: Envoy CPU per request with the filter against router-only, an empty
/// wasm filter and Envoy's native loggers, side by side; and the collector's ingest rate.
#[derive(Debug, Clone, Parser)]
#[command(name = "meshwhy-bench", version, about)]
pub struct Options {
    /// Rounds; every scenario gets one burst per round, in an order rotated each round.
    #[arg(long, env = "MESHWHY_BENCH_ROUNDS", default_value_t = DEFAULT_ROUNDS)]
    pub rounds: usize,

    /// Measured closed-loop requests per burst (bounded by --time-limit-secs too).
    #[arg(long, env = "MESHWHY_BENCH_REQUESTS", default_value_t = DEFAULT_REQUESTS)]
    pub requests: u64,

    /// Warm-up requests per scenario, sent once before the rounds, not measured.
    #[arg(long, env = "MESHWHY_BENCH_WARMUP_REQUESTS", default_value_t = DEFAULT_WARMUP_REQUESTS)]
    pub warmup_requests: u64,

    /// Closed-loop connections.
    #[arg(long, env = "MESHWHY_BENCH_CONNECTIONS", default_value_t = DEFAULT_CONNECTIONS)]
    pub connections: usize,

    /// Upper bound on each closed-loop phase, seconds.
    #[arg(long, env = "MESHWHY_BENCH_TIME_LIMIT_SECS", default_value_t = 30.0)]
    pub time_limit_secs: f64,

    /// Fixed request rate for the latency phase, requests/s.
    #[arg(long, env = "MESHWHY_BENCH_RATE", default_value_t = DEFAULT_RATE)]
    pub rate: f64,

    /// Length of each burst's latency phase, seconds.
    #[arg(long, env = "MESHWHY_BENCH_RATE_SECS", default_value_t = 0.25)]
    pub rate_secs: f64,

    /// Connections the fixed rate is spread over.
    #[arg(long, env = "MESHWHY_BENCH_RATE_CONNECTIONS", default_value_t = 16)]
    pub rate_connections: usize,

    /// Read-cost variants of the empty filter: properties read per request, comma-separated
    /// (5 = exactly meshwhy's success-path reads, 16 = most of a full record). Empty for none.
    #[arg(
        long,
        env = "MESHWHY_BENCH_READ_VARIANTS",
        value_parser = parse_counts,
        default_value = "5,16"
    )]
    pub read_variants: Counts,

    /// CEL variants of the empty filter: the same first N values fetched with one CEL
    /// evaluation (Envoy's `expr_evaluate`) instead of N reads, comma-separated. Empty for none.
    #[arg(
        long,
        env = "MESHWHY_BENCH_CEL_VARIANTS",
        value_parser = parse_counts,
        default_value = "5,16"
    )]
    pub cel_variants: Counts,

    /// Only these scenarios (comma-separated names); default all.
    #[arg(long, env = "MESHWHY_BENCH_ONLY", value_delimiter = ',')]
    pub only: Vec<String>,

    /// Skip the Envoy scenarios.
    #[arg(long)]
    pub skip_envoy: bool,

    /// Skip the collector ingest run.
    #[arg(long)]
    pub skip_ingest: bool,

    /// Skip the collector-outage memory run.
    #[arg(long)]
    pub skip_outage: bool,

    /// Length of the collector-outage run (meshwhy on failure traffic, collector unreachable,
    /// Envoy's RSS sampled), seconds.
    #[arg(long, env = "MESHWHY_BENCH_OUTAGE_SECS", default_value_t = 120.0)]
    pub outage_secs: f64,

    /// Failure requests per second during the outage run.
    #[arg(long, env = "MESHWHY_BENCH_OUTAGE_RATE", default_value_t = 1000.0)]
    pub outage_rate: f64,

    /// Length of the collector ingest run, seconds.
    #[arg(long, env = "MESHWHY_BENCH_INGEST_SECS", default_value_t = 10.0)]
    pub ingest_secs: f64,

    /// Simulated proxy instances pushing to the collector.
    #[arg(long, env = "MESHWHY_BENCH_INGEST_PROXIES", default_value_t = 200)]
    pub ingest_proxies: usize,

    /// Records per Push.
    #[arg(long, env = "MESHWHY_BENCH_INGEST_BATCH", default_value_t = 500)]
    pub ingest_batch: usize,

    /// Pushes in flight at once.
    #[arg(long, env = "MESHWHY_BENCH_INGEST_IN_FLIGHT", default_value_t = 8)]
    pub ingest_in_flight: usize,

    /// Only the log reader bench (no Envoy, no collector, no wasm modules needed).
    #[arg(long)]
    pub logread: bool,

    /// Skip the log reader bench.
    #[arg(long, conflicts_with = "logread")]
    pub skip_logread: bool,

    /// Lines the log reader reads per input kind per round.
    #[arg(long, env = "MESHWHY_BENCH_LOGREAD_LINES", default_value_t = DEFAULT_LOGREAD_LINES)]
    pub logread_lines: u64,

    /// Log reader rounds (each reads every input kind once).
    #[arg(long, env = "MESHWHY_BENCH_LOGREAD_ROUNDS", default_value_t = 5)]
    pub logread_rounds: usize,

    /// Do not pin: by default Envoy and the collector run on the first CPU, this process (load
    /// generator, upstreams, sinks) on the last.
    #[arg(long)]
    pub no_pin: bool,

    /// Run Envoy, the collector and this process at nice -10 (needs root or CAP_SYS_NICE), so
    /// a neighbour's work preempts the measured bursts less often. For a noisy shared machine.
    #[arg(long, env = "MESHWHY_BENCH_BOOST")]
    pub boost: bool,

    /// The collector binary (default: `meshwhy-collector` next to this executable).
    #[arg(long, env = "MESHWHY_BENCH_COLLECTOR_BIN")]
    pub collector_bin: Option<PathBuf>,

    /// The empty filter module (default: `target/meshwhy_empty_filter.wasm`, built by
    /// `cargo make wasm-empty`). meshwhy's module is found like the e2e tests find it
    /// (`MESHWHY_WASM`, else `target/meshwhy_filter.wasm`).
    #[arg(long, env = "MESHWHY_BENCH_EMPTY_WASM")]
    pub empty_wasm: Option<PathBuf>,

    /// Where results.json and results.md go.
    #[arg(long, env = "MESHWHY_BENCH_OUT", default_value = "target/bench")]
    pub out: PathBuf,

    /// A tiny iteration for CI: one round, a few hundred requests per scenario, a short ingest
    /// run; checks that every scenario ran, answered and shipped, with no timing assertions.
    /// Writes smoke.{md,json} instead of results.{md,json}.
    #[arg(long)]
    pub smoke: bool,
}

impl Options {
    /// Applies the `--smoke` preset (it overrides the sizes, not the paths).
    pub fn resolved(mut self) -> Self {
        if self.smoke {
            self.rounds = 1;
            self.requests = 400;
            self.warmup_requests = 100;
            self.connections = 4;
            self.rate = 200.0;
            self.rate_secs = 0.3;
            self.rate_connections = 2;
            self.ingest_secs = 1.5;
            self.ingest_proxies = 4;
            self.ingest_in_flight = 2;
            self.outage_secs = 2.0;
            self.outage_rate = 200.0;
            self.logread_lines = 2_000;
            self.logread_rounds = 1;
        }
        self
    }

    /// Checks the settings before anything starts; the error names the flag.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--rounds", self.rounds as f64),
            ("--requests", self.requests as f64),
            ("--connections", self.connections as f64),
            ("--time-limit-secs", self.time_limit_secs),
            ("--rate", self.rate),
            ("--rate-secs", self.rate_secs),
            ("--rate-connections", self.rate_connections as f64),
            ("--ingest-secs", self.ingest_secs),
            ("--ingest-proxies", self.ingest_proxies as f64),
            ("--ingest-batch", self.ingest_batch as f64),
            ("--ingest-in-flight", self.ingest_in_flight as f64),
            ("--outage-secs", self.outage_secs),
            ("--outage-rate", self.outage_rate),
            ("--logread-lines", self.logread_lines as f64),
            ("--logread-rounds", self.logread_rounds as f64),
        ];
        for (flag, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("{flag} must be a positive number, got {value}"));
            }
        }
        if self.read_variants.0.contains(&0) {
            return Err("--read-variants: 0 is the empty filter itself; list only N > 0".into());
        }
        // The empty filter knows 16 values (its reads::PROPERTIES).
        if let Some(n) = self.cel_variants.0.iter().find(|&&n| n == 0 || n > 16) {
            return Err(format!("--cel-variants: {n} is not between 1 and 16"));
        }
        Ok(())
    }
}

/// A comma-separated list of counts; the empty string is the empty list (no variants).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub Vec<usize>);

fn parse_counts(text: &str) -> Result<Counts, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse().map_err(|_| {
                format!("\"{part}\" is not a count (expected e.g. 5,16, or \"\" for none)")
            })
        })
        .collect::<Result<_, _>>()
        .map(Counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_and_the_empty_list_is_none() {
        assert_eq!(parse_counts("5,16"), Ok(Counts(vec![5, 16])));
        assert_eq!(parse_counts(""), Ok(Counts(Vec::new())));
        assert!(parse_counts("5,x").unwrap_err().contains("\"x\""));
    }
}
