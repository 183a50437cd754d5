//! End-to-end proof of issue #3: every failure of the pipeline scenario, produced by real Envoy
//! traffic and shipped by the real filter to the real collector, is explained by the real
//! `meshwhy explain --request-id ID -o json` process with the expected cause id, the implicated
//! resource where there is one, and next commands that name the real pod, cluster or resource;
//! and a mixed run (several causes at once) is ranked by impact.
//!
//! Needs the CLI built: `cargo build -p meshwhy-collector --bins` (`cargo make test` does it).

use meshwhy_e2e::{
    cli,
    scenario::{self, CASES, Lab, LabOptions, VHOST, query},
    wait,
};
use serde_json::Value;
use std::collections::HashSet;

/// The pod the scenario's sidecar reports as, as next commands must name it.
const POD: &str = "client-7d9f-abcde";
const POD_NS: &str = "client-7d9f-abcde.e2e";
/// The destination app's logs: the upstream answered, so its logs say why.
const BACKEND_LOGS: &str = "kubectl logs -n e2e -l app=backend";

/// What meshwhy must say about one failure case.
struct Expect {
    case: &'static str,
    cause: &'static str,
    /// `last_attempt_cause` (retries_exhausted only; null otherwise).
    last_attempt: Option<&'static str>,
    /// Each must appear in at least one next command.
    next_mentions: &'static [&'static str],
    /// `(kind, namespace, name)` of the implicated resource, when the engine can name one.
    resource: Option<(&'static str, &'static str, &'static str)>,
}

const fn expect(
    case: &'static str,
    cause: &'static str,
    next_mentions: &'static [&'static str],
) -> Expect {
    Expect {
        case,
        cause,
        last_attempt: None,
        next_mentions,
        resource: None,
    }
}

/// The expected explanation of every failure case in [`CASES`].
const EXPECTED: &[Expect] = &[
    // The app's own 503 passed through: look at the destination's app (backend), not the mesh
    // and not the calling pod (whose IP the upstream shares in this single-loopback lab).
    expect("app-503", "app_returned_error", &[BACKEND_LOGS]),
    expect(
        "uf",
        "upstream_connect_failed",
        &[
            POD_NS,
            "--cluster \"outbound|80||closed.e2e.svc.cluster.local\"",
        ],
    ),
    Expect {
        last_attempt: Some("upstream_connect_failed"),
        ..expect(
            "uf-urx",
            "retries_exhausted",
            &[
                POD_NS,
                "--cluster \"outbound|80||closed.e2e.svc.cluster.local\"",
            ],
        )
    },
    expect(
        "uc",
        "upstream_connection_terminated",
        &[POD_NS, "--fqdn closer.e2e.svc.cluster.local"],
    ),
    Expect {
        resource: Some(("VirtualService", "e2e", "backend")),
        ..expect(
            "nr",
            "no_route",
            &[
                "istioctl proxy-config routes client-7d9f-abcde.e2e --name 80",
                "kubectl get virtualservice backend -n e2e",
            ],
        )
    },
    expect(
        "uh-empty",
        "no_healthy_upstream",
        &[
            POD_NS,
            "--cluster \"outbound|80||empty.e2e.svc.cluster.local\"",
        ],
    ),
    expect(
        "uh-health",
        "no_healthy_upstream",
        &[
            POD_NS,
            "--cluster \"outbound|80||unhealthy.e2e.svc.cluster.local\"",
        ],
    ),
    // Every attempt got the app's 503: retries exhausted, the last attempt the app's own error.
    Expect {
        last_attempt: Some("app_returned_error"),
        ..expect(
            "urx",
            "retries_exhausted",
            &["istioctl proxy-config routes client-7d9f-abcde.e2e --name 80"],
        )
    },
    expect(
        "uo",
        "circuit_breaker_overflow",
        &[POD_NS, "--fqdn tiny.e2e.svc.cluster.local"],
    ),
    expect(
        "ut",
        "upstream_timeout",
        &["istioctl proxy-config routes client-7d9f-abcde.e2e --name 80"],
    ),
    expect(
        "nc",
        "no_cluster",
        &[POD_NS, "--fqdn backend.e2e.svc.cluster.local"],
    ),
    expect("dc", "downstream_disconnect", &[POD]),
    Expect {
        resource: Some(("AuthorizationPolicy", "e2e", "deny-admin")),
        ..expect(
            "rbac",
            "rbac_denied",
            &[
                "istioctl x authz check client-7d9f-abcde.e2e",
                "kubectl get authorizationpolicy deny-admin -n e2e",
            ],
        )
    },
    // A route's own `direct_response` 502 (a VirtualService `directResponse` in Istio): the
    // route's configuration answered, named from its provenance; the route as Envoy has it.
    Expect {
        resource: Some(("VirtualService", "e2e", "backend")),
        ..expect(
            "direct",
            "direct_response",
            &[
                "istioctl proxy-config routes client-7d9f-abcde.e2e --name 80 -o json",
                "select(.name == \"direct\")",
                "kubectl get virtualservice backend -n e2e",
            ],
        )
    },
    // gRPC status 14 in an HTTP 200: still the app's own error (checked to name the status).
    expect("grpc-unavailable", "app_returned_error", &[BACKEND_LOGS]),
];

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} is not a string in {value:#}"))
}

