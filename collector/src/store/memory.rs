//! The in-memory store: bounded record ring, exact counters, per-instance loss accounting.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use meshwhy_proto::v1::{Counter, DecisionRecord, ProxyIdentity};

use super::sequence::SequenceWindow;
use super::{
    CounterFilter, CounterTotal, ExplainAnswer, ExplainQuery, ProxyReport, PushBatch, PushOutcome,
    RecordFilter, RecordPage, Store, StoreError, StoreStats, StoredRecord, run_explain,
};
use crate::explain::hash::FxHashMap;
use crate::explain::{Hints, Input, RecordRef, TrafficCount, request_hash};

/// `RecordMeta::previous_same_request` of a record that is the oldest held with its id hash.
const NO_RECORD: u64 = u64::MAX;

/// Width of a counter time bucket: success counts are kept per minute of arrival so explain can
/// window them like records.
const BUCKET_NANOS: u64 = 60 * 1_000_000_000;
/// Buckets kept per counter key (a day of minutes; idle minutes take no space).
const MAX_BUCKETS: usize = 24 * 60;

/// Keeps everything in memory: the embedded default until the durable store lands. Records are
/// capped (oldest evicted first, evictions counted); counters and proxies are small.
#[derive(Debug)]
pub struct MemoryStore {
    max_records: usize,
    records: VecDeque<StoredRecord>,
    /// What explain reads of each record, computed at ingest while the record is hot in cache;
    /// index-aligned with `records`, compact, so explain streams through it instead of touching
    /// every record.
    meta: VecDeque<RecordMeta>,
    /// Request id hash → position (see [`MemoryStore::position`]) of the newest held record with
    /// that hash; older ones are chained through `RecordMeta::previous_same_request`, so looking
    /// up a request id reads only its own records instead of scanning the store.
    by_request: FxHashMap<u64, u64>,
    /// Records evicted since start; also the position of `records[0]`.
    evicted_records: u64,
    /// Latest start time among evicted records: a window reaching back to it is incomplete.
    evicted_until_unix_nanos: u64,
    proxies: HashMap<String, ProxyState>,
    counters: BTreeMap<CounterKey, CounterState>,
    /// End of the newest counter bucket dropped for age: windows reaching back to it lack counts.
    buckets_dropped_until_unix_nanos: u64,
}

/// A record's explain hints and its sender (a copy of `StoredRecord::proxy`, kept beside the
/// hints so building explain's input reads no record).
#[derive(Debug)]
struct RecordMeta {
    hints: Hints,
    proxy: Arc<ProxyIdentity>,
    /// Position of the next older record with the same request id hash, or [`NO_RECORD`]. A
    /// position below the oldest held one means that record was evicted: the chain ends there,
    /// so eviction never has to walk or rewrite chains.
    previous_same_request: u64,
}

/// A counter key's total, its latest provenance, and its per-minute counts.
#[derive(Debug, Default)]
struct CounterState {
    total: Counter,
    /// (minute start, count), oldest first.
    buckets: VecDeque<(u64, u64)>,
}

impl CounterState {
    /// Successes counted in buckets that end after `since`.
    fn since(&self, since_unix_nanos: u64) -> u64 {
        if since_unix_nanos == 0 {
            return self.total.count;
        }
        self.buckets
            .iter()
            .rev()
            .take_while(|(start, _)| start.saturating_add(BUCKET_NANOS) > since_unix_nanos)
            .map(|(_, count)| count)
            .sum()
    }
}

/// One instance's identity, applied sequences and loss accounting.
#[derive(Debug, Clone)]
pub(super) struct ProxyState {
    pub(super) identity: Arc<ProxyIdentity>,
    pub(super) window: SequenceWindow,
    pub(super) batches: u64,
    pub(super) records: u64,
    pub(super) dropped_records: u64,
    pub(super) dropped_counter_keys: u64,
    pub(super) last_seen_unix_nanos: u64,
}

/// Counters are summed per pod (not per VM instance: a pod's worker VMs are one workload
/// replica to the user) and per (route, cluster, code).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct CounterKey {
    pub(super) namespace: String,
    pub(super) workload: String,
    pub(super) pod: String,
    pub(super) route_name: String,
    pub(super) cluster: String,
    pub(super) response_code: u32,
}

impl CounterKey {
    /// The key `counter` from `proxy` is summed under.
    pub(super) fn of(proxy: &ProxyIdentity, counter: &Counter) -> Self {
        Self {
            namespace: proxy.namespace.clone(),
            workload: proxy.workload.clone(),
            pod: proxy.pod.clone(),
            route_name: counter.route_name.clone(),
            cluster: counter.cluster.clone(),
            response_code: counter.response_code,
        }
    }
}

