//! `no_cluster`: NC — the route names a cluster this proxy does not have, e.g. a VirtualService
//! routing to a subset no DestinationRule defines, or a host with no Service or ServiceEntry.

use super::{
    Diagnosis, Rule, authority_host, bits, code, get_resource, route_config, subject,
    virtual_service,
};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::{self, Commands};
use crate::explain::finding::Confidence;
use crate::explain::group::{Context, Group};

pub(crate) struct NoCluster;

impl Rule for NoCluster {
    fn cause(&self) -> Cause {
        Cause::NoCluster
    }

    fn check(&self, group: &Group<'_>, _context: &Context<'_>) -> Option<Diagnosis> {
        if !group.has(bits::NC) && group.details.kind != DetailsKind::ClusterNotFound {
            return None;
        }
        let pod = commands::recorder(group);
        let host = authority_host(group);
        let resource = virtual_service(
            group,
            "a route destination (host + subset) with no cluster: a subset missing from the \
             DestinationRule, or a host with no Service/ServiceEntry (or hidden by a Sidecar)",
        );
        let mut next = Commands::new();
        next.push_opt(get_resource(&resource))
            .push(commands::list("destinationrule", Some(&pod.namespace)))
            .push(commands::routes(&pod, route_config(group).as_deref()))
            .push(commands::clusters(&pod, &group.cluster, host))
            .push(commands::proxy_status(&pod));
        let route = match group.record().route_name.as_str() {
            "" => String::new(),
            name => format!(" {name}"),
        };
        Some(
            Diagnosis::new(
                format!(
                    "{}: the route{route} points at a cluster this sidecar does not have, so Envoy answered {} itself (NC)",
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
        let mut record = outbound(503, "NC", CLUSTER_NOT_FOUND);
        record.cluster.clear();
        record.upstream_host.clear();
        record.route_name = "reviews-v3".into();
        record.route_provenance = VS.into();
        let diagnosis = check(&NoCluster, client(), record).unwrap();
        assert!(
            diagnosis
                .title
                .contains("the route reviews-v3 points at a cluster"),
            "{}",
            diagnosis.title
        );
        assert_eq!(diagnosis.resource.unwrap().name, "reviews");
        assert_eq!(
            diagnosis.next_commands[..2],
            [
                "kubectl get virtualservice reviews -n shop -o yaml",
                "kubectl get destinationrule -n shop"
            ]
        );
        assert!(diagnosis.next_commands.contains(
            &"istioctl proxy-config clusters productpage-v1-7d9c.shop --fqdn reviews".to_owned()
        ));
        assert!(check(&NoCluster, client(), outbound(503, "UH", NO_HEALTHY)).is_none());
    }
}
