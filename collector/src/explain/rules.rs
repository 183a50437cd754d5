//! The rule catalogue. Each rule lives in its own file, judges one [`Group`] and either claims it
//! with a [`Diagnosis`] or passes. Rules run in the order of [`RULES`] and the first claim wins,
//! so more specific readings come first (a TLS error before a plain connect failure, retries
//! exhausted before the cause of its last attempt); `unknown` is last and always claims.

mod app_returned_error;
mod canary_split_mismatch;
mod certificate_not_ready;
mod circuit_breaker_overflow;
mod direct_response;
mod dns_failure;
mod downstream_disconnect;
mod ext_authz_denied;
mod fault_injected;
mod idle_timeout_race;
mod mtls_mismatch;
mod no_cluster;
mod no_filter_chain;
mod no_filter_config;
mod no_healthy_upstream;
mod no_route;
mod overload;
mod protocol_error;
mod rate_limited;
mod rbac_denied;
mod registry_only_blocked;
mod retries_exhausted;
mod sidecar_missing;
mod stale_config_suspected;
mod stream_idle_timeout;
mod unknown;
mod upstream_connect_failed;
mod upstream_connection_terminated;
mod upstream_reset;
mod upstream_timeout;
mod wasm_plugin_failure;

use meshwhy_proto::v1::{Direction, RecordField};

use super::Cause;
use super::finding::{Confidence, Resource};
use super::group::{Context, Group};
use crate::decode::IstioResource;

/// What a rule says about a group it claims.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Diagnosis {
    pub(crate) title: String,
    pub(crate) confidence: Confidence,
    pub(crate) resource: Option<Resource>,
    pub(crate) next_commands: Vec<String>,
    pub(crate) notes: Vec<String>,
    pub(crate) last_attempt: Option<Cause>,
}

impl Diagnosis {
    pub(crate) fn new(title: impl Into<String>, confidence: Confidence) -> Self {
        Self {
            title: title.into(),
            confidence,
            resource: None,
            next_commands: Vec::new(),
            notes: Vec::new(),
            last_attempt: None,
        }
    }

    pub(crate) fn resource(mut self, resource: Option<Resource>) -> Self {
        self.resource = resource;
        self
    }

