//! meshwhy's benchmarks (BENCHMARKS.md shows and explains the results). The Envoy scenarios
//! (router only, an empty wasm filter and its read-cost variants, meshwhy on success and on
//! failure traffic, Envoy's native gRPC access logger, a JSON file log) run side by side, one
//! real Envoy 1.40 each (`--concurrency 1`, loopback, pinned to one CPU), interleaved in short
//! bursts over many rounds so the machine's noise hits all alike; Envoy's CPU per request comes
//! from /proc. Then the collector's ingest rate on one core, and the access-log reader's lines
//! per second on one thread (`--logread` runs only that one). Results go to
//! `target/bench/results.{json,md}` (`logread.{json,md}` for `--logread`).
//!
//! Processes are the e2e harness's (`meshwhy-e2e`): Envoy and the collector are killed when
//! their handles drop, also on error.

pub mod als;
pub mod collector_bench;
pub mod envoy_bench;
pub mod loadgen;
pub mod logread_bench;
pub mod options;
pub mod outage;
pub mod pin;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod upstream;

use anyhow::{Context, Result, bail, ensure};
use meshwhy_e2e::paths;
use options::Options;
use std::{path::Path, time::Duration};

/// Runs what `options` asks for and writes the report.
pub async fn run(options: Options) -> Result<()> {
    if options.logread {
        return logread_only(&options).await;
    }
    let meshwhy_wasm = paths::filter_wasm()?;
    let empty_wasm = match &options.empty_wasm {
        Some(path) => path.clone(),
        None => paths::repo_root().join("target/meshwhy_empty_filter.wasm"),
    };
    ensure!(
        empty_wasm.is_file(),
        "empty filter module not found at {}: build it with `cargo make wasm-empty` (or pass --empty-wasm)",
        empty_wasm.display()
    );
    let modules = report::Modules {
        meshwhy_bytes: file_size(&meshwhy_wasm)?,
        empty_bytes: file_size(&empty_wasm)?,
    };

    // Before pinning: once pinned, this process sees one CPU.
    let machine = machine();
    // Pin before anything starts: this process's threads (load generator, upstreams, sinks)
    // to one CPU, each measured process to the other.
    let cpus = if options.no_pin { None } else { pin::plan() };
    if let Some(cpus) = cpus {
        pin::pin(std::process::id(), cpus.load)?;
    }
    if options.boost {
        pin::boost(std::process::id())?;
    }

    let mut scenarios = scenario::all(&options.read_variants.0, &options.cel_variants.0);
    if !options.only.is_empty() {
        scenarios.retain(|s| options.only.contains(&s.name));
        ensure!(
            !scenarios.is_empty(),
            "--only {:?} matches no scenario",
            options.only
        );
    }
    let (samples, finishes) = if options.skip_envoy {
        (Vec::new(), Vec::new())
    } else {
        let placement = envoy_bench::Placement {
            cpu: cpus.map(|cpus| cpus.measured),
            boost: options.boost,
        };
        envoy_rounds(&options, &scenarios, &meshwhy_wasm, &empty_wasm, placement).await?
    };

    let outage = if options.skip_outage || options.skip_envoy {
        None
    } else {
        let load = outage::OutageLoad {
            duration: Duration::from_secs_f64(options.outage_secs),
            rate: options.outage_rate,
            samples: 24,
            placement: envoy_bench::Placement {
                cpu: cpus.map(|cpus| cpus.measured),
                boost: options.boost,
            },
        };
        eprintln!(
            "collector outage: {} s of failure traffic at {} req/s, collector unreachable…",
            options.outage_secs, options.outage_rate
        );
        let result = outage::run(&load, &meshwhy_wasm.display().to_string()).await?;
        eprintln!(
            "  Envoy RSS {:.1} MiB peak, {:+.1} MiB over the second half",
            result.peak_kib() as f64 / 1024.0,
            result.second_half_growth_kib() as f64 / 1024.0
        );
        Some(result)
    };

    let ingest = if options.skip_ingest {
        None
    } else {
        let load = collector_bench::IngestLoad {
            proxies: options.ingest_proxies,
            batch_records: options.ingest_batch,
            in_flight: options.ingest_in_flight,
            duration: Duration::from_secs_f64(options.ingest_secs),
            binary: options
                .collector_bin
                .clone()
                .unwrap_or_else(collector_bench::default_binary),
            pin_cpu: cpus.map(|cpus| cpus.measured),
            boost: options.boost,
            max_records: meshwhy_collector::config::DEFAULT_MAX_RECORDS,
        };
        eprintln!(
            "collector ingest: {} s, {} proxies, {}-record batches…",
            options.ingest_secs, load.proxies, load.batch_records
        );
        let result = collector_bench::run(&load).await?;
        eprintln!(
            "  {:.0} records/s, {:.0} records per CPU-second",
            result.records_per_second, result.records_per_cpu_second
        );
        Some(result)
    };

    let logread = if options.skip_logread {
        None
    } else {
        Some(run_logread(&options, cpus.map(|cpus| cpus.load)).await?)
    };

    let report = report::Report {
        date: utc_now(),
        machine,
        settings: settings(&options, cpus),
        rounds: if options.skip_envoy {
            0
        } else {
            options.rounds
        },
        rows: report::rows(&scenarios, &samples, &finishes),
        samples,
        finishes,
        modules,
        outage,
        ingest,
        logread,
    };
    let markdown = report::markdown(&report);
    println!("{markdown}");
    let out = if options.out.is_absolute() {
        options.out.clone()
    } else {
        paths::repo_root().join(&options.out)
    };
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    let stem = if options.smoke { "smoke" } else { "results" };
    std::fs::write(out.join(format!("{stem}.md")), &markdown)?;
    std::fs::write(
        out.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&report)?,
    )?;
    eprintln!(
        "wrote {}",
        out.join(format!("{stem}.{{md,json}}")).display()
    );
    if options.smoke {
        smoke_check(&scenarios, &report)?;
        eprintln!("smoke: every scenario ran, answered and shipped");
    }
    Ok(())
}

