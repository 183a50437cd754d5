//! Engine-level tests: grouping, ranking, hop correlation, `explain_request`, filters and the
//! share-of-traffic arithmetic, with strings from real Envoy 1.40 runs.

use meshwhy_proto::v1::{DecisionRecord, Direction, ProxyIdentity};

use super::fixtures::*;
use super::testkit::*;
use super::*;

fn with_id(mut record: DecisionRecord, id: &str, offset: u64) -> DecisionRecord {
    record.request_id = id.into();
    record.start_time_unix_nanos += offset;
    record
}

fn input<'a>(
    records: &'a [(ProxyIdentity, DecisionRecord)],
    proxies: &'a [ProxyIdentity],
) -> Input<'a> {
    Input {
        records: records
            .iter()
            .map(|(proxy, record)| RecordRef::new(proxy, record))
            .collect(),
        successes: Vec::new(),
        proxies: proxies.iter().collect(),
        window_complete: true,
    }
}

#[test]
fn a_mixed_run_ranks_causes_by_impact() {
    let mut records = Vec::new();
    for i in 0..5 {
        records.push((
            client(),
            with_id(outbound(503, "UF,URX", REFUSED), &format!("uf-{i}"), i),
        ));
    }
    for i in 0..3 {
        records.push((
            server(),
            with_id(inbound(403, "", RBAC_DENY), &format!("rbac-{i}"), 100 + i),
        ));
    }
    let mut nr = outbound(404, "NR", ROUTE_NOT_FOUND);
    nr.cluster.clear();
    records.push((client(), with_id(nr, "nr-0", 50)));
    let report = explain_records(&records);
    let causes: Vec<Cause> = report.findings.iter().map(|f| f.cause).collect();
    assert_eq!(
        causes,
        [Cause::RetriesExhausted, Cause::RbacDenied, Cause::NoRoute]
    );
    assert_eq!(report.totals.failures, 9);
    assert_eq!(report.totals.groups, 3);
    let top = &report.findings[0];
    assert_eq!(top.last_attempt, Some(Cause::UpstreamConnectFailed));
    assert_eq!(top.evidence.count, 5);
    assert!((top.evidence.share_of_failures - 5.0 / 9.0).abs() < 1e-9);
    assert_eq!(
        top.evidence.sample_request_ids,
        ["uf-4", "uf-3", "uf-2", "uf-1", "uf-0"]
    );
    assert_eq!(top.evidence.first_seen_unix_nanos, START);
    assert_eq!(top.evidence.last_seen_unix_nanos, START + 4);
    assert_eq!(top.evidence.decided_by.response_code_details, REFUSED);
    assert_eq!(
        top.group.details_class,
        "upstream_reset_before_response_started{remote_connection_failure|connection_refused}"
    );
}

#[test]
fn equal_counts_rank_by_recency() {
    let records = [
        (client(), with_id(outbound(503, "UH", NO_HEALTHY), "a", 0)),
        (client(), with_id(outbound(503, "UO", OVERFLOW), "b", 10)),
    ];
    let report = explain_records(&records);
    assert_eq!(report.findings[0].cause, Cause::CircuitBreakerOverflow);
    assert_eq!(report.findings[1].cause, Cause::NoHealthyUpstream);
}

#[test]
fn details_that_differ_only_by_address_are_one_group() {
    let a = "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused|remote_address:10.0.0.9:9080}";
    let b = "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused|remote_address:10.0.0.10:9080}";
    let mut second = with_id(outbound(503, "UF", b), "r2", 1);
    second.upstream_host = "10.0.0.10:9080".into();
    let records = [
        (client(), with_id(outbound(503, "UF", a), "r1", 0)),
        (client(), second),
    ];
    let report = explain_records(&records);
    assert_eq!(report.findings.len(), 1);
    let evidence = &report.findings[0].evidence;
    assert_eq!(evidence.count, 2);
    assert_eq!(evidence.upstream_hosts, ["10.0.0.9:9080", "10.0.0.10:9080"]);
    assert_eq!(evidence.sample_request_ids, ["r2", "r1"]);
}

