//! Success counters per (route, cluster, code): the per-request success path. Lookups take the
//! raw bytes the host returned and do not allocate when the key is already present.

use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};
use meshwhy_proto::v1::Counter;

use crate::record::{MAX_SHORT_BYTES, Provenance, decode_string};

/// Route name of the key that counts requests beyond `max_counter_keys`.
pub const OVERFLOW_ROUTE: &str = "~overflow~";

/// Owned (route, cluster, code) key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CounterKey {
    route: Box<[u8]>,
    cluster: Box<[u8]>,
    code: u32,
}

/// Borrowed form of [`CounterKey`]; hashes identically, so lookups need no allocation.
struct CounterKeyRef<'a> {
    route: &'a [u8],
    cluster: &'a [u8],
    code: u32,
}

impl Hash for CounterKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        CounterKeyRef {
            route: &self.route,
            cluster: &self.cluster,
            code: self.code,
        }
        .hash(state);
    }
}

impl Hash for CounterKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.route.hash(state);
        self.cluster.hash(state);
        self.code.hash(state);
    }
}

impl Equivalent<CounterKey> for CounterKeyRef<'_> {
    fn equivalent(&self, key: &CounterKey) -> bool {
        self.code == key.code && *self.route == *key.route && *self.cluster == *key.cluster
    }
}

/// Success counts per (route, cluster, code) since the last batch, with a cap on keys.
///
/// Keys drained with a count stay resident (at zero) so a busy key is not re-allocated every
/// batch; keys idle for a whole batch are dropped, so the cap applies to recently active keys.
#[derive(Debug)]
pub struct CounterTable {
    counts: HashMap<CounterKey, u64>,
    /// Per code, requests counted under the overflow key.
    overflow: HashMap<u32, u64>,
    max_keys: usize,
    /// Requests counted since the last drain (any key).
    pending: u64,
    /// Requests that could not get their own key, since start.
    dropped_counter_keys: u64,
}

impl CounterTable {
    /// An empty table holding at most `max_keys` keys.
    pub fn new(max_keys: usize) -> Self {
        Self {
            counts: HashMap::new(),
            overflow: HashMap::new(),
            max_keys,
            pending: 0,
            dropped_counter_keys: 0,
        }
    }

    /// Counts one success.
    pub fn bump(&mut self, route: &[u8], cluster: &[u8], code: u32) {
        self.add(route, cluster, code, 1);
    }

    /// Counts `n` requests under a key (also used to merge back counters of a rejected batch).
    pub fn add(&mut self, route: &[u8], cluster: &[u8], code: u32, n: u64) {
        if n == 0 {
            return;
        }
        self.pending = self.pending.saturating_add(n);
        if let Some(count) = self.counts.get_mut(&CounterKeyRef {
            route,
            cluster,
            code,
        }) {
            *count = count.saturating_add(n);
            return;
        }
        if self.counts.len() >= self.max_keys {
            let count = self.overflow.entry(code).or_insert(0);
            *count = count.saturating_add(n);
            self.dropped_counter_keys = self.dropped_counter_keys.saturating_add(n);
            return;
        }
        self.counts.insert(
            CounterKey {
                route: route.into(),
                cluster: cluster.into(),
                code,
            },
            n,
        );
    }

    /// Whether anything was counted since the last drain.
    pub fn has_pending(&self) -> bool {
        self.pending > 0
    }

    /// Keys currently resident (not counting overflow).
    pub fn keys(&self) -> usize {
        self.counts.len()
    }

    /// Requests counted under the overflow key since start (cumulative).
    pub fn dropped_counter_keys(&self) -> u64 {
        self.dropped_counter_keys
    }

