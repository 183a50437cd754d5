//! Scenarios where the request reaches (or tries to reach) the destination's pods: the app's
//! own 503 (8), a subset with no pod vs. every endpoint ejected (5), a connection-pool overflow
//! (6), retries exhausted (7) and a VirtualService timeout (11).

use super::{Outcome, Probe, request_id};
use crate::{
    lab::{
        mesh::MeshLab,
        model::{
            ConnectionPool, DestinationRule, HttpRoute, Mesh, OutlierDetection, Service,
            VirtualService, Workload,
        },
        observe,
    },
    wait,
};
use anyhow::{Context, Result};
use std::{
    net::SocketAddr,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

/// Namespace of scenario 8.
pub const APP_ERROR_NS: &str = "billing";
/// Namespace of scenario 5.
pub const NO_HEALTHY_NS: &str = "ratings";
/// Namespace of scenario 6.
pub const CIRCUIT_BREAKER_NS: &str = "inventory";
/// Namespace of scenario 7.
pub const RETRIES_NS: &str = "search";
/// Namespace of scenario 11.
pub const TIMEOUT_NS: &str = "reports";

/// A server workload `<app>-v1` labelled `app: <app>, version: v1`, and its Service.
fn server(mesh: Mesh, ns: &str, app: &str) -> Mesh {
    mesh.service(Service::new(ns, app))
        .workload(Workload::new(ns, &format!("{app}-v1"), app).label("version", "v1"))
}

/// A client workload `<app>-v1`.
fn client(mesh: Mesh, ns: &str, app: &str) -> Mesh {
    mesh.workload(Workload::new(ns, &format!("{app}-v1"), app).label("version", "v1"))
}

/// Scenario 8: `invoices` calls `billing`, whose app answers 503.
pub fn app_error_mesh() -> Mesh {
    let ns = APP_ERROR_NS;
    client(server(Mesh::new(), ns, "billing"), ns, "invoices")
}

/// Scenario 8: both sidecars record the 503 `via_upstream`; the request id joins them.
pub async fn app_error(collector: SocketAddr) -> Result<Outcome> {
    let ns = APP_ERROR_NS;
    let lab = MeshLab::start(app_error_mesh(), collector).await?;
    let url = lab.collector_url();
    let id = request_id(ns, "app-503");
    let reply = lab
        .pod("invoices-v1", 0)?
        .call(lab.service("billing")?, "/status/503", &id)
        .await;
    let hop = observe::wait_hop(&url, &id, 1, 1).await?;
    // The same failure again: its record is built from the filter's caches (provenance and
    // upstream TLS facts), which must say what the first, freshly read, record said.
    let again_id = request_id(ns, "app-503-again");
    let again_reply = lab
        .pod("invoices-v1", 0)?
        .call(lab.service("billing")?, "/status/503", &again_id)
        .await;
    let again = observe::wait_hop(&url, &again_id, 1, 1).await?;
    Ok(Outcome::new(ns)
        .with("app-503", reply, hop)
        .with("app-503-again", again_reply, again))
}

/// Scenario 5: `storefront` calls `ratings` through a VirtualService to subset v3 (the
/// DestinationRule's v3 selects `version: v3`; only v1 pods exist), and `details`, whose
/// DestinationRule ejects a host after one 5xx.
pub fn no_healthy_upstream_mesh() -> Mesh {
    let ns = NO_HEALTHY_NS;
    let mesh = client(
        server(server(Mesh::new(), ns, "ratings"), ns, "details"),
        ns,
        "storefront",
    );
    mesh.destination_rule(
        DestinationRule::new(ns, "ratings", "ratings")
            .subset("v1", "v1")
            .subset("v3", "v3"),
    )
    .virtual_service(
        VirtualService::new(ns, "ratings", "ratings")
            .route(HttpRoute::new("ratings-v3", "ratings").subset("v3")),
    )
    .destination_rule(
        DestinationRule::new(ns, "details", "details").outlier_detection(OutlierDetection {
            consecutive_5xx_errors: 1,
            interval: Duration::from_secs(1),
            base_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 100,
        }),
    )
}

/// Scenario 5: probes `empty-subset` (UH, the subset cluster has no endpoint), `trip` (the
/// details app's 503 that gets its only host ejected) and `all-ejected` (UH on the details
/// cluster once the ejection is in force).
pub async fn no_healthy_upstream(collector: SocketAddr) -> Result<Outcome> {
    let ns = NO_HEALTHY_NS;
    let lab = MeshLab::start(no_healthy_upstream_mesh(), collector).await?;
    let url = lab.collector_url();
    let storefront = lab.pod("storefront-v1", 0)?;

    let empty = request_id(ns, "empty-subset");
    let empty_reply = storefront
        .call(lab.service("ratings")?, "/ok", &empty)
        .await;

    let details = lab.service("details")?;
    let trip = request_id(ns, "trip");
    let trip_reply = storefront.call(details, "/status/503", &trip).await;

    // The ejection reaches the worker asynchronously: call until the cluster answers UH.
    let attempt = AtomicUsize::new(0);
    let (ejected, ejected_status) = wait::until("the details host to be ejected", || {
        let n = attempt.fetch_add(1, Ordering::Relaxed);
        let id = request_id(ns, &format!("all-ejected-{n}"));
        async move {
            let reply = storefront.call(details, "/ok", &id).await.ok()?;
            (reply.status == 503).then_some((id, reply.status))
        }
    })
    .await?;

    let mut outcome = Outcome::new(ns)
        .with(
            "empty-subset",
            empty_reply,
            observe::wait_hop(&url, &empty, 1, 0).await?,
        )
        .with(
            "trip",
            trip_reply,
            observe::wait_hop(&url, &trip, 1, 1).await?,
        );
    outcome.probes.push(Probe {
        label: "all-ejected",
        reply: Ok(ejected_status),
        hop: observe::wait_hop(&url, &ejected, 1, 0).await?,
    });
    Ok(outcome)
}

/// Scenario 6: `orders` calls `inventory`, whose DestinationRule allows one connection, one
/// pending request and one request in flight.
pub fn circuit_breaker_mesh() -> Mesh {
    let ns = CIRCUIT_BREAKER_NS;
    client(server(Mesh::new(), ns, "inventory"), ns, "orders").destination_rule(
        DestinationRule::new(ns, "inventory", "inventory").connection_pool(ConnectionPool {
            max_connections: 1,
            http1_max_pending_requests: 1,
            http2_max_requests: 1,
        }),
    )
}

/// Scenario 6: 8 concurrent slow requests; probe `overflow` is one the client sidecar
/// rejected (UO).
pub async fn circuit_breaker(collector: SocketAddr) -> Result<Outcome> {
    let ns = CIRCUIT_BREAKER_NS;
    let lab = MeshLab::start(circuit_breaker_mesh(), collector).await?;
    let url = lab.collector_url();
    let orders = lab.pod("orders-v1", 0)?;
    let inventory = lab.service("inventory")?;
    let client = orders.outbound(inventory.port)?;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = client.clone();
        let authority = inventory.authority();
        let id = request_id(ns, &format!("burst-{i}"));
        tasks.push(tokio::spawn(async move {
            client.get(&authority, "/delay/500", &id).await
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.context("a request task panicked")??);
    }
    let overflow = replies
        .iter()
        .find(|r| r.status == 503)
        .cloned()
        .with_context(|| format!("no request overflowed the connection pool: {replies:?}"))?;
    let hop = observe::wait_hop(&url, &overflow.request_id, 1, 0).await?;
    let mut outcome = Outcome::new(ns).with("overflow", Ok(overflow), hop);
    for reply in replies.iter().filter(|r| r.status == 200) {
        outcome = outcome.with(
            "served",
            Ok(reply.clone()),
            observe::hop(&url, &reply.request_id).await?,
        );
    }
    Ok(outcome)
}

/// Scenario 7: `web` calls `search` through a VirtualService that retries 5xx twice.
pub fn retries_mesh() -> Mesh {
    let ns = RETRIES_NS;
    client(server(Mesh::new(), ns, "search"), ns, "web").virtual_service(
        VirtualService::new(ns, "search", "search")
            .route(HttpRoute::new("search-retries", "search").retries(2, "5xx")),
    )
}

/// Scenario 7: probe `flaky`: three attempts, each an app 503 the server sidecar records.
pub async fn retries(collector: SocketAddr) -> Result<Outcome> {
    let ns = RETRIES_NS;
    let lab = MeshLab::start(retries_mesh(), collector).await?;
    let url = lab.collector_url();
    let id = request_id(ns, "flaky");
    let reply = lab
        .pod("web-v1", 0)?
        .call(lab.service("search")?, "/status/503", &id)
        .await;
    let hop = observe::wait_hop(&url, &id, 1, 3).await?;
    Ok(Outcome::new(ns).with("flaky", reply, hop))
}

/// Scenario 11: `dashboard` calls `reports` through a VirtualService with a 0.5 s timeout.
pub fn timeout_mesh() -> Mesh {
    let ns = TIMEOUT_NS;
    client(server(Mesh::new(), ns, "reports"), ns, "dashboard").virtual_service(
        VirtualService::new(ns, "reports", "reports").route(
            HttpRoute::new("reports-timeout", "reports").timeout(Duration::from_millis(500)),
        ),
    )
}

/// Scenario 11: probe `slow`: the app takes 3 s; the client sidecar gives up after 0.5 s (UT)
/// and resets the upstream request, which the server sidecar records as a downstream
/// disconnect (DC, no response): the timeout joins across the hop.
pub async fn timeout(collector: SocketAddr) -> Result<Outcome> {
    let ns = TIMEOUT_NS;
    let lab = MeshLab::start(timeout_mesh(), collector).await?;
    let url = lab.collector_url();
    let id = request_id(ns, "slow");
    let reply = lab
        .pod("dashboard-v1", 0)?
        .call(lab.service("reports")?, "/delay/3000", &id)
        .await;
    let hop = observe::wait_hop(&url, &id, 1, 1).await?;
    Ok(Outcome::new(ns).with("slow", reply, hop))
}
