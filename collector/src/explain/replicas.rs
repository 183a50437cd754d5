//! What each replica of a workload sent to one destination, from the success counters: the
//! routes (and where they came from) and the clusters (subsets). Replicas of one Deployment get
//! the same config from istiod, so the routes most replicas use are the intended ones; the
//! counter-based rules (`stale_config_suspected`, `canary_split_mismatch`) compare each replica
//! with them.

use crate::decode::ClusterName;
use crate::explain::hash::FxHashMap;
use crate::explain::input::{Input, Scope};

/// One replica's counted requests to one destination.
#[derive(Debug, Clone, Default)]
pub(crate) struct Replica<'a> {
    pub(crate) pod: &'a str,
    pub(crate) total: u64,
    /// (route name, route provenance, count), in first-seen order.
    pub(crate) routes: Vec<(&'a str, &'a str, u64)>,
    /// (cluster, subset, count), in first-seen order.
    pub(crate) clusters: Vec<(&'a str, &'a str, u64)>,
}

impl<'a> Replica<'a> {
    /// The provenance most of its requests' routes came from (`""`: none).
    pub(crate) fn provenance(&self) -> &'a str {
        let mut by: Vec<(&'a str, u64)> = Vec::new();
        for (_, provenance, count) in &self.routes {
            match by.iter_mut().find(|(p, _)| p == provenance) {
                Some((_, total)) => *total += count,
                None => by.push((provenance, *count)),
            }
        }
        by.iter()
            .max_by_key(|(provenance, count)| (*count, !provenance.is_empty()))
            .map_or("", |(provenance, _)| provenance)
    }

    /// The route name most of its requests took.
    pub(crate) fn route_name(&self) -> &'a str {
        self.routes
            .iter()
            .max_by_key(|(_, _, count)| *count)
            .map_or("", |(name, _, _)| name)
    }

    /// The cluster most of its requests went to.
    pub(crate) fn cluster(&self) -> &'a str {
        self.clusters
            .iter()
            .max_by_key(|(_, _, count)| *count)
            .map_or("", |(cluster, _, _)| cluster)
    }

    /// Requests to `cluster`.
    pub(crate) fn count_to(&self, cluster: &str) -> u64 {
        self.clusters
            .iter()
            .filter(|(c, _, _)| *c == cluster)
            .map(|(_, _, count)| count)
            .sum()
    }
}

/// One (workload, destination) and its replicas split into the majority and the rest.
#[derive(Debug, Clone)]
pub(crate) struct Destination<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) workload: &'a str,
    /// `fqdn:port`.
    pub(crate) destination: String,
    /// The outbound route configuration name (the port).
    pub(crate) port: u16,
    pub(crate) virtual_host: &'a str,
    /// Sorted by pod name.
    pub(crate) replicas: Vec<Replica<'a>>,
    /// Provenance the majority's routes came from (`""`: none).
    pub(crate) provenance: &'a str,
    /// Indices of the replicas whose routes came from the majority's provenance.
    pub(crate) majority: Vec<usize>,
    /// Indices of the others.
    pub(crate) diverging: Vec<usize>,
}

impl<'a> Destination<'a> {
    /// The majority's clusters with their pooled share: (cluster, subset, share), largest first.
    pub(crate) fn intended_split(&self) -> Vec<(&'a str, &'a str, f64)> {
        let mut by: Vec<(&'a str, &'a str, u64)> = Vec::new();
        let mut total = 0;
        for &index in &self.majority {
            for &(cluster, subset, count) in &self.replicas[index].clusters {
                total += count;
                match by.iter_mut().find(|(c, _, _)| *c == cluster) {
                    Some((_, _, sum)) => *sum += count,
                    None => by.push((cluster, subset, count)),
                }
            }
        }
        if total == 0 {
            return Vec::new();
        }
        by.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        by.into_iter()
            .map(|(cluster, subset, count)| (cluster, subset, count as f64 / total as f64))
            .collect()
    }
}

