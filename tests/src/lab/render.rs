//! Renders one pod's sidecar as an Envoy bootstrap shaped like istiod's output: the node
//! identity and metadata, the outbound listener and clusters ([`outbound`]), the inbound listener
//! with mTLS and RBAC for pods that serve a Service ([`inbound`]), and the meshwhy filter and
//! collector cluster taken from the README's snippets in `deploy/envoy/`.
//!
//! The bootstrap is written as JSON (which is YAML): built with `serde_json`, so nesting is never
//! a matter of indentation. Static resources stand in for xDS: clusters are `STATIC` where
//! istiod would use EDS, with the same names, metadata and endpoints.

pub mod inbound;
pub mod outbound;
pub mod tls;

use crate::{
    access_log,
    lab::{
        model::{ISTIO_VERSION, Mesh, Workload},
        pki::Pki,
    },
    scenario::{COLLECTOR_CLUSTER_SNIPPET, HTTP_FILTER_SNIPPET},
};
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::{collections::BTreeMap, net::SocketAddr};

/// Name of every sidecar's outbound listener for `port` (istiod: `0.0.0.0_<port>`).
pub fn outbound_listener_name(port: u16) -> String {
    format!("0.0.0.0_{port}")
}

/// Name of the inbound listener (istiod: `virtualInbound`).
pub const INBOUND_LISTENER: &str = "virtualInbound";

/// Where each started pod is reached: its sidecar's inbound listener when injected, else its
/// app directly. Pods missing here have no endpoint yet (not started).
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    by_pod: BTreeMap<String, SocketAddr>,
}

impl Endpoints {
    /// Records where pod `pod` is reached.
    pub fn insert(&mut self, pod: &str, addr: SocketAddr) {
        self.by_pod.insert(pod.to_owned(), addr);
    }

    /// Where pod `pod` is reached.
    pub fn get(&self, pod: &str) -> Option<SocketAddr> {
        self.by_pod.get(pod).copied()
    }
}

/// Everything one pod's bootstrap is made from.
#[derive(Debug, Clone, Copy)]
pub struct PodInput<'a> {
    /// The mesh as this pod's xDS holds it (a stale replica gets an old view).
    pub view: &'a Mesh,
    pub workload: &'a Workload,
    pub pod: &'a str,
    /// The pod IP (its sidecar's listeners bind to it).
    pub ip: &'a str,
    /// The pod's app, for pods that serve a Service.
    pub app: Option<SocketAddr>,
    pub endpoints: &'a Endpoints,
    pub pki: &'a Pki,
    /// Where the meshwhy collector listens.
    pub collector: SocketAddr,
    /// The filter module.
    pub wasm: &'a str,
}

/// The bootstrap of one injected pod.
pub fn bootstrap(input: &PodInput<'_>) -> Result<String> {
    let (meshwhy_filter, collector_cluster) = snippets(input)?;
    let mut listeners = outbound::listeners(input, &meshwhy_filter)?;
    let mut clusters = vec![collector_cluster];
    clusters.extend(outbound::clusters(input)?);
    if let Some(app) = input.app {
        listeners.extend(inbound::listener(input, &meshwhy_filter)?);
        clusters.extend(inbound::clusters(input, app));
    }
    let config = json!({
        "node": node(input),
        "admin": {"address": socket(input.ip, 0)},
        "static_resources": {"listeners": listeners, "clusters": clusters},
        // Connections to upstreams leave from the pod IP, as they would in a cluster.
        "cluster_manager": {
            "upstream_bind_config": {"source_address": socket(input.ip, 0)["socket_address"]},
        },
    });
    Ok(serde_json::to_string_pretty(&config)?)
}

/// istiod's node identity: id `sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local` and metadata.
pub fn node(input: &PodInput<'_>) -> Value {
    let workload = input.workload;
    let ns = &workload.namespace;
    let app = workload.labels.get("app").unwrap_or(&workload.name);
    json!({
        "id": node_id(input.ip, input.pod, ns),
        "cluster": format!("{app}.{ns}"),
        "metadata": {
            "NAME": input.pod,
            "NAMESPACE": ns,
            "WORKLOAD_NAME": workload.name,
            "LABELS": workload.labels,
            "ISTIO_VERSION": ISTIO_VERSION,
            "CLUSTER_ID": crate::lab::model::CLUSTER_ID,
            "MESH_ID": crate::lab::model::MESH_ID,
            "SERVICE_ACCOUNT": workload.service_account,
        },
    })
}

/// `sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`.
pub fn node_id(ip: &str, pod: &str, namespace: &str) -> String {
    format!("sidecar~{ip}~{pod}.{namespace}~{namespace}.svc.cluster.local")
}