#[test]
fn the_503_that_is_not_a_503_reads_differently_with_and_without_the_server_record() {
    // Both hops recorded: the server sidecar saw the app answer 503.
    let joined = [
        (client(), outbound(503, "", VIA_UPSTREAM)),
        (server(), inbound(503, "", VIA_UPSTREAM)),
    ];
    let report = explain_records(&joined);
    assert_eq!(report.findings.len(), 1, "one hop, one finding");
    let finding = &report.findings[0];
    assert_eq!(finding.cause, Cause::AppReturnedError);
    assert_eq!(finding.group.direction, Direction::Inbound);
    assert_eq!(finding.confidence, Confidence::High);
    let hop = finding.evidence.hop.as_ref().unwrap();
    assert_eq!(hop.joined, 1);
    assert_eq!(
        hop.summary,
        "the server sidecar saw the app answer 503; the client sidecar (shop/productpage-v1) recorded 503 via_upstream for 1 of 1"
    );
    assert_eq!(report.totals.joined_hops, 1);
    assert_eq!(report.totals.failures, 1);

    // Only the client's record: say what the data shows, nothing more.
    let alone = [(client(), outbound(503, "", VIA_UPSTREAM))];
    let report = explain_records(&alone);
    let finding = &report.findings[0];
    assert_eq!(finding.group.direction, Direction::Outbound);
    assert_eq!(finding.confidence, Confidence::Medium);
    assert_eq!(
        finding.evidence.hop.as_ref().unwrap().summary,
        "the server sidecar (reviews-v1-5d8c.shop) recorded no failure for it (successes are only counted, so this does not prove it never arrived)"
    );

    // No sidecar known at the upstream.
    let mut elsewhere = outbound(503, "", VIA_UPSTREAM);
    elsewhere.upstream_host = "10.9.9.9:9080".into();
    let report = explain_records(&[(client(), elsewhere)]);
    assert_eq!(
        report.findings[0].evidence.hop.as_ref().unwrap().summary,
        "no reporting sidecar is known at 10.9.9.9:9080: the server side is not visible"
    );

    // The upstream is the caller's own address (host network, a shared loopback IP): the caller
    // is not its own server, neither in the hop nor in the next commands.
    let mut own_ip = outbound(503, "", VIA_UPSTREAM);
    own_ip.upstream_host = "10.0.0.5:9080".into();
    let report = explain_records(&[(client(), own_ip)]);
    let finding = &report.findings[0];
    assert_eq!(
        finding.evidence.hop.as_ref().unwrap().summary,
        "no reporting sidecar is known at 10.0.0.5:9080: the server side is not visible"
    );
    assert_eq!(
        finding.next_commands,
        ["kubectl logs -n shop -l app=reviews --tail=200 --prefix"]
    );
}

#[test]
fn a_client_timeout_and_the_servers_disconnect_are_one_hop_explained_by_the_client() {
    let records = [
        (client(), outbound(504, "UT", RESPONSE_TIMEOUT)),
        (server(), inbound(0, "DC", DOWNSTREAM_DISCONNECT)),
    ];
    let report = explain_records(&records);
    assert_eq!(report.findings.len(), 1);
    let finding = &report.findings[0];
    assert_eq!(finding.cause, Cause::UpstreamTimeout);
    assert!(
        finding
            .evidence
            .hop
            .as_ref()
            .unwrap()
            .summary
            .contains("saw the client side go away (DC)")
    );
}

