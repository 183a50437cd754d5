//! What the source of a finding could not see, as notes: a record read from an access-log line
//! sets a bit in `unknown_fields` for every field its format does not carry, so an empty route
//! name there means "not in this format", not "no route". Each note says what that hides for the
//! finding's cause ("no route name in this format: the VirtualService cannot be named"); only
//! fields that matter for the cause give a note, and the filter's records (mask 0) give none.

use meshwhy_proto::v1::RecordField;

use super::Cause;
use super::group::Group;

/// Causes whose resource is the route's VirtualService (its timeout, retry policy, fault,
/// direct response or destinations).
const ROUTE_CAUSES: &[Cause] = &[
    Cause::UpstreamTimeout,
    Cause::RetriesExhausted,
    Cause::FaultInjected,
    Cause::DirectResponse,
    Cause::NoCluster,
];

/// Causes whose resource is the cluster's DestinationRule (pool limits, subsets, TLS settings).
const CLUSTER_CAUSES: &[Cause] = &[
    Cause::CircuitBreakerOverflow,
    Cause::NoHealthyUpstream,
    Cause::UpstreamConnectionTerminated,
    Cause::IdleTimeoutRace,
    Cause::MtlsMismatch,
    Cause::Overload,
];

/// Causes that depend on which endpoint the sidecar tried.
const ENDPOINT_CAUSES: &[Cause] = &[
    Cause::UpstreamConnectFailed,
    Cause::UpstreamConnectionTerminated,
    Cause::UpstreamReset,
    Cause::UpstreamTimeout,
    Cause::AppReturnedError,
];

/// Causes whose reading changes with the number of attempts (Istio retries connect failures and
/// resets by default).
const ATTEMPT_CAUSES: &[Cause] = &[
    Cause::RetriesExhausted,
    Cause::UpstreamConnectFailed,
    Cause::UpstreamConnectionTerminated,
    Cause::IdleTimeoutRace,
];

/// Causes that a TLS error would change (a connect failure that is really a handshake).
const TRANSPORT_CAUSES: &[Cause] = &[
    Cause::UpstreamConnectFailed,
    Cause::UpstreamConnectionTerminated,
    Cause::MtlsMismatch,
    Cause::RetriesExhausted,
];

/// Causes where whether the hop was mTLS matters.
const TLS_CAUSES: &[Cause] = &[Cause::MtlsMismatch, Cause::UpstreamConnectionTerminated];

/// Causes read from how long the request took.
const DURATION_CAUSES: &[Cause] = &[
    Cause::UpstreamConnectionTerminated,
    Cause::UpstreamTimeout,
    Cause::DownstreamDisconnect,
];

/// Causes whose reading depends on which sidecar (client or server) logged the line.
const DIRECTION_CAUSES: &[Cause] = &[
    Cause::AppReturnedError,
    Cause::RbacDenied,
    Cause::DownstreamDisconnect,
];