/// The README's filter entry and collector cluster with the module path, the collector address
/// and this workload's plugin configuration filled in (the same substitutions as
/// [`crate::scenario::snippets`]), parsed.
fn snippets(input: &PodInput<'_>) -> Result<(Value, Value)> {
    let mut config = json!({"collector_cluster": "meshwhy-collector", "flush_interval_ms": 100});
    if input.workload.success_sample_rate > 0.0 {
        config["success_sample_rate"] = json!(input.workload.success_sample_rate);
    }
    let filter = HTTP_FILTER_SNIPPET
        .replace("/etc/envoy/meshwhy_filter.wasm", input.wasm)
        .replace(
            r#"{"collector_cluster": "meshwhy-collector"}"#,
            &config.to_string(),
        );
    let cluster = COLLECTOR_CLUSTER_SNIPPET
        .replace(
            "meshwhy-collector.meshwhy.svc.cluster.local",
            &input.collector.ip().to_string(),
        )
        .replace(
            "port_value: 9900",
            &format!("port_value: {}", input.collector.port()),
        );
    Ok((first_item(&filter)?, first_item(&cluster)?))
}

fn first_item(yaml: &str) -> Result<Value> {
    let list: Vec<Value> = serde_yaml::from_str(yaml).context("parse a deploy/envoy snippet")?;
    list.into_iter()
        .next()
        .context("a deploy/envoy snippet is an empty list")
}

/// `{socket_address: {address, port_value}}`.
pub fn socket(ip: &str, port: u16) -> Value {
    json!({"socket_address": {"address": ip, "port_value": port}})
}

/// The file access log every lab HCM (and the inbound listener) writes: the oracle format.
pub fn access_log() -> Result<Value> {
    let format: Value =
        serde_yaml::from_str(access_log::JSON_FORMAT).context("parse the access log format")?;
    Ok(json!({
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": "{ACCESS_LOG}",
            "log_format": {"json_format": format},
        },
    }))
}

/// An HTTP connection manager as istiod configures sidecars (the parts Envoy 1.40 without
/// Istio's own extensions can load).
pub fn http_connection_manager(
    stat_prefix: &str,
    route_config: Value,
    http_filters: Vec<Value>,
    extra: Value,
) -> Result<Value> {
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "route_config": route_config,
        "http_filters": http_filters,
        "access_log": [access_log()?],
        "use_remote_address": false,
        "preserve_external_request_id": true,
        "normalize_path": true,
        "stream_idle_timeout": "0s",
        "upgrade_configs": [{"upgrade_type": "websocket"}],
    });
    if let (Some(hcm), Some(extra)) = (hcm.as_object_mut(), extra.as_object()) {
        hcm.extend(extra.clone());
    }
    Ok(json!({"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}))
}

/// The router, always last.
pub fn router() -> Value {
    json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    })
}

