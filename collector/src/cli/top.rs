//! `meshwhy top`: failure groups ranked by impact, one line each, flags decoded — the quick look
//! before `meshwhy explain` tells the story of each. From the collector, or from access-log lines
//! (`--input-file`, `--line`) read locally as `meshwhy explain` reads them.
//!
//! The JSON shape (`-o json`) is a public interface; fields are only ever added:
//!
//! ```text
//! {"groups": [{"rank", "count", "share_of_failures" (0..1), "share_of_traffic" (0..1 or null),
//!   "namespace", "workload", "direction", "destination", "response_code", "response_flags",
//!   "flags" (short names), "flag_meanings", "details_class", "cause", "confidence",
//!   "last_seen" (RFC 3339 UTC)}],
//!  "totals": {as in `meshwhy explain -o json`}}
//! ```
//!
//! `-o jsonl` prints one group object per line.

use std::io::{BufWriter, Write};
use std::time::SystemTime;

use clap::Args;
use meshwhy_proto::v1 as pb;
use serde::Serialize;

use super::explain::{self, DEFAULT_WINDOW, JsonExplain, JsonTotals, percent};
use super::filters::{Filters, SCOPE_NAMESPACE_HELP, SCOPE_SINCE_HELP, Scope};
use super::logs::{FORMATS_HELP, Identity, LogInput};
use super::output::{self, Column, OutputFormat, or_dash};
use super::{CliError, connect};
use crate::time::{format_clock_millis, format_rfc3339};

