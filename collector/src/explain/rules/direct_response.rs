//! `direct_response`: the matched route answers by itself (`direct_response`, no flag) — a
//! VirtualService `directResponse` (Istio renders it as the route's `direct_response`, with the
//! VirtualService in the route metadata), an EnvoyFilter or a plain Envoy route. Nothing upstream
//! was asked, so there is nothing to debug but the route's configuration. Istio's own `block_all`
//! 502 is also a direct response; `registry_only_blocked` runs first and claims that one.
//! A log format without code details (Istio before 1.9) still shows one: a 5xx with no flag and
//! no upstream host is Envoy's own answer, and on a route that is most often a direct response.

use meshwhy_proto::v1::RecordField;

use super::{Diagnosis, Rule, bits, code, route_config, subject, unseen, virtual_service};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::{self, Next};
use crate::explain::finding::Confidence;
use crate::explain::group::{Context, Group};

pub(crate) struct DirectResponse;

impl Rule for DirectResponse {
    fn cause(&self) -> Cause {
        Cause::DirectResponse
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        // A failure flag means something else decided (e.g. a fault abort on the same route).
        let record = group.record();
        let local_reply = unseen(group, RecordField::ResponseCodeDetails)
            && !unseen(group, RecordField::UpstreamHost)
            && record.upstream_host.is_empty()
            && record.response_code >= 500;
        let said = group.details.kind == DetailsKind::DirectResponse;
        if !(said || local_reply) || group.has_any(!bits::BENIGN) {
            return None;
        }
        let route = match record.route_name.as_str() {
            "" => String::new(),
            name => format!(" {name}"),
        };
        let resource = virtual_service(
            group,
            &format!(
                "the route{route} is configured to answer {} itself (a VirtualService \
                 http[].directResponse; without Istio provenance an EnvoyFilter or a plain Envoy \
                 route's direct_response)",
                code(group)
            ),
        );
        let mut next = Next::new(group, context);
        next.resource(&resource);
        match (route_config(group), record.route_name.as_str()) {
            // The one route, as Envoy has it: the configured status and body are the answer.
            (Some(config), name) if !name.is_empty() => {
                let route = format!(
                    "{} | jq '.[].virtualHosts[].routes[] | select(.name == \"{name}\")'",
                    commands::routes(next.pod(), Some(&config))
                );
                next.push(route)
            }
            _ => next.routes(),
        };
        if resource.kind.is_empty() {
            // No provenance: look for who patched the route in.
            next.list_here("envoyfilter");
        }
        let of_vs = if resource.kind.is_empty() {
            String::new()
        } else {
            format!(
                " of {} {}/{}",
                resource.kind, resource.namespace, resource.name
            )
        };
        Some(
            Diagnosis::new(
                format!(
                    "{}: the route{route}{of_vs} answered {} itself ({}): configured, no upstream was asked",
                    subject(group),
                    code(group),
                    if said { "direct_response" } else { "no flag, no upstream host" }
                ),
                if said { Confidence::High } else { Confidence::Medium },
            )
            .resource(Some(resource))
            .commands(next),
        )
        .map(|diagnosis| {
            if said {
                diagnosis
            } else {
                diagnosis.note(
                    "read without code details: no flag and no upstream host mean Envoy answered                      itself; a fail-closed wasm plugin (wasm_fail_stream) answers 503 the same way",
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::testkit::*;

    /// A route `direct_response: {status: 502}` on the client sidecar, Envoy 1.40: no cluster,
    /// no upstream host, no flag.
    fn direct(code: u32) -> meshwhy_proto::v1::DecisionRecord {
        let mut record = outbound(code, "", "direct_response");
        record.route_name = "maintenance".into();
        record.cluster.clear();
        record.upstream_host.clear();
        record.attempt_count = 0;
        record
    }

    #[test]
    fn names_the_virtual_service_and_the_route() {
        let mut record = direct(502);
        record.route_provenance = VS.into();
        let diagnosis = check(&DirectResponse, client(), record).unwrap();
        assert_eq!(
            diagnosis.title,
            "shop/productpage-v1 → reviews:9080: the route maintenance of \
             VirtualService shop/reviews answered 502 itself (direct_response): configured, no \
             upstream was asked"
        );
        assert_eq!(diagnosis.confidence, Confidence::High);
        let resource = diagnosis.resource.unwrap();
        assert_eq!(
            (
                resource.kind.as_str(),
                resource.namespace.as_str(),
                resource.name.as_str()
            ),
            ("VirtualService", "shop", "reviews")
        );
        assert_eq!(
            diagnosis.next_commands,
            [
                "kubectl get virtualservice reviews -n shop -o yaml",
                "istioctl proxy-config routes productpage-v1-7d9c.shop --name 9080 -o json | jq '.[].virtualHosts[].routes[] | select(.name == \"maintenance\")'",
            ]
        );
    }

    #[test]
    fn a_log_without_details_shows_a_local_reply() {
        let details = 1u64 << RecordField::ResponseCodeDetails as u32;
        let mut record = direct(503);
        record.response_code_details.clear();
        record.unknown_fields = details;
        let diagnosis = check(&DirectResponse, client(), record.clone()).unwrap();
        assert_eq!(diagnosis.confidence, Confidence::Medium);
        assert!(
            diagnosis.title.contains("(no flag, no upstream host)"),
            "{}",
            diagnosis.title
        );
        assert!(
            diagnosis
                .notes
                .iter()
                .any(|n| n.contains("wasm_fail_stream"))
        );
        // An upstream host means an app answered; an unknown one proves nothing.
        let mut answered = record.clone();
        answered.upstream_host = "10.0.0.9:9080".into();
        assert!(check(&DirectResponse, client(), answered).is_none());
        let mut unseen_host = record;
        unseen_host.unknown_fields |= 1u64 << RecordField::UpstreamHost as u32;
        assert!(check(&DirectResponse, client(), unseen_host).is_none());
    }

    #[test]
    fn without_provenance_a_hint_and_the_route_as_envoy_has_it() {
        let mut record = direct(503);
        record.route_name.clear();
        let diagnosis = check(&DirectResponse, client(), record).unwrap();
        let resource = diagnosis.resource.unwrap();
        assert!(resource.kind.is_empty());
        assert!(
            resource
                .hint
                .contains("a VirtualService http[].directResponse"),
            "{}",
            resource.hint
        );
        assert!(diagnosis.title.contains("the route answered 503 itself"));
        assert_eq!(
            diagnosis.next_commands,
            [
                "istioctl proxy-config routes productpage-v1-7d9c.shop --name 9080 -o json",
                "kubectl get envoyfilter -n shop",
            ]
        );
    }

    #[test]
    fn only_flagless_direct_responses() {
        assert!(check(&DirectResponse, client(), direct(502)).is_some());
        // A delay is benign; a fault abort is not this rule's.
        let mut delayed = direct(502);
        delayed.response_flags = flags("DI");
        assert!(check(&DirectResponse, client(), delayed).is_some());
        let mut faulted = direct(502);
        faulted.response_flags = flags("FI");
        assert!(check(&DirectResponse, client(), faulted).is_none());
        assert!(check(&DirectResponse, client(), outbound(503, "", "via_upstream")).is_none());
    }
}
