//! `meshwhy records`: list stored decision records as a table, JSON or JSON lines.
//!
//! The JSON shape is a public interface (scripts, `jq`); fields are only ever added:
//!
//! ```text
//! {"records": [{"time": RFC 3339 UTC (request start), "request_id", "trace_id",
//!   "direction": "inbound"|"outbound"|"unspecified",
//!   "proxy": {"pod", "namespace", "workload", "instance_id"},
//!   "method", "authority", "path", "response_code" (0 = none sent),
//!   "response_flags" (raw bitmask), "flags" (short names, unknown bits as "bit<N>"),
//!   "response_code_details", "transport_failure_reason", "route_name", "virtual_host",
//!   "cluster", "upstream_host", "attempt_count", "duration_ms" (float),
//!   "downstream_mtls", "downstream_peer_principal", "upstream_tls_version",
//!   "upstream_peer_principal", "route_provenance", "cluster_provenance", "cluster_subset",
//!   "endpoint_tls_mode", "grpc_status" (null unless gRPC), "sampled_success",
//!   "source_address"}],
//!  "truncated": N (matches beyond --limit)}
//! ```
//!
//! `-o jsonl` prints one record object per line and nothing else.

use std::io::{BufWriter, Write};
use std::time::SystemTime;

use clap::Args;
use meshwhy_proto::v1::{Direction, ListRecordsRequest, StoredRecord};
use serde::Serialize;

use super::filters::{Filters, Outcome};
use super::output::{self, Column, OutputFormat, or_dash};
use super::{CliError, connect};
use crate::time::{format_clock_millis, format_rfc3339};

/// Filters and output of `meshwhy records`.
#[derive(Debug, Args)]
pub struct RecordsArgs {
    /// Namespace, window, page size.
    #[command(flatten)]
    pub filters: Filters,
    /// Only records from this workload.
    #[arg(long)]
    pub workload: Option<String>,
    /// Only records from this pod.
    #[arg(long)]
    pub pod: Option<String>,
    /// Code and flags.
    #[command(flatten)]
    pub outcome: Outcome,
    /// Only the record(s) with this x-request-id.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

impl RecordsArgs {
    /// The request these arguments describe, with `--since` taken relative to `now`.
    pub fn request(&self, now: SystemTime) -> ListRecordsRequest {
        ListRecordsRequest {
            namespace: self.filters.namespace(),
            workload: self.workload.clone().unwrap_or_default(),
            pod: self.pod.clone().unwrap_or_default(),
            response_code: self.outcome.response_code(),
            flags_all: self.outcome.flags_all(),
            since_unix_nanos: self.filters.since_unix_nanos(now, None),
            request_id: self.request_id.clone().unwrap_or_default(),
            limit: self.filters.limit.unwrap_or(0),
        }
    }
}

/// Fetches and prints.
pub(crate) async fn run(collector: &str, args: RecordsArgs) -> Result<(), CliError> {
    let mut client = connect(collector).await?;
    let response = client
        .list_records(args.request(SystemTime::now()))
        .await
        .map_err(|status| CliError::from_status(collector, status))?
        .into_inner();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match args.output {
        OutputFormat::Table => {
            // Like kubectl: nothing on stdout when nothing matched, a note on stderr.
            if response.records.is_empty() {
                eprintln!("no records matched");
            } else {
                write_table(&mut out, &response.records)?;
            }
            out.flush()?;
            if response.truncated > 0 {
                eprintln!(
                    "{} more records matched; raise --limit or narrow the filters",
                    response.truncated
                );
            }
        }
        OutputFormat::Json => {
            let document = JsonRecords {
                records: response.records.iter().map(JsonRecord::from).collect(),
                truncated: response.truncated,
            };
            output::write_json(&mut out, &document)?;
        }
        OutputFormat::Jsonl => {
            output::write_jsonl(&mut out, response.records.iter().map(JsonRecord::from))?;
        }
    }
    out.flush()?;
    Ok(())
}

const COLUMNS: [Column; 13] = [
    col("TIME", 12),
    col("NAMESPACE/POD", 48),
    col("DIR", 3),
    col("METHOD", 7),
    col("AUTHORITY+PATH", 60),
    col("CODE", 4),
    col("FLAGS", 24),
    col("DETAILS", 80),
    col("ROUTE", 32),
    col("CLUSTER", 48),
    col("UPSTREAM", 40),
    col("ATTEMPTS", 8),
    // A UUID x-request-id fits whole, so it can be pasted into --request-id.
    col("REQUEST-ID", 36),
];

const fn col(header: &'static str, max_width: usize) -> Column {
    Column { header, max_width }
}

fn direction_name(direction: i32) -> &'static str {
    match Direction::try_from(direction) {
        Ok(Direction::Inbound) => "inbound",
        Ok(Direction::Outbound) => "outbound",
        _ => "unspecified",
    }
}