/// The destinations, with at least two counting replicas, of the counters in `input` within
/// `scope`.
pub(crate) fn destinations<'a>(input: &Input<'a>, scope: &Scope) -> Vec<Destination<'a>> {
    let mut index: FxHashMap<(&'a str, &'a str, &'a str, u16), usize> = FxHashMap::default();
    let mut found: Vec<(Destination<'a>, FxHashMap<&'a str, usize>)> = Vec::new();
    for count in &input.successes {
        if count.pod.is_empty() || count.count == 0 {
            continue;
        }
        if !scope.matches_reporter(count.namespace, count.workload) {
            continue;
        }
        let ClusterName::Outbound { fqdn, port, .. } = ClusterName::parse(count.cluster) else {
            continue;
        };
        if !scope.matches_service("", Some(&fqdn)) {
            continue;
        }
        // The fqdn borrows the counter's cluster name: find it there to key by reference.
        let Some(host) = count.cluster.rsplit('|').next() else {
            continue;
        };
        let key = (count.namespace, count.workload, host, port);
        let at = *index.entry(key).or_insert_with(|| {
            found.push((
                Destination {
                    namespace: count.namespace,
                    workload: count.workload,
                    destination: format!("{fqdn}:{port}"),
                    port,
                    virtual_host: count.virtual_host,
                    replicas: Vec::new(),
                    provenance: "",
                    majority: Vec::new(),
                    diverging: Vec::new(),
                },
                FxHashMap::default(),
            ));
            found.len() - 1
        });
        let (destination, pods) = &mut found[at];
        if destination.virtual_host.is_empty() {
            destination.virtual_host = count.virtual_host;
        }
        let replica = *pods.entry(count.pod).or_insert_with(|| {
            destination.replicas.push(Replica {
                pod: count.pod,
                ..Replica::default()
            });
            destination.replicas.len() - 1
        });
        let replica = &mut destination.replicas[replica];
        replica.total += count.count;
        match replica.routes.iter_mut().find(|(name, provenance, _)| {
            *name == count.route_name && *provenance == count.route_provenance
        }) {
            Some((_, _, total)) => *total += count.count,
            None => replica
                .routes
                .push((count.route_name, count.route_provenance, count.count)),
        }
        match replica
            .clusters
            .iter_mut()
            .find(|(cluster, _, _)| *cluster == count.cluster)
        {
            Some((_, _, total)) => *total += count.count,
            None => replica
                .clusters
                .push((count.cluster, count.subset, count.count)),
        }
    }
    found
        .into_iter()
        .filter_map(|(mut destination, _)| {
            if destination.replicas.len() < 2 {
                return None;
            }
            destination.replicas.sort_by(|a, b| a.pod.cmp(b.pod));
            let mut votes: Vec<(&'a str, usize)> = Vec::new();
            for replica in &destination.replicas {
                let provenance = replica.provenance();
                match votes.iter_mut().find(|(p, _)| *p == provenance) {
                    Some((_, n)) => *n += 1,
                    None => votes.push((provenance, 1)),
                }
            }
            // Most replicas win; on a tie, routes from a resource beat routes from none; a tie
            // after that has no majority.
            votes.sort_by_key(|(provenance, n)| std::cmp::Reverse((*n, !provenance.is_empty())));
            let (provenance, n) = votes[0];
            if votes
                .get(1)
                .is_some_and(|(other, m)| *m == n && other.is_empty() == provenance.is_empty())
            {
                return None;
            }
            destination.provenance = provenance;
            for (index, replica) in destination.replicas.iter().enumerate() {
                if replica.provenance() == provenance {
                    destination.majority.push(index);
                } else {
                    destination.diverging.push(index);
                }
            }
            Some(destination)
        })
        .collect()
}

/// `v2`, or the cluster name when it has no subset.
pub(crate) fn subset_label(cluster: &str, subset: &str) -> String {
    if !subset.is_empty() {
        return subset.to_owned();
    }
    match ClusterName::parse(cluster) {
        ClusterName::Outbound { subset, .. } if !subset.is_empty() => subset.to_string(),
        _ => cluster.to_owned(),
    }
}

/// `12.5 %`.
pub(crate) fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::explain::input::TrafficCount;
    use crate::explain::testkit::VS;

    pub(crate) const V1: &str = "outbound|80|v1|reviews.shop.svc.cluster.local";
    pub(crate) const V2: &str = "outbound|80|v2|reviews.shop.svc.cluster.local";
    pub(crate) const ALL: &str = "outbound|80||reviews.shop.svc.cluster.local";

    fn count<'a>(
        pod: &'a str,
        route: &'a str,
        provenance: &'a str,
        cluster: &'a str,
        subset: &'a str,
        n: u64,
    ) -> TrafficCount<'a> {
        TrafficCount {
            namespace: "shop",
            workload: "productpage-v1",
            pod,
            route_name: route,
            cluster,
            subset,
            response_code: 200,
            virtual_host: "reviews.shop.svc.cluster.local:80",
            route_provenance: provenance,
            count: n,
        }
    }

    /// A fresh replica: the VirtualService's 90/10 split (`v2` requests of 200).
    pub(crate) fn fresh(pod: &'static str, v2: u64) -> Vec<TrafficCount<'static>> {
        vec![
            count(pod, "reviews-canary", VS, V1, "v1", 200 - v2),
            count(pod, "reviews-canary", VS, V2, "v2", v2),
        ]
    }

    /// A stale replica: `default`, no provenance, the unsubsetted cluster.
    pub(crate) fn stale(pod: &'static str) -> Vec<TrafficCount<'static>> {
        vec![count(pod, "default", "", ALL, "", 200)]
    }

    pub(crate) fn input(counts: Vec<TrafficCount<'static>>) -> Input<'static> {
        Input {
            successes: counts,
            window_complete: true,
            ..Input::default()
        }
    }

    #[test]
    fn majority_and_intended_split() {
        let counts = [
            fresh("p-a", 20),
            fresh("p-b", 18),
            fresh("p-c", 22),
            stale("p-d"),
            stale("p-e"),
        ]
        .concat();
        let found = destinations(&input(counts), &Scope::default());
        assert_eq!(found.len(), 1);
        let destination = &found[0];
        assert_eq!(destination.destination, "reviews.shop.svc.cluster.local:80");
        assert_eq!(destination.provenance, VS);
        assert_eq!(destination.majority, [0, 1, 2]);
        assert_eq!(destination.diverging, [3, 4]);
        let split = destination.intended_split();
        assert_eq!(split[0].0, V1);
        assert!((split[1].2 - 0.1).abs() < 1e-9);
        // A tie between two sources of the same kind has no majority.
        let counts = [fresh("p-a", 20), stale("p-d")].concat();
        let found = destinations(&input(counts.clone()), &Scope::default());
        assert_eq!(found[0].diverging, [1], "a resource beats none on a tie");
        // One replica: nothing to compare.
        assert!(destinations(&input(fresh("p-a", 20)), &Scope::default()).is_empty());
        // Out of scope.
        let scope = Scope {
            namespace: Some("other".into()),
            ..Scope::default()
        };
        assert!(destinations(&input(counts), &scope).is_empty());
    }
}
