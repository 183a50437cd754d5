//! Grouping failure records into the units rules judge, by reference and in two levels so a
//! million records stay fast: first by a hash of their raw fields (computed once at ingest when
//! the store keeps it, see [`Hints`]), then the few raw groups are decoded once each and merged
//! by what they mean (the details class, not the per-endpoint text).

use std::collections::HashMap;

use meshwhy_proto::v1::{DecisionRecord, Direction, ProxyIdentity};

use super::hash::FxHashMap;
use super::input::{Input, RecordRef, Scope};
use super::join::{self, NONE, Pairs};
use crate::decode::{
    ClusterName, CodeDetails, IstioResource, RouteName, TransportFailure, VirtualHost,
};

/// Most samples (request ids, paths, pods, hosts) kept per group.
pub(crate) const MAX_SAMPLES: usize = 5;
/// Most distinct (path, pod, host) combinations a group looks at for its samples; past that the
/// samples are representative and reading more records' strings would only cost.
const MAX_SAMPLE_SHAPES: usize = 32;

/// Failures that share source, direction, destination, route provenance, cluster, code, flags
/// and details class: what one rule judges.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    /// Recording proxy's namespace.
    pub namespace: &'a str,
    /// Recording proxy's workload.
    pub workload: &'a str,
    /// Which listener recorded.
    pub direction: Direction,
    /// Response flags (a copy, so a rule can judge the group as if a flag were absent).
    pub flags: u64,
    /// `fqdn:port` of an outbound cluster, else the authority.
    pub destination: String,
    /// Details reduced to what the group shares.
    pub details_class: String,
    /// The newest record (its raw fields are the `decided_by` evidence).
    pub latest: RecordRef<'a>,
    /// Decoded details of the newest record.
    pub details: CodeDetails,
    /// Transport failure: the record's own field, else the one inside the details.
    pub transport: Option<TransportFailure>,
    /// Decoded cluster name.
    pub cluster: ClusterName,
    /// Decoded route name.
    pub route: RouteName,
    /// Decoded virtual host.
    pub vhost: VirtualHost,
    /// The VirtualService (or other resource) the route came from.
    pub route_resource: Option<IstioResource>,
    /// The DestinationRule the cluster came from.
    pub cluster_resource: Option<IstioResource>,
    /// Failed requests (each hop once).
    pub count: u64,
    /// Earliest start, ns since the Unix epoch.
    pub first_seen: u64,
    /// Latest start.
    pub last_seen: u64,
    /// (start time, request id), newest first, at most [`MAX_SAMPLES`].
    pub samples: Vec<(u64, &'a str)>,
    /// Distinct paths.
    pub paths: Vec<&'a str>,
    /// Distinct recording pods.
    pub pods: Vec<&'a str>,
    /// Distinct upstream hosts.
    pub upstream_hosts: Vec<&'a str>,
    /// Most upstream attempts seen.
    pub max_attempts: u32,
    /// Longest duration among the newest records (the latest and the sampled ones), ns: enough to
    /// tell "all short" from "some long" without reading every record.
    pub max_duration_nanos: u64,
    /// Distinct endpoint tlsMode values seen (empty string = none).
    pub tls_modes: Vec<&'a str>,
    /// What the other sidecar recorded, by outcome, most frequent first.
    pub peers: Vec<Peer<'a>>,
    /// Requests also recorded by the other sidecar.
    pub joined: u64,
    /// All requests the recording workload sent to this cluster (or vhost) in the window, when
    /// known.
    pub traffic: Option<u64>,
}

/// One outcome the other side of the hop recorded.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    /// Its newest record.
    pub latest: RecordRef<'a>,
    /// How many of the group's requests.
    pub count: u64,
}

impl<'a> Group<'a> {
    /// The newest record.
    pub fn record(&self) -> &'a DecisionRecord {
        self.latest.record
    }

    /// The recording proxy of the newest record.
    pub fn proxy(&self) -> &'a ProxyIdentity {
        self.latest.proxy
    }

    /// Whether every bit of `flags` is set.
    pub fn has(&self, flags: u64) -> bool {
        self.flags & flags == flags
    }

    /// Whether any bit of `flags` is set.
    pub fn has_any(&self, flags: u64) -> bool {
        self.flags & flags != 0
    }
}

/// Cross-group knowledge rules may use.
#[derive(Debug, Default)]
pub struct Context<'a> {
    /// Reporting proxies by pod IP.
    pub(crate) servers: FxHashMap<&'a str, &'a ProxyIdentity>,
    /// Route provenance seen per virtual host (records and counters).
    pub(crate) vhost_routes: FxHashMap<&'a str, &'a str>,
    /// Clusters seen (records and counters) with their DestinationRule provenance (empty when
    /// none was recorded): what the proxies do have, for rules about what they lack.
    pub(crate) clusters: FxHashMap<&'a str, &'a str>,
}

