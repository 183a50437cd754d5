//! Snapshot tests of `meshwhy explain` and `meshwhy top` output: the expected text lives in
//! `collector/tests/fixtures/snapshots/`; `MESHWHY_UPDATE_SNAPSHOTS=1` rewrites it after a
//! deliberate change (review the diff).

use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use meshwhy_proto::v1::{self as pb, DecisionRecord, ProxyIdentity};

use super::*;
use crate::cli::logs::{Input as LogLines, LogSource};
use crate::cli::{Cli, CliError};
use crate::explain::fixtures::*;
use crate::explain::testkit::{client, inbound, outbound, server};
use crate::explain::{Input, RecordRef, Scope, wire};

fn snapshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/snapshots")
        .join(name)
}

/// Compares `actual` with the snapshot file `name` (rewritten with `MESHWHY_UPDATE_SNAPSHOTS=1`);
/// the CLI's other commands' tests use it too.
pub(crate) fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshot_path(name);
    if std::env::var_os("MESHWHY_UPDATE_SNAPSHOTS").is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}; run with MESHWHY_UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert!(
        actual == expected,
        "snapshot {name} differs (MESHWHY_UPDATE_SNAPSHOTS=1 accepts a deliberate change)\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn with(mut record: DecisionRecord, id: &str, offset_ms: u64) -> DecisionRecord {
    record.request_id = id.into();
    record.start_time_unix_nanos += offset_ms * 1_000_000;
    record
}

/// A mixed run: a closed port behind retries, an AuthorizationPolicy deny, an app's own 503
/// seen by both sidecars, and a path no route matches.
fn mixed() -> Vec<(ProxyIdentity, DecisionRecord)> {
    let mut records = Vec::new();
    for i in 0..4 {
        let mut record = with(outbound(503, "UF,URX", REFUSED), &format!("uf-{i}"), 10 * i);
        record.attempt_count = 3;
        record.transport_failure_reason = REFUSED_TRANSPORT.into();
        records.push((client(), record));
    }
    for i in 0..2 {
        records.push((
            server(),
            with(inbound(403, "", RBAC_DENY), &format!("rbac-{i}"), 100 + i),
        ));
    }
    records.push((
        client(),
        with(outbound(503, "", VIA_UPSTREAM), "app-0", 200),
    ));
    records.push((server(), with(inbound(503, "", VIA_UPSTREAM), "app-0", 201)));
    let mut nr = with(outbound(404, "NR", ROUTE_NOT_FOUND), "nr-0", 300);
    nr.cluster.clear();
    nr.upstream_host.clear();
    nr.route_name.clear();
    nr.path = "/admin".into();
    records.push((client(), nr));
    records
}

fn response(records: &[(ProxyIdentity, DecisionRecord)], request_id: &str) -> pb::ExplainResponse {
    let proxies = [client(), server()];
    let input = Input {
        records: records
            .iter()
            .map(|(proxy, record)| RecordRef::new(proxy, record))
            .collect(),
        successes: Vec::new(),
        proxies: proxies.iter().collect(),
        window_complete: true,
    };
    if request_id.is_empty() {
        wire::report(&crate::explain::explain(&input, &Scope::default(), 10))
    } else {
        wire::request_report(&crate::explain::explain_request(&input, request_id))
    }
}

fn request(request_id: &str) -> pb::ExplainRequest {
    pb::ExplainRequest {
        request_id: request_id.into(),
        ..Default::default()
    }
}

fn human(response: &pb::ExplainResponse, request: &pb::ExplainRequest) -> String {
    let mut out = Vec::new();
    write_human(&mut out, response, request, Style::PLAIN).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn window_human_output() {
    let response = response(&mixed(), "");
    assert_snapshot("explain-window.txt", &human(&response, &request("")));
}

#[test]
fn request_human_output() {
    let response = response(&mixed(), "app-0");
    assert_snapshot("explain-request.txt", &human(&response, &request("app-0")));
}

#[test]
fn top_table_output() {
    let response = response(&mixed(), "");
    let mut out = Vec::new();
    crate::cli::top::write_table(&mut out, &response).unwrap();
    assert_snapshot("top.txt", &String::from_utf8(out).unwrap());
}

fn explain_fixture(proxy: &str) -> Result<pb::ExplainResponse, CliError> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/istio-proxy.log");
    explain_path(&path, proxy)
}

fn explain_path(path: &std::path::Path, proxy: &str) -> Result<pb::ExplainResponse, CliError> {
    let source = LogSource {
        proxy: Some(proxy.into()),
        ..LogSource::default()
    };
    let identity = Identity::new(&source, None, None).unwrap();
    input::explain_log(&LogLines::from_path(path), &source, &identity, &request(""))
}

#[test]
fn input_file_human_output() {
    let response = explain_fixture("productpage-v1-7d9c.shop").unwrap();
    assert_snapshot("explain-input-file.txt", &human(&response, &request("")));
    let causes: Vec<&str> = response.findings.iter().map(|f| f.cause.as_str()).collect();
    assert_eq!(
        causes,
        ["retries_exhausted", "no_route", "app_returned_error"]
    );
    let totals = response.totals.unwrap();
    assert_eq!(totals.successes, 3, "successful lines count as traffic");
    assert_eq!(
        response.findings[0]
            .evidence
            .as_ref()
            .unwrap()
            .share_of_traffic,
        Some(2.0 / 3.0)
    );
}

#[test]
fn missing_input_file_is_exit_66() {
    let error =
        explain_path(std::path::Path::new("/nonexistent/meshwhy.log"), "p.shop").unwrap_err();
    assert_eq!(error.exit_code(), crate::cli::EXIT_NO_INPUT);
    assert!(
        error
            .to_string()
            .starts_with("read /nonexistent/meshwhy.log: "),
        "{error}"
    );
}

