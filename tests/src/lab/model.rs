//! The lab's model of a tiny Istio mesh: Services, workloads (pods with labels, replicas, injected
//! or not), VirtualService-, DestinationRule- and AuthorizationPolicy-like resources, the
//! mesh-wide mTLS mode and outbound traffic policy. [`crate::lab::render`] turns it into Envoy
//! bootstraps shaped like istiod's sidecar output; the names follow istiod's conventions
//! ([`cluster_name`], [`vs_provenance`], [`rbac_policy_id`], …).
//!
//! Config generations model xDS staleness: every resource and workload is applied in a
//! generation (1 by default); a stale replica sees the mesh as it was in generation 1, a fresh
//! one sees the latest ([`Mesh::view`]).

use std::{collections::BTreeMap, time::Duration};

/// Pod labels, selectors.
pub type Labels = BTreeMap<String, String>;

/// Istio's version written into the node metadata.
pub const ISTIO_VERSION: &str = "1.28.0";
/// The Kubernetes cluster id (node metadata CLUSTER_ID; the last field of `istio.workload`).
pub const CLUSTER_ID: &str = "Kubernetes";
/// The mesh id (node metadata MESH_ID).
pub const MESH_ID: &str = "cluster.local";
/// Pod IPs are loopback addresses `127.42.x.y`, one per pod, so node ids, upstream hosts and
/// source addresses tell pods apart as in a cluster (Linux routes all of 127/8 to `lo`).
pub fn pod_ip(n: u32) -> String {
    format!("127.42.{}.{}", (n / 250) % 250, n % 250 + 1)
}

/// Builds labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Whether every label of `selector` is in `labels` (an empty selector selects everything).
pub fn selects(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `<name>.<ns>.svc.cluster.local`.
pub fn fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.cluster.local")
}

/// Resolves a resource's `host` the way Istio does: a short name is in the resource's namespace.
pub fn resolve_host(host: &str, namespace: &str) -> String {
    if host.contains('.') {
        host.to_owned()
    } else {
        fqdn(host, namespace)
    }
}

/// istiod's outbound cluster name `outbound|<port>|<subset>|<fqdn>`.
pub fn cluster_name(port: u16, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// istiod's inbound cluster name `inbound|<port>||`.
pub fn inbound_cluster_name(port: u16) -> String {
    format!("inbound|{port}||")
}

/// The outbound virtual host name `<fqdn>:<port>`.
pub fn vhost_name(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

/// Route metadata `istio.config` for a VirtualService.
pub fn vs_provenance(namespace: &str, name: &str) -> String {
    format!("/apis/networking.istio.io/v1/namespaces/{namespace}/virtual-service/{name}")
}

/// Cluster metadata `istio.config` for a DestinationRule.
pub fn dr_provenance(namespace: &str, name: &str) -> String {
    format!("/apis/networking.istio.io/v1/namespaces/{namespace}/destination-rule/{name}")
}

/// The RBAC policy id istiod gives rule `n` of an AuthorizationPolicy.
pub fn rbac_policy_id(namespace: &str, name: &str, rule: usize) -> String {
    format!("ns[{namespace}]-policy[{name}]-rule[{rule}]")
}

/// What a sidecar does with a host the mesh does not know (`meshConfig.outboundTrafficPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutboundPolicy {
    /// `allow_any` virtual host → PassthroughCluster.
    #[default]
    AllowAny,
    /// `block_all` virtual host → 502 direct response.
    RegistryOnly,
}

/// Mesh-wide PeerAuthentication mode of injected servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerAuthentication {
    /// mTLS and plaintext accepted.
    #[default]
    Permissive,
    /// Only mTLS: plaintext finds no filter chain.
    Strict,
}

/// A Kubernetes Service (one HTTP port).
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub namespace: String,
    /// The service port (also the inbound port: target port = port).
    pub port: u16,
    /// Pod selector.
    pub selector: Labels,
}

