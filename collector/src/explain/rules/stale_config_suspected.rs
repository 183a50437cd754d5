//! `stale_config_suspected`: replicas of one workload whose counted requests to a destination
//! took routes from another source (typically `default`, no VirtualService) than most replicas'
//! routes: istiod gives replicas the same config, so theirs looks stale (xDS not synced, or
//! istiod:15012 unreachable from them). Read from the success counters: nothing has to fail.

use meshwhy_proto::v1::Direction;

use crate::decode::IstioResource;
use crate::explain::Cause;
use crate::explain::commands::{self, Commands, Pod};
use crate::explain::finding::{Confidence, DecidedBy, Evidence, Finding, GroupKey, Resource};
use crate::explain::group::MAX_SAMPLES;
use crate::explain::replicas::{Destination, Replica, percent};
use crate::explain::rules::resource_of;

/// Where a replica's routes came from, in words.
pub(crate) fn source(provenance: &str) -> String {
    match IstioResource::parse(provenance) {
        Some(resource) => format!(
            "{} {}/{}",
            resource.kind.name(),
            resource.namespace,
            resource.name
        ),
        None if provenance.is_empty() => "no VirtualService (no provenance)".to_owned(),
        None => provenance.to_owned(),
    }
}

/// The resource the majority's routes came from, or a hint.
pub(crate) fn majority_resource(destination: &Destination<'_>, hint: &str) -> Resource {
    match IstioResource::parse(destination.provenance) {
        Some(resource) => resource_of(&resource, destination.provenance, "", hint),
        None => Resource::hint(hint),
    }
}

fn clusters(replica: &Replica<'_>) -> String {
    replica
        .clusters
        .iter()
        .map(|(cluster, _, count)| {
            format!(
                "{cluster} {}",
                percent(*count as f64 / replica.total.max(1) as f64)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn finding(destination: &Destination<'_>) -> Option<Finding> {
    if destination.diverging.is_empty() || destination.majority.is_empty() {
        return None;
    }
    let diverging: Vec<&Replica<'_>> = destination
        .diverging
        .iter()
        .map(|&i| &destination.replicas[i])
        .collect();
    let first = diverging[0];
    let majority = &destination.replicas[destination.majority[0]];
    let names: Vec<&str> = diverging.iter().map(|r| r.pod).collect();
    let their_source = source(first.provenance());
    let title = format!(
        "{}/{} → {}: {} of {} replicas ({}) route by {} (route `{}`) while {} use {} (route `{}`): their xDS config looks stale",
        destination.namespace,
        destination.workload,
        destination.destination,
        diverging.len(),
        destination.replicas.len(),
        names.join(", "),
        their_source,
        first.route_name(),
        destination.majority.len(),
        source(destination.provenance),
        majority.route_name(),
    );
    let mut notes: Vec<String> = diverging
        .iter()
        .map(|replica| {
            format!(
                "{}: {} requests, route `{}` from {}; clusters {}",
                replica.pod,
                replica.total,
                replica.route_name(),
                source(replica.provenance()),
                clusters(replica)
            )
        })
        .collect();
    notes.push(format!(
        "the other {} replicas: route `{}` from {}",
        destination.majority.len(),
        majority.route_name(),
        source(destination.provenance)
    ));
    notes.push(
        "read from success counters: nothing failed; replicas of one workload normally get the same routes from istiod"
            .to_owned(),
    );
    let mut next = Commands::new();
    for replica in diverging.iter().take(3) {
        let pod = Pod {
            name: replica.pod.to_owned(),
            namespace: destination.namespace.to_owned(),
        };
        next.push(commands::proxy_status(&pod));
        next.push(commands::routes(&pod, Some(&destination.port.to_string())));
    }
    next.push("istioctl proxy-status");
    next.push(commands::network_policies(destination.namespace));
    let pod = Pod {
        name: first.pod.to_owned(),
        namespace: destination.namespace.to_owned(),
    };
    next.push(commands::proxy_logs(&pod, "xds|istiod|15012"));
    Some(Finding {
        cause: Cause::StaleConfigSuspected,
        title,
        confidence: if destination.provenance.is_empty() {
            Confidence::Low
        } else {
            Confidence::Medium
        },
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
            count: diverging.iter().map(|r| r.total).sum(),
            pods: names
                .iter()
                .take(MAX_SAMPLES)
                .map(|p| (*p).to_owned())
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
        resource: Some(majority_resource(
            destination,
            "the routes most replicas use come from it; the diverging replicas lack it (check their xDS sync and reachability of istiod:15012)",
        )),
        next_commands: next.into_vec(),
        notes,
        last_attempt: None,
    })
}

#[cfg(test)]
mod tests {
    use crate::explain::input::Scope;
    use crate::explain::replicas::tests::{fresh, input, stale};
    use crate::explain::{Cause, explain};

    #[test]
    fn table() {
        let counts = [
            fresh("p-a", 20),
            fresh("p-b", 18),
            fresh("p-c", 22),
            stale("p-d"),
            stale("p-e"),
        ]
        .concat();
        let report = explain(&input(counts), &Scope::default(), 10);
        let found: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.cause == Cause::StaleConfigSuspected)
            .collect();
        assert_eq!(found.len(), 1, "{:#?}", report.findings);
        let finding = found[0];
        assert_eq!(finding.evidence.pods, ["p-d", "p-e"]);
        assert_eq!(finding.evidence.count, 400);
        assert!(
            finding.title.contains("2 of 5 replicas (p-d, p-e)"),
            "{}",
            finding.title
        );
        assert!(
            finding.title.contains("VirtualService shop/reviews"),
            "{}",
            finding.title
        );
        assert!(
            finding.title.contains("no VirtualService"),
            "{}",
            finding.title
        );
        let resource = finding.resource.as_ref().unwrap();
        assert_eq!(
            (resource.kind.as_str(), resource.name.as_str()),
            ("VirtualService", "reviews")
        );
        for command in [
            "istioctl proxy-status p-d.shop",
            "istioctl proxy-config routes p-d.shop --name 80 -o json",
            "kubectl get networkpolicy -n shop",
        ] {
            assert!(
                finding.next_commands.contains(&command.to_owned()),
                "{:#?}",
                finding.next_commands
            );
        }
        // Counters are not failures.
        assert_eq!(report.totals.failures, 0);

        // Every replica up to date: nothing.
        let counts = [fresh("p-a", 20), fresh("p-b", 18), fresh("p-c", 22)].concat();
        let report = explain(&input(counts), &Scope::default(), 10);
        assert!(report.findings.is_empty(), "{:#?}", report.findings);
    }
}
