//! Per-VM caches of what Envoy's configuration fixes for a while: provenance per (route,
//! cluster) and upstream host facts per (cluster, host). Each read they save is a host call
//! (microseconds of Envoy CPU); the short expiry bounds how stale a config push can leave them.

use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};

use crate::record::{Provenance, UpstreamFacts};

/// Provenance, virtual host and listener direction per (route name, cluster name).
pub type ProvenanceCache = ExpiringCache<Provenance>;

/// TLS facts and endpoint metadata per (cluster name, upstream host address).
pub type UpstreamCache = ExpiringCache<UpstreamFacts>;

/// Owned two-part key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PairKey {
    first: Box<[u8]>,
    second: Box<[u8]>,
}

/// Borrowed form of [`PairKey`]; hashes identically, so lookups need no allocation.
struct PairKeyRef<'a> {
    first: &'a [u8],
    second: &'a [u8],
}

impl Hash for PairKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        PairKeyRef {
            first: &self.first,
            second: &self.second,
        }
        .hash(state);
    }
}

impl Hash for PairKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.first.hash(state);
        self.second.hash(state);
    }
}

impl Equivalent<PairKey> for PairKeyRef<'_> {
    fn equivalent(&self, key: &PairKey) -> bool {
        *self.first == *key.first && *self.second == *key.second
    }
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    expires_at: u64,
}

/// Values keyed by two byte strings, each fresh for `ttl` after it was read and at most
/// `max_entries` of them.
#[derive(Debug)]
pub struct ExpiringCache<V> {
    entries: HashMap<PairKey, Entry<V>>,
    ttl_nanos: u64,
    max_entries: usize,
}

impl<V> ExpiringCache<V> {
    /// An empty cache; entries live `ttl_nanos`, at most `max_entries` of them.
    pub fn new(ttl_nanos: u64, max_entries: usize) -> Self {
        Self {
            entries: HashMap::new(),
            ttl_nanos,
            max_entries: max_entries.max(1),
        }
    }

    /// The cached value if present and not expired at `now` (nanoseconds).
    pub fn fresh(&self, first: &[u8], second: &[u8], now: u64) -> Option<&V> {
        self.entries
            .get(&PairKeyRef { first, second })
            .filter(|e| now < e.expires_at)
            .map(|e| &e.value)
    }

    /// The cached value even if expired (to label counters; better than nothing).
    pub fn latest(&self, first: &[u8], second: &[u8]) -> Option<&V> {
        self.entries
            .get(&PairKeyRef { first, second })
            .map(|e| &e.value)
    }

    /// Stores a freshly read value. When full, expired entries go first, then everything.
    pub fn insert(&mut self, first: &[u8], second: &[u8], value: V, now: u64) {
        let expires_at = now.saturating_add(self.ttl_nanos);
        if let Some(entry) = self.entries.get_mut(&PairKeyRef { first, second }) {
            *entry = Entry { value, expires_at };
            return;
        }
        if self.entries.len() >= self.max_entries {
            self.entries.retain(|_, e| now < e.expires_at);
            if self.entries.len() >= self.max_entries {
                self.entries.clear();
            }
        }
        self.entries.insert(
            PairKey {
                first: first.into(),
                second: second.into(),
            },
            Entry { value, expires_at },
        );
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let mut cache = ProvenanceCache::new(100, 10);
        let p = Provenance {
            route_provenance: "vs".into(),
            ..Default::default()
        };
        assert!(cache.fresh(b"r", b"c", 0).is_none());
        cache.insert(b"r", b"c", p.clone(), 1_000);
        assert_eq!(cache.fresh(b"r", b"c", 1_050), Some(&p));
        assert!(cache.fresh(b"r", b"c", 1_100).is_none());
        assert_eq!(cache.latest(b"r", b"c"), Some(&p));
        assert!(cache.fresh(b"r", b"other", 1_050).is_none());
        let q = Provenance {
            route_provenance: "vs2".into(),
            ..Default::default()
        };
        cache.insert(b"r", b"c", q.clone(), 1_100);
        assert_eq!(cache.fresh(b"r", b"c", 1_150), Some(&q));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn key_parts_do_not_run_together() {
        let mut cache = UpstreamCache::new(100, 10);
        cache.insert(b"ab", b"c", UpstreamFacts::default(), 0);
        assert!(cache.fresh(b"a", b"bc", 10).is_none());
        assert!(cache.fresh(b"ab", b"c", 10).is_some());
    }

    #[test]
    fn cache_is_bounded() {
        let mut cache = ProvenanceCache::new(100, 2);
        cache.insert(b"a", b"", Provenance::default(), 0);
        cache.insert(b"b", b"", Provenance::default(), 50);
        // Full; "a" has expired by 120, so it makes room.
        cache.insert(b"c", b"", Provenance::default(), 120);
        assert_eq!(cache.len(), 2);
        assert!(cache.latest(b"a", b"").is_none());
        // Full of live entries: cleared rather than grown.
        cache.insert(b"d", b"", Provenance::default(), 130);
        assert_eq!(cache.len(), 1);
        assert!(!cache.is_empty());
    }
}