impl Service {
    /// Service `name` on port 80 selecting `app: <name>`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            port: 80,
            selector: labels(&[("app", name)]),
        }
    }

    /// `<name>.<ns>.svc.cluster.local`.
    pub fn host(&self) -> String {
        fqdn(&self.name, &self.namespace)
    }

    /// `<fqdn>:<port>`: the Host header an app sends and the outbound virtual host name.
    pub fn authority(&self) -> String {
        vhost_name(&self.host(), self.port)
    }
}

/// A Deployment: `replicas` pods with the same labels and service account.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    pub labels: Labels,
    pub replicas: usize,
    /// Has an Istio sidecar (an Envoy with the meshwhy filter).
    pub injected: bool,
    /// The last `stale_replicas` replicas see generation 1 of the mesh (their xDS is stale).
    pub stale_replicas: usize,
    /// Config generation the workload was deployed in.
    pub generation: u32,
    /// The meshwhy filter's `success_sample_rate` in this workload's sidecars.
    pub success_sample_rate: f64,
}

impl Workload {
    /// One injected replica of `name` labelled `app: <app>`, service account `<app>`.
    pub fn new(namespace: &str, name: &str, app: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            service_account: app.to_owned(),
            labels: labels(&[("app", app)]),
            replicas: 1,
            injected: true,
            stale_replicas: 0,
            generation: 1,
            success_sample_rate: 0.0,
        }
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets the replica count.
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// No sidecar.
    pub fn not_injected(mut self) -> Self {
        self.injected = false;
        self
    }

    /// The last `n` replicas run a stale config (generation 1).
    pub fn stale_replicas(mut self, n: usize) -> Self {
        self.stale_replicas = n;
        self
    }

    /// Deployed in config generation `g`.
    pub fn generation(mut self, g: u32) -> Self {
        self.generation = g;
        self
    }

    /// Records this fraction of successes in full.
    pub fn sample_successes(mut self, rate: f64) -> Self {
        self.success_sample_rate = rate;
        self
    }

    /// Pod name of replica `index`, deterministic and Kubernetes-shaped
    /// (`<workload>-<template hash>-<suffix>`).
    pub fn pod_name(&self, index: usize) -> String {
        let hash = stable_hash(&self.name);
        let suffix = stable_hash(&format!("{}/{index}", self.name));
        format!(
            "{}-{:09x}-{}",
            self.name,
            hash & 0xf_ffff_ffff,
            pod_suffix(suffix, 5)
        )
    }

    /// Whether replica `index` runs a stale config.
    pub fn is_stale(&self, index: usize) -> bool {
        index >= self.replicas.saturating_sub(self.stale_replicas)
    }

    /// `istio.workload` endpoint metadata: `name;ns;canonical-svc;rev;cluster`.
    pub fn istio_workload(&self) -> String {
        let canonical = self
            .labels
            .get("app")
            .cloned()
            .unwrap_or_else(|| self.name.clone());
        let revision = self
            .labels
            .get("version")
            .cloned()
            .unwrap_or_else(|| "latest".to_owned());
        format!(
            "{};{};{canonical};{revision};{CLUSTER_ID}",
            self.name, self.namespace
        )
    }
}

/// A path match of a VirtualService HTTP route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

/// One `route[]` destination of a VirtualService HTTP route.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Short name or FQDN.
    pub host: String,
    pub subset: Option<String>,
    /// Weight in percent (meaningful with several destinations).
    pub weight: u32,
}

/// A VirtualService `retries` block.
#[derive(Debug, Clone)]
pub struct Retries {
    pub attempts: u32,
    pub retry_on: String,
    pub per_try_timeout: Option<Duration>,
}

/// One `http[]` entry of a VirtualService.
#[derive(Debug, Clone)]
pub struct HttpRoute {
    /// `http[].name`: the Envoy route entry name.
    pub name: String,
    /// `match[].uri`; empty = match everything.
    pub matches: Vec<PathMatch>,
    pub destinations: Vec<Destination>,
    /// `rewrite.uri`.
    pub rewrite_uri: Option<String>,
    pub timeout: Option<Duration>,
    pub retries: Option<Retries>,
}