impl MemoryStore {
    /// An empty store holding at most `max_records` records (at least one is always kept).
    pub fn new(max_records: usize) -> Self {
        Self {
            max_records: max_records.max(1),
            records: VecDeque::new(),
            meta: VecDeque::new(),
            by_request: FxHashMap::default(),
            evicted_records: 0,
            evicted_until_unix_nanos: 0,
            proxies: HashMap::new(),
            counters: BTreeMap::new(),
            buckets_dropped_until_unix_nanos: 0,
        }
    }

    /// The position of `records[index]`: its arrival number since start, which never changes
    /// while the record is held (eviction only removes from the front).
    fn position(&self, index: usize) -> u64 {
        self.evicted_records + index as u64
    }

    /// Indices into `records` of the held records with request id `id`, newest first; `None`
    /// for an empty id (not indexed: every record without an id would share one chain).
    fn with_request_id<'a>(&'a self, id: &'a str) -> Option<impl Iterator<Item = usize> + 'a> {
        let hash = request_hash(id);
        if hash == 0 {
            return None;
        }
        let mut next = self.by_request.get(&hash).copied().unwrap_or(NO_RECORD);
        Some(std::iter::from_fn(move || {
            loop {
                // Below the oldest held position (or NO_RECORD's wrap): evicted, the chain ends.
                let index = usize::try_from(next.checked_sub(self.evicted_records)?).ok()?;
                let meta = self.meta.get(index)?;
                next = meta.previous_same_request;
                // Different ids can share a hash: compare the id itself.
                if self.records.get(index)?.record.request_id == id {
                    return Some(index);
                }
            }
        }))
    }

    /// Whether every record and success count since `since` is still held.
    fn complete_since(&self, since_unix_nanos: u64) -> bool {
        let records = self.evicted_records == 0 || since_unix_nanos > self.evicted_until_unix_nanos;
        let counters = self.buckets_dropped_until_unix_nanos == 0
            || since_unix_nanos >= self.buckets_dropped_until_unix_nanos;
        records && counters
    }

    fn add_counters(&mut self, proxy: &ProxyIdentity, counters: Vec<Counter>, now_unix_nanos: u64) {
        for counter in counters {
            let key = CounterKey::of(proxy, &counter);
            let state = self.counters.entry(key).or_default();
            let delta = counter.count;
            let count = state.total.count.saturating_add(delta);
            // The latest batch's provenance wins: a config push can change what a route came from.
            state.total = Counter { count, ..counter };
            let minute = now_unix_nanos - now_unix_nanos % BUCKET_NANOS;
            match state.buckets.back_mut() {
                Some((start, count)) if *start == minute => *count = count.saturating_add(delta),
                _ => state.buckets.push_back((minute, delta)),
            }
            if state.buckets.len() > MAX_BUCKETS
                && let Some((start, _)) = state.buckets.pop_front()
            {
                self.buckets_dropped_until_unix_nanos = self
                    .buckets_dropped_until_unix_nanos
                    .max(start + BUCKET_NANOS);
            }
        }
    }
}

/// What applying one batch does to its instance's state, worked out before anything changes
/// (see [`MemoryStore::plan_push`]): a durable store writes it to disk first and only then lets
/// the memory side take it, so a failed write leaves memory untouched.
#[derive(Debug)]
pub(super) struct PushPlan {
    /// The instance's state once the batch is applied.
    pub(super) state: ProxyState,
    /// The identity the batch's records are stored under.
    pub(super) identity: Arc<ProxyIdentity>,
}

impl MemoryStore {
    /// The state `batch` leads to, or `None` when it was already applied (a duplicate).
    pub(super) fn plan_push(&self, batch: &PushBatch, now_unix_nanos: u64) -> Option<PushPlan> {
        self.plan_push_from(None, batch, now_unix_nanos)
    }

    /// Like [`MemoryStore::plan_push`] from `current` instead of the held state of the batch's
    /// instance, when given (a batch planned after others of its instance not yet committed).
    pub(super) fn plan_push_from(
        &self,
        current: Option<&ProxyState>,
        batch: &PushBatch,
        now_unix_nanos: u64,
    ) -> Option<PushPlan> {
        let proxy = &batch.proxy;
        let current = current.or_else(|| self.proxies.get(&proxy.instance_id));
        let mut state = match current {
            Some(state) => state.clone(),
            None => ProxyState {
                identity: Arc::new(proxy.clone()),
                window: SequenceWindow::default(),
                batches: 0,
                records: 0,
                dropped_records: 0,
                dropped_counter_keys: 0,
                last_seen_unix_nanos: 0,
            },
        };
        if !state.window.insert(batch.sequence) {
            return None;
        }
        // Records share their sender's identity instead of each carrying a copy.
        let identity = if *state.identity == *proxy {
            Arc::clone(&state.identity)
        } else {
            Arc::new(proxy.clone())
        };
        // The newest batch describes the instance; a late one must not roll it back.
        if batch.sequence == state.window.highest() {
            state.identity = Arc::clone(&identity);
        }
        state.batches += 1;
        state.records += batch.records.len() as u64;
        // Drop counts are cumulative, so the largest is the latest even when batches reorder.
        state.dropped_records = state.dropped_records.max(batch.dropped_records);
        state.dropped_counter_keys = state.dropped_counter_keys.max(batch.dropped_counter_keys);
        state.last_seen_unix_nanos = now_unix_nanos;
        Some(PushPlan { state, identity })
    }

