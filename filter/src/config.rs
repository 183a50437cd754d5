//! Plugin configuration: the JSON given to the filter in the Envoy config (or a WasmPlugin's
//! `pluginConfig`), parsed and fully validated before the filter does anything.
//!
//! A bad configuration is reported as ONE message naming the key and the fix; the glue logs it
//! and runs the filter disabled (returning false from `on_configure` would make Envoy exit).

use prost::Message;
use serde_json::Value;

/// Default for `flush_interval_ms`: how often buffered records and counters are pushed.
pub const DEFAULT_FLUSH_INTERVAL_MS: u32 = 1000;
/// Default for `max_batch_records`: records per Push.
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 500;
/// Default for `max_buffered_records`: records held in memory, including the batch in flight.
pub const DEFAULT_MAX_BUFFERED_RECORDS: usize = 2000;
/// Default for `max_counter_keys`: distinct (route, cluster, code) success counters per VM.
pub const DEFAULT_MAX_COUNTER_KEYS: usize = 1024;
/// Default for `capture_codes`: status codes below `capture_min_code` recorded in full.
pub const DEFAULT_CAPTURE_CODES: [u32; 2] = [403, 429];
/// Default for `capture_min_code`: every status at or above it is a failure.
pub const DEFAULT_CAPTURE_MIN_CODE: u32 = 500;
/// Default for `success_sample_rate`: fraction of successes recorded in full.
pub const DEFAULT_SUCCESS_SAMPLE_RATE: f64 = 0.0;
/// Default for `provenance_ttl_ms`: how long cached route/cluster provenance is trusted. Short,
/// because a config push can change which VirtualService or DestinationRule applies.
pub const DEFAULT_PROVENANCE_TTL_MS: u32 = 10_000;
/// Default for `grpc_timeout_ms`: deadline of one Push call.
pub const DEFAULT_GRPC_TIMEOUT_MS: u32 = 5000;

/// Every key the configuration accepts, in the order the error message lists them.
pub const KEYS: [&str; 10] = [
    "collector_cluster",
    "flush_interval_ms",
    "max_batch_records",
    "max_buffered_records",
    "max_counter_keys",
    "capture_codes",
    "capture_min_code",
    "success_sample_rate",
    "provenance_ttl_ms",
    "grpc_timeout_ms",
];

/// [`KEYS`] as the error message lists them.
const KEYS_LIST: &str = "collector_cluster, flush_interval_ms, max_batch_records, max_buffered_records, \
                         max_counter_keys, capture_codes, capture_min_code, success_sample_rate, \
                         provenance_ttl_ms, grpc_timeout_ms";

/// The validated plugin configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Envoy cluster (HTTP/2) that reaches the collector.
    pub collector_cluster: String,
    /// What to pass to `dispatch_grpc_call` as the upstream: the cluster name itself, or, when
    /// the name is also valid protobuf bytes, a serialized `GrpcService` naming that cluster
    /// (see [`grpc_upstream`]).
    pub grpc_upstream: String,
    /// Milliseconds between pushes.
    pub flush_interval_ms: u32,
    /// Records per Push at most.
    pub max_batch_records: usize,
    /// Records held at most (queued plus in flight); beyond it new records are dropped and counted.
    pub max_buffered_records: usize,
    /// Distinct success counter keys at most; beyond it requests count under an overflow key.
    pub max_counter_keys: usize,
    /// Extra status codes recorded in full even below `capture_min_code`. Sorted, no duplicates.
    pub capture_codes: Vec<u32>,
    /// Status codes at or above this are failures.
    pub capture_min_code: u32,
    /// Fraction (0.0..=1.0) of successes recorded in full, marked `sampled_success`.
    pub success_sample_rate: f64,
    /// Milliseconds cached provenance stays valid.
    pub provenance_ttl_ms: u32,
    /// Milliseconds before a Push call is abandoned by Envoy.
    pub grpc_timeout_ms: u32,
}

