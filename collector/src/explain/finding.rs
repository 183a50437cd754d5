//! What the engine produces: findings with their evidence, the implicated resource and the next
//! commands, and the totals of a run.

use meshwhy_proto::v1::{DecisionRecord, Direction, ProxyIdentity};

use super::Cause;

/// How sure a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    /// Plausible; the evidence fits other causes too.
    Low,
    /// Likely; one signal is inferred rather than recorded.
    Medium,
    /// The recorded fields name the cause directly.
    High,
}

impl Confidence {
    /// `high`, `medium` or `low`.
    pub fn id(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }
}

/// One explained failure group.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Stable cause id.
    pub cause: Cause,
    /// One sentence.
    pub title: String,
    /// How sure.
    pub confidence: Confidence,
    /// What the group's failures have in common.
    pub group: GroupKey,
    /// Counts, times, samples and the raw fields that decided.
    pub evidence: Evidence,
    /// The implicated Istio resource, or a hint.
    pub resource: Option<Resource>,
    /// Commands to run next, in order, names filled in.
    pub next_commands: Vec<String>,
    /// Caveats: what the data cannot show.
    pub notes: Vec<String>,
    /// For `retries_exhausted`: the cause of the last attempt.
    pub last_attempt: Option<Cause>,
}

/// What a group's failures have in common (owned copy of the grouping key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupKey {
    /// Recording proxy's namespace.
    pub namespace: String,
    /// Recording proxy's workload.
    pub workload: String,
    /// Which listener recorded.
    pub direction: Direction,
    /// `fqdn:port` of an outbound cluster, else the authority.
    pub destination: String,
    /// `:authority` of the latest record.
    pub authority: String,
    /// Virtual host.
    pub virtual_host: String,
    /// Route entry name.
    pub route_name: String,
    /// Route provenance path.
    pub route_provenance: String,
    /// Cluster name.
    pub cluster: String,
    /// HTTP status (0 = none).
    pub response_code: u32,
    /// Flags bitmask.
    pub response_flags: u64,
    /// Details reduced to their class.
    pub details_class: String,
}

/// Evidence behind a finding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// Failed requests in the group.
    pub count: u64,
    /// Share of all failures that matched the filters, 0..1.
    pub share_of_failures: f64,
    /// Share of the recording workload's requests to that cluster (or vhost), 0..1, when known.
    pub share_of_traffic: Option<f64>,
    /// Earliest request start, ns since the Unix epoch.
    pub first_seen_unix_nanos: u64,
    /// Latest request start.
    pub last_seen_unix_nanos: u64,
    /// Up to 5 request ids, newest first.
    pub sample_request_ids: Vec<String>,
    /// Up to 5 distinct paths.
    pub sample_paths: Vec<String>,
    /// Up to 5 recording pods.
    pub pods: Vec<String>,
    /// Up to 5 upstream hosts.
    pub upstream_hosts: Vec<String>,
    /// The latest record's deciding fields.
    pub decided_by: DecidedBy,
    /// What the other sidecar of the hop recorded.
    pub hop: Option<HopEvidence>,
}

/// The raw fields that decided a finding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecidedBy {
    /// HTTP status.
    pub response_code: u32,
    /// Flags bitmask.
    pub response_flags: u64,
    /// `response.code_details`, verbatim.
    pub response_code_details: String,
    /// `upstream.transport_failure_reason`, verbatim.
    pub transport_failure_reason: String,
    /// Route entry name.
    pub route_name: String,
    /// Virtual host.
    pub virtual_host: String,
    /// Cluster.
    pub cluster: String,
    /// Upstream host.
    pub upstream_host: String,
    /// Upstream attempts.
    pub attempt_count: u32,
    /// Endpoint tlsMode.
    pub endpoint_tls_mode: String,
    /// Upstream TLS version.
    pub upstream_tls_version: String,
    /// Route provenance.
    pub route_provenance: String,
    /// Cluster provenance.
    pub cluster_provenance: String,
    /// Cluster subset.
    pub cluster_subset: String,
    /// gRPC status, for gRPC requests.
    pub grpc_status: Option<u32>,
}

