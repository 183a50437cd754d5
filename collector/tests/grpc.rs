//! The collector over a real port-0 listener with real tonic clients: ingest, idempotency, loss
//! accounting, validation and back-pressure, as a filter and the CLI see them.

use std::future::Future;
use std::time::Duration;

mod support;
use support::GateStore;

use meshwhy_collector::store::MemoryStore;
use meshwhy_collector::{CollectorConfig, CollectorHandle};
use meshwhy_proto::v1::ingest_client::IngestClient;
use meshwhy_proto::v1::query_client::QueryClient;
use meshwhy_proto::v1::{
    Counter, DecisionRecord, Direction, ListCountersRequest, ListProxiesRequest,
    ListRecordsRequest, ProxyIdentity, PushRequest,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::Code;
use tonic::transport::Channel;

/// Upper bound for anything a test waits on: a hang fails the test instead of the CI job.
const PATIENCE: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {PATIENCE:?}"))
}

async fn start(config: CollectorConfig) -> CollectorHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    meshwhy_collector::spawn(listener, config).await.unwrap()
}

async fn clients(url: String) -> (IngestClient<Channel>, QueryClient<Channel>) {
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    (
        IngestClient::new(channel.clone()),
        QueryClient::new(channel),
    )
}

fn proxy(instance: &str) -> ProxyIdentity {
    ProxyIdentity {
        instance_id: instance.into(),
        pod: "productpage-v1-7d9c".into(),
        namespace: "shop".into(),
        workload: "productpage-v1".into(),
        envoy_version: "1.40.0".into(),
        ..Default::default()
    }
}

fn failure(request_id: &str) -> DecisionRecord {
    DecisionRecord {
        start_time_unix_nanos: 1_700_000_000_000_000_000,
        request_id: request_id.into(),
        direction: Direction::Outbound as i32,
        method: "GET".into(),
        authority: "reviews:9080".into(),
        path: "/reviews/0".into(),
        response_code: 503,
        response_flags: (1 << 5) | (1 << 15),
        response_code_details: "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}".into(),
        route_name: "default".into(),
        cluster: "outbound|9080||reviews.shop.svc.cluster.local".into(),
        upstream_host: "10.0.0.9:9080".into(),
        attempt_count: 3,
        ..Default::default()
    }
}

