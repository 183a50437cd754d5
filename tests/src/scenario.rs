//! The pipeline scenario: one real Envoy with the meshwhy filter (loaded from the README's own
//! copy-paste snippets in `deploy/envoy/`), a scripted upstream, and the collector. Each route
//! produces one of Envoy's classic outcomes, so the records can be checked against Envoy's own
//! access log.

use crate::{
    access_log,
    client::Client,
    envoy::Envoy,
    paths,
    upstream::{ClosedPort, Closer, Upstream},
};
use anyhow::{Context, Result};
use meshwhy_collector::CollectorHandle;
use std::{net::SocketAddr, time::Duration};

/// The README's `http_filters` entry, verbatim.
pub const HTTP_FILTER_SNIPPET: &str = include_str!("../../deploy/envoy/meshwhy-http-filter.yaml");
/// The README's collector cluster, verbatim.
pub const COLLECTOR_CLUSTER_SNIPPET: &str =
    include_str!("../../deploy/envoy/meshwhy-collector-cluster.yaml");

/// The virtual host every scenario route lives on (Istio shape: `<host>:<port>`).
pub const VHOST: &str = "backend.e2e.svc.cluster.local:80";
/// The VirtualService that "produced" the routes, as Istio writes it into route metadata.
pub const VS_PROVENANCE: &str =
    "/apis/networking.istio.io/v1/namespaces/e2e/virtual-service/backend";
/// The DestinationRule behind the upstream cluster, as Istio writes it into cluster metadata.
pub const DR_PROVENANCE: &str =
    "/apis/networking.istio.io/v1/namespaces/e2e/destination-rule/backend";
/// The upstream cluster, named like istiod names it.
pub const UPSTREAM_CLUSTER: &str = "outbound|80|v1|backend.e2e.svc.cluster.local";
/// The RBAC policy that denies `/rbac`, named like Istio's AuthorizationPolicy output.
pub const RBAC_POLICY: &str = "ns[e2e]-policy[deny-admin]-rule[0]";

/// One request of the failure matrix: what to send and what Envoy is expected to decide.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Short name, also the request id prefix.
    pub name: &'static str,
    /// Path to request.
    pub path: &'static str,
    /// How the client behaves.
    pub send: Send,
    /// The flags Envoy must report (the oracle still decides; this guards the scenario itself).
    pub expect_flags: &'static [&'static str],
    /// The code Envoy must answer (0 = none, the client hung up).
    pub expect_code: u32,
    /// The gRPC status the upstream answers, for gRPC cases.
    pub expect_grpc_status: Option<u32>,
}

impl Case {
    /// Whether the filter's default capture set records this case in full (else it is counted).
    pub fn is_failure(&self) -> bool {
        !self.expect_flags.is_empty()
            || self.expect_code == 0
            || self.expect_code >= 500
            || self.expect_code == 403
            || self.expect_grpc_status.is_some_and(|status| status != 0)
    }
}

/// How a case's request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Send {
    /// One plain GET.
    Get,
    /// Several concurrent GETs (the circuit-breaker case): at least one must overflow.
    Concurrent(usize),
    /// GET, then hang up before the reply.
    Disconnect,
    /// GET as a gRPC request (`content-type: application/grpc`).
    Grpc,
}

