//! The mesh lab end to end: Istio-shaped sidecars (real Envoy 1.40 + the meshwhy filter) on
//! loopback reproduce the classic Istio failures, and each test asserts exactly what
//! `tests/lab/README.md`'s visibility table says: which sidecar records the failure (client
//! outbound, server inbound, none), with which code, flags and details, and which Istio resource
//! the provenance implicates.

use meshwhy_e2e::lab::observe;
use meshwhy_e2e::lab::{
    model::{cluster_name, dr_provenance, fqdn, vs_provenance},
    pki::spiffe_id,
    scenarios::{self, Outcome, canary, routing, security},
};
use meshwhy_proto::v1::{DecisionRecord, Direction, Finding};
use std::net::SocketAddr;

/// Starts a collector for one test.
async fn collector() -> anyhow::Result<(meshwhy_collector::CollectorHandle, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handle = meshwhy_collector::spawn(listener, Default::default()).await?;
    let addr = handle.addr;
    Ok((handle, addr))
}

/// Runs scenario `key` against its own collector (kept alive for follow-up queries).
async fn run(key: &str) -> anyhow::Result<(meshwhy_collector::CollectorHandle, Outcome)> {
    let (handle, addr) = collector().await?;
    let outcome = scenarios::run(key, addr).await?;
    Ok((handle, outcome))
}

fn url(collector: &meshwhy_collector::CollectorHandle) -> String {
    format!("http://{}", collector.addr)
}

/// The findings `meshwhy explain -n <ns>` gives, as cause ids.
async fn causes(url: &str, ns: &str) -> anyhow::Result<Vec<Finding>> {
    Ok(observe::explain(url, ns).await?.findings)
}

/// The one finding of `ns` with cause `cause` (fails listing what explain said otherwise).
async fn finding(url: &str, ns: &str, cause: &str) -> anyhow::Result<Finding> {
    let findings = causes(url, ns).await?;
    let mut matching: Vec<Finding> = findings
        .iter()
        .filter(|f| f.cause == cause)
        .cloned()
        .collect();
    anyhow::ensure!(
        matching.len() == 1,
        "expected one {cause} finding in {ns}, explain said: {:#?}",
        findings
            .iter()
            .map(|f| (&f.cause, &f.title))
            .collect::<Vec<_>>()
    );
    Ok(matching.remove(0))
}

/// (kind, namespace, name, subset) of the implicated resource.
fn resource(finding: &Finding) -> (String, String, String, String) {
    let r = finding.resource.clone().unwrap_or_default();
    (r.kind, r.namespace, r.name, r.subset)
}

fn named(kind: &str, ns: &str, name: &str, subset: &str) -> (String, String, String, String) {
    (
        kind.to_owned(),
        ns.to_owned(),
        name.to_owned(),
        subset.to_owned(),
    )
}

/// Requests of the finding that both sidecars of the hop recorded.
fn joined(finding: &Finding) -> u64 {
    finding
        .evidence
        .as_ref()
        .and_then(|e| e.hop.as_ref())
        .map_or(0, |hop| hop.joined)
}

/// The recording direction of a finding's group.
fn recorded_by(finding: &Finding) -> Direction {
    finding
        .group
        .as_ref()
        .and_then(|g| Direction::try_from(g.direction).ok())
        .unwrap_or(Direction::Unspecified)
}

/// The outcome Envoy decided, as the record carries it: (code, flag names, details).
fn decided(record: &DecisionRecord, flags: &[String]) -> (u32, Vec<String>, String) {
    (
        record.response_code,
        flags.to_vec(),
        record.response_code_details.clone(),
    )
}

