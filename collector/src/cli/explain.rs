//! `meshwhy explain`: why requests failed — findings over a window (default the last 15 minutes),
//! or one request end to end with `--request-id`; from the collector, or from Envoy/Istio access
//! log lines with `--input-file PATH|-` or `--line '<a pasted line>'` (no collector needed).
//!
//! Human output (`-o table`, the default) prints one block per finding: rank, cause id and
//! confidence, the one-sentence title, evidence lines, the implicated resource, notes and the
//! numbered next commands. Colour only on a terminal, never with `NO_COLOR` set.
//!
//! The JSON shape (`-o json`) is a public interface; fields are only ever added:
//!
//! ```text
//! {"findings": [{
//!    "cause": stable cause id (see below), "title": one sentence,
//!    "confidence": "high"|"medium"|"low",
//!    "last_attempt_cause": cause id of the last attempt (retries_exhausted) or null,
//!    "group": {"namespace", "workload" (the recording proxy), "direction": "inbound"|"outbound"|
//!      "unspecified", "destination", "authority", "virtual_host", "route_name",
//!      "route_provenance", "cluster", "response_code", "response_flags" (bitmask),
//!      "flags" (short names), "details_class"},
//!    "evidence": {"count", "share_of_failures" (0..1), "share_of_traffic" (0..1 or null),
//!      "first_seen", "last_seen" (RFC 3339 UTC), "sample_request_ids", "sample_paths", "pods",
//!      "upstream_hosts",
//!      "decided_by": {"response_code", "response_flags", "flags", "response_code_details",
//!        "transport_failure_reason", "route_name", "virtual_host", "cluster", "upstream_host",
//!        "attempt_count", "endpoint_tls_mode", "upstream_tls_version", "route_provenance",
//!        "cluster_provenance", "cluster_subset", "grpc_status" (null unless gRPC)},
//!      "hop": null | {"joined", "unjoined", "summary", "peers": [{"direction", "namespace",
//!        "workload", "pod", "response_code", "response_flags", "flags",
//!        "response_code_details", "count"}]}},
//!    "resource": null | {"kind", "namespace", "name", "subset", "provenance", "hint"}
//!      (kind/name empty when only a hint is known, e.g. "ServiceEntry missing"),
//!    "next_commands": [...], "notes": [...]}],
//!  "totals": {"records_scanned", "failures", "groups", "successes", "joined_hops",
//!    "window_complete", "since" (RFC 3339 or null)},
//!  "request_id": only with --request-id,
//!  "hops": only with --request-id: [{"client": record|null, "server": record|null, "summary"}]
//!    (records shaped as in `meshwhy records -o json`)}
//! ```
//!
//! `-o jsonl` prints one finding object per line. Cause ids: app_returned_error,
//! upstream_connect_failed, mtls_mismatch, upstream_connection_terminated, upstream_reset,
//! no_route, registry_only_blocked, no_cluster, no_healthy_upstream, circuit_breaker_overflow,
//! retries_exhausted, upstream_timeout, stream_idle_timeout, downstream_disconnect, rbac_denied,
//! ext_authz_denied, rate_limited, fault_injected, protocol_error, no_filter_config,
//! wasm_plugin_failure, overload, dns_failure, sidecar_missing, stale_config_suspected,
//! canary_split_mismatch, direct_response, no_filter_chain, idle_timeout_race,
//! certificate_not_ready, unknown.

pub(crate) mod input;

use std::io::{BufWriter, IsTerminal, Write};
use std::time::{Duration, SystemTime};

use clap::Args;
use meshwhy_proto::v1::{self as pb, Direction};
use serde::Serialize;

use super::filters::{Filters, SCOPE_NAMESPACE_HELP, SCOPE_SINCE_HELP, Scope};
use super::logs::{FORMATS_HELP, Identity, LogInput};
use super::output::{self, OutputFormat};
use super::records::JsonRecord;
use super::{CliError, connect};
use crate::time::{format_clock_millis, format_rfc3339};

