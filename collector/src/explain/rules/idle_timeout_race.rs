//! `idle_timeout_race`: a short `503 UC` among successes to the same cluster — the upstream app
//! closed an idle keep-alive connection just as the sidecar picked it from its pool and sent a
//! request on it. The sidecar keeps upstream connections for up to an hour by default
//! (DestinationRule `connectionPool.http.idleTimeout` unset); many servers close idle ones after
//! a few seconds (Node.js: 5 s), so some requests lose the race.
//!
//! Told apart from an app that closes every connection (or speaks another protocol than the port
//! declares) by the traffic: there every request to the cluster ends UC, here most succeed and
//! the failures are fast. Connection reuse itself is not in any record; the successes and the
//! short durations are the evidence, so the finding is medium at best.

use super::{Diagnosis, Rule, bits, code, destination_rule, flag_names, subject, tcp, unseen};
use crate::explain::Cause;
use crate::explain::commands::{self, Next};
use crate::explain::finding::Confidence;
use crate::explain::group::{Context, Group};
use meshwhy_proto::v1::RecordField;

pub(crate) struct IdleTimeoutRace;

/// Longest failure still read as "failed at once": a request lost to a closed pooled connection
/// fails as soon as the close arrives, far below any app's own processing time.
pub(crate) const RACE_MAX_DURATION_NANOS: u64 = 100_000_000;

/// Whether the group is the race: UC (HTTP), every sampled duration short, and successes to the
/// same cluster outnumbering these failures.
pub(crate) fn is_race(group: &Group<'_>) -> bool {
    let terminated =
        group.has(bits::UC) || group.details.reason.as_deref() == Some("connection_termination");
    let short = !unseen(group, RecordField::Duration)
        && group.max_duration_nanos <= RACE_MAX_DURATION_NANOS;
    let minority = group
        .traffic
        .is_some_and(|traffic| group.count.saturating_mul(2) < traffic);
    terminated && !tcp(group) && !group.has(bits::UF) && short && minority
}