#[test]
fn explain_request_returns_both_hops_and_the_deciding_finding() {
    let records = [
        (client(), outbound(503, "", VIA_UPSTREAM)),
        (server(), inbound(503, "", VIA_UPSTREAM)),
        (client(), with_id(outbound(503, "UF", REFUSED), "other", 0)),
    ];
    let proxies = [client(), server()];
    let report = explain_request(&input(&records, &proxies), "req-1");
    assert_eq!(report.hops.len(), 1);
    let hop = &report.hops[0];
    assert_eq!(
        hop.client.as_ref().unwrap().proxy.pod,
        "productpage-v1-7d9c"
    );
    assert_eq!(hop.server.as_ref().unwrap().proxy.pod, "reviews-v1-5d8c");
    assert_eq!(
        hop.summary,
        "the server sidecar (reviews-v1-5d8c.shop) saw the app answer 503; the client sidecar (productpage-v1-7d9c.shop) passed it on"
    );
    let finding = report.finding.unwrap();
    assert_eq!(finding.cause, Cause::AppReturnedError);
    assert_eq!(finding.group.direction, Direction::Inbound);

    // Client only.
    let records = [(client(), outbound(503, "", VIA_UPSTREAM))];
    let report = explain_request(&input(&records, &proxies), "req-1");
    assert_eq!(
        report.hops[0].summary,
        "the client sidecar (productpage-v1-7d9c.shop) got 503 from the upstream 10.0.0.9:9080; the server sidecar (reviews-v1-5d8c.shop) recorded no failure for it (successes are only counted, so this does not prove it never arrived)"
    );

    // A refused connect: nothing on the server is expected.
    let records = [(client(), outbound(503, "UF,URX", REFUSED))];
    let report = explain_request(&input(&records, &proxies), "req-1");
    assert!(
        report.hops[0]
            .summary
            .ends_with("a failed connect never reaches its HTTP filters"),
        "{}",
        report.hops[0].summary
    );
    assert_eq!(report.finding.unwrap().cause, Cause::RetriesExhausted);

    // Unknown id.
    let report = explain_request(&input(&records, &proxies), "nope");
    assert!(report.hops.is_empty());
    assert!(report.finding.is_none());
}

#[test]
fn explain_request_picks_the_hop_that_decided_in_a_chain() {
    // productpage → reviews (app answers 503) ; reviews → ratings: connect refused.
    let ratings = ProxyIdentity {
        pod: "ratings-v1-1".into(),
        namespace: "shop".into(),
        workload: "ratings-v1".into(),
        node_id: "sidecar~10.0.0.11~ratings-v1-1.shop~shop.svc.cluster.local".into(),
        ..Default::default()
    };
    let mut deeper = outbound(503, "UF,URX", REFUSED);
    deeper.start_time_unix_nanos = START + 2_000_000;
    deeper.cluster = "outbound|9080||ratings.shop.svc.cluster.local".into();
    deeper.upstream_host = "10.0.0.11:9080".into();
    let records = [
        (client(), outbound(503, "", VIA_UPSTREAM)),
        (server(), inbound(503, "", VIA_UPSTREAM)),
        (server(), deeper),
    ];
    let proxies = [client(), server(), ratings];
    let report = explain_request(&input(&records, &proxies), "req-1");
    assert_eq!(report.hops.len(), 2);
    let finding = report.finding.unwrap();
    assert_eq!(finding.cause, Cause::RetriesExhausted);
    assert_eq!(finding.group.workload, "reviews-v1");
    assert!(
        finding
            .notes
            .iter()
            .any(|note| note.contains("crossed 2 hops"))
    );
}

