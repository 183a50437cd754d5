//! The outbound half of a sidecar, as istiod generates it: one listener per service port (the
//! app sends to it with Host `<svc>.<ns>.svc.cluster.local:<port>`, as if iptables had
//! redirected it), route configuration `<port>` with a virtual host `<fqdn>:<port>` per Service,
//! route entries named after the VirtualService's `http[].name` (or `default`) carrying
//! `istio.config` metadata and Istio's default retry policy, the `allow_any`/`block_all`
//! catch-all, and clusters `outbound|<port>|<subset>|<fqdn>` with DestinationRule metadata,
//! policies and auto-mTLS transport socket matches.

use super::{PodInput, default_thresholds, http_connection_manager, router, socket, tls};
use crate::lab::model::{
    ClientTls, DestinationRule, HttpRoute, Mesh, OutboundPolicy, PathMatch, Service, Subset,
    cluster_name, resolve_host, selects, vhost_name,
};
use anyhow::Result;
use serde_json::{Value, json};
use std::{collections::BTreeSet, time::Duration};

/// The Black hole cluster REGISTRY_ONLY sends unknown TCP traffic to.
pub const BLACK_HOLE_CLUSTER: &str = "BlackHoleCluster";
/// Where ALLOW_ANY sends unknown hosts.
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";

/// One listener per service port known to the pod (80 always, the port unknown hosts use).
pub fn listeners(input: &PodInput<'_>, meshwhy: &Value) -> Result<Vec<Value>> {
    let mut ports: BTreeSet<u16> = input.view.services.iter().map(|s| s.port).collect();
    ports.insert(80);
    ports
        .into_iter()
        .map(|port| {
            let hcm = http_connection_manager(
                &format!("outbound_0.0.0.0_{port}"),
                route_config(input.view, port, &input.workload.namespace),
                vec![meshwhy.clone(), router()],
                json!({}),
            )?;
            Ok(json!({
                "name": super::outbound_listener_name(port),
                "address": socket(input.ip, 0),
                "traffic_direction": "OUTBOUND",
                "filter_chains": [{"filters": [hcm]}],
            }))
        })
        .collect()
}

/// Route configuration `<port>`: a virtual host per Service on that port, then the catch-all.
pub fn route_config(view: &Mesh, port: u16, own_namespace: &str) -> Value {
    let mut vhosts: Vec<Value> = view
        .services
        .iter()
        .filter(|s| s.port == port)
        .map(|s| virtual_host(view, s, own_namespace))
        .collect();
    vhosts.push(match view.outbound_policy {
        OutboundPolicy::AllowAny => json!({
            "name": "allow_any",
            "domains": ["*"],
            "routes": [{
                "name": "allow_any",
                "match": {"prefix": "/"},
                "route": {"cluster": PASSTHROUGH_CLUSTER, "timeout": "0s", "max_grpc_timeout": "0s"},
            }],
            "include_request_attempt_count": true,
        }),
        OutboundPolicy::RegistryOnly => json!({
            "name": "block_all",
            "domains": ["*"],
            "routes": [{
                "name": "block_all",
                "match": {"prefix": "/"},
                "direct_response": {"status": 502},
            }],
            "include_request_attempt_count": true,
        }),
    });
    json!({"name": port.to_string(), "validate_clusters": false, "virtual_hosts": vhosts})
}

fn virtual_host(view: &Mesh, service: &Service, own_namespace: &str) -> Value {
    let host = service.host();
    let port = service.port;
    let (name, ns) = (&service.name, &service.namespace);
    let mut domains = vec![
        host.clone(),
        format!("{host}:{port}"),
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}.svc:{port}"),
        format!("{name}.{ns}"),
        format!("{name}.{ns}:{port}"),
    ];
    if ns == own_namespace {
        domains.push(name.clone());
        domains.push(format!("{name}:{port}"));
    }
    let routes: Vec<Value> = match view.virtual_service_for(&host) {
        Some(vs) => vs
            .http
            .iter()
            .flat_map(|http| {
                let host = host.clone();
                let matches = if http.matches.is_empty() {
                    vec![PathMatch::Prefix("/".to_owned())]
                } else {
                    http.matches.clone()
                };
                matches.into_iter().map(move |m| {
                    json!({
                        "name": http.name,
                        "match": path_match(&m),
                        "route": route_action(view, service, Some((http, &vs.namespace))),
                        "metadata": {"filter_metadata": {"istio": {"config": vs.provenance()}}},
                        "decorator": {"operation": format!("{host}:{port}/*")},
                    })
                })
            })
            .collect(),
        None => vec![json!({
            "name": "default",
            "match": {"prefix": "/"},
            "route": route_action(view, service, None),
            "decorator": {"operation": format!("{host}:{port}/*")},
        })],
    };
    json!({
        "name": vhost_name(&host, port),
        "domains": domains,
        "routes": routes,
        "include_request_attempt_count": true,
    })
}

