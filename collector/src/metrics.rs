//! The collector's Prometheus metrics: counters bumped on the ingest path, gauges read from the
//! aggregator at scrape time, and failures by cause id, rendered by hand in the text exposition
//! format (a few dozen lines do not justify a metrics crate).
//!
//! Ingest counts through [`MeteredIngest`], a wrapper around the Ingest service, so the ingest
//! path itself is not touched: a batch is summarised before it is handed on (the records move
//! into the store) and counted only when the aggregator applied it (not a duplicate).
//!
//! Failure series are bounded: at most [`MAX_FAILURE_SERIES`] distinct (cause, namespace,
//! workload, cluster) label sets; failures of any further label set are counted under their cause
//! with namespace, workload and cluster [`OTHER`], and
//! `meshwhy_failure_series_overflow_total` says how many records went there. Causes are a fixed
//! vocabulary, so the total never exceeds `MAX_FAILURE_SERIES` + one per cause id.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use meshwhy_proto::v1::ingest_server::Ingest;
use meshwhy_proto::v1::{DecisionRecord, ProxyIdentity, PushRequest, PushResponse};
use tonic::{Code, Request, Response, Status};

use crate::explain::hash::FxHasher;
use crate::explain::{self, Cause};
use crate::ingest::IngestService;
use crate::store::StoreStats;

/// Most distinct failure label sets kept; see the module docs for what happens beyond.
pub const MAX_FAILURE_SERIES: usize = 1000;
/// The label value failures beyond [`MAX_FAILURE_SERIES`] are counted under.
pub const OTHER: &str = "_other";
/// Most record shapes whose cause is remembered (then the memory starts over): the cause of a
/// shape is computed once, not per record.
const MAX_CACHED_SHAPES: usize = 4096;

/// Why a push was refused, as the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The aggregator queue was full (RESOURCE_EXHAUSTED): the filter keeps the batch and retries.
    ResourceExhausted,
    /// The batch was malformed (INVALID_ARGUMENT).
    Invalid,
    /// Anything else (shutting down, a store failure).
    Other,
}

impl RejectReason {
    const ALL: [RejectReason; 3] = [Self::ResourceExhausted, Self::Invalid, Self::Other];

    fn of(code: Code) -> Self {
        match code {
            Code::ResourceExhausted => Self::ResourceExhausted,
            Code::InvalidArgument => Self::Invalid,
            _ => Self::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::ResourceExhausted => "resource_exhausted",
            Self::Invalid => "invalid",
            Self::Other => "other",
        }
    }
}

/// The labels of one failure series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct FailureLabels {
    cause: Cause,
    namespace: String,
    workload: String,
    cluster: String,
}

#[derive(Debug, Default)]
struct Failures {
    series: BTreeMap<FailureLabels, u64>,
    overflow_records: u64,
}

/// What one Push carries, taken before it is handed on.
#[derive(Debug, Default, PartialEq)]
pub struct BatchSummary {
    records: u64,
    successes: u64,
    dropped_records: u64,
    dropped_counter_keys: u64,
    /// Failure records by (cause, cluster); the proxy's namespace and workload label them all.
    failures: Vec<((Cause, String), u64)>,
    namespace: String,
    workload: String,
}

/// The collector's counters, shared by the ingest wrapper and the HTTP endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    pushes_accepted: AtomicU64,
    pushes_duplicate: AtomicU64,
    rejected: [AtomicU64; 3],
    records_ingested: AtomicU64,
    successes_ingested: AtomicU64,
    filter_dropped_records: AtomicU64,
    filter_dropped_counter_keys: AtomicU64,
    failures: Mutex<Failures>,
    causes: Mutex<HashMap<u64, Option<Cause>>>,
}

/// What the aggregator said at scrape time; `None` when it did not answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Store size and evictions.
    pub store: Option<StoreStats>,
    /// The store's record cap.
    pub store_capacity: u64,
    /// Push batches waiting for the aggregator.
    pub queue_depth: u64,
    /// How many may wait.
    pub queue_capacity: u64,
}

