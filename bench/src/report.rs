//! Turns the samples into the tables BENCHMARKS.md shows: per scenario the median and range of
//! every figure; Envoy CPU per request as ratios (of medians, with a 90% bootstrap interval)
//! against router-only, the empty-filter floor and native ALS; the budget checks from DESIGN.md;
//! where meshwhy's success-path cost goes; filter memory in a collector outage; and the
//! collector's ingest.

use crate::{
    collector_bench::IngestResult,
    envoy_bench::{Finish, Sample},
    logread_bench::{self, BUDGET_SALVAGE_PER_CORE, BUDGET_TEXT_PER_CORE, LogreadResult},
    outage::OutageResult,
    scenario::{Scenario, Traffic},
    stats::{Ratio, Spread, median},
};
use serde::Serialize;
use std::fmt::Write as _;

/// DESIGN.md's budget: meshwhy on success traffic vs the empty-filter floor.
pub const BUDGET_VS_FLOOR: f64 = 1.15;
/// meshwhy on success traffic vs native ALS.
pub const BUDGET_VS_ALS: f64 = 1.30;
/// meshwhy on failure traffic vs router only (on the same failure traffic).
pub const BUDGET_FAILURE_VS_ROUTER: f64 = 1.60;
/// Module size after wasm-opt, bytes.
pub const BUDGET_MODULE_BYTES: u64 = 200 * 1024;
/// Collector ingest, records/s on one core.
pub const BUDGET_INGEST_PER_CORE: f64 = 300_000.0;
/// "Flat" filter memory during a collector outage: at most this much Envoy RSS growth over the
/// second half of the run, KiB. The record buffer fills in seconds; what is left is allocator
/// noise, while a leak of even one byte per record would show many times over.
pub const FLAT_GROWTH_KIB: i64 = 1024;

/// One scenario's summary over rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Envoy CPU per request, µs.
    pub cpu_us_per_request: Spread,
    /// CPU ratio to `router` (success traffic) or `router-fail` (failure traffic).
    pub vs_router: Option<Ratio>,
    /// CPU ratio to `empty-wasm`.
    pub vs_floor: Option<Ratio>,
    /// CPU ratio to `native-als`.
    pub vs_als: Option<Ratio>,
    /// Requests/s, closed loop.
    pub requests_per_second: Spread,
    /// Envoy CPU share while saturated (1.0 = one core).
    pub envoy_cpu_share: Spread,
    /// p50 at the fixed rate, µs.
    pub p50_us: Spread,
    /// p99 at the fixed rate, µs.
    pub p99_us: Spread,
    /// Envoy RSS after start-up, MiB.
    pub rss_before_mib: f64,
    /// Envoy RSS after every round, MiB.
    pub rss_after_mib: f64,
    /// Delivery at the end: "arrived/expected unit (dropped)".
    pub shipped: String,
}

/// Every burst's Envoy CPU per request for `name`.
fn cpu(samples: &[Sample], name: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.scenario == name && s.cpu_us_per_request > 0.0)
        .map(|s| s.cpu_us_per_request)
        .collect()
}

