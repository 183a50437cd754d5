//! Test fixtures: strings captured from real Envoy 1.40 runs (the failure matrix in
//! ENVOY_FACTS.md) and the older forms earlier Envoy/Istio versions wrote.
#![cfg(test)]

/// Closed port (503 UF), Envoy 1.40.
pub(crate) const REFUSED: &str = "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}";
/// The transport failure reason of the same run (`upstream.transport_failure_reason`).
pub(crate) const REFUSED_TRANSPORT: &str = "delayed connect error: Connection refused";
/// Upstream accepted then closed (503 UC), Envoy 1.40; also plaintext to a STRICT listener.
pub(crate) const TERMINATED: &str =
    "upstream_reset_before_response_started{connection_termination}";
/// No route (404 NR).
pub(crate) const ROUTE_NOT_FOUND: &str = "route_not_found";
/// Cluster without endpoints (503 UH).
pub(crate) const NO_HEALTHY: &str = "no_healthy_upstream";
/// App answered (503 or anything, no flags); also URX with retry_on 5xx.
pub(crate) const VIA_UPSTREAM: &str = "via_upstream";
/// Circuit breaker max_pending 1 (503 UO).
pub(crate) const OVERFLOW: &str = "upstream_reset_before_response_started{overflow}";
/// Route timeout 0.5 s (504 UT).
pub(crate) const RESPONSE_TIMEOUT: &str = "response_timeout";
/// RBAC deny (403, no flag).
pub(crate) const RBAC_DENY: &str =
    "rbac_access_denied_matched_policy[ns[shop]-policy[deny-admin]-rule[0]]";
/// RBAC: ALLOW policies exist, none matched.
pub(crate) const RBAC_NONE: &str = "rbac_access_denied_matched_policy[none]";
/// Client aborts (no code, DC).
pub(crate) const DOWNSTREAM_DISCONNECT: &str = "downstream_remote_disconnect";
/// Route to a missing cluster (503 NC).
pub(crate) const CLUSTER_NOT_FOUND: &str = "cluster_not_found";
/// Wasm filter trapped, fail closed (503, no flag).
pub(crate) const WASM_FAIL: &str = "wasm_fail_stream";
/// TLS sent to a plaintext endpoint (503 UF).
pub(crate) const TLS_WRONG_VERSION: &str = "upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end}";
/// Listener config churn.
pub(crate) const FILTER_CHAIN_REMOVED: &str =
    "downstream_local_disconnect(filter_chain_is_being_removed)";

/// Older Envoy: comma and errno instead of pipe and text.
pub(crate) const OLD_REFUSED: &str =
    "upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}";
/// Older Envoy's timeout spelling.
pub(crate) const OLD_TIMEOUT: &str = "upstream_response_timeout";
/// Older Envoy: reason only in details, the TLS error only in the transport field.
pub(crate) const OLD_CONNECT_FAILURE: &str =
    "upstream_reset_before_response_started{connection_failure}";
/// Bare reset: upstream closed while the request body was streaming.
pub(crate) const BARE_RESET: &str = "upstream_reset_before_response_started";