/// Every outcome issue #2 asks for, in the order the demo shows them.
pub const CASES: &[Case] = &[
    Case {
        name: "success",
        path: "/ok",
        send: Send::Get,
        expect_flags: &[],
        expect_grpc_status: None,
        expect_code: 200,
    },
    Case {
        name: "app-503",
        path: "/app503?token=secret",
        send: Send::Get,
        expect_flags: &[],
        expect_grpc_status: None,
        expect_code: 503,
    },
    Case {
        name: "uf",
        path: "/uf",
        send: Send::Get,
        expect_flags: &["UF"],
        expect_grpc_status: None,
        expect_code: 503,
    },
    Case {
        name: "uf-urx",
        path: "/uf-urx",
        send: Send::Get,
        expect_flags: &["UF", "URX"],
        expect_grpc_status: None,
        expect_code: 503,
    },
    Case {
        name: "uc",
        path: "/uc",
        send: Send::Get,
        expect_flags: &["UC"],
        expect_grpc_status: None,
        expect_code: 503,
    },
    Case {
        name: "nr",
        path: "/nowhere",
        send: Send::Get,
        expect_flags: &["NR"],
        expect_grpc_status: None,
        expect_code: 404,
    },
    Case {
        name: "uh-empty",
        path: "/uh-empty",
        send: Send::Get,
        expect_flags: &["UH"],
        expect_grpc_status: None,
        expect_code: 503,
    },
    Case {
        name: "uh-health",
        path: "/uh-health",
        send: Send::Get,
        expect_flags: &["UH"],
        expect_grpc_status: None,
        expect_code: 503,
    },
    Case {
        name: "urx",
        path: "/urx",
        send: Send::Get,
        expect_flags: &["URX"],
        expect_grpc_status: None,
        expect_code: 503,
    },
    Case {
        name: "uo",
        path: "/uo",
        send: Send::Concurrent(6),
        expect_flags: &["UO"],
        expect_grpc_status: None,
        expect_code: 503,
    },
    Case {
        name: "ut",
        path: "/ut",
        send: Send::Get,
        expect_flags: &["UT"],
        expect_grpc_status: None,
        expect_code: 504,
    },
    Case {
        name: "nc",
        path: "/nc",
        send: Send::Get,
        expect_flags: &["NC"],
        expect_grpc_status: None,
        expect_code: 503,
    },
    Case {
        name: "dc",
        path: "/dc",
        send: Send::Disconnect,
        expect_flags: &["DC"],
        expect_grpc_status: None,
        expect_code: 0,
    },
    Case {
        name: "rbac",
        path: "/rbac",
        send: Send::Get,
        expect_flags: &[],
        expect_grpc_status: None,
        expect_code: 403,
    },
    Case {
        name: "direct",
        path: "/direct",
        send: Send::Get,
        expect_flags: &[],
        expect_grpc_status: None,
        expect_code: 502,
    },
    Case {
        name: "grpc-ok",
        path: "/grpc/0",
        send: Send::Grpc,
        expect_flags: &[],
        expect_grpc_status: Some(0),
        expect_code: 200,
    },
    Case {
        name: "grpc-unavailable",
        path: "/grpc/14",
        send: Send::Grpc,
        expect_flags: &[],
        expect_grpc_status: Some(14),
        expect_code: 200,
    },
];

/// The plugin configuration the scenario uses unless a test asks for another: a short flush
/// interval so tests wait less.
pub const DEFAULT_FILTER_CONFIG: &str =
    r#"{"collector_cluster": "meshwhy-collector", "flush_interval_ms": 100}"#;

/// How to start the lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The filter's plugin configuration JSON.
    pub filter_config: String,
    /// Start the collector with the lab (true), or only reserve its port so a test can start it
    /// later with [`Lab::start_collector`] (the collector-outage case).
    pub collector_running: bool,
    /// More entries for the listener's `access_log` list, as YAML at its indentation (e.g. one
    /// file logger per Istio format era, see [`crate::eras::access_loggers`]); `{ACCESS_LOG}` in
    /// them is the main access log's path. Empty for none.
    pub extra_access_logs: String,
    /// The collector's configuration (its store: in memory unless a test or the demo says
    /// otherwise).
    pub collector: meshwhy_collector::CollectorConfig,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            filter_config: DEFAULT_FILTER_CONFIG.to_owned(),
            collector_running: true,
            extra_access_logs: String::new(),
            collector: meshwhy_collector::CollectorConfig::default(),
        }
    }
}

/// Everything the scenario runs; dropping it stops Envoy, the upstreams and the collector.
#[derive(Debug)]
pub struct Lab {
    pub envoy: Envoy,
    pub client: Client,
    /// The collector, when running.
    pub collector: Option<CollectorHandle>,
    /// Where Envoy's collector cluster points.
    pub collector_addr: SocketAddr,
    /// The collector's port while it is not running (refuses connections).
    collector_port: Option<ClosedPort>,
    pub upstream: Upstream,
    pub closer: Closer,
    /// The port behind the `closed` cluster (UF).
    pub closed: ClosedPort,
}

