//! `circuit_breaker_overflow`: UO — a circuit breaker limit (connections, pending requests,
//! requests, retries) was reached; Envoy answered 503 without trying the upstream.

use super::{Diagnosis, Rule, bits, code, destination_rule, subject};
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::Confidence;
use crate::explain::group::{Context, Group};

pub(crate) struct CircuitBreakerOverflow;

impl Rule for CircuitBreakerOverflow {
    fn cause(&self) -> Cause {
        Cause::CircuitBreakerOverflow
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let overflow = group.has(bits::UO) || group.details.reason.as_deref() == Some("overflow");
        if !overflow {
            return None;
        }
        let cluster = group.record().cluster.as_str();
        let resource = destination_rule(
            group,
            "trafficPolicy.connectionPool limits (maxConnections, http1MaxPendingRequests, http2MaxRequests) are full",
        );
        let mut next = Next::new(group, context);
        next.resource(&resource).clusters().proxy_stats(&format!(
            "{}.*(overflow|circuit_breakers)",
            cluster.replace('|', "\\|")
        ));
        Some(
            Diagnosis::new(
                format!(
                    "{}: a circuit breaker of {cluster} is full, so Envoy answered {} without trying the upstream (UO)",
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
        let mut record = outbound(503, "UO", OVERFLOW);
        record.cluster_provenance = DR.into();
        let diagnosis = check(&CircuitBreakerOverflow, client(), record).unwrap();
        assert!(
            diagnosis.title.contains(
                "circuit breaker of outbound|9080||reviews.shop.svc.cluster.local is full"
            )
        );
        assert_eq!(diagnosis.resource.unwrap().kind, "DestinationRule");
        assert_eq!(
            diagnosis.next_commands[0],
            "kubectl get destinationrule reviews -n shop -o yaml"
        );
        // Details alone (no flag) still say overflow.
        assert!(
            check(
                &CircuitBreakerOverflow,
                client(),
                outbound(503, "", OVERFLOW)
            )
            .is_some()
        );
        // RL is a rate limit, not a circuit breaker.
        assert!(
            check(
                &CircuitBreakerOverflow,
                client(),
                outbound(429, "RL", "local_rate_limited")
            )
            .is_none()
        );
    }
}