/// The cause of a record's shape, computed once per shape (the cache starts over when full).
fn cause_of(
    causes: &mut HashMap<u64, Option<Cause>>,
    proxy: &ProxyIdentity,
    record: &DecisionRecord,
) -> Option<Cause> {
    let key = shape(record);
    if let Some(cause) = causes.get(&key) {
        return *cause;
    }
    let cause = explain::record_cause(proxy, record);
    if causes.len() >= MAX_CACHED_SHAPES {
        causes.clear();
    }
    causes.insert(key, cause);
    cause
}

/// The fields a rule may read to choose a cause, with per-request values (ids, times, paths,
/// addresses) reduced to whether they are present: records of one shape get one cause. A 64-bit
/// collision would give a record another shape's cause; at [`MAX_CACHED_SHAPES`] shapes that is
/// about one chance in 10^12 per scrape-worthy lifetime.
fn shape(record: &DecisionRecord) -> u64 {
    // FxHash: SipHash over these strings was a measurable share of ingest CPU.
    let mut hasher = FxHasher::default();
    (
        record.direction,
        record.response_code,
        record.response_flags,
        &record.response_code_details,
        &record.transport_failure_reason,
        &record.route_name,
        &record.virtual_host,
        &record.cluster,
    )
        .hash(&mut hasher);
    (
        &record.route_provenance,
        &record.cluster_provenance,
        &record.cluster_subset,
        &record.endpoint_tls_mode,
        &record.upstream_tls_version,
        record.grpc_status,
    )
        .hash(&mut hasher);
    (
        &record.authority,
        &record.method,
        record.attempt_count,
        record.downstream_mtls,
        record.upstream_host.is_empty(),
        record.downstream_peer_principal.is_empty(),
        record.upstream_peer_principal.is_empty(),
    )
        .hash(&mut hasher);
    hasher.finish()
}

impl Metrics {
    /// Fresh counters.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Summarises a Push request (cheap: a record's cause is computed once per shape).
    pub fn summarise(&self, request: &PushRequest) -> BatchSummary {
        let proxy = request.proxy.clone().unwrap_or_default();
        let mut summary = BatchSummary {
            records: request.records.len() as u64,
            successes: request.counters.iter().map(|counter| counter.count).sum(),
            dropped_records: request.dropped_records,
            dropped_counter_keys: request.dropped_counter_keys,
            ..BatchSummary::default()
        };
        // One lock per batch, not per record: this runs on every push.
        let mut causes = self.causes.lock().unwrap_or_else(PoisonError::into_inner);
        for record in &request.records {
            if record.sampled_success {
                // A sampled success is a success the filter also counted in its counters.
                continue;
            }
            let Some(cause) = cause_of(&mut causes, &proxy, record) else {
                continue;
            };
            let same = |((c, cluster), _): &&mut ((Cause, String), u64)| {
                *c == cause && *cluster == record.cluster
            };
            match summary.failures.iter_mut().find(same) {
                Some((_, count)) => *count += 1,
                None => summary.failures.push(((cause, record.cluster.clone()), 1)),
            }
        }
        drop(causes);
        summary.namespace = proxy.namespace;
        summary.workload = proxy.workload;
        summary
    }

    #[cfg(test)]
    fn cause(&self, proxy: &ProxyIdentity, record: &DecisionRecord) -> Option<Cause> {
        let mut causes = self.causes.lock().unwrap_or_else(PoisonError::into_inner);
        cause_of(&mut causes, proxy, record)
    }

