//! `canary_split_mismatch`: a replica whose observed split across a destination's clusters
//! (subsets) differs from the intended one (the pooled split of the replicas whose routes come
//! from the majority's source) by more than sampling noise allows:
//! |observed − intended| > 3·√(p(1−p)/n) + 0.02. Read from the success counters.

use meshwhy_proto::v1::Direction;

use super::stale_config_suspected::{majority_resource, source};
use crate::explain::Cause;
use crate::explain::commands::{self, Commands, Pod};
use crate::explain::finding::{Confidence, DecidedBy, Evidence, Finding, GroupKey};
use crate::explain::group::MAX_SAMPLES;
use crate::explain::replicas::{Destination, Replica, percent, subset_label};

/// How far an observed share may stray from `intended` over `n` requests.
pub(crate) fn tolerance(intended: f64, n: u64) -> f64 {
    3.0 * (intended * (1.0 - intended) / n.max(1) as f64).sqrt() + 0.02
}

fn split(parts: &[(String, f64)]) -> String {
    parts
        .iter()
        .map(|(label, share)| format!("{label} {}", percent(*share)))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn observed(replica: &Replica<'_>, intended: &[(&str, &str, f64)]) -> Vec<(String, f64)> {
    let n = replica.total.max(1) as f64;
    let mut parts: Vec<(String, f64)> = intended
        .iter()
        .map(|(cluster, subset, _)| {
            (
                subset_label(cluster, subset),
                replica.count_to(cluster) as f64 / n,
            )
        })
        .collect();
    for (cluster, subset, count) in &replica.clusters {
        if !intended.iter().any(|(c, _, _)| c == cluster) {
            parts.push((subset_label(cluster, subset), *count as f64 / n));
        }
    }
    parts
}

pub(crate) fn finding(destination: &Destination<'_>) -> Option<Finding> {
    let intended = destination.intended_split();
    if intended.len() < 2 {
        // No split to compare with.
        return None;
    }
    let off: Vec<&Replica<'_>> = destination
        .replicas
        .iter()
        .filter(|replica| {
            intended.iter().any(|(cluster, _, share)| {
                let seen = replica.count_to(cluster) as f64 / replica.total.max(1) as f64;
                (seen - share).abs() > tolerance(*share, replica.total)
            })
        })
        .collect();
    let first = *off.first()?;
    let intended_parts: Vec<(String, f64)> = intended
        .iter()
        .map(|(cluster, subset, share)| (subset_label(cluster, subset), *share))
        .collect();
    let described: Vec<String> = off
        .iter()
        .map(|replica| {
            format!(
                "{} {} (n={})",
                replica.pod,
                split(&observed(replica, &intended)),
                replica.total
            )
        })
        .collect();
    let title = format!(
        "{}/{} → {}: {} of {} replicas split traffic unlike the intended {}: {}",
        destination.namespace,
        destination.workload,
        destination.destination,
        off.len(),
        destination.replicas.len(),
        split(&intended_parts),
        described.join("; ")
    );
    let mut next = Commands::new();
    for replica in off.iter().take(3) {
        let pod = Pod {
            name: replica.pod.to_owned(),
            namespace: destination.namespace.to_owned(),
        };
        next.push(commands::routes(&pod, Some(&destination.port.to_string())));
        next.push(commands::proxy_status(&pod));
    }
    let resource = majority_resource(
        destination,
        "the intended split is its route weights, as the up-to-date replicas apply them",
    );
    next.push_opt(super::get_resource(&resource));
    Some(Finding {
        cause: Cause::CanarySplitMismatch,
        title,
        confidence: Confidence::Medium,
        group: GroupKey {
            namespace: destination.namespace.to_owned(),
            workload: destination.workload.to_owned(),
            direction: Direction::Outbound,
            destination: destination.destination.clone(),
            virtual_host: destination.virtual_host.to_owned(),
            route_name: first.route_name().to_owned(),
            route_provenance: first.provenance().to_owned(),
            cluster: first.cluster().to_owned(),
            ..GroupKey::default()
        },
        evidence: Evidence {
            count: off.iter().map(|r| r.total).sum(),
            pods: off
                .iter()
                .take(MAX_SAMPLES)
                .map(|r| r.pod.to_owned())
                .collect(),
            decided_by: DecidedBy {
                route_name: first.route_name().to_owned(),
                virtual_host: destination.virtual_host.to_owned(),
                cluster: first.cluster().to_owned(),
                route_provenance: first.provenance().to_owned(),
                ..DecidedBy::default()
            },
            ..Evidence::default()
        },
        resource: Some(resource),
        next_commands: next.into_vec(),
        notes: vec![
            format!(
                "intended split {} pooled over the {} replicas routing by {}",
                split(&intended_parts),
                destination.majority.len(),
                source(destination.provenance)
            ),
            "a replica is flagged when |observed − intended| > 3·√(p(1−p)/n) + 0.02 for some subset"
                .to_owned(),
            "read from success counters: nothing failed".to_owned(),
        ],
        last_attempt: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::explain;
    use crate::explain::input::Scope;
    use crate::explain::replicas::tests::{fresh, input, stale};

    fn canary(counts: Vec<crate::explain::TrafficCount<'static>>) -> Vec<Finding> {
        explain(&input(counts), &Scope::default(), 10)
            .findings
            .into_iter()
            .filter(|f| f.cause == Cause::CanarySplitMismatch)
            .collect()
    }

    #[test]
    fn table() {
        assert!((tolerance(0.1, 200) - (3.0 * (0.09f64 / 200.0).sqrt() + 0.02)).abs() < 1e-12);
        // Stale replicas send nothing to either subset.
        let found = canary(
            [
                fresh("p-a", 20),
                fresh("p-b", 18),
                fresh("p-c", 22),
                stale("p-d"),
                stale("p-e"),
            ]
            .concat(),
        );
        assert_eq!(found.len(), 1);
        let finding = &found[0];
        assert_eq!(finding.evidence.pods, ["p-d", "p-e"]);
        assert!(
            finding.title.contains("intended v1 90.0 % / v2 10.0 %"),
            "{}",
            finding.title
        );
        assert!(
            finding.title.contains("p-d v1 0.0 % / v2 0.0 %"),
            "{}",
            finding.title
        );
        assert!(
            finding
                .next_commands
                .contains(&"kubectl get virtualservice reviews -n shop -o yaml".to_owned()),
            "{:#?}",
            finding.next_commands
        );
        // A fresh replica far off the split is flagged; sampling noise is not.
        let found = canary(
            [
                fresh("p-a", 20),
                fresh("p-b", 26),
                fresh("p-c", 14),
                fresh("p-d", 60),
            ]
            .concat(),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].evidence.pods, ["p-d"]);
        assert!(canary([fresh("p-a", 20), fresh("p-b", 26), fresh("p-c", 14)].concat()).is_empty());
        // No split (one cluster): nothing.
        assert!(canary([stale("p-a"), stale("p-b")].concat()).is_empty());
    }
}