impl HttpRoute {
    /// A route named `name` matching everything, to `host` (no subset).
    pub fn new(name: &str, host: &str) -> Self {
        Self {
            name: name.to_owned(),
            matches: Vec::new(),
            destinations: vec![Destination {
                host: host.to_owned(),
                subset: None,
                weight: 100,
            }],
            rewrite_uri: None,
            timeout: None,
            retries: None,
        }
    }

    /// A route named `name` splitting traffic over subsets of `host` by weight.
    pub fn weighted(name: &str, host: &str, split: &[(&str, u32)]) -> Self {
        let mut route = Self::new(name, host);
        route.destinations = split
            .iter()
            .map(|(subset, weight)| Destination {
                host: host.to_owned(),
                subset: Some((*subset).to_owned()),
                weight: *weight,
            })
            .collect();
        route
    }

    /// Only requests whose path is exactly `path`.
    pub fn exact(mut self, path: &str) -> Self {
        self.matches.push(PathMatch::Exact(path.to_owned()));
        self
    }

    /// Only requests whose path starts with `prefix`.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.matches.push(PathMatch::Prefix(prefix.to_owned()));
        self
    }

    /// All traffic to `subset`.
    pub fn subset(mut self, subset: &str) -> Self {
        for destination in &mut self.destinations {
            destination.subset = Some(subset.to_owned());
        }
        self
    }

    /// `rewrite.uri`.
    pub fn rewrite(mut self, uri: &str) -> Self {
        self.rewrite_uri = Some(uri.to_owned());
        self
    }

    /// `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// `retries`.
    pub fn retries(mut self, attempts: u32, retry_on: &str) -> Self {
        self.retries = Some(Retries {
            attempts,
            retry_on: retry_on.to_owned(),
            per_try_timeout: None,
        });
        self
    }
}

/// A VirtualService for one host.
#[derive(Debug, Clone)]
pub struct VirtualService {
    pub name: String,
    pub namespace: String,
    /// Short name or FQDN.
    pub host: String,
    pub http: Vec<HttpRoute>,
    pub generation: u32,
}

impl VirtualService {
    /// VirtualService `name` for `host`.
    pub fn new(namespace: &str, name: &str, host: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            host: host.to_owned(),
            http: Vec::new(),
            generation: 1,
        }
    }

    /// Appends an `http[]` route.
    pub fn route(mut self, route: HttpRoute) -> Self {
        self.http.push(route);
        self
    }

    /// Applied in config generation `g`.
    pub fn generation(mut self, g: u32) -> Self {
        self.generation = g;
        self
    }

    /// Route metadata `istio.config`.
    pub fn provenance(&self) -> String {
        vs_provenance(&self.namespace, &self.name)
    }
}

/// A DestinationRule `subsets[]` entry.
#[derive(Debug, Clone)]
pub struct Subset {
    pub name: String,
    pub labels: Labels,
}

/// `trafficPolicy.connectionPool`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionPool {
    /// `tcp.maxConnections`.
    pub max_connections: u32,
    /// `http.http1MaxPendingRequests`.
    pub http1_max_pending_requests: u32,
    /// `http.http2MaxRequests`.
    pub http2_max_requests: u32,
}

/// `trafficPolicy.outlierDetection`.
#[derive(Debug, Clone, Copy)]
pub struct OutlierDetection {
    pub consecutive_5xx_errors: u32,
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_percent: u32,
}

/// `trafficPolicy.tls.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTls {
    /// Plaintext towards the host, even to sidecars (overrides auto-mTLS).
    Disable,
    /// Istio mTLS always.
    IstioMutual,
}

/// A DestinationRule for one host.
#[derive(Debug, Clone)]
pub struct DestinationRule {
    pub name: String,
    pub namespace: String,
    /// Short name or FQDN.
    pub host: String,
    pub subsets: Vec<Subset>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTls>,
    pub generation: u32,
}