/// Summarises `samples` per scenario, in `scenarios` order.
pub fn rows(scenarios: &[Scenario], samples: &[Sample], finishes: &[Finish]) -> Vec<Row> {
    scenarios
        .iter()
        .map(|scenario| {
            let mine: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.scenario == scenario.name)
                .collect();
            let spread =
                |f: fn(&Sample) -> f64| Spread::of(&mine.iter().map(|s| f(s)).collect::<Vec<_>>());
            let mine_cpu = cpu(samples, &scenario.name);
            let ratio = |baseline: &str| Ratio::of(&mine_cpu, &cpu(samples, baseline));
            let router = match scenario.traffic {
                Traffic::Success => "router",
                Traffic::Failure => "router-fail",
            };
            let finish = finishes.iter().find(|f| f.scenario == scenario.name);
            let shipped = finish
                .and_then(|f| f.shipped.as_ref())
                .map(|s| {
                    let dropped = if s.dropped > 0 {
                        format!(", {} dropped", s.dropped)
                    } else {
                        String::new()
                    };
                    format!("{}/{} {}{dropped}", s.arrived, s.expected, s.unit)
                })
                .unwrap_or_else(|| "—".to_owned());
            let mib = |kib: u64| kib as f64 / 1024.0;
            Row {
                scenario: scenario.name.clone(),
                cpu_us_per_request: spread(|s| s.cpu_us_per_request),
                vs_router: ratio(router),
                vs_floor: ratio("empty-wasm"),
                vs_als: ratio("native-als"),
                requests_per_second: spread(|s| s.requests_per_second),
                envoy_cpu_share: spread(|s| s.envoy_cpu_share),
                p50_us: spread(|s| s.p50_us),
                p99_us: spread(|s| s.p99_us),
                rss_before_mib: finish.map_or(0.0, |f| mib(f.rss_before_kib)),
                rss_after_mib: finish.map_or(0.0, |f| mib(f.rss_after_kib)),
                shipped,
            }
        })
        .collect()
}

/// The module sizes measured.
#[derive(Debug, Clone, Serialize)]
pub struct Modules {
    /// meshwhy after wasm-opt, bytes.
    pub meshwhy_bytes: u64,
    /// The empty filter after wasm-opt, bytes.
    pub empty_bytes: u64,
}

/// Everything one bench run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When (UTC).
    pub date: String,
    /// `nproc` and the CPU model.
    pub machine: String,
    /// The settings used.
    pub settings: String,
    /// Rounds run.
    pub rounds: usize,
    /// Per-scenario summaries.
    pub rows: Vec<Row>,
    /// Every burst.
    pub samples: Vec<Sample>,
    /// Every scenario's end state (memory, delivery).
    pub finishes: Vec<Finish>,
    /// Module sizes.
    pub modules: Modules,
    /// The collector-outage memory run, when it ran.
    pub outage: Option<OutageResult>,
    /// The collector run, when it ran.
    pub ingest: Option<IngestResult>,
    /// The log reader run, when it ran.
    pub logread: Option<LogreadResult>,
}

fn row<'a>(report: &'a Report, name: &str) -> Option<&'a Row> {
    report.rows.iter().find(|row| row.scenario == name)
}

fn show(ratio: Option<Ratio>) -> String {
    ratio.map_or_else(|| "—".to_owned(), |ratio| ratio.show())
}

/// Met when the whole interval is within the goal, missed when all of it is beyond, and
/// "within noise" when the goal lies inside the interval (the median's side is named).
fn verdict(ratio: Ratio, goal: f64) -> String {
    if ratio.high <= goal {
        "met".to_owned()
    } else if ratio.low > goal {
        "**missed**".to_owned()
    } else if ratio.of_medians <= goal {
        "within noise (median met)".to_owned()
    } else {
        "within noise (median **missed**)".to_owned()
    }
}

/// Per-round CPU ratios of `a` to `b` (bursts seconds apart), summarised.
fn per_round_ratio(report: &Report, a: &str, b: &str) -> Option<Spread> {
    let ratios: Vec<f64> = report
        .samples
        .iter()
        .filter(|s| s.scenario == a)
        .filter_map(|x| {
            let y = report
                .samples
                .iter()
                .find(|y| y.scenario == b && y.round == x.round)?;
            (y.cpu_us_per_request > 0.0).then(|| x.cpu_us_per_request / y.cpu_us_per_request)
        })
        .collect();
    (!ratios.is_empty()).then(|| Spread::of(&ratios))
}

/// The ratio of the two scenarios' cheapest bursts. A neighbour on a shared machine only ever
/// adds CPU per request (cache contention, preemption), so the least-disturbed bursts are a
/// third, noise-resistant estimate.
fn fastest_ratio(report: &Report, a: &str, b: &str) -> Option<f64> {
    let fastest = |name: &str| cpu(&report.samples, name).into_iter().reduce(f64::min);
    Some(fastest(a)? / fastest(b)?)
}

