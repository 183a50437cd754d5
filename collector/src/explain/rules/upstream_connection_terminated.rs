//! `upstream_connection_terminated`: UC — the upstream closed the connection before answering:
//! the app crashed, closed a keep-alive connection Envoy was about to reuse (the fast, occasional
//! kind among successes is `idle_timeout_race`, judged first), or closes every connection because
//! it does not speak what the port declares.

use super::{Diagnosis, Rule, bits, code, destination_rule, subject, tls_evidence};
use crate::explain::Cause;
use crate::explain::commands::{self, Next};
use crate::explain::finding::Confidence;
use crate::explain::group::{Context, Group};

pub(crate) struct UpstreamConnectionTerminated;

impl Rule for UpstreamConnectionTerminated {
    fn cause(&self) -> Cause {
        Cause::UpstreamConnectionTerminated
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let terminated = group.has(bits::UC)
            || group.details.reason.as_deref() == Some("connection_termination");
        if !terminated {
            return None;
        }
        // Every request to the cluster ended this way: not a race on reused connections (that
        // leaves successes, see `idle_timeout_race`) but an app that never answers on one.
        let every = group.traffic == Some(group.count);
        let resource = destination_rule(
            group,
            if every {
                "the app closes every connection before answering, or does not speak what the port \
                 declares (HTTP/1.0 with Connection: close, TLS, or HTTP/2 on a port declared http)"
            } else {
                "the app closes connections Envoy reuses (its keep-alive timeout shorter than the \
                 DestinationRule's connectionPool.http.idleTimeout), or it crashed mid-request"
            },
        );
        let evidence = tls_evidence(group);
        let mut next = Next::new(group, context);
        next.upstream_logs().resource(&resource).clusters();
        if evidence.is_some()
            && let Some(namespace) = commands::service(group).and_then(|s| s.namespace)
        {
            next.list("peerauthentication", Some(&namespace));
        }
        let when = if every {
            ", on every request to it,"
        } else {
            ""
        };
        let mut diagnosis = Diagnosis::new(
            format!(
                "{}: the upstream closed the connection before answering{when} so the sidecar answered {} (UC)",
                subject(group),
                code(group)
            ),
            Confidence::Medium,
        )
        .resource(Some(resource))
        .commands(next);
        // mTLS is a reading only when the record speaks of TLS; a bare UC is no evidence of it.
        if let Some(evidence) = evidence {
            diagnosis = diagnosis.note(format!(
                "with {evidence} in the record: plaintext sent to a STRICT mTLS server also ends this way; the server side then logs filter_chain_not_found"
            ));
        }
        Some(diagnosis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;
    use meshwhy_proto::v1::{DecisionRecord, RecordField};

    #[test]
    fn table() {
        let diagnosis = check(
            &UpstreamConnectionTerminated,
            client(),
            outbound(503, "UC", TERMINATED),
        )
        .unwrap();
        assert!(diagnosis.title.ends_with("(UC)"), "{}", diagnosis.title);
        assert_eq!(
            diagnosis.next_commands[0],
            "kubectl logs reviews-v1-5d8c -n shop --tail=200"
        );
        let alone = check_alone(
            &UpstreamConnectionTerminated,
            outbound(503, "UC", TERMINATED),
        )
        .unwrap();
        assert_eq!(
            alone.next_commands[0],
            "kubectl logs -n shop -l app=reviews --tail=200 --prefix"
        );
        // The upstream host is the caller's own address: the destination's logs, not the caller's.
        let mut shared_ip = outbound(503, "UC", TERMINATED);
        shared_ip.upstream_host = "10.0.0.5:9080".into();
        let shared_ip = check(&UpstreamConnectionTerminated, client(), shared_ip).unwrap();
        assert_eq!(
            shared_ip.next_commands[0],
            "kubectl logs -n shop -l app=reviews --tail=200 --prefix"
        );
        assert!(
            !shared_ip
                .next_commands
                .iter()
                .any(|command| command.starts_with("kubectl logs productpage")),
            "{:?}",
            shared_ip.next_commands
        );
        assert!(
            check(
                &UpstreamConnectionTerminated,
                client(),
                outbound(503, "", TERMINATED)
            )
            .is_some()
        );
        assert!(
            check(
                &UpstreamConnectionTerminated,
                client(),
                outbound(503, "UF", REFUSED)
            )
            .is_none()
        );
    }

    /// What a log line gives for the same request: no tlsMode, no upstream TLS, no provenance.
    fn logged(record: DecisionRecord) -> DecisionRecord {
        DecisionRecord {
            endpoint_tls_mode: String::new(),
            unknown_fields: [
                RecordField::EndpointTlsMode,
                RecordField::UpstreamTls,
                RecordField::ClusterProvenance,
                RecordField::RouteProvenance,
            ]
            .iter()
            .fold(0, |mask, field| mask | 1 << *field as u32),
            ..record
        }
    }

    #[test]
    fn mtls_is_a_reading_only_with_tls_evidence() {
        // The filter saw plaintext towards an endpoint with a sidecar: STRICT is a fair reading.
        let filter = check(
            &UpstreamConnectionTerminated,
            client(),
            outbound(503, "UC", TERMINATED),
        )
        .unwrap();
        assert_eq!(
            filter.notes,
            [
                "with plaintext to an endpoint with a sidecar (tlsMode=istio) in the record: plaintext sent to a STRICT mTLS server also ends this way; the server side then logs filter_chain_not_found"
            ]
        );
        assert!(
            filter
                .next_commands
                .contains(&"kubectl get peerauthentication -n shop".to_owned())
        );
        // A bare UC from a log line says nothing about TLS: no mTLS reading, no PeerAuthentication.
        let bare = check(
            &UpstreamConnectionTerminated,
            client(),
            logged(outbound(503, "UC", TERMINATED)),
        )
        .unwrap();
        assert!(bare.notes.is_empty(), "{:?}", bare.notes);
        assert!(
            bare.next_commands
                .iter()
                .all(|c| !c.contains("peerauthentication")),
            "{:?}",
            bare.next_commands
        );
        // An inbound record whose client spoke Istio mTLS is TLS evidence.
        let mut sni = logged(outbound(503, "UC", TERMINATED));
        sni.requested_server_name = "outbound_.9080_._.reviews.shop.svc.cluster.local".into();
        let sni = check(&UpstreamConnectionTerminated, client(), sni).unwrap();
        assert!(
            sni.notes[0].starts_with("with the client's Istio mTLS SNI outbound_.9080_._.reviews")
        );
    }

    #[test]
    fn every_request_failing_is_the_app_not_a_race() {
        let records: Vec<_> = (0..3)
            .map(|i| {
                let mut record = logged(outbound(503, "UC", TERMINATED));
                record.request_id = format!("uc-{i}");
                (client(), record)
            })
            .collect();
        let report = explain_records(&records);
        let finding = &report.findings[0];
        assert_eq!(finding.cause, Cause::UpstreamConnectionTerminated);
        assert!(
            finding.title.contains("on every request to it"),
            "{}",
            finding.title
        );
        assert!(
            finding
                .resource
                .as_ref()
                .unwrap()
                .hint
                .starts_with("the app closes every connection")
        );
    }
}
