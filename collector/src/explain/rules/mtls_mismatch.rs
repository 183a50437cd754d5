//! `mtls_mismatch`: the two sides of a hop disagree on mTLS. Two shapes: a TLS error on a connect
//! failure (UF/UC; e.g. `WRONG_VERSION_NUMBER`: mTLS sent to a plaintext endpoint), and plaintext
//! from a client whose DestinationRule disables TLS towards an endpoint with a sidecar that then
//! closes the connection (UC). Only TLS evidence in the record makes it this cause, never a bare
//! UC. The server's side of the second shape, `filter_chain_not_found`, is a listener miss
//! (`no_filter_chain`): it has more readings than mTLS.

use super::{Diagnosis, Rule, bits, code, destination_rule, subject};
use crate::decode::{DetailsKind, TransportFailure};
use crate::explain::Cause;
use crate::explain::commands::{self, Next};
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct MtlsMismatch;

impl Rule for MtlsMismatch {
    fn cause(&self) -> Cause {
        Cause::MtlsMismatch
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let connect_failed = group.has_any(bits::UF | bits::UC)
            || group.details.kind == DetailsKind::UpstreamResetBeforeResponse;
        if !connect_failed {
            return None;
        }
        if let Some(TransportFailure::Tls(tls)) = &group.transport {
            return Some(handshake(
                group,
                context,
                tls.reason.as_deref(),
                tls.meaning(),
            ));
        }
        plaintext_to_sidecar(group, context)
    }
}

fn sidecar_endpoint(group: &Group<'_>) -> bool {
    group.tls_modes.contains(&"istio")
}

fn next_commands<'g, 'a>(
    group: &'g Group<'a>,
    context: &'g Context<'a>,
    resource: &Resource,
) -> Next<'g, 'a> {
    let mut next = Next::new(group, context);
    next.resource(resource);
    match commands::service(group).and_then(|service| service.namespace) {
        Some(namespace) => next.list("peerauthentication", Some(&namespace)),
        None => next.list_here("peerauthentication"),
    };
    match commands::server(group, context) {
        Some(_) => next.describe_server(),
        None => next.endpoints(),
    };
    next.clusters();
    next
}

fn handshake(
    group: &Group<'_>,
    context: &Context<'_>,
    reason: Option<&str>,
    meaning: Option<&str>,
) -> Diagnosis {
    let plaintext_peer = reason == Some("WRONG_VERSION_NUMBER");
    let why = if plaintext_peer && sidecar_endpoint(group) {
        "the endpoint is labelled as having a sidecar (tlsMode=istio) but its port answered plaintext: \
         the port is excluded from interception, or the pod runs without its proxy"
    } else if plaintext_peer {
        "a DestinationRule sends (m)TLS to an endpoint without a sidecar, which answered plaintext"
    } else {
        "certificates or TLS settings of the two sides do not fit (DestinationRule tls mode, \
         subjectAltNames, trust domain)"
    };
    let resource = destination_rule(group, why);
    let confidence = if group.cluster_resource.is_some() || sidecar_endpoint(group) {
        Confidence::High
    } else {
        Confidence::Medium
    };
    let detail = match (reason, meaning) {
        (Some(reason), Some(meaning)) => format!("{reason}: {meaning}"),
        (Some(reason), None) => reason.to_owned(),
        _ => "TLS error".to_owned(),
    };
    let next = next_commands(group, context, &resource);
    Diagnosis::new(
        format!(
            "{}: the TLS handshake to the upstream failed ({detail}), so the sidecar answered {}",
            subject(group),
            code(group)
        ),
        confidence,
    )
    .resource(Some(resource))
    .commands(next)
}

fn plaintext_to_sidecar(group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
    let record = group.record();
    let plaintext = record.upstream_tls_version.is_empty();
    let terminated =
        group.has(bits::UC) || group.details.reason.as_deref() == Some("connection_termination");
    if !(terminated && plaintext && sidecar_endpoint(group) && group.cluster_resource.is_some()) {
        return None;
    }
    let resource = destination_rule(
        group,
        "this DestinationRule's tls settings send plaintext to an endpoint with a sidecar; \
         a STRICT PeerAuthentication there closes such connections",
    );
    let next = next_commands(group, context, &resource);
    Some(
        Diagnosis::new(
            format!(
                "{}: the sidecar sent plaintext to an endpoint with a sidecar, which closed the connection ({}): mTLS is likely STRICT there",
                subject(group),
                code(group)
            ),
            Confidence::Medium,
        )
        .resource(Some(resource))
        .commands(next),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;

    #[test]
    fn table() {
        // Envoy 1.40: TLS sent to a plaintext endpoint, the endpoint labelled with a sidecar.
        let tls = check(
            &MtlsMismatch,
            client(),
            outbound(503, "UF,URX", TLS_WRONG_VERSION),
        )
        .unwrap();
        assert!(tls.title.contains("WRONG_VERSION_NUMBER"), "{}", tls.title);
        assert_eq!(tls.confidence, Confidence::High);
        assert!(
            tls.resource
                .as_ref()
                .unwrap()
                .hint
                .contains("tlsMode=istio")
        );
        assert_eq!(
            tls.next_commands[0],
            "kubectl get peerauthentication -n shop"
        );
        assert_eq!(
            tls.next_commands[1],
            "istioctl x describe pod reviews-v1-5d8c -n shop"
        );

        // A DestinationRule forcing TLS towards an endpoint without a sidecar: the DR is named.
        let mut forced = outbound(503, "UF", OLD_CONNECT_FAILURE);
        forced.endpoint_tls_mode.clear();
        forced.cluster_provenance = DR.into();
        forced.cluster_subset = "v1".into();
        forced.transport_failure_reason =
            "TLS error: 268435703:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER".into();
        let named = check(&MtlsMismatch, client(), forced).unwrap();
        let resource = named.resource.unwrap();
        assert_eq!(
            (
                resource.kind.as_str(),
                resource.namespace.as_str(),
                resource.name.as_str(),
                resource.subset.as_str()
            ),
            ("DestinationRule", "shop", "reviews", "v1")
        );
        assert!(resource.hint.contains("without a sidecar"));
        assert_eq!(
            named.next_commands[0],
            "kubectl get destinationrule reviews -n shop -o yaml"
        );

        // Plaintext to a STRICT listener, as the client sees it, with a DR in play.
        let mut plaintext = outbound(503, "UC", TERMINATED);
        plaintext.cluster_provenance = DR.into();
        let strict = check(&MtlsMismatch, client(), plaintext).unwrap();
        assert_eq!(strict.confidence, Confidence::Medium);
        // Without a DR (auto mTLS) a UC is no mTLS evidence.
        assert!(check(&MtlsMismatch, client(), outbound(503, "UC", TERMINATED)).is_none());

        // The server's listener access log line is a listener miss, judged by no_filter_chain.
        assert!(
            check(
                &MtlsMismatch,
                server(),
                inbound(0, "NR", "filter_chain_not_found"),
            )
            .is_none()
        );

        // A refused connect is not mTLS.
        assert!(check(&MtlsMismatch, client(), outbound(503, "UF", REFUSED)).is_none());
    }
}
