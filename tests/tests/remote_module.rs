//! End-to-end: a real Envoy 1.40 loads the filter module from the real collector process over
//! HTTP (`vm_config.code.remote`, the collector's `/filter.wasm`, the sha256 from its
//! `/filter.wasm.sha256`), traffic flows and records arrive; with a wrong sha256 Envoy fetches
//! the module, refuses it, and what happens to traffic depends on the failure policy — asserted
//! as Envoy 1.40 really behaves, so the deploy docs can rely on it.

use meshwhy_e2e::{
    client::Client,
    collector_process::CollectorProcess,
    envoy::{self, Envoy},
    paths,
    scenario::{self, query},
    upstream::Upstream,
    wait,
};
use std::net::SocketAddr;

/// The upstream's cluster; no `|` in it, so its stats can be read by name (a regex filter).
const BACKEND: &str = "backend";

/// The URL a WasmPlugin names; Envoy sends it to the `meshwhy-module` cluster, which points at
/// the collector's HTTP port here as istiod's `outbound|9901||…` cluster does in a mesh.
const MODULE_URL: &str = "http://meshwhy-collector.meshwhy.svc.cluster.local:9901/filter.wasm";

/// An Envoy whose meshwhy filter comes from `module_http` with `sha256`, under `policy` (a line
/// of the Wasm `PluginConfig`, e.g. `failure_policy: FAIL_OPEN`, or empty for Envoy's default).
fn envoy_config(
    module_http: SocketAddr,
    sha256: &str,
    policy: &str,
    collector: SocketAddr,
    upstream: SocketAddr,
) -> String {
    let head = scenario::sidecar_head("e2e");
    let cluster = |name: &str, addr: SocketAddr, extra: &str| {
        format!(
            r#"
  - name: "{name}"
    type: STATIC
    connect_timeout: 1s{extra}
    load_assignment:
      cluster_name: "{name}"
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: {ip}, port_value: {port}}}}}}}"#,
            ip = addr.ip(),
            port = addr.port()
        )
    };
    let http2 = r#"
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}"#;
    format!(
        r#"{head}
          route_config:
            name: "80"
            virtual_hosts:
            - name: "{vhost}"
              domains: ["*"]
              routes:
              - name: ok
                match: {{prefix: /}}
                route: {{cluster: "{upstream_cluster}"}}
          http_filters:
          - name: meshwhy
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: meshwhy
                root_id: meshwhy
                {policy}
                vm_config:
                  vm_id: meshwhy
                  runtime: envoy.wasm.runtime.v8
                  code:
                    remote:
                      http_uri: {{uri: "{MODULE_URL}", cluster: meshwhy-module, timeout: 10s}}
                      sha256: "{sha256}"
                      retry_policy: {{num_retries: 1}}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{{"collector_cluster": "meshwhy-collector", "flush_interval_ms": 100, "success_sample_rate": 1.0}}'
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:{module}{collector}{upstream}
"#,
        vhost = scenario::VHOST,
        upstream_cluster = BACKEND,
        module = cluster("meshwhy-module", module_http, ""),
        collector = cluster("meshwhy-collector", collector, http2),
        upstream = cluster(BACKEND, upstream, ""),
    )
}