/// Why a plugin configuration was rejected. Each message names the key and what would be valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// No configuration, an empty one, or one without `collector_cluster`.
    #[error(
        "missing collector_cluster (set it to the name of an HTTP/2 cluster that points at the \
         collector, e.g. {{\"collector_cluster\": \"meshwhy-collector\"}})"
    )]
    MissingCollectorCluster,
    /// The bytes are not JSON.
    #[error(
        "not valid JSON ({0}); expected an object such as {{\"collector_cluster\": \"meshwhy-collector\"}}"
    )]
    NotJson(String),
    /// Valid JSON, but not an object.
    #[error("expected a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// A key this version does not know (often a typo).
    #[error("unknown key \"{key}\" (expected one of: {expected})")]
    UnknownKey {
        /// The key as given.
        key: String,
        /// The accepted keys, comma separated.
        expected: String,
    },
    /// A value of the wrong JSON type.
    #[error("\"{key}\" must be {expected} (got {got})")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What the key takes, e.g. "an integer".
        expected: &'static str,
        /// The value as given, in JSON.
        got: String,
    },
    /// A value outside its range.
    #[error("\"{key}\" ({value}) must be {range}")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The value as given.
        value: String,
        /// The accepted range, e.g. "between 10 and 60000".
        range: String,
    },
    /// The buffer could not hold one full batch.
    #[error("\"max_buffered_records\" ({buffered}) must be >= max_batch_records ({batch})")]
    BufferSmallerThanBatch {
        /// `max_buffered_records` as given or defaulted.
        buffered: usize,
        /// `max_batch_records` as given or defaulted.
        batch: usize,
    },
    /// `collector_cluster` is the empty string.
    #[error(
        "\"collector_cluster\" must not be empty (set it to the name of the collector's HTTP/2 cluster)"
    )]
    EmptyCollectorCluster,
    /// The cluster name would be read as a serialized GrpcService and is too long to wrap.
    #[error(
        "\"collector_cluster\" (\"{0}\") is also valid protobuf bytes, so Envoy would read it as a \
         serialized GrpcService, and it is too long to wrap safely; use a shorter name, or one \
         starting with one of f g n o v w (e.g. \"outbound|…\")"
    )]
    AmbiguousClusterName(String),
}

/// The single log line for a rejected configuration.
pub fn error_log_line(error: &ConfigError) -> String {
    format!(
        "meshwhy: invalid plugin configuration: {error}; meshwhy is disabled until the \
         configuration is fixed (traffic is not affected)"
    )
}

/// The typed form of the JSON. Types and unknown keys are checked before this is deserialized,
/// so errors can name the key; `deny_unknown_fields` keeps the two in step.
#[derive(Debug, Default)]
struct RawConfig {
    collector_cluster: Option<String>,
    flush_interval_ms: Option<u64>,
    max_batch_records: Option<u64>,
    max_buffered_records: Option<u64>,
    max_counter_keys: Option<u64>,
    capture_codes: Option<Vec<u64>>,
    capture_min_code: Option<u64>,
    success_sample_rate: Option<f64>,
    provenance_ttl_ms: Option<u64>,
    grpc_timeout_ms: Option<u64>,
}

/// JSON type a key takes.
#[derive(Clone, Copy)]
enum Kind {
    String,
    Integer,
    Number,
    IntegerList,
}

fn kind_of(key: &str) -> Option<(&'static str, Kind)> {
    let kind = match key {
        "collector_cluster" => Kind::String,
        "capture_codes" => Kind::IntegerList,
        "success_sample_rate" => Kind::Number,
        _ => Kind::Integer,
    };
    KEYS.iter().find(|k| **k == key).map(|k| (*k, kind))
}

fn check_kind(key: &'static str, kind: Kind, value: &Value) -> Result<(), ConfigError> {
    let (ok, expected) = match kind {
        Kind::String => (value.is_string(), "a string"),
        Kind::Integer => (value.is_u64(), "a non-negative integer"),
        Kind::Number => (value.is_number(), "a number"),
        Kind::IntegerList => (
            value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_u64)),
            "a list of non-negative integers",
        ),
    };
    if ok {
        return Ok(());
    }
    // For a list, show the offending item rather than the whole list.
    let bad_item = match (kind, value) {
        (Kind::IntegerList, Value::Array(items)) => items.iter().find(|item| !item.is_u64()),
        _ => None,
    };
    let got = match bad_item {
        Some(item) => format!("{} in the list", describe(item)),
        None => describe(value),
    };
    Err(ConfigError::WrongType { key, expected, got })
}

/// A short rendering of a JSON value for error messages (without pulling in a JSON writer).
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("\"{s}\""),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn in_range(
    key: &'static str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::OutOfRange {
            key,
            value: value.to_string(),
            range: format!("between {min} and {max}"),
        })
    }
}

