//! `overload`: the overload manager (OM) or a cluster's drop_overload (DO, UDO) shed the request.

use super::{Diagnosis, Rule, bits, code, destination_rule, subject};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct Overload;

impl Rule for Overload {
    fn cause(&self) -> Cause {
        Cause::Overload
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let manager = group.has(bits::OM) || group.details.kind == DetailsKind::Overload;
        let dropped = group.has_any(bits::DO | bits::UDO);
        if !manager && !dropped {
            return None;
        }
        let mut next = Next::new(group, context);
        if manager {
            let top = format!(
                "kubectl top pod {} -n {} --containers",
                next.pod().name,
                next.pod().namespace
            );
            next.push(top).proxy_stats("overload");
            return Some(
                Diagnosis::new(
                    format!(
                        "{}: the sidecar's overload manager shed the request ({}, OM): the proxy is out of memory or connections",
                        subject(group),
                        code(group)
                    ),
                    Confidence::High,
                )
                .resource(Some(Resource::hint(
                    "sidecar resources: the istio-proxy container's memory limit and overload manager thresholds",
                )))
                .commands(next),
            );
        }
        next.clusters()
            .proxy_stats("drop_overload|upstream_rq_drop");
        Some(
            Diagnosis::new(
                format!(
                    "{}: the cluster's drop_overload setting dropped the request ({}, {})",
                    subject(group),
                    code(group),
                    super::flag_names(group.flags & (bits::DO | bits::UDO))
                ),
                Confidence::High,
            )
            .resource(Some(destination_rule(
                group,
                "drop_overload on the cluster (load shedding from the control plane)",
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
        let om = check(&Overload, client(), outbound(503, "OM", "overload_manager")).unwrap();
        assert!(om.title.contains("overload manager"), "{}", om.title);
        let dropped = check(&Overload, client(), outbound(503, "DO", "drop_overload")).unwrap();
        assert!(dropped.title.contains("drop_overload"), "{}", dropped.title);
        assert!(check(&Overload, client(), outbound(503, "UO", "")).is_none());
    }
}