/// The window `meshwhy explain` and `meshwhy top` look at unless `--since` says otherwise.
pub const DEFAULT_SINCE: &str = "15m";
/// [`DEFAULT_SINCE`] as a duration.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Filters, input and output of `meshwhy explain`.
#[derive(Debug, Args)]
#[command(
    mut_arg("namespace", |arg| arg.help(SCOPE_NAMESPACE_HELP)),
    mut_arg("since", |arg| arg.help(SCOPE_SINCE_HELP)),
    mut_arg("limit", |arg| arg.help("At most this many findings").default_value("10")),
    after_long_help = FORMATS_HELP,
)]
pub struct ExplainArgs {
    /// Namespace, window, number of findings.
    #[command(flatten)]
    pub filters: Filters,
    /// Workload and service.
    #[command(flatten)]
    pub scope: Scope,
    /// Explain this one request (x-request-id) end to end, both hops.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Access-log lines instead of the collector.
    #[command(flatten)]
    pub input: LogInput,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

impl ExplainArgs {
    /// The request these arguments describe, with `--since` taken relative to `now`.
    pub fn request(&self, now: SystemTime) -> pb::ExplainRequest {
        // A log is explained whole unless a window is asked for.
        let window = (!self.input.is_given()).then_some(DEFAULT_WINDOW);
        self.filters
            .explain_request(&self.scope, self.request_id.as_deref(), window, now)
    }
}

/// Asks the collector (or reads the log lines) and prints.
pub(crate) async fn run(collector: &str, args: ExplainArgs) -> Result<(), CliError> {
    let request = args.request(SystemTime::now());
    let response = match args.input.input()? {
        Some(lines) => {
            let identity =
                Identity::new(&args.input.source, args.filters.namespace.as_deref(), None)?;
            input::explain_log(&lines, &args.input.source, &identity, &request)?
        }
        None => {
            let mut client = connect(collector).await?;
            client
                .explain(request.clone())
                .await
                .map_err(|status| CliError::from_status(collector, status))?
                .into_inner()
        }
    };
    let stdout = std::io::stdout();
    let style = Style::for_terminal(stdout.is_terminal());
    let mut out = BufWriter::new(stdout.lock());
    match args.output {
        OutputFormat::Table => {
            if request.request_id.is_empty() && response.findings.is_empty() {
                eprintln!("{}", nothing_found(&response));
            } else {
                write_human(&mut out, &response, &request, style)?;
            }
        }
        OutputFormat::Json => output::write_json(&mut out, &JsonExplain::new(&response, &request))?,
        OutputFormat::Jsonl => {
            output::write_jsonl(&mut out, response.findings.iter().map(JsonFinding::from))?;
        }
    }
    out.flush()?;
    Ok(())
}

fn nothing_found(response: &pb::ExplainResponse) -> String {
    let totals = response.totals.unwrap_or_default();
    format!(
        "no failures matched ({} records looked at, {} successes known)",
        totals.records_scanned, totals.successes
    )
}

/// ANSI styling, off unless stdout is a terminal and `NO_COLOR` is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    enabled: bool,
}

impl Style {
    /// No colour.
    pub const PLAIN: Self = Self { enabled: false };

    /// Colour when writing to a terminal and the user did not ask for none.
    pub fn for_terminal(is_terminal: bool) -> Self {
        Self {
            enabled: is_terminal && !crate::logging::no_color(),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub(crate) fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub(crate) fn cause(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    pub(crate) fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    pub(crate) fn command(self, text: &str) -> String {
        self.paint("36", text)
    }
}

/// `56%`, `<1%` for tiny non-zero shares.
pub(crate) fn percent(share: f64) -> String {
    let value = share * 100.0;
    if value > 0.0 && value < 0.5 {
        "<1%".to_owned()
    } else {
        format!("{value:.0}%")
    }
}

fn direction_name(direction: i32) -> &'static str {
    match Direction::try_from(direction) {
        Ok(Direction::Inbound) => "inbound",
        Ok(Direction::Outbound) => "outbound",
        _ => "unspecified",
    }
}

fn confidence_name(confidence: i32) -> &'static str {
    match pb::Confidence::try_from(confidence) {
        Ok(pb::Confidence::High) => "high",
        Ok(pb::Confidence::Medium) => "medium",
        Ok(pb::Confidence::Low) => "low",
        _ => "unspecified",
    }
}

fn flags_text(flags: u64) -> String {
    let names = crate::flags::names(flags);
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(",")
    }
}