fn to_u32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// Parses and validates the plugin configuration bytes.
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigError::MissingCollectorCluster);
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ConfigError::NotJson(e.to_string()))?;
    let Value::Object(map) = &value else {
        let got = match value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        };
        return Err(ConfigError::NotAnObject(got));
    };
    for (key, item) in map {
        let Some((key, kind)) = kind_of(key) else {
            return Err(ConfigError::UnknownKey {
                key: key.clone(),
                expected: KEYS_LIST.to_owned(),
            });
        };
        check_kind(key, kind, item)?;
    }
    // Checked here, while the number is still in its JSON form (no float formatting code).
    if let Some(rate) = map.get("success_sample_rate").and_then(Value::as_number)
        && !rate.as_f64().is_some_and(|r| (0.0..=1.0).contains(&r))
    {
        return Err(ConfigError::OutOfRange {
            key: "success_sample_rate",
            value: rate.to_string(),
            range: "between 0.0 and 1.0 (e.g. 0.01 records 1% of successes in full)".to_owned(),
        });
    }
    let int = |key: &str| map.get(key).and_then(Value::as_u64);
    let raw = RawConfig {
        collector_cluster: map
            .get("collector_cluster")
            .and_then(Value::as_str)
            .map(str::to_owned),
        flush_interval_ms: int("flush_interval_ms"),
        max_batch_records: int("max_batch_records"),
        max_buffered_records: int("max_buffered_records"),
        max_counter_keys: int("max_counter_keys"),
        capture_codes: map
            .get("capture_codes")
            .and_then(Value::as_array)
            .map(|codes| codes.iter().filter_map(Value::as_u64).collect()),
        capture_min_code: int("capture_min_code"),
        success_sample_rate: map.get("success_sample_rate").and_then(Value::as_f64),
        provenance_ttl_ms: int("provenance_ttl_ms"),
        grpc_timeout_ms: int("grpc_timeout_ms"),
    };
    validate(raw)
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let collector_cluster = raw
        .collector_cluster
        .ok_or(ConfigError::MissingCollectorCluster)?;
    if collector_cluster.is_empty() {
        return Err(ConfigError::EmptyCollectorCluster);
    }
    let grpc_upstream = grpc_upstream(&collector_cluster)?;
    let flush_interval_ms = to_u32(in_range(
        "flush_interval_ms",
        raw.flush_interval_ms,
        DEFAULT_FLUSH_INTERVAL_MS.into(),
        10,
        60_000,
    )?);
    let max_batch_records = to_usize(in_range(
        "max_batch_records",
        raw.max_batch_records,
        DEFAULT_MAX_BATCH_RECORDS as u64,
        1,
        10_000,
    )?);
    let max_buffered_records = to_usize(in_range(
        "max_buffered_records",
        raw.max_buffered_records,
        DEFAULT_MAX_BUFFERED_RECORDS as u64,
        1,
        100_000,
    )?);
    if max_buffered_records < max_batch_records {
        return Err(ConfigError::BufferSmallerThanBatch {
            buffered: max_buffered_records,
            batch: max_batch_records,
        });
    }
    let max_counter_keys = to_usize(in_range(
        "max_counter_keys",
        raw.max_counter_keys,
        DEFAULT_MAX_COUNTER_KEYS as u64,
        1,
        100_000,
    )?);
    let mut capture_codes = Vec::new();
    match raw.capture_codes {
        None => capture_codes.extend(DEFAULT_CAPTURE_CODES),
        Some(codes) => {
            for code in codes {
                if !(100..=599).contains(&code) {
                    return Err(ConfigError::OutOfRange {
                        key: "capture_codes",
                        value: code.to_string(),
                        range: "an HTTP status between 100 and 599".to_owned(),
                    });
                }
                // Sorted and deduplicated as it goes (a handful of codes; no sort code needed).
                let code = to_u32(code);
                if let Err(at) = capture_codes.binary_search(&code) {
                    capture_codes.insert(at, code);
                }
            }
        }
    }
    let capture_min_code = to_u32(in_range(
        "capture_min_code",
        raw.capture_min_code,
        DEFAULT_CAPTURE_MIN_CODE.into(),
        100,
        600,
    )?);
    // Range-checked in `parse`; clamped again so a bug there cannot make a nonsense rate.
    let success_sample_rate = raw
        .success_sample_rate
        .unwrap_or(DEFAULT_SUCCESS_SAMPLE_RATE)
        .clamp(0.0, 1.0);
    let provenance_ttl_ms = to_u32(in_range(
        "provenance_ttl_ms",
        raw.provenance_ttl_ms,
        DEFAULT_PROVENANCE_TTL_MS.into(),
        100,
        3_600_000,
    )?);
    let grpc_timeout_ms = to_u32(in_range(
        "grpc_timeout_ms",
        raw.grpc_timeout_ms,
        DEFAULT_GRPC_TIMEOUT_MS.into(),
        100,
        60_000,
    )?);
    Ok(Config {
        collector_cluster,
        grpc_upstream,
        flush_interval_ms,
        max_batch_records,
        max_buffered_records,
        max_counter_keys,
        capture_codes,
        capture_min_code,
        success_sample_rate,
        provenance_ttl_ms,
        grpc_timeout_ms,
    })
}

