//! The in-memory store: bounded record ring, exact counters, per-instance loss accounting.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use meshwhy_proto::v1::{Counter, ProxyIdentity};

use super::sequence::SequenceWindow;
use super::{
    CounterFilter, CounterTotal, ProxyReport, PushBatch, PushOutcome, RecordFilter, RecordPage,
    Store, StoreError, StoreStats, StoredRecord,
};

/// Keeps everything in memory: the embedded default until the durable store lands. Records are
/// capped (oldest evicted first, evictions counted); counters and proxies are small.
#[derive(Debug)]
pub struct MemoryStore {
    max_records: usize,
    records: VecDeque<StoredRecord>,
    evicted_records: u64,
    proxies: HashMap<String, ProxyState>,
    counters: BTreeMap<CounterKey, Counter>,
}

#[derive(Debug)]
struct ProxyState {
    identity: Arc<ProxyIdentity>,
    window: SequenceWindow,
    batches: u64,
    records: u64,
    dropped_records: u64,
    dropped_counter_keys: u64,
    last_seen_unix_nanos: u64,
}

/// Counters are summed per pod (not per VM instance: a pod's worker VMs are one workload
/// replica to the user) and per (route, cluster, code).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CounterKey {
    namespace: String,
    workload: String,
    pod: String,
    route_name: String,
    cluster: String,
    response_code: u32,
}

impl MemoryStore {
    /// An empty store holding at most `max_records` records (at least one is always kept).
    pub fn new(max_records: usize) -> Self {
        Self {
            max_records: max_records.max(1),
            records: VecDeque::new(),
            evicted_records: 0,
            proxies: HashMap::new(),
            counters: BTreeMap::new(),
        }
    }

    fn add_counters(&mut self, proxy: &ProxyIdentity, counters: Vec<Counter>) {
        for counter in counters {
            let key = CounterKey {
                namespace: proxy.namespace.clone(),
                workload: proxy.workload.clone(),
                pod: proxy.pod.clone(),
                route_name: counter.route_name.clone(),
                cluster: counter.cluster.clone(),
                response_code: counter.response_code,
            };
            let total = self.counters.entry(key).or_default();
            let count = total.count.saturating_add(counter.count);
            // The latest batch's provenance wins: a config push can change what a route came from.
            *total = Counter { count, ..counter };
        }
    }
}

impl Store for MemoryStore {
    fn apply_push(
        &mut self,
        batch: PushBatch,
        now_unix_nanos: u64,
    ) -> Result<PushOutcome, StoreError> {
        let PushBatch {
            proxy,
            sequence,
            records,
            counters,
            dropped_records,
            dropped_counter_keys,
        } = batch;
        let state = self
            .proxies
            .entry(proxy.instance_id.clone())
            .or_insert_with(|| ProxyState {
                identity: Arc::new(proxy.clone()),
                window: SequenceWindow::default(),
                batches: 0,
                records: 0,
                dropped_records: 0,
                dropped_counter_keys: 0,
                last_seen_unix_nanos: 0,
            });
        if !state.window.insert(sequence) {
            return Ok(PushOutcome { duplicate: true });
        }
        // Records share their sender's identity instead of each carrying a copy.
        let identity = if *state.identity == proxy {
            Arc::clone(&state.identity)
        } else {
            Arc::new(proxy)
        };
        // The newest batch describes the instance; a late one must not roll it back.
        if sequence == state.window.highest() {
            state.identity = Arc::clone(&identity);
        }
        state.batches += 1;
        state.records += records.len() as u64;
        // Drop counts are cumulative, so the largest is the latest even when batches reorder.
        state.dropped_records = state.dropped_records.max(dropped_records);
        state.dropped_counter_keys = state.dropped_counter_keys.max(dropped_counter_keys);
        state.last_seen_unix_nanos = now_unix_nanos;

        for record in records {
            self.records.push_back(StoredRecord {
                record,
                proxy: Arc::clone(&identity),
                received_unix_nanos: now_unix_nanos,
            });
        }
        while self.records.len() > self.max_records {
            self.records.pop_front();
            self.evicted_records += 1;
        }
        self.add_counters(&identity, counters);
        Ok(PushOutcome { duplicate: false })
    }

    fn list_records(&self, filter: &RecordFilter, limit: usize) -> Result<RecordPage, StoreError> {
        let mut page = RecordPage::default();
        for stored in self.records.iter().rev() {
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
            .map(|(key, counter)| CounterTotal {
                pod: key.pod.clone(),
                namespace: key.namespace.clone(),
                workload: key.workload.clone(),
                counter: counter.clone(),
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
}

#[cfg(test)]
mod tests {
    use meshwhy_proto::v1::{DecisionRecord, Direction};

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
}
