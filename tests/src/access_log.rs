//! Envoy's own file access log, the oracle: one JSON object per request with exactly the fields
//! a decision record must agree with.

use serde::Deserialize;
use std::path::Path;

/// The `json_format` the harness configures on Envoy's listener. Keys map 1:1 to [`LogLine`].
pub const JSON_FORMAT: &str = r#"
                request_id: "%REQ(X-REQUEST-ID)%"
                method: "%REQ(:METHOD)%"
                path: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"
                code: "%RESPONSE_CODE%"
                flags: "%RESPONSE_FLAGS%"
                details: "%RESPONSE_CODE_DETAILS%"
                route: "%ROUTE_NAME%"
                cluster: "%UPSTREAM_CLUSTER_RAW%"
                upstream_host: "%UPSTREAM_HOST%"
                attempts: "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"
                transport_failure: "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
                route_provenance: "%METADATA(ROUTE:istio:config)%"
                cluster_provenance: "%CLUSTER_METADATA(istio:config)%"
                tls_mode: "%UPSTREAM_METADATA(envoy.transport_socket_match:tlsMode)%"
"#;

/// One access log line. Envoy writes `-` for absent values; [`LogLine::field`] maps that to "".
#[derive(Debug, Clone, Deserialize)]
pub struct LogLine {
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub code: String,
    pub flags: String,
    pub details: String,
    pub route: String,
    pub cluster: String,
    pub upstream_host: String,
    pub attempts: String,
    pub transport_failure: String,
    pub route_provenance: String,
    pub cluster_provenance: String,
    pub tls_mode: String,
}

impl LogLine {
    /// Envoy's `-` placeholder as the empty string.
    pub fn field(value: &str) -> &str {
        if value == "-" { "" } else { value }
    }

    /// The response code; 0 when none was sent.
    pub fn code(&self) -> u32 {
        self.code.parse().unwrap_or(0)
    }

    /// Short flag names, in Envoy's order.
    pub fn flag_names(&self) -> Vec<String> {
        Self::field(&self.flags)
            .split(',')
            .filter(|flag| !flag.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Upstream attempts; Envoy logs `-`/0 when none was made.
    pub fn attempts(&self) -> u32 {
        self.attempts.parse().unwrap_or(0)
    }
}

/// Reads every complete line of the access log written so far.
pub fn read(path: &Path) -> anyhow::Result<Vec<LogLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut lines = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let parsed: LogLine = serde_json::from_str(line)
            .map_err(|error| anyhow::anyhow!("access log line {line:?}: {error}"))?;
        lines.push(parsed);
    }
    Ok(lines)
}