impl From<&DecisionRecord> for DecidedBy {
    fn from(record: &DecisionRecord) -> Self {
        Self {
            response_code: record.response_code,
            response_flags: record.response_flags,
            response_code_details: record.response_code_details.clone(),
            transport_failure_reason: record.transport_failure_reason.clone(),
            route_name: record.route_name.clone(),
            virtual_host: record.virtual_host.clone(),
            cluster: record.cluster.clone(),
            upstream_host: record.upstream_host.clone(),
            attempt_count: record.attempt_count,
            endpoint_tls_mode: record.endpoint_tls_mode.clone(),
            upstream_tls_version: record.upstream_tls_version.clone(),
            route_provenance: record.route_provenance.clone(),
            cluster_provenance: record.cluster_provenance.clone(),
            cluster_subset: record.cluster_subset.clone(),
            grpc_status: record.grpc_status,
        }
    }
}

/// What the other sidecar of the hop recorded for the group's requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HopEvidence {
    /// Requests the other sidecar also recorded.
    pub joined: u64,
    /// Requests the other sidecar recorded no failure for.
    pub unjoined: u64,
    /// The other side's outcomes, most frequent first.
    pub peers: Vec<HopPeer>,
    /// One sentence.
    pub summary: String,
}

/// One outcome the other sidecar recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HopPeer {
    /// Its listener direction.
    pub direction: Direction,
    /// Its namespace.
    pub namespace: String,
    /// Its workload.
    pub workload: String,
    /// A pod (the latest).
    pub pod: String,
    /// Its HTTP status.
    pub response_code: u32,
    /// Its flags.
    pub response_flags: u64,
    /// Its details.
    pub response_code_details: String,
    /// How many of the group's requests.
    pub count: u64,
}

/// The implicated Istio resource, or a hint of where to look.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    /// Kind, e.g. `DestinationRule`; empty for a bare hint.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// DestinationRule subset.
    pub subset: String,
    /// The provenance path it came from.
    pub provenance: String,
    /// What to look at.
    pub hint: String,
}

impl Resource {
    /// Only a hint, no named resource.
    pub fn hint(hint: impl Into<String>) -> Self {
        Self {
            hint: hint.into(),
            ..Self::default()
        }
    }

    /// `Kind ns/name (subset s)`, or the hint.
    pub fn describe(&self) -> String {
        let mut text = if self.kind.is_empty() {
            String::new()
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        };
        if !self.subset.is_empty() {
            text.push_str(&format!(" (subset {})", self.subset));
        }
        if !self.hint.is_empty() {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&self.hint);
        }
        text
    }
}

/// The result of explaining a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Highest impact first.
    pub findings: Vec<Finding>,
    /// What was looked at.
    pub totals: Totals,
}

/// Totals of an explain run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Records in the window, before filters.
    pub records_scanned: u64,
    /// Failed requests that matched the filters, hop pairs once.
    pub failures: u64,
    /// Failure groups before the limit.
    pub groups: u64,
    /// Successes known in the window (counters and sampled successes).
    pub successes: u64,
    /// Requests recorded by both sidecars of a hop.
    pub joined_hops: u64,
    /// False when records from within the window were evicted.
    pub window_complete: bool,
    /// The window start.
    pub since_unix_nanos: u64,
}

/// One record of a request, as the proxy that recorded it sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct HopRecord {
    /// The recording proxy.
    pub proxy: ProxyIdentity,
    /// The record.
    pub record: DecisionRecord,
}

/// One hop of a request: client (outbound) and server (inbound) records.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    /// The client sidecar's record.
    pub client: Option<HopRecord>,
    /// The server sidecar's record.
    pub server: Option<HopRecord>,
    /// What the two sides show.
    pub summary: String,
}

/// One request explained end to end.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestReport {
    /// The request id.
    pub request_id: String,
    /// Its hops in time order.
    pub hops: Vec<Hop>,
    /// The explanation of the failing hop (the first one that failed); `None` when no record of
    /// the request is a failure.
    pub finding: Option<Finding>,
}
