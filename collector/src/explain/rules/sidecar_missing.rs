//! `sidecar_missing`: a client sidecar sent requests to endpoints of a Kubernetes Service that
//! carry no `tlsMode: istio` metadata: the pods behind it run without a sidecar, so the traffic
//! is plaintext and no server-side policy or telemetry applies. Read from every outbound record
//! (sampled successes included: nothing has to fail), not from failure groups.

use meshwhy_proto::v1::Direction;

use crate::decode::{ClusterName, ServiceHost};
use crate::explain::Cause;
use crate::explain::commands::{self, Commands};
use crate::explain::finding::{Confidence, DecidedBy, Evidence, Finding, GroupKey, Resource};
use crate::explain::group::{Context, MAX_SAMPLES};
use crate::explain::hash::FxHashMap;
use crate::explain::input::{Input, RecordRef, Scope};

/// What a record's group hash says about it (decided once per hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Endpoint with a tlsMode: proof the filter fills the field.
    Tls,
    /// Outbound Service cluster, endpoint without tlsMode.
    Candidate,
    Other,
}

fn shape(record: &meshwhy_proto::v1::DecisionRecord) -> Shape {
    if !record.endpoint_tls_mode.is_empty() {
        return Shape::Tls;
    }
    let service = ClusterName::parse(&record.cluster).service();
    match service {
        Some(ServiceHost {
            name: Some(_),
            namespace: Some(_),
            ..
        }) => Shape::Candidate,
        _ => Shape::Other,
    }
}

struct Acc<'a> {
    latest: RecordRef<'a>,
    count: u64,
    first: u64,
    last: u64,
    ids: Vec<(u64, &'a str)>,
    pods: Vec<&'a str>,
    hosts: Vec<&'a str>,
}

fn add<'a>(list: &mut Vec<&'a str>, value: &'a str) {
    if list.len() < MAX_SAMPLES && !value.is_empty() && !list.contains(&value) {
        list.push(value);
    }
}

/// The findings of `input` within `scope`.
pub(crate) fn findings(input: &Input<'_>, scope: &Scope) -> Vec<Finding> {
    let outbound = Direction::Outbound as i32;
    let context = Context::new(input);
    let mut shapes: FxHashMap<u64, Shape> = FxHashMap::default();
    let mut groups: Vec<Acc<'_>> = Vec::new();
    let mut index: FxHashMap<(&str, &str, &str), usize> = FxHashMap::default();
    // First the shapes, from the hints alone (a record's strings are read once per group hash):
    // without any tlsMode in the data there is nothing to conclude, and the per-record work
    // below, which reads each candidate's strings, is skipped.
    let mut candidates: Vec<&RecordRef<'_>> = Vec::new();
    let mut tls_seen = false;
    for item in &input.records {
        if item.hints.direction != outbound || !scope.in_window(&item.hints) {
            continue;
        }
        let shape = *shapes
            .entry(item.hints.group)
            .or_insert_with(|| shape(item.record));
        match shape {
            Shape::Tls => tls_seen = true,
            Shape::Candidate => candidates.push(item),
            Shape::Other => {}
        }
    }
    // Only when this data shows tlsMode at all: older filters never fill the field.
    if !tls_seen {
        return Vec::new();
    }
    // Whether a reporting sidecar lives at an address, once per address (parsing it per record
    // showed in the million-record profile).
    let mut injected: FxHashMap<&str, bool> = FxHashMap::default();
    for item in candidates {
        let record = item.record;
        if record.upstream_host.is_empty()
            // A reporting sidecar lives at that address: it is injected after all.
            || *injected
                .entry(record.upstream_host.as_str())
                .or_insert_with(|| context.server_at(&record.upstream_host).is_some())
        {
            continue;
        }
        let proxy = item.proxy;
        if !scope.matches_reporter(&proxy.namespace, &proxy.workload) {
            continue;
        }
        let key = (
            proxy.namespace.as_str(),
            proxy.workload.as_str(),
            record.cluster.as_str(),
        );
        let at = *index.entry(key).or_insert_with(|| {
            groups.push(Acc {
                latest: *item,
                count: 0,
                first: u64::MAX,
                last: 0,
                ids: Vec::new(),
                pods: Vec::new(),
                hosts: Vec::new(),
            });
            groups.len() - 1
        });
        let acc = &mut groups[at];
        let time = item.hints.start_unix_nanos;
        acc.count += 1;
        acc.first = acc.first.min(time);
        if time >= acc.last {
            acc.last = time;
            acc.latest = *item;
        }
        if !record.request_id.is_empty() {
            acc.ids.push((time, &record.request_id));
            acc.ids.sort_by_key(|(time, _)| std::cmp::Reverse(*time));
            acc.ids.truncate(MAX_SAMPLES);
        }
        add(&mut acc.pods, &proxy.pod);
        add(&mut acc.hosts, &record.upstream_host);
    }
    groups
        .into_iter()
        .filter_map(|acc| finding(acc, scope))
        .collect()
}

