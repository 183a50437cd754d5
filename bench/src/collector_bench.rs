//! The collector ingest benchmark: a real `meshwhy-collector` child process (pinned to one core
//! when `taskset` works, so "records/s on one core" is literal), fed by a gRPC load client here that pushes realistic batches from many simulated proxy instances. Measures
//! records/s, the collector's CPU (from /proc) and memory, and the time from a Push to the record
//! being found by `ListRecords`, under load and idle.
//!
//! The client pre-encodes each record once per batch slot (a shared template plus the fields
//! that differ per record: request id, trace id, start time), so its own CPU stays small next
//! to the collector's: the number is about the collector, not about prost on the client side.

use crate::{procfs, stats};
use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use meshwhy_e2e::{process::ChildGuard, wait};
use meshwhy_proto::v1::{
    Counter, DecisionRecord, Direction, ListRecordsRequest, ProxyIdentity, PushResponse,
    query_client::QueryClient,
};
use prost::Message;
use serde::Serialize;
use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tonic::{codegen::http::uri::PathAndQuery, transport::Channel};

/// Settings for the ingest run.
#[derive(Debug, Clone)]
pub struct IngestLoad {
    /// Simulated proxy instances (each with its own identity and sequence numbers).
    pub proxies: usize,
    /// Records per Push (meshwhy's default `max_batch_records` is 500).
    pub batch_records: usize,
    /// Pushes in flight at once.
    pub in_flight: usize,
    /// Length of the load.
    pub duration: Duration,
    /// The collector binary.
    pub binary: PathBuf,
    /// Pin the collector to this CPU (None: let the scheduler place it).
    pub pin_cpu: Option<usize>,
    /// Raise the collector's scheduling priority (see [`crate::pin::boost`]).
    pub boost: bool,
    /// The collector's record cap (`--max-records`; its default unless set).
    pub max_records: usize,
}

/// What the ingest run measured.
#[derive(Debug, Clone, Serialize)]
pub struct IngestResult {
    /// Records acknowledged by the collector.
    pub records: u64,
    /// Pushes acknowledged.
    pub pushes: u64,
    /// Pushes answered RESOURCE_EXHAUSTED and retried.
    pub retried: u64,
    /// Wall time of the load, s.
    pub seconds: f64,
    /// Acknowledged records per wall second.
    pub records_per_second: f64,
    /// Collector CPU (user + system) during the load, s.
    pub collector_cpu_seconds: f64,
    /// Records per collector CPU second: records/s on one fully used core.
    pub records_per_cpu_second: f64,
    /// The CPU the collector was pinned to, if any.
    pub pinned_cpu: Option<usize>,
    /// Mean encoded record size on the wire, bytes.
    pub record_bytes: usize,
    /// Collector RSS idle before the load, KiB.
    pub rss_idle_kib: u64,
    /// Collector RSS after the load, KiB.
    pub rss_after_kib: u64,
    /// Collector peak RSS, KiB.
    pub rss_peak_kib: u64,
    /// Push → found by ListRecords, during the load: median, ms.
    pub queryable_under_load_p50_ms: f64,
    /// Same, worst, ms.
    pub queryable_under_load_max_ms: f64,
    /// Same after the load (idle collector holding the stored records), ms.
    pub queryable_idle_ms: f64,
    /// Of that, until the Push was acknowledged (the store applied it), ms.
    pub queryable_idle_push_ms: f64,
    /// Records the collector held when the idle marker was queried (what `ListRecords` scans).
    pub records_held: u64,
}

/// The Push method, called with the bench's own wire type (see [`PushWire`]).
const PUSH_PATH: &str = "/meshwhy.v1.Ingest/Push";

