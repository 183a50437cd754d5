//! `certificate_not_ready`: `TLS error: Secret is not supplied by SDS` — the sidecar has no
//! workload certificate (or root of trust) from istio-agent's SDS yet, so every mTLS connection it
//! opens fails before a handshake. The agent gets certificates from istiod (or the mesh's CA):
//! when that is unreachable the proxy's xDS is usually STALE too. Judged before `mtls_mismatch`,
//! which would otherwise read it as a plain TLS error between two sides that disagree.

use super::{Diagnosis, Rule, code, subject};
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct CertificateNotReady;

/// Envoy's text for a TLS transport socket whose SDS secret has not arrived, in any spelling the
/// logs use (spaces or `_`, any case).
fn secret_missing(text: &str) -> bool {
    const NEEDLE: &[u8] = b"secret is not supplied by sds";
    let bytes = text.as_bytes();
    bytes.len() >= NEEDLE.len()
        && bytes.windows(NEEDLE.len()).any(|window| {
            window.iter().zip(NEEDLE).all(|(&have, &want)| {
                let have = if have == b'_' {
                    b' '
                } else {
                    have.to_ascii_lowercase()
                };
                have == want
            })
        })
}

impl Rule for CertificateNotReady {
    fn cause(&self) -> Cause {
        Cause::CertificateNotReady
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let record = group.record();
        if !secret_missing(&record.transport_failure_reason)
            && !secret_missing(&record.response_code_details)
        {
            return None;
        }
        let mut next = Next::new(group, context);
        let secrets = format!("istioctl proxy-config secret {}", next.pod().proxy());
        next.proxy_status()
            .push(secrets)
            .push("kubectl get pods -n istio-system -l app=istiod -o wide")
            .proxy_logs("sds|secret|certificate|15012|xds")
            .push("kubectl logs -n istio-system -l app=istiod --tail=200 | grep -iE 'csr|sign|cert|error'");
        Some(
            Diagnosis::new(
                format!(
                    "{}: the sidecar has no workload certificate from SDS yet (Secret is not supplied by SDS), so it could not open the mTLS connection and answered {}",
                    subject(group),
                    code(group)
                ),
                Confidence::High,
            )
            .resource(Some(Resource::hint(
                "the workload certificate istio-agent gets from istiod (or the mesh CA) over SDS: \
                 istiod unreachable from this pod (down, a NetworkPolicy, DNS), certificate signing \
                 failing, or the pod still starting",
            )))
            .commands(next)
            .note(
                "not a disagreement between the two sides: this proxy holds no certificate at all; \
                 when `istioctl proxy-status` shows it STALE too, it cannot reach istiod (config and \
                 certificates come from the same place)",
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;

    /// What Envoy logs for an upstream TLS socket whose secret never arrived.
    const NOT_SUPPLIED: &str = "TLS error: Secret is not supplied by SDS";

    #[test]
    fn table() {
        let cases = [
            // The transport failure reason field (Istio ≥ 1.2 text format, JSON).
            (
                meshwhy_proto::v1::DecisionRecord {
                    transport_failure_reason: NOT_SUPPLIED.into(),
                    ..outbound(503, "UF,URX", OLD_CONNECT_FAILURE)
                },
                true,
            ),
            // The access log's `_` spelling, inside the details.
            (
                outbound(
                    503,
                    "UF",
                    "upstream_reset_before_response_started{connection_failure,TLS_error:_Secret_is_not_supplied_by_SDS}",
                ),
                true,
            ),
            (
                meshwhy_proto::v1::DecisionRecord {
                    transport_failure_reason: "TLS_error:_Secret_is_not_supplied_by_SDS".into(),
                    ..outbound(503, "UF", "")
                },
                true,
            ),
            // A real handshake failure is mTLS, not a missing certificate.
            (outbound(503, "UF", TLS_WRONG_VERSION), false),
            (outbound(503, "UF", REFUSED), false),
        ];
        for (record, claims) in cases {
            let details = record.response_code_details.clone();
            let diagnosis = check(&CertificateNotReady, client(), record);
            assert_eq!(diagnosis.is_some(), claims, "{details}");
            let Some(diagnosis) = diagnosis else { continue };
            assert!(
                diagnosis
                    .title
                    .contains("no workload certificate from SDS yet"),
                "{}",
                diagnosis.title
            );
            assert_eq!(
                diagnosis.next_commands[..2],
                [
                    "istioctl proxy-status productpage-v1-7d9c.shop",
                    "istioctl proxy-config secret productpage-v1-7d9c.shop",
                ]
            );
        }
    }

    #[test]
    fn the_engine_prefers_it_to_an_mtls_mismatch() {
        let record = meshwhy_proto::v1::DecisionRecord {
            transport_failure_reason: NOT_SUPPLIED.into(),
            ..outbound(503, "UF", OLD_CONNECT_FAILURE)
        };
        let report = explain_records(&[(client(), record)]);
        assert_eq!(report.findings[0].cause, Cause::CertificateNotReady);
    }
}