/// The report as Markdown: the Envoy table, the budget table, the decomposition and the
/// collector table.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Measured {} on {}; {} rounds; {}.\n",
        report.date, report.machine, report.rounds, report.settings
    );
    if !report.rows.is_empty() {
        envoy_table(&mut out, report);
    }
    budget_table(&mut out, report);
    if let Some(decomposition) = decomposition(report) {
        let _ = writeln!(out, "\n{decomposition}");
    }
    if let Some(outage) = &report.outage {
        outage_table(&mut out, outage);
    }
    if let Some(ingest) = &report.ingest {
        ingest_table(&mut out, ingest);
    }
    if let Some(logread) = &report.logread {
        logread_bench::markdown(&mut out, logread);
    }
    out
}

fn outage_table(out: &mut String, outage: &OutageResult) {
    let series: Vec<String> = outage
        .rss_kib
        .iter()
        .map(|(t, kib)| format!("{t:.1} s {:.1}", *kib as f64 / 1024.0))
        .collect();
    let _ = writeln!(
        out,
        "\nCollector outage: {} failure requests over {:.0} s ({} errors), collector unreachable. Envoy RSS (MiB) over time: {}.\nThe filter's last warning: `{}`",
        outage.requests,
        outage.seconds,
        outage.errors,
        series.join(" · "),
        outage.last_warning
    );
}

fn envoy_table(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "| scenario | Envoy CPU µs/req | × router | × empty wasm | × native ALS | req/s (saturated) | Envoy CPU share | p50 µs @ fixed rate | p99 µs @ fixed rate | RSS MiB start → end | shipped |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &report.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} → {:.1} | {} |",
            row.scenario,
            row.cpu_us_per_request.show(1),
            show(row.vs_router),
            show(row.vs_floor),
            show(row.vs_als),
            row.requests_per_second.show(0),
            row.envoy_cpu_share.show(2),
            row.p50_us.show(0),
            row.p99_us.show(0),
            row.rss_before_mib,
            row.rss_after_mib,
            row.shipped,
        );
    }
    let _ = writeln!(
        out,
        "\nFigures: median [min–max] over rounds. Ratios: median CPU/request of the row over that \
         of the baseline (90% bootstrap interval over rounds); `× router` of a `*-fail` row is \
         against `router-fail`, the same failure traffic without any filter.\n"
    );
}

fn budget_table(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "| budget (DESIGN.md) | goal | ratio of medians (90% interval) | per-round ratios, median [range] | ratio of fastest bursts | verdict |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let budgets = [
        (
            "Envoy CPU/request, success traffic, meshwhy vs empty wasm filter",
            BUDGET_VS_FLOOR,
            "meshwhy",
            "empty-wasm",
        ),
        (
            "same, vs native gRPC access log",
            BUDGET_VS_ALS,
            "meshwhy",
            "native-als",
        ),
        (
            "failure traffic (every request a full record) vs router only",
            BUDGET_FAILURE_VS_ROUTER,
            "meshwhy-fail",
            "router-fail",
        ),
    ];
    for (what, goal, scenario, baseline) in budgets {
        let Some(ratio) = Ratio::of(
            &cpu(&report.samples, scenario),
            &cpu(&report.samples, baseline),
        ) else {
            continue;
        };
        let per_round = per_round_ratio(report, scenario, baseline)
            .map_or_else(|| "—".to_owned(), |spread| spread.show(2));
        let fastest = fastest_ratio(report, scenario, baseline)
            .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}"));
        let _ = writeln!(
            out,
            "| {what} | ≤ {goal:.2}× | {} | {per_round} | {fastest} | {} |",
            ratio.show(),
            verdict(ratio, goal)
        );
    }
    let met = |ok: bool| if ok { "met" } else { "**missed**" };
    let _ = writeln!(
        out,
        "| wasm module after wasm-opt | ≤ {} KiB | {:.1} KiB ({} bytes) | | empty filter {:.1} KiB | {} |",
        BUDGET_MODULE_BYTES / 1024,
        report.modules.meshwhy_bytes as f64 / 1024.0,
        report.modules.meshwhy_bytes,
        report.modules.empty_bytes as f64 / 1024.0,
        met(report.modules.meshwhy_bytes <= BUDGET_MODULE_BYTES)
    );
    if let Some(outage) = &report.outage {
        let growth = outage.second_half_growth_kib();
        let _ = writeln!(
            out,
            "| filter memory with the collector down for minutes | bounded by config, flat | Envoy RSS {:+.1} MiB over the second half of {:.0} s | | peak {:.1} MiB, {} requests | {} |",
            growth as f64 / 1024.0,
            outage.seconds,
            outage.peak_kib() as f64 / 1024.0,
            outage.requests,
            met(growth <= FLAT_GROWTH_KIB)
        );
    }
    if let Some(ingest) = &report.ingest {
        let _ = writeln!(
            out,
            "| collector ingest on one core | ≥ {:.0}k records/s | {:.0}k records per collector CPU-second | | {:.0}k records/s wall | {} |",
            BUDGET_INGEST_PER_CORE / 1000.0,
            ingest.records_per_cpu_second / 1000.0,
            ingest.records_per_second / 1000.0,
            met(ingest.records_per_cpu_second >= BUDGET_INGEST_PER_CORE)
        );
    }
    if let Some(logread) = &report.logread {
        logread_budget(out, logread);
    }
}

