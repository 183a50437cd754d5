//! `no_route`: NR — no route matched: Envoy's own 404. NR records carry no route name, so the
//! finding names the virtual host and the paths that missed, and the VirtualService when other
//! requests on that vhost carried its provenance.

use super::{Diagnosis, Rule, bits, code, resource_of, subject};
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
        next.routes().resource(&resource).proxy_status();
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
}