/// Label column of the human output.
const LABEL_WIDTH: usize = 10;

fn line(out: &mut impl Write, style: Style, label: &str, text: &str) -> std::io::Result<()> {
    let label = if label.is_empty() {
        " ".repeat(LABEL_WIDTH)
    } else {
        format!("{:<LABEL_WIDTH$}", format!("{label}:"))
    };
    let text = format!("{}{text}", style.dim(&label));
    writeln!(out, "   {}", text.trim_end())
}

/// Writes the human report: a header line, then one block per finding (and the hops first for
/// `--request-id`).
pub fn write_human(
    out: &mut impl Write,
    response: &pb::ExplainResponse,
    request: &pb::ExplainRequest,
    style: Style,
) -> std::io::Result<()> {
    let totals = response.totals.unwrap_or_default();
    if !request.request_id.is_empty() {
        write_request(out, response, &request.request_id, style)?;
    } else {
        let since = match totals.since_unix_nanos {
            // A log read whole, or a collector asked for everything it holds.
            0 => "over all records".to_owned(),
            since => format!("since {} UTC", format_clock_millis(since)),
        };
        let shown = response.findings.len() as u64;
        let more = if totals.groups > shown {
            format!(" (top {shown} of {})", totals.groups)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{} failures in {} groups{more} {since}; {} successes known; highest impact first",
            totals.failures, totals.groups, totals.successes
        )?;
        if !totals.window_complete {
            writeln!(
                out,
                "{}",
                style.dim("(records from within the window were evicted or are not windowed: counts are lower bounds, shares of traffic omitted)")
            )?;
        }
    }
    for (index, finding) in response.findings.iter().enumerate() {
        writeln!(out)?;
        write_finding(out, index + 1, finding, style)?;
    }
    Ok(())
}

fn write_request(
    out: &mut impl Write,
    response: &pb::ExplainResponse,
    request_id: &str,
    style: Style,
) -> std::io::Result<()> {
    if response.hops.is_empty() {
        return writeln!(
            out,
            "request {request_id}: no record of it (only failures and sampled successes are recorded)"
        );
    }
    let hops = response.hops.len();
    writeln!(
        out,
        "request {request_id}: {hops} hop{}",
        if hops == 1 { "" } else { "s" }
    )?;
    for (index, hop) in response.hops.iter().enumerate() {
        writeln!(out)?;
        writeln!(out, "{}", style.bold(&format!("hop {}", index + 1)))?;
        for (label, side) in [("client", &hop.client), ("server", &hop.server)] {
            let text = match side {
                Some(stored) => describe_record(stored),
                None => "no record".to_owned(),
            };
            line(out, style, label, &text)?;
        }
        line(out, style, "reading", &hop.summary)?;
    }
    Ok(())
}

fn describe_record(stored: &pb::StoredRecord) -> String {
    let record = stored.record.clone().unwrap_or_default();
    let proxy = stored.proxy.clone().unwrap_or_default();
    let code = match record.response_code {
        0 => "-".to_owned(),
        code => code.to_string(),
    };
    format!(
        "{}.{} ({}) {} {} {} {}",
        proxy.pod,
        proxy.namespace,
        direction_name(record.direction),
        code,
        flags_text(record.response_flags),
        if record.response_code_details.is_empty() {
            "-"
        } else {
            &record.response_code_details
        },
        format_clock_millis(record.start_time_unix_nanos)
    )
}