impl Rule for IdleTimeoutRace {
    fn cause(&self) -> Cause {
        Cause::IdleTimeoutRace
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        if !is_race(group) {
            return None;
        }
        let traffic = group.traffic.unwrap_or(group.count);
        let resource = destination_rule(
            group,
            "set trafficPolicy.connectionPool.http.idleTimeout below the app's keep-alive timeout \
             (e.g. 4s for an app that closes idle connections after 5 s), or retry on reset \
             (VirtualService http[].retries.retryOn: reset, for idempotent requests)",
        );
        let cluster = group.record().cluster.replace('|', "\\|");
        let mut next = Next::new(group, context);
        next.resource(&resource);
        if resource.kind.is_empty() {
            match commands::service(group).and_then(|service| service.namespace) {
                Some(namespace) => next.list("destinationrule", Some(&namespace)),
                None => next.list_here("destinationrule"),
            };
        }
        next.clusters()
            .proxy_stats(&format!(
                "{cluster}.*upstream_cx_destroy_remote_with_active_rq"
            ))
            .upstream_logs();
        let within = match group.max_duration_nanos / 1_000_000 {
            0 => "under 1 ms".to_owned(),
            ms => format!("within {ms} ms"),
        };
        Some(
            Diagnosis::new(
                format!(
                    "{}: {} of {traffic} requests ended {} {} {within} while the rest succeeded: the upstream closed pooled keep-alive connections as the sidecar reused them — the app's keep-alive timeout is shorter than the sidecar's idle timeout",
                    subject(group),
                    group.count,
                    code(group),
                    flag_names(group.flags),
                ),
                Confidence::Medium,
            )
            .resource(Some(resource))
            .commands(next)
            .note(
                "the sidecar keeps idle upstream connections for up to 1 h unless the DestinationRule sets \
                 connectionPool.http.idleTimeout; servers such as Node.js close them after 5 s, and a \
                 request sent as the close arrives fails at once with UC",
            )
            .note(
                "no record shows connection reuse: the fast failures among successes to the same cluster \
                 are the evidence; if every request to it failed UC, the app would be closing every \
                 connection instead (upstream_connection_terminated)",
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;
    use meshwhy_proto::v1::{DecisionRecord, ProxyIdentity};

    /// `n` successes and `failures` fast UC failures from productpage to reviews, as log lines
    /// give them (every request, successes included).
    fn traffic(
        successes: usize,
        failures: usize,
        failure_ms: u64,
    ) -> Vec<(ProxyIdentity, DecisionRecord)> {
        let mut records = Vec::new();
        for i in 0..successes {
            let mut ok = outbound(200, "", VIA_UPSTREAM);
            ok.request_id = format!("ok-{i}");
            ok.sampled_success = true;
            records.push((client(), ok));
        }
        for i in 0..failures {
            let mut uc = outbound(503, "UC", TERMINATED);
            uc.request_id = format!("uc-{i}");
            uc.start_time_unix_nanos += i as u64;
            uc.duration_nanos = failure_ms * 1_000_000;
            records.push((client(), uc));
        }
        records
    }

    fn cause_of(records: &[(ProxyIdentity, DecisionRecord)]) -> (Cause, String) {
        let report = explain_records(records);
        let finding = &report.findings[0];
        (finding.cause, finding.title.clone())
    }

    #[test]
    fn a_fast_uc_minority_among_successes_is_the_race() {
        let (cause, title) = cause_of(&traffic(18, 2, 1));
        assert_eq!(cause, Cause::IdleTimeoutRace, "{title}");
        assert_eq!(
            title,
            "shop/productpage-v1 → reviews.shop.svc.cluster.local:9080: 2 of 20 requests ended 503 UC within 1 ms while the rest succeeded: the upstream closed pooled keep-alive connections as the sidecar reused them — the app's keep-alive timeout is shorter than the sidecar's idle timeout"
        );
        let report = explain_records(&traffic(18, 2, 0));
        let finding = &report.findings[0];
        assert!(finding.title.contains("under 1 ms"), "{}", finding.title);
        assert_eq!(finding.confidence, Confidence::Medium);
        assert!(
            finding
                .resource
                .as_ref()
                .unwrap()
                .hint
                .contains("connectionPool.http.idleTimeout")
        );
        assert_eq!(
            finding.next_commands,
            [
                "kubectl get destinationrule -n shop",
                "istioctl proxy-config clusters productpage-v1-7d9c.shop --fqdn reviews.shop.svc.cluster.local -o json",
                "kubectl exec productpage-v1-7d9c -n shop -c istio-proxy -- pilot-agent request GET stats | grep -E 'outbound\\|9080\\|\\|reviews.shop.svc.cluster.local.*upstream_cx_destroy_remote_with_active_rq'",
                "kubectl logs reviews-v1-5d8c -n shop --tail=200",
            ]
        );
    }

    #[test]
    fn every_request_failing_or_slow_failures_are_not_the_race() {
        // The app closes every connection: no successes.
        assert_eq!(
            cause_of(&traffic(0, 5, 1)).0,
            Cause::UpstreamConnectionTerminated
        );
        // UC is the majority.
        assert_eq!(
            cause_of(&traffic(2, 5, 1)).0,
            Cause::UpstreamConnectionTerminated
        );
        // Slow failures: the app died mid-request.
        assert_eq!(
            cause_of(&traffic(18, 2, 900)).0,
            Cause::UpstreamConnectionTerminated
        );
        // A format without durations cannot tell.
        let mut unseen = traffic(18, 2, 0);
        for (_, record) in &mut unseen {
            record.unknown_fields = 1 << RecordField::Duration as u32;
        }
        assert_eq!(cause_of(&unseen).0, Cause::UpstreamConnectionTerminated);
        // A TCP connection closed by its upstream is no keep-alive race.
        let mut tcp = traffic(18, 2, 1);
        for (_, record) in &mut tcp {
            record.protocol = "TCP".into();
        }
        assert_ne!(cause_of(&tcp).0, Cause::IdleTimeoutRace);
    }

    #[test]
    fn after_retries_it_is_the_last_attempt() {
        let mut records = traffic(18, 0, 1);
        let mut uc = outbound(503, "UC,URX", TERMINATED);
        uc.request_id = "uc-retried".into();
        uc.attempt_count = 3;
        uc.duration_nanos = 3_000_000;
        records.push((client(), uc));
        let report = explain_records(&records);
        assert_eq!(report.findings[0].cause, Cause::RetriesExhausted);
        assert_eq!(
            report.findings[0].last_attempt,
            Some(Cause::IdleTimeoutRace)
        );
    }
}