/// The log reader's budget rows (also the whole budget table of a `--logread` run, which
/// starts it when `out` has no table yet).
pub fn logread_budget(out: &mut String, logread: &LogreadResult) {
    if !out.contains("| budget (DESIGN.md) |") {
        let _ = writeln!(
            out,
            "\n| budget (DESIGN.md) | goal | lines per CPU-second, median [range] | | lines/s wall | verdict |\n|---|---|---|---|---|---|"
        );
    }
    let met = |ok: bool| if ok { "met" } else { "**missed**" };
    for (what, kind, goal) in [
        (
            "log reader, Istio's default text format, one core",
            "istio-text",
            BUDGET_TEXT_PER_CORE,
        ),
        (
            "log reader, salvage, one core",
            "salvage",
            BUDGET_SALVAGE_PER_CORE,
        ),
    ] {
        let Some(row) = logread.kinds.iter().find(|k| k.kind == kind) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {what} | ≥ {:.0}k lines/s | {} | | {:.0} | {} |",
            goal / 1000.0,
            row.lines_per_cpu_second.show(0),
            row.lines_per_second.median,
            // Per CPU-second, like the ingest budget: "on one core" is the work a core does,
            // whatever else the shared machine runs meanwhile.
            met(row.lines_per_cpu_second.median >= goal)
        );
    }
}

