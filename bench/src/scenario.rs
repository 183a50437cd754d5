//! The Envoy scenarios measured side by side, and the Envoy bootstrap each one runs. Every
//! scenario shares one listener, one route table and one upstream cluster shaped like an Istio
//! sidecar's (cluster `outbound|80|v1|…`, VirtualService and DestinationRule provenance in the
//! metadata, `tlsMode: istio` on the endpoint); they differ only in the HTTP filter in front of
//! the router, the access logger, and which path the traffic takes.

use meshwhy_e2e::{
    access_log::JSON_FORMAT,
    scenario::{EnvoyAddrs, indent, sidecar_head, snippets},
};
use std::net::SocketAddr;

/// The virtual host (Istio shape: `<host>:<port>`); also the requests' authority.
pub const AUTHORITY: &str = "backend.bench.svc.cluster.local:80";
/// The upstream cluster, named like istiod names it.
pub const UPSTREAM_CLUSTER: &str = "outbound|80|v1|backend.bench.svc.cluster.local";
const VS_PROVENANCE: &str = "/apis/networking.istio.io/v1/namespaces/bench/virtual-service/backend";
const DR_PROVENANCE: &str =
    "/apis/networking.istio.io/v1/namespaces/bench/destination-rule/backend";
/// The ALS sink's cluster.
const ALS_CLUSTER: &str = "als-sink";
/// meshwhy's plugin configuration: the README's, all defaults (1 s flush, 500-record batches).
pub const MESHWHY_CONFIG: &str = r#"{"collector_cluster": "meshwhy-collector"}"#;

/// What sits in Envoy besides the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Nothing: the baseline.
    RouterOnly,
    /// The empty wasm filter, or one of its variants that each price one piece of work.
    EmptyWasm(EmptyVariant),
    /// The meshwhy filter, shipping to an in-process collector.
    Meshwhy,
    /// Envoy's native gRPC access logger, streaming to an in-process sink.
    NativeAls,
    /// Envoy's file access log with a 14-field JSON format.
    JsonLog,
}

/// What the empty filter does per request (its plugin configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyVariant {
    /// Nothing: the V8 floor.
    Floor,
    /// Reads this many properties in `on_log` (5 = meshwhy's success-path reads).
    Reads(usize),
    /// Fetches the same first N values with one CEL expression (Envoy's `expr_evaluate`
    /// foreign function) instead of N reads.
    Cel(usize),
}

impl EmptyVariant {
    /// The plugin configuration the empty filter understands.
    fn config(self) -> String {
        match self {
            Self::Floor => String::new(),
            Self::Reads(n) => n.to_string(),
            Self::Cel(n) => format!("cel{n}"),
        }
    }
}

/// Which path every request of a scenario takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// `/ok` → 200 from the upstream.
    Success,
    /// `/fail` → rewritten to `/status/503`: the app's own 503, a full meshwhy record each.
    Failure,
}

impl Traffic {
    /// Request path.
    pub fn path(self) -> &'static str {
        match self {
            Self::Success => "/ok",
            Self::Failure => "/fail",
        }
    }

    /// The status every answer must carry.
    pub fn status(self) -> u16 {
        match self {
            Self::Success => 200,
            Self::Failure => 503,
        }
    }
}

/// One measured configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Short stable name (tables, JSON, `--only`).
    pub name: String,
    /// What Envoy runs.
    pub setup: Setup,
    /// What the load is.
    pub traffic: Traffic,
}

impl Scenario {
    fn new(name: &str, setup: Setup, traffic: Traffic) -> Self {
        Self {
            name: name.to_owned(),
            setup,
            traffic,
        }
    }
}

/// Every scenario, in table order. `read_variants` adds one empty-filter read-cost variant per
/// entry, `cel_variants` one variant fetching that many values with a single CEL evaluation.
pub fn all(read_variants: &[usize], cel_variants: &[usize]) -> Vec<Scenario> {
    let mut scenarios = vec![
        Scenario::new("router", Setup::RouterOnly, Traffic::Success),
        Scenario::new("router-fail", Setup::RouterOnly, Traffic::Failure),
        Scenario::new(
            "empty-wasm",
            Setup::EmptyWasm(EmptyVariant::Floor),
            Traffic::Success,
        ),
    ];
    let variants = read_variants
        .iter()
        .map(|&n| (format!("empty-wasm+{n}reads"), EmptyVariant::Reads(n)))
        .chain(
            cel_variants
                .iter()
                .map(|&n| (format!("empty-wasm+cel{n}"), EmptyVariant::Cel(n))),
        );
    for (name, variant) in variants {
        scenarios.push(Scenario::new(
            &name,
            Setup::EmptyWasm(variant),
            Traffic::Success,
        ));
    }
    scenarios.extend([
        Scenario::new("meshwhy", Setup::Meshwhy, Traffic::Success),
        Scenario::new("meshwhy-fail", Setup::Meshwhy, Traffic::Failure),
        Scenario::new("native-als", Setup::NativeAls, Traffic::Success),
        Scenario::new("json-log", Setup::JsonLog, Traffic::Success),
    ]);
    scenarios
}

/// Where a scenario's Envoy sends things.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// The upstream.
    pub upstream: SocketAddr,
    /// The meshwhy module.
    pub meshwhy_wasm: String,
    /// The empty module.
    pub empty_wasm: String,
    /// The collector, for [`Setup::Meshwhy`].
    pub collector: Option<SocketAddr>,
    /// The ALS sink, for [`Setup::NativeAls`].
    pub als: Option<SocketAddr>,
}

