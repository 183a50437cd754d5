//! The log reader's oracle: real Envoy 1.40 runs the e2e failure matrix with one extra file
//! access logger per Istio default-format era (text and JSON), so Envoy writes the very line
//! each Istio release would have written, while the filter writes its record of the same
//! request. For every request and every era, `meshwhy explain --input-file ERA.log
//! --request-id ID` (the real CLI, no collector) must name the same cause as `meshwhy explain
//! --request-id ID` against the collector, and the fields read from the line must equal the
//! record's wherever the era logs them (and be empty, marked unknown, where it does not).
//!
//! Where an era cannot carry what a cause needs, the difference is listed in
//! [`EXPECTED_DIFFERENCES`] with the reason; nothing else may differ.
//!
//! Needs the CLI built: `cargo build -p meshwhy-collector --bins` (`cargo make test` does it).

use meshwhy_collector::logread::{self, LogReader};
use meshwhy_e2e::{
    access_log::LogLine,
    cli,
    eras::{self, Era},
    paths,
    scenario::{CASES, Case, Lab, LabOptions, query},
    wait,
};
use meshwhy_proto::v1::{DecisionRecord, RecordField, StoredRecord};
use serde_json::Value;
use std::{collections::HashMap, fmt::Write as _, path::PathBuf};

/// A difference between the cause read from an era's line and the filter's, that the era's
/// format makes unavoidable.
struct Difference {
    /// The eras it applies to.
    eras: &'static [&'static str],
    /// The case of the failure matrix.
    case: &'static str,
    /// The cause (as [`cause`] prints it) the line gives instead.
    line_cause: &'static str,
    /// Why the line cannot do better.
    why: &'static str,
}

/// Problems quoted in the failure message (the rest are in a file).
const SHOWN_PROBLEMS: usize = 40;

/// Every era (for differences no format escapes).
const ALL_ERAS: &[&str] = &[
    "envoy-default",
    "istio-1.0.3",
    "istio-1.1",
    "istio-1.2",
    "istio-1.3",
    "istio-1.8",
    "istio-1.9",
    "istio-1.23",
    "json-1.1",
    "json-1.2",
    "json-1.3",
    "json-1.8",
    "json-1.9",
    "json-1.25",
];

/// The only (era, case) pairs where the line's cause may differ from the filter's record's.
const EXPECTED_DIFFERENCES: &[Difference] = &[Difference {
    eras: ALL_ERAS,
    case: "grpc-unavailable",
    line_cause: "none",
    why: "no Istio default format logs grpc-status: a gRPC error inside an HTTP 200 with no \
          flags looks like a success in the line",
}];

/// The listed difference for (era, case), if any.
fn expected_difference(era: &str, case: &str) -> Option<&'static Difference> {
    EXPECTED_DIFFERENCES
        .iter()
        .find(|d| d.case == case && d.eras.contains(&era))
}

/// Would the filter's default capture set record this outcome in full? (As in pipeline.rs.)
fn is_failure(line: &LogLine) -> bool {
    let flags = line.flag_names();
    let code = line.code();
    flags.iter().any(|flag| flag != "DI" && flag != "RFCF")
        || code == 0
        || code >= 500
        || code == 403
        || code == 429
        || line.grpc_status().is_some_and(|status| status != 0)
}

/// The cause an explain output names for its request: the first finding's cause (with the
/// last attempt's cause for retries), `none` when there is no finding.
fn cause(out: &Value) -> String {
    let Some(finding) = out["findings"].as_array().and_then(|f| f.first()) else {
        return "none".to_owned();
    };
    let cause = finding["cause"].as_str().unwrap_or("?").to_owned();
    match finding["last_attempt_cause"].as_str() {
        Some(last) => format!("{cause}(last attempt: {last})"),
        None => cause,
    }
}

/// What a line must give back: the filter's record for a failure, Envoy's JSON oracle line for
/// a success (the filter only counts those; pipeline.rs proves the two agree).
#[derive(Debug, Clone, Default)]
struct Want {
    code: u32,
    flags: Vec<String>,
    details: String,
    request_id: String,
    authority: String,
    upstream_host: String,
    cluster: String,
    route: String,
    method: String,
    path: String,
    transport_failure: String,
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

impl Want {
    fn from_record(stored: &StoredRecord) -> Self {
        let r = stored.record.clone().unwrap_or_default();
        Self {
            code: r.response_code,
            flags: sorted(stored.flag_names.clone()),
            details: r.response_code_details,
            request_id: r.request_id,
            authority: r.authority,
            upstream_host: r.upstream_host,
            cluster: r.cluster,
            route: r.route_name,
            method: r.method,
            path: r.path,
            // Envoy's log writes spaces in this field as `_`.
            transport_failure: r.transport_failure_reason.replace(' ', "_"),
        }
    }