#[test]
fn filters_match_either_side_of_a_hop() {
    let records = [
        (client(), outbound(503, "", VIA_UPSTREAM)),
        (server(), inbound(503, "", VIA_UPSTREAM)),
        (client(), with_id(outbound(503, "UH", NO_HEALTHY), "x", 5)),
    ];
    let proxies = [client(), server()];
    let by_client = Scope {
        workload: Some("productpage-v1".into()),
        ..Scope::default()
    };
    let report = explain(&input(&records, &proxies), &by_client, 10);
    assert_eq!(
        report.findings.len(),
        2,
        "the joined hop is found from the client's side too"
    );
    let by_service = Scope {
        service: Some("reviews".into()),
        ..Scope::default()
    };
    assert_eq!(
        explain(&input(&records, &proxies), &by_service, 10)
            .findings
            .len(),
        2
    );
    let other = Scope {
        service: Some("ratings".into()),
        ..Scope::default()
    };
    assert!(
        explain(&input(&records, &proxies), &other, 10)
            .findings
            .is_empty()
    );
    let window = Scope {
        since_unix_nanos: START + 2,
        ..Scope::default()
    };
    let report = explain(&input(&records, &proxies), &window, 10);
    // The hop started before the window (the server record at +1 ms is in it, the client's not).
    assert_eq!(report.totals.records_scanned, 2);
    assert_eq!(report.findings.len(), 2);
    assert_eq!(
        explain(&input(&records, &proxies), &Scope::default(), 1)
            .findings
            .len(),
        1
    );
}

#[test]
fn share_of_traffic_counts_successes_from_counters_and_samples() {
    let mut success = outbound(200, "", VIA_UPSTREAM);
    success.sampled_success = true;
    success.request_id = "ok".into();
    let records = [
        (client(), outbound(503, "UF", REFUSED)),
        (client(), success),
    ];
    let proxies = [client(), server()];
    let mut input = input(&records, &proxies);
    input.successes = vec![TrafficCount {
        namespace: "shop",
        workload: "productpage-v1",
        cluster: OUTBOUND_CLUSTER,
        virtual_host: "reviews.shop.svc.cluster.local:9080",
        route_provenance: "",
        count: 8,
        ..TrafficCount::default()
    }];
    let report = explain(&input, &Scope::default(), 10);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].evidence.share_of_traffic, Some(0.1));
    assert_eq!(report.totals.successes, 9);
    input.window_complete = false;
    let report = explain(&input, &Scope::default(), 10);
    assert_eq!(report.findings[0].evidence.share_of_traffic, None);
}

#[test]
fn unknown_outcomes_are_never_dropped() {
    let report = explain_records(&[(client(), outbound(503, "LH", "brand_new_detail"))]);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].cause, Cause::Unknown);
    assert_eq!(
        report.findings[0].evidence.decided_by.response_code_details,
        "brand_new_detail"
    );
}

