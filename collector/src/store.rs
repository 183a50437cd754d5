//! The one storage interface: in memory, or a durable SQLite file, behind the same trait.

mod memory;
mod sequence;
pub mod sqlite;

use std::sync::Arc;

use meshwhy_proto::v1::{Counter, DecisionRecord, ProxyIdentity};

use crate::explain::{self, Input, RecordRef, Report, RequestReport, Scope};

pub use memory::MemoryStore;
pub use sqlite::{Retention, SqliteStore, StoreOpenError};

/// A validated Push batch, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct PushBatch {
    /// The sending VM; `instance_id` is non-empty.
    pub proxy: ProxyIdentity,
    /// Batch number, >= 1.
    pub sequence: u64,
    /// Failure records and sampled successes.
    pub records: Vec<DecisionRecord>,
    /// Success counter deltas.
    pub counters: Vec<Counter>,
    /// Cumulative records the instance dropped.
    pub dropped_records: u64,
    /// Cumulative requests counted under the overflow key.
    pub dropped_counter_keys: u64,
}

/// What applying a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOutcome {
    /// The batch had already been applied; nothing changed.
    pub duplicate: bool,
}

/// Which records a query wants; `None`/0 fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Namespace of the sending proxy.
    pub namespace: Option<String>,
    /// Workload of the sending proxy.
    pub workload: Option<String>,
    /// Pod of the sending proxy.
    pub pod: Option<String>,
    /// HTTP status sent downstream.
    pub response_code: Option<u32>,
    /// Every one of these flag bits must be set.
    pub flags_all: u64,
    /// Only records that started at or after this time (ns since the Unix epoch).
    pub since_unix_nanos: Option<u64>,
    /// The `x-request-id`.
    pub request_id: Option<String>,
}

impl RecordFilter {
    /// Whether a record sent by `proxy` passes the filter.
    pub fn matches(&self, proxy: &ProxyIdentity, record: &DecisionRecord) -> bool {
        fn eq(want: Option<&String>, have: &str) -> bool {
            want.is_none_or(|want| want == have)
        }
        eq(self.namespace.as_ref(), &proxy.namespace)
            && eq(self.workload.as_ref(), &proxy.workload)
            && eq(self.pod.as_ref(), &proxy.pod)
            && self
                .response_code
                .is_none_or(|code| code == record.response_code)
            && record.response_flags & self.flags_all == self.flags_all
            && self
                .since_unix_nanos
                .is_none_or(|since| record.start_time_unix_nanos >= since)
            && eq(self.request_id.as_ref(), &record.request_id)
    }
}

/// A record as stored: who sent it and when it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The record as the filter sent it.
    pub record: DecisionRecord,
    /// The sending proxy, shared by all records of that instance.
    pub proxy: Arc<ProxyIdentity>,
    /// When the collector stored it, ns since the Unix epoch.
    pub received_unix_nanos: u64,
}

/// One page of records, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordPage {
    /// At most `limit` records.
    pub records: Vec<StoredRecord>,
    /// How many more matched beyond `limit`.
    pub truncated: u64,
}

/// Which counters a query wants; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterFilter {
    /// Namespace of the counting proxy.
    pub namespace: Option<String>,
    /// Workload of the counting proxy.
    pub workload: Option<String>,
}

/// A counter key's total for one pod, with the latest provenance seen for the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterTotal {
    /// Pod of the counting proxy.
    pub pod: String,
    /// Namespace of the counting proxy.
    pub namespace: String,
    /// Workload of the counting proxy.
    pub workload: String,
    /// Key, provenance and `count` = the sum over all applied batches.
    pub counter: Counter,
}

/// Loss accounting and activity of one proxy instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyReport {
    /// Identity from the instance's latest batch.
    pub proxy: Arc<ProxyIdentity>,
    /// Highest sequence applied.
    pub last_sequence: u64,
    /// Batches applied (duplicates not counted).
    pub batches: u64,
    /// Sequence numbers skipped and not (yet) received.
    pub missing_batches: u64,
    /// Latest cumulative count of records the instance dropped.
    pub dropped_records: u64,
    /// Latest cumulative count of requests counted under the overflow key.
    pub dropped_counter_keys: u64,
    /// Last push received, ns since the Unix epoch.
    pub last_seen_unix_nanos: u64,
    /// Records received from this instance.
    pub records: u64,
}

/// Size and loss of the store itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Records held now.
    pub records: u64,
    /// Records evicted to stay within the cap, since start.
    pub evicted_records: u64,
    /// Proxy instances known.
    pub proxies: u64,
}