    /// Takes every non-zero delta as wire counters, labelled with `provenance(route, cluster)`.
    pub fn drain<'p>(
        &mut self,
        provenance: impl Fn(&[u8], &[u8]) -> Option<&'p Provenance>,
    ) -> Vec<Counter> {
        let mut out = Vec::new();
        self.counts.retain(|key, count| {
            if *count == 0 {
                return false;
            }
            let mut counter = Counter {
                route_name: decode_string(key.route.to_vec(), MAX_SHORT_BYTES),
                cluster: decode_string(key.cluster.to_vec(), MAX_SHORT_BYTES),
                response_code: key.code,
                count: *count,
                ..Default::default()
            };
            if let Some(p) = provenance(&key.route, &key.cluster) {
                counter.route_provenance.clone_from(&p.route_provenance);
                counter.cluster_provenance.clone_from(&p.cluster_provenance);
                counter.cluster_subset.clone_from(&p.cluster_subset);
                counter.virtual_host.clone_from(&p.virtual_host);
            }
            out.push(counter);
            *count = 0;
            true
        });
        for (code, count) in self.overflow.drain() {
            out.push(Counter {
                route_name: OVERFLOW_ROUTE.to_owned(),
                response_code: code,
                count,
                ..Default::default()
            });
        }
        self.pending = 0;
        out
    }

    /// Puts counters back (a batch the collector rejected): their counts are not lost.
    pub fn merge(&mut self, counters: &[Counter]) {
        for c in counters {
            if c.route_name == OVERFLOW_ROUTE && c.cluster.is_empty() {
                // Already counted in dropped_counter_keys when first overflowed.
                let count = self.overflow.entry(c.response_code).or_insert(0);
                *count = count.saturating_add(c.count);
                self.pending = self.pending.saturating_add(c.count);
            } else {
                self.add(
                    c.route_name.as_bytes(),
                    c.cluster.as_bytes(),
                    c.response_code,
                    c.count,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cache::ProvenanceCache;

    fn sorted(mut counters: Vec<Counter>) -> Vec<(String, String, u32, u64)> {
        let mut out: Vec<_> = counters
            .drain(..)
            .map(|c| (c.route_name, c.cluster, c.response_code, c.count))
            .collect();
        out.sort();
        out
    }

    fn no_provenance(_: &[u8], _: &[u8]) -> Option<&'static Provenance> {
        None
    }

    #[test]
    fn counts_per_key_and_drains_deltas() {
        let mut table = CounterTable::new(10);
        assert!(!table.has_pending());
        table.bump(b"r1", b"c1", 200);
        table.bump(b"r1", b"c1", 200);
        table.bump(b"r1", b"c1", 204);
        table.bump(b"r2", b"c1", 200);
        assert!(table.has_pending());
        assert_eq!(
            sorted(table.drain(no_provenance)),
            vec![
                ("r1".into(), "c1".into(), 200, 2),
                ("r1".into(), "c1".into(), 204, 1),
                ("r2".into(), "c1".into(), 200, 1)
            ]
        );
        assert!(!table.has_pending());
        assert!(table.drain(no_provenance).is_empty());
        table.bump(b"r1", b"c1", 200);
        assert_eq!(
            sorted(table.drain(no_provenance)),
            vec![("r1".into(), "c1".into(), 200, 1)]
        );
    }

    #[test]
    fn idle_keys_are_evicted_after_a_batch() {
        let mut table = CounterTable::new(10);
        table.bump(b"r1", b"c1", 200);
        table.bump(b"r2", b"c1", 200);
        table.drain(no_provenance);
        assert_eq!(table.keys(), 2);
        table.bump(b"r1", b"c1", 200);
        table.drain(no_provenance);
        assert_eq!(table.keys(), 1, "r2 was idle for a whole batch");
    }

    #[test]
    fn keys_beyond_the_cap_count_under_overflow() {
        let mut table = CounterTable::new(2);
        table.bump(b"r1", b"", 200);
        table.bump(b"r2", b"", 200);
        table.bump(b"r3", b"", 200);
        table.bump(b"r4", b"", 200);
        table.bump(b"r5", b"", 503);
        table.bump(b"r1", b"", 200);
        assert_eq!(table.dropped_counter_keys(), 3);
        let drained = sorted(table.drain(no_provenance));
        assert_eq!(
            drained,
            vec![
                ("r1".into(), "".into(), 200, 2),
                ("r2".into(), "".into(), 200, 1),
                (OVERFLOW_ROUTE.into(), "".into(), 200, 2),
                (OVERFLOW_ROUTE.into(), "".into(), 503, 1),
            ]
        );
        let total: u64 = drained.iter().map(|c| c.3).sum();
        assert_eq!(total, 6, "no request is lost");
        assert_eq!(table.keys(), 2);
    }

    #[test]
    fn counters_are_labelled_with_provenance() {
        let mut cache = ProvenanceCache::new(1_000, 10);
        cache.insert(
            b"r1",
            b"c1",
            Provenance {
                route_provenance: "vs".into(),
                cluster_provenance: "dr".into(),
                cluster_subset: "v1".into(),
                virtual_host: "host:80".into(),
                ..Default::default()
            },
            0,
        );
        let mut table = CounterTable::new(10);
        table.bump(b"r1", b"c1", 200);
        table.bump(b"r9", b"c9", 200);
        let mut counters = table.drain(|r, c| cache.latest(r, c));
        counters.sort_by(|a, b| a.route_name.cmp(&b.route_name));
        assert_eq!(counters[0].route_provenance, "vs");
        assert_eq!(counters[0].cluster_provenance, "dr");
        assert_eq!(counters[0].cluster_subset, "v1");
        assert_eq!(counters[0].virtual_host, "host:80");
        assert_eq!(counters[1].route_provenance, "");
    }

    #[test]
    fn merge_puts_counts_back() {
        let mut table = CounterTable::new(1);
        table.bump(b"r1", b"c1", 200);
        table.bump(b"r2", b"c1", 200);
        let taken = table.drain(no_provenance);
        table.bump(b"r1", b"c1", 200);
        table.merge(&taken);
        let drained = sorted(table.drain(no_provenance));
        assert_eq!(
            drained,
            vec![
                ("r1".into(), "c1".into(), 200, 2),
                (OVERFLOW_ROUTE.into(), "".into(), 200, 1)
            ]
        );
        assert_eq!(
            table.dropped_counter_keys(),
            1,
            "the overflowed request is not counted twice"
        );
    }

    #[test]
    fn invalid_utf8_keys_are_labelled_lossily() {
        let mut table = CounterTable::new(4);
        table.bump(&[0xff, b'r'], b"c", 200);
        let drained = table.drain(no_provenance);
        assert_eq!(drained[0].route_name, "\u{fffd}r");
    }
}
