//! End-to-end: bad input and outages never hurt traffic and never lose acknowledged data.
//! A bad plugin config is reported once and traffic flows; an unreachable collector costs
//! nothing but delay: batches are retried and arrive once it is back.

use meshwhy_e2e::{
    scenario::{self, Lab, LabOptions, UPSTREAM_CLUSTER, query},
    wait,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugin_config_is_reported_and_traffic_flows() -> anyhow::Result<()> {
    let lab = Lab::start(LabOptions {
        // A typo'd key: the filter must name it, run disabled, and leave Envoy serving.
        filter_config: r#"{"collector_cluster": "meshwhy-collector", "flush_interval": 100}"#
            .to_owned(),
        ..LabOptions::default()
    })
    .await?;
    assert_eq!(
        lab.client
            .get(scenario::VHOST, "/ok", "badcfg-ok")
            .await?
            .status,
        200
    );
    assert_eq!(
        lab.client
            .get(scenario::VHOST, "/uf", "badcfg-uf")
            .await?
            .status,
        503
    );
    let line = wait::until("the config error in Envoy's log", || {
        let log = lab.envoy.log_text();
        async move {
            log.lines()
                .find(|line| line.contains("invalid plugin configuration"))
                .map(str::to_owned)
        }
    })
    .await?;
    assert!(
        line.contains("flush_interval"),
        "the error names the bad key: {line}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_collector_cluster_is_reported_and_traffic_flows() -> anyhow::Result<()> {
    let lab = Lab::start(LabOptions {
        filter_config: r#"{"collector_cluster": "no-such-cluster", "flush_interval_ms": 100}"#
            .to_owned(),
        ..LabOptions::default()
    })
    .await?;
    assert_eq!(
        lab.client
            .get(scenario::VHOST, "/uf", "nocluster-uf")
            .await?
            .status,
        503
    );
    assert_eq!(
        lab.client
            .get(scenario::VHOST, "/ok", "nocluster-ok")
            .await?
            .status,
        200
    );
    let line = wait::until("the unknown-cluster warning in Envoy's log", || {
        let log = lab.envoy.log_text();
        async move {
            log.lines()
                .find(|line| line.contains("no-such-cluster"))
                .map(str::to_owned)
        }
    })
    .await?;
    assert!(line.contains("meshwhy"), "{line}");
    // Traffic still flows after the filter has failed to ship.
    assert_eq!(
        lab.client
            .get(scenario::VHOST, "/ok", "nocluster-ok-2")
            .await?
            .status,
        200
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_made_while_the_collector_is_down_arrive_when_it_is_back() -> anyhow::Result<()> {
    let mut lab = Lab::start(LabOptions {
        collector_running: false,
        ..LabOptions::default()
    })
    .await?;
    // Traffic during the outage: failures to record and successes to count.
    for i in 0..5 {
        assert_eq!(
            lab.client
                .get(scenario::VHOST, "/uf", &format!("outage-uf-{i}"))
                .await?
                .status,
            503
        );
        assert_eq!(
            lab.client
                .get(scenario::VHOST, "/ok", &format!("outage-ok-{i}"))
                .await?
                .status,
            200
        );
    }
    // The filter has tried and failed to ship: Envoy counts the failed connections.
    wait::until("a failed push to the absent collector", || {
        let envoy = &lab.envoy;
        async move {
            let failed = envoy
                .stat("cluster.meshwhy-collector.upstream_cx_connect_fail")
                .await;
            failed
                .ok()
                .flatten()
                .filter(|failed| *failed >= 2)
                .map(|_| ())
        }
    })
    .await?;
    lab.start_collector().await?;
    let url = lab.collector_url();
    for i in 0..5 {
        let id = format!("outage-uf-{i}");
        let records = wait::until(&format!("record {id} after the outage"), || {
            let (url, id) = (url.clone(), id.clone());
            async move {
                let records = query::records(&url, &id).await.ok()?;
                (!records.is_empty()).then_some(records)
            }
        })
        .await?;
        assert_eq!(records.len(), 1, "{id} stored once");
    }
    let counted = wait::until("the outage's successes counted", || {
        let url = url.clone();
        async move {
            let counted = query::counted(&url, "ok", UPSTREAM_CLUSTER, 200)
                .await
                .ok()?;
            (counted >= 5).then_some(counted)
        }
    })
    .await?;
    assert_eq!(counted, 5, "counters survive failed pushes, exactly once");
    for proxy in query::proxies(&url).await? {
        assert_eq!(
            proxy.dropped_records, 0,
            "nothing dropped within the bound: {proxy:?}"
        );
    }
    Ok(())
}

#[test]
fn readme_shows_the_snippets_the_tests_load() {
    let readme = std::fs::read_to_string(meshwhy_e2e::paths::repo_root().join("README.md"))
        .expect("README.md");
    for (name, snippet) in [
        (
            "deploy/envoy/meshwhy-http-filter.yaml",
            scenario::HTTP_FILTER_SNIPPET,
        ),
        (
            "deploy/envoy/meshwhy-collector-cluster.yaml",
            scenario::COLLECTOR_CLUSTER_SNIPPET,
        ),
    ] {
        assert!(
            readme.contains(snippet.trim_end()),
            "README.md must show {name} verbatim (the e2e tests load exactly that file)"
        );
    }
}
