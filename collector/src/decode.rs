//! Version-tolerant decoding of the raw values a sidecar ships: response code details, transport
//! failure reasons, TLS errors, Istio cluster/route/virtual-host names, provenance paths, RBAC
//! policy ids and node ids. (Access-log lines are read by `crate::logread`.)
//!
//! The filter sends strings verbatim and the collector decodes them here, because their syntax
//! drifted across Envoy and Istio versions (`{reason,transport:_111}` became
//! `{reason|transport:_text}`, `upstream_response_timeout` became `response_timeout`, provenance
//! moved from `v1alpha3` to `v1`). Every function is pure and total: unknown input decodes to an
//! `Other`/raw variant, never to an error and never to nothing.

mod cluster;
mod details;
pub(crate) mod node;
mod provenance;
mod rbac;
mod route;
mod tls;
mod transport;

pub use cluster::{ClusterName, ServiceHost};
pub use details::{CodeDetails, DetailsKind};
pub use node::NodeId;
pub use provenance::{GatewayApiRoute, IstioResource, ResourceKind};
pub use rbac::RbacPolicy;
pub use route::{RouteName, VirtualHost};
pub use tls::{TlsError, TlsSide};
pub use transport::TransportFailure;

/// gRPC status names, indexed by their wire code (0..=16).
pub const GRPC_STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `s` with every space turned into `_`: Envoy escapes spaces in details and access logs, the
/// properties a filter reads sometimes do not, and older versions did neither consistently.
pub(crate) fn underscored(s: &str) -> String {
    s.replace(' ', "_")
}

/// `s` with every `_` turned into a space: the readable form of an escaped string.
pub(crate) fn spaced(s: &str) -> String {
    s.replace('_', " ")
}