#[test]
fn every_failure_in_the_matrix_gets_its_cause() {
    // (record, expected cause): the ENVOY_FACTS failure matrix, real Envoy 1.40 strings.
    let mut nr = outbound(404, "NR", ROUTE_NOT_FOUND);
    nr.cluster.clear();
    let mut nc = outbound(503, "NC", CLUSTER_NOT_FOUND);
    nc.cluster.clear();
    // A route's own direct_response 502 (e2e `direct` case) vs Istio's REGISTRY_ONLY block_all
    // 502, which is also a direct response.
    let mut direct = outbound(502, "", "direct_response");
    direct.cluster.clear();
    direct.upstream_host.clear();
    direct.route_name = "direct".into();
    let mut filter_chain_miss = inbound(0, "NR", "filter_chain_not_found");
    filter_chain_miss.protocol = TCP.into();
    filter_chain_miss.cluster.clear();
    filter_chain_miss.upstream_host.clear();
    let sds = DecisionRecord {
        transport_failure_reason: "TLS error: Secret is not supplied by SDS".into(),
        ..outbound(503, "UF,URX", OLD_CONNECT_FAILURE)
    };
    let mut nr_cluster_not_found = outbound(503, "NR", CLUSTER_NOT_FOUND);
    nr_cluster_not_found.cluster.clear();
    let mut block_all = direct.clone();
    block_all.route_name = "block_all".into();
    block_all.virtual_host = "block_all".into();
    let cases = [
        (
            client(),
            outbound(503, "UF", REFUSED),
            Cause::UpstreamConnectFailed,
        ),
        (
            client(),
            outbound(503, "UC", TERMINATED),
            Cause::UpstreamConnectionTerminated,
        ),
        (client(), nr, Cause::NoRoute),
        (
            client(),
            outbound(503, "UH", NO_HEALTHY),
            Cause::NoHealthyUpstream,
        ),
        (
            client(),
            outbound(503, "URX", VIA_UPSTREAM),
            Cause::RetriesExhausted,
        ),
        (
            client(),
            outbound(503, "UF,URX", REFUSED),
            Cause::RetriesExhausted,
        ),
        (
            client(),
            outbound(503, "UO", OVERFLOW),
            Cause::CircuitBreakerOverflow,
        ),
        (
            client(),
            outbound(504, "UT", RESPONSE_TIMEOUT),
            Cause::UpstreamTimeout,
        ),
        (
            server(),
            inbound(503, "", VIA_UPSTREAM),
            Cause::AppReturnedError,
        ),
        (server(), inbound(403, "", RBAC_DENY), Cause::RbacDenied),
        (
            server(),
            inbound(0, "DC", DOWNSTREAM_DISCONNECT),
            Cause::DownstreamDisconnect,
        ),
        (client(), nc, Cause::NoCluster),
        (
            client(),
            outbound(503, "", WASM_FAIL),
            Cause::WasmPluginFailure,
        ),
        (
            client(),
            outbound(503, "UF", TLS_WRONG_VERSION),
            Cause::MtlsMismatch,
        ),
        (
            client(),
            outbound(429, "RL", "local_rate_limited"),
            Cause::RateLimited,
        ),
        (
            client(),
            outbound(403, "UAEX", "ext_authz_denied"),
            Cause::ExtAuthzDenied,
        ),
        (
            client(),
            outbound(503, "FI", "fault_filter_abort"),
            Cause::FaultInjected,
        ),
        (
            client(),
            outbound(
                502,
                "UPE",
                "upstream_reset_before_response_started{protocol_error}",
            ),
            Cause::ProtocolError,
        ),
        (client(), outbound(500, "NFCF", ""), Cause::NoFilterConfig),
        (
            client(),
            outbound(503, "OM", "overload_manager"),
            Cause::Overload,
        ),
        (client(), outbound(503, "DF", ""), Cause::DnsFailure),
        (
            client(),
            outbound(408, "SI", "stream_idle_timeout"),
            Cause::StreamIdleTimeout,
        ),
        (
            client(),
            outbound(
                503,
                "UR",
                "upstream_reset_before_response_started{remote_reset}",
            ),
            Cause::UpstreamReset,
        ),
        (client(), direct, Cause::DirectResponse),
        (client(), block_all, Cause::RegistryOnlyBlocked),
        (client(), outbound(503, "LH", "x"), Cause::Unknown),
        // Causes that only access logs show, and the older forms of others.
        (server(), filter_chain_miss.clone(), Cause::NoFilterChain),
        (client(), sds, Cause::CertificateNotReady),
        (client(), nr_cluster_not_found, Cause::NoCluster),
        (server(), inbound(403, "UAEX", ""), Cause::ExtAuthzDenied),
        (
            server(),
            inbound(400, "DPE", "http1.codec_error"),
            Cause::ProtocolError,
        ),
        // Older forms.
        (
            client(),
            outbound(503, "UF", OLD_REFUSED),
            Cause::UpstreamConnectFailed,
        ),
        (
            client(),
            outbound(504, "UT", OLD_TIMEOUT),
            Cause::UpstreamTimeout,
        ),
    ];
    for (proxy, record, cause) in cases {
        let details = record.response_code_details.clone();
        let report = explain_records(&[(proxy, record)]);
        assert_eq!(report.findings.len(), 1, "{details}");
        assert_eq!(
            report.findings[0].cause, cause,
            "{details}: {}",
            report.findings[0].title
        );
        assert!(
            !report.findings[0].next_commands.is_empty(),
            "{cause}: no next command"
        );
    }
}

