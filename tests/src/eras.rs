//! Istio's default access-log formats, era by era, as Envoy file access loggers: the text
//! templates verbatim from Istio's source history (see ACCESS_LOG_FORMATS.md in the shared
//! notes) and the JSON encodings with Istio's keys, so a real Envoy writes the very lines each
//! Istio release would have written for the same request. The log-reader oracle runs the e2e
//! failure matrix with one extra logger per era.

use std::path::{Path, PathBuf};

/// Envoy's own default format: Istio ≤ 1.0.2 set none.
pub const ENVOY_DEFAULT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// Istio 1.0.3–1.0.6 (HTTP): note the missing space between the path and the protocol.
pub const ISTIO_1_0_3: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%\n";

/// Istio 1.0.3–1.0.6's separate TCP format (for a TCP proxy listener; the failure matrix has
/// none, so it is kept here for the readers' tests and the bench).
pub const ISTIO_1_0_3_TCP: &str = "[%START_TIME%] %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%\n";

/// Istio 1.1: Mixer's policy status after the flags, SNI at the end.
pub const ISTIO_1_1: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% \"%DYNAMIC_METADATA(istio.mixer:status)%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME%\n";

/// Istio 1.2: 1.1 plus the upstream transport failure reason.
pub const ISTIO_1_2: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% \"%DYNAMIC_METADATA(istio.mixer:status)%\" \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME%\n";

/// Istio 1.3–1.7: 1.2 plus the route name.
pub const ISTIO_1_3: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% \"%DYNAMIC_METADATA(istio.mixer:status)%\" \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// Istio 1.8: Mixer gone, its field dropped.
pub const ISTIO_1_8: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// Istio 1.9–1.22: code details and connection termination details (unquoted) after the flags.
pub const ISTIO_1_9: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// Istio 1.23 to today: 1.9 with `%UPSTREAM_CLUSTER_RAW%`.
pub const ISTIO_1_23: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// Istio's JSON keys common to every era since 1.1, each with the command the text format uses.
const JSON_1_1: &[(&str, &str)] = &[
    ("start_time", "%START_TIME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("duration", "%DURATION%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
];
const POLICY_STATUS: (&str, &str) = (
    "istio_policy_status",
    "%DYNAMIC_METADATA(istio.mixer:status)%",
);
const TRANSPORT_FAILURE: (&str, &str) = (
    "upstream_transport_failure_reason",
    "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
);
const ROUTE_NAME: (&str, &str) = ("route_name", "%ROUTE_NAME%");
const DETAILS: [(&str, &str); 2] = [
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    (
        "connection_termination_details",
        "%CONNECTION_TERMINATION_DETAILS%",
    ),
];

/// How an era's logger encodes a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    /// A text template (Envoy format string, ending in a newline).
    Text(&'static str),
    /// `json_format`: key → command, string values as Istio wrote them (Envoy 1.40 prints
    /// numbers as numbers and absent values as `null`).
    Json(Vec<(&'static str, &'static str)>),
}

/// One Istio default-format era.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Era {
    /// Short stable name: the log file's suffix and the test's key (`istio-1.9`, `json-1.8`).
    pub name: &'static str,
    /// Which Istio releases wrote it.
    pub releases: &'static str,
    /// The format.
    pub encoding: Encoding,
}

impl Era {
    /// Whether the format logs `command` (e.g. `%ROUTE_NAME%`; a prefix such as
    /// `%UPSTREAM_CLUSTER` matches `%UPSTREAM_CLUSTER_RAW%` too).
    pub fn carries(&self, command: &str) -> bool {
        match &self.encoding {
            Encoding::Text(format) => format.contains(command),
            Encoding::Json(fields) => fields.iter().any(|(_, value)| value.contains(command)),
        }
    }

    /// Whether lines are JSON objects.
    pub fn is_json(&self) -> bool {
        matches!(self.encoding, Encoding::Json(_))
    }

    /// The `log_format` of an Envoy `FileAccessLog`, as a YAML flow mapping.
    pub fn log_format_yaml(&self) -> String {
        match &self.encoding {
            // A JSON string is a valid YAML double-quoted scalar (same escapes).
            Encoding::Text(format) => format!(
                "{{text_format_source: {{inline_string: {}}}}}",
                serde_json::Value::from(*format)
            ),
            Encoding::Json(fields) => {
                let map: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(key, value)| ((*key).to_owned(), serde_json::Value::from(*value)))
                    .collect();
                format!("{{json_format: {}}}", serde_json::Value::Object(map))
            }
        }
    }

    /// Where this era's logger writes, next to Envoy's main access log.
    pub fn path(&self, main_access_log: &Path) -> PathBuf {
        PathBuf::from(format!("{}.{}", main_access_log.display(), self.name))
    }
}