fn write_finding(
    out: &mut impl Write,
    rank: usize,
    finding: &pb::Finding,
    style: Style,
) -> std::io::Result<()> {
    let mut head = format!(
        "{}. {} {}",
        rank,
        style.cause(&finding.cause),
        style.dim(&format!("[{}]", confidence_name(finding.confidence)))
    );
    if !finding.last_attempt_cause.is_empty() {
        head.push_str(&format!(" last attempt: {}", finding.last_attempt_cause));
    }
    writeln!(out, "{head}")?;
    writeln!(out, "   {}", style.bold(&finding.title))?;
    let evidence = finding.evidence.clone().unwrap_or_default();
    let decided = evidence.decided_by.clone().unwrap_or_default();
    // These causes are read from traffic (success counters, sampled successes), not failures:
    // "N failed" would be false there.
    let from_traffic = matches!(
        finding.cause.as_str(),
        "stale_config_suspected" | "canary_split_mismatch" | "sidecar_missing"
    );
    let mut counts = if from_traffic {
        format!("{} requests", evidence.count)
    } else {
        format!(
            "{} failed · {} of failures",
            evidence.count,
            percent(evidence.share_of_failures)
        )
    };
    if let Some(traffic) = evidence.share_of_traffic {
        counts.push_str(&format!(" · {} of traffic", percent(traffic)));
    }
    // Counters carry no times: print them only when known.
    if evidence.first_seen_unix_nanos != 0 {
        counts.push_str(&format!(
            " · first {} · last {} UTC",
            format_clock_millis(evidence.first_seen_unix_nanos),
            format_clock_millis(evidence.last_seen_unix_nanos)
        ));
    }
    line(out, style, "evidence", &counts)?;
    let code = match decided.response_code {
        0 => "no response".to_owned(),
        code => code.to_string(),
    };
    let mut decided_line = format!("{code} {}", flags_text(decided.response_flags));
    if !decided.response_code_details.is_empty() {
        decided_line.push(' ');
        decided_line.push_str(&decided.response_code_details);
    }
    if let Some(status) = decided.grpc_status {
        decided_line.push_str(&format!(" grpc-status {status}"));
    }
    // Counter findings have no single response that decided them.
    if !(from_traffic && decided.response_code == 0) {
        line(out, style, "", &decided_line)?;
    }
    if !decided.transport_failure_reason.is_empty() {
        line(
            out,
            style,
            "",
            &format!("transport: {}", decided.transport_failure_reason),
        )?;
    }
    let mut path = Vec::new();
    let mut push = |label: &str, value: &str| {
        if !value.is_empty() {
            path.push(format!("{label} {value}"));
        }
    };
    push("route", &decided.route_name);
    push("vhost", &decided.virtual_host);
    push("cluster", &decided.cluster);
    push("upstream", &decided.upstream_host);
    push("tlsMode", &decided.endpoint_tls_mode);
    if decided.attempt_count > 1 {
        path.push(format!("attempts {}", decided.attempt_count));
    }
    if !path.is_empty() {
        line(out, style, "", &path.join(" · "))?;
    }
    if !evidence.sample_paths.is_empty() {
        line(
            out,
            style,
            "",
            &format!("paths: {}", evidence.sample_paths.join(" ")),
        )?;
    }
    if !evidence.sample_request_ids.is_empty() {
        line(
            out,
            style,
            "",
            &format!("requests: {}", evidence.sample_request_ids.join(" ")),
        )?;
    }
    if let Some(hop) = &evidence.hop {
        line(out, style, "hop", &hop.summary)?;
    }
    if let Some(resource) = &finding.resource {
        line(out, style, "resource", &describe_resource(resource))?;
    }
    for note in &finding.notes {
        line(out, style, "note", note)?;
    }
    if !finding.next_commands.is_empty() {
        line(out, style, "next", "")?;
        for (index, command) in finding.next_commands.iter().enumerate() {
            writeln!(out, "     {}. {}", index + 1, style.command(command))?;
        }
    }
    Ok(())
}

fn describe_resource(resource: &pb::ImplicatedResource) -> String {
    let named = crate::explain::Resource {
        kind: resource.kind.clone(),
        namespace: resource.namespace.clone(),
        name: resource.name.clone(),
        subset: resource.subset.clone(),
        provenance: resource.provenance.clone(),
        hint: resource.hint.clone(),
    };
    named.describe()
}