/// The record's time: when the request started, else when the collector received it.
fn record_time(stored: &StoredRecord) -> u64 {
    match stored.record.as_ref().map(|r| r.start_time_unix_nanos) {
        Some(start) if start > 0 => start,
        _ => stored.received_time_unix_nanos,
    }
}

/// One table row per record, in the order of the table headers.
pub fn table_row(stored: &StoredRecord) -> Vec<String> {
    let record = stored.record.clone().unwrap_or_default();
    let proxy = stored.proxy.clone().unwrap_or_default();
    let flags = if stored.flag_names.is_empty() {
        "-".to_owned()
    } else {
        stored.flag_names.join(",")
    };
    vec![
        format_clock_millis(record_time(stored)),
        format!("{}/{}", or_dash(&proxy.namespace), or_dash(&proxy.pod)),
        match direction_name(record.direction) {
            "inbound" => "in",
            "outbound" => "out",
            _ => "-",
        }
        .to_owned(),
        or_dash(&record.method),
        or_dash(&format!("{}{}", record.authority, record.path)),
        match record.response_code {
            0 => "-".to_owned(),
            code => code.to_string(),
        },
        flags,
        or_dash(&record.response_code_details),
        or_dash(&record.route_name),
        or_dash(&record.cluster),
        or_dash(&record.upstream_host),
        record.attempt_count.to_string(),
        or_dash(&record.request_id),
    ]
}

/// Writes the records table (headers only when there are none).
pub fn write_table(out: &mut impl Write, records: &[StoredRecord]) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = records.iter().map(table_row).collect();
    output::write_table(out, &COLUMNS, &rows)
}

/// `-o json`: the whole page.
#[derive(Debug, Serialize)]
pub struct JsonRecords {
    /// Newest first.
    pub records: Vec<JsonRecord>,
    /// Matches beyond the limit.
    pub truncated: u64,
}

/// The sending proxy of a record.
#[derive(Debug, Serialize)]
pub struct JsonProxy {
    /// Pod name.
    pub pod: String,
    /// Namespace.
    pub namespace: String,
    /// Workload name.
    pub workload: String,
    /// Filter VM instance id.
    pub instance_id: String,
}

/// One record in JSON output; see the module docs for the shape. Fields mirror
/// `DecisionRecord` (documented in record.proto) unless noted there.
#[derive(Debug, Serialize)]
pub struct JsonRecord {
    pub time: String,
    pub request_id: String,
    pub trace_id: String,
    pub direction: &'static str,
    pub proxy: JsonProxy,
    pub method: String,
    pub authority: String,
    pub path: String,
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
    pub duration_ms: f64,
    pub downstream_mtls: bool,
    pub downstream_peer_principal: String,
    pub upstream_tls_version: String,
    pub upstream_peer_principal: String,
    pub route_provenance: String,
    pub cluster_provenance: String,
    pub cluster_subset: String,
    pub endpoint_tls_mode: String,
    pub grpc_status: Option<u32>,
    pub sampled_success: bool,
    pub source_address: String,
}