fn json(extra: &[&[(&'static str, &'static str)]], raw_cluster: bool) -> Encoding {
    let mut fields: Vec<(&str, &str)> = JSON_1_1.to_vec();
    for more in extra {
        fields.extend_from_slice(more);
    }
    if raw_cluster {
        for field in &mut fields {
            if field.0 == "upstream_cluster" {
                field.1 = "%UPSTREAM_CLUSTER_RAW%";
            }
        }
    }
    Encoding::Json(fields)
}

/// Every era of Istio's default access log (HTTP), oldest first.
pub fn all() -> Vec<Era> {
    let text = |name, releases, format| Era {
        name,
        releases,
        encoding: Encoding::Text(format),
    };
    let json_era = |name, releases, encoding| Era {
        name,
        releases,
        encoding,
    };
    vec![
        text(
            "envoy-default",
            "Istio ≤ 1.0.2 (Envoy's default)",
            ENVOY_DEFAULT,
        ),
        text("istio-1.0.3", "Istio 1.0.3–1.0.6", ISTIO_1_0_3),
        text("istio-1.1", "Istio 1.1", ISTIO_1_1),
        text("istio-1.2", "Istio 1.2", ISTIO_1_2),
        text("istio-1.3", "Istio 1.3–1.7", ISTIO_1_3),
        text("istio-1.8", "Istio 1.8", ISTIO_1_8),
        text("istio-1.9", "Istio 1.9–1.22", ISTIO_1_9),
        text("istio-1.23", "Istio 1.23+", ISTIO_1_23),
        json_era(
            "json-1.1",
            "Istio 1.1 (JSON)",
            json(&[&[POLICY_STATUS]], false),
        ),
        json_era(
            "json-1.2",
            "Istio 1.2 (JSON)",
            json(&[&[POLICY_STATUS, TRANSPORT_FAILURE]], false),
        ),
        json_era(
            "json-1.3",
            "Istio 1.3–1.7 (JSON)",
            json(&[&[POLICY_STATUS, TRANSPORT_FAILURE, ROUTE_NAME]], false),
        ),
        json_era(
            "json-1.8",
            "Istio 1.8 (JSON)",
            json(&[&[TRANSPORT_FAILURE, ROUTE_NAME]], false),
        ),
        json_era(
            "json-1.9",
            "Istio 1.9–1.24 (JSON)",
            json(&[&[TRANSPORT_FAILURE, ROUTE_NAME], &DETAILS], false),
        ),
        json_era(
            "json-1.25",
            "Istio 1.25+ (JSON)",
            json(&[&[TRANSPORT_FAILURE, ROUTE_NAME], &DETAILS], true),
        ),
    ]
}

/// Entries for an HCM's `access_log` list (YAML at the harness listener's indentation): one
/// file logger per era, each writing `{ACCESS_LOG}.<era>` (the harness fills in the path).
pub fn access_loggers(eras: &[Era]) -> String {
    eras.iter()
        .map(|era| {
            format!(
                r#"          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{{ACCESS_LOG}}.{name}"
              log_format: {format}
"#,
                name = era.name,
                format = era.log_format_yaml()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eras_have_unique_names_and_what_they_carry() {
        let eras = all();
        let mut names: Vec<&str> = eras.iter().map(|era| era.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), eras.len());
        let era = |name: &str| eras.iter().find(|era| era.name == name).unwrap();
        assert!(!era("istio-1.8").carries("%RESPONSE_CODE_DETAILS%"));
        assert!(era("istio-1.9").carries("%RESPONSE_CODE_DETAILS%"));
        assert!(!era("envoy-default").carries("%UPSTREAM_CLUSTER"));
        assert!(era("istio-1.23").carries("%UPSTREAM_CLUSTER_RAW%"));
        assert!(era("json-1.3").carries("%ROUTE_NAME%"));
        assert!(!era("json-1.2").carries("%ROUTE_NAME%"));
        assert!(era("json-1.25").carries("%UPSTREAM_CLUSTER_RAW%"));
    }

    #[test]
    fn log_formats_are_flow_yaml() {
        let text = all()[0].log_format_yaml();
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            parsed["text_format_source"]["inline_string"].as_str(),
            Some(ENVOY_DEFAULT)
        );
        let json = all().last().unwrap().log_format_yaml();
        let parsed: serde_yaml::Value = serde_yaml::from_str(&json).unwrap();
        assert_eq!(
            parsed["json_format"]["upstream_cluster"].as_str(),
            Some("%UPSTREAM_CLUSTER_RAW%")
        );
    }
}