    pub(crate) fn commands(mut self, next: super::commands::Next<'_, '_>) -> Self {
        self.next_commands = next.into_vec();
        self
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// One explain rule.
pub(crate) trait Rule: Sync {
    /// The cause this rule diagnoses.
    fn cause(&self) -> Cause;
    /// Claims the group, or passes (`None`).
    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis>;
}

/// Every rule, most specific first; `unknown` last.
pub(crate) static RULES: &[&dyn Rule] = &[
    &wasm_plugin_failure::WasmPluginFailure,
    &no_filter_config::NoFilterConfig,
    &overload::Overload,
    &fault_injected::FaultInjected,
    &rate_limited::RateLimited,
    &ext_authz_denied::ExtAuthzDenied,
    &rbac_denied::RbacDenied,
    &registry_only_blocked::RegistryOnlyBlocked,
    &direct_response::DirectResponse,
    &certificate_not_ready::CertificateNotReady,
    &no_filter_chain::NoFilterChain,
    &mtls_mismatch::MtlsMismatch,
    &no_route::NoRoute,
    &no_cluster::NoCluster,
    &retries_exhausted::RetriesExhausted,
    &circuit_breaker_overflow::CircuitBreakerOverflow,
    &no_healthy_upstream::NoHealthyUpstream,
    &dns_failure::DnsFailure,
    &upstream_connect_failed::UpstreamConnectFailed,
    &idle_timeout_race::IdleTimeoutRace,
    &upstream_connection_terminated::UpstreamConnectionTerminated,
    &upstream_timeout::UpstreamTimeout,
    &protocol_error::ProtocolError,
    &upstream_reset::UpstreamReset,
    &stream_idle_timeout::StreamIdleTimeout,
    &downstream_disconnect::DownstreamDisconnect,
    &app_returned_error::AppReturnedError,
    &unknown::Unknown,
];

/// Findings of the rules that read traffic (outbound records including sampled successes, and
/// success counters) instead of judging failure groups.
pub(crate) fn traffic_findings(
    input: &super::input::Input<'_>,
    scope: &super::input::Scope,
) -> Vec<super::Finding> {
    let mut findings = sidecar_missing::findings(input, scope);
    for destination in super::replicas::destinations(input, scope) {
        findings.extend(stale_config_suspected::finding(&destination));
        findings.extend(canary_split_mismatch::finding(&destination));
    }
    findings
}

/// The first rule that claims `group` (never fails: `unknown` claims everything).
pub(crate) fn diagnose(group: &Group<'_>, context: &Context<'_>) -> (Cause, Diagnosis) {
    diagnose_with(RULES, group, context)
}

fn diagnose_with(
    rules: &[&dyn Rule],
    group: &Group<'_>,
    context: &Context<'_>,
) -> (Cause, Diagnosis) {
    for rule in rules {
        if let Some(diagnosis) = rule.check(group, context) {
            return (rule.cause(), diagnosis);
        }
    }
    let fallback = unknown::Unknown;
    let diagnosis = fallback
        .check(group, context)
        .unwrap_or_else(|| Diagnosis::new("unrecognised outcome", Confidence::Low));
    (Cause::Unknown, diagnosis)
}

/// Response flag bits (`1 << bit`, see `crate::flags`).
pub(crate) mod bits {
    pub(crate) const UH: u64 = 1 << 1;
    pub(crate) const UT: u64 = 1 << 2;
    pub(crate) const LR: u64 = 1 << 3;
    pub(crate) const UR: u64 = 1 << 4;
    pub(crate) const UF: u64 = 1 << 5;
    pub(crate) const UC: u64 = 1 << 6;
    pub(crate) const UO: u64 = 1 << 7;
    pub(crate) const NR: u64 = 1 << 8;
    pub(crate) const DI: u64 = 1 << 9;
    pub(crate) const FI: u64 = 1 << 10;
    pub(crate) const RL: u64 = 1 << 11;
    pub(crate) const UAEX: u64 = 1 << 12;
    pub(crate) const RLSE: u64 = 1 << 13;
    pub(crate) const DC: u64 = 1 << 14;
    pub(crate) const URX: u64 = 1 << 15;
    pub(crate) const SI: u64 = 1 << 16;
    pub(crate) const IH: u64 = 1 << 17;
    pub(crate) const DPE: u64 = 1 << 18;
    pub(crate) const UMSDR: u64 = 1 << 19;
    pub(crate) const RFCF: u64 = 1 << 20;
    pub(crate) const NFCF: u64 = 1 << 21;
    pub(crate) const DT: u64 = 1 << 22;
    pub(crate) const UPE: u64 = 1 << 23;
    pub(crate) const NC: u64 = 1 << 24;
    pub(crate) const OM: u64 = 1 << 25;
    pub(crate) const DF: u64 = 1 << 26;
    pub(crate) const DO: u64 = 1 << 27;
    pub(crate) const DR: u64 = 1 << 28;
    pub(crate) const UDO: u64 = 1 << 29;
    /// Flags that also appear on successes (a delay, a cached response).
    pub(crate) const BENIGN: u64 = DI | RFCF;
}

/// Who saw what: `shop/productpage → reviews.shop.svc.cluster.local:9080` for outbound groups,
/// `shop/reviews (inbound :9080)` for inbound ones.
pub(crate) fn subject(group: &Group<'_>) -> String {
    let source = if group.namespace.is_empty() && group.workload.is_empty() {
        String::new()
    } else {
        format!("{}/{}", group.namespace, group.workload)
    };
    let destination = if group.destination.is_empty() {
        group.record().virtual_host.clone()
    } else {
        group.destination.clone()
    };
    match (group.direction, source.is_empty()) {
        (Direction::Inbound, false) => match &group.cluster {
            crate::decode::ClusterName::Inbound { port } => format!("{source} (inbound :{port})"),
            _ => format!("{source} (inbound {destination})"),
        },
        (_, false) if !destination.is_empty() => format!("{source} → {destination}"),
        (_, false) => source,
        (_, true) if destination.is_empty() && group.record().protocol == super::TCP => {
            "connections".to_owned()
        }
        (_, true) if destination.is_empty() => "requests".to_owned(),
        (_, true) => destination,
    }
}

/// `503`, `no response` for code 0, and for a gRPC failure that kept HTTP 2xx (the failure is in
/// the flags and grpc-status, never the HTTP code) `HTTP 200 with grpc-status 14 UNAVAILABLE`, or
/// `HTTP 200 carrying a gRPC failure` when the status is not known.
pub(crate) fn code(group: &Group<'_>) -> String {
    let record = group.record();
    match record.response_code {
        0 => "no response".to_owned(),
        code @ 200..=299 => match record.grpc_status {
            Some(status) if status != 0 => {
                format!(
                    "HTTP {code} with grpc-status {status} {}",
                    grpc_name(status)
                )
            }
            _ if group.flags & !bits::BENIGN != 0 => format!("HTTP {code} carrying a gRPC failure"),
            _ => code.to_string(),
        },
        code => code.to_string(),
    }
}

/// `UNAVAILABLE` for 14; `?` for a code past the known ones.
pub(crate) fn grpc_name(status: u32) -> &'static str {
    usize::try_from(status)
        .ok()
        .and_then(|index| crate::decode::GRPC_STATUS_NAMES.get(index))
        .copied()
        .unwrap_or("?")
}

/// Whether the source of the group's newest record could not see `field` (an empty value there
/// is "unknown", not "none"). Always false for the filter's records.
pub(crate) fn unseen(group: &Group<'_>, field: RecordField) -> bool {
    group.record().unknown_fields & (1u64 << field as u32) != 0
}

/// Whether the group is a TCP proxy connection (no HTTP status, no routes).
pub(crate) fn tcp(group: &Group<'_>) -> bool {
    group.record().protocol == super::TCP
}

/// The SNI of an Istio mTLS client (`outbound_.9080_._.reviews.shop.svc.cluster.local`) as
/// (port, subset, host), when the record carries one.
pub(crate) fn mtls_sni<'a>(group: &Group<'a>) -> Option<(&'a str, &'a str, &'a str)> {
    let sni = group
        .record()
        .requested_server_name
        .strip_prefix("outbound_.")?;
    let (port, rest) = sni.split_once("_.")?;
    let (subset, host) = rest.split_once("_.")?;
    port.bytes()
        .all(|b| b.is_ascii_digit())
        .then_some((port, subset, host))
}