    fn from_oracle(line: &LogLine) -> Self {
        let f = |value: &str| LogLine::field(value).to_owned();
        Self {
            code: line.code(),
            flags: sorted(line.flag_names()),
            details: f(&line.details),
            request_id: line.request_id.clone(),
            authority: line.authority.clone(),
            upstream_host: f(&line.upstream_host),
            cluster: f(&line.cluster),
            route: f(&line.route),
            method: line.method.clone(),
            path: line.path.split('?').next().unwrap_or_default().to_owned(),
            transport_failure: f(&line.transport_failure),
        }
    }
}

/// The record `meshwhy explain --request-id` shows for the line (its one hop, either side).
fn hop_record(out: &Value) -> Option<&Value> {
    let hops = out["hops"].as_array()?;
    let hop = hops.first()?;
    [&hop["client"], &hop["server"]]
        .into_iter()
        .find(|record| record.is_object())
}

/// Field-by-field: what the line gave (`got`, a record in explain's JSON) against `want`;
/// fields the era does not log must come back empty. Returns the mismatches.
fn compare_fields(era: &Era, got: &Value, want: &Want) -> Vec<String> {
    let text = |key: &str| got[key].as_str().unwrap_or_default().to_owned();
    let mut problems = Vec::new();
    let mut check = |field: &str, carried: bool, got: String, want: &str| {
        let want = if carried { want } else { "" };
        if got != want {
            let carried = if carried { "" } else { " (not in this format)" };
            problems.push(format!("{field}{carried}: line {got:?}, record {want:?}"));
        }
    };
    check(
        "response_code",
        true,
        got["response_code"].to_string(),
        &want.code.to_string(),
    );
    let flags: Vec<String> = got["flags"]
        .as_array()
        .map(|flags| {
            flags
                .iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    check(
        "flags",
        true,
        sorted(flags).join(","),
        &want.flags.join(","),
    );
    check(
        "response_code_details",
        era.carries("%RESPONSE_CODE_DETAILS%"),
        text("response_code_details"),
        &want.details,
    );
    check("request_id", true, text("request_id"), &want.request_id);
    check("authority", true, text("authority"), &want.authority);
    check(
        "upstream_host",
        era.carries("%UPSTREAM_HOST%"),
        text("upstream_host"),
        &want.upstream_host,
    );
    check(
        "cluster",
        era.carries("%UPSTREAM_CLUSTER"),
        text("cluster"),
        &want.cluster,
    );
    check(
        "route_name",
        era.carries("%ROUTE_NAME%"),
        text("route_name"),
        &want.route,
    );
    check("method", true, text("method"), &want.method);
    // The reader, like the filter, never keeps a query string.
    check("path", true, text("path"), &want.path);
    check(
        "transport_failure_reason",
        era.carries("%UPSTREAM_TRANSPORT_FAILURE_REASON%"),
        text("transport_failure_reason").replace(' ', "_"),
        &want.transport_failure,
    );
    problems
}

/// The record fields an era's format decides, with the command that carries each.
const CARRIED_BY: &[(&str, RecordField)] = &[
    ("%REQ(X-REQUEST-ID)%", RecordField::RequestId),
    ("%REQ(:AUTHORITY)%", RecordField::Authority),
    ("%RESPONSE_CODE_DETAILS%", RecordField::ResponseCodeDetails),
    (
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
        RecordField::TransportFailureReason,
    ),
    ("%ROUTE_NAME%", RecordField::RouteName),
    ("%UPSTREAM_CLUSTER", RecordField::Cluster),
    ("%UPSTREAM_HOST%", RecordField::UpstreamHost),
    ("%REQUESTED_SERVER_NAME%", RecordField::RequestedServerName),
    (
        "%CONNECTION_TERMINATION_DETAILS%",
        RecordField::ConnectionTerminationDetails,
    ),
];

/// Fields no Istio default format logs.
const NEVER_CARRIED: &[RecordField] = &[
    RecordField::VirtualHost,
    RecordField::RouteProvenance,
    RecordField::ClusterProvenance,
    RecordField::EndpointTlsMode,
    RecordField::UpstreamTls,
    RecordField::AttemptCount,
];

fn bit(field: RecordField) -> u64 {
    1u64 << (field as i32)
}

/// The reader's field-presence mask for one line of `era`: set exactly for what the format
/// lacks. Returns the mismatches.
fn check_mask(era: &Era, record: &DecisionRecord) -> Vec<String> {
    let mut problems = Vec::new();
    for (command, field) in CARRIED_BY {
        let unknown = record.unknown_fields & bit(*field) != 0;
        if unknown == era.carries(command) {
            problems.push(format!(
                "unknown_fields: {field:?} {} though the format {} {command}",
                if unknown { "set" } else { "not set" },
                if unknown { "has" } else { "lacks" },
            ));
        }
    }
    for field in NEVER_CARRIED {
        if record.unknown_fields & bit(*field) == 0 {
            problems.push(format!(
                "unknown_fields: {field:?} not set, though no Istio format logs it"
            ));
        }
    }
    if !record.origin.starts_with("access-log:") || record.origin == "access-log:salvaged" {
        problems.push(format!(
            "origin {:?}: an Istio default format must be recognised, not salvaged",
            record.origin
        ));
    }
    problems
}

/// The era file's line for `id` (text lines quote the id; JSON lines quote it as a value).
fn line_for<'a>(lines: &'a [String], id: &str) -> Option<&'a String> {
    let quoted = format!("\"{id}\"");
    lines.iter().find(|line| line.contains(&quoted))
}

fn read_era(path: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_era_explains_like_the_filter() -> anyhow::Result<()> {
    let eras = eras::all();
    let era_names: Vec<&str> = eras.iter().map(|era| era.name).collect();
    assert_eq!(era_names, ALL_ERAS, "ALL_ERAS lists every era");
    for difference in EXPECTED_DIFFERENCES {
        assert!(
            CASES.iter().any(|case| case.name == difference.case),
            "EXPECTED_DIFFERENCES names an unknown case {}",
            difference.case
        );
    }

    let lab = Lab::start(LabOptions {
        extra_access_logs: eras::access_loggers(&eras),
        ..LabOptions::default()
    })
    .await?;
    let url = lab.collector_url();

    let mut sent: Vec<(&Case, String)> = Vec::new();
    for case in CASES {
        for id in lab.send(case, "era").await? {
            sent.push((case, id));
        }
    }

    // Envoy's JSON oracle, then every era's file, has a line for every request sent.
    let oracle: HashMap<String, LogLine> = wait::until("an oracle line per request", || {
        let lines = lab.access_log().ok();
        let sent = &sent;
        async move {
            let by_id: HashMap<String, LogLine> = lines?
                .into_iter()
                .map(|line| (line.request_id.clone(), line))
                .collect();
            sent.iter()
                .all(|(_, id)| by_id.contains_key(id))
                .then_some(by_id)
        }
    })
    .await?;
    let mut era_lines: HashMap<&str, Vec<String>> = HashMap::new();
    for era in &eras {
        let path = era.path(&lab.envoy.access_log);
        let lines = wait::until(&format!("a {} line per request", era.name), || {
            let lines = read_era(&path);
            let sent = &sent;
            async move {
                sent.iter()
                    .all(|(_, id)| line_for(&lines, id).is_some())
                    .then_some(lines)
            }
        })
        .await?;
        era_lines.insert(era.name, lines);
    }

    // The collector holds the filter's record of every failure.
    let failures: Vec<&String> = sent
        .iter()
        .map(|(_, id)| id)
        .filter(|id| is_failure(&oracle[*id]))
        .collect();
    let mut records: HashMap<String, StoredRecord> = HashMap::new();
    for id in &failures {
        let stored = wait::until(&format!("the collector's record for {id}"), || {
            let (url, id) = (url.clone(), (*id).clone());
            async move {
                let records = query::records(&url, &id).await.ok()?;
                records.into_iter().next()
            }
        })
        .await?;
        records.insert((*id).clone(), stored);
    }

    // The filter's verdict per request.
    let mut filter_causes: HashMap<&str, String> = HashMap::new();
    for (_, id) in &sent {
        let out = cli::json(&url, &["explain", "--request-id", id])?;
        filter_causes.insert(id, cause(&out));
    }

    let mut problems: Vec<String> = Vec::new();
    // Per case and era: "ok", or what the line said instead (the table printed at the end).
    let mut table: HashMap<(&str, &str), String> = HashMap::new();
    for era in &eras {
        let path = era.path(&lab.envoy.access_log);
        let path_text = path.display().to_string();

        // The whole file reads, every line in a known format.
        let file = std::fs::File::open(&path)?;
        let report = logread::read_lines(std::io::BufReader::new(file), &LogReader::new(), |_| {})?;
        if report.unreadable != 0 || report.salvaged != 0 || report.read != report.lines {
            problems.push(format!(
                "{}: {} lines, {} read, {} salvaged, {} unreadable ({:?}; {:?})",
                era.name,
                report.lines,
                report.read,
                report.salvaged,
                report.unreadable,
                report.by_origin,
                report.samples
            ));
        }

        let lines = &era_lines[era.name];
        for (case, id) in &sent {
            let what = format!("{} {} ({id})", era.name, case.name);
            let mut cell = "ok".to_owned();
            let line = line_for(lines, id).expect("waited for above");
            match LogReader::new().read_line(line) {
                Ok(read) => problems.extend(
                    check_mask(era, &read.record)
                        .into_iter()
                        .map(|p| format!("{what}: {p}\n    line: {line}")),
                ),
                Err(error) => {
                    problems.push(format!("{what}: unreadable ({error})\n    line: {line}"));
                    cell = "UNREAD".to_owned();
                }
            }

            let out = match cli::json(
                &url,
                &["explain", "--input-file", &path_text, "--request-id", id],
            ) {
                Ok(out) => out,
                Err(error) => {
                    problems.push(format!("{what}: meshwhy explain --input-file: {error:#}"));
                    table.insert((case.name, era.name), "ERROR".to_owned());
                    continue;
                }
            };
            let line_cause = cause(&out);
            let filter_cause = &filter_causes[id.as_str()];
            match expected_difference(era.name, case.name) {
                Some(difference) => {
                    if line_cause != difference.line_cause {
                        problems.push(format!(
                            "{what}: listed difference ({}) expects {:?} from the line, got \
                             {line_cause:?} (filter: {filter_cause:?})",
                            difference.why, difference.line_cause
                        ));
                        cell = line_cause.clone();
                    } else {
                        cell = "(listed)".to_owned();
                    }
                }
                None if &line_cause != filter_cause => {
                    problems.push(format!(
                        "{what}: cause from the line {line_cause:?}, from the filter's record \
                         {filter_cause:?}\n    line: {line}"
                    ));
                    cell = line_cause.clone();
                }
                None => {}
            }

            let want = match records.get(id.as_str()) {
                Some(stored) => Want::from_record(stored),
                None => Want::from_oracle(&oracle[id.as_str()]),
            };
            match hop_record(&out) {
                Some(got) => {
                    let field_problems = compare_fields(era, got, &want);
                    if !field_problems.is_empty() && cell == "ok" {
                        cell = "fields".to_owned();
                    }
                    problems.extend(
                        field_problems
                            .into_iter()
                            .map(|p| format!("{what}: {p}\n    line: {line}")),
                    );
                }
                None => {
                    problems.push(format!("{what}: no record in the explain output: {out}"));
                    if cell == "ok" {
                        cell = "no record".to_owned();
                    }
                }
            }
            // A case with several requests (the circuit breaker) shows its worst.
            let slot = table
                .entry((case.name, era.name))
                .or_insert_with(|| "ok".to_owned());
            if slot == "ok" {
                *slot = cell;
            }
        }
    }

    // Every listed difference is still needed (a reader that learned better shrinks the list).
    for difference in EXPECTED_DIFFERENCES {
        for era in difference.eras {
            let ids: Vec<&String> = sent
                .iter()
                .filter(|(case, _)| case.name == difference.case)
                .map(|(_, id)| id)
                .collect();
            let all_agree = ids
                .iter()
                .all(|id| filter_causes[id.as_str()] == difference.line_cause);
            if all_agree {
                problems.push(format!(
                    "listed difference {era} {}: the filter too says {:?}; drop it from the list",
                    difference.case, difference.line_cause
                ));
            }
        }
    }

    let mut matrix = String::from("case \\ era");
    for era in &eras {
        let _ = write!(matrix, " | {}", era.name);
    }
    for case in CASES {
        let _ = write!(
            matrix,
            "\n{} [{}]",
            case.name,
            filter_causes_of(&sent, &filter_causes, case)
        );
        for era in &eras {
            let _ = write!(
                matrix,
                " | {}",
                table
                    .get(&(case.name, era.name))
                    .map_or("-", String::as_str)
            );
        }
    }
    eprintln!("{matrix}");
    if !problems.is_empty() {
        // The whole list goes to a file; the failure shows the first few and the matrix.
        let out = paths::repo_root().join("target/e2e");
        std::fs::create_dir_all(&out)?;
        let file = out.join("access_logs-problems.txt");
        std::fs::write(&file, problems.join("\n"))?;
        panic!(
            "{} problems (all in {}):\n{}\n\n{matrix}",
            problems.len(),
            file.display(),
            problems[..problems.len().min(SHOWN_PROBLEMS)].join("\n")
        );
    }
    Ok(())
}

/// The filter's causes for a case's requests (distinct, in order).
fn filter_causes_of(
    sent: &[(&Case, String)],
    causes: &HashMap<&str, String>,
    case: &Case,
) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for (c, id) in sent {
        if c.name == case.name {
            let cause = causes[id.as_str()].as_str();
            if !seen.contains(&cause) {
                seen.push(cause);
            }
        }
    }
    seen.join(", ")
}