#[test]
fn failure_classification_matches_the_default_capture_set() {
    let mut ok = outbound(200, "", VIA_UPSTREAM);
    assert!(!is_failure(&ok));
    ok.response_flags = 1 << 9; // DI
    assert!(!is_failure(&ok));
    assert!(is_failure(&outbound(503, "", VIA_UPSTREAM)));
    assert!(is_failure(&outbound(403, "", VIA_UPSTREAM)));
    assert!(is_failure(&outbound(429, "", VIA_UPSTREAM)));
    assert!(!is_failure(&outbound(404, "", VIA_UPSTREAM)));
    assert!(is_failure(&outbound(404, "NR", ROUTE_NOT_FOUND)));
    assert!(is_failure(&outbound(0, "DC", DOWNSTREAM_DISCONNECT)));
    let mut grpc = outbound(200, "", VIA_UPSTREAM);
    grpc.grpc_status = Some(14);
    assert!(is_failure(&grpc));
}

#[test]
fn grpc_failures_keep_http_200() {
    // gRPC over a sidecar: Envoy answers its own failures as HTTP 200 with grpc-status in the
    // trailers, so the flags and grpc-status say it failed, never the code.
    let grpc = |flag_names: &str, details: &str, status: Option<u32>| {
        let mut record = outbound(200, flag_names, details);
        record.protocol = "HTTP/2".into();
        record.grpc_status = status;
        record
    };
    for (record, cause, phrase) in [
        (
            grpc("UF,URX", REFUSED, Some(14)),
            Cause::RetriesExhausted,
            "HTTP 200 with grpc-status 14 UNAVAILABLE",
        ),
        (
            grpc("UT", RESPONSE_TIMEOUT, Some(4)),
            Cause::UpstreamTimeout,
            "so the sidecar answered HTTP 200 with grpc-status 4 DEADLINE_EXCEEDED (UT)",
        ),
        (
            grpc("UT", RESPONSE_TIMEOUT, None),
            Cause::UpstreamTimeout,
            "HTTP 200 carrying a gRPC failure (UT)",
        ),
        (
            grpc(
                "UPE",
                "upstream_reset_before_response_started{protocol_error}",
                Some(13),
            ),
            Cause::ProtocolError,
            "malformed response (HTTP 200 with grpc-status 13 INTERNAL, UPE)",
        ),
        (
            grpc("", VIA_UPSTREAM, Some(5)),
            Cause::AppReturnedError,
            "grpc-status 5 NOT_FOUND (HTTP 200)",
        ),
    ] {
        assert!(is_failure(&record), "{}", record.response_code_details);
        let report = explain_records(&[(client(), record)]);
        let finding = &report.findings[0];
        assert_eq!(finding.cause, cause, "{}", finding.title);
        assert!(finding.title.contains(phrase), "{}", finding.title);
    }
    assert!(!is_failure(&grpc("", VIA_UPSTREAM, Some(0))));
    assert!(!is_failure(&grpc("", VIA_UPSTREAM, None)));
    assert!(!is_failure(&grpc("DI", VIA_UPSTREAM, Some(0))));
}

