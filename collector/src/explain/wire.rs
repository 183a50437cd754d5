//! Engine results as `meshwhy.v1` messages (the Explain RPC, and the CLI's local `--input-file`
//! mode, which renders the same messages).

use meshwhy_proto::v1 as pb;

use super::{Confidence, Finding, Hop, HopRecord, Report, RequestReport, Resource, Totals};
use crate::flags;

/// A finding on the wire.
pub fn finding(finding: &Finding) -> pb::Finding {
    let evidence = &finding.evidence;
    let decided = &evidence.decided_by;
    let group = &finding.group;
    pb::Finding {
        cause: finding.cause.id().to_owned(),
        title: finding.title.clone(),
        confidence: confidence(finding.confidence) as i32,
        group: Some(pb::FindingGroup {
            namespace: group.namespace.clone(),
            workload: group.workload.clone(),
            direction: group.direction as i32,
            destination: group.destination.clone(),
            authority: group.authority.clone(),
            virtual_host: group.virtual_host.clone(),
            route_name: group.route_name.clone(),
            route_provenance: group.route_provenance.clone(),
            cluster: group.cluster.clone(),
            response_code: group.response_code,
            response_flags: group.response_flags,
            details_class: group.details_class.clone(),
        }),
        evidence: Some(pb::Evidence {
            count: evidence.count,
            share_of_failures: evidence.share_of_failures,
            share_of_traffic: evidence.share_of_traffic,
            first_seen_unix_nanos: evidence.first_seen_unix_nanos,
            last_seen_unix_nanos: evidence.last_seen_unix_nanos,
            sample_request_ids: evidence.sample_request_ids.clone(),
            sample_paths: evidence.sample_paths.clone(),
            pods: evidence.pods.clone(),
            upstream_hosts: evidence.upstream_hosts.clone(),
            decided_by: Some(pb::DecidedBy {
                response_code: decided.response_code,
                response_flags: decided.response_flags,
                flag_names: flags::names(decided.response_flags),
                response_code_details: decided.response_code_details.clone(),
                transport_failure_reason: decided.transport_failure_reason.clone(),
                route_name: decided.route_name.clone(),
                virtual_host: decided.virtual_host.clone(),
                cluster: decided.cluster.clone(),
                upstream_host: decided.upstream_host.clone(),
                attempt_count: decided.attempt_count,
                endpoint_tls_mode: decided.endpoint_tls_mode.clone(),
                upstream_tls_version: decided.upstream_tls_version.clone(),
                route_provenance: decided.route_provenance.clone(),
                cluster_provenance: decided.cluster_provenance.clone(),
                cluster_subset: decided.cluster_subset.clone(),
                grpc_status: decided.grpc_status,
            }),
            hop: evidence.hop.as_ref().map(|hop| pb::HopEvidence {
                joined: hop.joined,
                unjoined: hop.unjoined,
                peers: hop
                    .peers
                    .iter()
                    .map(|peer| pb::HopPeer {
                        direction: peer.direction as i32,
                        namespace: peer.namespace.clone(),
                        workload: peer.workload.clone(),
                        pod: peer.pod.clone(),
                        response_code: peer.response_code,
                        response_flags: peer.response_flags,
                        response_code_details: peer.response_code_details.clone(),
                        count: peer.count,
                    })
                    .collect(),
                summary: hop.summary.clone(),
            }),
        }),
        resource: finding.resource.as_ref().map(resource),
        next_commands: finding.next_commands.clone(),
        notes: finding.notes.clone(),
        last_attempt_cause: finding
            .last_attempt
            .map(|cause| cause.id().to_owned())
            .unwrap_or_default(),
    }
}

fn confidence(confidence: Confidence) -> pb::Confidence {
    match confidence {
        Confidence::High => pb::Confidence::High,
        Confidence::Medium => pb::Confidence::Medium,
        Confidence::Low => pb::Confidence::Low,
    }
}

fn resource(resource: &Resource) -> pb::ImplicatedResource {
    pb::ImplicatedResource {
        kind: resource.kind.clone(),
        namespace: resource.namespace.clone(),
        name: resource.name.clone(),
        subset: resource.subset.clone(),
        provenance: resource.provenance.clone(),
        hint: resource.hint.clone(),
    }
}

/// Totals on the wire.
pub fn totals(totals: &Totals) -> pb::ExplainTotals {
    pb::ExplainTotals {
        records_scanned: totals.records_scanned,
        failures: totals.failures,
        groups: totals.groups,
        successes: totals.successes,
        joined_hops: totals.joined_hops,
        window_complete: totals.window_complete,
        since_unix_nanos: totals.since_unix_nanos,
    }
}

/// A record of a request as `StoredRecord` (received time unknown here: 0).
pub fn stored(record: &HopRecord) -> pb::StoredRecord {
    pb::StoredRecord {
        flag_names: flags::names(record.record.response_flags),
        record: Some(record.record.clone()),
        proxy: Some(record.proxy.clone()),
        received_time_unix_nanos: 0,
    }
}

fn hop(hop: &Hop) -> pb::RequestHop {
    pb::RequestHop {
        client: hop.client.as_ref().map(stored),
        server: hop.server.as_ref().map(stored),
        summary: hop.summary.clone(),
    }
}

/// A window's report as the Explain response.
pub fn report(report: &Report) -> pb::ExplainResponse {
    pb::ExplainResponse {
        findings: report.findings.iter().map(finding).collect(),
        totals: Some(totals(&report.totals)),
        hops: Vec::new(),
    }
}

/// One request's report as the Explain response.
pub fn request_report(report: &RequestReport) -> pb::ExplainResponse {
    let failures = u64::from(report.finding.is_some());
    pb::ExplainResponse {
        findings: report.finding.iter().map(finding).collect(),
        totals: Some(pb::ExplainTotals {
            records_scanned: report
                .hops
                .iter()
                .map(|hop| u64::from(hop.client.is_some()) + u64::from(hop.server.is_some()))
                .sum(),
            failures,
            groups: failures,
            window_complete: true,
            ..Default::default()
        }),
        hops: report.hops.iter().map(hop).collect(),
    }
}