/// The subsets of one destination host the proxies were seen to have clusters for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownSubsets<'a> {
    /// Subsets (empty string = the subset-less cluster), sorted.
    pub subsets: Vec<&'a str>,
    /// The DestinationRule provenance of those clusters, when one was recorded.
    pub destination_rule: Option<&'a str>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(input: &Input<'a>) -> Self {
        let mut context = Self::default();
        for proxy in &input.proxies {
            if let Some(ip) = join::node_ip(proxy) {
                context.servers.insert(ip, proxy);
            }
        }
        for success in &input.successes {
            context.note_route(success.virtual_host, success.route_provenance);
            context.note_cluster(success.cluster, "");
        }
        context
    }

    fn note_cluster(&mut self, cluster: &'a str, provenance: &'a str) {
        if cluster.is_empty() {
            return;
        }
        let known = self.clusters.entry(cluster).or_insert(provenance);
        if known.is_empty() {
            *known = provenance;
        }
    }

    /// The subsets of `fqdn` (any port) seen among the proxies' outbound clusters. Decodes only
    /// the distinct cluster names, so it costs nothing per record.
    pub fn subsets_of(&self, fqdn: &str) -> KnownSubsets<'a> {
        let mut known = KnownSubsets::default();
        for (&name, &provenance) in &self.clusters {
            let Some(subset) = outbound_subset(name, fqdn) else {
                continue;
            };
            if !known.subsets.contains(&subset) {
                known.subsets.push(subset);
            }
            if !provenance.is_empty() {
                known.destination_rule.get_or_insert(provenance);
            }
        }
        known.subsets.sort_unstable();
        known
    }

    fn note_route(&mut self, vhost: &'a str, provenance: &'a str) {
        if !vhost.is_empty() && !provenance.is_empty() {
            self.vhost_routes.entry(vhost).or_insert(provenance);
        }
    }

    /// The reporting proxy whose pod has the IP of `address` (`ip:port`).
    pub fn server_at(&self, address: &str) -> Option<&'a ProxyIdentity> {
        let ip = crate::decode::node::address_ip(address);
        self.servers.get(ip).copied()
    }

    /// The reporting proxy at `address` when it is another pod than `recorder`: the server of
    /// `recorder`'s outbound call. The recorder's own IP as its upstream is a shared address (host
    /// network, one loopback IP for several proxies) far more often than a pod calling itself,
    /// and naming the caller as the server would send the reader to the wrong app; a real
    /// self-call still gets the destination Service's pods from the rules' fallback.
    pub fn server_for(&self, recorder: &ProxyIdentity, address: &str) -> Option<&'a ProxyIdentity> {
        self.server_at(address)
            .filter(|server| !join::same_proxy_pod(server, recorder))
    }

    /// A route provenance seen on `vhost` (another request's VirtualService).
    pub fn vhost_route(&self, vhost: &str) -> Option<&'a str> {
        self.vhost_routes.get(vhost).copied()
    }
}

/// The subset of an `outbound|<port>|<subset>|<fqdn>` cluster name when its host is `fqdn`.
fn outbound_subset<'a>(cluster: &'a str, fqdn: &str) -> Option<&'a str> {
    let mut parts = cluster.splitn(4, '|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("outbound"), Some(_), Some(subset), Some(host)) if host == fqdn => Some(subset),
        _ => None,
    }
}

/// The groups of a run and what was counted on the way.
#[derive(Debug)]
pub(crate) struct Grouped<'a> {
    pub(crate) groups: Vec<Group<'a>>,
    pub(crate) context: Context<'a>,
    pub(crate) scanned: u64,
    pub(crate) failures: u64,
    pub(crate) successes: u64,
    pub(crate) joined: u64,
}

/// First-level key: the record's group hash (see [`super::input::Hints`]) and its hop
/// partner's. Secondary records (explained by their partner) are kept apart: they only count
/// towards traffic totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RawKey {
    secondary: bool,
    group: u64,
    peer: u64,
}

/// A bounded list of distinct values.
#[derive(Debug, Clone, Default)]
struct Distinct<'a>(Vec<&'a str>);

impl<'a> Distinct<'a> {
    /// Adds the value `value()` gives, which is only asked for while there is room.
    fn add(&mut self, value: impl FnOnce() -> &'a str) {
        if self.0.len() >= MAX_SAMPLES {
            return;
        }
        let value = value();
        if !value.is_empty() && !self.0.contains(&value) {
            self.0.push(value);
        }
    }