/// `meshwhy.v1.PushRequest` as the load client encodes it: identical on the wire, but records
/// are pre-encoded `DecisionRecord` bytes (a bytes field and a message field share one wire
/// encoding), so a batch costs the client a few memcpys instead of a full prost encode.
#[derive(Clone, PartialEq, Message)]
struct PushWire {
    #[prost(message, optional, tag = "1")]
    proxy: Option<ProxyIdentity>,
    #[prost(uint64, tag = "2")]
    sequence: u64,
    #[prost(bytes = "bytes", repeated, tag = "3")]
    records: Vec<Bytes>,
    #[prost(message, repeated, tag = "4")]
    counters: Vec<Counter>,
    #[prost(uint64, tag = "7")]
    sent_time_unix_nanos: u64,
}

/// Runs the ingest benchmark.
pub async fn run(load: &IngestLoad) -> Result<IngestResult> {
    let (collector, channel) = start_collector(load).await?;
    let pid = collector.pid();
    let rss_idle_kib = procfs::memory(pid)?.rss_kib;

    let template = Template::new(load.batch_records);
    let record_bytes = template.mean_record_bytes();
    let next_batch = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let retried = Arc::new(AtomicU64::new(0));
    let sequences: Arc<Vec<AtomicU64>> = Arc::new(
        (0..load.proxies.max(1))
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let identities: Arc<Vec<ProxyIdentity>> =
        Arc::new((0..load.proxies.max(1)).map(identity).collect());
    let template = Arc::new(template);

    let cpu_start = procfs::cpu_time(pid)?;
    let started = Instant::now();
    let mut pushers = Vec::new();
    for _ in 0..load.in_flight.max(1) {
        let channel = channel.clone();
        let (next_batch, stop, retried) = (next_batch.clone(), stop.clone(), retried.clone());
        let (sequences, identities, template) =
            (sequences.clone(), identities.clone(), template.clone());
        pushers.push(tokio::spawn(async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            let mut acked = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let n = next_batch.fetch_add(1, Ordering::Relaxed);
                let proxy = (n as usize) % identities.len();
                let sequence = sequences[proxy].fetch_add(1, Ordering::Relaxed) + 1;
                let wire = PushWire {
                    proxy: Some(identities[proxy].clone()),
                    sequence,
                    records: template.batch(n),
                    counters: counters(),
                    sent_time_unix_nanos: unix_nanos(),
                };
                let records = wire.records.len() as u64;
                loop {
                    match push(&mut grpc, wire.clone()).await {
                        Ok(_) => break,
                        Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                            retried.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(status) => return Err(anyhow::anyhow!("push failed: {status}")),
                    }
                }
                acked.0 += records;
                acked.1 += 1;
            }
            Ok::<_, anyhow::Error>(acked)
        }));
    }

    // Markers: one small batch from a separate proxy every 250 ms, timed until queryable.
    let mut under_load = Vec::new();
    let mut marker = 0u64;
    let marker_proxy = identity(usize::MAX);
    while started.elapsed() < load.duration {
        tokio::time::sleep(Duration::from_millis(250)).await;
        marker += 1;
        under_load.push(
            time_to_queryable(&channel, &marker_proxy, marker)
                .await?
                .found,
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (mut records, mut pushes) = (0, 0);
    for pusher in pushers {
        let (r, p) = pusher.await??;
        records += r;
        pushes += p;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = (procfs::cpu_time(pid)? - cpu_start).as_secs_f64();
    let memory = procfs::memory(pid)?;
    marker += 1;
    let idle = time_to_queryable(&channel, &marker_proxy, marker).await?;
    let records_held = records.min(load.max_records as u64);
    drop(collector);

    let under_load_ms: Vec<f64> = under_load.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    Ok(IngestResult {
        records,
        pushes,
        retried: retried.load(Ordering::Relaxed),
        seconds,
        records_per_second: records as f64 / seconds,
        collector_cpu_seconds: cpu,
        records_per_cpu_second: records as f64 / cpu.max(1e-9),
        pinned_cpu: load.pin_cpu,
        record_bytes,
        rss_idle_kib,
        rss_after_kib: memory.rss_kib,
        rss_peak_kib: memory.peak_kib,
        queryable_under_load_p50_ms: stats::median(&under_load_ms),
        queryable_under_load_max_ms: under_load_ms.iter().copied().fold(0.0, f64::max),
        queryable_idle_ms: idle.found.as_secs_f64() * 1e3,
        queryable_idle_push_ms: idle.acked.as_secs_f64() * 1e3,
        records_held,
    })
}

/// Starts the collector on a free loopback port and connects to it. The port is found by
/// binding port 0 and releasing it, so another process may take it first: then the collector
/// exits at once (address in use) and the next attempt picks another port.
async fn start_collector(load: &IngestLoad) -> Result<(ChildGuard, Channel)> {
    let mut last_error = None;
    for _ in 0..3 {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut child = spawn_collector(load, addr)?;
        let url = format!("http://{addr}");
        let connected = wait::until("the collector to accept connections", || {
            let url = url.clone();
            let exited = child.exited().is_some();
            async move {
                if exited {
                    return Some(None);
                }
                Channel::from_shared(url)
                    .ok()?
                    .connect()
                    .await
                    .ok()
                    .map(Some)
            }
        })
        .await;
        match connected {
            Ok(Some(channel)) => {
                if load.boost {
                    crate::pin::boost(child.pid())?;
                }
                return Ok((child, channel));
            }
            Ok(None) => {
                last_error = Some(anyhow::anyhow!("the collector exited at start on {addr}"))
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("the collector did not start")))
}

fn spawn_collector(load: &IngestLoad, addr: SocketAddr) -> Result<ChildGuard> {
    if !load.binary.is_file() {
        bail!(
            "collector binary not found at {}: build it with `cargo build --release -p \
             meshwhy-collector` (the bench task does), or pass --collector-bin",
            load.binary.display()
        );
    }
    let mut command = crate::pin::pinned_command(&load.binary, load.pin_cpu);
    command
        .args(["--grpc-addr", &addr.to_string()])
        // Any free port: the default would clash with another collector on this machine.
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(["--max-records", &load.max_records.to_string()])
        // The ingest budget row is the in-memory store's (the durable one has its own figures,
        // `sqlite_at_scale`); the binary's default is the durable store.
        .args(["--store", "memory"])
        .env("MESHWHY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    ChildGuard::spawn("meshwhy-collector", command)
}

/// The collector next to this executable (same cargo profile).
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_default()
        .join("meshwhy-collector")
}

async fn push(
    grpc: &mut tonic::client::Grpc<Channel>,
    wire: PushWire,
) -> Result<PushResponse, tonic::Status> {
    grpc.ready()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let codec = tonic_prost::ProstCodec::<PushWire, PushResponse>::default();
    let response = grpc
        .unary(
            tonic::Request::new(wire),
            PathAndQuery::from_static(PUSH_PATH),
            codec,
        )
        .await?;
    Ok(response.into_inner())
}

/// How long a marker record took.
struct Queryable {
    /// Until its Push was acknowledged.
    acked: Duration,
    /// Until `ListRecords` found it.
    found: Duration,
}

/// Pushes one marker record and polls `ListRecords` by its request id until it is found.
async fn time_to_queryable(channel: &Channel, proxy: &ProxyIdentity, n: u64) -> Result<Queryable> {
    let request_id = format!("marker-{n}-{}", unix_nanos());
    let record = DecisionRecord {
        request_id: request_id.clone(),
        response_code: 503,
        start_time_unix_nanos: unix_nanos(),
        ..Default::default()
    };
    let wire = PushWire {
        proxy: Some(proxy.clone()),
        sequence: n,
        records: vec![record.encode_to_vec().into()],
        counters: Vec::new(),
        sent_time_unix_nanos: unix_nanos(),
    };
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    let mut query = QueryClient::new(channel.clone());
    let start = Instant::now();
    loop {
        match push(&mut grpc, wire.clone()).await {
            Ok(_) => break,
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(status) => bail!("marker push failed: {status}"),
        }
    }
    let acked = start.elapsed();
    loop {
        let request = ListRecordsRequest {
            request_id: request_id.clone(),
            ..Default::default()
        };
        let found = query
            .list_records(request)
            .await
            .context("ListRecords")?
            .into_inner();
        if !found.records.is_empty() {
            return Ok(Queryable {
                acked,
                found: start.elapsed(),
            });
        }
        if start.elapsed() > wait::patience() {
            bail!("marker {request_id} never became queryable");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A proxy identity as the filter sends it (node metadata of an Istio sidecar).
fn identity(i: usize) -> ProxyIdentity {
    let workload = [
        "reviews",
        "ratings",
        "productpage",
        "details",
        "checkout",
        "cart",
    ][i % 6];
    let namespace = ["bookinfo", "shop", "payments"][i % 3];
    let pod = format!("{workload}-v{}-7d9f8c6b5-{i:05x}", 1 + i % 3);
    ProxyIdentity {
        instance_id: format!("{:016x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        node_id: format!(
            "sidecar~10.0.{}.{}~{pod}.{namespace}~{namespace}.svc.cluster.local",
            i / 250 % 250,
            i % 250
        ),
        pod,
        namespace: namespace.to_owned(),
        workload: workload.to_owned(),
        labels: HashMap::from([
            ("app".to_owned(), workload.to_owned()),
            ("version".to_owned(), format!("v{}", 1 + i % 3)),
            ("security.istio.io/tlsMode".to_owned(), "istio".to_owned()),
        ]),
        istio_version: "1.28.0".to_owned(),
        envoy_version: "1.40.0".to_owned(),
        cluster_id: "Kubernetes".to_owned(),
        mesh_id: "cluster.local".to_owned(),
        service_account: workload.to_owned(),
        plugin_name: "bookinfo.meshwhy".to_owned(),
        filter_version: "0.1.0".to_owned(),
    }
}

/// The success counters a busy VM ships with each batch: a handful of keys.
fn counters() -> Vec<Counter> {
    (0..8)
        .map(|i| Counter {
            route_name: format!("reviews-route-{i}"),
            cluster: format!(
                "outbound|9080|v{}|reviews.bookinfo.svc.cluster.local",
                1 + i % 3
            ),
            response_code: 200,
            count: 250,
            route_provenance:
                "/apis/networking.istio.io/v1/namespaces/bookinfo/virtual-service/reviews"
                    .to_owned(),
            cluster_provenance:
                "/apis/networking.istio.io/v1/namespaces/bookinfo/destination-rule/reviews"
                    .to_owned(),
            cluster_subset: format!("v{}", 1 + i % 3),
            virtual_host: "reviews.bookinfo.svc.cluster.local:9080".to_owned(),
        })
        .collect()
}

/// Failure records with realistic field sizes, encoded once without their per-request fields.
struct Template {
    /// One encoded record body per batch slot (cycling through failure kinds).
    bodies: Vec<Bytes>,
}

impl Template {
    fn new(batch_records: usize) -> Self {
        let bodies = (0..batch_records.max(1))
            .map(|slot| Bytes::from(failure_record(slot).encode_to_vec()))
            .collect();
        Self { bodies }
    }

    /// A batch: each slot's body plus a fresh request id, trace id and start time (protobuf
    /// fields may come in any order, so appending them yields a valid `DecisionRecord`).
    fn batch(&self, batch: u64) -> Vec<Bytes> {
        let now = unix_nanos();
        self.bodies
            .iter()
            .enumerate()
            .map(|(slot, body)| {
                let n = batch.wrapping_mul(1_000_003).wrapping_add(slot as u64);
                let unique = DecisionRecord {
                    start_time_unix_nanos: now,
                    request_id: format!(
                        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                        n as u32,
                        (n >> 32) as u16,
                        slot % 0xfff,
                        batch % 0xfff,
                        n.wrapping_mul(0x9e37_79b9) & 0xffff_ffff_ffff
                    ),
                    trace_id: format!("{:016x}{:016x}", n, n.wrapping_mul(31)),
                    ..Default::default()
                };
                let mut bytes = BytesMut::with_capacity(body.len() + 96);
                bytes.extend_from_slice(body);
                // Only the set fields are encoded, so this appends exactly fields 1–3.
                unique.encode(&mut bytes).ok();
                bytes.freeze()
            })
            .collect()
    }

    fn mean_record_bytes(&self) -> usize {
        let sample = self.batch(0);
        sample.iter().map(Bytes::len).sum::<usize>() / sample.len().max(1)
    }
}

/// A failure as the filter records it, varied by `slot` over the classic outcomes.
fn failure_record(slot: usize) -> DecisionRecord {
    let service = ["reviews", "ratings", "details", "payments"][slot % 4];
    let host = format!("{service}.bookinfo.svc.cluster.local");
    let (code, flags, details, reason) = match slot % 5 {
        0 => (
            503,
            1 << 5,
            "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
            "delayed connect error: Connection refused",
        ),
        1 => (
            503,
            1 << 6,
            "upstream_reset_before_response_started{connection_termination}",
            "",
        ),
        2 => (503, 0, "via_upstream", ""),
        3 => (504, 1 << 2, "response_timeout", ""),
        _ => (
            503,
            (1 << 5) | (1 << 15),
            "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
            "delayed connect error: Connection refused",
        ),
    };
    DecisionRecord {
        direction: Direction::Outbound as i32,
        method: if slot.is_multiple_of(3) {
            "POST"
        } else {
            "GET"
        }
        .to_owned(),
        authority: format!("{host}:9080"),
        path: format!("/api/v1/{service}/products/{}/reviews", 10_000 + slot * 37),
        response_code: code,
        response_flags: flags,
        response_code_details: details.to_owned(),
        transport_failure_reason: reason.to_owned(),
        route_name: format!("{service}-v{}", 1 + slot % 3),
        virtual_host: format!("{host}:9080"),
        cluster: format!("outbound|9080|v{}|{host}", 1 + slot % 3),
        upstream_host: format!("10.0.{}.{}:9080", slot % 16, 10 + slot % 200),
        attempt_count: if flags & (1 << 15) != 0 { 3 } else { 1 },
        duration_nanos: 1_000_000 + slot as u64 * 12_345,
        downstream_mtls: false,
        upstream_tls_version: "TLSv1.3".to_owned(),
        upstream_peer_principal: format!("spiffe://cluster.local/ns/bookinfo/sa/{service}"),
        route_provenance: format!(
            "/apis/networking.istio.io/v1/namespaces/bookinfo/virtual-service/{service}"
        ),
        cluster_provenance: format!(
            "/apis/networking.istio.io/v1/namespaces/bookinfo/destination-rule/{service}"
        ),
        cluster_subset: format!("v{}", 1 + slot % 3),
        endpoint_tls_mode: "istio".to_owned(),
        source_address: format!("10.0.7.{}:{}", 1 + slot % 250, 40_000 + slot),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_batch_decodes_as_distinct_decision_records() {
        let template = Template::new(4);
        let batch = template.batch(7);
        let records: Vec<DecisionRecord> = batch
            .iter()
            .map(|b| DecisionRecord::decode(b.as_ref()).unwrap())
            .collect();
        assert_eq!(records.len(), 4);
        assert!(
            records
                .iter()
                .all(|r| r.request_id.len() == 36 && r.response_code >= 500)
        );
        let ids: std::collections::HashSet<_> = records.iter().map(|r| &r.request_id).collect();
        assert_eq!(ids.len(), 4);
        assert!(template.mean_record_bytes() > 300);
    }

    #[test]
    fn the_wire_type_decodes_as_a_push_request() {
        let template = Template::new(2);
        let wire = PushWire {
            proxy: Some(identity(3)),
            sequence: 9,
            records: template.batch(1),
            counters: counters(),
            sent_time_unix_nanos: 5,
        };
        let request =
            meshwhy_proto::v1::PushRequest::decode(wire.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            (
                request.sequence,
                request.records.len(),
                request.counters.len()
            ),
            (9, 2, 8)
        );
        assert_eq!(request.proxy.unwrap().workload, "details");
    }
}
