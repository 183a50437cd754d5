//! The demo (README command 1): starts the collector, a scripted upstream and a real Envoy with
//! the meshwhy filter, drives one request per classic failure, then shows what meshwhy recorded
//! using the real `meshwhy` CLI. Stops everything it started and exits 0.

use anyhow::{Context, Result, bail};
use meshwhy_e2e::{
    scenario::{CASES, Lab, LabOptions, query},
    wait,
};
use std::process::Command;

#[tokio::main]
async fn main() -> Result<()> {
    println!("meshwhy demo: starting the collector, an upstream and Envoy 1.40 with the filter…");
    let lab = Lab::start(LabOptions::default()).await?;
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

    let cli = std::env::current_exe()?
        .parent()
        .map(|dir| dir.join("meshwhy"))
        .context("locate the meshwhy CLI")?;
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
    println!("Done; stopping Envoy, the upstream and the collector.");
    drop(lab);
    Ok(())
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
