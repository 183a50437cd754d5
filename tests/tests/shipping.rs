//! End-to-end: how records travel — sampled successes, the early flush at the high-water mark,
//! and the buffer bound while the collector is away (drops are counted, never silent).

use meshwhy_e2e::{
    scenario::{self, Lab, LabOptions, UPSTREAM_CLUSTER, query},
    wait,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_successes_are_recorded_in_full() -> anyhow::Result<()> {
    let lab = Lab::start(LabOptions {
        filter_config: r#"{"collector_cluster": "meshwhy-collector", "flush_interval_ms": 100,
                          "success_sample_rate": 1.0}"#
            .to_owned(),
        ..LabOptions::default()
    })
    .await?;
    let url = lab.collector_url();
    assert_eq!(
        lab.client
            .get(scenario::VHOST, "/ok", "sampled-ok")
            .await?
            .status,
        200
    );
    let records = wait::until("the sampled success", || {
        let url = url.clone();
        async move {
            let records = query::records(&url, "sampled-ok").await.ok()?;
            (!records.is_empty()).then_some(records)
        }
    })
    .await?;
    let record = records[0].record.as_ref().expect("record");
    assert!(record.sampled_success, "{record:?}");
    assert_eq!(record.response_code, 200);
    assert_eq!(record.route_name, "ok");
    assert_eq!(record.route_provenance, scenario::VS_PROVENANCE);
    assert_eq!(record.cluster_provenance, scenario::DR_PROVENANCE);
    assert_eq!(record.cluster_subset, "v1");
    assert_eq!(record.endpoint_tls_mode, "istio");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_is_pushed_before_the_flush_interval() -> anyhow::Result<()> {
    // A one-hour flush interval: only the high-water mark can ship these records in time.
    let lab = Lab::start(LabOptions {
        filter_config: r#"{"collector_cluster": "meshwhy-collector", "flush_interval_ms": 60000, "provenance_ttl_ms": 3600000,
                          "max_batch_records": 10, "max_buffered_records": 100}"#
            .to_owned(),
        ..LabOptions::default()
    })
    .await?;
    let url = lab.collector_url();
    for i in 0..10 {
        assert_eq!(
            lab.client
                .get(scenario::VHOST, "/uf", &format!("hw-{i}"))
                .await?
                .status,
            503
        );
    }
    let stored = wait::until("a full batch shipped early", || {
        let url = url.clone();
        async move {
            let stored = query::all_records(&url, 100).await.ok()?;
            (stored.len() >= 10).then_some(stored.len())
        }
    })
    .await?;
    assert_eq!(stored, 10);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_beyond_the_buffer_drops_and_counts_but_counters_stay_exact() -> anyhow::Result<()>
{
    const FAILURES: usize = 40;
    const SUCCESSES: u64 = 25;
    const BUFFER: usize = 15;
    let mut lab = Lab::start(LabOptions {
        filter_config: format!(
            r#"{{"collector_cluster": "meshwhy-collector", "flush_interval_ms": 100,
                "max_batch_records": 5, "max_buffered_records": {BUFFER}}}"#
        ),
        collector_running: false,
        ..LabOptions::default()
    })
    .await?;
    for i in 0..FAILURES {
        assert_eq!(
            lab.client
                .get(scenario::VHOST, "/uf", &format!("flood-{i}"))
                .await?
                .status,
            503
        );
    }
    for i in 0..SUCCESSES {
        assert_eq!(
            lab.client
                .get(scenario::VHOST, "/ok", &format!("flood-ok-{i}"))
                .await?
                .status,
            200
        );
    }
    lab.start_collector().await?;
    let url = lab.collector_url();
    // Everything the filter kept arrives, and it reports what it could not keep.
    let (stored, dropped) = wait::until("the kept records and the drop count", || {
        let url = url.clone();
        async move {
            let stored = query::all_records(&url, 1000).await.ok()?.len();
            let dropped: u64 = query::proxies(&url)
                .await
                .ok()?
                .iter()
                .map(|p| p.dropped_records)
                .sum();
            (stored as u64 + dropped >= FAILURES as u64).then_some((stored, dropped))
        }
    })
    .await?;
    assert_eq!(
        stored as u64 + dropped,
        FAILURES as u64,
        "every failure is stored or counted as dropped"
    );
    assert!(stored <= BUFFER, "the buffer bound holds: {stored} stored");
    assert!(
        dropped > 0,
        "the flood exceeded the buffer, so drops must be reported"
    );
    let counted = wait::until("all successes counted", || {
        let url = url.clone();
        async move {
            let counted = query::counted(&url, "ok", UPSTREAM_CLUSTER, 200)
                .await
                .ok()?;
            (counted >= SUCCESSES).then_some(counted)
        }
    })
    .await?;
    assert_eq!(counted, SUCCESSES, "counters are never dropped");
    Ok(())
}