fn finding(acc: Acc<'_>, scope: &Scope) -> Option<Finding> {
    let record = acc.latest.record;
    let proxy = acc.latest.proxy;
    let cluster = ClusterName::parse(&record.cluster);
    let service = cluster.service()?;
    let (name, namespace) = (service.name.clone()?, service.namespace.clone()?);
    let port = match cluster {
        ClusterName::Outbound { port, .. } => port.to_string(),
        _ => String::new(),
    };
    if !scope.matches_service(&record.authority, Some(&service.fqdn)) {
        return None;
    }
    let destination = if port.is_empty() {
        service.fqdn.clone()
    } else {
        format!("{}:{port}", service.fqdn)
    };
    let mut next = Commands::new();
    next.push_opt(commands::endpoint_slices(&service));
    next.push(format!(
        "kubectl get pods -n {namespace} -l app={name} -o jsonpath='{{range .items[*]}}{{.metadata.name}}{{\"\\t\"}}{{.metadata.annotations.sidecar\\.istio\\.io/status}}{{\"\\n\"}}{{end}}'"
    ));
    next.push(format!("kubectl get namespace {namespace} --show-labels"));
    next.push(commands::endpoints(
        &commands::Pod::of(proxy),
        &record.cluster,
    ));
    Some(Finding {
        cause: Cause::SidecarMissing,
        title: format!(
            "{}/{} → {destination}: the endpoints of {} ({}) carry no tlsMode: its pods run without a sidecar, so this traffic is plaintext and outside the mesh's mTLS and server-side policy",
            proxy.namespace, proxy.workload, service.fqdn, record.cluster
        ),
        confidence: Confidence::High,
        group: GroupKey {
            namespace: proxy.namespace.clone(),
            workload: proxy.workload.clone(),
            direction: Direction::Outbound,
            destination,
            authority: record.authority.clone(),
            virtual_host: record.virtual_host.clone(),
            route_name: record.route_name.clone(),
            route_provenance: record.route_provenance.clone(),
            cluster: record.cluster.clone(),
            response_code: record.response_code,
            response_flags: record.response_flags,
            details_class: String::new(),
        },
        evidence: Evidence {
            count: acc.count,
            share_of_failures: 0.0,
            share_of_traffic: None,
            first_seen_unix_nanos: acc.first,
            last_seen_unix_nanos: acc.last,
            sample_request_ids: acc.ids.iter().map(|(_, id)| (*id).to_owned()).collect(),
            sample_paths: Vec::new(),
            pods: acc.pods.iter().map(|pod| (*pod).to_owned()).collect(),
            upstream_hosts: acc.hosts.iter().map(|host| (*host).to_owned()).collect(),
            decided_by: DecidedBy::from(record),
            hop: None,
        },
        resource: Some(Resource {
            kind: String::new(),
            namespace,
            name,
            subset: String::new(),
            provenance: String::new(),
            hint: format!(
                "the workload behind Service {} is not injected: check the namespace's istio-injection / istio.io/rev label and the pods' sidecar.istio.io/inject",
                service.fqdn
            ),
        }),
        next_commands: next.into_vec(),
        notes: vec![
            "read from recorded requests (sampled successes included): these requests need not have failed".to_owned(),
            "under a STRICT PeerAuthentication such a destination only works while clients send plaintext to it".to_owned(),
        ],
        last_attempt: None,
    })
}

