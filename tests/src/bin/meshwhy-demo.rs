//! The demo (README command 1). Part 1, the pipeline: starts the collector, a scripted upstream
//! and a real Envoy with the meshwhy filter, drives one request per classic failure, then shows
//! what meshwhy recorded using the real `meshwhy` CLI — and, with no collector, what
//! `meshwhy explain --input-file` makes of the same requests in Envoy's own access log, written in
//! an old Istio format (1.3–1.7: no code details, no attempts). Part 2, the mesh lab: Istio-shaped
//! sidecars (one Envoy per pod, mTLS between them) reproduce the classic Istio failures, one
//! namespace each, then `meshwhy explain` explains the mesh; then the collector restarts on the
//! same data directory and still answers: both parts run on the durable store (one SQLite file
//! each, in a scratch directory). Stops everything it started and exits 0.

use anyhow::{Context, Result, bail};
use meshwhy_collector::{
    CollectorConfig,
    config::{StoreConfig, StoreKind},
};
use meshwhy_e2e::{
    envoy::Scratch,
    eras,
    lab::scenarios::{self, Outcome},
    scenario::{CASES, Lab, LabOptions, query},
    wait,
};
use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

#[tokio::main]
async fn main() -> Result<()> {
    println!("meshwhy demo: starting the collector, an upstream and Envoy 1.40 with the filter…");
    // Envoy also writes its access log in Istio 1.3–1.7's default format, for part 1's last step.
    let old_era: Vec<eras::Era> = eras::all()
        .into_iter()
        .filter(|era| era.name == OLD_ERA)
        .collect();
    // The collector's durable store (its default as a binary), in a directory removed at the end.
    let data = Scratch::new("demo-data")?;
    let lab = Lab::start(LabOptions {
        extra_access_logs: eras::access_loggers(&old_era),
        collector: durable(&data.path.join("pipeline")),
        ..LabOptions::default()
    })
    .await?;
    let url = lab.collector_url();
    println!("  collector  {url}");
    println!(
        "  envoy      listener {} (admin {})",
        lab.client_addr(),
        lab.envoy.admin
    );
    println!();
    println!("Sending one request per outcome:");
    let mut failures = Vec::new();
    for case in CASES {
        let ids = lab.send(case, "demo").await?;
        println!(
            "  {:<10} GET {:<22} → {}",
            case.name,
            case.path,
            expectation(case)
        );
        if case.is_failure() {
            failures.extend(ids);
        }
    }
    wait::until("the collector to hold the failures", || {
        let url = url.clone();
        let failures = failures.clone();
        async move {
            let stored = query::all_records(&url, 1000).await.ok()?;
            let have = |id: &String| {
                stored
                    .iter()
                    .any(|r| r.record.as_ref().is_some_and(|r| &r.request_id == id))
            };
            // The circuit-breaker case sends several requests; only the overflowing ones fail.
            failures
                .iter()
                .filter(|id| !id.starts_with("demo-uo"))
                .all(have)
                .then_some(())
        }
    })
    .await?;

    let cli = cli_path()?;
    println!();
    println!("$ meshwhy records --collector {url}");
    let status = Command::new(&cli)
        .args(["records", "--collector", &url])
        .status()
        .with_context(|| format!("run {}", cli.display()))?;
    if !status.success() {
        bail!("meshwhy records failed: {status}");
    }
    println!();
    println!("$ meshwhy proxies --collector {url}");
    let status = Command::new(&cli)
        .args(["proxies", "--collector", &url])
        .status()?;
    if !status.success() {
        bail!("meshwhy proxies failed: {status}");
    }
    let ok = query::counted(&url, "ok", meshwhy_e2e::scenario::UPSTREAM_CLUSTER, 200).await?;
    println!();
    println!("Successes are counted, not recorded: route ok → 200 counted {ok} time(s).");
    explain_access_log(&cli, &lab, &old_era).await?;
    println!("Stopping Envoy, the upstream and the collector.");
    drop(lab);

    mesh_lab(&cli, &durable(&data.path.join("lab"))).await?;
    println!();
    println!("Done; everything the demo started is stopped.");
    Ok(())
}

