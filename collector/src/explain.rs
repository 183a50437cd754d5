//! The explain engine: turns failure records into findings — a stable cause id, one sentence,
//! the evidence, the Istio resource implicated and the next commands with real names filled in.
//!
//! Pure: no I/O, no clock. The caller hands in records by reference ([`Input`]) from wherever
//! they live (the collector's store, an access log) and a [`Scope`]; the rules never know the
//! difference.
//!
//! How a run goes:
//! 1. records in the window are split into failures and sampled successes;
//! 2. hop correlation pairs a client sidecar's outbound record with the server sidecar's inbound
//!    record of the same request id, and keeps one of the two as the explanation (the server's
//!    when the client only passed on what the upstream said, else the client's);
//! 3. failures are grouped by recording workload, direction, destination, route provenance,
//!    cluster, code, flags and details class ([`Group`]);
//! 4. each group goes through the rules in `explain/rules/` (one per file, most specific first,
//!    `unknown` last) and becomes a [`Finding`];
//! 5. rules that read traffic rather than failures add theirs: `sidecar_missing` from outbound
//!    records (sampled successes included), `stale_config_suspected` and
//!    `canary_split_mismatch` from the success counters per replica ([`replicas`]);
//! 6. each finding says what the records' source could not see that matters for its cause
//!    ([`visibility`]: e.g. a log format without route names cannot name the VirtualService);
//! 7. findings are ranked by impact: count, then recency.
//!
//! [`explain_request`] does the same for the records of one request id and reports every hop.
//! The wire form is in [`wire`]; the CLI's JSON schema is documented in `cli::explain`.

mod cause;
mod commands;
mod finding;
pub(crate) mod fixtures;
mod group;
pub(crate) mod hash;
mod hop;
mod input;
mod join;
mod replicas;
mod rules;
pub(crate) mod testkit;
mod visibility;
pub mod wire;

pub use cause::Cause;
pub use finding::{
    Confidence, DecidedBy, Evidence, Finding, GroupKey, Hop, HopEvidence, HopPeer, HopRecord,
    Report, RequestReport, Resource, Totals,
};
pub use group::{Context, Group, KnownSubsets, Peer};
pub use input::{Hints, Input, RecordRef, Scope, TrafficCount, request_hash};

use meshwhy_proto::v1::{DecisionRecord, Direction};

use group::MAX_SAMPLES;
use join::NONE;
use rules::bits;

/// Findings returned when the caller asks for 0.
pub const DEFAULT_LIMIT: usize = 50;

/// Explains the failures of `input` within `scope`: at most `limit` findings, highest impact
/// first.
pub fn explain(input: &Input<'_>, scope: &Scope, limit: usize) -> Report {
    let grouped = group::group(input, scope);
    let mut findings: Vec<Finding> = grouped
        .groups
        .iter()
        .map(|group| finding(group, &grouped.context, grouped.failures))
        .collect();
    findings.extend(rules::traffic_findings(input, scope));
    rank(&mut findings);
    let groups = findings.len() as u64;
    findings.truncate(if limit == 0 { DEFAULT_LIMIT } else { limit });
    Report {
        findings,
        totals: Totals {
            records_scanned: grouped.scanned,
            failures: grouped.failures,
            groups,
            successes: grouped.successes,
            joined_hops: grouped.joined,
            window_complete: input.window_complete,
            since_unix_nanos: scope.since_unix_nanos,
        },
    }
}

/// Highest impact first: more failures, then more recent; ties broken by cause and title so the
/// order is stable.
fn rank(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.evidence
            .count
            .cmp(&a.evidence.count)
            .then(
                b.evidence
                    .last_seen_unix_nanos
                    .cmp(&a.evidence.last_seen_unix_nanos),
            )
            .then(a.cause.cmp(&b.cause))
            .then(a.title.cmp(&b.title))
    });
}

fn finding(group: &Group<'_>, context: &Context<'_>, failures: u64) -> Finding {
    let (cause, mut diagnosis) = rules::diagnose(group, context);
    // What the source could not see, for this cause: the rules judge, this says what they lacked.
    for note in visibility::notes(cause, diagnosis.last_attempt, group) {
        if !diagnosis.notes.contains(&note) {
            diagnosis.notes.push(note);
        }
    }
    let record = group.record();
    let count = group.count;
    let share = |total: u64| {
        if total == 0 {
            0.0
        } else {
            (count as f64 / total as f64).min(1.0)
        }
    };
    Finding {
        cause,
        title: diagnosis.title,
        confidence: diagnosis.confidence,
        group: GroupKey {
            namespace: group.namespace.to_owned(),
            workload: group.workload.to_owned(),
            direction: group.direction,
            destination: group.destination.clone(),
            authority: record.authority.clone(),
            virtual_host: record.virtual_host.clone(),
            route_name: record.route_name.clone(),
            route_provenance: record.route_provenance.clone(),
            cluster: record.cluster.clone(),
            response_code: record.response_code,
            response_flags: record.response_flags,
            details_class: group.details_class.clone(),
        },
        evidence: Evidence {
            count,
            share_of_failures: share(failures),
            share_of_traffic: group.traffic.map(share),
            first_seen_unix_nanos: group.first_seen,
            last_seen_unix_nanos: group.last_seen,
            sample_request_ids: group
                .samples
                .iter()
                .take(MAX_SAMPLES)
                .map(|(_, id)| (*id).to_owned())
                .collect(),
            sample_paths: to_owned(&group.paths),
            pods: to_owned(&group.pods),
            upstream_hosts: to_owned(&group.upstream_hosts),
            decided_by: DecidedBy::from(record),
            hop: hop::evidence(group, context),
        },
        resource: diagnosis.resource,
        next_commands: diagnosis.next_commands,
        notes: diagnosis.notes,
        last_attempt: diagnosis.last_attempt,
    }
}

