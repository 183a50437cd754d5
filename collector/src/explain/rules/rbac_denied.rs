//! `rbac_denied`: an Istio AuthorizationPolicy denied the request. Envoy sets no flag for this;
//! the details name the policy (`ns[<ns>]-policy[<name>]-rule[<n>]`), or `none` when ALLOW
//! policies apply and none matched.

use super::{Diagnosis, Rule, code, subject};
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
            return None;
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
}