    /// Applies a batch [`MemoryStore::plan_push`] planned.
    pub(super) fn commit_push(&mut self, plan: PushPlan, batch: PushBatch, now_unix_nanos: u64) {
        let PushPlan { state, identity } = plan;
        self.proxies.insert(batch.proxy.instance_id, state);
        for record in batch.records {
            self.push_record(&identity, record, now_unix_nanos);
        }
        self.enforce_cap();
        self.add_counters(&identity, batch.counters, now_unix_nanos);
    }

    /// Appends one record (newest); the cap is enforced separately.
    fn push_record(
        &mut self,
        identity: &Arc<ProxyIdentity>,
        record: DecisionRecord,
        received_unix_nanos: u64,
    ) {
        let hints = Hints::of(identity, &record);
        let previous_same_request = if hints.request == 0 {
            NO_RECORD
        } else {
            let position = self.position(self.records.len());
            self.by_request
                .insert(hints.request, position)
                .unwrap_or(NO_RECORD)
        };
        self.meta.push_back(RecordMeta {
            hints,
            proxy: Arc::clone(identity),
            previous_same_request,
        });
        self.records.push_back(StoredRecord {
            record,
            proxy: Arc::clone(identity),
            received_unix_nanos,
        });
    }

    fn enforce_cap(&mut self) {
        let over = self.records.len().saturating_sub(self.max_records);
        self.evict_oldest(over);
    }

    /// Evicts the `count` oldest records (fewer if fewer are held).
    pub(super) fn evict_oldest(&mut self, count: usize) {
        for _ in 0..count.min(self.records.len()) {
            let position = self.position(0);
            // The newest record of its id hash leaving means all of them have left.
            if let Some(meta) = self.meta.pop_front()
                && meta.hints.request != 0
                && self.by_request.get(&meta.hints.request) == Some(&position)
            {
                self.by_request.remove(&meta.hints.request);
            }
            if let Some(evicted) = self.records.pop_front() {
                self.evicted_until_unix_nanos = self
                    .evicted_until_unix_nanos
                    .max(evicted.record.start_time_unix_nanos);
            }
            self.evicted_records += 1;
        }
    }

    /// Records held now.
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// The cap given to [`MemoryStore::new`].
    pub(super) fn max_records(&self) -> usize {
        self.max_records
    }

    /// Whether every record that started at or after `since` is held (none was evicted).
    pub(super) fn records_complete_since(&self, since_unix_nanos: u64) -> bool {
        self.evicted_records == 0 || since_unix_nanos > self.evicted_until_unix_nanos
    }

    /// Restore after a restart: `count` records exist elsewhere (on disk) but are not loaded,
    /// the latest of them started at `until`. Call before [`MemoryStore::restore_record`].
    pub(super) fn restore_unloaded(&mut self, count: u64, until_unix_nanos: u64) {
        self.evicted_records += count;
        self.evicted_until_unix_nanos = self.evicted_until_unix_nanos.max(until_unix_nanos);
    }

    /// Restore after a restart: one record, oldest first.
    pub(super) fn restore_record(
        &mut self,
        identity: &Arc<ProxyIdentity>,
        record: DecisionRecord,
        received_unix_nanos: u64,
    ) {
        self.push_record(identity, record, received_unix_nanos);
        self.enforce_cap();
    }

    /// Restore after a restart: an instance's state.
    pub(super) fn restore_proxy(&mut self, state: ProxyState) {
        self.proxies
            .insert(state.identity.instance_id.clone(), state);
    }

    /// Restore after a restart: a counter key's latest value (its `count` ignored) and its
    /// per-minute counts, oldest first; the total is their sum.
    pub(super) fn restore_counter(
        &mut self,
        key: CounterKey,
        latest: Counter,
        buckets: Vec<(u64, u64)>,
    ) {
        let count = buckets.iter().map(|(_, count)| count).sum();
        let mut buckets: VecDeque<(u64, u64)> = buckets.into();
        while buckets.len() > MAX_BUCKETS
            && let Some((start, _)) = buckets.pop_front()
        {
            self.buckets_dropped_until_unix_nanos = self
                .buckets_dropped_until_unix_nanos
                .max(start + BUCKET_NANOS);
        }
        self.counters.insert(
            key,
            CounterState {
                total: Counter { count, ..latest },
                buckets,
            },
        );
    }