    fn merge(&mut self, other: &Self) {
        for value in &other.0 {
            self.add(|| value);
        }
    }
}

/// The newest `T`s (request ids, or the records that carry them), newest first.
#[derive(Debug, Clone)]
struct Newest<T>(Vec<(u64, T)>);

impl<T> Default for Newest<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> Newest<T> {
    /// Keeps `value` when `time` is among the newest.
    fn add(&mut self, time: u64, value: T) {
        if self.0.len() == MAX_SAMPLES && self.0.last().is_some_and(|(oldest, _)| *oldest >= time) {
            return;
        }
        let at = self.0.partition_point(|(kept, _)| *kept >= time);
        self.0.insert(at, (time, value));
        self.0.truncate(MAX_SAMPLES);
    }
}

#[derive(Debug, Clone)]
struct Acc<'a> {
    /// Creation order: groups merge in the order records first showed them, not hash order.
    order: usize,
    count: u64,
    first: u64,
    last: u64,
    latest: RecordRef<'a>,
    latest_peer: Option<RecordRef<'a>>,
    /// Records, not their ids: taking a `&str` would read every record, a reference does not.
    samples: Newest<&'a DecisionRecord>,
    paths: Distinct<'a>,
    pods: Distinct<'a>,
    hosts: Distinct<'a>,
    /// [`Hints::samples`] values already looked at.
    shapes: Vec<u64>,
    max_attempts: u32,
}

impl<'a> Acc<'a> {
    fn new(item: RecordRef<'a>, order: usize) -> Self {
        let time = item.hints.start_unix_nanos;
        Self {
            order,
            count: 0,
            first: time,
            last: time,
            latest: item,
            latest_peer: None,
            samples: Newest::default(),
            paths: Distinct::default(),
            pods: Distinct::default(),
            hosts: Distinct::default(),
            shapes: Vec::new(),
            max_attempts: 0,
        }
    }

    /// Counts a record. Reads only its hints once the sample lists are full: at a million
    /// records, touching each record's strings is what costs.
    fn add(&mut self, item: RecordRef<'a>, peer: Option<RecordRef<'a>>, full: bool) {
        self.count += 1;
        if !full {
            return;
        }
        let hints = &item.hints;
        let time = hints.start_unix_nanos;
        self.first = self.first.min(time);
        if time >= self.last {
            self.last = time;
            self.latest = item;
            if peer.is_some() {
                self.latest_peer = peer;
            }
        } else if self.latest_peer.is_none() {
            self.latest_peer = peer;
        }
        if hints.request != 0 {
            self.samples.add(time, item.record);
        }
        self.max_attempts = self.max_attempts.max(hints.attempts);
        // Only a new (path, pod, host) combination is worth reading the record's strings for.
        if self.shapes.len() < MAX_SAMPLE_SHAPES && !self.shapes.contains(&hints.samples) {
            self.shapes.push(hints.samples);
            self.paths.add(|| &item.record.path);
            self.pods.add(|| &item.proxy.pod);
            self.hosts.add(|| &item.record.upstream_host);
        }
    }
}

