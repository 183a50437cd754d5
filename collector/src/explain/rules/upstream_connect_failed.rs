//! `upstream_connect_failed`: UF — the sidecar could not open a connection to the upstream:
//! refused (nothing listens on the port), timed out (a NetworkPolicy or firewall drops it),
//! unreachable (the pod is gone). TLS failures are `mtls_mismatch`, judged first.

use super::{Diagnosis, Rule, bits, code, subject};
use crate::decode::TransportFailure;
use crate::explain::Cause;
use crate::explain::commands::{self, Next};
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct UpstreamConnectFailed;

impl Rule for UpstreamConnectFailed {
    fn cause(&self) -> Cause {
        Cause::UpstreamConnectFailed
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let reason = group.details.reason.as_deref();
        let connect_reason = matches!(
            reason,
            Some("remote_connection_failure" | "connection_failure" | "local_connection_failure")
        );
        if !group.has(bits::UF) && !connect_reason {
            return None;
        }
        let pod = commands::recorder(group);
        let server = commands::server(group, context);
        let service = commands::service(group);
        let target_namespace = service
            .as_ref()
            .and_then(|s| s.namespace.clone())
            .or_else(|| server.as_ref().map(|s| s.namespace.clone()))
            .unwrap_or_else(|| pod.namespace.clone());
        let hosts = if group.upstream_hosts.is_empty() {
            String::new()
        } else {
            format!(" {}", group.upstream_hosts.join(", "))
        };
        let (why, hint) = match &group.transport {
            Some(TransportFailure::ConnectionRefused) => (
                "connection refused: nothing listens on that port",
                "the Service's targetPort vs the port the app listens on, or an app that is not (yet) up",
            ),
            Some(TransportFailure::ConnectionTimeout) => (
                "connect timed out: packets are dropped on the way",
                "a NetworkPolicy or firewall dropping traffic to the pod, or a hung node",
            ),
            Some(TransportFailure::Unreachable) => (
                "host unreachable: the endpoint is gone",
                "stale endpoints: the pod was deleted and the sidecar has not got the update",
            ),
            Some(TransportFailure::ConnectionReset) => (
                "the connection was reset while connecting",
                "the app's listen backlog or a proxy in between resetting connections",
            ),
            _ => (
                "the connection could not be opened",
                "the destination pods and port",
            ),
        };
        let mut next = Next::new(group, context);
        next.endpoints();
        if matches!(group.transport, Some(TransportFailure::ConnectionTimeout)) {
            next.push(commands::network_policies(&target_namespace));
        }
        match &server {
            Some(_) => next.describe_server().upstream_logs(),
            None => next.push_opt(service.as_ref().and_then(commands::service_yaml)),
        };
        next.push(commands::network_policies(&target_namespace));
        let diagnosis = Diagnosis::new(
            format!(
                "{}: could not connect to the upstream{hosts} ({why}), so the sidecar answered {}",
                subject(group),
                code(group)
            ),
            Confidence::High,
        )
        .resource(Some(Resource::hint(hint)))
        .commands(next);
        // What the server side shows (nothing, expectedly) is the hop evidence's to say.
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
        let cases = [
            (outbound(503, "UF", REFUSED), "connection refused"),
            (outbound(503, "UF", OLD_REFUSED), "connection refused"),
            (
                outbound(
                    503,
                    "UF",
                    "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_110}",
                ),
                "connect timed out",
            ),
            (
                outbound(503, "UF", OLD_CONNECT_FAILURE),
                "could not be opened",
            ),
            // Older details without the reason text; the transport field has it.
            (
                meshwhy_proto::v1::DecisionRecord {
                    transport_failure_reason: REFUSED_TRANSPORT.into(),
                    ..outbound(503, "UF", OLD_CONNECT_FAILURE)
                },
                "connection refused",
            ),
        ];
        for (record, phrase) in cases {
            let details = record.response_code_details.clone();
            let diagnosis = check(&UpstreamConnectFailed, client(), record).unwrap();
            assert!(
                diagnosis.title.contains(phrase),
                "{details}: {}",
                diagnosis.title
            );
            assert!(diagnosis.title.contains("10.0.0.9:9080"));
        }
        let refused = check(
            &UpstreamConnectFailed,
            client(),
            outbound(503, "UF", REFUSED),
        )
        .unwrap();
        assert_eq!(
            refused.next_commands,
            [
                "istioctl proxy-config endpoints productpage-v1-7d9c.shop --cluster \"outbound|9080||reviews.shop.svc.cluster.local\"",
                "istioctl x describe pod reviews-v1-5d8c -n shop",
                "kubectl logs reviews-v1-5d8c -n shop --tail=200",
                "kubectl get networkpolicy -n shop",
            ]
        );
        // Without a known server: the Service instead, and no claim about server records.
        let alone = check_alone(&UpstreamConnectFailed, outbound(503, "UF", REFUSED)).unwrap();
        assert!(
            alone
                .next_commands
                .contains(&"kubectl get service reviews -n shop -o yaml".to_owned())
        );
        let timeout = check(
            &UpstreamConnectFailed,
            client(),
            outbound(503, "UF", "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_110}"),
        )
        .unwrap();
        assert_eq!(
            timeout.next_commands[1],
            "kubectl get networkpolicy -n shop"
        );
        assert!(
            check(
                &UpstreamConnectFailed,
                client(),
                outbound(503, "UC", TERMINATED)
            )
            .is_none()
        );
    }
}