    /// Retention: forgets success counts of minutes that ended at or before `cutoff` (the
    /// totals shrink with them, as they would after a restart).
    pub(super) fn forget_counts_before(&mut self, cutoff_unix_nanos: u64) {
        for state in self.counters.values_mut() {
            while let Some(&(start, count)) = state.buckets.front()
                && start.saturating_add(BUCKET_NANOS) <= cutoff_unix_nanos
            {
                state.buckets.pop_front();
                state.total.count = state.total.count.saturating_sub(count);
                self.buckets_dropped_until_unix_nanos = self
                    .buckets_dropped_until_unix_nanos
                    .max(start + BUCKET_NANOS);
            }
        }
        self.counters
            .retain(|_, state| !state.buckets.is_empty() || state.total.count > 0);
    }
}

impl Store for MemoryStore {
    fn apply_push(
        &mut self,
        batch: PushBatch,
        now_unix_nanos: u64,
    ) -> Result<PushOutcome, StoreError> {
        match self.plan_push(&batch, now_unix_nanos) {
            Some(plan) => {
                self.commit_push(plan, batch, now_unix_nanos);
                Ok(PushOutcome { duplicate: false })
            }
            None => Ok(PushOutcome { duplicate: true }),
        }
    }

    fn list_records(&self, filter: &RecordFilter, limit: usize) -> Result<RecordPage, StoreError> {
        let mut page = RecordPage::default();
        let indexed = filter
            .request_id
            .as_deref()
            .and_then(|id| self.with_request_id(id));
        let candidates: Box<dyn Iterator<Item = &StoredRecord>> = match indexed {
            Some(indices) => Box::new(indices.filter_map(|index| self.records.get(index))),
            None => Box::new(self.records.iter().rev()),
        };
        for stored in candidates {
            if !filter.matches(&stored.proxy, &stored.record) {
                continue;
            }
            if page.records.len() < limit {
                page.records.push(stored.clone());
            } else {
                page.truncated += 1;
            }
        }
        // Arrival order is only roughly time order (proxies flush on their own ticks).
        page.records.sort_by(|a, b| {
            b.record
                .start_time_unix_nanos
                .cmp(&a.record.start_time_unix_nanos)
        });
        Ok(page)
    }

    fn list_counters(&self, filter: &CounterFilter) -> Result<Vec<CounterTotal>, StoreError> {
        let wanted = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        Ok(self
            .counters
            .iter()
            .filter(|(key, _)| {
                wanted(&filter.namespace, &key.namespace) && wanted(&filter.workload, &key.workload)
            })
            .map(|(key, state)| CounterTotal {
                pod: key.pod.clone(),
                namespace: key.namespace.clone(),
                workload: key.workload.clone(),
                counter: state.total.clone(),
            })
            .collect())
    }

    fn list_proxies(&self) -> Result<Vec<ProxyReport>, StoreError> {
        let mut proxies: Vec<ProxyReport> = self
            .proxies
            .values()
            .map(|state| ProxyReport {
                proxy: Arc::clone(&state.identity),
                last_sequence: state.window.highest(),
                batches: state.batches,
                missing_batches: state.window.missing(),
                dropped_records: state.dropped_records,
                dropped_counter_keys: state.dropped_counter_keys,
                last_seen_unix_nanos: state.last_seen_unix_nanos,
                records: state.records,
            })
            .collect();
        proxies.sort_by(|a, b| {
            (&a.proxy.namespace, &a.proxy.pod, &a.proxy.instance_id).cmp(&(
                &b.proxy.namespace,
                &b.proxy.pod,
                &b.proxy.instance_id,
            ))
        });
        Ok(proxies)
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            records: self.records.len() as u64,
            evicted_records: self.evicted_records,
            proxies: self.proxies.len() as u64,
        }
    }

    /// Groups the held records by reference (nothing is cloned) and windows the counters.
    fn explain(&self, query: &ExplainQuery) -> Result<ExplainAnswer, StoreError> {
        let since = query.scope.since_unix_nanos;
        let record_ref = |index: usize| {
            let (stored, meta) = (self.records.get(index)?, self.meta.get(index)?);
            Some(RecordRef {
                proxy: &meta.proxy,
                record: &stored.record,
                hints: meta.hints,
            })
        };
        let records: Vec<RecordRef<'_>> = match query.request_id.as_deref() {
            // One request: its records from the index, in arrival order like a scan would give.
            Some(id) => match self.with_request_id(id) {
                Some(indices) => {
                    let mut indices: Vec<usize> = indices.collect();
                    indices.reverse();
                    indices.into_iter().filter_map(record_ref).collect()
                }
                // The empty id is not indexed.
                None => (0..self.records.len())
                    .filter_map(record_ref)
                    .filter(|item| item.record.request_id == id)
                    .collect(),
            },
            None => self
                .records
                .iter()
                .zip(&self.meta)
                .map(|(stored, meta)| RecordRef {
                    proxy: &meta.proxy,
                    record: &stored.record,
                    hints: meta.hints,
                })
                .collect(),
        };
        let successes = self
            .counters
            .iter()
            .filter_map(|(key, state)| {
                let count = state.since(since);
                (count > 0).then_some(TrafficCount {
                    namespace: &key.namespace,
                    workload: &key.workload,
                    pod: &key.pod,
                    route_name: &key.route_name,
                    cluster: &key.cluster,
                    subset: &state.total.cluster_subset,
                    response_code: key.response_code,
                    virtual_host: &state.total.virtual_host,
                    route_provenance: &state.total.route_provenance,
                    count,
                })
            })
            .collect();
        let input = Input {
            records,
            successes,
            proxies: self
                .proxies
                .values()
                .map(|state| &*state.identity)
                .collect(),
            window_complete: self.complete_since(since),
        };
        Ok(run_explain(&input, query))
    }
}