/// Filters, input and output of `meshwhy top`.
#[derive(Debug, Args)]
#[command(
    mut_arg("namespace", |arg| arg.help(SCOPE_NAMESPACE_HELP)),
    mut_arg("since", |arg| arg.help(SCOPE_SINCE_HELP)),
    mut_arg("limit", |arg| arg.help("At most this many groups").default_value("20")),
    after_long_help = FORMATS_HELP,
)]
pub struct TopArgs {
    /// Namespace, window, number of groups.
    #[command(flatten)]
    pub filters: Filters,
    /// Workload and service.
    #[command(flatten)]
    pub scope: Scope,
    /// Access-log lines instead of the collector.
    #[command(flatten)]
    pub input: LogInput,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

impl TopArgs {
    /// The Explain request behind the table.
    pub fn request(&self, now: SystemTime) -> pb::ExplainRequest {
        let window = (!self.input.is_given()).then_some(DEFAULT_WINDOW);
        self.filters.explain_request(&self.scope, None, window, now)
    }
}

/// Fetches (or reads the log lines) and prints.
pub(crate) async fn run(collector: &str, args: TopArgs) -> Result<(), CliError> {
    let request = args.request(SystemTime::now());
    let response = match args.input.input()? {
        Some(lines) => {
            let identity =
                Identity::new(&args.input.source, args.filters.namespace.as_deref(), None)?;
            explain::input::explain_log(&lines, &args.input.source, &identity, &request)?
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
    let mut out = BufWriter::new(stdout.lock());
    match args.output {
        OutputFormat::Table => {
            if response.findings.is_empty() {
                eprintln!("no failures matched");
            } else {
                write_table(&mut out, &response)?;
            }
        }
        OutputFormat::Json => output::write_json(&mut out, &JsonTop::new(&response, &request))?,
        OutputFormat::Jsonl => output::write_jsonl(
            &mut out,
            response
                .findings
                .iter()
                .enumerate()
                .map(|(i, f)| JsonGroupRow::new(i + 1, f)),
        )?,
    }
    out.flush()?;
    Ok(())
}

const COLUMNS: [Column; 11] = [
    col("COUNT", 8),
    col("%FAIL", 5),
    col("%TRAFFIC", 8),
    col("SOURCE", 40),
    col("DIR", 3),
    col("DESTINATION", 48),
    col("CODE", 4),
    col("FLAGS", 16),
    col("DETAILS", 72),
    col("CAUSE", 30),
    col("LAST-SEEN", 12),
];

const fn col(header: &'static str, max_width: usize) -> Column {
    Column { header, max_width }
}

/// One table row per finding.
pub fn table_row(finding: &pb::Finding) -> Vec<String> {
    let group = finding.group.clone().unwrap_or_default();
    let evidence = finding.evidence.clone().unwrap_or_default();
    let source = if group.namespace.is_empty() && group.workload.is_empty() {
        "-".to_owned()
    } else {
        format!("{}/{}", group.namespace, group.workload)
    };
    let flags = crate::flags::names(group.response_flags);
    vec![
        evidence.count.to_string(),
        percent(evidence.share_of_failures),
        evidence
            .share_of_traffic
            .map(percent)
            .unwrap_or_else(|| "-".to_owned()),
        source,
        match group.direction {
            1 => "in",
            2 => "out",
            _ => "-",
        }
        .to_owned(),
        or_dash(&group.destination),
        match group.response_code {
            0 => "-".to_owned(),
            code => code.to_string(),
        },
        if flags.is_empty() {
            "-".to_owned()
        } else {
            flags.join(",")
        },
        or_dash(&group.details_class),
        finding.cause.clone(),
        format_clock_millis(evidence.last_seen_unix_nanos),
    ]
}

/// Writes the ranked groups.
pub fn write_table(out: &mut impl Write, response: &pb::ExplainResponse) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = response.findings.iter().map(table_row).collect();
    output::write_table(out, &COLUMNS, &rows)
}

/// `-o json` of `meshwhy top`.
#[derive(Debug, Serialize)]
pub struct JsonTop {
    /// Highest impact first.
    pub groups: Vec<JsonGroupRow>,
    /// What was looked at.
    pub totals: JsonTotals,
}

impl JsonTop {
    fn new(response: &pb::ExplainResponse, request: &pb::ExplainRequest) -> Self {
        Self {
            groups: response
                .findings
                .iter()
                .enumerate()
                .map(|(i, finding)| JsonGroupRow::new(i + 1, finding))
                .collect(),
            totals: JsonExplain::new(response, request).totals,
        }
    }
}

/// One ranked failure group.
#[derive(Debug, Serialize)]
pub struct JsonGroupRow {
    pub rank: usize,
    pub count: u64,
    pub share_of_failures: f64,
    pub share_of_traffic: Option<f64>,
    pub namespace: String,
    pub workload: String,
    pub direction: &'static str,
    pub destination: String,
    pub response_code: u32,
    pub response_flags: u64,
    pub flags: Vec<String>,
    pub flag_meanings: Vec<String>,
    pub details_class: String,
    pub cause: String,
    pub confidence: &'static str,
    pub last_seen: String,
}

impl JsonGroupRow {
    fn new(rank: usize, finding: &pb::Finding) -> Self {
        let json = super::explain::JsonFinding::from(finding);
        let flag_meanings = (0..u64::BITS)
            .filter(|bit| json.group.response_flags & (1u64 << bit) != 0)
            .map(|bit| match crate::flags::info(bit) {
                Some(flag) => format!("{}: {}", flag.name, flag.meaning),
                None => format!("bit{bit}: unknown to this meshwhy"),
            })
            .collect();
        Self {
            rank,
            count: json.evidence.count,
            share_of_failures: json.evidence.share_of_failures,
            share_of_traffic: json.evidence.share_of_traffic,
            namespace: json.group.namespace,
            workload: json.group.workload,
            direction: json.group.direction,
            destination: json.group.destination,
            response_code: json.group.response_code,
            response_flags: json.group.response_flags,
            flags: json.group.flags,
            flag_meanings,
            details_class: json.group.details_class,
            cause: json.cause,
            confidence: json.confidence,
            last_seen: format_rfc3339(
                finding
                    .evidence
                    .as_ref()
                    .map(|e| e.last_seen_unix_nanos)
                    .unwrap_or_default(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_cells() {
        let finding = pb::Finding {
            cause: "retries_exhausted".into(),
            group: Some(pb::FindingGroup {
                namespace: "shop".into(),
                workload: "productpage-v1".into(),
                direction: 2,
                destination: "reviews.shop.svc.cluster.local:9080".into(),
                response_code: 503,
                response_flags: (1 << 5) | (1 << 15),
                details_class: "upstream_reset_before_response_started{remote_connection_failure|connection_refused}".into(),
                ..Default::default()
            }),
            evidence: Some(pb::Evidence {
                count: 5,
                share_of_failures: 5.0 / 9.0,
                share_of_traffic: Some(0.001),
                last_seen_unix_nanos: 1_700_000_000_000_000_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let row = table_row(&finding);
        assert_eq!(
            row,
            [
                "5",
                "56%",
                "<1%",
                "shop/productpage-v1",
                "out",
                "reviews.shop.svc.cluster.local:9080",
                "503",
                "UF,URX",
                "upstream_reset_before_response_started{remote_connection_failure|connection_refused}",
                "retries_exhausted",
                "22:13:20.000",
            ]
        );
        let json = JsonGroupRow::new(1, &finding);
        assert_eq!(json.flag_meanings.len(), 2);
        assert!(json.flag_meanings[1].starts_with("URX: upstream retry limit exceeded"));
    }
}