impl Lab {
    /// Starts the collector (unless told not to), the upstreams and Envoy with the filter.
    pub async fn start(options: LabOptions) -> Result<Self> {
        let (collector, collector_port, collector_addr) = if options.collector_running {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let handle = meshwhy_collector::spawn(listener, options.collector.clone())
                .await
                .context("start the collector")?;
            let addr = handle.addr;
            (Some(handle), None, addr)
        } else {
            let port = ClosedPort::reserve()?;
            let addr = port.addr;
            (None, Some(port), addr)
        };
        let upstream = Upstream::start().await?;
        let closer = Closer::start().await?;
        let closed = ClosedPort::reserve()?;
        let config = envoy_config(&EnvoyAddrs {
            wasm: paths::filter_wasm()?.display().to_string(),
            collector: collector_addr,
            upstream: upstream.addr,
            closer: closer.addr,
            closed: closed.addr,
            filter_config: options.filter_config,
        });
        let config = with_access_logs(&config, &options.extra_access_logs)?;
        let envoy = Envoy::start("pipeline", &config).await?;
        let client = Client::new(envoy.listener("main")?);
        Ok(Self {
            envoy,
            client,
            collector,
            collector_addr,
            collector_port,
            upstream,
            closer,
            closed,
        })
    }

    /// Starts the collector on the reserved address Envoy's collector cluster points at.
    pub async fn start_collector(&mut self) -> Result<()> {
        let port = self
            .collector_port
            .take()
            .context("the collector is already running")?;
        let listener = port
            .listen()
            .context("listen on the collector's reserved port")?;
        self.collector = Some(meshwhy_collector::spawn(listener, Default::default()).await?);
        Ok(())
    }

    /// Envoy's listener the client sends to.
    pub fn client_addr(&self) -> SocketAddr {
        self.client.listener()
    }

    /// The running collector's gRPC endpoint URL.
    pub fn collector_url(&self) -> String {
        format!("http://{}", self.collector_addr)
    }

    /// Sends one case; returns the request ids used.
    pub async fn send(&self, case: &Case, run: &str) -> Result<Vec<String>> {
        match case.send {
            Send::Get => {
                let id = format!("{run}-{}", case.name);
                self.client.get(VHOST, case.path, &id).await?;
                Ok(vec![id])
            }
            Send::Grpc => {
                let id = format!("{run}-{}", case.name);
                let grpc = [("content-type", "application/grpc")];
                self.client.get_with(VHOST, case.path, &id, &grpc).await?;
                Ok(vec![id])
            }
            Send::Disconnect => {
                let id = format!("{run}-{}", case.name);
                self.client
                    .get_and_disconnect(VHOST, case.path, &id, Duration::from_millis(200))
                    .await?;
                Ok(vec![id])
            }
            Send::Concurrent(n) => {
                let mut tasks = Vec::new();
                for i in 0..n {
                    let client = self.client.clone();
                    let id = format!("{run}-{}-{i}", case.name);
                    let path = case.path;
                    tasks.push(tokio::spawn(
                        async move { client.get(VHOST, path, &id).await },
                    ));
                }
                let mut ids = Vec::new();
                for task in tasks {
                    ids.push(task.await??.request_id);
                }
                Ok(ids)
            }
        }
    }

    /// Envoy's access log so far.
    pub fn access_log(&self) -> Result<Vec<access_log::LogLine>> {
        access_log::read(&self.envoy.access_log)
    }
}

/// Addresses substituted into the Envoy config.
#[derive(Debug, Clone)]
pub struct EnvoyAddrs {
    pub wasm: String,
    pub collector: SocketAddr,
    pub upstream: SocketAddr,
    pub closer: SocketAddr,
    pub closed: SocketAddr,
    pub filter_config: String,
}

/// The listener's `access_log:` line in [`envoy_config`]'s output.
const ACCESS_LOG_LIST: &str = "          access_log:\n";

/// `config` with `entries` prepended to the listener's `access_log` list.
fn with_access_logs(config: &str, entries: &str) -> Result<String> {
    if entries.is_empty() {
        return Ok(config.to_owned());
    }
    anyhow::ensure!(
        config.contains(ACCESS_LOG_LIST),
        "the scenario's Envoy config has no `access_log:` list to add loggers to"
    );
    Ok(config.replacen(ACCESS_LOG_LIST, &format!("{ACCESS_LOG_LIST}{entries}"), 1))
}