/// Where meshwhy's success-path cost goes: the floor, the property reads (priced by the
/// read-cost variants), the single-call CEL alternative, and meshwhy's own work on top.
fn decomposition(report: &Report) -> Option<String> {
    let samples = &report.samples;
    let floor = row(report, "empty-wasm")?;
    if cpu(samples, "empty-wasm").is_empty() {
        return None;
    }
    // Differences of medians; the interval comes from the ratio's (same resampling).
    let diff = |a: &str, b: &str| -> Option<(f64, String)> {
        let (a, b) = (cpu(samples, a), cpu(samples, b));
        let ratio = Ratio::of(&a, &b)?;
        let base = median(&b);
        let d = median(&a) - base;
        Some((
            d,
            format!(
                "{d:+.1} ({:+.1} to {:+.1})",
                (ratio.low - 1.0) * base,
                (ratio.high - 1.0) * base
            ),
        ))
    };
    let shown = |d: Option<(f64, String)>| d.map_or_else(|| "—".to_owned(), |(_, text)| text);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| where the success-path CPU goes (difference of medians, µs/request, 90% interval) | µs |"
    );
    let _ = writeln!(out, "|---|---|");
    let _ = writeln!(
        out,
        "| empty wasm − router: the V8 floor | {} |",
        shown(diff("empty-wasm", "router"))
    );
    for variant in &report.rows {
        let Some(rest) = variant.scenario.strip_prefix("empty-wasm+") else {
            continue;
        };
        let cost = diff(&variant.scenario, "empty-wasm");
        let per_value = |n: f64| cost.as_ref().map_or(0.0, |(d, _)| d / n);
        if let Some(n) = rest
            .strip_suffix("reads")
            .and_then(|n| n.parse::<f64>().ok())
        {
            let _ = writeln!(
                out,
                "| {} − empty wasm: {n:.0} property reads | {} ≈ {:.1} per read |",
                variant.scenario,
                shown(cost.clone()),
                per_value(n)
            );
        } else if let Some(n) = rest.strip_prefix("cel").and_then(|n| n.parse::<f64>().ok()) {
            let _ = writeln!(
                out,
                "| {} − empty wasm: the same {n:.0} values in one CEL evaluation | {} ≈ {:.1} per value |",
                variant.scenario,
                shown(cost.clone()),
                per_value(n)
            );
        }
    }
    let _ = writeln!(
        out,
        "| meshwhy − empty wasm | {} |",
        shown(diff("meshwhy", "empty-wasm"))
    );
    if row(report, "empty-wasm+5reads").is_some() {
        let _ = writeln!(
            out,
            "| meshwhy − empty-wasm+5reads: meshwhy's own work beyond its 5 reads | {} |",
            shown(diff("meshwhy", "empty-wasm+5reads"))
        );
    }
    let _ = writeln!(
        out,
        "| meshwhy-fail − router-fail: a full record per request | {} |",
        shown(diff("meshwhy-fail", "router-fail"))
    );
    let _ = writeln!(
        out,
        "| for scale: empty wasm CPU/request | {} |",
        floor.cpu_us_per_request.show(1)
    );
    Some(out)
}

fn ingest_table(out: &mut String, ingest: &IngestResult) {
    let _ = writeln!(out, "\n| collector ingest | value |\n|---|---|");
    let pinned = ingest.pinned_cpu.map_or("not pinned".to_owned(), |cpu| {
        format!("pinned to CPU {cpu}")
    });
    let mib = |kib: u64| kib as f64 / 1024.0;
    let rows = [
        ("collector process", pinned),
        (
            "records acknowledged",
            format!(
                "{} in {} pushes over {:.1} s ({} retried after RESOURCE_EXHAUSTED)",
                ingest.records, ingest.pushes, ingest.seconds, ingest.retried
            ),
        ),
        (
            "mean record on the wire",
            format!("{} bytes", ingest.record_bytes),
        ),
        (
            "records/s (wall)",
            format!("{:.0}", ingest.records_per_second),
        ),
        (
            "collector CPU",
            format!(
                "{:.2} s ({:.0}% of one core)",
                ingest.collector_cpu_seconds,
                100.0 * ingest.collector_cpu_seconds / ingest.seconds.max(1e-9)
            ),
        ),
        (
            "records per collector CPU-second",
            format!("{:.0}", ingest.records_per_cpu_second),
        ),
        (
            "collector RSS idle → after → peak",
            format!(
                "{:.1} → {:.1} → {:.1} MiB",
                mib(ingest.rss_idle_kib),
                mib(ingest.rss_after_kib),
                mib(ingest.rss_peak_kib)
            ),
        ),
        (
            "push → queryable under load, p50 / max",
            format!(
                "{:.1} / {:.1} ms",
                ingest.queryable_under_load_p50_ms, ingest.queryable_under_load_max_ms
            ),
        ),
        (
            "push → queryable idle",
            format!(
                "{:.1} ms (Push acknowledged after {:.1} ms; then ListRecords by request id, indexed, over {} stored records)",
                ingest.queryable_idle_ms, ingest.queryable_idle_push_ms, ingest.records_held
            ),
        ),
    ];
    for (what, value) in rows {
        let _ = writeln!(out, "| {what} | {value} |");
    }
}