/// Groups the failure records of `input` within `scope`.
pub(crate) fn group<'a>(input: &Input<'a>, scope: &Scope) -> Grouped<'a> {
    let records = &input.records;
    let mut context = Context::new(input);
    let mut success_traffic: FxHashMap<(&str, &str, &str), u64> = FxHashMap::default();
    let mut failures: Vec<u32> = Vec::new();
    let mut scanned = 0;
    let mut successes = 0;
    for (index, item) in records.iter().enumerate() {
        if !scope.in_window(&item.hints) {
            continue;
        }
        scanned += 1;
        if item.hints.sampled_success {
            successes += 1;
            *success_traffic.entry(traffic_key(*item)).or_default() += 1;
            context.note_route(&item.record.virtual_host, &item.record.route_provenance);
            context.note_cluster(&item.record.cluster, &item.record.cluster_provenance);
        } else {
            failures.push(index as u32);
        }
    }
    for success in &input.successes {
        successes += success.count;
        let key = (
            success.namespace,
            success.workload,
            traffic_target(success.cluster, success.virtual_host),
        );
        *success_traffic.entry(key).or_default() += success.count;
    }

    let pairs = join::pair(records, &failures);
    let raw = raw_groups(records, &failures, &pairs);

    // Traffic seen by each recording workload per cluster (or vhost): failures of both hop sides
    // plus successes.
    let mut traffic = success_traffic;
    for (key, acc) in &raw {
        let latest = acc.latest;
        *traffic.entry(traffic_key(latest)).or_default() += acc.count;
        if !key.secondary {
            context.note_route(&latest.record.virtual_host, &latest.record.route_provenance);
        }
        context.note_cluster(&latest.record.cluster, &latest.record.cluster_provenance);
    }

    let mut semantic: HashMap<SemanticKey, Group<'a>> = HashMap::new();
    let mut order: Vec<SemanticKey> = Vec::new();
    let mut counted = 0;
    for (key, acc) in &raw {
        if key.secondary || !in_scope(scope, acc) {
            continue;
        }
        counted += acc.count;
        let candidate = decode(key, acc);
        let semantic_key = SemanticKey::of(&candidate);
        match semantic.get_mut(&semantic_key) {
            Some(group) => merge(group, candidate),
            None => {
                order.push(semantic_key.clone());
                semantic.insert(semantic_key, candidate);
            }
        }
    }
    let mut groups: Vec<Group<'a>> = order
        .into_iter()
        .filter_map(|key| semantic.remove(&key))
        .collect();
    for group in &mut groups {
        group
            .peers
            .sort_by_key(|peer| std::cmp::Reverse(peer.count));
        let target = traffic_target(&group.record().cluster, &group.record().virtual_host);
        group.traffic = (input.window_complete && !target.is_empty())
            .then(|| {
                traffic
                    .get(&(group.namespace, group.workload, target))
                    .copied()
            })
            .flatten();
    }
    Grouped {
        groups,
        context,
        scanned,
        failures: counted,
        successes,
        joined: pairs.joined,
    }
}

fn traffic_target<'a>(cluster: &'a str, virtual_host: &'a str) -> &'a str {
    if cluster.is_empty() {
        virtual_host
    } else {
        cluster
    }
}

fn traffic_key(item: RecordRef<'_>) -> (&str, &str, &str) {
    (
        &item.proxy.namespace,
        &item.proxy.workload,
        traffic_target(&item.record.cluster, &item.record.virtual_host),
    )
}

/// First-level groups in the order records first showed them (not hash order, so merges and
/// output are stable).
fn raw_groups<'a>(
    records: &[RecordRef<'a>],
    failures: &[u32],
    pairs: &Pairs,
) -> Vec<(RawKey, Acc<'a>)> {
    let mut raw: FxHashMap<RawKey, Acc<'a>> = FxHashMap::default();
    for (position, &index) in failures.iter().enumerate() {
        let item = records[index as usize];
        let secondary = pairs.secondary[position];
        let peer = match pairs.partner[position] {
            NONE => None,
            partner => Some(records[failures[partner as usize] as usize]),
        };
        let key = RawKey {
            secondary,
            group: item.hints.group,
            peer: match peer {
                Some(peer) if !secondary => peer.hints.group,
                _ => 0,
            },
        };
        let order = raw.len();
        raw.entry(key)
            .or_insert_with(|| Acc::new(item, order))
            .add(item, peer, !secondary);
    }
    let mut raw: Vec<(RawKey, Acc<'a>)> = raw.into_iter().collect();
    raw.sort_by_key(|(_, acc)| acc.order);
    raw
}

fn in_scope(scope: &Scope, acc: &Acc<'_>) -> bool {
    let (proxy, record) = (acc.latest.proxy, acc.latest.record);
    let reporter = scope.matches_reporter(&proxy.namespace, &proxy.workload)
        || acc.latest_peer.is_some_and(|peer| {
            scope.matches_reporter(&peer.proxy.namespace, &peer.proxy.workload)
        });
    let cluster = ClusterName::parse(&record.cluster);
    let host = match &cluster {
        ClusterName::Outbound { fqdn, .. } => Some(fqdn.as_str()),
        _ => None,
    };
    reporter && scope.matches_service(&record.authority, host)
}

/// Second-level key: what a raw group means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SemanticKey {
    namespace: String,
    workload: String,
    direction: i32,
    destination: String,
    route_provenance: String,
    cluster: String,
    code: u32,
    flags: u64,
    details_class: String,
    virtual_host: String,
}

impl SemanticKey {
    fn of(group: &Group<'_>) -> Self {
        let record = group.record();
        Self {
            namespace: group.namespace.to_owned(),
            workload: group.workload.to_owned(),
            direction: group.direction as i32,
            destination: group.destination.clone(),
            route_provenance: record.route_provenance.clone(),
            cluster: record.cluster.clone(),
            code: record.response_code,
            flags: record.response_flags,
            details_class: group.details_class.clone(),
            // The vhost tells NR groups apart (they have no cluster).
            virtual_host: if record.cluster.is_empty() {
                record.virtual_host.clone()
            } else {
                String::new()
            },
        }
    }
}