fn to_owned(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

/// `DecisionRecord.protocol` of a TCP proxy connection (an access-log line `"- - -" 0 …`).
pub const TCP: &str = "TCP";

/// Whether a record is a failure by meshwhy's default capture set: any flag but DI/RFCF, no
/// response, 5xx, 403, 429, or a non-zero gRPC status. For sources that log every request (access
/// logs), where the filter's own classification is not available.
pub fn is_failure(record: &DecisionRecord) -> bool {
    let flagged = record.response_flags & !bits::BENIGN != 0;
    if record.protocol == TCP {
        // A TCP proxy connection has no HTTP status: its code is always 0, and only flags fail it.
        return flagged;
    }
    flagged
        || matches!(record.response_code, 0 | 403 | 429 | 500..)
        || record.grpc_status.is_some_and(|status| status != 0)
}

/// The cause of one record judged on its own (no other records, no proxies known); `None` when
/// it is not a failure. What `meshwhy observe --cause` and the collector's failure metrics use.
pub fn record_cause(
    proxy: &meshwhy_proto::v1::ProxyIdentity,
    record: &DecisionRecord,
) -> Option<Cause> {
    if !is_failure(record) {
        return None;
    }
    let input = Input {
        records: vec![RecordRef::new(proxy, record)],
        successes: Vec::new(),
        proxies: Vec::new(),
        window_complete: false,
    };
    explain(&input, &Scope::default(), 1)
        .findings
        .first()
        .map(|finding| finding.cause)
}

/// Explains one request end to end: its hops (client and server records paired), and a finding
/// for the record that decided the failure.
pub fn explain_request(input: &Input<'_>, request_id: &str) -> RequestReport {
    let mut records: Vec<RecordRef<'_>> = input
        .records
        .iter()
        .filter(|item| item.record.request_id == request_id)
        .copied()
        .collect();
    records.sort_by_key(|item| item.record.start_time_unix_nanos);
    let items: Vec<u32> = (0..records.len() as u32).collect();
    let pairs = join::pair(&records, &items);
    let context = Context::new(input);

    let owned = |index: usize| HopRecord {
        proxy: records[index].proxy.clone(),
        record: records[index].record.clone(),
    };
    let mut hops = Vec::new();
    let mut done = vec![false; records.len()];
    for index in 0..records.len() {
        if done[index] {
            continue;
        }
        done[index] = true;
        let partner = match pairs.partner[index] {
            NONE => None,
            partner => {
                done[partner as usize] = true;
                Some(partner as usize)
            }
        };
        let inbound = records[index].record.direction == Direction::Inbound as i32;
        let (client, server) = if inbound {
            (partner, Some(index))
        } else {
            (Some(index), partner)
        };
        hops.push(Hop {
            summary: hop::describe(
                client.map(|i| records[i]),
                server.map(|i| records[i]),
                &context,
            ),
            client: client.map(owned),
            server: server.map(owned),
        });
    }

    // The record that decided the failure: a primary failure where a sidecar decided something
    // (not just passed on the upstream's answer), the deepest such; else the deepest primary.
    let chosen = (0..records.len())
        .filter(|&index| !records[index].record.sampled_success && !pairs.secondary[index])
        .max_by_key(|&index| {
            let record = records[index].record;
            (
                record.response_code_details != "via_upstream",
                record.start_time_unix_nanos,
            )
        });
    let finding = chosen.and_then(|index| {
        let mut sub = Input {
            records: vec![records[index]],
            successes: input.successes.clone(),
            proxies: input.proxies.clone(),
            window_complete: false,
        };
        if let Some(partner) = pairs.partner.get(index).filter(|&&p| p != NONE) {
            sub.records.push(records[*partner as usize]);
        }
        let grouped = group::group(&sub, &Scope::default());
        let group = grouped
            .groups
            .iter()
            .find(|group| std::ptr::eq(group.latest.record, records[index].record))?;
        let mut finding = finding(group, &grouped.context, 1);
        if hops.len() > 1 {
            finding.notes.push(format!(
                "the request crossed {} hops; this finding explains the one where a sidecar decided the failure",
                hops.len()
            ));
        }
        Some(finding)
    });
    RequestReport {
        request_id: request_id.to_owned(),
        hops,
        finding,
    }
}

#[cfg(test)]
mod tests;
