//! End-to-end: the filter inside a real Envoy 1.40 ships decision records over real gRPC to the
//! collector, and for every request the record (or counter) agrees with Envoy's own access log.

use meshwhy_e2e::{
    access_log::LogLine,
    scenario::{self, CASES, Lab, LabOptions, Send, UPSTREAM_CLUSTER, query},
    wait,
};
use meshwhy_proto::v1::StoredRecord;
use std::collections::HashMap;

/// Would the filter's default capture set record this outcome in full?
fn is_failure(line: &LogLine) -> bool {
    let flags = line.flag_names();
    let code = line.code();
    flags.iter().any(|flag| flag != "DI" && flag != "RFCF")
        || code == 0
        || code >= 500
        || code == 403
        || code == 429
        || line.grpc_status().is_some_and(|status| status != 0)
}

fn strip_query(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// Field-by-field comparison of one record with Envoy's line for the same request.
fn assert_agrees(record: &StoredRecord, line: &LogLine) -> anyhow::Result<()> {
    let r = record.record.as_ref().expect("record body");
    let id = &line.request_id;
    let f = LogLine::field;
    assert_eq!(r.request_id, line.request_id);
    assert_eq!(r.response_code, line.code(), "{id}: code");
    // The filter derives the start from the clock and the duration (cheaper than a read); it
    // lands on Envoy's logged start give or take the moment `on_log` runs after completion. The
    // slack is for a descheduled worker; the ut case (a 0.25 s timeout) fails it if the
    // duration is lost.
    let start_ms = i64::try_from(r.start_time_unix_nanos / 1_000_000)?;
    let logged_ms: i64 = line.start_ms.parse()?;
    assert!(
        (start_ms - logged_ms).abs() <= 150,
        "{id}: start {start_ms} ms, Envoy logged {logged_ms} ms"
    );
    // Same set; Envoy prints flags in its own table order (e.g. `URX,UF`), meshwhy in bit order.
    let sorted = |mut names: Vec<String>| {
        names.sort();
        names
    };
    assert_eq!(
        sorted(record.flag_names.clone()),
        sorted(line.flag_names()),
        "{id}: flags"
    );
    assert_eq!(
        r.response_code_details,
        f(&line.details),
        "{id}: code details"
    );
    assert_eq!(r.route_name, f(&line.route), "{id}: route");
    assert_eq!(r.cluster, f(&line.cluster), "{id}: cluster");
    assert_eq!(
        r.upstream_host,
        f(&line.upstream_host),
        "{id}: upstream host"
    );
    assert_eq!(r.attempt_count, line.attempts(), "{id}: attempts");
    // The access log writes this field with spaces as `_`; the property is the raw text.
    assert_eq!(
        r.transport_failure_reason.replace(' ', "_"),
        f(&line.transport_failure),
        "{id}: transport failure"
    );
    assert_eq!(r.method, line.method, "{id}: method");
    assert_eq!(r.authority, line.authority, "{id}: authority");
    assert_eq!(r.path, strip_query(&line.path), "{id}: path");
    assert_eq!(
        r.route_provenance,
        f(&line.route_provenance),
        "{id}: route provenance"
    );
    assert_eq!(
        r.cluster_provenance,
        f(&line.cluster_provenance),
        "{id}: cluster provenance"
    );
    assert_eq!(
        r.endpoint_tls_mode,
        f(&line.tls_mode),
        "{id}: endpoint tlsMode"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_agrees_with_envoys_access_log() -> anyhow::Result<()> {
    let lab = Lab::start(LabOptions::default()).await?;
    let url = lab.collector_url();

    let mut sent: Vec<(&scenario::Case, String)> = Vec::new();
    for case in CASES {
        for id in lab.send(case, "oracle").await? {
            sent.push((case, id));
        }
    }

    // Envoy's log is the oracle: wait until it has a line for every request sent.
    let lines: HashMap<String, LogLine> = wait::until("an access log line per request", || {
        let lines = lab.access_log().ok();
        let sent = &sent;
        async move {
            let by_id: HashMap<String, LogLine> = lines?
                .into_iter()
                .map(|line| (line.request_id.clone(), line))
                .collect();
            sent.iter()
                .all(|(_, id)| by_id.contains_key(id))
                .then_some(by_id)
        }
    })
    .await?;

    // The scenario itself must produce what each case is for (else the test proves nothing).
    for case in CASES {
        let case_lines: Vec<&LogLine> = sent
            .iter()
            .filter(|(c, _)| c.name == case.name)
            .map(|(_, id)| &lines[id])
            .collect();
        let produced = case_lines.iter().any(|line| {
            line.code() == case.expect_code
                && case
                    .expect_flags
                    .iter()
                    .all(|flag| line.flag_names().contains(&flag.to_string()))
        });
        assert!(
            produced,
            "case {} did not produce {} {:?}: {case_lines:?}",
            case.name, case.expect_code, case.expect_flags
        );
        if let Some(status) = case.expect_grpc_status {
            assert_eq!(
                case_lines[0].grpc_status(),
                Some(status),
                "{}: {:?}",
                case.name,
                case_lines[0]
            );
        }
        if case.send == Send::Get && case.name == "rbac" {
            assert!(
                case_lines[0].details.contains(scenario::RBAC_POLICY),
                "{:?}",
                case_lines[0]
            );
        }
    }

    // Every failure has a record that agrees with Envoy, field by field.
    for (case, id) in &sent {
        let line = &lines[id];
        if !is_failure(line) {
            continue;
        }
        let records = wait::until(
            &format!("the collector's record for {id} ({})", case.name),
            || {
                let url = url.clone();
                let id = id.clone();
                async move {
                    let records = query::records(&url, &id).await.ok()?;
                    (!records.is_empty()).then_some(records)
                }
            },
        )
        .await?;
        assert_eq!(records.len(), 1, "{id}: exactly one record");
        assert_agrees(&records[0], line)?;
        let proxy = records[0].proxy.as_ref().expect("proxy identity");
        assert_eq!(
            (
                proxy.pod.as_str(),
                proxy.namespace.as_str(),
                proxy.workload.as_str()
            ),
            ("client-7d9f-abcde", "e2e", "client")
        );
        assert_eq!(proxy.envoy_version, "1.40.0");
    }

    // Successes are counters: the oracle's successes per (route, cluster, code) are all counted.
    let mut expected: HashMap<(String, String, u32), u64> = HashMap::new();
    for (_, id) in &sent {
        let line = &lines[id];
        if !is_failure(line) {
            *expected
                .entry((
                    line.route.clone(),
                    LogLine::field(&line.cluster).to_owned(),
                    line.code(),
                ))
                .or_default() += 1;
        }
    }
    assert!(!expected.is_empty(), "the scenario must include successes");
    for ((route, cluster, code), count) in expected {
        let counted = wait::until(
            &format!("counter {route}/{cluster}/{code} = {count}"),
            || {
                let (url, route, cluster) = (url.clone(), route.clone(), cluster.clone());
                async move {
                    let counted = query::counted(&url, &route, &cluster, code).await.ok()?;
                    (counted >= count).then_some(counted)
                }
            },
        )
        .await?;
        assert_eq!(counted, count, "{route}/{cluster}/{code}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_successes_add_up_exactly() -> anyhow::Result<()> {
    const REQUESTS: usize = 10_000;
    const WORKERS: usize = 16;
    let lab = Lab::start(LabOptions::default()).await?;
    let url = lab.collector_url();
    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let client = lab.client.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            for i in (worker..REQUESTS).step_by(WORKERS) {
                let reply = client
                    .get(scenario::VHOST, "/ok", &format!("load-{i}"))
                    .await?;
                ok += u64::from(reply.status == 200);
            }
            anyhow::Ok(ok)
        }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += task.await??;
    }
    assert_eq!(ok, REQUESTS as u64, "every load request succeeds");

    let counted = wait::until("all successes counted", || {
        let url = url.clone();
        async move {
            let counted = query::counted(&url, "ok", UPSTREAM_CLUSTER, 200)
                .await
                .ok()?;
            (counted >= REQUESTS as u64).then_some(counted)
        }
    })
    .await?;
    assert_eq!(
        counted, REQUESTS as u64,
        "counters equal what was sent, exactly"
    );
    // Envoy writes its access log in buffered chunks: wait until it has caught up.
    let logged = wait::until("Envoy's access log to show every request", || {
        let logged = lab
            .access_log()
            .ok()
            .map(|lines| lines.iter().filter(|line| line.code() == 200).count());
        async move { logged.filter(|n| *n >= REQUESTS) }
    })
    .await?;
    assert_eq!(logged, REQUESTS, "Envoy's access log agrees");

    let proxies = query::proxies(&url).await?;
    assert!(!proxies.is_empty());
    for proxy in proxies {
        assert_eq!(proxy.missing_batches, 0, "no batch lost: {proxy:?}");
        assert_eq!(proxy.dropped_records, 0, "no record dropped: {proxy:?}");
    }
    // Successes are not recorded in full by default.
    assert!(query::all_records(&url, 10).await?.is_empty());
    Ok(())
}
