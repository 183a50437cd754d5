//! The classic Istio failures (issue 4's list), each a small mesh in its own namespace, started,
//! driven and read back: a scenario returns what each sidecar recorded for its probe requests
//! (and, for the canary, the success counters per replica). The e2e tests assert on the
//! [`Outcome`]; the demo runs them all against one collector and then explains the mesh.
//! `tests/lab/README.md` has the table of who records what.

pub mod canary;
pub mod routing;
pub mod security;
pub mod upstream;

use crate::{access_log::LogLine, client::Reply, lab::observe::Hop};
use anyhow::{Context, Result, bail};
use std::{collections::BTreeMap, net::SocketAddr};

/// One scenario of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Info {
    /// Issue 4's number.
    pub number: u8,
    /// Key for [`run`] and the tests.
    pub key: &'static str,
    /// The namespace its mesh lives in (unique per scenario, so one collector can hold all).
    pub namespace: &'static str,
    /// What it shows.
    pub title: &'static str,
    /// The cause id meshwhy should give its failure.
    pub cause: &'static str,
}

/// Every scenario, in the demo's order.
pub const ALL: &[Info] = &[
    Info {
        number: 8,
        key: "app_error",
        namespace: upstream::APP_ERROR_NS,
        title: "the app answers 503 itself; the server sidecar confirms it",
        cause: "app_returned_error",
    },
    Info {
        number: 3,
        key: "no_route",
        namespace: routing::NO_ROUTE_NS,
        title: "VirtualService matches exact /api/health; /api/health/detailed has no route",
        cause: "no_route",
    },
    Info {
        number: 4,
        key: "no_cluster",
        namespace: routing::NO_CLUSTER_NS,
        title: "VirtualService routes to subset v2 that no DestinationRule defines",
        cause: "no_cluster",
    },
    Info {
        number: 5,
        key: "no_healthy_upstream",
        namespace: upstream::NO_HEALTHY_NS,
        title: "DestinationRule subset matching no pod, vs. every endpoint ejected",
        cause: "no_healthy_upstream",
    },
    Info {
        number: 9,
        key: "rbac",
        namespace: security::RBAC_NS,
        title: "AuthorizationPolicy DENY on /admin*",
        cause: "rbac_denied",
    },
    Info {
        number: 10,
        key: "registry_only",
        namespace: routing::REGISTRY_ONLY_NS,
        title: "REGISTRY_ONLY and a host without a ServiceEntry",
        cause: "registry_only_blocked",
    },
    Info {
        number: 11,
        key: "timeout",
        namespace: upstream::TIMEOUT_NS,
        title: "VirtualService timeout 0.5 s, the app takes 3 s",
        cause: "upstream_timeout",
    },
    Info {
        number: 6,
        key: "circuit_breaker",
        namespace: upstream::CIRCUIT_BREAKER_NS,
        title: "DestinationRule connection pool of 1 under 8 concurrent requests",
        cause: "circuit_breaker_overflow",
    },
    Info {
        number: 7,
        key: "retries",
        namespace: upstream::RETRIES_NS,
        title: "VirtualService retries 5xx twice; the app keeps failing",
        cause: "retries_exhausted",
    },
    Info {
        number: 12,
        key: "sidecar_missing",
        namespace: security::SIDECAR_MISSING_NS,
        title: "a destination without a sidecar (endpoints without tlsMode)",
        cause: "sidecar_missing",
    },
    Info {
        number: 2,
        key: "mtls",
        namespace: security::MTLS_NS,
        title: "STRICT mTLS server; a DestinationRule disables TLS; a client without a sidecar",
        cause: "mtls_mismatch",
    },
    Info {
        number: 1,
        key: "canary",
        namespace: canary::NS,
        title: "canary 90/10 over 5 client replicas, 2 of them with a stale route table",
        cause: "stale_config_suspected",
    },
];

/// Runs scenario `key` against the collector at `collector`; every process it started is
/// stopped when it returns.
pub async fn run(key: &str, collector: SocketAddr) -> Result<Outcome> {
    match key {
        "app_error" => upstream::app_error(collector).await,
        "no_route" => routing::no_route(collector).await,
        "no_cluster" => routing::no_cluster(collector).await,
        "no_healthy_upstream" => upstream::no_healthy_upstream(collector).await,
        "rbac" => security::rbac(collector).await,
        "registry_only" => routing::registry_only(collector).await,
        "timeout" => upstream::timeout(collector).await,
        "circuit_breaker" => upstream::circuit_breaker(collector).await,
        "retries" => upstream::retries(collector).await,
        "sidecar_missing" => security::sidecar_missing(collector).await,
        "mtls" => security::mtls(collector).await,
        "canary" => canary::run(collector).await,
        other => bail!("no scenario {other}"),
    }
}

/// The request id of probe `label` in namespace `ns`.
pub fn request_id(ns: &str, label: &str) -> String {
    format!("{ns}-{label}")
}

/// One request of interest and what came of it.
#[derive(Debug, Clone)]
pub struct Probe {
    pub label: &'static str,
    /// The HTTP status the app got, or why it got none.
    pub reply: std::result::Result<u16, String>,
    /// What the sidecars recorded for it.
    pub hop: Hop,
}

/// Success counts of one client replica, by cluster.
#[derive(Debug, Clone, Default)]
pub struct ReplicaSplit {
    pub pod: String,
    /// Runs the stale route table.
    pub stale: bool,
    /// Successful requests counted.
    pub total: u64,
    /// Counted requests per cluster.
    pub by_cluster: BTreeMap<String, u64>,
    /// Route names the counters carried.
    pub routes: Vec<String>,
    /// Route provenance (VirtualService paths) the counters carried; empty strings dropped.
    pub route_provenance: Vec<String>,
}

impl ReplicaSplit {
    /// Share of the replica's requests that went to `cluster`.
    pub fn share(&self, cluster: &str) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.by_cluster.get(cluster).copied().unwrap_or(0) as f64 / self.total as f64
    }
}

/// What a scenario observed.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub namespace: String,
    pub probes: Vec<Probe>,
    /// Canary: per client replica.
    pub replicas: Vec<ReplicaSplit>,
    /// Listener-level access log lines of the server sidecar (what the HTTP filter cannot see).
    pub server_listener_log: Vec<LogLine>,
}

impl Outcome {
    /// An empty outcome for namespace `ns`.
    pub fn new(ns: &str) -> Self {
        Self {
            namespace: ns.to_owned(),
            ..Self::default()
        }
    }

    /// Adds a probe.
    pub fn with(mut self, label: &'static str, reply: Result<Reply>, hop: Hop) -> Self {
        self.probes.push(Probe {
            label,
            reply: reply.map(|r| r.status).map_err(|e| format!("{e:#}")),
            hop,
        });
        self
    }

    /// The probe called `label`.
    pub fn probe(&self, label: &str) -> Result<&Probe> {
        self.probes
            .iter()
            .find(|p| p.label == label)
            .with_context(|| format!("no probe {label} in {:?}", self.probes))
    }
}