impl DestinationRule {
    /// DestinationRule `name` for `host`, no traffic policy.
    pub fn new(namespace: &str, name: &str, host: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            host: host.to_owned(),
            subsets: Vec::new(),
            connection_pool: None,
            outlier_detection: None,
            tls: None,
            generation: 1,
        }
    }

    /// Adds subset `name` selecting `version: <version>`.
    pub fn subset(mut self, name: &str, version: &str) -> Self {
        self.subsets.push(Subset {
            name: name.to_owned(),
            labels: labels(&[("version", version)]),
        });
        self
    }

    /// `trafficPolicy.connectionPool`.
    pub fn connection_pool(mut self, pool: ConnectionPool) -> Self {
        self.connection_pool = Some(pool);
        self
    }

    /// `trafficPolicy.outlierDetection`.
    pub fn outlier_detection(mut self, outlier: OutlierDetection) -> Self {
        self.outlier_detection = Some(outlier);
        self
    }

    /// `trafficPolicy.tls.mode`.
    pub fn tls(mut self, mode: ClientTls) -> Self {
        self.tls = Some(mode);
        self
    }

    /// Applied in config generation `g`.
    pub fn generation(mut self, g: u32) -> Self {
        self.generation = g;
        self
    }

    /// Cluster metadata `istio.config`.
    pub fn provenance(&self) -> String {
        dr_provenance(&self.namespace, &self.name)
    }
}

/// One `rules[]` entry of a DENY AuthorizationPolicy.
#[derive(Debug, Clone, Default)]
pub struct AuthzRule {
    /// `to.operation.paths`; a trailing `*` is a prefix match. Empty = any path.
    pub paths: Vec<String>,
    /// `from.source.principals` (`cluster.local/ns/<ns>/sa/<sa>`). Empty = anyone.
    pub principals: Vec<String>,
}

/// A DENY AuthorizationPolicy (the server sidecar enforces it).
#[derive(Debug, Clone)]
pub struct AuthorizationPolicy {
    pub name: String,
    pub namespace: String,
    /// Workload selector; empty = every workload of the namespace.
    pub selector: Labels,
    pub rules: Vec<AuthzRule>,
}

impl AuthorizationPolicy {
    /// A DENY policy `name` for the workloads with `app: <app>`.
    pub fn deny(namespace: &str, name: &str, app: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            selector: labels(&[("app", app)]),
            rules: Vec::new(),
        }
    }

    /// Adds a rule matching requests to these paths.
    pub fn deny_paths(mut self, paths: &[&str]) -> Self {
        self.rules.push(AuthzRule {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            principals: Vec::new(),
        });
        self
    }
}

/// The whole mesh: what istiod knows.
#[derive(Debug, Clone, Default)]
pub struct Mesh {
    pub services: Vec<Service>,
    pub workloads: Vec<Workload>,
    pub virtual_services: Vec<VirtualService>,
    pub destination_rules: Vec<DestinationRule>,
    pub authorization_policies: Vec<AuthorizationPolicy>,
    pub outbound_policy: OutboundPolicy,
    pub peer_authentication: PeerAuthentication,
}

impl Mesh {
    /// An empty mesh (ALLOW_ANY, PERMISSIVE).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a Service.
    pub fn service(mut self, service: Service) -> Self {
        self.services.push(service);
        self
    }

    /// Adds a workload (Deployment).
    pub fn workload(mut self, workload: Workload) -> Self {
        self.workloads.push(workload);
        self
    }

    /// Adds a VirtualService.
    pub fn virtual_service(mut self, vs: VirtualService) -> Self {
        self.virtual_services.push(vs);
        self
    }

    /// Adds a DestinationRule.
    pub fn destination_rule(mut self, dr: DestinationRule) -> Self {
        self.destination_rules.push(dr);
        self
    }

    /// Adds an AuthorizationPolicy.
    pub fn authorization_policy(mut self, policy: AuthorizationPolicy) -> Self {
        self.authorization_policies.push(policy);
        self
    }

    /// `outboundTrafficPolicy.mode: REGISTRY_ONLY`.
    pub fn registry_only(mut self) -> Self {
        self.outbound_policy = OutboundPolicy::RegistryOnly;
        self
    }

    /// A mesh-wide STRICT PeerAuthentication.
    pub fn strict_mtls(mut self) -> Self {
        self.peer_authentication = PeerAuthentication::Strict;
        self
    }

