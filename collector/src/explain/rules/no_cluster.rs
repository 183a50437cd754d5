//! `no_cluster`: NC — the route names a cluster this proxy does not have, e.g. a VirtualService
//! routing to a subset no DestinationRule defines, or a host with no Service or ServiceEntry.
//!
//! The record has no cluster (there is none), so the VirtualService of the route is the resource
//! to fix or to check, and the DestinationRule subsets the proxies do have for the host are the
//! evidence: they show which subset names exist, and so which one the route gets wrong.

use super::{Diagnosis, Rule, bits, code, destination_host, resource_of, subject};
use crate::decode::{DetailsKind, IstioResource, ServiceHost};
use crate::explain::Cause;
use crate::explain::commands::{self, Next};
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct NoCluster;

const HINT: &str = "a route destination (host + subset) with no cluster: a subset missing from the \
                    DestinationRule, or a host with no Service/ServiceEntry (or hidden by a Sidecar)";

impl Rule for NoCluster {
    fn cause(&self) -> Cause {
        Cause::NoCluster
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        if !group.has(bits::NC) && group.details.kind != DetailsKind::ClusterNotFound {
            return None;
        }
        let host = destination_host(group);
        let record = group.record();
        // The route's own provenance, else another request's on the same vhost.
        let provenance = Some(record.route_provenance.as_str())
            .filter(|path| !path.is_empty())
            .or_else(|| context.vhost_route(&record.virtual_host));
        let known = context.subsets_of(host);
        let destination_rule = known
            .destination_rule
            .and_then(|path| IstioResource::parse(path).map(|dr| (dr, path)));
        let named_subsets: Vec<&str> = known
            .subsets
            .iter()
            .copied()
            .filter(|subset| !subset.is_empty())
            .collect();
        let route = match record.route_name.as_str() {
            "" => String::new(),
            name => format!(" {name}"),
        };

        let hint = match &destination_rule {
            Some((dr, _)) => format!(
                "its route{route} for {host} names a destination this sidecar has no cluster for: \
                 a subset DestinationRule {}/{} does not define (fix the subset name or add the \
                 subset), or another host with no Service/ServiceEntry",
                dr.namespace, dr.name
            ),
            None => format!(
                "its route{route} for {host} names a destination this sidecar has no cluster for: \
                 a subset no DestinationRule defines, or a host with no Service/ServiceEntry (or \
                 hidden by a Sidecar)"
            ),
        };
        let resource =
            match provenance.and_then(|path| IstioResource::parse(path).map(|vs| (vs, path))) {
                Some((vs, path)) => resource_of(&vs, path, "", &hint),
                None => Resource::hint(HINT),
            };

        let mut next = Next::new(group, context);
        next.resource(&resource);
        let service = ServiceHost::parse(host);
        match &destination_rule {
            Some((dr, _)) => {
                next.push(commands::get_yaml(
                    "destinationrule",
                    &dr.name,
                    &dr.namespace,
                ));
            }
            None => {
                // DestinationRules of the host usually live beside its Service.
                match service.namespace.as_deref() {
                    Some(namespace) => next.list("destinationrule", Some(namespace)),
                    None => next.list_here("destinationrule"),
                };
            }
        }
        next.routes().clusters_or(host).proxy_status();

        let of_vs = if resource.kind.is_empty() {
            String::new()
        } else {
            format!(
                " of {} {}/{}",
                resource.kind, resource.namespace, resource.name
            )
        };
        let mut diagnosis = Diagnosis::new(
            format!(
                "{}: the route{route}{of_vs} points at a cluster this sidecar does not have, so Envoy answered {} itself (NC)",
                subject(group),
                code(group)
            ),
            Confidence::High,
        )
        .resource(Some(resource))
        .commands(next);
        diagnosis = diagnosis.note(match (&destination_rule, named_subsets.is_empty()) {
            (Some((dr, _)), false) => format!(
                "DestinationRule {}/{} gives {host} the subsets {} (seen in the proxies' clusters): the route's destination is none of them",
                dr.namespace,
                dr.name,
                named_subsets.join(", ")
            ),
            (None, false) => format!(
                "the proxies have clusters for {host} with subsets {}: the route's destination is none of them",
                named_subsets.join(", ")
            ),
            (_, true) if !known.subsets.is_empty() => format!(
                "the proxies have a cluster for {host} but no subset of it: no DestinationRule \
                 subset reached them (missing DestinationRule, or a subset the route names but the \
                 rule does not)"
            ),
            _ => format!(
                "no proxy reported a cluster for {host}: the host itself may be unknown to the \
                 mesh (no Service/ServiceEntry, or hidden by a Sidecar's egress hosts)"
            ),
        });
        Some(diagnosis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;

    fn nc_record() -> meshwhy_proto::v1::DecisionRecord {
        let mut record = outbound(503, "NC", CLUSTER_NOT_FOUND);
        record.cluster.clear();
        record.upstream_host.clear();
        record.route_name = "reviews-v3".into();
        record.route_provenance = VS.into();
        record
    }

    #[test]
    fn names_the_virtual_service_and_the_subsets_that_exist() {
        // Alone: the VirtualService from the record's provenance, nothing known about subsets.
        let diagnosis = check(&NoCluster, client(), nc_record()).unwrap();
        assert_eq!(
            diagnosis.title,
            "shop/productpage-v1 → reviews:9080: the route reviews-v3 of \
             VirtualService shop/reviews points at a cluster this sidecar does not have, so Envoy \
             answered 503 itself (NC)"
        );
        let resource = diagnosis.resource.unwrap();
        assert_eq!(
            (
                resource.kind.as_str(),
                resource.namespace.as_str(),
                resource.name.as_str()
            ),
            ("VirtualService", "shop", "reviews")
        );
        assert_eq!(resource.provenance, VS);
        assert!(
            resource
                .hint
                .contains("its route reviews-v3 for reviews.shop.svc.cluster.local names a destination this sidecar has no cluster for: a subset no DestinationRule defines"),
            "{}",
            resource.hint
        );
        assert_eq!(
            diagnosis.next_commands,
            [
                "kubectl get virtualservice reviews -n shop -o yaml",
                "kubectl get destinationrule -n shop",
                "istioctl proxy-config routes productpage-v1-7d9c.shop --name 9080 -o json",
                "istioctl proxy-config clusters productpage-v1-7d9c.shop --fqdn reviews.shop.svc.cluster.local",
                "istioctl proxy-status productpage-v1-7d9c.shop",
            ]
        );
        assert!(diagnosis.notes[0].starts_with("no proxy reported a cluster for reviews"));
    }

    #[test]
    fn the_destination_rule_and_its_subsets_are_the_evidence() {
        // Other requests went to subsets v1 and v2 of the same host, under DestinationRule
        // shop/reviews: the route's v3 is the one that does not exist.
        let mut v1 = outbound(503, "", VIA_UPSTREAM);
        v1.request_id = "req-2".into();
        v1.cluster = "outbound|9080|v1|reviews.shop.svc.cluster.local".into();
        v1.cluster_provenance = DR.into();
        v1.cluster_subset = "v1".into();
        let mut v2 = v1.clone();
        v2.request_id = "req-3".into();
        v2.sampled_success = true;
        v2.response_code = 200;
        v2.cluster = "outbound|9080|v2|reviews.shop.svc.cluster.local".into();
        let report = explain_records(&[(client(), nc_record()), (client(), v1), (client(), v2)]);
        let finding = report
            .findings
            .iter()
            .find(|finding| finding.cause == Cause::NoCluster)
            .unwrap();
        let resource = finding.resource.as_ref().unwrap();
        assert_eq!(resource.kind, "VirtualService");
        assert_eq!(
            resource.hint,
            "its route reviews-v3 for reviews.shop.svc.cluster.local names a destination this \
             sidecar has no cluster for: a subset DestinationRule shop/reviews does not define \
             (fix the subset name or add the subset), or another host with no Service/ServiceEntry"
        );
        assert_eq!(
            finding.notes,
            [
                "DestinationRule shop/reviews gives reviews.shop.svc.cluster.local the subsets v1, v2 (seen in the proxies' clusters): the route's destination is none of them"
            ]
        );
        assert_eq!(
            finding.next_commands[..2],
            [
                "kubectl get virtualservice reviews -n shop -o yaml",
                "kubectl get destinationrule reviews -n shop -o yaml"
            ]
        );
    }

    #[test]
    fn without_provenance_the_vhost_s_virtual_service_or_a_hint() {
        let mut bare = nc_record();
        bare.route_provenance.clear();
        let diagnosis = check(&NoCluster, client(), bare.clone()).unwrap();
        let resource = diagnosis.resource.unwrap();
        assert!(resource.kind.is_empty(), "{resource:?}");
        assert_eq!(resource.hint, HINT);
        assert!(diagnosis.title.contains("the route reviews-v3 points at"));
        assert_eq!(
            diagnosis.next_commands[0],
            "kubectl get destinationrule -n shop"
        );

        // Another request on the same vhost carried the VirtualService.
        let mut ok = outbound(200, "", VIA_UPSTREAM);
        ok.request_id = "req-9".into();
        ok.sampled_success = true;
        ok.route_provenance = VS.into();
        let report = explain_records(&[(client(), bare), (client(), ok)]);
        let finding = report
            .findings
            .iter()
            .find(|finding| finding.cause == Cause::NoCluster)
            .unwrap();
        assert_eq!(finding.resource.as_ref().unwrap().name, "reviews");

        assert!(check(&NoCluster, client(), outbound(503, "UH", NO_HEALTHY)).is_none());
    }
}