/// The collector serving the built module, and the sha256 it publishes (a real HTTP GET).
async fn collector() -> anyhow::Result<(CollectorProcess, String)> {
    let wasm = paths::filter_wasm()?;
    let collector = CollectorProcess::start(Some(&wasm)).await?;
    let published =
        envoy::http_get(&format!("http://{}/filter.wasm.sha256", collector.http)).await?;
    let sha256 = published
        .strip_suffix('\n')
        .unwrap_or(&published)
        .to_owned();
    assert_eq!(sha256.len(), 64, "{published:?}");
    assert!(
        sha256.bytes().all(|b| b.is_ascii_hexdigit()),
        "{published:?}"
    );
    let bytes = std::fs::read(&wasm)?;
    assert_eq!(
        sha256,
        meshwhy_collector::module::sha256_hex(&bytes),
        "the published sha256 is the module's"
    );
    Ok((collector, sha256))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_loads_the_module_from_the_collector_with_its_sha256_checked() -> anyhow::Result<()> {
    let (mut collector, sha256) = collector().await?;
    let upstream = Upstream::start().await?;
    let config = envoy_config(
        collector.http,
        &sha256,
        "failure_policy: FAIL_OPEN",
        collector.grpc,
        upstream.addr,
    );
    let envoy = Envoy::start("remote-module", &config).await?;
    // Envoy fetched the module from the collector (the init manager waits for it).
    assert!(
        envoy
            .stat("cluster.meshwhy-module.upstream_rq_200")
            .await?
            .unwrap_or(0)
            >= 1,
        "{}",
        envoy.log_text()
    );
    assert!(
        !envoy.log_text().contains("failed to load"),
        "{}",
        envoy::tail(&envoy.log, 20)
    );
    let client = Client::new(envoy.listener("main")?);
    let reply = client.get(scenario::VHOST, "/ok", "remote-ok").await?;
    assert_eq!(reply.status, 200);
    let url = collector.url();
    let records = wait::until(
        "the record of the request through the remote module",
        || {
            let url = url.clone();
            async move {
                let records = query::records(&url, "remote-ok").await.ok()?;
                (!records.is_empty()).then_some(records)
            }
        },
    )
    .await?;
    let record = records[0].record.as_ref().expect("a record");
    assert_eq!(record.response_code, 200);
    assert_eq!(record.cluster, BACKEND);
    assert!(record.sampled_success, "{record:?}");
    assert!(collector.is_running());
    Ok(())
}

/// What Envoy 1.40 does with a module whose bytes do not match `sha256`, per failure policy:
/// it fetches it (twice: one retry), refuses it ("Plugin meshwhy failed to load"), stays LIVE,
/// and then either skips the filter (FAIL_OPEN, or the older `fail_open: true`) or answers every
/// request on that listener 503 itself (no policy, FAIL_CLOSED, FAIL_RELOAD) — the outage an
/// observer must never cause, hence `failStrategy: FAIL_OPEN` in deploy/istio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sha256_is_refused_and_only_fail_open_keeps_traffic_flowing() -> anyhow::Result<()>
{
    let (collector, sha256) = collector().await?;
    let wrong = meshwhy_collector::module::sha256_hex(b"some other module");
    assert_ne!(wrong, sha256);
    let upstream = Upstream::start().await?;
    let cases = [
        ("failure_policy: FAIL_OPEN", 200),
        ("fail_open: true", 200),
        ("", 503),
        ("failure_policy: FAIL_CLOSED", 503),
        ("failure_policy: FAIL_RELOAD", 503),
    ];
    for (policy, expected) in cases {
        let config = envoy_config(
            collector.http,
            &wrong,
            policy,
            collector.grpc,
            upstream.addr,
        );
        let envoy = Envoy::start("remote-module-wrong-sha", &config).await?;
        let fetched = envoy
            .stat("cluster.meshwhy-module.upstream_rq_200")
            .await?
            .unwrap_or(0);
        assert!(fetched >= 1, "{policy:?}: the module was fetched");
        let log = envoy.log_text();
        assert!(
            log.contains("Plugin meshwhy failed to load"),
            "{policy:?}: Envoy refused the module:\n{}",
            envoy::tail(&envoy.log, 20)
        );
        let client = Client::new(envoy.listener("main")?);
        let id = format!("wrong-sha-{}", expected);
        let reply = client.get(scenario::VHOST, "/ok", &id).await?;
        assert_eq!(reply.status, expected, "{policy:?}");
        if expected == 503 {
            // Envoy answered itself: the upstream never saw the request.
            assert_eq!(
                envoy
                    .stat(&format!("cluster.{BACKEND}.upstream_rq_total"))
                    .await?
                    .unwrap_or(0),
                0,
                "{policy:?}"
            );
        }
    }
    Ok(())
}