/// Every request id the collector has stored a record for.
async fn stored_ids(url: &str) -> Option<HashSet<String>> {
    let stored = query::all_records(url, 1000).await.ok()?;
    Some(
        stored
            .into_iter()
            .filter_map(|r| r.record.map(|r| r.request_id))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pipeline_failure_is_explained() -> anyhow::Result<()> {
    // The table covers exactly the failure cases of the scenario.
    let failure_cases: Vec<&str> = CASES
        .iter()
        .filter(|case| case.is_failure())
        .map(|case| case.name)
        .collect();
    let table: Vec<&str> = EXPECTED.iter().map(|e| e.case).collect();
    assert_eq!(table, failure_cases, "EXPECTED covers every failure case");

    let lab = Lab::start(LabOptions::default()).await?;
    let url = lab.collector_url();
    let mut sent: Vec<(&scenario::Case, Vec<String>)> = Vec::new();
    for case in CASES {
        let ids = lab.send(case, "explain").await?;
        sent.push((case, ids));
    }

    // Wait until every failure is stored. The circuit-breaker case sends several requests and
    // only the overflowing ones fail (the others are counted successes): at least one of them.
    let stored = wait::until("the collector to hold every failure", || {
        let url = url.clone();
        let sent = &sent;
        async move {
            let stored = stored_ids(&url).await?;
            sent.iter()
                .filter(|(case, _)| case.is_failure())
                .all(|(case, ids)| match case.send {
                    scenario::Send::Concurrent(_) => ids.iter().any(|id| stored.contains(id)),
                    _ => ids.iter().all(|id| stored.contains(id)),
                })
                .then_some(stored)
        }
    })
    .await?;

    let mut explained = 0;
    for expect in EXPECTED {
        let (case, ids) = sent
            .iter()
            .find(|(case, _)| case.name == expect.case)
            .expect("every expected case was sent");
        for id in ids.iter().filter(|id| stored.contains(*id)) {
            let out = cli::json(&url, &["explain", "--request-id", id])?;
            let what = format!("{} ({id})", case.name);
            assert_eq!(str_at(&out, "/request_id"), id, "{what}: {out:#}");
            let findings = out["findings"].as_array().expect("findings");
            assert_eq!(findings.len(), 1, "{what}: one finding: {out:#}");
            let finding = &findings[0];
            assert_eq!(
                str_at(finding, "/cause"),
                expect.cause,
                "{what}: {finding:#}"
            );
            assert_eq!(
                finding["last_attempt_cause"].as_str(),
                expect.last_attempt,
                "{what}: last attempt: {finding:#}"
            );
            assert!(
                !str_at(finding, "/title").is_empty(),
                "{what}: a title: {finding:#}"
            );
            // Evidence: this very request, recorded by the client sidecar with its real code.
            let evidence = &finding["evidence"];
            assert_eq!(evidence["count"], 1, "{what}: {finding:#}");
            assert!(
                evidence["sample_request_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|sample| sample == id.as_str())),
                "{what}: sample request ids: {finding:#}"
            );
            assert_eq!(
                evidence["pods"],
                serde_json::json!([POD]),
                "{what}: {finding:#}"
            );
            assert_eq!(
                evidence["decided_by"]["response_code"], case.expect_code,
                "{what}: {finding:#}"
            );
            for flag in case.expect_flags {
                assert!(
                    evidence["decided_by"]["flags"]
                        .as_array()
                        .is_some_and(|flags| flags.iter().any(|f| f == flag)),
                    "{what}: flag {flag} in the evidence: {finding:#}"
                );
            }
            // The hop: the client sidecar's record, no server sidecar in this scenario.
            let hops = out["hops"].as_array().expect("hops");
            assert_eq!(hops.len(), 1, "{what}: {out:#}");
            assert_eq!(str_at(&hops[0], "/client/request_id"), id, "{what}");
            assert_eq!(str_at(&hops[0], "/client/proxy/pod"), POD, "{what}");

            // Next commands: at least one, naming the real pod/cluster/resource.
            let next: Vec<&str> = finding["next_commands"]
                .as_array()
                .expect("next_commands")
                .iter()
                .map(|c| c.as_str().expect("a next command is a string"))
                .collect();
            assert!(!next.is_empty(), "{what}: at least one next command");
            for mention in expect.next_mentions {
                assert!(
                    next.iter().any(|c| c.contains(mention)),
                    "{what}: a next command mentions {mention:?}: {next:#?}"
                );
            }
            if let Some((kind, namespace, name)) = expect.resource {
                let resource = &finding["resource"];
                assert_eq!(
                    (
                        str_at(resource, "/kind"),
                        str_at(resource, "/namespace"),
                        str_at(resource, "/name")
                    ),
                    (kind, namespace, name),
                    "{what}: resource: {finding:#}"
                );
            }

            // The app to read is the destination's, never the caller's.
            if expect.cause == "app_returned_error" {
                assert!(
                    !next
                        .iter()
                        .any(|c| c.starts_with(&format!("kubectl logs {POD}"))),
                    "{what}: the calling pod's logs: {next:#?}"
                );
            }

            // Case-specific evidence.
            match case.name {
                "rbac" => {
                    let title = str_at(finding, "/title");
                    assert!(title.contains("e2e/deny-admin"), "{what}: {title}");
                    assert_eq!(
                        str_at(evidence, "/decided_by/response_code_details"),
                        format!(
                            "rbac_access_denied_matched_policy[{}]",
                            scenario::RBAC_POLICY
                        ),
                        "{what}"
                    );
                }
                "direct" => {
                    // The raw evidence that decided it.
                    let decided = &evidence["decided_by"];
                    assert_eq!(str_at(decided, "/response_code_details"), "direct_response");
                    assert_eq!(str_at(decided, "/route_name"), "direct");
                    assert_eq!(str_at(decided, "/virtual_host"), VHOST);
                    assert_eq!(str_at(finding, "/group/details_class"), "direct_response");
                    let title = str_at(finding, "/title");
                    assert!(
                        title.contains("the route direct of VirtualService e2e/backend answered 502 itself (direct_response)"),
                        "{what}: the route, its VirtualService and the code in the title: {title}"
                    );
                }
                "grpc-unavailable" => {
                    assert_eq!(evidence["decided_by"]["grpc_status"], 14, "{what}");
                    let title = str_at(finding, "/title");
                    assert!(
                        title.contains("grpc-status 14 UNAVAILABLE"),
                        "{what}: the gRPC status is named: {title}"
                    );
                }
                "uf-urx" => {
                    assert!(
                        evidence["decided_by"]["attempt_count"].as_u64() > Some(1),
                        "{what}: retried: {finding:#}"
                    );
                }
                _ => {}
            }
            explained += 1;
        }
    }
    // One per failure case, plus at least one overflow.
    assert!(
        explained >= EXPECTED.len(),
        "{explained} requests explained"
    );

    // A request that succeeded (only counted) has nothing to explain, and says so.
    let ok = cli::json(&url, &["explain", "--request-id", "explain-success"])?;
    assert_eq!(ok["findings"], serde_json::json!([]), "{ok:#}");
    assert_eq!(ok["hops"], serde_json::json!([]), "{ok:#}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_run_ranks_causes_by_impact() -> anyhow::Result<()> {
    let lab = Lab::start(LabOptions::default()).await?;
    let url = lab.collector_url();
    // Sent in the opposite order of impact so ranking cannot be arrival order.
    let plan: &[(&str, usize)] = &[("/nowhere", 1), ("/uc", 3), ("/uf", 6)];
    let mut ids = Vec::new();
    for (path, n) in plan {
        for i in 0..*n {
            let id = format!("mixed{}-{i}", path.replace('/', "-"));
            lab.client.get(VHOST, path, &id).await?;
            ids.push(id);
        }
    }
    wait::until("the collector to hold every failure", || {
        let url = url.clone();
        let ids = &ids;
        async move {
            let stored = stored_ids(&url).await?;
            ids.iter().all(|id| stored.contains(id)).then_some(())
        }
    })
    .await?;

    let out = cli::json(&url, &["explain"])?;
    let findings = out["findings"].as_array().expect("findings");
    let ranked: Vec<(&str, u64)> = findings
        .iter()
        .map(|f| {
            (
                str_at(f, "/cause"),
                f["evidence"]["count"].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(
        ranked,
        [
            ("upstream_connect_failed", 6),
            ("upstream_connection_terminated", 3),
            ("no_route", 1)
        ],
        "{out:#}"
    );
    let shares: Vec<f64> = findings
        .iter()
        .map(|f| f["evidence"]["share_of_failures"].as_f64().expect("share"))
        .collect();
    for (share, expected) in shares.iter().zip([0.6, 0.3, 0.1]) {
        assert!((share - expected).abs() < 1e-9, "shares {shares:?}");
    }
    assert_eq!(out["totals"]["failures"], 10, "{out:#}");
    for finding in findings {
        assert!(
            finding["next_commands"]
                .as_array()
                .is_some_and(|next| !next.is_empty()),
            "{finding:#}"
        );
    }
    Ok(())
}
