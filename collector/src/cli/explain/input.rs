//! `meshwhy explain --input-file PATH|-`: access log lines → records → the same engine, locally.
//! Lines that are not access log entries (istio-proxy's own logs interleave) are skipped and
//! counted on stderr.

use std::io::{BufRead, BufReader};
use std::path::Path;

use meshwhy_proto::v1::{self as pb, DecisionRecord, ProxyIdentity};

use crate::cli::CliError;
use crate::explain::{self, Input, RecordRef, Scope, wire};
use crate::logread::LogReader;

/// Reads, parses and explains `path` (`-` = stdin) as `request` asks.
pub(super) fn explain_file(
    path: &Path,
    proxy: Option<&str>,
    request: &pb::ExplainRequest,
) -> Result<pb::ExplainResponse, CliError> {
    let name = path.display().to_string();
    let input_error = |source: std::io::Error| CliError::Input {
        path: name.clone(),
        source,
    };
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(path).map_err(input_error)?,
        ))
    };
    let mut records = Vec::new();
    let mut skipped = 0u64;
    let log_reader = LogReader::new();
    for line in reader.lines() {
        let line = line.map_err(input_error)?;
        if line.trim().is_empty() {
            continue;
        }
        match log_reader.read_line(&line) {
            Ok(read) => records.push(read.record),
            Err(_) => skipped += 1,
        }
    }
    if skipped > 0 {
        eprintln!(
            "meshwhy: skipped {skipped} lines of {name} that are not Envoy access log entries"
        );
    }
    if records.is_empty() && skipped > 0 {
        return Err(CliError::Usage(format!(
            "{name} has no Envoy access log lines (Istio's default text or JSON format)"
        )));
    }
    let identity = proxy_identity(proxy);
    Ok(explain_records(&records, &identity, request))
}

/// The proxy that wrote the log, from `POD.NAMESPACE`; unknown when not given. The pod stands in
/// for the workload, which a log line does not carry.
fn proxy_identity(proxy: Option<&str>) -> ProxyIdentity {
    let Some(proxy) = proxy else {
        return ProxyIdentity::default();
    };
    let (pod, namespace) = proxy.rsplit_once('.').unwrap_or((proxy, ""));
    ProxyIdentity {
        pod: pod.to_owned(),
        namespace: namespace.to_owned(),
        workload: pod.to_owned(),
        ..ProxyIdentity::default()
    }
}

/// Runs the engine over parsed records as if a collector held them.
pub(crate) fn explain_records(
    records: &[DecisionRecord],
    proxy: &ProxyIdentity,
    request: &pb::ExplainRequest,
) -> pb::ExplainResponse {
    let input = Input {
        records: records
            .iter()
            .map(|record| RecordRef::new(proxy, record))
            .collect(),
        successes: Vec::new(),
        proxies: vec![proxy],
        // A log holds every request it covers: shares of traffic are exact.
        window_complete: true,
    };
    if !request.request_id.is_empty() {
        return wire::request_report(&explain::explain_request(&input, &request.request_id));
    }
    let scope = Scope {
        namespace: non_empty(&request.namespace),
        workload: non_empty(&request.workload),
        service: non_empty(&request.service),
        since_unix_nanos: request.since_unix_nanos,
    };
    let limit = usize::try_from(request.limit).unwrap_or(0);
    wire::report(&explain::explain(&input, &scope, limit))
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities() {
        let proxy = proxy_identity(Some("productpage-v1-7d9c.shop"));
        assert_eq!(
            (proxy.pod.as_str(), proxy.namespace.as_str()),
            ("productpage-v1-7d9c", "shop")
        );
        assert_eq!(proxy_identity(None), ProxyIdentity::default());
    }
}
