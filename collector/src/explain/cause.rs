//! Cause ids: the stable public vocabulary of findings (JSON output, metric labels). Extend,
//! never rename.

use std::fmt;

use serde::{Serialize, Serializer};

macro_rules! causes {
    ($($variant:ident => $id:literal: $doc:literal,)*) => {
        /// Why a group of requests failed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Cause {
            $(#[doc = $doc] $variant,)*
        }

        impl Cause {
            /// Every cause, in catalogue order.
            pub const ALL: &'static [Cause] = &[$(Cause::$variant,)*];

            /// The stable id, e.g. `upstream_connect_failed`.
            pub fn id(self) -> &'static str {
                match self {
                    $(Cause::$variant => $id,)*
                }
            }

            /// The cause with this id.
            pub fn from_id(id: &str) -> Option<Self> {
                match id {
                    $($id => Some(Cause::$variant),)*
                    _ => None,
                }
            }

            /// One line on what the cause means.
            pub fn summary(self) -> &'static str {
                match self {
                    $(Cause::$variant => $doc,)*
                }
            }
        }
    };
}

causes! {
    AppReturnedError => "app_returned_error": "the application answered the error itself (`via_upstream`, no flags): the 503 that is not a 503",
    UpstreamConnectFailed => "upstream_connect_failed": "the sidecar could not connect to the upstream (UF): refused, timed out or unreachable",
    MtlsMismatch => "mtls_mismatch": "the two sides disagree on mTLS: a TLS handshake failed, or plaintext met a TLS-only listener",
    UpstreamConnectionTerminated => "upstream_connection_terminated": "the upstream closed the connection before answering (UC)",
    UpstreamReset => "upstream_reset": "the upstream reset the stream (UR, or a reset in the details)",
    NoRoute => "no_route": "no route matched the request (NR): Envoy's own 404",
    RegistryOnlyBlocked => "registry_only_blocked": "outbound traffic to a host the mesh does not know was blocked (REGISTRY_ONLY: BlackHoleCluster / block_all)",
    NoCluster => "no_cluster": "the route names a cluster the proxy does not have (NC), e.g. a VirtualService subset without a DestinationRule subset",
    NoHealthyUpstream => "no_healthy_upstream": "the cluster has no healthy endpoint (UH)",
    CircuitBreakerOverflow => "circuit_breaker_overflow": "a circuit breaker limit was reached (UO)",
    RetriesExhausted => "retries_exhausted": "every retry failed (URX); the finding names the cause of the last attempt",
    UpstreamTimeout => "upstream_timeout": "the route timeout expired before the upstream answered (UT)",
    StreamIdleTimeout => "stream_idle_timeout": "a stream or request timeout of the connection manager fired (SI, DT, request timeouts)",
    DownstreamDisconnect => "downstream_disconnect": "the client went away before the response (DC/DR)",
    RbacDenied => "rbac_denied": "an AuthorizationPolicy denied the request (403, no flag)",
    ExtAuthzDenied => "ext_authz_denied": "the external authorization service denied the request (UAEX)",
    RateLimited => "rate_limited": "a rate limit rejected the request (RL; RLSE when the rate limit service failed)",
    FaultInjected => "fault_injected": "a VirtualService fault injection aborted the request (FI)",
    ProtocolError => "protocol_error": "a malformed request or response (UPE/DPE/codec errors), often a mis-declared port protocol",
    NoFilterConfig => "no_filter_config": "a discovered filter config (ECDS, e.g. a WasmPlugin) never arrived (NFCF)",
    WasmPluginFailure => "wasm_plugin_failure": "a wasm plugin failed and its fail-closed policy rejected the request (`wasm_fail_stream`)",
    Overload => "overload": "the overload manager or drop_overload shed the request (OM/DO/UDO)",
    DnsFailure => "dns_failure": "DNS resolution of the upstream failed (DF)",
    SidecarMissing => "sidecar_missing": "the destination's endpoints carry no `tlsMode: istio`: its pods run without a sidecar, so the traffic is plaintext and outside mTLS and server-side policy",
    StaleConfigSuspected => "stale_config_suspected": "some replicas of a workload route differently from the rest (another or no VirtualService): their xDS config looks stale",
    CanarySplitMismatch => "canary_split_mismatch": "a replica's observed traffic split across subsets differs from the intended one beyond sampling noise",
    DirectResponse => "direct_response": "the matched route answered by itself (a VirtualService `directResponse` or a route `direct_response`): configured, no upstream was asked",
    NoFilterChain => "no_filter_chain": "no listener filter chain matched the connection (`NR filter_chain_not_found`): a listener miss — a plaintext client on a STRICT mTLS port, or a port or protocol with no chain — not a routing problem",
    IdleTimeoutRace => "idle_timeout_race": "the upstream closed a pooled keep-alive connection as the sidecar reused it (a short 503 UC among successes): the app's keep-alive timeout is below the sidecar's idle timeout",
    CertificateNotReady => "certificate_not_ready": "the proxy has no workload certificate yet (`Secret is not supplied by SDS`): istiod or the CA is unreachable from it, often with stale xDS",
    Unknown => "unknown": "no rule recognised this outcome; the raw evidence is kept",
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Cause {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for cause in Cause::ALL {
            assert_eq!(Cause::from_id(cause.id()), Some(*cause));
            assert!(seen.insert(cause.id()), "{cause} twice");
            assert!(!cause.summary().is_empty());
        }
        assert_eq!(Cause::ALL.len(), 31);
        assert_eq!(Cause::from_id("nope"), None);
    }

    #[test]
    fn vocabulary_is_stable() {
        // Public names: JSON output and metric labels depend on them. Extend, never rename.
        let ids: Vec<&str> = Cause::ALL.iter().map(|c| c.id()).collect();
        assert_eq!(
            ids,
            [
                "app_returned_error",
                "upstream_connect_failed",
                "mtls_mismatch",
                "upstream_connection_terminated",
                "upstream_reset",
                "no_route",
                "registry_only_blocked",
                "no_cluster",
                "no_healthy_upstream",
                "circuit_breaker_overflow",
                "retries_exhausted",
                "upstream_timeout",
                "stream_idle_timeout",
                "downstream_disconnect",
                "rbac_denied",
                "ext_authz_denied",
                "rate_limited",
                "fault_injected",
                "protocol_error",
                "no_filter_config",
                "wasm_plugin_failure",
                "overload",
                "dns_failure",
                "sidecar_missing",
                "stale_config_suspected",
                "canary_split_mismatch",
                "direct_response",
                "no_filter_chain",
                "idle_timeout_race",
                "certificate_not_ready",
                "unknown",
            ]
        );
    }
}
