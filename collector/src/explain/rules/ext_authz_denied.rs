//! `ext_authz_denied`: the external authorization service said no (UAEX), or failed.

use super::{Diagnosis, Rule, bits, code, subject};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct ExtAuthzDenied;

impl Rule for ExtAuthzDenied {
    fn cause(&self) -> Cause {
        Cause::ExtAuthzDenied
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let kind = group.details.kind;
        let error = kind == DetailsKind::ExtAuthzError;
        if !group.has(bits::UAEX) && kind != DetailsKind::ExtAuthzDenied && !error {
            return None;
        }
        let mut next = Next::new(group, context);
        next.list_here("authorizationpolicy")
            .authz_check()
            .push("kubectl get configmap istio -n istio-system -o jsonpath='{.data.mesh}' | grep -A5 extensionProviders");
        let title = if error {
            format!(
                "{}: the external authorization service failed, so the request was rejected ({})",
                subject(group),
                code(group)
            )
        } else {
            format!(
                "{}: the external authorization service denied the request ({}, UAEX)",
                subject(group),
                code(group)
            )
        };
        Some(
            Diagnosis::new(title, Confidence::High)
                .resource(Some(Resource::hint(
                    "an AuthorizationPolicy with action CUSTOM and its extension provider",
                )))
                .commands(next),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::testkit::*;

    #[test]
    fn table() {
        let denied = check(
            &ExtAuthzDenied,
            server(),
            inbound(403, "UAEX", "ext_authz_denied"),
        )
        .unwrap();
        assert!(
            denied.title.contains("denied the request (403, UAEX)"),
            "{}",
            denied.title
        );
        assert_eq!(
            denied.next_commands[1],
            "istioctl x authz check reviews-v1-5d8c.shop"
        );
        let failed = check(
            &ExtAuthzDenied,
            server(),
            inbound(403, "", "ext_authz_error"),
        )
        .unwrap();
        assert!(failed.title.contains("failed"));
        // UAEX alone, as formats without details show it (Istio before 1.9).
        let mut flag_only = inbound(403, "UAEX", "");
        flag_only.unknown_fields = 1 << meshwhy_proto::v1::RecordField::ResponseCodeDetails as u32;
        let flag_only = check(&ExtAuthzDenied, server(), flag_only).unwrap();
        assert!(
            flag_only.title.contains("denied the request (403, UAEX)"),
            "{}",
            flag_only.title
        );
        let report = explain_records(&[(server(), inbound(403, "UAEX", ""))]);
        assert_eq!(report.findings[0].cause, Cause::ExtAuthzDenied);
        assert!(
            check(
                &ExtAuthzDenied,
                server(),
                inbound(403, "", "rbac_access_denied_matched_policy[none]")
            )
            .is_none()
        );
    }
}
