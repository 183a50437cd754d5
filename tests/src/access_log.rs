//! Envoy's own file access log, the oracle: one JSON object per request with exactly the fields
//! a decision record must agree with.

use serde::Deserialize;
use std::path::Path;

/// The `json_format` the harness configures on Envoy's listener. Keys map 1:1 to [`LogLine`].
pub const JSON_FORMAT: &str = r#"
                  request_id: "%REQ(X-REQUEST-ID)%"
                  start_ms: "%START_TIME(%s%3f)%"
                  method: "%REQ(:METHOD)%"
                  authority: "%REQ(:AUTHORITY)%"
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
                  grpc_status: "%GRPC_STATUS_NUMBER%"
                  content_type: "%REQ(CONTENT-TYPE)%"
"#;

/// One access log line. Envoy 1.40's JSON format writes numbers as numbers and absent values as
/// `null` (or `-` in strings); every field is read as text, absent as "".
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
#[derive(Default)]
pub struct LogLine {
    #[serde(deserialize_with = "text")]
    pub request_id: String,
    /// Start time, milliseconds since the epoch.
    #[serde(deserialize_with = "text")]
    pub start_ms: String,
    #[serde(deserialize_with = "text")]
    pub method: String,
    #[serde(deserialize_with = "text")]
    pub authority: String,
    #[serde(deserialize_with = "text")]
    pub path: String,
    #[serde(deserialize_with = "text")]
    pub code: String,
    #[serde(deserialize_with = "text")]
    pub flags: String,
    #[serde(deserialize_with = "text")]
    pub details: String,
    #[serde(deserialize_with = "text")]
    pub route: String,
    #[serde(deserialize_with = "text")]
    pub cluster: String,
    #[serde(deserialize_with = "text")]
    pub upstream_host: String,
    #[serde(deserialize_with = "text")]
    pub attempts: String,
    #[serde(deserialize_with = "text")]
    pub transport_failure: String,
    #[serde(deserialize_with = "text")]
    pub route_provenance: String,
    #[serde(deserialize_with = "text")]
    pub cluster_provenance: String,
    #[serde(deserialize_with = "text")]
    pub tls_mode: String,
    #[serde(deserialize_with = "text")]
    pub grpc_status: String,
    #[serde(deserialize_with = "text")]
    pub content_type: String,
}

/// Any JSON scalar as text: strings as they are, numbers printed, `null` as "".
fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    })
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

    /// Whether the request was gRPC (the only case where grpc-status means anything).
    pub fn is_grpc(&self) -> bool {
        self.content_type.starts_with("application/grpc")
    }

    /// The gRPC status of a gRPC request.
    pub fn grpc_status(&self) -> Option<u32> {
        if self.is_grpc() {
            self.grpc_status.parse().ok()
        } else {
            None
        }
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
