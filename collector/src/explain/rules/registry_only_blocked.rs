//! `registry_only_blocked`: with `outboundTrafficPolicy: REGISTRY_ONLY` a host the mesh does not
//! know goes to `BlackHoleCluster` / the `block_all` route: a 502 direct response, not NR.

use super::{Diagnosis, Rule, authority_host, code, subject};
use crate::decode::{ClusterName, RouteName, VirtualHost};
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct RegistryOnlyBlocked;

impl Rule for RegistryOnlyBlocked {
    fn cause(&self) -> Cause {
        Cause::RegistryOnlyBlocked
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let blocked = group.cluster == ClusterName::BlackHole
            || group.route == RouteName::BlockAll
            || group.vhost == VirtualHost::BlockAll;
        if !blocked {
            return None;
        }
        let host = authority_host(group);
        let mut next = Next::new(group, context);
        next.list("serviceentry", None)
            .list_here("sidecar")
            .clusters_or(host)
            .push("kubectl get configmap istio -n istio-system -o jsonpath='{.data.mesh}' | grep -A2 outboundTrafficPolicy");
        Some(
            Diagnosis::new(
                format!(
                    "{}: {host} is not in the mesh registry and outbound traffic is REGISTRY_ONLY, so the sidecar blocked it ({})",
                    subject(group),
                    code(group)
                ),
                Confidence::High,
            )
            .resource(Some(Resource::hint(format!(
                "ServiceEntry missing (REGISTRY_ONLY) for {host}, or a Sidecar egress that does not list it"
            ))))
            .commands(next),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::testkit::*;

    fn blocked(cluster: &str, route: &str, vhost: &str) -> meshwhy_proto::v1::DecisionRecord {
        let mut record = outbound(502, "", "direct_response");
        record.authority = "api.example.com".into();
        record.cluster = cluster.into();
        record.route_name = route.into();
        record.virtual_host = vhost.into();
        record.upstream_host.clear();
        record
    }

    #[test]
    fn table() {
        let cases = [
            (blocked("", "block_all", "block_all"), true),
            (blocked("BlackHoleCluster", "", ""), true),
            (
                blocked("PassthroughCluster", "allow_any", "allow_any"),
                false,
            ),
        ];
        for (record, claims) in cases {
            let diagnosis = check(&RegistryOnlyBlocked, client(), record);
            assert_eq!(diagnosis.is_some(), claims);
            if let Some(diagnosis) = diagnosis {
                assert!(
                    diagnosis
                        .title
                        .contains("api.example.com is not in the mesh registry"),
                    "{}",
                    diagnosis.title
                );
                assert!(
                    diagnosis
                        .resource
                        .unwrap()
                        .hint
                        .starts_with("ServiceEntry missing (REGISTRY_ONLY)")
                );
                assert_eq!(diagnosis.next_commands[0], "kubectl get serviceentry -A");
            }
        }
    }
}