/// istiod's default circuit-breaker thresholds (effectively unlimited) unless a DestinationRule
/// connection pool sets them.
pub fn default_thresholds() -> Value {
    json!({
        "max_connections": 4_294_967_295u64,
        "max_pending_requests": 4_294_967_295u64,
        "max_requests": 4_294_967_295u64,
        "max_retries": 4_294_967_295u64,
        "track_remaining": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::model::{
        AuthorizationPolicy, DestinationRule, HttpRoute, Service, VirtualService,
    };

    fn mesh() -> Mesh {
        let ns = "bookinfo";
        Mesh::new()
            .registry_only()
            .service(Service::new(ns, "reviews"))
            .workload(Workload::new(ns, "reviews-v1", "reviews").label("version", "v1"))
            .workload(Workload::new(ns, "productpage-v1", "productpage"))
            .destination_rule(DestinationRule::new(ns, "reviews", "reviews").subset("v1", "v1"))
            .virtual_service(VirtualService::new(ns, "reviews", "reviews").route(
                HttpRoute::weighted("split", "reviews", &[("v1", 90), ("v2", 10)]),
            ))
            .authorization_policy(
                AuthorizationPolicy::deny(ns, "deny-admin", "reviews").deny_paths(&["/admin*"]),
            )
    }

    fn render(mesh: &Mesh, workload: usize, app: Option<SocketAddr>) -> Value {
        let pki = Pki::new().expect("a CA");
        let mut endpoints = Endpoints::default();
        endpoints.insert(
            &mesh.workloads[0].pod_name(0),
            "127.42.0.1:15006".parse().expect("an address"),
        );
        let workload = &mesh.workloads[workload];
        let pod = workload.pod_name(0);
        let config = bootstrap(&PodInput {
            view: mesh,
            workload,
            pod: &pod,
            ip: "127.42.0.9",
            app,
            endpoints: &endpoints,
            pki: &pki,
            collector: "127.0.0.1:9900".parse().expect("an address"),
            wasm: "filter/meshwhy_filter.wasm",
        })
        .expect("a bootstrap");
        serde_json::from_str(&config).expect("JSON")
    }

    fn names(list: &Value) -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["name"].as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn client_sidecar_is_shaped_like_istiod_output() {
        let mesh = mesh();
        let config = render(&mesh, 1, None);
        let pod = mesh.workloads[1].pod_name(0);
        assert_eq!(
            config["node"]["id"],
            format!("sidecar~127.42.0.9~{pod}.bookinfo~bookinfo.svc.cluster.local")
        );
        for key in [
            "NAME",
            "NAMESPACE",
            "WORKLOAD_NAME",
            "LABELS",
            "ISTIO_VERSION",
            "CLUSTER_ID",
            "MESH_ID",
            "SERVICE_ACCOUNT",
        ] {
            assert!(!config["node"]["metadata"][key].is_null(), "{key}");
        }
        let listeners = &config["static_resources"]["listeners"];
        assert_eq!(names(listeners), ["0.0.0.0_80"]);
        let hcm = &listeners[0]["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(
            names(&hcm["http_filters"]),
            ["meshwhy", "envoy.filters.http.router"]
        );
        let route_config = &hcm["route_config"];
        assert_eq!(route_config["name"], "80");
        let vhosts = &route_config["virtual_hosts"];
        assert_eq!(
            names(vhosts),
            ["reviews.bookinfo.svc.cluster.local:80", "block_all"]
        );
        let route = &vhosts[0]["routes"][0];
        assert_eq!(route["name"], "split");
        assert_eq!(
            route["metadata"]["filter_metadata"]["istio"]["config"],
            "/apis/networking.istio.io/v1/namespaces/bookinfo/virtual-service/reviews"
        );
        assert_eq!(
            names(&route["route"]["weighted_clusters"]["clusters"]),
            [
                "outbound|80|v1|reviews.bookinfo.svc.cluster.local",
                "outbound|80|v2|reviews.bookinfo.svc.cluster.local"
            ]
        );
        assert_eq!(
            route["route"]["retry_policy"]["retry_on"],
            "connect-failure,refused-stream,unavailable,cancelled"
        );
        assert_eq!(vhosts[1]["routes"][0]["direct_response"]["status"], 502);

        let clusters = &config["static_resources"]["clusters"];
        assert_eq!(
            names(clusters),
            [
                "meshwhy-collector",
                "outbound|80||reviews.bookinfo.svc.cluster.local",
                "outbound|80|v1|reviews.bookinfo.svc.cluster.local",
                "BlackHoleCluster",
                "PassthroughCluster"
            ]
        );
        let v1 = &clusters[2];
        let istio = &v1["metadata"]["filter_metadata"]["istio"];
        assert_eq!(
            istio["config"],
            "/apis/networking.istio.io/v1/namespaces/bookinfo/destination-rule/reviews"
        );
        assert_eq!(istio["subset"], "v1");
        let endpoint = &v1["load_assignment"]["endpoints"][0]["lb_endpoints"][0];
        let metadata = &endpoint["metadata"]["filter_metadata"];
        assert_eq!(metadata["envoy.transport_socket_match"]["tlsMode"], "istio");
        assert_eq!(
            metadata["istio"]["workload"],
            "reviews-v1;bookinfo;reviews;v1;Kubernetes"
        );
        assert_eq!(
            names(&v1["transport_socket_matches"]),
            ["tlsMode-istio", "tlsMode-disabled"]
        );
        let tls = &v1["transport_socket_matches"][0]["transport_socket"]["typed_config"];
        assert_eq!(
            tls["sni"],
            "outbound_.80_.v1_.reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(
            tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]
                ["exact"],
            "spiffe://cluster.local/ns/bookinfo/sa/reviews"
        );
    }

    #[test]
    fn server_sidecar_has_inbound_mtls_and_rbac() {
        let mesh = mesh().strict_mtls();
        let app = "127.0.0.1:8080".parse().expect("an address");
        let config = render(&mesh, 0, Some(app));
        let listeners = &config["static_resources"]["listeners"];
        assert_eq!(names(listeners), ["0.0.0.0_80", INBOUND_LISTENER]);
        let inbound = &listeners[1];
        assert_eq!(inbound["traffic_direction"], "INBOUND");
        assert_eq!(
            names(&inbound["filter_chains"]),
            ["0.0.0.0_80"],
            "STRICT: mTLS only"
        );
        let chain = &inbound["filter_chains"][0];
        assert_eq!(
            chain["transport_socket"]["typed_config"]["require_client_certificate"],
            true
        );
        let hcm = &chain["filters"][0]["typed_config"];
        assert_eq!(
            names(&hcm["http_filters"]),
            [
                "envoy.filters.http.rbac",
                "meshwhy",
                "envoy.filters.http.router"
            ]
        );
        let policies = &hcm["http_filters"][0]["typed_config"]["rules"]["policies"];
        assert!(policies["ns[bookinfo]-policy[deny-admin]-rule[0]"].is_object());
        assert_eq!(hcm["route_config"]["name"], "inbound|80||");
        let vhost = &hcm["route_config"]["virtual_hosts"][0];
        assert_eq!(vhost["name"], "inbound|http|80");
        assert_eq!(vhost["routes"][0]["route"]["cluster"], "inbound|80||");
        assert!(names(&config["static_resources"]["clusters"]).contains(&"inbound|80||".into()));
    }
}