fn path_match(m: &PathMatch) -> Value {
    match m {
        PathMatch::Exact(path) => json!({"path": path}),
        PathMatch::Prefix(prefix) => json!({"prefix": prefix}),
    }
}

fn duration(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// Istio's default outbound retry policy (1.24+: 503 excluded).
pub fn default_retry_policy() -> Value {
    retry_policy(
        "connect-failure,refused-stream,unavailable,cancelled",
        2,
        None,
    )
}

fn retry_policy(retry_on: &str, retries: u32, per_try_timeout: Option<Duration>) -> Value {
    let mut policy = json!({
        "retry_on": retry_on,
        "num_retries": retries,
        "retry_host_predicate": [{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
        }],
        "host_selection_retry_max_attempts": "5",
    });
    if let Some(timeout) = per_try_timeout {
        policy["per_try_timeout"] = json!(duration(timeout));
    }
    policy
}

fn route_action(view: &Mesh, service: &Service, http: Option<(&HttpRoute, &String)>) -> Value {
    // istiod: no timeout unless the VirtualService sets one; with none, gRPC requests may not
    // extend it through `grpc-timeout` either (`max_grpc_timeout: 0s`).
    let mut action = json!({"timeout": "0s", "max_grpc_timeout": "0s"});
    let Some((http, vs_namespace)) = http else {
        action["cluster"] = json!(cluster_name(service.port, "", &service.host()));
        action["retry_policy"] = default_retry_policy();
        return action;
    };
    let targets: Vec<(String, u32)> = http
        .destinations
        .iter()
        .map(|d| {
            let host = resolve_host(&d.host, vs_namespace);
            let port = view.service_by_host(&host).map_or(service.port, |s| s.port);
            let subset = d.subset.as_deref().unwrap_or("");
            (cluster_name(port, subset, &host), d.weight)
        })
        .collect();
    match targets.as_slice() {
        [(cluster, _)] => action["cluster"] = json!(cluster),
        _ => {
            action["weighted_clusters"] = json!({
                "clusters": targets
                    .iter()
                    .map(|(name, weight)| json!({"name": name, "weight": weight}))
                    .collect::<Vec<_>>(),
            });
        }
    }
    if let Some(timeout) = http.timeout {
        action["timeout"] = json!(duration(timeout));
        if let Some(action) = action.as_object_mut() {
            action.remove("max_grpc_timeout");
        }
    }
    match &http.retries {
        Some(retries) if retries.attempts == 0 => {}
        Some(retries) => {
            action["retry_policy"] =
                retry_policy(&retries.retry_on, retries.attempts, retries.per_try_timeout);
        }
        None => action["retry_policy"] = default_retry_policy(),
    }
    if let Some(uri) = &http.rewrite_uri {
        action["prefix_rewrite"] = json!(uri);
    }
    action
}

/// The outbound clusters: per Service the unsubsetted cluster and one per DestinationRule
/// subset, then BlackHoleCluster and PassthroughCluster.
pub fn clusters(input: &PodInput<'_>) -> Result<Vec<Value>> {
    let mut clusters = Vec::new();
    for service in &input.view.services {
        let dr = input.view.destination_rule_for(&service.host());
        clusters.push(outbound_cluster(input, service, None, dr)?);
        for subset in dr.iter().flat_map(|dr| dr.subsets.iter()) {
            clusters.push(outbound_cluster(input, service, Some(subset), dr)?);
        }
    }
    clusters.push(json!({
        "name": BLACK_HOLE_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "10s",
        "load_assignment": {"cluster_name": BLACK_HOLE_CLUSTER},
    }));
    clusters.push(json!({
        "name": PASSTHROUGH_CLUSTER,
        "type": "ORIGINAL_DST",
        "connect_timeout": "10s",
        "lb_policy": "CLUSTER_PROVIDED",
        "circuit_breakers": {"thresholds": [default_thresholds()]},
    }));
    Ok(clusters)
}

fn outbound_cluster(
    input: &PodInput<'_>,
    service: &Service,
    subset: Option<&Subset>,
    dr: Option<&DestinationRule>,
) -> Result<Value> {
    let host = service.host();
    let subset_name = subset.map_or("", |s| s.name.as_str());
    let name = cluster_name(service.port, subset_name, &host);

    let mut endpoints = Vec::new();
    let mut server_ids = BTreeSet::new();
    for workload in input.view.backends(service) {
        if subset.is_some_and(|s| !selects(&s.labels, &workload.labels)) {
            continue;
        }
        for index in 0..workload.replicas {
            let Some(addr) = input.endpoints.get(&workload.pod_name(index)) else {
                continue;
            };
            let mut metadata = json!({"istio": {"workload": workload.istio_workload()}});
            if workload.injected {
                server_ids.insert(crate::lab::pki::spiffe_id(
                    &workload.namespace,
                    &workload.service_account,
                ));
                metadata["envoy.transport_socket_match"] = json!({"tlsMode": "istio"});
            }
            endpoints.push(json!({
                "endpoint": {"address": socket(&addr.ip().to_string(), addr.port())},
                "metadata": {"filter_metadata": metadata},
                "load_balancing_weight": 1,
            }));
        }
    }

    let mut istio = json!({
        "services": [{"host": host, "name": service.name, "namespace": service.namespace}],
    });
    if let Some(dr) = dr {
        istio["config"] = json!(dr.provenance());
    }
    if subset.is_some() {
        istio["subset"] = json!(subset_name);
    }
    let mut thresholds = default_thresholds();
    if let Some(pool) = dr.and_then(|dr| dr.connection_pool) {
        thresholds["max_connections"] = json!(pool.max_connections);
        thresholds["max_pending_requests"] = json!(pool.http1_max_pending_requests);
        thresholds["max_requests"] = json!(pool.http2_max_requests);
    }
    let mut cluster = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "lb_policy": "LEAST_REQUEST",
        "circuit_breakers": {"thresholds": [thresholds]},
        "metadata": {"filter_metadata": {"istio": istio}},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
    });
    if let Some(outlier) = dr.and_then(|dr| dr.outlier_detection) {
        cluster["outlier_detection"] = json!({
            "consecutive_5xx": outlier.consecutive_5xx_errors,
            "interval": duration(outlier.interval),
            "base_ejection_time": duration(outlier.base_ejection_time),
            "max_ejection_percent": outlier.max_ejection_percent,
            "enforcing_consecutive_5xx": 100,
            "enforcing_consecutive_gateway_failure": 0,
            "enforcing_success_rate": 0,
        });
        // istiod: minHealthPercent (default 0) becomes the panic threshold, so an all-ejected
        // cluster answers UH instead of routing anyway.
        cluster["common_lb_config"] = json!({"healthy_panic_threshold": {"value": 0}});
    }

    let client = input
        .pki
        .identity(&input.workload.namespace, &input.workload.service_account)?;
    let ids: Vec<String> = server_ids.into_iter().collect();
    let sni = format!("outbound_.{}_.{subset_name}_.{host}", service.port);
    match dr.and_then(|dr| dr.tls) {
        Some(ClientTls::Disable) => {}
        Some(ClientTls::IstioMutual) => {
            cluster["transport_socket"] = tls::upstream(input.pki, &client, &ids, &sni);
        }
        None => {
            // Auto-mTLS: TLS to endpoints labelled tlsMode istio, plaintext to the others.
            cluster["transport_socket_matches"] = json!([
                {
                    "name": "tlsMode-istio",
                    "match": {"tlsMode": "istio"},
                    "transport_socket": tls::upstream(input.pki, &client, &ids, &sni),
                },
                {"name": "tlsMode-disabled", "match": {}, "transport_socket": tls::raw_buffer()},
            ]);
        }
    }
    Ok(cluster)
}