/// `envoy.config.core.v3.GrpcService`, only the `envoy_grpc` target.
#[derive(Clone, PartialEq, Message)]
struct GrpcService {
    #[prost(message, optional, tag = "1")]
    envoy_grpc: Option<EnvoyGrpc>,
}

/// `envoy.config.core.v3.GrpcService.EnvoyGrpc`.
#[derive(Clone, PartialEq, Message)]
struct EnvoyGrpc {
    #[prost(string, tag = "1")]
    cluster_name: String,
}

/// Whether Envoy would take these bytes for a serialized protobuf message.
///
/// Envoy's `grpcCall` first tries to parse the upstream argument as a `GrpcService` and only
/// falls back to a cluster name when that parse fails. Many plain names are valid protobuf wire
/// format (e.g. `meshwhy-collector`: fields 13, 13, 5 and 12, all unknown), and an empty
/// `GrpcService` then has no target: Envoy rejects it (BadArgument, which the SDK turns into a
/// panic) or, in some versions, crashes. Decoding as an empty message is exactly a wire-format
/// check (every field unknown, skipped), and it is conservative: anything Envoy parses, it
/// accepts.
pub fn parses_as_protobuf(bytes: &[u8]) -> bool {
    <() as Message>::decode(bytes).is_ok()
}

