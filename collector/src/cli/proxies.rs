//! `meshwhy proxies`: which filter instances report, and what they lost on the way.

use std::io::{BufWriter, Write};
use std::time::SystemTime;

use clap::Args;
use meshwhy_proto::v1::{ListProxiesRequest, ProxyStatus};
use serde::Serialize;

use super::output::{self, Column, OutputFormat, format_age, or_dash};
use super::{CliError, connect};
use crate::time::{format_rfc3339, unix_nanos};

/// Output of `meshwhy proxies`.
#[derive(Debug, Args)]
pub struct ProxiesArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub(crate) async fn run(collector: &str, args: ProxiesArgs) -> Result<(), CliError> {
    let mut client = connect(collector).await?;
    let response = client
        .list_proxies(ListProxiesRequest {})
        .await
        .map_err(|status| CliError::from_status(collector, status))?
        .into_inner();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match args.output {
        OutputFormat::Table => {
            let now = unix_nanos(SystemTime::now());
            let rows: Vec<_> = response.proxies.iter().map(|p| table_row(p, now)).collect();
            if rows.is_empty() {
                eprintln!("no proxy has reported yet");
            } else {
                output::write_table(&mut out, &COLUMNS, &rows)?;
            }
            out.flush()?;
        }
        OutputFormat::Json => {
            let proxies = response.proxies.iter().map(JsonProxyStatus::from).collect();
            output::write_json(&mut out, &JsonProxies { proxies })?;
        }
        OutputFormat::Jsonl => {
            output::write_jsonl(&mut out, response.proxies.iter().map(JsonProxyStatus::from))?;
        }
    }
    out.flush()?;
    Ok(())
}

const COLUMNS: [Column; 10] = [
    col("POD", 48),
    col("NAMESPACE", 32),
    col("WORKLOAD", 32),
    col("INSTANCE", 16),
    col("BATCHES", 10),
    col("RECORDS", 10),
    col("MISSING-BATCHES", 15),
    col("DROPPED-RECORDS", 15),
    col("DROPPED-KEYS", 12),
    col("LAST-SEEN", 9),
];

const fn col(header: &'static str, max_width: usize) -> Column {
    Column { header, max_width }
}

fn table_row(status: &ProxyStatus, now_unix_nanos: u64) -> Vec<String> {
    let proxy = status.proxy.clone().unwrap_or_default();
    let age = now_unix_nanos.saturating_sub(status.last_seen_unix_nanos) / 1_000_000_000;
    vec![
        or_dash(&proxy.pod),
        or_dash(&proxy.namespace),
        or_dash(&proxy.workload),
        or_dash(&proxy.instance_id),
        status.batches.to_string(),
        status.records.to_string(),
        status.missing_batches.to_string(),
        status.dropped_records.to_string(),
        status.dropped_counter_keys.to_string(),
        format!("{} ago", format_age(age)),
    ]
}

/// `-o json` of `meshwhy proxies`.
#[derive(Debug, Serialize)]
pub struct JsonProxies {
    /// One entry per filter VM instance.
    pub proxies: Vec<JsonProxyStatus>,
}

/// One proxy instance in JSON output; fields mirror `ProxyStatus`/`ProxyIdentity`.
#[derive(Debug, Serialize)]
pub struct JsonProxyStatus {
    pub pod: String,
    pub namespace: String,
    pub workload: String,
    pub instance_id: String,
    pub node_id: String,
    pub istio_version: String,
    pub envoy_version: String,
    pub filter_version: String,
    pub last_sequence: u64,
    pub batches: u64,
    pub records: u64,
    pub missing_batches: u64,
    pub dropped_records: u64,
    pub dropped_counter_keys: u64,
    /// RFC 3339 UTC.
    pub last_seen: String,
}

impl From<&ProxyStatus> for JsonProxyStatus {
    fn from(status: &ProxyStatus) -> Self {
        let proxy = status.proxy.clone().unwrap_or_default();
        Self {
            pod: proxy.pod,
            namespace: proxy.namespace,
            workload: proxy.workload,
            instance_id: proxy.instance_id,
            node_id: proxy.node_id,
            istio_version: proxy.istio_version,
            envoy_version: proxy.envoy_version,
            filter_version: proxy.filter_version,
            last_sequence: status.last_sequence,
            batches: status.batches,
            records: status.records,
            missing_batches: status.missing_batches,
            dropped_records: status.dropped_records,
            dropped_counter_keys: status.dropped_counter_keys,
            last_seen: format_rfc3339(status.last_seen_unix_nanos),
        }
    }
}

#[cfg(test)]
mod tests {
    use meshwhy_proto::v1::ProxyIdentity;

    use super::*;

    #[test]
    fn row() {
        let status = ProxyStatus {
            proxy: Some(ProxyIdentity {
                instance_id: "0af3".into(),
                pod: "reviews-1".into(),
                namespace: "shop".into(),
                ..Default::default()
            }),
            batches: 4,
            missing_batches: 1,
            dropped_records: 2,
            last_seen_unix_nanos: 10_000_000_000,
            ..Default::default()
        };
        let row = table_row(&status, 70_000_000_000);
        assert_eq!(
            row,
            [
                "reviews-1",
                "shop",
                "-",
                "0af3",
                "4",
                "0",
                "1",
                "2",
                "0",
                "1m ago"
            ]
        );
    }
}