fn push(instance: &str, sequence: u64, records: Vec<DecisionRecord>) -> PushRequest {
    PushRequest {
        proxy: Some(proxy(instance)),
        sequence,
        records,
        counters: vec![Counter {
            route_name: "default".into(),
            cluster: "outbound|9080||reviews.shop.svc.cluster.local".into(),
            response_code: 200,
            count: 5,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_pushed_record_is_listed_with_flag_names() {
    let collector = start(CollectorConfig::default()).await;
    let (mut ingest, mut query) = clients(collector.url()).await;

    let response = ingest
        .push(push("vm-1", 1, vec![failure("req-1")]))
        .await
        .unwrap();
    assert!(!response.into_inner().duplicate);

    let page = query
        .list_records(ListRecordsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.truncated, 0);
    let stored = &page.records[0];
    assert_eq!(stored.flag_names, ["UF", "URX"]);
    assert_eq!(stored.record.as_ref().unwrap(), &failure("req-1"));
    assert_eq!(stored.proxy.as_ref().unwrap().pod, "productpage-v1-7d9c");
    assert!(stored.received_time_unix_nanos > 0);

    // Filters are applied by the collector.
    let by_flag = |flags_all| ListRecordsRequest {
        flags_all,
        ..Default::default()
    };
    let uf = query.list_records(by_flag(1 << 5)).await.unwrap();
    assert_eq!(uf.into_inner().records.len(), 1);
    let nr = query.list_records(by_flag(1 << 8)).await.unwrap();
    assert!(nr.into_inner().records.is_empty());
    let other_ns = ListRecordsRequest {
        namespace: "elsewhere".into(),
        ..Default::default()
    };
    assert!(
        query
            .list_records(other_ns)
            .await
            .unwrap()
            .into_inner()
            .records
            .is_empty()
    );

    collector.shutdown().await.unwrap();
}

#[tokio::test]
async fn limit_reports_how_many_were_left_out() {
    let collector = start(CollectorConfig::default()).await;
    let (mut ingest, mut query) = clients(collector.url()).await;
    let records = (0..3).map(|i| failure(&format!("req-{i}"))).collect();
    ingest.push(push("vm-1", 1, records)).await.unwrap();
    let page = query
        .list_records(ListRecordsRequest {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.records.len(), 2);
    assert_eq!(page.truncated, 1);
}

#[tokio::test]
async fn a_retried_batch_is_counted_once() {
    let collector = start(CollectorConfig::default()).await;
    let (mut ingest, mut query) = clients(collector.url()).await;

    let batch = push("vm-1", 1, vec![failure("req-1")]);
    assert!(
        !ingest
            .push(batch.clone())
            .await
            .unwrap()
            .into_inner()
            .duplicate
    );
    assert!(ingest.push(batch).await.unwrap().into_inner().duplicate);
    // The same sequence number from another instance is a different batch.
    assert!(
        !ingest
            .push(push("vm-2", 1, vec![]))
            .await
            .unwrap()
            .into_inner()
            .duplicate
    );

    let counters = query
        .list_counters(ListCountersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .counters;
    assert_eq!(counters.len(), 1, "both VMs count under the pod's key");
    assert_eq!(counters[0].counter.as_ref().unwrap().count, 10);
    assert_eq!(counters[0].pod, "productpage-v1-7d9c");

    let records = query
        .list_records(ListRecordsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(records.len(), 1);

    let proxies = query
        .list_proxies(ListProxiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .proxies;
    let vm1 = proxies
        .iter()
        .find(|p| p.proxy.as_ref().unwrap().instance_id == "vm-1")
        .unwrap();
    assert_eq!((vm1.batches, vm1.records, vm1.missing_batches), (1, 1, 0));
}

#[tokio::test]
async fn a_sequence_gap_shows_as_missing_batches_until_filled() {
    let collector = start(CollectorConfig::default()).await;
    let (mut ingest, query) = clients(collector.url()).await;

    let mut third = push("vm-1", 3, vec![]);
    third.dropped_records = 4;
    ingest.push(push("vm-1", 1, vec![])).await.unwrap();
    ingest.push(third).await.unwrap();
    let status = |mut query: QueryClient<Channel>| async move {
        query
            .list_proxies(ListProxiesRequest {})
            .await
            .unwrap()
            .into_inner()
            .proxies
            .remove(0)
    };
    let proxy = status(query.clone()).await;
    assert_eq!(proxy.missing_batches, 1);
    assert_eq!(proxy.last_sequence, 3);
    assert_eq!(proxy.dropped_records, 4);

    ingest.push(push("vm-1", 2, vec![])).await.unwrap();
    let proxy = status(query).await;
    assert_eq!(proxy.missing_batches, 0);
    assert_eq!(proxy.batches, 3);
    assert_eq!(
        proxy.dropped_records, 4,
        "cumulative: the late batch does not lower it"
    );
}

#[tokio::test]
async fn a_malformed_batch_is_rejected_naming_the_field() {
    let collector = start(CollectorConfig {
        max_batch_records: 2,
        ..CollectorConfig::default()
    })
    .await;
    let (mut ingest, mut query) = clients(collector.url()).await;

    let mut no_proxy = push("vm-1", 1, vec![]);
    no_proxy.proxy = None;
    let mut bad_direction = push("vm-1", 1, vec![failure("a")]);
    bad_direction.records[0].direction = 9;
    let cases = [
        (no_proxy, "proxy"),
        (push("", 1, vec![]), "proxy.instance_id"),
        (push("vm-1", 0, vec![]), "sequence"),
        (
            push("vm-1", 1, vec![failure("a"), failure("b"), failure("c")]),
            "records",
        ),
        (bad_direction, "records[0].direction"),
    ];
    for (request, field) in cases {
        let status = ingest.push(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            status.message().starts_with(&format!("invalid {field}:")),
            "{field}: {}",
            status.message()
        );
    }
    let proxies = query.list_proxies(ListProxiesRequest {}).await.unwrap();
    assert!(
        proxies.into_inner().proxies.is_empty(),
        "nothing was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_resource_exhausted_at_once() {
    let (entered, mut entered_rx) = mpsc::unbounded_channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let store = GateStore {
        inner: MemoryStore::new(100),
        entered,
        release: release_rx,
    };
    let config = CollectorConfig {
        queue_capacity: 1,
        ..CollectorConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(meshwhy_collector::run_with_store(
        listener,
        config,
        store,
        async move {
            let _ = stopped.await;
        },
    ));
    let (ingest, _query) = clients(url).await;
    let send = |sequence| {
        let mut ingest = ingest.clone();
        tokio::spawn(async move { ingest.push(push("vm-1", sequence, vec![])).await })
    };

    // Batch 1 is taken by the aggregator and held in the store.
    let first = send(1);
    assert_eq!(
        within("batch 1 reaches the store", entered_rx.recv()).await,
        Some(1)
    );
    // Batches 2 and 3 race for the single queue slot: the loser is refused without waiting.
    let mut second = send(2);
    let mut third = send(3);
    let (refused, queued) = within("one push is refused", async {
        tokio::select! {
            result = &mut second => (result, third),
            result = &mut third => (result, second),
        }
    })
    .await;
    let status = refused.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Open the gate: the held and the queued batch are both stored and acknowledged.
    release.send(()).unwrap();
    release.send(()).unwrap();
    assert!(within("batch 1", first).await.unwrap().is_ok());
    assert!(within("queued batch", queued).await.unwrap().is_ok());

    stop.send(()).unwrap();
    within("server stops", server).await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_ends_open_connections_and_frees_the_port() {
    let collector = start(CollectorConfig::default()).await;
    let url = collector.url();
    let addr = collector.addr;
    let (mut ingest, _query) = clients(url.clone()).await;
    ingest.push(push("vm-1", 1, vec![])).await.unwrap();
    // The client keeps its connection open; shutdown must still complete.
    within("shutdown", collector.shutdown()).await.unwrap();
    let status = ingest.push(push("vm-1", 2, vec![])).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // The port is free again right away.
    drop(TcpListener::bind(addr).await.unwrap());
    assert!(Channel::from_shared(url).unwrap().connect().await.is_err());
}

#[tokio::test]
async fn dropping_the_handle_stops_the_collector() {
    let collector = start(CollectorConfig::default()).await;
    let addr = collector.addr;
    drop(collector);
    within("the port is released", async {
        while TcpListener::bind(addr).await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn bad_config_is_refused_before_serving() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = CollectorConfig {
        max_records: 0,
        ..CollectorConfig::default()
    };
    let error = meshwhy_collector::spawn(listener, config)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid configuration: max_records must be at least 1"
    );
}
