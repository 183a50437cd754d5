//! The inbound half of a sidecar that serves a Service: the `virtualInbound` listener with a TLS
//! inspector, an mTLS filter chain (client certificates required) and, unless the mesh is STRICT,
//! a plaintext one; route configuration `inbound|<port>||` with virtual host
//! `inbound|http|<port>` and route `default` (Istio's inbound retry of resets before the request
//! reached the app); the RBAC filter istiod makes from DENY AuthorizationPolicies; and the
//! cluster `inbound|<port>||` to the app. A listener-level access log shows what an HTTP filter
//! cannot: connections that found no filter chain (plaintext against STRICT).

use super::{
    PodInput, access_log, default_thresholds, http_connection_manager, router, socket, tls,
};
use crate::lab::model::{
    AuthorizationPolicy, Mesh, PeerAuthentication, Workload, inbound_cluster_name, rbac_policy_id,
    selects,
};
use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use std::net::SocketAddr;

/// The port the pod serves on (its Services' port; the lab's pods serve one port).
fn served_port(view: &Mesh, workload: &Workload) -> u16 {
    view.served_by(workload).next().map_or(80, |s| s.port)
}

/// The `virtualInbound` listener.
pub fn listener(input: &PodInput<'_>, meshwhy: &Value) -> Result<Vec<Value>> {
    let view = input.view;
    let workload = input.workload;
    let port = served_port(view, workload);
    let mut filters = Vec::new();
    if let Some(rbac) = rbac_filter(view, workload) {
        filters.push(rbac);
    }
    filters.push(meshwhy.clone());
    filters.push(router());
    let host = view
        .served_by(workload)
        .next()
        .map(|s| s.host())
        .context("an inbound listener for a pod that serves no Service")?;
    let cluster = inbound_cluster_name(port);
    let route_config = json!({
        "name": cluster,
        "validate_clusters": false,
        "virtual_hosts": [{
            "name": format!("inbound|http|{port}"),
            "domains": ["*"],
            "routes": [{
                "name": "default",
                "match": {"prefix": "/"},
                "route": {
                    "cluster": cluster,
                    "timeout": "0s",
                    "max_grpc_timeout": "0s",
                    "retry_policy": {"retry_on": "reset-before-request", "num_retries": 2},
                },
                "decorator": {"operation": format!("{host}:{port}/*")},
            }],
        }],
    });
    let hcm = http_connection_manager(
        &format!("inbound_0.0.0.0_{port}"),
        route_config,
        filters,
        json!({
            "forward_client_cert_details": "APPEND_FORWARD",
            "set_current_client_cert_details": {"subject": true, "dns": true, "uri": true},
        }),
    )?;
    let identity = input
        .pki
        .identity(&workload.namespace, &workload.service_account)?;
    let mut chains = vec![json!({
        "name": format!("0.0.0.0_{port}"),
        "filter_chain_match": {"transport_protocol": "tls"},
        "transport_socket": tls::downstream(input.pki, &identity),
        "filters": [hcm.clone()],
    })];
    if view.peer_authentication == PeerAuthentication::Permissive {
        chains.push(json!({
            "name": format!("0.0.0.0_{port}_plaintext"),
            "filter_chain_match": {"transport_protocol": "raw_buffer"},
            "filters": [hcm],
        }));
    }
    let mut listener_log = access_log()?;
    listener_log["filter"] = json!({"response_flag_filter": {"flags": ["NR"]}});
    Ok(vec![json!({
        "name": super::INBOUND_LISTENER,
        "address": socket(input.ip, 0),
        "traffic_direction": "INBOUND",
        "listener_filters": [{
            "name": "envoy.filters.listener.tls_inspector",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"},
        }],
        // istiod logs only the connections no filter chain accepted at the listener level.
        "access_log": [listener_log],
        "filter_chains": chains,
    })])
}

/// The app's cluster `inbound|<port>||`.
pub fn clusters(input: &PodInput<'_>, app: SocketAddr) -> Vec<Value> {
    let port = served_port(input.view, input.workload);
    let name = inbound_cluster_name(port);
    let services: Vec<Value> = input
        .view
        .served_by(input.workload)
        .map(|s| json!({"host": s.host(), "name": s.name, "namespace": s.namespace}))
        .collect();
    vec![json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "circuit_breakers": {"thresholds": [default_thresholds()]},
        "metadata": {"filter_metadata": {"istio": {"services": services}}},
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": socket(&app.ip().to_string(), app.port())}},
            ]}],
        },
    })]
}

/// The RBAC filter istiod generates for the DENY policies that select this workload, or None.
fn rbac_filter(view: &Mesh, workload: &Workload) -> Option<Value> {
    let policies: Vec<&AuthorizationPolicy> = view
        .authorization_policies
        .iter()
        .filter(|p| p.namespace == workload.namespace && selects(&p.selector, &workload.labels))
        .collect();
    if policies.is_empty() {
        return None;
    }
    let mut rules = Map::new();
    for policy in policies {
        for (n, rule) in policy.rules.iter().enumerate() {
            let permissions = if rule.paths.is_empty() {
                json!([{"any": true}])
            } else {
                let paths: Vec<Value> = rule.paths.iter().map(|p| path_matcher(p)).collect();
                json!([{"and_rules": {"rules": [{"or_rules": {"rules": paths}}]}}])
            };
            let principals = if rule.principals.is_empty() {
                json!([{"and_ids": {"ids": [{"any": true}]}}])
            } else {
                let ids: Vec<Value> = rule
                    .principals
                    .iter()
                    .map(|p| {
                        let id = format!("spiffe://{}", p.trim_start_matches("spiffe://"));
                        json!({"authenticated": {"principal_name": {"exact": id}}})
                    })
                    .collect();
                json!([{"and_ids": {"ids": [{"or_ids": {"ids": ids}}]}}])
            };
            rules.insert(
                rbac_policy_id(&policy.namespace, &policy.name, n),
                json!({"permissions": permissions, "principals": principals}),
            );
        }
    }
    Some(json!({
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "DENY", "policies": rules},
            "shadow_rules_stat_prefix": "istio_dry_run_allow_",
        },
    }))
}

/// Istio's path matching: a trailing `*` is a prefix, a leading `*` a suffix.
fn path_matcher(path: &str) -> Value {
    let matcher = if let Some(prefix) = path.strip_suffix('*') {
        json!({"prefix": prefix})
    } else if let Some(suffix) = path.strip_prefix('*') {
        json!({"suffix": suffix})
    } else {
        json!({"exact": path})
    };
    json!({"url_path": {"path": matcher}})
}