/// The notes for a finding of `cause` (and, for `retries_exhausted`, its last attempt's cause) on
/// `group`, in a fixed order; empty when the source saw everything.
pub(crate) fn notes(cause: Cause, last_attempt: Option<Cause>, group: &Group<'_>) -> Vec<String> {
    let record = group.record();
    let mask = record.unknown_fields;
    if mask == 0 {
        return Vec::new();
    }
    let unseen = |field: RecordField| mask & (1u64 << field as u32) != 0;
    let about = |causes: &[Cause]| {
        causes.contains(&cause) || last_attempt.is_some_and(|last| causes.contains(&last))
    };
    // Every access-log format carries the start time and the request id: a line without both is a
    // fragment, and what it lacks says nothing about the format's era.
    let fragment = unseen(RecordField::StartTime) && unseen(RecordField::RequestId);
    let in_this = |era: &str| {
        if fragment {
            "in this fragment".to_owned()
        } else if era.is_empty() {
            "in this format".to_owned()
        } else {
            format!("in this format ({era})")
        }
    };
    let mut notes = Vec::new();
    if unseen(RecordField::ResponseCodeDetails) {
        // RBAC and listener misses read without details say so in their own words.
        let from = match cause {
            Cause::Unknown | Cause::RbacDenied | Cause::NoFilterChain => None,
            Cause::StreamIdleTimeout => Some("the flags and the duration"),
            _ => Some("the flags alone"),
        };
        if let Some(from) = from {
            notes.push(format!(
                "no response code details {}: the cause is read from {from}",
                in_this("Istio before 1.9")
            ));
        }
    }
    if about(ROUTE_CAUSES) {
        if unseen(RecordField::RouteName) {
            notes.push(format!(
                "no route name {}: the VirtualService cannot be named",
                in_this("")
            ));
        } else if unseen(RecordField::RouteProvenance) && group.route_resource.is_none() {
            match record.route_name.as_str() {
                // Istio's names for "no VirtualService": nothing to look up.
                "" | "default" | "allow_any" | "block_all" => {}
                name => notes.push(format!(
                    "a log line carries no route provenance: the VirtualService is the one whose http[].name is {name}"
                )),
            }
        }
    }
    if cause == Cause::NoRoute && unseen(RecordField::VirtualHost) {
        notes.push(
            "no virtual host in a log line: the host that missed is read from the authority"
                .to_owned(),
        );
    }
    if about(CLUSTER_CAUSES) {
        if unseen(RecordField::Cluster) {
            notes.push("no cluster in this line: the DestinationRule cannot be named".to_owned());
        } else if unseen(RecordField::ClusterProvenance)
            && group.cluster_resource.is_none()
            && let Some(service) = group.cluster.service()
        {
            notes.push(format!(
                "a log line carries no DestinationRule provenance: the rule to look at is the one for host {}",
                service.fqdn
            ));
        }
    }
    if about(ENDPOINT_CAUSES) && unseen(RecordField::UpstreamHost) {
        notes.push(format!(
            "no upstream host {}: which endpoint failed cannot be told",
            in_this("")
        ));
    }
    if about(ATTEMPT_CAUSES) && unseen(RecordField::AttemptCount) {
        notes.push("no attempt count in the log: retries cannot be counted".to_owned());
    }
    if about(TRANSPORT_CAUSES) && unseen(RecordField::TransportFailureReason) {
        notes.push(format!(
            "no transport failure reason {}: a TLS error cannot be told from a refused connect",
            in_this("Istio before 1.2")
        ));
    }
    if about(TLS_CAUSES)
        && (unseen(RecordField::EndpointTlsMode) || unseen(RecordField::UpstreamTls))
    {
        notes.push(
            "a log line shows neither the endpoint's tlsMode nor the upstream TLS version: whether this hop was mTLS, and whether the destination has a sidecar, cannot be told"
                .to_owned(),
        );
    }
    if about(DURATION_CAUSES) && unseen(RecordField::Duration) {
        notes.push(
            "no duration in this line: a fast failure (a keep-alive race, an idle timeout) cannot be told from a slow one"
                .to_owned(),
        );
    }
    if cause == Cause::NoFilterChain && unseen(RecordField::RequestedServerName) {
        notes.push(format!(
            "no SNI {}: whether the client sent Istio mTLS or plaintext cannot be told",
            in_this("")
        ));
    }
    if cause == Cause::RbacDenied && unseen(RecordField::DownstreamTls) {
        notes.push(
            "a log line carries no peer identity: the denied caller cannot be named".to_owned(),
        );
    }
    if about(DIRECTION_CAUSES) && unseen(RecordField::Direction) && record.direction == 0 {
        notes.push(
            "the line does not say which listener logged it: client or server sidecar cannot be told"
                .to_owned(),
        );
    }
    let grpc_ok_code = (200..300).contains(&record.response_code);
    if grpc_ok_code && unseen(RecordField::GrpcStatus) && cause != Cause::Unknown {
        notes.push(format!(
            "no grpc-status {}: a gRPC failure shows only in the flags",
            in_this("")
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;
    use meshwhy_proto::v1::DecisionRecord;

    fn mask(fields: &[RecordField]) -> u64 {
        fields
            .iter()
            .fold(0, |mask, field| mask | 1 << *field as u32)
    }

    /// The notes of the one finding the engine makes of `record`.
    fn finding_notes(record: DecisionRecord) -> (Cause, Vec<String>) {
        let report = explain_records(&[(client(), record)]);
        let finding = &report.findings[0];
        (finding.cause, finding.notes.clone())
    }

    /// What every log line lacks: provenance, tlsMode, upstream TLS, attempts, vhost.
    const ANY_LOG: &[RecordField] = &[
        RecordField::VirtualHost,
        RecordField::RouteProvenance,
        RecordField::ClusterProvenance,
        RecordField::EndpointTlsMode,
        RecordField::UpstreamTls,
        RecordField::AttemptCount,
    ];

    /// Istio 1.8's text format: no details, no termination details.
    fn istio_18(mut record: DecisionRecord) -> DecisionRecord {
        let mut fields = ANY_LOG.to_vec();
        fields.push(RecordField::ResponseCodeDetails);
        fields.push(RecordField::ConnectionTerminationDetails);
        record.unknown_fields = mask(&fields);
        record.response_code_details.clear();
        record.endpoint_tls_mode.clear();
        record.attempt_count = 0;
        record
    }

    #[test]
    fn the_filters_records_get_no_notes() {
        let record = outbound(503, "UF,URX", REFUSED);
        let group_notes = {
            let records = [(client(), record.clone())];
            let proxies = [client(), server()];
            let input = crate::explain::Input {
                records: records
                    .iter()
                    .map(|(proxy, record)| crate::explain::RecordRef::new(proxy, record))
                    .collect(),
                successes: Vec::new(),
                proxies: proxies.iter().collect(),
                window_complete: true,
            };
            let grouped = crate::explain::group::group(&input, &crate::explain::Scope::default());
            notes(
                Cause::RetriesExhausted,
                Some(Cause::UpstreamConnectFailed),
                &grouped.groups[0],
            )
        };
        assert!(group_notes.is_empty(), "{group_notes:?}");
        let (_, notes) = finding_notes(record);
        assert_eq!(
            notes,
            [
                "Istio retries connect failures twice by default, so a closed port shows as UF,URX with 3 attempts"
            ]
        );
    }

    #[test]
    fn notes_say_what_matters_for_the_cause() {
        // Retries exhausted on a closed port from an Istio 1.8 line: details, attempts; not the
        // endpoint's tlsMode (it does not matter for a refused connect).
        let (cause, notes) = finding_notes(istio_18(outbound(503, "UF,URX", "")));
        assert_eq!(cause, Cause::RetriesExhausted);
        assert_eq!(
            notes,
            [
                "Istio retries connect failures twice by default, so a closed port shows as UF,URX with 3 attempts",
                "no response code details in this format (Istio before 1.9): the cause is read from the flags alone",
                "no attempt count in the log: retries cannot be counted",
            ]
        );

        // A circuit breaker: the DestinationRule is what matters.
        let (cause, notes) = finding_notes(istio_18(outbound(503, "UO", "")));
        assert_eq!(cause, Cause::CircuitBreakerOverflow);
        assert_eq!(
            notes[1],
            "a log line carries no DestinationRule provenance: the rule to look at is the one for host reviews.shop.svc.cluster.local"
        );
        let mut no_cluster = istio_18(outbound(503, "UO", ""));
        no_cluster.cluster.clear();
        no_cluster.unknown_fields |= mask(&[RecordField::Cluster]);
        let (_, notes) = finding_notes(no_cluster);
        assert!(
            notes.contains(
                &"no cluster in this line: the DestinationRule cannot be named".to_owned()
            ),
            "{notes:?}"
        );

        // A route timeout: the VirtualService; with no route name at all it cannot be named.
        let mut timeout = istio_18(outbound(504, "UT", ""));
        timeout.route_name = "reviews-timeout".into();
        let (cause, notes) = finding_notes(timeout.clone());
        assert_eq!(cause, Cause::UpstreamTimeout);
        assert!(
            notes.contains(&"a log line carries no route provenance: the VirtualService is the one whose http[].name is reviews-timeout".to_owned()),
            "{notes:?}"
        );
        timeout.route_name.clear();
        timeout.unknown_fields |= mask(&[RecordField::RouteName]);
        let (_, notes) = finding_notes(timeout);
        assert!(
            notes.contains(
                &"no route name in this format: the VirtualService cannot be named".to_owned()
            ),
            "{notes:?}"
        );

        // A UC: whether the hop was mTLS cannot be told from a log line.
        let mut uc = istio_18(outbound(503, "UC", ""));
        uc.unknown_fields |= mask(&[RecordField::Duration]);
        let (cause, notes) = finding_notes(uc);
        assert_eq!(cause, Cause::UpstreamConnectionTerminated);
        assert!(
            notes
                .iter()
                .any(|note| note.starts_with("a log line shows neither the endpoint's tlsMode"))
        );
        assert!(
            notes
                .iter()
                .any(|note| note.starts_with("no duration in this line"))
        );
        assert!(
            notes
                .iter()
                .any(|note| note == "no attempt count in the log: retries cannot be counted")
        );

        // A rule that read everything it needs from the line gets only what it lacks.
        let mut nr = outbound(404, "NR", ROUTE_NOT_FOUND);
        nr.cluster.clear();
        nr.virtual_host.clear();
        nr.unknown_fields = mask(ANY_LOG);
        let (cause, notes) = finding_notes(nr);
        assert_eq!(cause, Cause::NoRoute);
        assert_eq!(
            notes,
            ["no virtual host in a log line: the host that missed is read from the authority"]
        );
    }

    #[test]
    fn a_fragment_is_not_taken_for_an_old_format() {
        let mut record = outbound(503, "UF", "");
        let mut fields = ANY_LOG.to_vec();
        fields.extend([
            RecordField::StartTime,
            RecordField::RequestId,
            RecordField::ResponseCodeDetails,
            RecordField::TransportFailureReason,
        ]);
        record.unknown_fields = mask(&fields);
        record.response_code_details.clear();
        let (_, notes) = finding_notes(record);
        assert!(
            notes
                .iter()
                .any(|n| n == "no response code details in this fragment: the cause is read from the flags alone"),
            "{notes:?}"
        );
        assert!(
            notes.iter().all(|n| !n.contains("Istio before")),
            "{notes:?}"
        );
    }

    #[test]
    fn the_current_format_hides_less() {
        // Istio ≥ 1.9 carries details, the transport failure reason, route name and cluster.
        let mut record = outbound(503, "UF", REFUSED);
        record.unknown_fields = mask(ANY_LOG);
        record.endpoint_tls_mode.clear();
        let (cause, notes) = finding_notes(record);
        assert_eq!(cause, Cause::UpstreamConnectFailed);
        assert_eq!(
            notes,
            ["no attempt count in the log: retries cannot be counted"]
        );
    }
}
