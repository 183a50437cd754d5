//! `rbac_denied`: an Istio AuthorizationPolicy denied the request. Envoy sets no flag for this;
//! the details name the policy (`ns[<ns>]-policy[<name>]-rule[<n>]`), or `none` when ALLOW
//! policies apply and none matched. Formats without details (Istio before 1.9) still show a 403
//! with no flag and no upstream host — the sidecar answered before picking one — read as RBAC
//! with less confidence (an app's own 403 has an upstream host).

use meshwhy_proto::v1::{Direction, RecordField};

use super::{Diagnosis, Rule, bits, code, subject, unseen};
use crate::decode::{DetailsKind, RbacPolicy};
use crate::explain::Cause;
use crate::explain::commands::{self, Next};
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct RbacDenied;

impl Rule for RbacDenied {
    fn cause(&self) -> Cause {
        Cause::RbacDenied
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        if group.details.kind != DetailsKind::RbacDenied {
            return inferred(group, context);
        }
        let policy = group.details.argument.as_deref().map(RbacPolicy::parse);
        let mut next = Next::new(group, context);
        next.authz_check();
        let pod = next.pod().clone();
        let (title, resource) = match &policy {
            Some(RbacPolicy::Istio {
                namespace,
                name,
                rule,
            }) => {
                next.push(commands::get_yaml("authorizationpolicy", name, namespace));
                let rule = rule
                    .map(|rule| format!(" (rule {rule})"))
                    .unwrap_or_default();
                (
                    format!(
                        "{}: AuthorizationPolicy {namespace}/{name}{rule} denied the request ({})",
                        subject(group),
                        code(group)
                    ),
                    Resource {
                        kind: "AuthorizationPolicy".into(),
                        namespace: namespace.clone(),
                        name: name.clone(),
                        hint: "a DENY policy matched".into(),
                        ..Resource::default()
                    },
                )
            }
            Some(RbacPolicy::NoneMatched) => {
                next.list_here("authorizationpolicy")
                    .list("authorizationpolicy", Some("istio-system"));
                (
                    format!(
                        "{}: ALLOW policies apply to {} and none matched the request, so it was denied ({})",
                        subject(group),
                        if group.workload.is_empty() {
                            "this workload"
                        } else {
                            group.workload
                        },
                        code(group)
                    ),
                    Resource {
                        kind: "AuthorizationPolicy".into(),
                        namespace: pod.namespace.clone(),
                        hint: "no ALLOW policy matched (rbac_access_denied_matched_policy[none]): \
                               add a rule for this source, path or method"
                            .into(),
                        ..Resource::default()
                    },
                )
            }
            Some(RbacPolicy::Other(id)) => (
                format!(
                    "{}: RBAC policy {id} denied the request ({})",
                    subject(group),
                    code(group)
                ),
                Resource::hint(format!(
                    "RBAC policy {id} (not an Istio AuthorizationPolicy id)"
                )),
            ),
            None => {
                next.list_here("authorizationpolicy");
                (
                    format!(
                        "{}: an RBAC policy denied the request ({})",
                        subject(group),
                        code(group)
                    ),
                    Resource::hint("an AuthorizationPolicy on this workload"),
                )
            }
        };
        let mut diagnosis = Diagnosis::new(title, Confidence::High)
            .resource(Some(resource))
            .commands(next);
        let principal = &group.record().downstream_peer_principal;
        if !principal.is_empty() {
            diagnosis = diagnosis.note(format!("the denied caller was {principal}"));
        }
        Some(diagnosis)
    }
}