#[test]
fn help_texts() {
    let mut command = Cli::command();
    let explain = command
        .find_subcommand_mut("explain")
        .unwrap()
        .render_long_help()
        .to_string();
    assert_snapshot("explain-help.txt", &explain);
    let mut command = Cli::command();
    let top = command
        .find_subcommand_mut("top")
        .unwrap()
        .render_long_help()
        .to_string();
    assert_snapshot("top-help.txt", &top);
    for name in ["observe", "records", "ingest-logs"] {
        let mut command = Cli::command();
        let help = command
            .find_subcommand_mut(name)
            .unwrap()
            .render_long_help()
            .to_string();
        assert_snapshot(&format!("{name}-help.txt"), &help);
    }
}

#[test]
fn colour_only_when_enabled() {
    let response = response(&mixed(), "");
    let plain = human(&response, &request(""));
    assert!(!plain.contains('\x1b'));
    let mut out = Vec::new();
    write_human(&mut out, &response, &request(""), Style { enabled: true }).unwrap();
    let coloured = String::from_utf8(out).unwrap();
    assert!(coloured.contains("\x1b[1;31mretries_exhausted\x1b[0m"));
    assert!(!Style::for_terminal(false).enabled);
}

#[test]
fn json_schema_keys() {
    let response = response(&mixed(), "");
    let json = serde_json::to_value(JsonExplain::new(&response, &request(""))).unwrap();
    let keys = |value: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&json), ["findings", "totals"]);
    let finding = &json["findings"][0];
    assert_eq!(
        keys(finding),
        [
            "cause",
            "confidence",
            "evidence",
            "group",
            "last_attempt_cause",
            "next_commands",
            "notes",
            "resource",
            "title"
        ]
    );
    assert_eq!(finding["cause"], "retries_exhausted");
    assert_eq!(finding["last_attempt_cause"], "upstream_connect_failed");
    assert_eq!(finding["confidence"], "high");
    assert_eq!(
        keys(&finding["evidence"]),
        [
            "count",
            "decided_by",
            "first_seen",
            "hop",
            "last_seen",
            "pods",
            "sample_paths",
            "sample_request_ids",
            "share_of_failures",
            "share_of_traffic",
            "upstream_hosts"
        ]
    );
    assert_eq!(
        finding["evidence"]["decided_by"]["flags"],
        serde_json::json!(["UF", "URX"])
    );
    assert_eq!(
        finding["evidence"]["first_seen"],
        "2023-11-14T22:13:20.000000000Z"
    );
    assert_eq!(finding["group"]["direction"], "outbound");
    assert_eq!(
        keys(&json["totals"]),
        [
            "failures",
            "groups",
            "joined_hops",
            "records_scanned",
            "since",
            "successes",
            "window_complete"
        ]
    );
    assert_eq!(json["totals"]["since"], serde_json::Value::Null);

    let by_id = response_for_request();
    let json = serde_json::to_value(JsonExplain::new(&by_id, &request("app-0"))).unwrap();
    assert_eq!(json["request_id"], "app-0");
    assert_eq!(
        json["hops"][0]["client"]["proxy"]["pod"],
        "productpage-v1-7d9c"
    );
    assert_eq!(json["hops"][0]["server"]["direction"], "inbound");
    assert_eq!(json["findings"][0]["cause"], "app_returned_error");
}

fn response_for_request() -> pb::ExplainResponse {
    response(&mixed(), "app-0")
}

#[test]
fn default_window_is_15_minutes_but_a_file_is_read_whole() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
    let cli = Cli::try_parse_from(["meshwhy", "explain", "-n", "shop"]).unwrap();
    let crate::cli::Command::Explain(args) = cli.command else {
        panic!("explain expected");
    };
    assert_eq!(
        args.request(now).since_unix_nanos,
        (10_000 - 900) * 1_000_000_000
    );
    let cli =
        Cli::try_parse_from(["meshwhy", "explain", "--input-file", "-", "--since", "0s"]).unwrap();
    let crate::cli::Command::Explain(args) = cli.command else {
        panic!("explain expected");
    };
    assert_eq!(args.request(now).since_unix_nanos, 0);
    let cli = Cli::try_parse_from(["meshwhy", "explain", "--input-file", "x.log"]).unwrap();
    let crate::cli::Command::Explain(args) = cli.command else {
        panic!("explain expected");
    };
    assert_eq!(args.request(now).since_unix_nanos, 0);
    let cli = Cli::try_parse_from(["meshwhy", "explain", "--line", "x", "--line", "y"]).unwrap();
    let crate::cli::Command::Explain(args) = cli.command else {
        panic!("explain expected");
    };
    assert_eq!(
        args.request(now).since_unix_nanos,
        0,
        "lines are read whole"
    );
    assert_eq!(args.request(now).limit, 10);
    assert_eq!(args.input.lines, ["x", "y"]);
    let cli = Cli::try_parse_from(["meshwhy", "explain", "--proxy", "a.b"]).unwrap();
    let crate::cli::Command::Explain(args) = cli.command else {
        panic!("explain expected");
    };
    let error = args.input.input().unwrap_err();
    assert_eq!(
        error.exit_code(),
        crate::cli::EXIT_USAGE,
        "--proxy needs a log"
    );
    assert!(
        Cli::try_parse_from(["meshwhy", "explain", "--line", "x", "--input-file", "-"]).is_err(),
        "--line and --input-file are exclusive"
    );
    assert!(
        Cli::try_parse_from(["meshwhy", "explain", "--pod", "a", "--proxy", "a.b"]).is_err(),
        "--pod and --proxy are exclusive"
    );
}