/// A collector on the SQLite store in `dir`.
fn durable(dir: &Path) -> CollectorConfig {
    CollectorConfig {
        store: StoreConfig {
            kind: StoreKind::Sqlite,
            data_dir: dir.to_path_buf(),
            ..StoreConfig::default()
        },
        ..CollectorConfig::default()
    }
}

/// The Istio format era Envoy's extra access log is written in.
const OLD_ERA: &str = "istio-1.3";

/// The same requests as Envoy logged them, explained from the log alone (no collector): what a
/// team without the filter gets from `kubectl logs … | meshwhy explain --input-file -`.
async fn explain_access_log(cli: &Path, lab: &Lab, old_era: &[eras::Era]) -> Result<()> {
    let era = old_era.first().context("the demo's access-log era")?;
    let log = era.path(&lab.envoy.access_log);
    // Envoy writes its access logs in the background: wait for the last request's line.
    wait::until("Envoy's access log to hold the requests", || {
        let log = log.clone();
        async move {
            let text = std::fs::read_to_string(&log).ok()?;
            (text.lines().count() >= CASES.len()).then_some(())
        }
    })
    .await?;
    println!();
    println!(
        "The same requests in Envoy's own access log, in {}'s default format, explained with no collector:",
        era.releases
    );
    println!(
        "$ meshwhy explain --input-file access.log --limit 3   # {} lines",
        std::fs::read_to_string(&log)?.lines().count()
    );
    let status = Command::new(cli)
        .args(["explain", "--input-file"])
        .arg(&log)
        .args(["--limit", "3"])
        .status()?;
    if !status.success() {
        bail!("meshwhy explain --input-file failed: {status}");
    }
    Ok(())
}

/// The `meshwhy` CLI, built next to this binary (`cargo build -p meshwhy-collector --bins`).
fn cli_path() -> Result<PathBuf> {
    std::env::current_exe()?
        .parent()
        .map(|dir| dir.join("meshwhy"))
        .context("locate the meshwhy CLI")
}

