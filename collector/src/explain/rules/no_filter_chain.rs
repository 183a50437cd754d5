//! `no_filter_chain`: `NR filter_chain_not_found` — no filter chain of the listener matched the
//! connection, so it was closed before any HTTP or TCP routing: a listener miss, not a route miss
//! (`no_route`), and not an ECDS filter config (`no_filter_config`). On a sidecar's inbound
//! listener the usual reason is a plaintext client on a port whose PeerAuthentication is STRICT
//! (only TLS chains exist there); else the port, or the protocol it is declared with, has no
//! chain. The listener's chains for the port tell the two apart, so the finding points at them.
//!
//! Only a listener access log shows this: an HTTP filter never sees the connection.

use meshwhy_proto::v1::Direction;

use super::{Diagnosis, Rule, bits, mtls_sni, subject, tcp};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct NoFilterChain;

/// The port every inbound connection of a sidecar lands on (`virtualInbound`); its filter chains
/// match the original destination port.
const VIRTUAL_INBOUND_PORT: u16 = 15006;

/// Service ports with their names and appProtocol, for a namespace: how istiod decides which
/// protocol, and so which chains, a port gets.
fn service_ports(namespace: &str) -> String {
    format!(
        "kubectl get svc -n {namespace} -o jsonpath='{{range .items[*]}}{{.metadata.name}}{{\": \"}}{{range .spec.ports[*]}}{{.name}}/{{.port}}->{{.targetPort}}/{{.appProtocol}} {{end}}{{\"\\n\"}}{{end}}'"
    )
}