/// The Envoy bootstrap for `scenario`. `{ACCESS_LOG}` is left for the harness to fill in.
pub fn envoy_config(scenario: &Scenario, wiring: &Wiring) -> anyhow::Result<String> {
    let mut http_filters = String::new();
    let mut clusters = upstream_cluster(wiring.upstream);
    let mut access_log = String::new();
    match scenario.setup {
        Setup::RouterOnly => {}
        Setup::EmptyWasm(variant) => {
            // The README's own filter entry with only the module and its configuration swapped,
            // so the floor runs with exactly meshwhy's VM settings (V8, vm_id, failure policy).
            let (filter, _) = snippets(&addrs(
                &wiring.empty_wasm,
                wiring.upstream,
                &variant.config(),
            ));
            http_filters = indent(&filter, 10) + "\n";
        }
        Setup::Meshwhy => {
            let collector = wiring
                .collector
                .ok_or_else(|| anyhow::anyhow!("the meshwhy scenario needs a collector"))?;
            let mut addrs = addrs(&wiring.meshwhy_wasm, wiring.upstream, MESHWHY_CONFIG);
            addrs.collector = collector;
            let (filter, cluster) = snippets(&addrs);
            http_filters = indent(&filter, 10) + "\n";
            clusters = format!("{}\n{clusters}", indent(&cluster, 2));
        }
        Setup::NativeAls => {
            let sink = wiring
                .als
                .ok_or_else(|| anyhow::anyhow!("the native-ALS scenario needs a sink"))?;
            // Envoy's defaults for buffering (1 s / 16 KiB): what a user gets out of the box.
            access_log = format!(
                r#"
          access_log:
          - name: envoy.access_loggers.http_grpc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig
              common_config:
                log_name: meshwhy-bench
                transport_api_version: V3
                grpc_service: {{envoy_grpc: {{cluster_name: {ALS_CLUSTER}}}}}"#
            );
            clusters = format!("{clusters}\n{}", grpc_cluster(ALS_CLUSTER, sink));
        }
        Setup::JsonLog => {
            access_log = format!(
                r#"
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{{ACCESS_LOG}}"
              log_format:
                json_format:{JSON_FORMAT}"#
            );
        }
    }
    let head = sidecar_head("bench");
    Ok(format!(
        r#"{head}{access_log}
          route_config:
            name: "80"
            virtual_hosts:
            - name: "{AUTHORITY}"
              domains: ["*"]
              routes:
              - name: ok
                match: {{path: /ok}}
                route: {{cluster: "{UPSTREAM_CLUSTER}"}}
                metadata: {{filter_metadata: {{istio: {{config: "{VS_PROVENANCE}"}}}}}}
              - name: fail
                match: {{path: /fail}}
                route: {{cluster: "{UPSTREAM_CLUSTER}", prefix_rewrite: /status/503}}
                metadata: {{filter_metadata: {{istio: {{config: "{VS_PROVENANCE}"}}}}}}
          http_filters:
{http_filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{clusters}
"#
    ))
}

/// The harness's snippet inputs; only the module, the config and (for meshwhy) the collector
/// matter here, the other addresses are placeholders the snippets do not use.
fn addrs(wasm: &str, upstream: SocketAddr, filter_config: &str) -> EnvoyAddrs {
    EnvoyAddrs {
        wasm: wasm.to_owned(),
        collector: upstream,
        upstream,
        closer: upstream,
        closed: upstream,
        filter_config: filter_config.to_owned(),
    }
}

fn upstream_cluster(addr: SocketAddr) -> String {
    format!(
        r#"  - name: "{UPSTREAM_CLUSTER}"
    type: STATIC
    connect_timeout: 1s
    metadata:
      filter_metadata:
        istio: {{config: "{DR_PROVENANCE}", subset: v1}}
    load_assignment:
      cluster_name: "{UPSTREAM_CLUSTER}"
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

fn grpc_cluster(name: &str, addr: SocketAddr) -> String {
    format!(
        r#"  - name: "{name}"
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{}}
    load_assignment:
      cluster_name: "{name}"
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: {ip}, port_value: {port}}}}}"#,
        ip = addr.ip(),
        port = addr.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiring() -> Wiring {
        let addr: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        Wiring {
            upstream: addr,
            meshwhy_wasm: "/m.wasm".into(),
            empty_wasm: "/e.wasm".into(),
            collector: Some(addr),
            als: Some(addr),
        }
    }

    #[test]
    fn each_setup_renders_only_its_own_pieces() {
        for scenario in all(&[5], &[5]) {
            let yaml = envoy_config(&scenario, &wiring()).unwrap();
            let has = |needle: &str| yaml.contains(needle);
            assert_eq!(
                has("/m.wasm"),
                scenario.setup == Setup::Meshwhy,
                "{}",
                scenario.name
            );
            assert_eq!(
                has("/e.wasm"),
                matches!(scenario.setup, Setup::EmptyWasm(_))
            );
            assert_eq!(has("http_grpc"), scenario.setup == Setup::NativeAls);
            assert_eq!(has("{ACCESS_LOG}"), scenario.setup == Setup::JsonLog);
            assert!(has("envoy.filters.http.router"));
        }
    }
}