/// Indents every line of `text` by `n` spaces.
pub fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else {
                format!("{pad}{line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The README's snippets with the module path, collector address and plugin config filled in.
pub fn snippets(addrs: &EnvoyAddrs) -> (String, String) {
    let filter = HTTP_FILTER_SNIPPET
        .replace("/etc/envoy/meshwhy_filter.wasm", &addrs.wasm)
        .replace(
            r#"{"collector_cluster": "meshwhy-collector"}"#,
            &addrs.filter_config,
        );
    let cluster = COLLECTOR_CLUSTER_SNIPPET
        .replace(
            "meshwhy-collector.meshwhy.svc.cluster.local",
            &addrs.collector.ip().to_string(),
        )
        .replace(
            "port_value: 9900",
            &format!("port_value: {}", addrs.collector.port()),
        );
    (filter, cluster)
}

fn static_cluster(name: &str, addr: SocketAddr, extra: &str) -> String {
    format!(
        r#"
  - name: "{name}"
    type: STATIC
    connect_timeout: 0.5s
{extra}
    load_assignment:
      cluster_name: "{name}"
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: {ip}, port_value: {port}}}}}
          metadata:
            filter_metadata:
              envoy.transport_socket_match: {{tlsMode: istio}}"#,
        ip = addr.ip(),
        port = addr.port()
    )
}

/// The scenario's Envoy bootstrap.
pub fn envoy_config(addrs: &EnvoyAddrs) -> String {
    let (filter, cluster) = snippets(addrs);
    let dr_metadata = format!(
        "    metadata:\n      filter_metadata:\n        istio: {{config: \"{DR_PROVENANCE}\", subset: v1}}"
    );
    let clusters = [
        static_cluster(UPSTREAM_CLUSTER, addrs.upstream, &dr_metadata),
        static_cluster("outbound|80||closed.e2e.svc.cluster.local", addrs.closed, ""),
        static_cluster("outbound|80||closer.e2e.svc.cluster.local", addrs.closer, ""),
        static_cluster(
            "outbound|80||tiny.e2e.svc.cluster.local",
            addrs.upstream,
            "    circuit_breakers:\n      thresholds:\n      - {max_connections: 1, max_pending_requests: 1, max_requests: 1, max_retries: 0}",
        ),
        static_cluster(
            "outbound|80||unhealthy.e2e.svc.cluster.local",
            addrs.upstream,
            "    common_lb_config: {healthy_panic_threshold: {value: 0}}\n    health_checks:\n    - timeout: 1s\n      interval: 60s\n      unhealthy_threshold: 1\n      healthy_threshold: 1\n      http_health_check: {path: /status/503}",
        ),
        r#"
  - name: "outbound|80||empty.e2e.svc.cluster.local"
    type: STATIC
    connect_timeout: 0.5s
    load_assignment: {cluster_name: "outbound|80||empty.e2e.svc.cluster.local", endpoints: []}"#
            .to_owned(),
    ]
    .concat();
    let head = sidecar_head("e2e");
    format!(
        r#"{head}
          preserve_external_request_id: true
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{{ACCESS_LOG}}"
              log_format:
                json_format:{json_format}
          route_config:
            name: "80"
            validate_clusters: false
            virtual_hosts:
            - name: "{VHOST}"
              domains: ["*"]
              routes:
              - name: ok
                match: {{path: /ok}}
                route: {{cluster: "{UPSTREAM_CLUSTER}"}}
                metadata: {{filter_metadata: {{istio: {{config: "{VS_PROVENANCE}"}}}}}}
              - name: app-503
                match: {{prefix: /app503}}
                route: {{cluster: "{UPSTREAM_CLUSTER}", prefix_rewrite: /status/503}}
                metadata: {{filter_metadata: {{istio: {{config: "{VS_PROVENANCE}"}}}}}}
              - name: uf
                match: {{path: /uf}}
                route: {{cluster: "outbound|80||closed.e2e.svc.cluster.local"}}
              - name: uf-urx
                match: {{path: /uf-urx}}
                route:
                  cluster: "outbound|80||closed.e2e.svc.cluster.local"
                  retry_policy: {{retry_on: connect-failure, num_retries: 2}}
              - name: uc
                match: {{path: /uc}}
                route: {{cluster: "outbound|80||closer.e2e.svc.cluster.local"}}
              - name: uh-empty
                match: {{path: /uh-empty}}
                route: {{cluster: "outbound|80||empty.e2e.svc.cluster.local"}}
              - name: uh-health
                match: {{path: /uh-health}}
                route: {{cluster: "outbound|80||unhealthy.e2e.svc.cluster.local"}}
              - name: urx
                match: {{path: /urx}}
                route:
                  cluster: "{UPSTREAM_CLUSTER}"
                  prefix_rewrite: /status/503
                  retry_policy: {{retry_on: 5xx, num_retries: 2}}
              - name: uo
                match: {{path: /uo}}
                route: {{cluster: "outbound|80||tiny.e2e.svc.cluster.local", prefix_rewrite: /delay/300}}
              - name: ut
                match: {{path: /ut}}
                route: {{cluster: "{UPSTREAM_CLUSTER}", prefix_rewrite: /delay/2000, timeout: 0.25s}}
              - name: nc
                match: {{path: /nc}}
                route: {{cluster: "outbound|80||missing.e2e.svc.cluster.local"}}
              - name: dc
                match: {{path: /dc}}
                route: {{cluster: "{UPSTREAM_CLUSTER}", prefix_rewrite: /delay/3000}}
              - name: rbac
                match: {{path: /rbac}}
                route: {{cluster: "{UPSTREAM_CLUSTER}", prefix_rewrite: /ok}}
                typed_per_filter_config:
                  envoy.filters.http.rbac:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
                    rbac:
                      rules:
                        action: DENY
                        policies:
                          "{RBAC_POLICY}":
                            permissions: [{{any: true}}]
                            principals: [{{any: true}}]
              - name: grpc
                match: {{prefix: /grpc/}}
                route: {{cluster: "{UPSTREAM_CLUSTER}"}}
              - name: direct
                match: {{path: /direct}}
                direct_response: {{status: 502}}
                metadata: {{filter_metadata: {{istio: {{config: "{VS_PROVENANCE}"}}}}}}
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
{filter}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{cluster}{clusters}
"#,
        json_format = indent(access_log::JSON_FORMAT, 0),
        filter = indent(&filter, 10),
        cluster = indent(&cluster, 2),
    )
}