    /// The latest config generation.
    pub fn generation(&self) -> u32 {
        let vs = self.virtual_services.iter().map(|r| r.generation);
        let dr = self.destination_rules.iter().map(|r| r.generation);
        let wl = self.workloads.iter().map(|w| w.generation);
        vs.chain(dr).chain(wl).max().unwrap_or(1)
    }

    /// The mesh as a proxy synced to `generation` sees it.
    pub fn view(&self, generation: u32) -> Mesh {
        let mut view = self.clone();
        view.virtual_services.retain(|r| r.generation <= generation);
        view.destination_rules
            .retain(|r| r.generation <= generation);
        view.workloads.retain(|w| w.generation <= generation);
        view
    }

    /// The service called `name`.
    pub fn find_service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The service with this FQDN.
    pub fn service_by_host(&self, host: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.host() == host)
    }

    /// The workloads a service selects.
    pub fn backends<'a>(&'a self, service: &'a Service) -> impl Iterator<Item = &'a Workload> {
        self.workloads.iter().filter(move |w| {
            w.namespace == service.namespace && selects(&service.selector, &w.labels)
        })
    }

    /// The VirtualService for a host, if any.
    pub fn virtual_service_for(&self, host: &str) -> Option<&VirtualService> {
        self.virtual_services
            .iter()
            .find(|vs| resolve_host(&vs.host, &vs.namespace) == host)
    }

    /// The DestinationRule for a host, if any.
    pub fn destination_rule_for(&self, host: &str) -> Option<&DestinationRule> {
        self.destination_rules
            .iter()
            .find(|dr| resolve_host(&dr.host, &dr.namespace) == host)
    }

    /// Whether a workload serves some service (it gets an inbound listener and starts first).
    pub fn is_server(&self, workload: &Workload) -> bool {
        self.services
            .iter()
            .any(|s| s.namespace == workload.namespace && selects(&s.selector, &workload.labels))
    }

    /// The services a workload serves.
    pub fn served_by<'a>(&'a self, workload: &'a Workload) -> impl Iterator<Item = &'a Service> {
        self.services.iter().filter(move |s| {
            s.namespace == workload.namespace && selects(&s.selector, &workload.labels)
        })
    }
}

fn stable_hash(text: &str) -> u64 {
    // FNV-1a: deterministic across runs and platforms (std's hasher is randomly keyed).
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn pod_suffix(mut value: u64, digits: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    for _ in 0..digits {
        let i = (value % ALPHABET.len() as u64) as usize;
        out.push(char::from(ALPHABET.get(i).copied().unwrap_or(b'x')));
        value /= ALPHABET.len() as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_istiod() {
        assert_eq!(
            cluster_name(80, "v1", &fqdn("reviews", "bookinfo")),
            "outbound|80|v1|reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(inbound_cluster_name(80), "inbound|80||");
        assert_eq!(
            rbac_policy_id("shop", "deny-admin", 0),
            "ns[shop]-policy[deny-admin]-rule[0]"
        );
        let workload = Workload::new("bookinfo", "reviews-v1", "reviews").label("version", "v1");
        assert_eq!(
            workload.istio_workload(),
            "reviews-v1;bookinfo;reviews;v1;Kubernetes"
        );
        let pod = workload.pod_name(0);
        assert!(pod.starts_with("reviews-v1-"), "{pod}");
        assert_ne!(pod, workload.pod_name(1));
        assert_eq!(pod, workload.pod_name(0));
    }

    #[test]
    fn stale_replicas_see_generation_one() {
        let mesh = Mesh::new()
            .workload(Workload::new("ns", "a", "a").replicas(5).stale_replicas(2))
            .workload(Workload::new("ns", "b", "b").generation(2))
            .virtual_service(VirtualService::new("ns", "b", "b").generation(2));
        assert_eq!(mesh.generation(), 2);
        let a = &mesh.workloads[0];
        assert_eq!(
            (0..5).map(|i| a.is_stale(i)).collect::<Vec<_>>(),
            [false, false, false, true, true]
        );
        let old = mesh.view(1);
        assert_eq!(old.workloads.len(), 1);
        assert!(old.virtual_services.is_empty());
    }
}