#[cfg(test)]
mod tests {
    use meshwhy_proto::v1::Direction;

    use super::*;

    fn proxy(instance: &str, pod: &str) -> ProxyIdentity {
        ProxyIdentity {
            instance_id: instance.into(),
            pod: pod.into(),
            namespace: "shop".into(),
            workload: "reviews".into(),
            ..Default::default()
        }
    }

    fn record(request_id: &str, code: u32, flags: u64, start: u64) -> DecisionRecord {
        DecisionRecord {
            request_id: request_id.into(),
            response_code: code,
            response_flags: flags,
            start_time_unix_nanos: start,
            direction: Direction::Outbound as i32,
            ..Default::default()
        }
    }

    fn counter(route: &str, count: u64) -> Counter {
        Counter {
            route_name: route.into(),
            cluster: "outbound|9080||reviews".into(),
            response_code: 200,
            count,
            ..Default::default()
        }
    }

    fn batch(instance: &str, sequence: u64, records: Vec<DecisionRecord>) -> PushBatch {
        PushBatch {
            proxy: proxy(instance, "reviews-1"),
            sequence,
            records,
            counters: vec![counter("default", 5)],
            dropped_records: 0,
            dropped_counter_keys: 0,
        }
    }

    fn all(store: &MemoryStore) -> RecordPage {
        store
            .list_records(&RecordFilter::default(), usize::MAX)
            .unwrap()
    }

    #[test]
    fn a_batch_applies_once() {
        let mut store = MemoryStore::new(100);
        let first = batch("a", 1, vec![record("r1", 503, 1 << 5, 10)]);
        assert!(!store.apply_push(first.clone(), 1).unwrap().duplicate);
        assert!(store.apply_push(first, 2).unwrap().duplicate);
        assert_eq!(all(&store).records.len(), 1);
        let counters = store.list_counters(&CounterFilter::default()).unwrap();
        assert_eq!(counters.len(), 1);
        assert_eq!(counters[0].counter.count, 5);
        let proxies = store.list_proxies().unwrap();
        assert_eq!(proxies[0].batches, 1);
        assert_eq!(proxies[0].records, 1);
        assert_eq!(
            proxies[0].last_seen_unix_nanos, 1,
            "a duplicate changes nothing"
        );
    }

    #[test]
    fn sequences_are_per_instance() {
        let mut store = MemoryStore::new(100);
        assert!(
            !store
                .apply_push(batch("a", 1, vec![]), 1)
                .unwrap()
                .duplicate
        );
        assert!(
            !store
                .apply_push(batch("b", 1, vec![]), 1)
                .unwrap()
                .duplicate
        );
        let counters = store.list_counters(&CounterFilter::default()).unwrap();
        assert_eq!(counters[0].counter.count, 10, "both VMs of one pod add up");
        assert_eq!(store.list_proxies().unwrap().len(), 2);
    }

    #[test]
    fn gaps_are_missing_until_filled() {
        let mut store = MemoryStore::new(100);
        store.apply_push(batch("a", 1, vec![]), 1).unwrap();
        store.apply_push(batch("a", 4, vec![]), 2).unwrap();
        let report = &store.list_proxies().unwrap()[0];
        assert_eq!(report.missing_batches, 2);
        assert_eq!(report.last_sequence, 4);
        store.apply_push(batch("a", 2, vec![]), 3).unwrap();
        let report = &store.list_proxies().unwrap()[0];
        assert_eq!(report.missing_batches, 1);
        assert_eq!(report.batches, 3);
    }

    #[test]
    fn drop_counts_keep_the_latest_cumulative_value() {
        let mut store = MemoryStore::new(100);
        let mut late = batch("a", 2, vec![]);
        late.dropped_records = 3;
        let mut newer = batch("a", 3, vec![]);
        newer.dropped_records = 7;
        newer.dropped_counter_keys = 2;
        store.apply_push(newer, 1).unwrap();
        store.apply_push(late, 2).unwrap();
        let report = &store.list_proxies().unwrap()[0];
        assert_eq!(report.dropped_records, 7);
        assert_eq!(report.dropped_counter_keys, 2);
    }

    #[test]
    fn identity_follows_the_newest_batch() {
        let mut store = MemoryStore::new(100);
        let mut second = batch("a", 2, vec![]);
        second.proxy.workload = "reviews-v2".into();
        store.apply_push(second, 1).unwrap();
        store.apply_push(batch("a", 1, vec![]), 2).unwrap();
        assert_eq!(
            store.list_proxies().unwrap()[0].proxy.workload,
            "reviews-v2"
        );
    }

