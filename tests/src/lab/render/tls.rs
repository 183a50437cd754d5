//! The TLS halves of Istio's mTLS: the client sidecar's `UpstreamTlsContext` (its workload
//! certificate, the mesh root, the server's SPIFFE ids, Istio's ALPN and SNI) and the server
//! sidecar's `DownstreamTlsContext` (client certificates required, any identity of the trust
//! domain accepted; AuthorizationPolicy decides the rest).

use crate::lab::pki::{Identity, Pki, TRUST_DOMAIN};
use serde_json::{Value, json};

/// istiod's mesh mTLS protocol range.
fn tls_params() -> Value {
    json!({"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"})
}

fn certificate(identity: &Identity) -> Value {
    json!({
        "certificate_chain": {"inline_string": identity.cert_pem},
        "private_key": {"inline_string": identity.key_pem},
    })
}

/// The transport socket of an outbound cluster towards sidecars with `server_ids`.
pub fn upstream(pki: &Pki, client: &Identity, server_ids: &[String], sni: &str) -> Value {
    let mut validation = json!({"trusted_ca": {"inline_string": pki.root_pem}});
    if !server_ids.is_empty() {
        validation["match_typed_subject_alt_names"] = server_ids
            .iter()
            .map(|id| json!({"san_type": "URI", "matcher": {"exact": id}}))
            .collect();
    }
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "alpn_protocols": ["istio-peer-exchange", "istio"],
                "tls_params": tls_params(),
                "tls_certificates": [certificate(client)],
                "validation_context": validation,
            },
            "sni": sni,
        },
    })
}

/// Plaintext (`tlsMode-disabled`).
pub fn raw_buffer() -> Value {
    json!({
        "name": "envoy.transport_sockets.raw_buffer",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"},
    })
}

/// The transport socket of the inbound mTLS filter chain.
pub fn downstream(pki: &Pki, server: &Identity) -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": true,
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_params": tls_params(),
                "tls_certificates": [certificate(server)],
                "validation_context": {
                    "trusted_ca": {"inline_string": pki.root_pem},
                    "match_typed_subject_alt_names": [
                        {"san_type": "URI", "matcher": {"prefix": format!("spiffe://{TRUST_DOMAIN}/")}},
                    ],
                },
            },
        },
    })
}