/// A storage backend failed (never for the memory store; a durable store may).
#[derive(Debug, thiserror::Error)]
#[error("store backend: {0}")]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Where the aggregator keeps records, counters and proxy status. Synchronous on purpose: one
/// task owns it, so no locking is needed; a durable implementation does its own I/O inside.
pub trait Store: Send + 'static {
    /// Applies a batch at most once per (instance_id, sequence). A batch already applied returns
    /// `duplicate: true` and changes nothing.
    fn apply_push(
        &mut self,
        batch: PushBatch,
        now_unix_nanos: u64,
    ) -> Result<PushOutcome, StoreError>;

    /// Applies several batches, in order, with one outcome each; what they did is the same as
    /// applying them one by one. A durable store commits them together (one disk write for the
    /// group), so every outcome is known only once all are stored.
    fn apply_pushes(
        &mut self,
        batches: Vec<PushBatch>,
        now_unix_nanos: u64,
    ) -> Vec<Result<PushOutcome, StoreError>> {
        batches
            .into_iter()
            .map(|batch| self.apply_push(batch, now_unix_nanos))
            .collect()
    }

    /// Matching records, newest first, at most `limit`.
    fn list_records(&self, filter: &RecordFilter, limit: usize) -> Result<RecordPage, StoreError>;

    /// Counter totals per (pod, namespace, workload, route, cluster, code).
    fn list_counters(&self, filter: &CounterFilter) -> Result<Vec<CounterTotal>, StoreError>;

    /// Every proxy instance that has pushed.
    fn list_proxies(&self) -> Result<Vec<ProxyReport>, StoreError>;

    /// Size and eviction counts.
    fn stats(&self) -> StoreStats;

    /// Background upkeep (retention) in one small step, so ingest never waits long behind it;
    /// true when more is due right away. The aggregator calls it about once a second and again
    /// between pushes while it returns true. `now_unix_nanos` is the aggregator's clock.
    fn maintain(&mut self, now_unix_nanos: u64) -> Result<bool, StoreError> {
        let _ = now_unix_nanos;
        Ok(false)
    }

    /// Runs the explain engine over the stored records. The default reads through
    /// [`Store::list_records`] (a copy of the window, which a durable store materialises anyway)
    /// and computes no share of traffic, since cumulative counters cannot be windowed; stores that
    /// keep records in memory override it to group by reference and window their counters.
    fn explain(&self, query: &ExplainQuery) -> Result<ExplainAnswer, StoreError> {
        let filter = RecordFilter {
            since_unix_nanos: (query.request_id.is_none() && query.scope.since_unix_nanos > 0)
                .then_some(query.scope.since_unix_nanos),
            request_id: query.request_id.clone(),
            ..RecordFilter::default()
        };
        let page = self.list_records(&filter, usize::MAX)?;
        let proxies = self.list_proxies()?;
        let input = Input {
            records: page
                .records
                .iter()
                .map(|stored| RecordRef::new(&stored.proxy, &stored.record))
                .collect(),
            successes: Vec::new(),
            proxies: proxies.iter().map(|report| &*report.proxy).collect(),
            window_complete: false,
        };
        Ok(run_explain(&input, query))
    }
}

/// What to explain: a window within a scope, or one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExplainQuery {
    /// Filters and window start.
    pub scope: Scope,
    /// Explain this request id end to end instead of the window.
    pub request_id: Option<String>,
    /// At most this many findings; 0 = the engine default.
    pub limit: usize,
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ExplainAnswer {
    /// Findings over a window.
    Window(Report),
    /// One request, hop by hop (boxed: it holds whole records).
    Request(Box<RequestReport>),
}

/// Runs the engine in the mode `query` asks for.
pub fn run_explain(input: &Input<'_>, query: &ExplainQuery) -> ExplainAnswer {
    match &query.request_id {
        Some(id) => ExplainAnswer::Request(Box::new(explain::explain_request(input, id))),
        None => ExplainAnswer::Window(explain::explain(input, &query.scope, query.limit)),
    }
}

/// A store chosen at run time (`--store`): forwards everything, overrides included.
impl Store for Box<dyn Store> {
    fn apply_push(
        &mut self,
        batch: PushBatch,
        now_unix_nanos: u64,
    ) -> Result<PushOutcome, StoreError> {
        (**self).apply_push(batch, now_unix_nanos)
    }
    fn apply_pushes(
        &mut self,
        batches: Vec<PushBatch>,
        now_unix_nanos: u64,
    ) -> Vec<Result<PushOutcome, StoreError>> {
        (**self).apply_pushes(batches, now_unix_nanos)
    }
    fn list_records(&self, filter: &RecordFilter, limit: usize) -> Result<RecordPage, StoreError> {
        (**self).list_records(filter, limit)
    }
    fn list_counters(&self, filter: &CounterFilter) -> Result<Vec<CounterTotal>, StoreError> {
        (**self).list_counters(filter)
    }
    fn list_proxies(&self) -> Result<Vec<ProxyReport>, StoreError> {
        (**self).list_proxies()
    }
    fn stats(&self) -> StoreStats {
        (**self).stats()
    }
    fn maintain(&mut self, now_unix_nanos: u64) -> Result<bool, StoreError> {
        (**self).maintain(now_unix_nanos)
    }
    fn explain(&self, query: &ExplainQuery) -> Result<ExplainAnswer, StoreError> {
        (**self).explain(query)
    }
}