    #[test]
    fn oldest_records_are_evicted_and_counted() {
        let mut store = MemoryStore::new(3);
        let records = (0..5)
            .map(|i| record(&format!("r{i}"), 503, 0, i))
            .collect();
        store.apply_push(batch("a", 1, records), 1).unwrap();
        let page = all(&store);
        let ids: Vec<_> = page
            .records
            .iter()
            .map(|r| r.record.request_id.as_str())
            .collect();
        assert_eq!(ids, ["r4", "r3", "r2"]);
        assert_eq!(store.stats().evicted_records, 2);
        assert_eq!(store.stats().records, 3);
    }

    fn ids_of(page: &RecordPage) -> Vec<(String, u64)> {
        page.records
            .iter()
            .map(|r| (r.record.request_id.clone(), r.record.start_time_unix_nanos))
            .collect()
    }

    /// What the index must agree with: a scan of every held record.
    fn scanned(store: &MemoryStore, id: &str) -> Vec<(String, u64)> {
        let mut held: Vec<_> = store
            .records
            .iter()
            .rev()
            .filter(|stored| stored.record.request_id == id)
            .map(|r| (r.record.request_id.clone(), r.record.start_time_unix_nanos))
            .collect();
        held.sort_by_key(|&(_, start)| std::cmp::Reverse(start));
        held
    }

    fn by_id(store: &MemoryStore, id: &str, limit: usize) -> RecordPage {
        let filter = RecordFilter {
            request_id: Some(id.into()),
            ..Default::default()
        };
        store.list_records(&filter, limit).unwrap()
    }

    #[test]
    fn request_id_lookups_follow_eviction() {
        let mut store = MemoryStore::new(4);
        // "x" at arrival 0, 2 and 5 (a call chain's hops arrive in separate batches).
        let ids = ["x", "a", "x", "b", "c", "x", "d"];
        for (n, id) in ids.iter().enumerate() {
            let records = vec![record(id, 503, 0, n as u64)];
            store
                .apply_push(batch("a", n as u64 + 1, records), 1)
                .unwrap();
            for id in ["x", "a", "b", "c", "d", "missing"] {
                assert_eq!(
                    ids_of(&by_id(&store, id, usize::MAX)),
                    scanned(&store, id),
                    "id {id} after {} pushes",
                    n + 1
                );
            }
        }
        // Held now: b(3) c(4) x(5) d(6); x's older records were evicted.
        assert_eq!(ids_of(&by_id(&store, "x", 10)), [("x".to_owned(), 5)]);
        assert!(by_id(&store, "a", 10).records.is_empty());
        // Only held ids keep an index entry.
        assert_eq!(store.by_request.len(), 4);
    }

    #[test]
    fn request_id_lookups_page_like_a_scan() {
        let mut store = MemoryStore::new(100);
        let records = (0..5).map(|i| record("same", 503, 0, 10 - i)).collect();
        store.apply_push(batch("a", 1, records), 1).unwrap();
        let page = by_id(&store, "same", 2);
        assert_eq!(page.truncated, 3);
        assert_eq!(ids_of(&page), scanned(&store, "same")[3..]);
        // Other filters still apply to the indexed candidates.
        let filter = RecordFilter {
            request_id: Some("same".into()),
            since_unix_nanos: Some(8),
            ..Default::default()
        };
        assert_eq!(store.list_records(&filter, 10).unwrap().records.len(), 3);
    }

    #[test]
    fn request_id_index_agrees_with_a_scan_under_churn() {
        // Ids from a small pool, batches of varying size, a small cap: every id's chain gets
        // cut by eviction at every possible point.
        let mut store = MemoryStore::new(50);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pool: Vec<String> = (0..20).map(|i| format!("req-{i}")).collect();
        let mut start = 0;
        for sequence in 1..=200 {
            let records = (0..next() % 9)
                .map(|_| {
                    start += 1;
                    record(&pool[(next() % 20) as usize], 503, 0, start)
                })
                .collect();
            store.apply_push(batch("a", sequence, records), 1).unwrap();
            for id in &pool {
                assert_eq!(ids_of(&by_id(&store, id, usize::MAX)), scanned(&store, id));
            }
            assert!(store.by_request.len() <= store.records.len());
        }
        assert!(store.stats().evicted_records > 0);
    }