/// `-o json` of `meshwhy explain`: see the module docs.
#[derive(Debug, Serialize)]
pub struct JsonExplain {
    /// Highest impact first.
    pub findings: Vec<JsonFinding>,
    /// What was looked at.
    pub totals: JsonTotals,
    /// With --request-id only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// With --request-id only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hops: Option<Vec<JsonHop>>,
}

impl JsonExplain {
    /// The document for a response to `request`.
    pub fn new(response: &pb::ExplainResponse, request: &pb::ExplainRequest) -> Self {
        let totals = response.totals.unwrap_or_default();
        let by_request = !request.request_id.is_empty();
        Self {
            findings: response.findings.iter().map(JsonFinding::from).collect(),
            totals: JsonTotals {
                records_scanned: totals.records_scanned,
                failures: totals.failures,
                groups: totals.groups,
                successes: totals.successes,
                joined_hops: totals.joined_hops,
                window_complete: totals.window_complete,
                since: (totals.since_unix_nanos != 0)
                    .then(|| format_rfc3339(totals.since_unix_nanos)),
            },
            request_id: by_request.then(|| request.request_id.clone()),
            hops: by_request.then(|| {
                response
                    .hops
                    .iter()
                    .map(|hop| JsonHop {
                        client: hop.client.as_ref().map(JsonRecord::from),
                        server: hop.server.as_ref().map(JsonRecord::from),
                        summary: hop.summary.clone(),
                    })
                    .collect()
            }),
        }
    }
}

/// Totals in JSON output.
#[derive(Debug, Serialize)]
pub struct JsonTotals {
    pub records_scanned: u64,
    pub failures: u64,
    pub groups: u64,
    pub successes: u64,
    pub joined_hops: u64,
    pub window_complete: bool,
    /// RFC 3339 UTC, or null for "everything stored".
    pub since: Option<String>,
}

/// One hop of a request in JSON output.
#[derive(Debug, Serialize)]
pub struct JsonHop {
    pub client: Option<JsonRecord>,
    pub server: Option<JsonRecord>,
    pub summary: String,
}

/// One finding in JSON output; see the module docs.
#[derive(Debug, Serialize)]
pub struct JsonFinding {
    pub cause: String,
    pub title: String,
    pub confidence: &'static str,
    pub last_attempt_cause: Option<String>,
    pub group: JsonGroup,
    pub evidence: JsonEvidence,
    pub resource: Option<JsonResource>,
    pub next_commands: Vec<String>,
    pub notes: Vec<String>,
}

/// The group key of a finding.
#[derive(Debug, Serialize)]
pub struct JsonGroup {
    pub namespace: String,
    pub workload: String,
    pub direction: &'static str,
    pub destination: String,
    pub authority: String,
    pub virtual_host: String,
    pub route_name: String,
    pub route_provenance: String,
    pub cluster: String,
    pub response_code: u32,
    pub response_flags: u64,
    pub flags: Vec<String>,
    pub details_class: String,
}

/// Evidence of a finding.
#[derive(Debug, Serialize)]
pub struct JsonEvidence {
    pub count: u64,
    pub share_of_failures: f64,
    pub share_of_traffic: Option<f64>,
    pub first_seen: String,
    pub last_seen: String,
    pub sample_request_ids: Vec<String>,
    pub sample_paths: Vec<String>,
    pub pods: Vec<String>,
    pub upstream_hosts: Vec<String>,
    pub decided_by: JsonDecidedBy,
    pub hop: Option<JsonHopEvidence>,
}

/// The raw fields that decided a finding.
#[derive(Debug, Serialize)]
pub struct JsonDecidedBy {
    pub response_code: u32,
    pub response_flags: u64,
    pub flags: Vec<String>,
    pub response_code_details: String,
    pub transport_failure_reason: String,
    pub route_name: String,
    pub virtual_host: String,
    pub cluster: String,
    pub upstream_host: String,
    pub attempt_count: u32,
    pub endpoint_tls_mode: String,
    pub upstream_tls_version: String,
    pub route_provenance: String,
    pub cluster_provenance: String,
    pub cluster_subset: String,
    pub grpc_status: Option<u32>,
}