/// The upstream argument for `dispatch_grpc_call`: the cluster name when Envoy will read it as
/// one, else a serialized `GrpcService { envoy_grpc { cluster_name } }` naming the same cluster.
pub fn grpc_upstream(cluster: &str) -> Result<String, ConfigError> {
    if !parses_as_protobuf(cluster.as_bytes()) {
        return Ok(cluster.to_owned());
    }
    let wrapped = GrpcService {
        envoy_grpc: Some(EnvoyGrpc {
            cluster_name: cluster.to_owned(),
        }),
    }
    .encode_to_vec();
    // The SDK takes the upstream as &str; a long name makes a length byte >= 0x80 (not UTF-8).
    String::from_utf8(wrapped).map_err(|_| ConfigError::AmbiguousClusterName(cluster.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        match parse(json.as_bytes()) {
            Ok(config) => panic!("{json} should be rejected, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_config_takes_every_default() {
        let config = parse(
            br#"{"collector_cluster": "outbound|9090||collector.meshwhy.svc.cluster.local"}"#,
        )
        .expect("valid");
        assert_eq!(
            config,
            Config {
                collector_cluster: "outbound|9090||collector.meshwhy.svc.cluster.local".into(),
                grpc_upstream: "outbound|9090||collector.meshwhy.svc.cluster.local".into(),
                flush_interval_ms: 1000,
                max_batch_records: 500,
                max_buffered_records: 2000,
                max_counter_keys: 1024,
                capture_codes: vec![403, 429],
                capture_min_code: 500,
                success_sample_rate: 0.0,
                provenance_ttl_ms: 10_000,
                grpc_timeout_ms: 5000,
            }
        );
    }

    #[test]
    fn full_config_is_read() {
        let config = parse(
            br#"{
                "collector_cluster": "collector",
                "flush_interval_ms": 250,
                "max_batch_records": 100,
                "max_buffered_records": 100,
                "max_counter_keys": 10,
                "capture_codes": [429, 404, 429],
                "capture_min_code": 502,
                "success_sample_rate": 0.25,
                "provenance_ttl_ms": 2000,
                "grpc_timeout_ms": 1500
            }"#,
        )
        .expect("valid");
        assert_eq!(config.flush_interval_ms, 250);
        assert_eq!(config.max_batch_records, 100);
        assert_eq!(config.max_buffered_records, 100);
        assert_eq!(config.max_counter_keys, 10);
        assert_eq!(config.capture_codes, vec![404, 429]);
        assert_eq!(config.capture_min_code, 502);
        assert!((config.success_sample_rate - 0.25).abs() < f64::EPSILON);
        assert_eq!(config.provenance_ttl_ms, 2000);
        assert_eq!(config.grpc_timeout_ms, 1500);
        assert_eq!(config.grpc_upstream, "collector");
    }

    #[test]
    fn key_list_matches_keys() {
        assert_eq!(KEYS_LIST, KEYS.join(", "));
    }

    #[test]
    fn empty_capture_codes_is_allowed() {
        let config =
            parse(br#"{"collector_cluster": "collector", "capture_codes": []}"#).expect("valid");
        assert!(config.capture_codes.is_empty());
    }

    #[test]
    fn invalid_fixtures_name_the_key_and_the_fix() {
        let cases: &[(&str, &str)] = &[
            (
                "",
                "missing collector_cluster (set it to the name of an HTTP/2 cluster",
            ),
            ("  \n", "missing collector_cluster"),
            ("{}", "missing collector_cluster"),
            ("null", "expected a JSON object, got null"),
            ("[1]", "expected a JSON object, got a list"),
            (r#""collector""#, "expected a JSON object, got a string"),
            (
                "{collector_cluster: x}",
                "not valid JSON (key must be a string",
            ),
            (
                r#"{"collector_cluster": "c", "flush_interval": 10}"#,
                "unknown key \"flush_interval\" (expected one of: collector_cluster, flush_interval_ms, \
                 max_batch_records, max_buffered_records, max_counter_keys, capture_codes, \
                 capture_min_code, success_sample_rate, provenance_ttl_ms, grpc_timeout_ms)",
            ),
            (
                r#"{"collector_cluster": 5}"#,
                "\"collector_cluster\" must be a string (got 5)",
            ),
            (
                r#"{"collector_cluster": ""}"#,
                "\"collector_cluster\" must not be empty",
            ),
            (
                r#"{"collector_cluster": "c", "flush_interval_ms": "1000"}"#,
                "\"flush_interval_ms\" must be a non-negative integer (got \"1000\")",
            ),
            (
                r#"{"collector_cluster": "c", "flush_interval_ms": 1.5}"#,
                "\"flush_interval_ms\" must be a non-negative integer (got 1.5)",
            ),
            (
                r#"{"collector_cluster": "c", "flush_interval_ms": -1}"#,
                "\"flush_interval_ms\" must be a non-negative integer (got -1)",
            ),
            (
                r#"{"collector_cluster": "c", "flush_interval_ms": 5}"#,
                "\"flush_interval_ms\" (5) must be between 10 and 60000",
            ),
            (
                r#"{"collector_cluster": "c", "flush_interval_ms": 60001}"#,
                "\"flush_interval_ms\" (60001) must be between 10 and 60000",
            ),
            (
                r#"{"collector_cluster": "c", "max_batch_records": 0}"#,
                "\"max_batch_records\" (0) must be between 1 and 10000",
            ),
            (
                r#"{"collector_cluster": "c", "max_batch_records": 1000, "max_buffered_records": 500}"#,
                "\"max_buffered_records\" (500) must be >= max_batch_records (1000)",
            ),
            (
                r#"{"collector_cluster": "c", "max_buffered_records": 100}"#,
                "\"max_buffered_records\" (100) must be >= max_batch_records (500)",
            ),
            (
                r#"{"collector_cluster": "c", "max_buffered_records": 100001}"#,
                "\"max_buffered_records\" (100001) must be between 1 and 100000",
            ),
            (
                r#"{"collector_cluster": "c", "max_counter_keys": 0}"#,
                "\"max_counter_keys\" (0) must be between 1 and 100000",
            ),
            (
                r#"{"collector_cluster": "c", "capture_codes": 403}"#,
                "\"capture_codes\" must be a list of non-negative integers (got 403)",
            ),
            (
                r#"{"collector_cluster": "c", "capture_codes": ["403"]}"#,
                "\"capture_codes\" must be a list of non-negative integers (got \"403\" in the list)",
            ),
            (
                r#"{"collector_cluster": "c", "capture_codes": [403, 99]}"#,
                "\"capture_codes\" (99) must be an HTTP status between 100 and 599",
            ),
            (
                r#"{"collector_cluster": "c", "capture_min_code": 0}"#,
                "\"capture_min_code\" (0) must be between 100 and 600",
            ),
            (
                r#"{"collector_cluster": "c", "success_sample_rate": 1.5}"#,
                "\"success_sample_rate\" (1.5) must be between 0.0 and 1.0",
            ),
            (
                r#"{"collector_cluster": "c", "success_sample_rate": "1%"}"#,
                "\"success_sample_rate\" must be a number (got \"1%\")",
            ),
            (
                r#"{"collector_cluster": "c", "provenance_ttl_ms": 0}"#,
                "\"provenance_ttl_ms\" (0) must be between 100 and 3600000",
            ),
            (
                r#"{"collector_cluster": "c", "grpc_timeout_ms": 10}"#,
                "\"grpc_timeout_ms\" (10) must be between 100 and 60000",
            ),
            (
                r#"{"collector_cluster": null}"#,
                "\"collector_cluster\" must be a string (got null)",
            ),
            (
                r#"{"collector_cluster": "c", "grpc_timeout_ms": [1, "x"]}"#,
                "\"grpc_timeout_ms\" must be a non-negative integer (got a list)",
            ),
            (
                r#"{"collector_cluster": {"name": "c"}}"#,
                "\"collector_cluster\" must be a string (got an object)",
            ),
        ];
        for (json, want) in cases {
            let got = err(json);
            assert!(
                got.starts_with(want),
                "for {json:?}\n got: {got}\nwant: {want}…"
            );
        }
    }

    #[test]
    fn log_line_is_one_clear_sentence() {
        let error =
            parse(br#"{"collector_cluster": "c", "flush_interval": 1}"#).expect_err("invalid");
        let line = error_log_line(&error);
        assert!(line.starts_with("meshwhy: invalid plugin configuration: unknown key \"flush_interval\" (expected one of: collector_cluster, flush_interval_ms,"));
        assert!(line.ends_with(
            "meshwhy is disabled until the configuration is fixed (traffic is not affected)"
        ));
        assert!(!line.contains('\n'));
    }

    #[test]
    fn names_envoy_would_parse_as_protobuf_are_wrapped() {
        // m=field 13 fixed32 "eshw", h=field 13 varint 'y', -=field 5 fixed32 "coll",
        // e=field 12 fixed32 "ctor": valid wire format, so Envoy would not treat it as a name.
        assert!(parses_as_protobuf(b"meshwhy-collector"));
        let upstream = grpc_upstream("meshwhy-collector").expect("wrapped");
        assert_ne!(upstream, "meshwhy-collector");
        let decoded = GrpcService::decode(upstream.as_bytes()).expect("decodes");
        assert_eq!(
            decoded.envoy_grpc.map(|g| g.cluster_name).as_deref(),
            Some("meshwhy-collector")
        );
        let config = parse(br#"{"collector_cluster": "meshwhy-collector"}"#).expect("valid");
        assert_eq!(config.collector_cluster, "meshwhy-collector");
        assert_eq!(config.grpc_upstream, upstream);
    }

    #[test]
    fn names_envoy_reads_as_names_are_passed_through() {
        for name in [
            "collector",
            "outbound|9090||meshwhy-collector.meshwhy.svc.cluster.local",
            "meshwhy_collector",
            "grpc-collector",
            "otel",
        ] {
            assert!(!parses_as_protobuf(name.as_bytes()), "{name}");
            assert_eq!(grpc_upstream(name).expect("valid"), name);
        }
    }

    #[test]
    fn long_ambiguous_names_are_rejected_not_mangled() {
        // 'm' + fixed32 payloads repeated: valid wire format, and too long for a one-byte length.
        let name = "mabcd".repeat(40);
        assert!(parses_as_protobuf(name.as_bytes()));
        let error = grpc_upstream(&name).expect_err("too long");
        assert!(
            error
                .to_string()
                .contains("would read it as a serialized GrpcService")
        );
    }
}