/// Reads what the collector holds, over its real gRPC Query API.
pub mod query {
    use anyhow::Result;
    use meshwhy_proto::v1::{
        ListCountersRequest, ListProxiesRequest, ListRecordsRequest, ProxyCounter, ProxyStatus,
        StoredRecord, query_client::QueryClient,
    };

    /// Records with `request_id`.
    pub async fn records(url: &str, request_id: &str) -> Result<Vec<StoredRecord>> {
        let mut client = QueryClient::connect(url.to_owned()).await?;
        let request = ListRecordsRequest {
            request_id: request_id.to_owned(),
            ..Default::default()
        };
        Ok(client.list_records(request).await?.into_inner().records)
    }

    /// Every stored record (up to `limit`).
    pub async fn all_records(url: &str, limit: u32) -> Result<Vec<StoredRecord>> {
        let mut client = QueryClient::connect(url.to_owned()).await?;
        let request = ListRecordsRequest {
            limit,
            ..Default::default()
        };
        Ok(client.list_records(request).await?.into_inner().records)
    }

    /// Every success counter.
    pub async fn counters(url: &str) -> Result<Vec<ProxyCounter>> {
        let mut client = QueryClient::connect(url.to_owned()).await?;
        Ok(client
            .list_counters(ListCountersRequest::default())
            .await?
            .into_inner()
            .counters)
    }

    /// The sum of counters with this route, cluster and code.
    pub async fn counted(url: &str, route: &str, cluster: &str, code: u32) -> Result<u64> {
        Ok(counters(url)
            .await?
            .iter()
            .filter_map(|counter| counter.counter.as_ref())
            .filter(|c| c.route_name == route && c.cluster == cluster && c.response_code == code)
            .map(|c| c.count)
            .sum())
    }

    /// Every reporting proxy instance.
    pub async fn proxies(url: &str) -> Result<Vec<ProxyStatus>> {
        let mut client = QueryClient::connect(url.to_owned()).await?;
        Ok(client
            .list_proxies(ListProxiesRequest {})
            .await?
            .into_inner()
            .proxies)
    }
}

/// The start of a client sidecar's bootstrap shaped like istiod's: the node (id and metadata of
/// pod `client-7d9f-abcde` in `namespace`), a port-0 admin, and the outbound listener `main` up
/// to its `http_connection_manager`'s `stat_prefix`; the caller goes on with the HCM's fields.
pub fn sidecar_head(namespace: &str) -> String {
    format!(
        r#"node:
  id: "sidecar~127.0.0.1~client-7d9f-abcde.{namespace}~{namespace}.svc.cluster.local"
  cluster: client.{namespace}
  metadata:
    NAME: client-7d9f-abcde
    NAMESPACE: {namespace}
    WORKLOAD_NAME: client
    SERVICE_ACCOUNT: client
    ISTIO_VERSION: "1.28.0"
    CLUSTER_ID: Kubernetes
    MESH_ID: cluster.local
    LABELS: {{app: client, version: v1}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: main
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    traffic_direction: OUTBOUND
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: main"#
    )
}
