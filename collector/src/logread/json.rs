//! JSON access-log lines: Istio's `accessLogEncoding: JSON` keys in every era, a user's own
//! `json_format` (typed values, `null`, renamed or nested keys), and log shippers' wrappers
//! (`{"log": "<text line>", …}`) whose inner line is read as text.

use meshwhy_proto::v1::{DecisionRecord, RecordField};
use serde_json::{Map, Value};

use super::field::{self, Field};

/// What a JSON line held.
pub(crate) enum JsonLine {
    /// Access-log fields: the record, what its keys covered, and whether an Istio era before NC
    /// wrote it.
    Record {
        record: Box<DecisionRecord>,
        known: u64,
        predates_nc: bool,
    },
    /// A wrapper around a text line (Docker's json-file `log`, a shipper's `message`).
    Wrapped(String),
}

/// Keys whose string value is itself the log line.
const WRAPPER_KEYS: &[&str] = &["log", "message", "msg", "textPayload", "line"];
/// Deepest nesting flattened (`{"response": {"code": 503}}` → `response_code`).
const MAX_DEPTH: usize = 4;

/// Reads a complete JSON object; `None` when `text` is not one or has no access-log field.
/// `keys` maps the user's own keys (from a JSON `--log-format`) before the known names.
pub(crate) fn read(text: &str, keys: &[(String, Field)]) -> Option<JsonLine> {
    let value: Value = serde_json::from_str(text).ok()?;
    let object = value.as_object()?;
    let mut pairs = Vec::new();
    flatten("", object, 0, &mut pairs);
    let mut record = DecisionRecord::default();
    let mut known = 0u64;
    let mut useful = false;
    let mut predates_nc = false;
    for (key, value) in &pairs {
        let field = keys
            .iter()
            .find(|(name, _)| name == key)
            .map_or_else(|| key_field(key), |(_, field)| *field);
        if key.contains("olicy") && field::normalise_key(key) == "istio_policy_status" {
            // Only Istio 1.1–1.7 wrote the mixer's status.
            predates_nc = true;
        }
        let Some(record_field) = field.record_field() else {
            continue;
        };
        let text = scalar(value);
        if !field.accepts(&text) && !matches!(value, Value::Null) {
            continue;
        }
        field.store(&mut record, &text);
        known |= field::bit(record_field);
        useful |= matches!(
            field,
            Field::Code | Field::Flags | Field::Details | Field::TransportFailure
        );
    }
    if useful {
        return Some(JsonLine::Record {
            record: Box::new(record),
            known,
            predates_nc,
        });
    }
    WRAPPER_KEYS.iter().find_map(|key| match object.get(*key) {
        Some(Value::String(inner)) => Some(JsonLine::Wrapped(inner.clone())),
        _ => None,
    })
}

/// The field of a flattened key: the whole path (`http.status` as `http_status`), else the
/// path below each level (`envoy.response_flag` → `response_flag`).
fn key_field(key: &str) -> Field {
    let mut rest = key;
    loop {
        let field = Field::of_key(rest);
        if field != Field::Other {
            return field;
        }
        match rest.split_once('.') {
            Some((_, tail)) if !tail.is_empty() => rest = tail,
            _ => return Field::Other,
        }
    }
}

fn flatten<'a>(
    prefix: &str,
    object: &'a Map<String, Value>,
    depth: usize,
    out: &mut Vec<(String, &'a Value)>,
) {
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) if depth < MAX_DEPTH => flatten(&name, inner, depth + 1, out),
            _ => out.push((name, value)),
        }
    }
}

/// A JSON value as the text formats print it.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The keys of a JSON format string (`{"status":"%RESPONSE_CODE%", …}`) mapped to the fields
/// their commands print; `None` when `format` is not a JSON object.
pub(crate) fn format_keys(format: &str) -> Option<Vec<(String, Field)>> {
    let value: Value = serde_json::from_str(format.trim()).ok()?;
    let object = value.as_object()?;
    let mut pairs = Vec::new();
    flatten("", object, 0, &mut pairs);
    let keys = pairs
        .into_iter()
        .filter_map(|(key, value)| {
            let command = value
                .as_str()?
                .trim()
                .strip_prefix('%')?
                .strip_suffix('%')?;
            let (name, argument) = match command.split_once('(') {
                Some((name, rest)) => (name, rest.split(')').next().unwrap_or("")),
                None => (command, ""),
            };
            let field = Field::of_command(name, argument);
            (field != Field::Other).then_some((key, field))
        })
        .collect();
    Some(keys)
}

/// The fields a JSON record covered are the ones its keys named; the NC capability bit as its
/// era says.
pub(crate) fn unknown(known: u64, predates_nc: bool) -> u64 {
    let nc = if predates_nc {
        field::bit(RecordField::NcFlag)
    } else {
        0
    };
    (field::ALL & !known) | nc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> (DecisionRecord, u64) {
        match read(text, &[]) {
            Some(JsonLine::Record { record, known, .. }) => (*record, known),
            _ => panic!("not a record: {text}"),
        }
    }

    #[test]
    fn istio_keys_typed_values_and_nulls() {
        let (record, known) = record(
            r#"{"response_code":404,"response_flags":"NR","route_name":null,"upstream_cluster":null,"path":"/admin?x=1","duration":"3"}"#,
        );
        assert_eq!(record.response_code, 404);
        assert_eq!(record.response_flags, 1 << 8);
        assert_eq!(record.path, "/admin");
        assert_eq!(record.duration_nanos, 3_000_000);
        assert!(
            known & field::bit(RecordField::RouteName) != 0,
            "null is known-empty"
        );
        assert!(known & field::bit(RecordField::ResponseCodeDetails) == 0);
    }

    #[test]
    fn renamed_nested_and_wrapped() {
        let (record, _) = record(
            r#"{"http":{"status":503},"envoy":{"response_flag":"UT"},"grpc_status":"DeadlineExceeded"}"#,
        );
        assert_eq!(record.response_code, 503);
        assert_eq!(record.response_flags, 1 << 2);
        assert_eq!(record.grpc_status, Some(4));
        match read(
            r#"{"log":"[2024-01-01T00:00:00.000Z] \"GET / HTTP/1.1\" 503 UF\n","stream":"stdout"}"#,
            &[],
        ) {
            Some(JsonLine::Wrapped(inner)) => assert!(inner.starts_with("[2024")),
            _ => panic!("wrapper not seen"),
        }
        assert!(
            read(r#"{"level":"info","msg":"starting"}"#, &[])
                .is_some_and(|l| matches!(l, JsonLine::Wrapped(_)))
        );
        assert!(read(r#"{"level":"info"}"#, &[]).is_none());
        assert!(read(r#"{"response_code":"#, &[]).is_none());
    }

    #[test]
    fn keys_of_a_json_format() {
        let keys = format_keys(
            r#"{"s":"%RESPONSE_CODE%","f":"%RESPONSE_FLAGS%","ua":"%REQ(USER-AGENT)%"}"#,
        )
        .unwrap();
        assert_eq!(
            keys,
            [
                ("f".to_owned(), Field::Flags),
                ("s".to_owned(), Field::Code)
            ]
        );
        let (record, _) = match read(r#"{"s":503,"f":"UF"}"#, &keys) {
            Some(JsonLine::Record { record, known, .. }) => (*record, known),
            _ => panic!(),
        };
        assert_eq!((record.response_code, record.response_flags), (503, 1 << 5));
    }
}