impl From<&StoredRecord> for JsonRecord {
    fn from(stored: &StoredRecord) -> Self {
        let record = stored.record.clone().unwrap_or_default();
        let proxy = stored.proxy.clone().unwrap_or_default();
        Self {
            time: format_rfc3339(record_time(stored)),
            direction: direction_name(record.direction),
            proxy: JsonProxy {
                pod: proxy.pod,
                namespace: proxy.namespace,
                workload: proxy.workload,
                instance_id: proxy.instance_id,
            },
            flags: stored.flag_names.clone(),
            // Nanoseconds to milliseconds; f64 is exact to the nanosecond below ~104 days.
            duration_ms: record.duration_nanos as f64 / 1e6,
            request_id: record.request_id,
            trace_id: record.trace_id,
            method: record.method,
            authority: record.authority,
            path: record.path,
            response_code: record.response_code,
            response_flags: record.response_flags,
            response_code_details: record.response_code_details,
            transport_failure_reason: record.transport_failure_reason,
            route_name: record.route_name,
            virtual_host: record.virtual_host,
            cluster: record.cluster,
            upstream_host: record.upstream_host,
            attempt_count: record.attempt_count,
            downstream_mtls: record.downstream_mtls,
            downstream_peer_principal: record.downstream_peer_principal,
            upstream_tls_version: record.upstream_tls_version,
            upstream_peer_principal: record.upstream_peer_principal,
            route_provenance: record.route_provenance,
            cluster_provenance: record.cluster_provenance,
            cluster_subset: record.cluster_subset,
            endpoint_tls_mode: record.endpoint_tls_mode,
            grpc_status: record.grpc_status,
            sampled_success: record.sampled_success,
            source_address: record.source_address,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use meshwhy_proto::v1::{DecisionRecord, ProxyIdentity};

    use super::*;

    fn sample() -> StoredRecord {
        StoredRecord {
            record: Some(DecisionRecord {
                // 2024-02-29T23:59:59.123Z
                start_time_unix_nanos: 1_709_251_199_123_000_000,
                request_id: "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab".into(),
                direction: Direction::Outbound as i32,
                method: "GET".into(),
                authority: "reviews:9080".into(),
                path: "/reviews/1".into(),
                response_code: 503,
                response_flags: (1 << 5) | (1 << 15),
                response_code_details:
                    "upstream_reset_before_response_started{remote_connection_failure}".into(),
                route_name: "default".into(),
                cluster: "outbound|9080||reviews.shop.svc.cluster.local".into(),
                upstream_host: "10.0.0.9:9080".into(),
                attempt_count: 3,
                duration_nanos: 1_500_000,
                ..Default::default()
            }),
            proxy: Some(ProxyIdentity {
                instance_id: "0af3".into(),
                pod: "productpage-1".into(),
                namespace: "shop".into(),
                workload: "productpage".into(),
                ..Default::default()
            }),
            flag_names: vec!["UF".into(), "URX".into()],
            received_time_unix_nanos: 1,
        }
    }

    #[test]
    fn row_cells() {
        let row = table_row(&sample());
        assert_eq!(row.len(), COLUMNS.len());
        assert_eq!(row[0], "23:59:59.123");
        assert_eq!(row[1], "shop/productpage-1");
        assert_eq!(row[2], "out");
        assert_eq!(row[4], "reviews:9080/reviews/1");
        assert_eq!(row[5], "503");
        assert_eq!(row[6], "UF,URX");
        assert_eq!(row[11], "3");
        assert_eq!(row[12], "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab");
    }

    #[test]
    fn empty_values_are_dashes() {
        let mut stored = sample();
        let record = stored.record.as_mut().unwrap();
        record.response_code = 0;
        record.route_name.clear();
        record.direction = 0;
        stored.flag_names.clear();
        let row = table_row(&stored);
        assert_eq!(row[2], "-");
        assert_eq!(row[5], "-");
        assert_eq!(row[6], "-");
        assert_eq!(row[8], "-");
    }

    #[test]
    fn table_has_headers_and_cuts_long_details() {
        let mut out = Vec::new();
        write_table(&mut out, &[sample()]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        assert!(
            header.starts_with("TIME          NAMESPACE/POD"),
            "{header}"
        );
        assert!(header.ends_with("ATTEMPTS  REQUEST-ID"), "{header}");
        let row = lines.next().unwrap();
        assert!(
            row.contains("  upstream_reset_before_response_started{remote_connection_failure}  ")
        );
        assert!(row.contains("UF,URX"));

        let mut long = sample();
        long.record.as_mut().unwrap().response_code_details = format!("{}|tail", "x".repeat(100));
        let mut out = Vec::new();
        write_table(&mut out, &[long]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(&format!(" {}…  default", "x".repeat(79))),
            "{text}"
        );
    }

    #[test]
    fn json_shape() {
        let value = serde_json::to_value(JsonRecord::from(&sample())).unwrap();
        assert_eq!(value["time"], "2024-02-29T23:59:59.123000000Z");
        assert_eq!(value["direction"], "outbound");
        assert_eq!(value["proxy"]["pod"], "productpage-1");
        assert_eq!(value["response_flags"], (1 << 5) | (1 << 15));
        assert_eq!(value["flags"], serde_json::json!(["UF", "URX"]));
        assert_eq!(value["duration_ms"], 1.5);
        assert_eq!(value["grpc_status"], serde_json::Value::Null);
        assert_eq!(value.as_object().unwrap().len(), 30);
    }

    #[test]
    fn request_from_args() {
        let args = RecordsArgs {
            filters: Filters {
                namespace: Some("shop".into()),
                since: Some(Duration::from_secs(60)),
                limit: Some(5),
            },
            workload: None,
            pod: None,
            outcome: Outcome {
                code: Some(503),
                flags: vec![1 << 5, 1 << 15],
            },
            request_id: None,
            output: OutputFormat::Table,
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let request = args.request(now);
        assert_eq!(request.namespace, "shop");
        assert_eq!(request.response_code, 503);
        assert_eq!(request.flags_all, (1 << 5) | (1 << 15));
        assert_eq!(request.since_unix_nanos, 40_000_000_000);
        assert_eq!(request.limit, 5);
    }
}
