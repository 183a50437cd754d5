//! `no_healthy_upstream`: UH — the cluster has no healthy endpoint: no ready pod behind the
//! Service (or the subset's labels select none), or outlier detection ejected them all.

use super::{Diagnosis, Rule, bits, code, destination_rule, subject};
use crate::decode::{ClusterName, DetailsKind};
use crate::explain::Cause;
use crate::explain::commands::{self, Next};
use crate::explain::finding::Confidence;
use crate::explain::group::{Context, Group};

pub(crate) struct NoHealthyUpstream;

impl Rule for NoHealthyUpstream {
    fn cause(&self) -> Cause {
        Cause::NoHealthyUpstream
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        if !group.has(bits::UH) && group.details.kind != DetailsKind::NoHealthyUpstream {
            return None;
        }
        let subset = match &group.cluster {
            ClusterName::Outbound { subset, .. } if !subset.is_empty() => Some(subset.as_str()),
            _ => None,
        };
        let hint = match subset {
            Some(subset) => format!(
                "subset {subset} selects no ready pod (its labels), or outlier detection ejected every endpoint"
            ),
            None => {
                "the Service has no ready endpoint, or outlier detection ejected every endpoint"
                    .to_owned()
            }
        };
        let resource = destination_rule(group, &hint);
        let service = commands::service(group);
        let mut next = Next::new(group, context);
        next.endpoints()
            .push_opt(service.as_ref().and_then(commands::endpoint_slices))
            .resource(&resource);
        if let Some(namespace) = service.as_ref().and_then(|s| s.namespace.as_deref()) {
            next.push(format!(
                "kubectl get pods -n {namespace} -o wide --show-labels"
            ));
        }
        let subset_text = subset.map(|s| format!(" (subset {s})")).unwrap_or_default();
        Some(
            Diagnosis::new(
                format!(
                    "{}{subset_text}: no healthy endpoint, so Envoy answered {} without trying (UH)",
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

    #[test]
    fn table() {
        let mut record = outbound(503, "UH", NO_HEALTHY);
        record.cluster = "outbound|9080|v3|reviews.shop.svc.cluster.local".into();
        record.cluster_provenance = DR.into();
        record.cluster_subset = "v3".into();
        record.upstream_host.clear();
        let diagnosis = check(&NoHealthyUpstream, client(), record).unwrap();
        assert!(
            diagnosis.title.contains("(subset v3): no healthy endpoint"),
            "{}",
            diagnosis.title
        );
        let resource = diagnosis.resource.unwrap();
        assert_eq!(
            (resource.name.as_str(), resource.subset.as_str()),
            ("reviews", "v3")
        );
        assert_eq!(
            diagnosis.next_commands[..2],
            [
                "istioctl proxy-config endpoints productpage-v1-7d9c.shop --cluster \"outbound|9080|v3|reviews.shop.svc.cluster.local\"",
                "kubectl get endpointslices -n shop -l kubernetes.io/service-name=reviews -o wide",
            ]
        );
        assert!(check(&NoHealthyUpstream, client(), outbound(503, "", NO_HEALTHY)).is_some());
        assert!(check(&NoHealthyUpstream, client(), outbound(503, "UF", REFUSED)).is_none());
    }
}