/// What in the group's records speaks of TLS between the two sides, if anything: a TLS error, an
/// Istio mTLS SNI, or a DestinationRule/tlsMode signal. An mTLS mismatch is only ever offered as
/// a reading when there is some; a bare UC is none.
pub(crate) fn tls_evidence(group: &Group<'_>) -> Option<String> {
    let record = group.record();
    if let Some(crate::decode::TransportFailure::Tls(_)) = &group.transport {
        return Some("a TLS error".to_owned());
    }
    if mtls_sni(group).is_some() {
        return Some(format!(
            "the client's Istio mTLS SNI {}",
            record.requested_server_name
        ));
    }
    let sidecar = group.tls_modes.contains(&"istio");
    if sidecar && group.cluster_resource.is_some() {
        return Some(
            "a DestinationRule in front of an endpoint with a sidecar (tlsMode=istio)".to_owned(),
        );
    }
    if sidecar && record.upstream_tls_version.is_empty() && !unseen(group, RecordField::UpstreamTls)
    {
        return Some("plaintext to an endpoint with a sidecar (tlsMode=istio)".to_owned());
    }
    None
}

/// The flags of the group as short names, e.g. `UF,URX`; `-` for none.
pub(crate) fn flag_names(flags: u64) -> String {
    let names = crate::flags::names(flags);
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(",")
    }
}