    #[test]
    fn explain_one_request_after_eviction() {
        let mut store = MemoryStore::new(2);
        store
            .apply_push(batch("a", 1, vec![refused("r1", 1), refused("r2", 2)]), 1)
            .unwrap();
        store
            .apply_push(batch("a", 2, vec![refused("r1", 3)]), 1)
            .unwrap();
        let explain = |id: &str| {
            let query = ExplainQuery {
                request_id: Some(id.into()),
                ..Default::default()
            };
            match store.explain(&query).unwrap() {
                ExplainAnswer::Request(report) => report,
                ExplainAnswer::Window(_) => panic!("request expected"),
            }
        };
        let r1 = explain("r1");
        assert_eq!(r1.hops.len(), 1, "the evicted first r1 record is gone");
        let client = r1.hops[0].client.as_ref().unwrap();
        assert_eq!(client.record.start_time_unix_nanos, 3);
        assert_eq!(explain("r2").hops.len(), 1);
        assert!(explain("gone").hops.is_empty());
    }

    #[test]
    fn filters_and_limit() {
        let mut store = MemoryStore::new(100);
        let records = vec![
            record("r1", 503, (1 << 5) | (1 << 15), 100),
            record("r2", 503, 1 << 5, 200),
            record("r3", 404, 1 << 8, 300),
            record("r4", 504, 1 << 2, 400),
        ];
        store.apply_push(batch("a", 1, records), 1).unwrap();
        let mut other = batch("b", 1, vec![record("r5", 503, 0, 500)]);
        other.proxy.namespace = "pay".into();
        other.proxy.pod = "pay-1".into();
        other.proxy.workload = "pay".into();
        store.apply_push(other, 2).unwrap();

        let ids = |filter: RecordFilter, limit: usize| -> (Vec<String>, u64) {
            let page = store.list_records(&filter, limit).unwrap();
            let ids = page
                .records
                .into_iter()
                .map(|r| r.record.request_id)
                .collect();
            (ids, page.truncated)
        };
        assert_eq!(
            ids(RecordFilter::default(), 2),
            (vec!["r5".into(), "r4".into()], 3)
        );
        let code = RecordFilter {
            response_code: Some(503),
            ..Default::default()
        };
        assert_eq!(ids(code, 10).0, ["r5", "r2", "r1"]);
        let flags = RecordFilter {
            flags_all: (1 << 5) | (1 << 15),
            ..Default::default()
        };
        assert_eq!(ids(flags, 10).0, ["r1"]);
        let since = RecordFilter {
            since_unix_nanos: Some(300),
            ..Default::default()
        };
        assert_eq!(ids(since, 10).0, ["r5", "r4", "r3"]);
        let namespace = RecordFilter {
            namespace: Some("pay".into()),
            ..Default::default()
        };
        assert_eq!(ids(namespace, 10).0, ["r5"]);
        let pod = RecordFilter {
            pod: Some("reviews-1".into()),
            workload: Some("reviews".into()),
            request_id: Some("r3".into()),
            ..Default::default()
        };
        assert_eq!(ids(pod, 10).0, ["r3"]);
    }

    #[test]
    fn counters_filter_and_keep_latest_provenance() {
        let mut store = MemoryStore::new(100);
        let mut first = batch("a", 1, vec![]);
        first.counters[0].route_provenance = "/old".into();
        let mut second = batch("a", 2, vec![]);
        second.counters[0].route_provenance = "/new".into();
        store.apply_push(first, 1).unwrap();
        store.apply_push(second, 2).unwrap();
        let totals = store.list_counters(&CounterFilter::default()).unwrap();
        assert_eq!(totals[0].counter.count, 10);
        assert_eq!(totals[0].counter.route_provenance, "/new");
        let none = CounterFilter {
            namespace: Some("elsewhere".into()),
            workload: None,
        };
        assert!(store.list_counters(&none).unwrap().is_empty());
    }

    fn explain_window(store: &MemoryStore, since: u64) -> crate::explain::Report {
        let query = ExplainQuery {
            scope: crate::explain::Scope {
                since_unix_nanos: since,
                ..Default::default()
            },
            ..Default::default()
        };
        match store.explain(&query).unwrap() {
            ExplainAnswer::Window(report) => report,
            ExplainAnswer::Request(_) => panic!("window expected"),
        }
    }

    fn refused(id: &str, start: u64) -> DecisionRecord {
        DecisionRecord {
            response_code_details: "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}".into(),
            ..record(id, 503, 1 << 5, start)
        }
    }

    #[test]
    fn explain_windows_counters_by_arrival_minute() {
        let minute = 60 * 1_000_000_000;
        let mut store = MemoryStore::new(100);
        // Minute 0: 5 successes; minute 10: a failure and 5 more successes.
        store.apply_push(batch("a", 1, vec![]), 0).unwrap();
        store
            .apply_push(batch("a", 2, vec![refused("r1", 10 * minute)]), 10 * minute)
            .unwrap();
        let mut failure = refused("r1", 10 * minute);
        failure.cluster = "outbound|9080||reviews".into();
        let all = explain_window(&store, 0);
        assert_eq!(all.totals.successes, 10);
        assert_eq!(all.totals.failures, 1);
        assert!(all.totals.window_complete);
        let recent = explain_window(&store, 5 * minute);
        assert_eq!(recent.totals.successes, 5);
        assert_eq!(
            recent.findings[0].cause,
            crate::explain::Cause::UpstreamConnectFailed
        );
    }