/// Part 2: every lab scenario against one fresh collector, then `meshwhy explain`.
async fn mesh_lab(cli: &Path, config: &CollectorConfig) -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let collector = meshwhy_collector::spawn(listener, config.clone())
        .await
        .context("start the mesh lab's collector")?;
    let url = format!("http://{}", collector.addr);
    println!();
    println!("The mesh lab: Istio-shaped sidecars (one Envoy 1.40 per pod, SPIFFE mTLS between");
    println!("them), each scenario in its own namespace, all reporting to {url}");
    let started = Instant::now();
    for info in scenarios::ALL {
        print!(
            "  {:>2}. {:<20} {:<11} {} … ",
            info.number, info.key, info.namespace, info.title
        );
        std::io::stdout().flush()?;
        let began = Instant::now();
        let outcome = scenarios::run(info.key, collector.addr)
            .await
            .with_context(|| format!("scenario {}", info.key))?;
        println!("{:.1} s", began.elapsed().as_secs_f64());
        for line in summary(&outcome) {
            println!("        {line}");
        }
    }
    println!(
        "  all scenarios ran in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    println!();
    let explain = Command::new(cli)
        .args(["explain", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    let args: Vec<&str> = if explain {
        vec!["explain", "--limit", "30", "--collector", &url]
    } else {
        vec!["records", "--collector", &url]
    };
    println!("$ meshwhy {}", args.join(" "));
    let status = Command::new(cli)
        .args(&args)
        .status()
        .with_context(|| format!("run {}", cli.display()))?;
    if !status.success() {
        bail!("meshwhy {} failed: {status}", args[0]);
    }
    restarted(cli, collector, config).await
}

/// Stops the lab's collector and starts a new one on the same data directory: what it knew
/// before, it still knows (a pod restart, an OOM kill or a node drain forgets nothing).
async fn restarted(
    cli: &Path,
    collector: meshwhy_collector::CollectorHandle,
    config: &CollectorConfig,
) -> Result<()> {
    collector
        .shutdown()
        .await
        .context("stop the lab's collector")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let collector = meshwhy_collector::spawn(listener, config.clone())
        .await
        .context("restart the collector on the same data directory")?;
    let url = collector.url();
    println!();
    println!(
        "The collector restarted on the same data directory ({}): history survives.",
        config.store.data_dir.join("meshwhy.db").display()
    );
    let args = ["top", "--since", "0s", "--limit", "5", "--collector", &url];
    println!("$ meshwhy {}", args.join(" "));
    let status = Command::new(cli).args(args).status()?;
    if !status.success() {
        bail!("meshwhy top after the restart failed: {status}");
    }
    collector
        .shutdown()
        .await
        .context("stop the restarted collector")?;
    Ok(())
}

/// One line per probe: what the app got and what each sidecar recorded; for the canary, the
/// split per client replica from meshwhy's success counters.
fn summary(outcome: &Outcome) -> Vec<String> {
    let mut lines = Vec::new();
    for probe in outcome.probes.iter().filter(|p| p.label != "served") {
        let reply = match &probe.reply {
            Ok(status) => format!("app got {status}"),
            Err(error) => format!("app got no response ({error})"),
        };
        let succeeded = matches!(probe.reply, Ok(status) if status < 400);
        let side = |records: &[meshwhy_proto::v1::StoredRecord]| -> String {
            match records
                .first()
                .and_then(|r| r.record.as_ref().map(|x| (r, x)))
            {
                None if succeeded => "no failure recorded".to_owned(),
                None => "nothing".to_owned(),
                Some((_, record)) if record.sampled_success => {
                    let tls_mode = if record.endpoint_tls_mode.is_empty() {
                        "no tlsMode"
                    } else {
                        "tlsMode istio"
                    };
                    let tls = if record.upstream_tls_version.is_empty() {
                        "plaintext"
                    } else {
                        "mTLS"
                    };
                    format!("sampled {} ({tls_mode}, {tls})", record.response_code)
                }
                Some((stored, record)) => {
                    let flags = if stored.flag_names.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", stored.flag_names.join(","))
                    };
                    let times = if records.len() > 1 {
                        format!(" ×{}", records.len())
                    } else {
                        String::new()
                    };
                    format!(
                        "{}{flags} {}{times}",
                        record.response_code, record.response_code_details
                    )
                }
            }
        };
        lines.push(format!(
            "{:<13} {reply}; client sidecar: {}; server sidecar: {}",
            probe.label,
            side(&probe.hop.client),
            side(&probe.hop.server)
        ));
    }
    for line in &outcome.server_listener_log {
        lines.push(format!(
            "server listener log (invisible to an HTTP filter): {} {}",
            line.flags, line.details
        ));
    }
    for replica in &outcome.replicas {
        let clusters: Vec<String> = replica
            .by_cluster
            .iter()
            .map(|(cluster, count)| {
                let subset = cluster.split('|').nth(2).unwrap_or("");
                let subset = if subset.is_empty() {
                    "no subset"
                } else {
                    subset
                };
                format!("{subset} {count}")
            })
            .collect();
        lines.push(format!(
            "{:<32} {:<5} route {:<15} {}",
            replica.pod,
            if replica.stale { "STALE" } else { "" },
            replica.routes.join(","),
            clusters.join(", ")
        ));
    }
    lines
}

fn expectation(case: &meshwhy_e2e::scenario::Case) -> String {
    let grpc = match case.expect_grpc_status {
        Some(status) => format!(" grpc-status {status}"),
        None => String::new(),
    };
    let code = if case.expect_code == 0 {
        "no response".to_owned()
    } else {
        case.expect_code.to_string()
    };
    if case.expect_flags.is_empty() {
        format!("{code}{grpc}")
    } else {
        format!("{code} {}{grpc}", case.expect_flags.join(","))
    }
}
