//! What the engine reads — records by reference (never cloned), success counts, the reporting
//! proxies — and the scope of a run. Where the records came from (the store, an access log) does
//! not matter to any rule.

use meshwhy_proto::v1::{DecisionRecord, ProxyIdentity};

/// A record and the proxy that recorded it, borrowed from wherever they live.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// The recording proxy.
    pub proxy: &'a ProxyIdentity,
    /// The record.
    pub record: &'a DecisionRecord,
    /// What explain reads of every record (see [`Hints`]); [`RecordRef::new`] computes it.
    pub hints: Hints,
}

impl<'a> RecordRef<'a> {
    /// A record, its hints computed now.
    pub fn new(proxy: &'a ProxyIdentity, record: &'a DecisionRecord) -> Self {
        Self {
            proxy,
            record,
            hints: Hints::of(proxy, record),
        }
    }
}

/// What explain reads of every record, computed once (a store does it at ingest, while the record
/// is hot in cache) so a run over a million records streams through compact hints instead of
/// touching every record's strings. Two records with the same `group` hash are grouped without
/// comparing their strings: a 64-bit collision between two different failure shapes is possible
/// in principle and negligible in practice (~1e-13 for thousands of distinct shapes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Hints {
    /// Hash of everything a first-level group shares (recording workload, direction, authority,
    /// cluster, vhost, route, provenance, code, flags, details, transport, tlsMode, subset,
    /// unknown fields, protocol);
    /// never 0.
    pub group: u64,
    /// Hash of the request id; 0 when the record has none.
    pub request: u64,
    /// Hash of what groups sample (path, recording pod, upstream host): a record whose
    /// combination a group has seen needs no look at its strings.
    pub samples: u64,
    /// `start_time_unix_nanos` of the record.
    pub start_unix_nanos: u64,
    /// `attempt_count` of the record.
    pub attempts: u32,
    /// `direction` of the record.
    pub direction: i32,
    /// `sampled_success` of the record.
    pub sampled_success: bool,
}

impl Hints {
    /// Computes the hints of a record.
    pub fn of(proxy: &ProxyIdentity, record: &DecisionRecord) -> Self {
        use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
        let mut hasher = BuildHasherDefault::<super::hash::FxHasher>::default().build_hasher();
        (
            &proxy.namespace,
            &proxy.workload,
            record.direction,
            &record.authority,
            &record.cluster,
            &record.virtual_host,
            &record.route_name,
            &record.route_provenance,
        )
            .hash(&mut hasher);
        (
            record.response_code,
            record.response_flags,
            &record.response_code_details,
            &record.transport_failure_reason,
            &record.endpoint_tls_mode,
            &record.cluster_provenance,
            &record.cluster_subset,
            record.sampled_success,
        )
            .hash(&mut hasher);
        // What the source could see and which protocol it spoke: a TCP line and an HTTP record,
        // or lines of two formats, are judged apart.
        (record.unknown_fields, &record.protocol).hash(&mut hasher);
        let samples = BuildHasherDefault::<super::hash::FxHasher>::default().hash_one((
            &record.path,
            &proxy.pod,
            &record.upstream_host,
        ));
        Self {
            group: hasher.finish().max(1),
            request: request_hash(&record.request_id),
            samples,
            start_unix_nanos: record.start_time_unix_nanos,
            attempts: record.attempt_count,
            direction: record.direction,
            sampled_success: record.sampled_success,
        }
    }
}

/// Hash of a request id as [`Hints::request`] holds it; 0 for none.
pub fn request_hash(id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    if id.is_empty() {
        return 0;
    }
    BuildHasherDefault::<super::hash::FxHasher>::default()
        .hash_one(id)
        .max(1)
}

/// Successful requests counted in the window for one (proxy pod, route, cluster) key.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrafficCount<'a> {
    /// Counting proxy's namespace.
    pub namespace: &'a str,
    /// Counting proxy's workload.
    pub workload: &'a str,
    /// Counting proxy's pod (empty when unknown).
    pub pod: &'a str,
    /// Route entry name of the counter key.
    pub route_name: &'a str,
    /// Cluster of the counter key.
    pub cluster: &'a str,
    /// DestinationRule subset of the cluster.
    pub subset: &'a str,
    /// HTTP status of the counter key.
    pub response_code: u32,
    /// Virtual host of the counter key.
    pub virtual_host: &'a str,
    /// Route provenance of the counter key.
    pub route_provenance: &'a str,
    /// Successes in the window.
    pub count: u64,
}

/// Everything one run reads.
#[derive(Debug, Clone, Default)]
pub struct Input<'a> {
    /// Failure records and sampled successes.
    pub records: Vec<RecordRef<'a>>,
    /// Success counts within the window.
    pub successes: Vec<TrafficCount<'a>>,
    /// Every proxy known to report (their node ids carry pod IPs: that is how an upstream host
    /// is recognised as a sidecar that would have recorded a failure).
    pub proxies: Vec<&'a ProxyIdentity>,
    /// False when records from within the window were evicted, so counts are lower bounds and
    /// shares of traffic are not computed.
    pub window_complete: bool,
}

/// Which failures a run explains. `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Recording proxy's namespace (either side of a hop).
    pub namespace: Option<String>,
    /// Recording proxy's workload (either side of a hop).
    pub workload: Option<String>,
    /// Destination service: authority host or cluster host equal to it or starting with `<it>.`.
    pub service: Option<String>,
    /// Only records that started at or after this time (ns since the Unix epoch); 0 = all.
    pub since_unix_nanos: u64,
}

impl Scope {
    pub(crate) fn in_window(&self, hints: &Hints) -> bool {
        hints.start_unix_nanos >= self.since_unix_nanos
    }

    pub(crate) fn matches_reporter(&self, namespace: &str, workload: &str) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|want| want == namespace)
            && self.workload.as_deref().is_none_or(|want| want == workload)
    }

    pub(crate) fn matches_service(&self, authority: &str, cluster_host: Option<&str>) -> bool {
        let Some(service) = self.service.as_deref() else {
            return true;
        };
        let host = crate::decode::node::address_ip(authority);
        host_is(host, service) || cluster_host.is_some_and(|fqdn| host_is(fqdn, service))
    }
}

/// `reviews` matches `reviews`, `reviews.shop` and `reviews.shop.svc.cluster.local`.
fn host_is(host: &str, service: &str) -> bool {
    host.eq_ignore_ascii_case(service)
        || (host
            .get(..service.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(service))
            && host.as_bytes().get(service.len()) == Some(&b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_matching() {
        let scope = Scope {
            service: Some("reviews".into()),
            ..Scope::default()
        };
        assert!(scope.matches_service("reviews:9080", None));
        assert!(scope.matches_service("reviews.shop.svc.cluster.local:9080", None));
        assert!(scope.matches_service("10.0.0.1:9080", Some("reviews.shop.svc.cluster.local")));
        assert!(!scope.matches_service("reviewsx:9080", Some("reviewsx.shop.svc.cluster.local")));
        assert!(!scope.matches_service("ratings:9080", None));
        assert!(Scope::default().matches_service("anything", None));
    }

    #[test]
    fn reporter_matching() {
        let scope = Scope {
            namespace: Some("shop".into()),
            ..Scope::default()
        };
        assert!(scope.matches_reporter("shop", "x"));
        assert!(!scope.matches_reporter("pay", "x"));
    }
}