impl Rule for NoFilterChain {
    fn cause(&self) -> Cause {
        Cause::NoFilterChain
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let named = group.details.kind == DetailsKind::FilterChainNotFound;
        // Older formats print no details: a TCP line with NR and no cluster is the same miss.
        let inferred = tcp(group)
            && group.has(bits::NR)
            && group.record().cluster.is_empty()
            && group.details.kind == DetailsKind::Empty;
        if !named && !inferred {
            return None;
        }
        let sni = mtls_sni(group);
        let mut next = Next::new(group, context);
        let proxy = next.pod().proxy();
        let namespace = next.pod().namespace.clone();
        // Inbound chains match the original destination port (the container port, which the
        // record does not carry): list every chain's match, TLS or plaintext, ALPN, port.
        let listeners = match group.direction {
            Direction::Outbound => format!("istioctl proxy-config listeners {proxy} -o json"),
            _ => format!(
                "istioctl proxy-config listeners {proxy} --port {VIRTUAL_INBOUND_PORT} -o json | jq '.[].filterChains[].filterChainMatch'"
            ),
        };
        next.push(listeners)
            .list("peerauthentication", None)
            .push(service_ports(&namespace))
            .describe();
        let (title, reading) = match sni {
            Some((port, _, host)) => (
                format!(
                    "{}: no listener filter chain matched a connection (filter_chain_not_found) although the client spoke Istio mTLS for {host}:{port}: a listener miss, not a routing problem — the port or the protocol it is declared with has no chain here",
                    subject(group)
                ),
                "the client is not plaintext (its SNI is Istio's), so STRICT mTLS is not what rejected it: compare the Service's port name / appProtocol and targetPort with the chains the listener has",
            ),
            None => (
                format!(
                    "{}: no listener filter chain matched a connection (filter_chain_not_found): a listener miss, not a routing problem — most often a plaintext client on a STRICT mTLS port, else a port or protocol with no chain",
                    subject(group)
                ),
                "to tell them apart: if every chain for the port matches transportProtocol tls, the port is STRICT and the client sent plaintext (no sidecar, or a DestinationRule with tls DISABLE); if the port has no chain at all, its Service port name / appProtocol or targetPort is not what the sidecar was configured with",
            ),
        };
        let confidence = if named {
            Confidence::High
        } else {
            Confidence::Medium
        };
        let mut diagnosis = Diagnosis::new(title, confidence)
            .resource(Some(Resource::hint(
                "PeerAuthentication first (mode STRICT on this workload, its namespace, or mesh-wide in istio-system), then the Service's port naming or appProtocol for this port",
            )))
            .commands(next)
            .note(reading)
            .note("not proof of an mTLS mismatch on its own, and no VirtualService or DestinationRule is involved: the connection never reached routing")
            .note("connection-level failures never reach an HTTP filter: only the sidecar's listener access log shows them; the client side of the same connection usually logs 503 UC");
        if inferred {
            diagnosis = diagnosis.note(
                "read from NR on a TCP line with no cluster: this format prints no response code details to confirm filter_chain_not_found",
            );
        }
        Some(diagnosis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::testkit::*;
    use meshwhy_proto::v1::{DecisionRecord, RecordField};

    /// reviews' sidecar logging a connection no inbound chain matched, Istio ≥ 1.9 text format:
    /// `[…] "- - -" 0 NR filter_chain_not_found - "-" 0 0 0 - "-" "-" "-" "-" "-" - - 10.0.0.9:9080 10.0.0.5:40000 - -`
    fn listener_miss() -> DecisionRecord {
        DecisionRecord {
            protocol: "TCP".into(),
            method: String::new(),
            authority: String::new(),
            path: String::new(),
            route_name: String::new(),
            virtual_host: String::new(),
            cluster: String::new(),
            upstream_host: String::new(),
            attempt_count: 0,
            downstream_mtls: false,
            downstream_peer_principal: String::new(),
            ..inbound(0, "NR", "filter_chain_not_found")
        }
    }

    #[test]
    fn a_listener_miss_names_peer_authentication_and_port_naming() {
        let diagnosis = check(&NoFilterChain, server(), listener_miss()).unwrap();
        assert_eq!(diagnosis.confidence, Confidence::High);
        assert!(
            diagnosis.title.contains(
                "a listener miss, not a routing problem — most often a plaintext client on a STRICT mTLS port"
            ),
            "{}",
            diagnosis.title
        );
        assert!(
            diagnosis
                .resource
                .unwrap()
                .hint
                .starts_with("PeerAuthentication first")
        );
        assert_eq!(
            diagnosis.next_commands,
            [
                "istioctl proxy-config listeners reviews-v1-5d8c.shop --port 15006 -o json | jq '.[].filterChains[].filterChainMatch'",
                "kubectl get peerauthentication -A",
                "kubectl get svc -n shop -o jsonpath='{range .items[*]}{.metadata.name}{\": \"}{range .spec.ports[*]}{.name}/{.port}->{.targetPort}/{.appProtocol} {end}{\"\\n\"}{end}'",
                "istioctl x describe pod reviews-v1-5d8c -n shop",
            ]
        );
        assert!(diagnosis.notes[0].starts_with("to tell them apart"));
        assert!(diagnosis.notes[1].starts_with("not proof of an mTLS mismatch"));
    }

    #[test]
    fn an_mtls_client_points_at_the_port_not_at_strict() {
        let mut record = listener_miss();
        record.requested_server_name = "outbound_.9080_._.reviews.shop.svc.cluster.local".into();
        let diagnosis = check(&NoFilterChain, server(), record).unwrap();
        assert!(
            diagnosis
                .title
                .contains("spoke Istio mTLS for reviews.shop.svc.cluster.local:9080"),
            "{}",
            diagnosis.title
        );
        assert!(diagnosis.notes[0].contains("STRICT mTLS is not what rejected it"));
    }

    #[test]
    fn old_formats_without_details_and_what_it_is_not() {
        // Istio before 1.9: no details; a TCP NR with no cluster is the same miss, less sure.
        let mut old = listener_miss();
        old.response_code_details.clear();
        old.unknown_fields = 1 << RecordField::ResponseCodeDetails as u32;
        let diagnosis = check(&NoFilterChain, server(), old).unwrap();
        assert_eq!(diagnosis.confidence, Confidence::Medium);
        assert!(
            diagnosis
                .notes
                .last()
                .unwrap()
                .contains("no response code details")
        );

        // An HTTP route miss is no_route's; an ECDS miss is no_filter_config's.
        let mut route_miss = outbound(404, "NR", "route_not_found");
        route_miss.cluster.clear();
        assert!(check(&NoFilterChain, client(), route_miss).is_none());
        assert!(check(&NoFilterChain, client(), outbound(500, "NFCF", "")).is_none());

        // The engine: the listener miss is neither no_route nor mtls_mismatch.
        let report = explain_records(&[(server(), listener_miss())]);
        assert_eq!(report.findings[0].cause, Cause::NoFilterChain);
    }
}