#[test]
fn uc_after_retries_to_a_plaintext_cluster_is_retries_exhausted_not_mtls() {
    // The client sidecar retried a UC twice towards an endpoint without a sidecar (plaintext,
    // no tlsMode), or as a log line shows it (nothing known about TLS): no mTLS reading.
    let mut plaintext = outbound(503, "UC,URX", TERMINATED);
    plaintext.attempt_count = 3;
    plaintext.endpoint_tls_mode.clear();
    let mut logged = plaintext.clone();
    logged.unknown_fields = [
        meshwhy_proto::v1::RecordField::EndpointTlsMode,
        meshwhy_proto::v1::RecordField::UpstreamTls,
        meshwhy_proto::v1::RecordField::ClusterProvenance,
    ]
    .iter()
    .fold(0, |mask, field| mask | 1 << *field as u32);
    for record in [plaintext, logged] {
        let report = explain_records(&[(client(), record)]);
        let finding = &report.findings[0];
        assert_eq!(finding.cause, Cause::RetriesExhausted);
        assert_eq!(
            finding.last_attempt,
            Some(Cause::UpstreamConnectionTerminated)
        );
        assert!(
            finding
                .title
                .contains("retries exhausted after 3 attempts; last attempt: the upstream closed the connection"),
            "{}",
            finding.title
        );
        // The last attempt's commands first (the upstream's logs), the retry policy after.
        assert_eq!(
            finding.next_commands[0],
            "kubectl logs reviews-v1-5d8c -n shop --tail=200"
        );
        assert!(
            finding
                .next_commands
                .last()
                .unwrap()
                .contains("proxy-config routes"),
            "{:?}",
            finding.next_commands
        );
        assert!(
            finding
                .notes
                .iter()
                .chain(&finding.next_commands)
                .all(|text| !text.contains("STRICT") && !text.contains("peerauthentication")),
            "{finding:#?}"
        );
    }
    // With TLS evidence (a DestinationRule in front of an endpoint with a sidecar) mTLS is the
    // reading.
    let mut dr = outbound(503, "UC,URX", TERMINATED);
    dr.attempt_count = 3;
    dr.cluster_provenance = DR.into();
    let report = explain_records(&[(client(), dr)]);
    assert_eq!(report.findings[0].cause, Cause::MtlsMismatch);
}

#[test]
fn retries_exhausted_on_the_client_explain_every_attempt_the_server_recorded() {
    // VirtualService retries 2 on 5xx; the app answers 503 each time: the client sidecar
    // records one URX record, the server sidecar one record per attempt, all one request id.
    let mut client_record = outbound(503, "URX", VIA_UPSTREAM);
    client_record.attempt_count = 3;
    client_record.route_name = "reviews-retries".into();
    client_record.route_provenance = VS.into();
    let mut records = vec![(client(), client_record)];
    for attempt in 0..3 {
        let mut record = inbound(503, "", VIA_UPSTREAM);
        record.start_time_unix_nanos += attempt * 1_000;
        records.push((server(), record));
    }
    let report = explain_records(&records);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let finding = &report.findings[0];
    assert_eq!(finding.cause, Cause::RetriesExhausted);
    assert_eq!(finding.last_attempt, Some(Cause::AppReturnedError));
    assert_eq!(finding.group.direction, Direction::Outbound);
    assert_eq!(report.totals.failures, 1);
    let resource = finding.resource.as_ref().unwrap();
    assert_eq!(
        (resource.kind.as_str(), resource.name.as_str()),
        ("VirtualService", "reviews")
    );
    assert_eq!(finding.evidence.hop.as_ref().unwrap().joined, 1);

    // One request: the client's record decides.
    let refs: Vec<RecordRef<'_>> = records
        .iter()
        .map(|(proxy, record)| RecordRef::new(proxy, record))
        .collect();
    let proxies = [client(), server()];
    let request = explain_request(
        &Input {
            records: refs,
            successes: Vec::new(),
            proxies: proxies.iter().collect(),
            window_complete: true,
        },
        "req-1",
    );
    assert_eq!(
        request.finding.map(|f| f.cause),
        Some(Cause::RetriesExhausted)
    );

    // Without URX the server's record still explains a passed-on 503.
    let plain = [
        (client(), outbound(503, "", VIA_UPSTREAM)),
        (server(), inbound(503, "", VIA_UPSTREAM)),
    ];
    assert_eq!(
        explain_records(&plain).findings[0].cause,
        Cause::AppReturnedError
    );
}