/// Decodes one raw group into a (one-raw-group) semantic group.
fn decode<'a>(key: &RawKey, acc: &Acc<'a>) -> Group<'a> {
    let (proxy, record) = (acc.latest.proxy, acc.latest.record);
    let details = CodeDetails::parse(&record.response_code_details);
    let own_transport = TransportFailure::parse(&record.transport_failure_reason);
    let mut details_class = details.class();
    if details.transport.is_none()
        && let Some(transport) = &own_transport
    {
        // Older Envoys put the transport failure only in its own field: keep TLS and refused
        // connects apart anyway.
        details_class.push_str(&format!("<{}>", transport.class()));
    }
    let transport = own_transport.or_else(|| details.transport.clone());
    let cluster = ClusterName::parse(&record.cluster);
    let destination = cluster
        .destination()
        .unwrap_or_else(|| record.authority.clone());
    let direction = Direction::try_from(record.direction).unwrap_or(Direction::Unspecified);
    let joined = if key.peer != 0 { acc.count } else { 0 };
    let peers = acc
        .latest_peer
        .filter(|_| joined > 0)
        .map(|latest| Peer {
            latest,
            count: acc.count,
        })
        .into_iter()
        .collect();
    Group {
        namespace: &proxy.namespace,
        workload: &proxy.workload,
        direction,
        flags: record.response_flags,
        destination,
        details_class,
        latest: acc.latest,
        transport,
        cluster,
        route: RouteName::parse(&record.route_name),
        vhost: VirtualHost::parse(&record.virtual_host),
        route_resource: IstioResource::parse(&record.route_provenance),
        cluster_resource: IstioResource::parse(&record.cluster_provenance),
        details,
        count: acc.count,
        first_seen: acc.first,
        last_seen: acc.last,
        samples: acc
            .samples
            .0
            .iter()
            .map(|(time, record)| (*time, record.request_id.as_str()))
            .collect(),
        paths: acc.paths.0.clone(),
        pods: acc.pods.0.clone(),
        upstream_hosts: acc.hosts.0.clone(),
        max_attempts: acc.max_attempts,
        max_duration_nanos: acc
            .samples
            .0
            .iter()
            .map(|(_, sample)| sample.duration_nanos)
            .fold(record.duration_nanos, u64::max),
        tls_modes: vec![record.endpoint_tls_mode.as_str()],
        joined,
        peers,
        traffic: None,
    }
}

/// Folds `other` (same semantic key) into `group`.
fn merge<'a>(group: &mut Group<'a>, other: Group<'a>) {
    let mut samples = Newest(std::mem::take(&mut group.samples));
    for (time, id) in other.samples {
        samples.add(time, id);
    }
    group.count += other.count;
    group.first_seen = group.first_seen.min(other.first_seen);
    group.joined += other.joined;
    group.max_attempts = group.max_attempts.max(other.max_attempts);
    group.max_duration_nanos = group.max_duration_nanos.max(other.max_duration_nanos);
    let mut paths = Distinct(std::mem::take(&mut group.paths));
    paths.merge(&Distinct(other.paths));
    group.paths = paths.0;
    let mut pods = Distinct(std::mem::take(&mut group.pods));
    pods.merge(&Distinct(other.pods));
    group.pods = pods.0;
    let mut hosts = Distinct(std::mem::take(&mut group.upstream_hosts));
    hosts.merge(&Distinct(other.upstream_hosts));
    group.upstream_hosts = hosts.0;
    for mode in other.tls_modes {
        if !group.tls_modes.contains(&mode) {
            group.tls_modes.push(mode);
        }
    }
    for peer in other.peers {
        let same = group.peers.iter_mut().find(|kept| {
            kept.latest.proxy.workload == peer.latest.proxy.workload
                && kept.latest.proxy.namespace == peer.latest.proxy.namespace
                && kept.latest.record.response_code == peer.latest.record.response_code
                && kept.latest.record.response_flags == peer.latest.record.response_flags
                && kept.latest.record.response_code_details
                    == peer.latest.record.response_code_details
        });
        match same {
            Some(kept) => kept.count += peer.count,
            None => group.peers.push(peer),
        }
    }
    if other.last_seen >= group.last_seen {
        // The newest record decides what `decided_by` shows.
        group.last_seen = other.last_seen;
        group.latest = other.latest;
        group.details = other.details;
        group.transport = other.transport;
        group.route_resource = other.route_resource;
        group.cluster_resource = other.cluster_resource;
        group.route = other.route;
        group.vhost = other.vhost;
    }
    group.samples = samples.0;
}