/// What the other side of the hop recorded.
#[derive(Debug, Serialize)]
pub struct JsonHopEvidence {
    pub joined: u64,
    pub unjoined: u64,
    pub summary: String,
    pub peers: Vec<JsonHopPeer>,
}

/// One outcome the other side recorded.
#[derive(Debug, Serialize)]
pub struct JsonHopPeer {
    pub direction: &'static str,
    pub namespace: String,
    pub workload: String,
    pub pod: String,
    pub response_code: u32,
    pub response_flags: u64,
    pub flags: Vec<String>,
    pub response_code_details: String,
    pub count: u64,
}

/// The implicated resource.
#[derive(Debug, Serialize)]
pub struct JsonResource {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub subset: String,
    pub provenance: String,
    pub hint: String,
}

impl From<&pb::Finding> for JsonFinding {
    fn from(finding: &pb::Finding) -> Self {
        let group = finding.group.clone().unwrap_or_default();
        let evidence = finding.evidence.clone().unwrap_or_default();
        let decided = evidence.decided_by.unwrap_or_default();
        Self {
            cause: finding.cause.clone(),
            title: finding.title.clone(),
            confidence: confidence_name(finding.confidence),
            last_attempt_cause: (!finding.last_attempt_cause.is_empty())
                .then(|| finding.last_attempt_cause.clone()),
            group: JsonGroup {
                direction: direction_name(group.direction),
                flags: crate::flags::names(group.response_flags),
                namespace: group.namespace,
                workload: group.workload,
                destination: group.destination,
                authority: group.authority,
                virtual_host: group.virtual_host,
                route_name: group.route_name,
                route_provenance: group.route_provenance,
                cluster: group.cluster,
                response_code: group.response_code,
                response_flags: group.response_flags,
                details_class: group.details_class,
            },
            evidence: JsonEvidence {
                count: evidence.count,
                share_of_failures: evidence.share_of_failures,
                share_of_traffic: evidence.share_of_traffic,
                first_seen: format_rfc3339(evidence.first_seen_unix_nanos),
                last_seen: format_rfc3339(evidence.last_seen_unix_nanos),
                sample_request_ids: evidence.sample_request_ids,
                sample_paths: evidence.sample_paths,
                pods: evidence.pods,
                upstream_hosts: evidence.upstream_hosts,
                decided_by: JsonDecidedBy {
                    flags: crate::flags::names(decided.response_flags),
                    response_code: decided.response_code,
                    response_flags: decided.response_flags,
                    response_code_details: decided.response_code_details,
                    transport_failure_reason: decided.transport_failure_reason,
                    route_name: decided.route_name,
                    virtual_host: decided.virtual_host,
                    cluster: decided.cluster,
                    upstream_host: decided.upstream_host,
                    attempt_count: decided.attempt_count,
                    endpoint_tls_mode: decided.endpoint_tls_mode,
                    upstream_tls_version: decided.upstream_tls_version,
                    route_provenance: decided.route_provenance,
                    cluster_provenance: decided.cluster_provenance,
                    cluster_subset: decided.cluster_subset,
                    grpc_status: decided.grpc_status,
                },
                hop: evidence.hop.map(|hop| JsonHopEvidence {
                    joined: hop.joined,
                    unjoined: hop.unjoined,
                    summary: hop.summary,
                    peers: hop
                        .peers
                        .into_iter()
                        .map(|peer| JsonHopPeer {
                            direction: direction_name(peer.direction),
                            flags: crate::flags::names(peer.response_flags),
                            namespace: peer.namespace,
                            workload: peer.workload,
                            pod: peer.pod,
                            response_code: peer.response_code,
                            response_flags: peer.response_flags,
                            response_code_details: peer.response_code_details,
                            count: peer.count,
                        })
                        .collect(),
                }),
            },
            resource: finding.resource.clone().map(|resource| JsonResource {
                kind: resource.kind,
                namespace: resource.namespace,
                name: resource.name,
                subset: resource.subset,
                provenance: resource.provenance,
                hint: resource.hint,
            }),
            next_commands: finding.next_commands.clone(),
            notes: finding.notes.clone(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