    /// Counts a batch the aggregator applied (`duplicate`: it had been applied before, nothing
    /// new was stored).
    pub fn accepted(&self, summary: BatchSummary, duplicate: bool) {
        self.pushes_accepted.fetch_add(1, Ordering::Relaxed);
        if duplicate {
            self.pushes_duplicate.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.records_ingested
            .fetch_add(summary.records, Ordering::Relaxed);
        self.successes_ingested
            .fetch_add(summary.successes, Ordering::Relaxed);
        self.filter_dropped_records
            .fetch_add(summary.dropped_records, Ordering::Relaxed);
        self.filter_dropped_counter_keys
            .fetch_add(summary.dropped_counter_keys, Ordering::Relaxed);
        if summary.failures.is_empty() {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        for ((cause, cluster), count) in summary.failures {
            let labels = FailureLabels {
                cause,
                namespace: summary.namespace.clone(),
                workload: summary.workload.clone(),
                cluster,
            };
            let full = failures.series.len() >= MAX_FAILURE_SERIES;
            let labels = if full && !failures.series.contains_key(&labels) {
                failures.overflow_records += count;
                FailureLabels {
                    cause,
                    namespace: OTHER.to_owned(),
                    workload: OTHER.to_owned(),
                    cluster: OTHER.to_owned(),
                }
            } else {
                labels
            };
            *failures.series.entry(labels).or_default() += count;
        }
    }

    /// Counts a refused push.
    pub fn rejected(&self, code: Code) {
        let index = RejectReason::ALL
            .iter()
            .position(|reason| *reason == RejectReason::of(code))
            .unwrap_or(RejectReason::ALL.len() - 1);
        self.rejected[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        counter(
            &mut out,
            "meshwhy_pushes_accepted_total",
            "Push batches the aggregator applied, duplicates (retries of an applied batch) included.",
            load(&self.pushes_accepted),
        );
        counter(
            &mut out,
            "meshwhy_pushes_duplicate_total",
            "Accepted Push batches that had been applied before: nothing new was stored.",
            load(&self.pushes_duplicate),
        );
        header(
            &mut out,
            "meshwhy_pushes_rejected_total",
            "Push batches refused, by reason: resource_exhausted (aggregator queue full; the filter retries), invalid (malformed batch), other.",
            "counter",
        );
        for (reason, count) in RejectReason::ALL.iter().zip(&self.rejected) {
            let _ = writeln!(
                out,
                "meshwhy_pushes_rejected_total{{reason=\"{}\"}} {}",
                reason.label(),
                load(count)
            );
        }
        counter(
            &mut out,
            "meshwhy_records_ingested_total",
            "Decision records received in applied batches (failures and sampled successes).",
            load(&self.records_ingested),
        );
        counter(
            &mut out,
            "meshwhy_successes_ingested_total",
            "Successful requests counted by the filters and received in applied batches.",
            load(&self.successes_ingested),
        );
        counter(
            &mut out,
            "meshwhy_filter_dropped_records_total",
            "Decision records the filters dropped (buffer full) and reported, as reported.",
            load(&self.filter_dropped_records),
        );
        counter(
            &mut out,
            "meshwhy_filter_dropped_counter_keys_total",
            "Success counter keys the filters dropped and reported, as reported.",
            load(&self.filter_dropped_counter_keys),
        );

        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        header(
            &mut out,
            "meshwhy_failures_total",
            "Failed requests received, by cause id (the explain engine's reading of each record on its own, as `meshwhy observe --cause`), recording namespace and workload, and cluster.",
            "counter",
        );
        for (labels, count) in &failures.series {
            let _ = writeln!(
                out,
                "meshwhy_failures_total{{cause=\"{}\",namespace=\"{}\",workload=\"{}\",cluster=\"{}\"}} {count}",
                labels.cause.id(),
                escape(&labels.namespace),
                escape(&labels.workload),
                escape(&labels.cluster),
            );
        }
        counter(
            &mut out,
            "meshwhy_failure_series_overflow_total",
            "Failed requests counted with namespace, workload and cluster \"_other\" because meshwhy_failures_total already had its maximum number of series.",
            failures.overflow_records,
        );
        drop(failures);

        if let Some(store) = gauges.store {
            gauge(
                &mut out,
                "meshwhy_store_records",
                "Decision records held in the store now.",
                store.records,
            );
            counter(
                &mut out,
                "meshwhy_store_evictions_total",
                "Decision records evicted (oldest first) to stay within the store capacity.",
                store.evicted_records,
            );
            gauge(
                &mut out,
                "meshwhy_proxies",
                "Filter instances (one per Envoy worker VM) known to the collector.",
                store.proxies,
            );
        }
        gauge(
            &mut out,
            "meshwhy_store_capacity_records",
            "Most decision records the store keeps (--max-records).",
            gauges.store_capacity,
        );
        gauge(
            &mut out,
            "meshwhy_aggregator_queue_depth",
            "Push batches waiting for the aggregator now.",
            gauges.queue_depth,
        );
        gauge(
            &mut out,
            "meshwhy_aggregator_queue_capacity",
            "Push batches that may wait before pushes get RESOURCE_EXHAUSTED (--queue-capacity).",
            gauges.queue_capacity,
        );
        gauge(
            &mut out,
            "meshwhy_aggregator_up",
            "1 when the aggregator answered this scrape (the store gauges are then present), else 0.",
            u64::from(gauges.store.is_some()),
        );
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// A label value as the exposition format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The Ingest service, counted: summarises each batch, hands it to [`IngestService`] and counts
/// the outcome.
#[derive(Debug, Clone)]
pub struct MeteredIngest {
    inner: IngestService,
    metrics: Arc<Metrics>,
}

impl MeteredIngest {
    /// Counts what `inner` accepts and refuses into `metrics`.
    pub fn new(inner: IngestService, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[tonic::async_trait]
impl Ingest for MeteredIngest {
    async fn push(&self, request: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        let summary = self.metrics.summarise(request.get_ref());
        let result = self.inner.push(request).await;
        match &result {
            Ok(response) => self.metrics.accepted(summary, response.get_ref().duplicate),
            Err(status) => self.metrics.rejected(status.code()),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use meshwhy_proto::v1::{Counter, Direction};

    use super::*;

    fn record(code: u32, flags: u64, details: &str, cluster: &str) -> DecisionRecord {
        DecisionRecord {
            request_id: format!("r-{code}-{flags}"),
            direction: Direction::Outbound as i32,
            response_code: code,
            response_flags: flags,
            response_code_details: details.into(),
            cluster: cluster.into(),
            upstream_host: "10.0.0.9:80".into(),
            ..Default::default()
        }
    }

    fn request(records: Vec<DecisionRecord>) -> PushRequest {
        PushRequest {
            proxy: Some(ProxyIdentity {
                instance_id: "a".into(),
                namespace: "shop".into(),
                workload: "productpage-v1".into(),
                ..Default::default()
            }),
            sequence: 1,
            records,
            counters: vec![Counter {
                count: 7,
                ..Default::default()
            }],
            dropped_records: 2,
            ..Default::default()
        }
    }

    const UF: u64 = 1 << 5;
    const CLOSED: &str = "outbound|80||closed.shop.svc.cluster.local";
    const REFUSED: &str = "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}";

    #[test]
    fn counts_a_batch_by_cause_and_renders_it() {
        let metrics = Metrics::new();
        let mut sampled = record(200, 0, "via_upstream", CLOSED);
        sampled.sampled_success = true;
        let batch = request(vec![
            record(503, UF, REFUSED, CLOSED),
            record(503, UF, REFUSED, CLOSED),
            record(404, 1 << 8, "route_not_found", ""),
            sampled,
        ]);
        let summary = metrics.summarise(&batch);
        metrics.accepted(summary, false);
        metrics.accepted(metrics.summarise(&batch), true);
        metrics.rejected(Code::ResourceExhausted);
        metrics.rejected(Code::InvalidArgument);
        metrics.rejected(Code::Unavailable);
        let text = metrics.render(&Gauges {
            store: Some(StoreStats {
                records: 4,
                evicted_records: 1,
                proxies: 1,
            }),
            store_capacity: 10,
            queue_depth: 0,
            queue_capacity: 8,
        });
        for line in [
            "meshwhy_pushes_accepted_total 2",
            "meshwhy_pushes_duplicate_total 1",
            "meshwhy_pushes_rejected_total{reason=\"resource_exhausted\"} 1",
            "meshwhy_pushes_rejected_total{reason=\"invalid\"} 1",
            "meshwhy_pushes_rejected_total{reason=\"other\"} 1",
            "meshwhy_records_ingested_total 4",
            "meshwhy_successes_ingested_total 7",
            "meshwhy_filter_dropped_records_total 2",
            "meshwhy_failures_total{cause=\"upstream_connect_failed\",namespace=\"shop\",workload=\"productpage-v1\",cluster=\"outbound|80||closed.shop.svc.cluster.local\"} 2",
            "meshwhy_failures_total{cause=\"no_route\",namespace=\"shop\",workload=\"productpage-v1\",cluster=\"\"} 1",
            "meshwhy_store_records 4",
            "meshwhy_store_evictions_total 1",
            "meshwhy_store_capacity_records 10",
            "meshwhy_aggregator_queue_capacity 8",
            "meshwhy_aggregator_up 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // The sampled success is no failure; only the two causes have series.
        assert_eq!(
            text.matches("\nmeshwhy_failures_total{").count(),
            2,
            "{text}"
        );
        // Every sample line's metric has HELP and TYPE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
        // No answer from the aggregator: no store gauges, and it says so.
        let down = metrics.render(&Gauges::default());
        assert!(!down.contains("meshwhy_store_records"));
        assert!(down.contains("meshwhy_aggregator_up 0"));
    }

    #[test]
    fn failure_series_are_bounded() {
        let metrics = Metrics::new();
        for i in 0..MAX_FAILURE_SERIES + 5 {
            let cluster = format!("outbound|80||svc{i}.shop.svc.cluster.local");
            let batch = request(vec![record(503, UF, REFUSED, &cluster)]);
            metrics.accepted(metrics.summarise(&batch), false);
        }
        // A series that exists keeps counting after the cap.
        let first = request(vec![record(
            503,
            UF,
            REFUSED,
            "outbound|80||svc0.shop.svc.cluster.local",
        )]);
        metrics.accepted(metrics.summarise(&first), false);
        let text = metrics.render(&Gauges::default());
        assert_eq!(
            text.matches("\nmeshwhy_failures_total{").count(),
            MAX_FAILURE_SERIES + 1
        );
        assert!(text.contains(
            "meshwhy_failures_total{cause=\"upstream_connect_failed\",namespace=\"_other\",workload=\"_other\",cluster=\"_other\"} 5"
        ));
        assert!(text.contains("meshwhy_failure_series_overflow_total 5\n"));
        assert!(text.contains("cluster=\"outbound|80||svc0.shop.svc.cluster.local\"} 2\n"));
    }

    #[test]
    fn shapes_share_a_cause_and_labels_are_escaped() {
        let metrics = Metrics::new();
        let proxy = ProxyIdentity::default();
        let mut a = record(503, UF, REFUSED, CLOSED);
        let mut b = a.clone();
        a.request_id = "one".into();
        b.request_id = "two".into();
        b.upstream_host = "10.0.0.10:80".into();
        assert_eq!(shape(&a), shape(&b));
        assert_eq!(
            metrics.cause(&proxy, &a),
            Some(Cause::UpstreamConnectFailed)
        );
        assert_eq!(metrics.causes.lock().unwrap().len(), 1);
        assert_eq!(
            metrics.cause(&proxy, &b),
            Some(Cause::UpstreamConnectFailed)
        );
        assert_eq!(metrics.causes.lock().unwrap().len(), 1);
        b.upstream_host.clear();
        assert_ne!(shape(&a), shape(&b));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
