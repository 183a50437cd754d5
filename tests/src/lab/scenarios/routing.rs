//! Scenarios decided by the client sidecar's routing alone, before any upstream is picked: a
//! VirtualService exact match that misses (3), a subset no DestinationRule defines (4), and
//! REGISTRY_ONLY blocking a host without a ServiceEntry (10). The server side never sees them.

use super::{Outcome, request_id};
use crate::{
    lab::{
        mesh::MeshLab,
        model::{HttpRoute, Mesh, Service, VirtualService, Workload},
        observe,
    },
    wait,
};
use anyhow::Result;
use std::net::SocketAddr;

/// Namespace of scenario 3.
pub const NO_ROUTE_NS: &str = "health";
/// Namespace of scenario 4.
pub const NO_CLUSTER_NS: &str = "catalog";
/// Namespace of scenario 10.
pub const REGISTRY_ONLY_NS: &str = "egress";
/// The external host scenario 10 calls.
pub const UNKNOWN_HOST: &str = "api.partner.example.com";

fn workload(ns: &str, app: &str) -> Workload {
    Workload::new(ns, &format!("{app}-v1"), app).label("version", "v1")
}

/// Scenario 3: `prober` calls `status-api`, whose VirtualService has one route,
/// `health-check`, matching exactly `/api/health` (rewritten to the app's `/ok`).
pub fn no_route_mesh() -> Mesh {
    let ns = NO_ROUTE_NS;
    Mesh::new()
        .service(Service::new(ns, "status-api"))
        .workload(workload(ns, "status-api"))
        .workload(workload(ns, "prober"))
        .virtual_service(
            VirtualService::new(ns, "status-api", "status-api").route(
                HttpRoute::new("health-check", "status-api")
                    .exact("/api/health")
                    .rewrite("/ok"),
            ),
        )
}

/// Scenario 3: probe `exact` succeeds (counted with the VirtualService's provenance), probe
/// `detailed` is Envoy's own 404 NR.
pub async fn no_route(collector: SocketAddr) -> Result<Outcome> {
    let ns = NO_ROUTE_NS;
    let lab = MeshLab::start(no_route_mesh(), collector).await?;
    let url = lab.collector_url();
    let prober = lab.pod("prober-v1", 0)?;
    let service = lab.service("status-api")?;
    let exact = request_id(ns, "exact");
    let exact_reply = prober.call(service, "/api/health", &exact).await;
    let detailed = request_id(ns, "detailed");
    let detailed_reply = prober
        .call(service, "/api/health/detailed", &detailed)
        .await;
    // The success is a counter; wait for it so explain can name the VirtualService of the vhost.
    wait::until("the exact-match success to be counted", || {
        let url = url.clone();
        async move {
            let counters = observe::counters(&url, ns, "prober-v1").await.ok()?;
            counters
                .iter()
                .filter_map(|c| c.counter.as_ref())
                .any(|c| c.route_name == "health-check")
                .then_some(())
        }
    })
    .await?;
    Ok(Outcome::new(ns)
        .with("exact", exact_reply, observe::hop(&url, &exact).await?)
        .with(
            "detailed",
            detailed_reply,
            observe::wait_hop(&url, &detailed, 1, 0).await?,
        ))
}

/// Scenario 4: `frontend` calls `catalog`, whose VirtualService sends everything to subset
/// `v2`; there is no DestinationRule, so no cluster `outbound|80|v2|catalog…` exists.
pub fn no_cluster_mesh() -> Mesh {
    let ns = NO_CLUSTER_NS;
    Mesh::new()
        .service(Service::new(ns, "catalog"))
        .workload(workload(ns, "catalog"))
        .workload(workload(ns, "frontend"))
        .virtual_service(
            VirtualService::new(ns, "catalog", "catalog")
                .route(HttpRoute::new("catalog-v2", "catalog").subset("v2")),
        )
}

/// Scenario 4: probe `subset-v2` is 503 NC.
pub async fn no_cluster(collector: SocketAddr) -> Result<Outcome> {
    let ns = NO_CLUSTER_NS;
    let lab = MeshLab::start(no_cluster_mesh(), collector).await?;
    let url = lab.collector_url();
    let id = request_id(ns, "subset-v2");
    let reply = lab
        .pod("frontend-v1", 0)?
        .call(lab.service("catalog")?, "/ok", &id)
        .await;
    let hop = observe::wait_hop(&url, &id, 1, 0).await?;
    Ok(Outcome::new(ns).with("subset-v2", reply, hop))
}

/// Scenario 10: a REGISTRY_ONLY mesh; `notifier` knows `mailer` but calls an external host
/// that has no ServiceEntry.
pub fn registry_only_mesh() -> Mesh {
    let ns = REGISTRY_ONLY_NS;
    Mesh::new()
        .registry_only()
        .service(Service::new(ns, "mailer"))
        .workload(workload(ns, "mailer"))
        .workload(workload(ns, "notifier"))
}

/// Scenario 10: probe `unknown-host` is the `block_all` 502; probe `known` reaches `mailer`.
pub async fn registry_only(collector: SocketAddr) -> Result<Outcome> {
    let ns = REGISTRY_ONLY_NS;
    let lab = MeshLab::start(registry_only_mesh(), collector).await?;
    let url = lab.collector_url();
    let notifier = lab.pod("notifier-v1", 0)?;
    let id = request_id(ns, "unknown-host");
    let reply = notifier.call_host(UNKNOWN_HOST, "/v1/notify", &id).await;
    let known = request_id(ns, "known");
    let known_reply = notifier.call(lab.service("mailer")?, "/ok", &known).await;
    let hop = observe::wait_hop(&url, &id, 1, 0).await?;
    Ok(Outcome::new(ns).with("unknown-host", reply, hop).with(
        "known",
        known_reply,
        observe::hop(&url, &known).await?,
    ))
}