fn expect(code: u32, flags: &[&str], details: &str) -> (u32, Vec<String>, String) {
    (
        code,
        flags.iter().map(|f| (*f).to_owned()).collect(),
        details.to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s08_app_error_is_confirmed_by_the_server_sidecar() -> anyhow::Result<()> {
    let (collector, outcome) = run("app_error").await?;
    let ns = "billing";
    let probe = outcome.probe("app-503")?;
    assert_eq!(probe.reply, Ok(503));
    let hop = &probe.hop;

    // Client sidecar: the upstream chose the code (via_upstream, no flag), not retried (Istio's
    // default retry policy excludes 503 since 1.24), over mTLS to the billing identity.
    let client = hop.client_record()?;
    assert_eq!(
        decided(client, &hop.client_flags()),
        expect(503, &[], "via_upstream")
    );
    assert_eq!(client.route_name, "default");
    assert_eq!(client.virtual_host, format!("{}:80", fqdn("billing", ns)));
    assert_eq!(client.cluster, cluster_name(80, "", &fqdn("billing", ns)));
    assert_eq!(client.attempt_count, 1);
    assert_eq!(client.endpoint_tls_mode, "istio");
    assert_eq!(client.upstream_tls_version, "TLSv1.3");
    assert_eq!(client.upstream_peer_principal, spiffe_id(ns, "billing"));
    assert!(hop.client_pod().starts_with("invoices-v1-"), "{hop:#?}");

    // Server sidecar, same request id: the app itself answered 503.
    assert_eq!(hop.server.len(), 1, "{hop:#?}");
    let server = hop.server_record()?;
    assert_eq!(
        decided(server, &hop.server_flags()),
        expect(503, &[], "via_upstream")
    );
    assert_eq!(server.route_name, "default");
    assert_eq!(server.virtual_host, "inbound|http|80");
    assert_eq!(server.cluster, "inbound|80||");
    assert!(server.downstream_mtls);
    assert_eq!(server.downstream_peer_principal, spiffe_id(ns, "invoices"));
    assert!(hop.server_pod().starts_with("billing-v1-"), "{hop:#?}");

    // The client's downstream is its own app (plaintext, nothing to record); the server's is
    // the client pod, whose address the hop join uses.
    assert!(!client.downstream_mtls);
    assert_eq!(client.source_address, "");
    assert!(!server.source_address.is_empty(), "{server:#?}");

    // The second failure's records come from the filters' caches: same facts, fresh request.
    let again = outcome.probe("app-503-again")?;
    assert_eq!(again.reply, Ok(503));
    let (again_client, again_server) = (again.hop.client_record()?, again.hop.server_record()?);
    assert_ne!(again_client.request_id, client.request_id);
    let cached = |r: &meshwhy_proto::v1::DecisionRecord| {
        (
            r.direction,
            r.route_name.clone(),
            r.virtual_host.clone(),
            r.cluster.clone(),
            r.route_provenance.clone(),
            r.cluster_provenance.clone(),
            r.endpoint_tls_mode.clone(),
            r.upstream_tls_version.clone(),
            r.upstream_peer_principal.clone(),
            r.downstream_peer_principal.clone(),
        )
    };
    assert_eq!(cached(again_client), cached(client));
    assert_eq!(cached(again_server), cached(server));
    assert!(!again_server.source_address.is_empty());

    // meshwhy: the app's own error, told from the server side, both hops joined.
    let found = finding(&url(&collector), ns, "app_returned_error").await?;
    assert_eq!(recorded_by(&found), Direction::Inbound);
    assert_eq!(joined(&found), 2);
    let one = observe::explain_request(&url(&collector), &hop.request_id).await?;
    assert_eq!(
        one.findings.first().map(|f| f.cause.as_str()),
        Some("app_returned_error")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s03_exact_match_misses_and_envoy_answers_nr() -> anyhow::Result<()> {
    let (collector, outcome) = run("no_route").await?;
    let ns = routing::NO_ROUTE_NS;
    let host = fqdn("status-api", ns);

    let exact = outcome.probe("exact")?;
    assert_eq!(exact.reply, Ok(200));
    assert!(exact.hop.client.is_empty(), "a success is only counted");

    let probe = outcome.probe("detailed")?;
    assert_eq!(probe.reply, Ok(404));
    let client = probe.hop.client_record()?;
    assert_eq!(
        decided(client, &probe.hop.client_flags()),
        expect(404, &["NR"], "route_not_found")
    );
    assert_eq!(client.path, "/api/health/detailed");
    assert_eq!(client.virtual_host, format!("{host}:80"));
    // NR carries no route, cluster or provenance: the VirtualService is known from the
    // successes counted on the same virtual host.
    assert_eq!(client.route_name, "");
    assert_eq!(client.cluster, "");
    assert_eq!(client.route_provenance, "");
    assert_eq!(client.upstream_host, "");
    assert!(probe.hop.server.is_empty(), "{:#?}", probe.hop);

    let counters =
        meshwhy_e2e::lab::observe::counters(&format!("http://{}", collector.addr), ns, "prober-v1")
            .await?;
    let counted = counters
        .iter()
        .filter_map(|c| c.counter.as_ref())
        .find(|c| c.route_name == "health-check")
        .expect("the exact match is counted");
    assert_eq!(counted.route_provenance, vs_provenance(ns, "status-api"));
    assert_eq!(counted.virtual_host, format!("{host}:80"));

    // meshwhy names the VirtualService from the successes on the same virtual host.
    let found = finding(&url(&collector), ns, "no_route").await?;
    assert_eq!(
        resource(&found),
        named("VirtualService", ns, "status-api", "")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s04_subset_without_destination_rule_is_nc() -> anyhow::Result<()> {
    let (collector, outcome) = run("no_cluster").await?;
    let ns = routing::NO_CLUSTER_NS;
    let probe = outcome.probe("subset-v2")?;
    assert_eq!(probe.reply, Ok(503));
    let client = probe.hop.client_record()?;
    assert_eq!(
        decided(client, &probe.hop.client_flags()),
        expect(503, &["NC"], "cluster_not_found")
    );
    assert_eq!(client.route_name, "catalog-v2");
    assert_eq!(client.route_provenance, vs_provenance(ns, "catalog"));
    assert_eq!(client.upstream_host, "");
    assert!(probe.hop.server.is_empty(), "{:#?}", probe.hop);

    let found = finding(&url(&collector), ns, "no_cluster").await?;
    assert_eq!(resource(&found), named("VirtualService", ns, "catalog", ""));
    assert_eq!(recorded_by(&found), Direction::Outbound);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s05_empty_subset_and_ejected_hosts_are_both_uh_but_differ() -> anyhow::Result<()> {
    let (collector, outcome) = run("no_healthy_upstream").await?;
    let ns = "ratings";

    let empty = outcome.probe("empty-subset")?;
    assert_eq!(empty.reply, Ok(503));
    let record = empty.hop.client_record()?;
    assert_eq!(
        decided(record, &empty.hop.client_flags()),
        expect(503, &["UH"], "no_healthy_upstream")
    );
    assert_eq!(record.cluster, cluster_name(80, "v3", &fqdn("ratings", ns)));
    assert_eq!(record.cluster_subset, "v3");
    assert_eq!(record.cluster_provenance, dr_provenance(ns, "ratings"));
    assert_eq!(record.route_name, "ratings-v3");
    assert_eq!(record.route_provenance, vs_provenance(ns, "ratings"));
    assert_eq!(record.upstream_host, "");
    assert!(empty.hop.server.is_empty());

    // The host that gets ejected first answered a 5xx itself (both sidecars saw it)…
    let trip = outcome.probe("trip")?;
    let trip_record = trip.hop.client_record()?;
    assert_eq!(
        decided(trip_record, &trip.hop.client_flags()),
        expect(503, &[], "via_upstream")
    );
    assert_ne!(trip_record.upstream_host, "");
    assert_eq!(trip.hop.server.len(), 1);

    // …then the same cluster answers UH: the cluster had a host, outlier detection took it.
    let ejected = outcome.probe("all-ejected")?;
    let record = ejected.hop.client_record()?;
    assert_eq!(
        decided(record, &ejected.hop.client_flags()),
        expect(503, &["UH"], "no_healthy_upstream")
    );
    assert_eq!(record.cluster, cluster_name(80, "", &fqdn("details", ns)));
    assert_eq!(record.cluster, trip_record.cluster);
    assert_eq!(record.cluster_provenance, dr_provenance(ns, "details"));
    assert_eq!(record.cluster_subset, "");
    assert_eq!(record.route_name, "default");
    assert_eq!(record.upstream_host, "");
    assert!(ejected.hop.server.is_empty());

    // Two findings, each naming its DestinationRule: the empty subset v3 and the ejected host.
    let findings = causes(&url(&collector), ns).await?;
    let mut uh: Vec<_> = findings
        .iter()
        .filter(|f| f.cause == "no_healthy_upstream")
        .map(resource)
        .collect();
    uh.sort();
    assert_eq!(
        uh,
        [
            named("DestinationRule", ns, "details", ""),
            named("DestinationRule", ns, "ratings", "v3"),
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s09_authorization_policy_deny_is_recorded_by_the_server_sidecar() -> anyhow::Result<()> {
    let (collector, outcome) = run("rbac").await?;
    let ns = security::RBAC_NS;
    let probe = outcome.probe("admin")?;
    assert_eq!(probe.reply, Ok(403));
    let hop = &probe.hop;

    let server = hop.server_record()?;
    assert_eq!(
        decided(server, &hop.server_flags()),
        expect(
            403,
            &[],
            "rbac_access_denied_matched_policy[ns[admin]-policy[deny-admin]-rule[0]]"
        )
    );
    assert_eq!(server.cluster, "inbound|80||");
    assert_eq!(server.upstream_host, "");
    assert_eq!(server.downstream_peer_principal, spiffe_id(ns, "portal"));

    // The client sidecar only passed the 403 on.
    let client = hop.client_record()?;
    assert_eq!(
        decided(client, &hop.client_flags()),
        expect(403, &[], "via_upstream")
    );
    assert_eq!(client.cluster, cluster_name(80, "", &fqdn("users-api", ns)));
    assert_eq!(client.upstream_peer_principal, spiffe_id(ns, "users-api"));

    let found = finding(&url(&collector), ns, "rbac_denied").await?;
    assert_eq!(
        resource(&found),
        named("AuthorizationPolicy", ns, security::DENY_POLICY, "")
    );
    assert_eq!(recorded_by(&found), Direction::Inbound);
    assert_eq!(joined(&found), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s10_registry_only_blocks_an_unknown_host_with_502() -> anyhow::Result<()> {
    let (collector, outcome) = run("registry_only").await?;
    let probe = outcome.probe("unknown-host")?;
    assert_eq!(probe.reply, Ok(502));
    let client = probe.hop.client_record()?;
    assert_eq!(
        decided(client, &probe.hop.client_flags()),
        expect(502, &[], "direct_response")
    );
    assert_eq!(client.authority, routing::UNKNOWN_HOST);
    assert_eq!(client.route_name, "block_all");
    assert_eq!(client.virtual_host, "block_all");
    assert_eq!(client.cluster, "");
    assert_eq!(client.upstream_host, "");
    assert!(probe.hop.server.is_empty());
    assert_eq!(outcome.probe("known")?.reply, Ok(200));

    let found = finding(
        &url(&collector),
        routing::REGISTRY_ONLY_NS,
        "registry_only_blocked",
    )
    .await?;
    let hint = found.resource.clone().unwrap_or_default().hint;
    assert!(hint.contains("ServiceEntry"), "{hint}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s11_virtual_service_timeout_is_ut_and_the_server_sees_the_cancel() -> anyhow::Result<()> {
    let (collector, outcome) = run("timeout").await?;
    let ns = "reports";
    let probe = outcome.probe("slow")?;
    assert_eq!(probe.reply, Ok(504));
    let hop = &probe.hop;
    let client = hop.client_record()?;
    assert_eq!(
        decided(client, &hop.client_flags()),
        expect(504, &["UT"], "response_timeout")
    );
    assert_eq!(client.route_name, "reports-timeout");
    assert_eq!(client.route_provenance, vs_provenance(ns, "reports"));
    assert_eq!(client.cluster, cluster_name(80, "", &fqdn("reports", ns)));

    // The client sidecar reset the upstream request: the server sidecar's downstream went away
    // before the app answered (no response, DC), same request id.
    assert_eq!(hop.server.len(), 1, "{hop:#?}");
    let server = hop.server_record()?;
    assert_eq!(
        decided(server, &hop.server_flags()),
        expect(0, &["DC"], "downstream_remote_disconnect")
    );
    assert_eq!(server.cluster, "inbound|80||");

    let found = finding(&url(&collector), ns, "upstream_timeout").await?;
    assert_eq!(resource(&found), named("VirtualService", ns, "reports", ""));
    assert_eq!(recorded_by(&found), Direction::Outbound);
    assert_eq!(joined(&found), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s06_connection_pool_overflow_is_uo_on_the_client_sidecar() -> anyhow::Result<()> {
    let (collector, outcome) = run("circuit_breaker").await?;
    let ns = "inventory";
    let probe = outcome.probe("overflow")?;
    assert_eq!(probe.reply, Ok(503));
    let client = probe.hop.client_record()?;
    assert_eq!(
        decided(client, &probe.hop.client_flags()),
        expect(
            503,
            &["UO"],
            "upstream_reset_before_response_started{overflow}"
        )
    );
    assert_eq!(client.cluster, cluster_name(80, "", &fqdn("inventory", ns)));
    assert_eq!(client.cluster_provenance, dr_provenance(ns, "inventory"));
    assert!(probe.hop.server.is_empty(), "{:#?}", probe.hop);
    assert!(
        outcome.probes.iter().any(|p| p.label == "served"),
        "some requests must get through the pool"
    );

    let found = finding(&url(&collector), ns, "circuit_breaker_overflow").await?;
    assert_eq!(
        resource(&found),
        named("DestinationRule", ns, "inventory", "")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s07_retries_exhausted_keep_the_underlying_app_error() -> anyhow::Result<()> {
    let (collector, outcome) = run("retries").await?;
    let ns = "search";
    let probe = outcome.probe("flaky")?;
    assert_eq!(probe.reply, Ok(503));
    let hop = &probe.hop;
    let client = hop.client_record()?;
    assert_eq!(
        decided(client, &hop.client_flags()),
        expect(503, &["URX"], "via_upstream")
    );
    assert_eq!(client.attempt_count, 3);
    assert_eq!(client.route_name, "search-retries");
    assert_eq!(client.route_provenance, vs_provenance(ns, "search"));
    // Every attempt reached the app, which answered 503 each time.
    assert_eq!(hop.server.len(), 3, "{hop:#?}");
    for record in &hop.server {
        let r = record.record.as_ref().expect("record body");
        assert_eq!(
            (r.response_code, r.response_code_details.as_str()),
            (503, "via_upstream")
        );
        assert!(record.flag_names.is_empty());
    }

    // The client's URX explains the hop (all three server records are its attempts): retries
    // exhausted, the last attempt's cause kept, the VirtualService's retry policy named.
    let retries = finding(&url(&collector), ns, "retries_exhausted").await?;
    assert_eq!(retries.last_attempt_cause, "app_returned_error");
    assert_eq!(recorded_by(&retries), Direction::Outbound);
    assert_eq!(joined(&retries), 1);
    assert_eq!(
        resource(&retries),
        named("VirtualService", ns, "search", "")
    );
    let all = causes(&url(&collector), ns).await?;
    assert!(
        all.iter().all(|f| f.cause != "app_returned_error"),
        "{:#?}",
        all.iter().map(|f| (&f.cause, &f.title)).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_destination_without_sidecar_shows_in_sampled_successes() -> anyhow::Result<()> {
    let (collector, outcome) = run("sidecar_missing").await?;
    let ns = security::SIDECAR_MISSING_NS;

    let legacy = outcome.probe("to-legacy-db")?;
    assert_eq!(legacy.reply, Ok(200));
    let record = legacy.hop.client_record()?;
    assert!(record.sampled_success);
    assert_eq!(record.response_code, 200);
    assert_eq!(record.cluster, cluster_name(80, "", &fqdn("legacy-db", ns)));
    assert_ne!(record.upstream_host, "");
    assert_eq!(record.endpoint_tls_mode, "", "no sidecar: no tlsMode");
    assert_eq!(record.upstream_tls_version, "", "plaintext");
    assert_eq!(record.upstream_peer_principal, "");

    let accounts = outcome.probe("to-accounts")?;
    assert_eq!(accounts.reply, Ok(200));
    let record = accounts.hop.client_record()?;
    assert!(record.sampled_success);
    assert_eq!(record.endpoint_tls_mode, "istio");
    assert_eq!(record.upstream_tls_version, "TLSv1.3");
    assert_eq!(record.upstream_peer_principal, spiffe_id(ns, "accounts"));

    // explain names the plaintext destination, and only that one.
    let legacy_cluster = cluster_name(80, "", &fqdn("legacy-db", ns));
    assert_eq!(
        legacy_cluster,
        "outbound|80||legacy-db.legacy.svc.cluster.local"
    );
    let missing = finding(&url(&collector), ns, "sidecar_missing").await?;
    assert_eq!(
        missing.group.as_ref().map(|g| g.cluster.as_str()),
        Some(legacy_cluster.as_str())
    );
    assert!(missing.title.contains(&legacy_cluster), "{}", missing.title);
    assert!(
        missing
            .next_commands
            .contains(&format!("kubectl get namespace {ns} --show-labels")),
        "{:#?}",
        missing.next_commands
    );
    let evidence = missing.evidence.as_ref().expect("evidence");
    assert!(evidence.count >= 1);
    assert!(!evidence.pods.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s02_mtls_mismatch_is_uc_on_the_client_and_invisible_on_the_server() -> anyhow::Result<()> {
    let (collector, outcome) = run("mtls").await?;
    let ns = security::MTLS_NS;

    // A DestinationRule with tls DISABLE towards a STRICT server: plaintext meets a TLS-only
    // listener, the server closes, the client sidecar answers 503 UC.
    let probe = outcome.probe("dr-disable")?;
    assert_eq!(probe.reply, Ok(503));
    let client = probe.hop.client_record()?;
    assert_eq!(
        decided(client, &probe.hop.client_flags()),
        expect(
            503,
            &["UC"],
            "upstream_reset_before_response_started{connection_termination}"
        )
    );
    assert_eq!(client.cluster, cluster_name(80, "", &fqdn("payments", ns)));
    assert_eq!(client.cluster_provenance, dr_provenance(ns, "payments"));
    assert_eq!(
        client.endpoint_tls_mode, "istio",
        "the server has a sidecar"
    );
    assert_eq!(
        client.upstream_tls_version, "",
        "but the DR made it plaintext"
    );
    assert!(probe.hop.server.is_empty(), "{:#?}", probe.hop);

    // A client without a sidecar: reset, and no record anywhere.
    let plain = outcome.probe("no-sidecar")?;
    assert!(plain.reply.is_err(), "{:?}", plain.reply);
    assert!(plain.hop.client.is_empty() && plain.hop.server.is_empty());

    // Only the server's listener log shows them: no filter chain accepted plaintext.
    assert!(outcome.server_listener_log.len() >= 2);
    for line in &outcome.server_listener_log {
        assert!(
            line.details.contains(security::FILTER_CHAIN_NOT_FOUND),
            "{line:?}"
        );
    }

    let found = finding(&url(&collector), ns, "mtls_mismatch").await?;
    assert_eq!(
        resource(&found),
        named("DestinationRule", ns, "payments", "")
    );
    assert_eq!(recorded_by(&found), Direction::Outbound);
    assert_eq!(joined(&found), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s01_canary_split_and_stale_replicas_show_in_the_counters() -> anyhow::Result<()> {
    let (collector, outcome) = run("canary").await?;
    let ns = canary::NS;
    let host = fqdn("reviews", ns);
    let (v1, v2, unsubsetted) = (
        cluster_name(80, "v1", &host),
        cluster_name(80, "v2", &host),
        cluster_name(80, "", &host),
    );
    assert_eq!(outcome.replicas.len(), canary::REPLICAS);
    let stale: Vec<_> = outcome.replicas.iter().filter(|r| r.stale).collect();
    assert_eq!(stale.len(), canary::STALE);
    for replica in &outcome.replicas {
        assert_eq!(replica.total, canary::REQUESTS as u64, "{replica:?}");
        if replica.stale {
            // The old route table: no VirtualService, the `default` route, the unsubsetted
            // cluster, nothing to v2.
            assert_eq!(replica.routes, ["default"], "{replica:?}");
            assert!(replica.route_provenance.is_empty(), "{replica:?}");
            assert_eq!(
                replica.by_cluster.keys().collect::<Vec<_>>(),
                [&unsubsetted],
                "{replica:?}"
            );
            assert_eq!(replica.share(&v2), 0.0);
        } else {
            assert_eq!(replica.routes, [canary::ROUTE], "{replica:?}");
            assert_eq!(replica.route_provenance, [vs_provenance(ns, "reviews")]);
            let v2_share = replica.share(&v2);
            assert!(
                (0.03..=0.25).contains(&v2_share),
                "v2 share {v2_share} for {replica:?}"
            );
            assert!((replica.share(&v1) + v2_share - 1.0).abs() < 1e-9);
        }
    }

    // explain names the two stale replicas, where their routes came from, and their split.
    let stale_pods: Vec<String> = stale.iter().map(|r| r.pod.clone()).collect();
    let suspected = finding(&url(&collector), ns, "stale_config_suspected").await?;
    let evidence = suspected.evidence.as_ref().expect("evidence");
    assert_eq!(evidence.pods, stale_pods, "{}", suspected.title);
    assert_eq!(
        resource(&suspected),
        named("VirtualService", ns, "reviews", "")
    );
    assert!(
        suspected.title.contains("no VirtualService"),
        "{}",
        suspected.title
    );
    for command in [
        format!("istioctl proxy-status {}.{ns}", stale_pods[0]),
        format!("kubectl get networkpolicy -n {ns}"),
    ] {
        assert!(
            suspected.next_commands.contains(&command),
            "{command} not in {:#?}",
            suspected.next_commands
        );
    }
    let split = finding(&url(&collector), ns, "canary_split_mismatch").await?;
    let evidence = split.evidence.as_ref().expect("evidence");
    assert_eq!(evidence.pods, stale_pods, "{}", split.title);
    assert!(split.title.contains("v2 0.0 %"), "{}", split.title);
    Ok(())
}
