//! `no_route`: NR — no route matched: Envoy's own 404. NR records carry no route name, so the
//! finding names the virtual host and the paths that missed, and the VirtualService when other
//! requests on that vhost carried its provenance.
//!
//! Envoy before the NC flag logged a route whose cluster is missing (or still warming) as `503 NR`
//! too: when the record's source is of that era (the `NcFlag` bit of `unknown_fields`) and the
//! code is 503 (a route miss is 404), the finding gives both readings. `NR` with the details
//! `cluster_not_found` is a missing cluster outright and left to `no_cluster`.

use meshwhy_proto::v1::RecordField;

use super::{Diagnosis, Rule, bits, code, destination_host, resource_of, subject, unseen};
use crate::decode::{DetailsKind, IstioResource};
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct NoRoute;

impl Rule for NoRoute {
    fn cause(&self) -> Cause {
        Cause::NoRoute
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        if !group.has(bits::NR) && group.details.kind != DetailsKind::RouteNotFound {
            return None;
        }
        if group.details.kind == DetailsKind::ClusterNotFound {
            return None;
        }
        let before_nc = unseen(group, RecordField::NcFlag) && group.record().response_code == 503;
        let record = group.record();
        let vhost = record.virtual_host.as_str();
        let provenance = Some(record.route_provenance.as_str())
            .filter(|p| !p.is_empty())
            .or_else(|| context.vhost_route(vhost));
        let resource = provenance
            .and_then(|path| IstioResource::parse(path).map(|vs| (vs, path)))
            .map(|(vs, path)| {
                resource_of(
                    &vs,
                    path,
                    "",
                    "its http[].match rules cover none of the paths that missed",
                )
            })
            .unwrap_or_else(|| {
                Resource::hint("no VirtualService route matches these paths on this host")
            });
        let mut next = Next::new(group, context);
        next.routes().resource(&resource);
        if before_nc {
            next.clusters_or(destination_host(group));
        }
        next.proxy_status();
        let paths = if group.paths.is_empty() {
            String::new()
        } else {
            format!(" for {}", group.paths.join(", "))
        };
        let on = if vhost.is_empty() {
            String::new()
        } else {
            format!(" on virtual host {vhost}")
        };
        if before_nc {
            let resource = Resource {
                hint: format!(
                    "either {}, or the cluster its route points at (a DestinationRule subset, a \
                     Service or ServiceEntry) is missing or not yet warm on this proxy",
                    resource.hint
                ),
                ..resource
            };
            return Some(
                Diagnosis::new(
                    format!(
                        "{}: 503 NR from an Envoy older than the NC flag: either no route matched{on}{paths}, or the route's cluster is missing or still warming (stale config)",
                        subject(group),
                    ),
                    Confidence::Medium,
                )
                .resource(Some(resource))
                .commands(next)
                .note("a route miss is Envoy's 404; this era logged a route to a missing or warming cluster as 503 NR, before NC existed: the proxy's clusters and its sync state tell the two apart"),
            );
        }
        Some(
            Diagnosis::new(
                format!(
                    "{}: no route matched{on}{paths}, so Envoy answered {} itself (NR)",
                    subject(group),
                    code(group)
                ),
                Confidence::High,
            )
            .resource(Some(resource))
            .commands(next),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;

    fn missed(path: &str) -> meshwhy_proto::v1::DecisionRecord {
        let mut record = outbound(404, "NR", ROUTE_NOT_FOUND);
        record.route_name.clear();
        record.cluster.clear();
        record.upstream_host.clear();
        record.path = path.into();
        record
    }

    #[test]
    fn names_vhost_paths_and_the_virtual_service_seen_on_that_vhost() {
        let mut routed = outbound(503, "", VIA_UPSTREAM);
        routed.route_provenance = VS.into();
        routed.request_id = "other".into();
        let report = explain_records(&[(client(), missed("/admin")), (client(), routed)]);
        let finding = report
            .findings
            .iter()
            .find(|f| f.cause == Cause::NoRoute)
            .unwrap();
        assert_eq!(
            finding.title,
            "shop/productpage-v1 → reviews:9080: no route matched on virtual host reviews.shop.svc.cluster.local:9080 for /admin, so Envoy answered 404 itself (NR)"
        );
        let resource = finding.resource.as_ref().unwrap();
        assert_eq!(
            (resource.kind.as_str(), resource.name.as_str()),
            ("VirtualService", "reviews")
        );
        assert_eq!(
            finding.next_commands,
            [
                "istioctl proxy-config routes productpage-v1-7d9c.shop --name 9080 -o json",
                "kubectl get virtualservice reviews -n shop -o yaml",
                "istioctl proxy-status productpage-v1-7d9c.shop",
            ]
        );
    }

    #[test]
    fn table() {
        let alone = check(&NoRoute, client(), missed("/x")).unwrap();
        assert!(alone.resource.unwrap().kind.is_empty());
        let mut inbound_nr = inbound(404, "NR", ROUTE_NOT_FOUND);
        inbound_nr.route_name.clear();
        let diagnosis = check(&NoRoute, server(), inbound_nr).unwrap();
        assert_eq!(
            diagnosis.next_commands[0],
            "istioctl proxy-config routes reviews-v1-5d8c.shop --name \"inbound|9080||\" -o json"
        );
        assert!(check(&NoRoute, client(), outbound(404, "", VIA_UPSTREAM)).is_none());
    }

    /// A line from a format era before Envoy's NC flag.
    fn before_nc(
        mut record: meshwhy_proto::v1::DecisionRecord,
    ) -> meshwhy_proto::v1::DecisionRecord {
        record.unknown_fields =
            1 << RecordField::NcFlag as u32 | 1 << RecordField::ResponseCodeDetails as u32;
        record.response_code_details.clear();
        record
    }

    #[test]
    fn old_envoy_503_nr_gives_both_readings() {
        let mut nr_503 = missed("/reviews/0");
        nr_503.response_code = 503;
        let diagnosis = check(&NoRoute, client(), before_nc(nr_503.clone())).unwrap();
        assert_eq!(
            diagnosis.title,
            "shop/productpage-v1 → reviews:9080: 503 NR from an Envoy older than the NC flag: either no route matched on virtual host reviews.shop.svc.cluster.local:9080 for /reviews/0, or the route's cluster is missing or still warming (stale config)"
        );
        assert_eq!(diagnosis.confidence, Confidence::Medium);
        assert!(
            diagnosis
                .resource
                .unwrap()
                .hint
                .contains("missing or not yet warm")
        );
        assert_eq!(
            diagnosis.next_commands,
            [
                "istioctl proxy-config routes productpage-v1-7d9c.shop --name 9080 -o json",
                "istioctl proxy-config clusters productpage-v1-7d9c.shop --fqdn reviews.shop.svc.cluster.local",
                "istioctl proxy-status productpage-v1-7d9c.shop",
            ]
        );
        // The same era's 404 NR is a route miss; a current Envoy's 503 NR is not read as NC.
        let old_404 = check(&NoRoute, client(), before_nc(missed("/x"))).unwrap();
        assert!(old_404.title.contains("no route matched"));
        assert_eq!(old_404.confidence, Confidence::High);
        let current = check(&NoRoute, client(), nr_503).unwrap();
        assert_eq!(current.confidence, Confidence::High);
    }

    #[test]
    fn nr_with_cluster_not_found_is_a_missing_cluster() {
        let mut record = outbound(503, "NR", CLUSTER_NOT_FOUND);
        record.cluster.clear();
        assert!(check(&NoRoute, client(), record.clone()).is_none());
        let report = explain_records(&[(client(), record)]);
        assert_eq!(report.findings[0].cause, Cause::NoCluster);
    }
}