/// The resource a provenance path names, as a finding resource.
pub(crate) fn resource_of(
    resource: &IstioResource,
    provenance: &str,
    subset: &str,
    hint: &str,
) -> Resource {
    let (kind, name) = match &resource.gateway_api {
        Some(route) => ("HTTPRoute".to_owned(), route.name.clone()),
        None => (resource.kind.name().to_owned(), resource.name.clone()),
    };
    Resource {
        kind,
        namespace: resource.namespace.clone(),
        name,
        subset: subset.to_owned(),
        provenance: provenance.to_owned(),
        hint: hint.to_owned(),
    }
}

/// The DestinationRule behind the group's cluster, with its subset, or `hint` alone.
pub(crate) fn destination_rule(group: &Group<'_>, hint: &str) -> Resource {
    let record = group.record();
    match &group.cluster_resource {
        Some(resource) => resource_of(
            resource,
            &record.cluster_provenance,
            &record.cluster_subset,
            hint,
        ),
        None => Resource::hint(hint),
    }
}

/// The VirtualService behind the group's route, or `hint` alone.
pub(crate) fn virtual_service(group: &Group<'_>, hint: &str) -> Resource {
    match &group.route_resource {
        Some(resource) => resource_of(resource, &group.record().route_provenance, "", hint),
        None => Resource::hint(hint),
    }
}

/// `kubectl get <kind> <name> -n <ns> -o yaml` for a named resource.
pub(crate) fn get_resource(resource: &Resource) -> Option<String> {
    if resource.kind.is_empty() || resource.name.is_empty() {
        return None;
    }
    // A generated VirtualService is edited through its HTTPRoute.
    let kind = resource.kind.to_ascii_lowercase();
    Some(super::commands::get_yaml(
        &kind,
        &resource.name,
        &resource.namespace,
    ))
}

/// The route configuration name for the group's vhost (`9080`, `inbound|9080||`), quoted when it
/// contains `|`.
pub(crate) fn route_config(group: &Group<'_>) -> Option<String> {
    let from_cluster = || match group.cluster {
        // Outbound route configurations are named by port; access logs carry no vhost.
        crate::decode::ClusterName::Outbound { port, .. } => Some(port.to_string()),
        crate::decode::ClusterName::Inbound { port } => Some(format!("inbound|{port}||")),
        _ => None,
    };
    group
        .vhost
        .route_config()
        .or_else(from_cluster)
        .map(|name| {
            if name.contains('|') {
                format!("\"{name}\"")
            } else {
                name
            }
        })
}

/// The destination host of the route: the vhost's host (the fqdn istiod names vhosts by), else
/// the authority's.
pub(crate) fn destination_host<'a>(group: &'a Group<'_>) -> &'a str {
    match &group.vhost {
        crate::decode::VirtualHost::Service { host, .. } => host,
        _ => authority_host(group),
    }
}

/// The host part of the authority.
pub(crate) fn authority_host<'a>(group: &Group<'a>) -> &'a str {
    let authority = group.record().authority.as_str();
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Causes found from traffic (sampled successes, counters) rather than failure groups.
    const TRAFFIC_CAUSES: &[Cause] = &[
        Cause::SidecarMissing,
        Cause::StaleConfigSuspected,
        Cause::CanarySplitMismatch,
    ];

    #[test]
    fn every_cause_has_exactly_one_rule() {
        let mut causes: Vec<Cause> = RULES.iter().map(|rule| rule.cause()).collect();
        assert_eq!(causes.last(), Some(&Cause::Unknown), "unknown must be last");
        causes.extend_from_slice(TRAFFIC_CAUSES);
        causes.sort();
        let mut all = Cause::ALL.to_vec();
        all.sort();
        assert_eq!(causes, all);
    }
}