    #[test]
    fn explain_share_of_traffic_uses_the_windowed_counters() {
        let mut store = MemoryStore::new(100);
        let mut failure = refused("r1", 5);
        failure.cluster = "outbound|9080||reviews".into();
        store.apply_push(batch("a", 1, vec![failure]), 1).unwrap();
        let report = explain_window(&store, 0);
        // 5 successes counted under the same (workload, cluster) + 1 failure.
        assert_eq!(
            report.findings[0].evidence.share_of_traffic,
            Some(1.0 / 6.0)
        );
    }

    #[test]
    fn explain_knows_when_evictions_cut_into_the_window() {
        let mut store = MemoryStore::new(2);
        let records = (0..4).map(|i| refused(&format!("r{i}"), 100 + i)).collect();
        store.apply_push(batch("a", 1, records), 1).unwrap();
        let report = explain_window(&store, 0);
        assert!(!report.totals.window_complete);
        assert_eq!(report.findings[0].evidence.share_of_traffic, None);
        assert!(explain_window(&store, 102).totals.window_complete);
    }

    #[test]
    fn explain_one_request() {
        let mut store = MemoryStore::new(100);
        store
            .apply_push(batch("a", 1, vec![refused("r1", 1), refused("r2", 2)]), 1)
            .unwrap();
        let query = ExplainQuery {
            request_id: Some("r2".into()),
            ..Default::default()
        };
        let ExplainAnswer::Request(report) = store.explain(&query).unwrap() else {
            panic!("request expected");
        };
        assert_eq!(report.hops.len(), 1);
        assert_eq!(
            report.hops[0].client.as_ref().unwrap().record.request_id,
            "r2"
        );
        assert!(report.finding.is_some());
    }

    /// Scale check: explain over many stored records. Prints the time; run with
    /// `MESHWHY_EXPLAIN_RECORDS=1000000 cargo test --release -p meshwhy-collector explain_at_scale -- --nocapture`
    /// for the 1M-record budget (200 ms). No timing assertion: CI machines are too noisy.
    #[test]
    fn explain_at_scale() {
        let count: usize = std::env::var("MESHWHY_EXPLAIN_RECORDS")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(20_000);
        let mut store = MemoryStore::new(count);
        let details = [
            "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
            "via_upstream",
            "response_timeout",
            "no_healthy_upstream",
        ];
        let flags = [(1 << 5) | (1 << 15), 0, 1 << 2, 1 << 1];
        let mut sequence = 0;
        for chunk in 0..count.div_ceil(1000) {
            let records = (0..1000.min(count - chunk * 1000))
                .map(|i| {
                    let n = chunk * 1000 + i;
                    let kind = n % 4;
                    let mut record = record(
                        &format!("{n:08x}-aaaa-bbbb-cccc-0123456789ab"),
                        503,
                        flags[kind],
                        n as u64,
                    );
                    record.response_code_details = details[kind].into();
                    record.cluster = format!("outbound|9080||svc{}.shop.svc.cluster.local", n % 7);
                    record.authority = format!("svc{}:9080", n % 7);
                    record.upstream_host = format!("10.0.{}.{}:9080", n % 7, n % 3);
                    // Injected endpoints, but for one Service without sidecars: the traffic
                    // rule (sidecar_missing) has real work for a seventh of the records.
                    if n % 7 != 6 {
                        record.endpoint_tls_mode = "istio".into();
                    }
                    record.path = format!("/items/{}", n % 50);
                    record.direction = if n % 10 == 9 {
                        Direction::Inbound as i32
                    } else {
                        Direction::Outbound as i32
                    };
                    record
                })
                .collect();
            sequence += 1;
            let mut batch = batch(&format!("i{}", chunk % 16), sequence, records);
            batch.proxy.pod = format!("pod-{}", chunk % 16);
            store.apply_push(batch, 1).unwrap();
        }
        let started = std::time::Instant::now();
        let report = explain_window(&store, 0);
        let elapsed = started.elapsed();
        println!(
            "explain over {count} records: {elapsed:?}, {} groups",
            report.totals.groups
        );
        assert_eq!(report.totals.records_scanned, count as u64);
        assert!(report.totals.groups >= 4);

        // One request among them: the index reads only its records.
        let id = format!("{:08x}-aaaa-bbbb-cccc-0123456789ab", count / 2);
        let started = std::time::Instant::now();
        let page = by_id(&store, &id, 10);
        let listed = started.elapsed();
        let query = ExplainQuery {
            request_id: Some(id.clone()),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let answer = store.explain(&query).unwrap();
        let explained = started.elapsed();
        println!("by request id over {count} records: list {listed:?}, explain {explained:?}");
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].record.request_id, id);
        let ExplainAnswer::Request(report) = answer else {
            panic!("request expected");
        };
        assert_eq!(report.hops.len(), 1);
    }
}