/// A flagless 403 with no details and no upstream host: the sidecar's own answer, and RBAC is what
/// answers 403 that way.
fn inferred(group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
    let record = group.record();
    let own_answer = record.response_code == 403
        && group.flags & !bits::BENIGN == 0
        && group.details.kind == DetailsKind::Empty
        && record.upstream_host.is_empty()
        && !unseen(group, RecordField::UpstreamHost);
    if !own_answer {
        return None;
    }
    let mut next = Next::new(group, context);
    next.authz_check()
        .list_here("authorizationpolicy")
        .list("authorizationpolicy", Some("istio-system"));
    // The server sidecar is where AuthorizationPolicies are enforced.
    let confidence = if group.direction == Direction::Inbound {
        Confidence::Medium
    } else {
        Confidence::Low
    };
    let details = if unseen(group, RecordField::ResponseCodeDetails) {
        "the response code details that would name the policy are not in this log's format"
    } else {
        "Envoy gave no response code details that would name the policy"
    };
    Some(
        Diagnosis::new(
            format!(
                "{}: the sidecar answered 403 itself (no upstream host was picked): most likely an AuthorizationPolicy denied the request",
                subject(group)
            ),
            confidence,
        )
        .resource(Some(Resource::hint(
            "an AuthorizationPolicy on this workload, its namespace or mesh-wide",
        )))
        .commands(next)
        .note(format!(
            "{details}; a 403 the app sent would show an upstream host"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;

    #[test]
    fn table() {
        let deny = check(&RbacDenied, server(), inbound(403, "", RBAC_DENY)).unwrap();
        assert_eq!(
            deny.title,
            "shop/reviews-v1 (inbound :9080): AuthorizationPolicy shop/deny-admin (rule 0) denied the request (403)"
        );
        let resource = deny.resource.unwrap();
        assert_eq!(
            (resource.namespace.as_str(), resource.name.as_str()),
            ("shop", "deny-admin")
        );
        assert_eq!(
            deny.next_commands,
            [
                "istioctl x authz check reviews-v1-5d8c.shop",
                "kubectl get authorizationpolicy deny-admin -n shop -o yaml"
            ]
        );
        assert_eq!(
            deny.notes,
            ["the denied caller was spiffe://cluster.local/ns/shop/sa/productpage"]
        );

        let none = check(&RbacDenied, server(), inbound(403, "", RBAC_NONE)).unwrap();
        assert!(
            none.title
                .contains("ALLOW policies apply to reviews-v1 and none matched"),
            "{}",
            none.title
        );
        assert!(
            none.resource
                .unwrap()
                .hint
                .contains("no ALLOW policy matched")
        );

        // Older Envoy: no policy in the details.
        let old = check(
            &RbacDenied,
            server(),
            inbound(403, "", "rbac_access_denied"),
        )
        .unwrap();
        assert!(old.title.contains("an RBAC policy denied"));
        // A 403 the app sent is not RBAC.
        assert!(check(&RbacDenied, server(), inbound(403, "", VIA_UPSTREAM)).is_none());
    }

    #[test]
    fn a_403_without_details_or_upstream_host_is_read_as_rbac() {
        // Istio 1.8 text format on the server sidecar: `"GET /admin HTTP/1.1" 403 - "-" "-" 0 19 0 - … "-" - …`.
        let logged = |direction_inbound: bool| {
            let mut record = if direction_inbound {
                inbound(403, "", "")
            } else {
                outbound(403, "", "")
            };
            record.upstream_host.clear();
            record.downstream_peer_principal.clear();
            record.unknown_fields = 1 << RecordField::ResponseCodeDetails as u32
                | 1 << RecordField::DownstreamTls as u32;
            record
        };
        let diagnosis = check(&RbacDenied, server(), logged(true)).unwrap();
        assert_eq!(
            diagnosis.title,
            "shop/reviews-v1 (inbound :9080): the sidecar answered 403 itself (no upstream host was picked): most likely an AuthorizationPolicy denied the request"
        );
        assert_eq!(diagnosis.confidence, Confidence::Medium);
        assert_eq!(
            diagnosis.notes,
            [
                "the response code details that would name the policy are not in this log's format; a 403 the app sent would show an upstream host"
            ]
        );
        assert_eq!(
            diagnosis.next_commands,
            [
                "istioctl x authz check reviews-v1-5d8c.shop",
                "kubectl get authorizationpolicy -n shop",
                "kubectl get authorizationpolicy -n istio-system",
            ]
        );
        assert_eq!(
            check(&RbacDenied, client(), logged(false))
                .unwrap()
                .confidence,
            Confidence::Low
        );
        let report = explain_records(&[(server(), logged(true))]);
        assert_eq!(report.findings[0].cause, Cause::RbacDenied);

        // An upstream host means the app answered; an unknown upstream host means nothing.
        let mut answered = logged(true);
        answered.upstream_host = "10.0.0.9:9080".into();
        assert!(check(&RbacDenied, server(), answered).is_none());
        let mut blind = logged(true);
        blind.unknown_fields |= 1 << RecordField::UpstreamHost as u32;
        assert!(check(&RbacDenied, server(), blind).is_none());
        // A flag is someone else's 403 (ext_authz).
        let mut flagged = logged(true);
        flagged.response_flags = flags("UAEX");
        assert!(check(&RbacDenied, server(), flagged).is_none());
    }
}