#[cfg(test)]
mod tests {
    use meshwhy_proto::v1::{DecisionRecord, ProxyIdentity};

    use super::*;
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;

    const LEGACY: &str = "outbound|80||legacy-db.legacy.svc.cluster.local";

    fn sampled(cluster: &str, tls: &str, host: &str) -> DecisionRecord {
        let mut record = outbound(200, "", VIA_UPSTREAM);
        record.sampled_success = true;
        record.cluster = cluster.into();
        record.endpoint_tls_mode = tls.into();
        record.upstream_host = host.into();
        record.authority = "legacy-db.legacy.svc.cluster.local:80".into();
        record
    }

    fn run(records: &[(ProxyIdentity, DecisionRecord)]) -> Vec<Finding> {
        explain_records(records)
            .findings
            .into_iter()
            .filter(|f| f.cause == Cause::SidecarMissing)
            .collect()
    }

    #[test]
    fn table() {
        let injected = sampled(OUTBOUND_CLUSTER, "istio", "10.0.0.9:9080");
        let legacy = sampled(LEGACY, "", "10.0.1.7:80");
        // Fires on a plaintext endpoint, even for successes only; names the cluster.
        let found = run(&[(client(), injected.clone()), (client(), legacy.clone())]);
        assert_eq!(found.len(), 1, "{found:#?}");
        let finding = &found[0];
        assert!(finding.title.contains(LEGACY), "{}", finding.title);
        assert_eq!(finding.group.cluster, LEGACY);
        assert_eq!(finding.evidence.count, 1);
        assert_eq!(finding.evidence.pods, ["productpage-v1-7d9c"]);
        assert_eq!(finding.evidence.upstream_hosts, ["10.0.1.7:80"]);
        let resource = finding.resource.as_ref().unwrap();
        assert_eq!(
            (resource.namespace.as_str(), resource.name.as_str()),
            ("legacy", "legacy-db")
        );
        assert!(
            finding
                .next_commands
                .contains(&"kubectl get namespace legacy --show-labels".to_owned()),
            "{:#?}",
            finding.next_commands
        );
        assert!(
            finding
                .next_commands
                .iter()
                .any(|c| c.contains("sidecar\\.istio\\.io/status")
                    && c.contains("-n legacy -l app=legacy-db"))
        );
        // Sampled successes are never failure findings.
        let report = explain_records(&[(client(), injected.clone()), (client(), legacy.clone())]);
        assert_eq!(report.totals.failures, 0);
        assert_eq!(report.findings.len(), 1);

        // Injected endpoints only: nothing.
        assert!(run(&[(client(), injected.clone())]).is_empty());
        // No tlsMode anywhere in the data (an old filter): nothing.
        assert!(run(&[(client(), legacy.clone())]).is_empty());
        // No upstream host, or a non-Service cluster: nothing.
        let mut no_host = legacy.clone();
        no_host.upstream_host.clear();
        assert!(run(&[(client(), injected.clone()), (client(), no_host)]).is_empty());
        let external = sampled("outbound|443||api.example.com", "", "93.184.216.34:443");
        assert!(run(&[(client(), injected.clone()), (client(), external)]).is_empty());
        let passthrough = sampled("PassthroughCluster", "", "93.184.216.34:443");
        assert!(run(&[(client(), injected.clone()), (client(), passthrough)]).is_empty());
        // A reporting sidecar at the address: injected after all.
        let at_server = sampled(LEGACY, "", "10.0.0.9:80");
        assert!(run(&[(client(), injected.clone()), (client(), at_server)]).is_empty());
        // Inbound records never count.
        let mut inbound_record = legacy;
        inbound_record.direction = Direction::Inbound as i32;
        assert!(run(&[(client(), injected), (server(), inbound_record)]).is_empty());
    }
}
