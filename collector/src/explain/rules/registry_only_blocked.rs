//! `registry_only_blocked`: with `outboundTrafficPolicy: REGISTRY_ONLY` a host the mesh does not
//! know goes to `BlackHoleCluster` / the `block_all` route: for HTTP a 502 direct response, not
//! NR; for TCP and TLS (no route at all) a connection to `BlackHoleCluster` closed with `UH` and no
//! upstream host — not an empty Service, which `no_healthy_upstream` would read.

use super::{Diagnosis, Rule, authority_host, code, subject, tcp};
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
        // A TCP/TLS connection has no authority; the TLS client's SNI names the host it wanted.
        let host = match authority_host(group) {
            "" => group.record().requested_server_name.as_str(),
            host => host,
        };
        let named = if host.is_empty() {
            "the destination".to_owned()
        } else {
            host.to_owned()
        };
        let mut next = Next::new(group, context);
        next.list("serviceentry", None)
            .list_here("sidecar")
            .clusters_or(host)
            .push("kubectl get configmap istio -n istio-system -o jsonpath='{.data.mesh}' | grep -A2 outboundTrafficPolicy");
        let how = if tcp(group) {
            "so the sidecar sent the connection to BlackHoleCluster and closed it (UH, no upstream host)".to_owned()
        } else {
            format!("so the sidecar blocked it ({})", code(group))
        };
        Some(
            Diagnosis::new(
                format!(
                    "{}: {named} is not in the mesh registry and outbound traffic is REGISTRY_ONLY, {how}",
                    subject(group),
                ),
                Confidence::High,
            )
            .resource(Some(Resource::hint(format!(
                "ServiceEntry missing (REGISTRY_ONLY) for {named}, or a Sidecar egress that does not list it"
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

    /// A TCP (or app-TLS) connection under REGISTRY_ONLY, Istio ≥ 1.9 text format:
    /// `[…] "- - -" 0 UH - - "-" 0 0 0 - "-" "-" "-" "-" "-" BlackHoleCluster - 93.184.216.34:443 10.0.0.5:51234 api.example.com -`
    fn tcp_blackhole(sni: &str) -> meshwhy_proto::v1::DecisionRecord {
        let mut record = outbound(0, "UH", "");
        record.protocol = "TCP".into();
        record.method.clear();
        record.path.clear();
        record.authority.clear();
        record.route_name.clear();
        record.virtual_host.clear();
        record.cluster = "BlackHoleCluster".into();
        record.upstream_host.clear();
        record.endpoint_tls_mode.clear();
        record.requested_server_name = sni.into();
        record
    }

    #[test]
    fn tcp_and_tls_connections_to_black_hole_cluster() {
        let diagnosis = check(
            &RegistryOnlyBlocked,
            client(),
            tcp_blackhole("api.example.com"),
        )
        .unwrap();
        assert_eq!(
            diagnosis.title,
            "shop/productpage-v1: api.example.com is not in the mesh registry and outbound traffic is REGISTRY_ONLY, so the sidecar sent the connection to BlackHoleCluster and closed it (UH, no upstream host)"
        );
        assert!(
            diagnosis.next_commands.contains(
                &"istioctl proxy-config clusters productpage-v1-7d9c.shop --fqdn api.example.com"
                    .to_owned()
            )
        );
        let plain = check(&RegistryOnlyBlocked, client(), tcp_blackhole("")).unwrap();
        assert!(
            plain
                .title
                .contains("the destination is not in the mesh registry"),
            "{}",
            plain.title
        );
        // The engine: not an empty Service (no_healthy_upstream).
        let report = explain_records(&[(client(), tcp_blackhole(""))]);
        assert_eq!(report.findings[0].cause, Cause::RegistryOnlyBlocked);
    }
}
