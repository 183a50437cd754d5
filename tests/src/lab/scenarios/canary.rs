//! Scenario 1, the canary: `reviews` v2 is rolled out in config generation 2 with a
//! DestinationRule (subsets v1, v2) and a VirtualService splitting 90/10. `productpage` has 5
//! replicas; the last 2 never received generation 2 (stale xDS), so they still route with the
//! `default` route to the unsubsetted cluster, which only knows the v1 pods. Every request
//! succeeds: the divergence shows only in the success counters per replica.

use super::{Outcome, ReplicaSplit, request_id};
use crate::{
    lab::{
        mesh::MeshLab,
        model::{DestinationRule, HttpRoute, Mesh, Service, VirtualService, Workload},
        observe,
    },
    wait,
};
use anyhow::{Context, Result};
use std::{collections::BTreeMap, net::SocketAddr};

/// The canary's namespace.
pub const NS: &str = "bookinfo";
/// The client workload.
pub const CLIENT: &str = "productpage-v1";
/// Client replicas.
pub const REPLICAS: usize = 5;
/// Replicas with the stale route table.
pub const STALE: usize = 2;
/// Requests per replica.
pub const REQUESTS: usize = 200;
/// The VirtualService's route name.
pub const ROUTE: &str = "reviews-canary";
/// In-flight requests per replica.
const CONCURRENCY: usize = 4;

/// The canary mesh.
pub fn mesh() -> Mesh {
    Mesh::new()
        .service(Service::new(NS, "reviews"))
        .workload(Workload::new(NS, "reviews-v1", "reviews").label("version", "v1"))
        .workload(
            Workload::new(NS, "reviews-v2", "reviews")
                .label("version", "v2")
                .generation(2),
        )
        .workload(
            Workload::new(NS, CLIENT, "productpage")
                .label("version", "v1")
                .replicas(REPLICAS)
                .stale_replicas(STALE),
        )
        .destination_rule(
            DestinationRule::new(NS, "reviews", "reviews")
                .subset("v1", "v1")
                .subset("v2", "v2")
                .generation(2),
        )
        .virtual_service(
            VirtualService::new(NS, "reviews", "reviews")
                .route(HttpRoute::weighted(
                    ROUTE,
                    "reviews",
                    &[("v1", 90), ("v2", 10)],
                ))
                .generation(2),
        )
}

/// Runs the canary: [`REQUESTS`] requests from each replica, then the per-replica split.
pub async fn run(collector: SocketAddr) -> Result<Outcome> {
    let lab = MeshLab::start(mesh(), collector).await?;
    let url = lab.collector_url();
    let reviews = lab.service("reviews")?;
    let mut tasks = Vec::new();
    for pod in lab.pods_of(CLIENT) {
        let client = pod.outbound(reviews.port)?;
        let authority = reviews.authority();
        let prefix = request_id(NS, &format!("canary-{}", pod.index));
        tasks.push(tokio::spawn(async move {
            let mut failed = 0usize;
            for chunk in (0..REQUESTS).collect::<Vec<_>>().chunks(CONCURRENCY) {
                let mut inflight = Vec::new();
                for n in chunk {
                    let client = client.clone();
                    let authority = authority.clone();
                    let id = format!("{prefix}-{n}");
                    inflight.push(tokio::spawn(async move {
                        client.get(&authority, "/ok", &id).await
                    }));
                }
                for request in inflight {
                    let reply = request.await??;
                    if reply.status != 200 {
                        failed += 1;
                    }
                }
            }
            anyhow::Ok(failed)
        }));
    }
    for task in tasks {
        let failed = task.await.context("a replica's request task panicked")??;
        anyhow::ensure!(failed == 0, "{failed} canary requests failed");
    }

    let stale: BTreeMap<String, bool> = lab
        .pods_of(CLIENT)
        .map(|p| (p.name.clone(), p.stale))
        .collect();
    let replicas = wait::until("every replica's successes to be counted", || {
        let url = url.clone();
        let stale = stale.clone();
        async move {
            let counters = observe::counters(&url, NS, CLIENT).await.ok()?;
            let mut split: BTreeMap<String, ReplicaSplit> = stale
                .iter()
                .map(|(pod, stale)| {
                    let replica = ReplicaSplit {
                        pod: pod.clone(),
                        stale: *stale,
                        ..ReplicaSplit::default()
                    };
                    (pod.clone(), replica)
                })
                .collect();
            for counter in &counters {
                let (Some(c), Some(replica)) = (&counter.counter, split.get_mut(&counter.pod))
                else {
                    continue;
                };
                if c.response_code != 200 {
                    continue;
                }
                replica.total += c.count;
                *replica.by_cluster.entry(c.cluster.clone()).or_default() += c.count;
                if !replica.routes.contains(&c.route_name) {
                    replica.routes.push(c.route_name.clone());
                }
                if !c.route_provenance.is_empty()
                    && !replica.route_provenance.contains(&c.route_provenance)
                {
                    replica.route_provenance.push(c.route_provenance.clone());
                }
            }
            split
                .values()
                .all(|r| r.total >= REQUESTS as u64)
                .then(|| split.into_values().collect::<Vec<_>>())
        }
    })
    .await?;
    let mut outcome = Outcome::new(NS);
    outcome.replicas = replicas;
    Ok(outcome)
}