/// The log reader bench on this process's thread (pinned to `cpu` when the process is).
async fn run_logread(
    options: &Options,
    cpu: Option<usize>,
) -> Result<logread_bench::LogreadResult> {
    let load = logread_bench::LogreadLoad {
        lines: options.logread_lines,
        rounds: options.logread_rounds,
        pinned_cpu: cpu,
    };
    eprintln!(
        "log reader: {} rounds of {} lines per input kind, one thread…",
        load.rounds, load.lines
    );
    logread_bench::run(&load).await
}

/// `--logread`: only the log reader, with this process pinned to the measured CPU; writes
/// `logread.{md,json}` (`smoke-logread.*` with `--smoke`).
async fn logread_only(options: &Options) -> Result<()> {
    let machine = machine();
    let cpu = if options.no_pin {
        None
    } else {
        pin::plan().map(|cpus| cpus.measured)
    };
    if let Some(cpu) = cpu {
        pin::pin(std::process::id(), cpu)?;
    }
    if options.boost {
        pin::boost(std::process::id())?;
    }
    let result = run_logread(options, cpu).await?;
    let mut markdown = format!("Measured {} on {machine}.\n", utc_now());
    report::logread_budget(&mut markdown, &result);
    logread_bench::markdown(&mut markdown, &result);
    println!("{markdown}");
    let out = if options.out.is_absolute() {
        options.out.clone()
    } else {
        paths::repo_root().join(&options.out)
    };
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    let stem = if options.smoke {
        "smoke-logread"
    } else {
        "logread"
    };
    std::fs::write(out.join(format!("{stem}.md")), &markdown)?;
    std::fs::write(
        out.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&result)?,
    )?;
    eprintln!(
        "wrote {}",
        out.join(format!("{stem}.{{md,json}}")).display()
    );
    if options.smoke {
        logread_bench::smoke_check(&result)?;
        eprintln!("smoke: the log reader read every input kind");
    }
    Ok(())
}

/// Starts every scenario, then runs the rounds: one burst per scenario per round, in an order
/// rotated each round so no scenario always follows the same neighbour.
async fn envoy_rounds(
    options: &Options,
    scenarios: &[scenario::Scenario],
    meshwhy_wasm: &Path,
    empty_wasm: &Path,
    placement: envoy_bench::Placement,
) -> Result<(Vec<envoy_bench::Sample>, Vec<envoy_bench::Finish>)> {
    let load = envoy_bench::Load {
        connections: options.connections,
        warmup_requests: options.warmup_requests,
        requests: options.requests,
        time_limit: Duration::from_secs_f64(options.time_limit_secs),
        rate: options.rate,
        rate_duration: Duration::from_secs_f64(options.rate_secs),
        rate_connections: options.rate_connections,
        ship_patience: Duration::from_secs(10),
        placement,
    };
    let modules = envoy_bench::Modules {
        meshwhy: meshwhy_wasm.display().to_string(),
        empty: empty_wasm.display().to_string(),
    };
    let mut running = Vec::new();
    for scenario in scenarios {
        eprintln!("starting and warming up {}…", scenario.name);
        let started = envoy_bench::Running::start(scenario, &modules, &load)
            .await
            .with_context(|| format!("scenario {}", scenario.name))?;
        running.push(started);
    }
    let mut samples = Vec::new();
    for round in 0..options.rounds {
        let mut order: Vec<usize> = (0..running.len()).collect();
        order.rotate_left(round % running.len().max(1));
        for index in order {
            let name = &scenarios[index].name;
            let sample = running[index]
                .measure(round, &load)
                .await
                .with_context(|| format!("round {}, scenario {name}", round + 1))?;
            eprintln!(
                "round {}/{} {:<20} {:>7.1} µs/req {:>8.0} req/s  p50 {:>5.0} µs  p99 {:>6.0} µs  errors {}",
                round + 1,
                options.rounds,
                sample.scenario,
                sample.cpu_us_per_request,
                sample.requests_per_second,
                sample.p50_us,
                sample.p99_us,
                sample.errors
            );
            samples.push(sample);
        }
    }
    let mut finishes = Vec::new();
    for scenario in running {
        finishes.push(scenario.finish(&load).await?);
    }
    Ok((samples, finishes))
}

/// The smoke iteration's only assertions: every scenario produced numbers, every request got
/// the expected answer, everything shipped arrived. No timing is checked.
fn smoke_check(scenarios: &[scenario::Scenario], report: &report::Report) -> Result<()> {
    for scenario in scenarios {
        let Some(sample) = report.samples.iter().find(|s| s.scenario == scenario.name) else {
            bail!("smoke: scenario {} produced no sample", scenario.name);
        };
        let Some(finish) = report.finishes.iter().find(|f| f.scenario == scenario.name) else {
            bail!("smoke: scenario {} did not finish", scenario.name);
        };
        ensure!(
            sample.requests > 0,
            "smoke: {} completed no request",
            scenario.name
        );
        let errors = sample.errors + finish.warmup_errors;
        ensure!(
            errors == 0,
            "smoke: {} had {errors} failed requests",
            scenario.name
        );
        ensure!(
            sample.cpu_us_per_request.is_finite() && sample.p99_us.is_finite(),
            "smoke: {} produced no numbers",
            scenario.name
        );
        if let Some(shipped) = &finish.shipped {
            ensure!(
                shipped.arrived + shipped.dropped == shipped.expected,
                "smoke: {} shipped {} {} (+{} dropped) for {} requests",
                scenario.name,
                shipped.arrived,
                shipped.unit,
                shipped.dropped,
                shipped.expected
            );
        }
    }
    if let Some(outage) = &report.outage {
        ensure!(
            outage.requests > 0 && outage.errors == 0,
            "smoke: the outage run answered {} requests with {} errors",
            outage.requests,
            outage.errors
        );
        ensure!(
            !outage.last_warning.is_empty(),
            "smoke: in the outage run the filter never reported a failed push"
        );
    }
    if let Some(ingest) = &report.ingest {
        ensure!(
            ingest.records > 0,
            "smoke: the collector acknowledged no record"
        );
    }
    if let Some(logread) = &report.logread {
        logread_bench::smoke_check(logread)?;
    }
    Ok(())
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("stat {}", path.display()))?
        .len())
}

/// `nproc` and the CPU model, as BENCHMARKS.md reports the machine.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cpus} CPUs ({model})")
}

fn settings(options: &Options, cpus: Option<pin::Cpus>) -> String {
    let pinning = match cpus {
        Some(cpus) => format!(
            "Envoy and the collector pinned to CPU {}, load generator to CPU {}",
            cpus.measured, cpus.load
        ),
        None => "nothing pinned".to_owned(),
    };
    let boost = if options.boost {
        format!("; all at nice {}", pin::BOOST_NICE)
    } else {
        String::new()
    };
    format!(
        "per round and scenario {} measured requests over {} connections, then {} req/s for {} s over {} connections for latency; {} warm-up requests per scenario first; {pinning}{boost}",
        options.requests,
        options.connections,
        options.rate,
        options.rate_secs,
        options.rate_connections,
        options.warmup_requests,
    )
}

/// Now as `YYYY-MM-DD HH:MM UTC` (no date crate for one line).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_look_like_dates() {
        let now = super::utc_now();
        assert_eq!(now.len(), "2025-01-01 00:00 UTC".len(), "{now}");
        assert!(now.starts_with("20"));
    }
}
