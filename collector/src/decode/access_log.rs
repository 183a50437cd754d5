//! Envoy/Istio access log lines as decision records, so `meshwhy explain --input-file` works on
//! what people already have (`kubectl logs … -c istio-proxy`). Two formats: Istio's default TEXT
//! format (and its pre-1.10 variant with the mixer status instead of the code details), and
//! Istio's JSON format (the same fields, lowercase keys). Flags arrive as names (`UF,URX`) and
//! become the bitmask the rules read.

use meshwhy_proto::v1::{DecisionRecord, Direction};
use serde_json::Value;

use super::ClusterName;

/// Why a line is not an access log record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessLogError {
    /// Neither a TEXT line (`[start] "METHOD path proto" …`) nor a JSON object.
    #[error("not an Envoy access log line")]
    Unrecognised,
    /// A JSON line without the fields of an HTTP access log entry.
    #[error("JSON without access log fields (need at least response_code)")]
    NotHttp,
    /// The TEXT line has too few fields for Istio's format.
    #[error("{found} fields where Istio's text format has {expected}")]
    Fields {
        /// Fields found.
        found: usize,
        /// Fields expected.
        expected: usize,
    },
}

/// Parses one line, TEXT or JSON. Prefixes such as kubectl's `--prefix` are skipped.
pub fn parse_line(line: &str) -> Result<DecisionRecord, AccessLogError> {
    let line = line.trim();
    if let Some(at) = line.find('{')
        && line.ends_with('}')
        && !line[..at].contains('"')
    {
        return parse_json(&line[at..]);
    }
    let start = line
        .char_indices()
        .find(|(i, c)| *c == '[' && line[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
        .map(|(i, _)| i)
        .ok_or(AccessLogError::Unrecognised)?;
    parse_text(&line[start..])
}

/// Splits a TEXT line into `[…]`, `"…"` and bare fields; `true` marks quoted ones.
fn tokens(line: &str) -> Vec<(&str, bool)> {
    let mut tokens = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let quoted = rest.starts_with('"');
        let (token, tail) = if let Some(inner) = rest.strip_prefix('[') {
            match inner.find(']') {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => (inner, ""),
            }
        } else if let Some(inner) = rest.strip_prefix('"') {
            match inner.find('"') {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => (inner, ""),
            }
        } else {
            match rest.find(char::is_whitespace) {
                Some(end) => (&rest[..end], &rest[end..]),
                None => (rest, ""),
            }
        };
        tokens.push((token, quoted));
        rest = tail.trim_start();
    }
    tokens
}

/// `-` and empty mean "no value" in Envoy's text logs.
fn value(token: &str) -> String {
    if token == "-" {
        String::new()
    } else {
        token.to_owned()
    }
}

fn parse_text(line: &str) -> Result<DecisionRecord, AccessLogError> {
    let raw_tokens = tokens(line);
    // Istio ≥ 1.10: 22 fields; older: the quoted mixer status replaces details and termination
    // details, so one field fewer.
    let old_layout = raw_tokens.get(4).is_some_and(|(_, quoted)| *quoted);
    let expected = if old_layout { 21 } else { 22 };
    if raw_tokens.len() < expected {
        return Err(AccessLogError::Fields {
            found: raw_tokens.len(),
            expected,
        });
    }
    let t = |index: usize| raw_tokens.get(index).map_or("-", |(token, _)| *token);
    let shift = |index: usize| if old_layout { index - 1 } else { index };
    let mut request_line = t(1).split_whitespace();
    let method = request_line.next().unwrap_or("-");
    let path = request_line.next().unwrap_or("-");
    let mut record = DecisionRecord {
        start_time_unix_nanos: parse_time(t(0)).unwrap_or(0),
        method: value(method),
        path: strip_query(&value(path)),
        response_code: t(2).parse().unwrap_or(0),
        response_flags: parse_flags(t(3)),
        response_code_details: if old_layout {
            String::new()
        } else {
            value(t(4))
        },
        transport_failure_reason: value(t(shift(6))),
        duration_nanos: t(shift(9))
            .parse::<u64>()
            .unwrap_or(0)
            .saturating_mul(1_000_000),
        request_id: value(t(shift(13))),
        authority: value(t(shift(14))),
        upstream_host: value(t(shift(15))),
        cluster: value(t(shift(16))),
        source_address: value(t(shift(19))),
        route_name: value(t(shift(21))),
        ..DecisionRecord::default()
    };
    finish(&mut record);
    Ok(record)
}

fn parse_json(line: &str) -> Result<DecisionRecord, AccessLogError> {
    let json: Value = serde_json::from_str(line).map_err(|_| AccessLogError::Unrecognised)?;
    let object = json.as_object().ok_or(AccessLogError::Unrecognised)?;
    if !object.contains_key("response_code") {
        return Err(AccessLogError::NotHttp);
    }
    let text = |key: &str| match object.get(key) {
        Some(Value::String(s)) => value(s),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let number = |key: &str| match object.get(key) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    };
    let cluster = {
        let raw = text("upstream_cluster_raw");
        if raw.is_empty() {
            text("upstream_cluster")
        } else {
            raw
        }
    };
    let path = {
        let original = text("x_envoy_original_path");
        if original.is_empty() {
            text("path")
        } else {
            original
        }
    };
    let mut record = DecisionRecord {
        start_time_unix_nanos: parse_time(&text("start_time")).unwrap_or(0),
        method: text("method"),
        path: strip_query(&path),
        response_code: u32::try_from(number("response_code")).unwrap_or(0),
        response_flags: parse_flags(&text("response_flags")),
        response_code_details: text("response_code_details"),
        transport_failure_reason: text("upstream_transport_failure_reason"),
        duration_nanos: number("duration").saturating_mul(1_000_000),
        request_id: text("request_id"),
        authority: text("authority"),
        upstream_host: text("upstream_host"),
        cluster,
        source_address: text("downstream_remote_address"),
        route_name: text("route_name"),
        ..DecisionRecord::default()
    };
    if let Some(status) = object.get("grpc_status").and_then(grpc_status) {
        record.grpc_status = Some(status);
    }
    finish(&mut record);
    Ok(record)
}

/// `%GRPC_STATUS%` is a name (`UNAVAILABLE`) or a number.
fn grpc_status(value: &Value) -> Option<u32> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.parse().ok().or_else(|| {
            NAMES
                .iter()
                .position(|name| name.eq_ignore_ascii_case(s))
                .and_then(|i| u32::try_from(i).ok())
        }),
        _ => None,
    }
}

/// What every format leaves implicit: the direction (from the cluster name) and the success
/// marking (access logs carry every request, so successes are marked as such).
fn finish(record: &mut DecisionRecord) {
    let direction = match ClusterName::parse(&record.cluster) {
        ClusterName::Inbound { .. } | ClusterName::InboundPassthrough => Direction::Inbound,
        ClusterName::Outbound { .. } | ClusterName::Passthrough | ClusterName::BlackHole => {
            Direction::Outbound
        }
        _ if matches!(record.route_name.as_str(), "allow_any" | "block_all") => Direction::Outbound,
        _ => Direction::Unspecified,
    };
    record.direction = direction as i32;
    record.sampled_success = !crate::explain::is_failure(record);
}

/// `UF,URX` → bits. Unknown names (a newer Envoy) are dropped here: the bitmask cannot hold them.
fn parse_flags(names: &str) -> u64 {
    names
        .split(',')
        .filter_map(crate::flags::parse)
        .fold(0, |all, bit| all | bit)
}

fn strip_query(path: &str) -> String {
    path.split('?').next().unwrap_or("").to_owned()
}

/// `2024-02-29T23:59:59.123Z` (Envoy's `%START_TIME%`, UTC) → ns since the Unix epoch.
pub fn parse_time(text: &str) -> Option<u64> {
    let text = text.trim().trim_end_matches('Z');
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-');
    let year: i64 = date.next()?.parse().ok()?;
    let month: i64 = date.next()?.parse().ok()?;
    let day: i64 = date.next()?.parse().ok()?;
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock = clock.split(':');
    let hours: i64 = clock.next()?.parse().ok()?;
    let minutes: i64 = clock.next()?.parse().ok()?;
    let seconds: i64 = clock.next()?.parse().ok()?;
    let digits: String = fraction
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    let nanos: i64 = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10_i64.pow(9 - digits.len() as u32)
    };
    // Bounds keep the arithmetic below far from overflow on garbage input.
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hours)
        && (0..60).contains(&minutes)
        && (0..=60).contains(&seconds);
    if !valid {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hours * 3600 + minutes * 60 + seconds;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(nanos).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Istio's default TEXT format, a closed port seen by productpage's sidecar (Envoy 1.40
    /// strings).
    const TEXT_UF: &str = r#"[2023-11-14T22:13:20.123Z] "GET /reviews/0?x=1 HTTP/1.1" 503 UF,URX upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed connect error: Connection refused" 0 91 2 - "-" "curl/8.5.0" "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab" "reviews:9080" "10.0.0.9:9080" outbound|9080||reviews.shop.svc.cluster.local - 10.96.12.3:9080 10.0.0.5:40000 - default"#;
    /// The server side's app answering 503.
    const TEXT_INBOUND: &str = r#"[2023-11-14T22:13:20.124Z] "GET /reviews/0 HTTP/1.1" 503 - via_upstream - "-" 0 19 1 1 "-" "curl/8.5.0" "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab" "reviews:9080" "10.0.0.9:9080" inbound|9080|| 127.0.0.6:51423 10.0.0.9:9080 10.0.0.5:40000 outbound_.9080_._.reviews.shop.svc.cluster.local default"#;
    /// Pre-1.10 Istio: mixer status instead of details, errno transport reason.
    const TEXT_OLD: &str = r#"[2020-05-01T10:00:00.000Z] "GET /ratings HTTP/1.1" 503 UF "-" "delayed connect error: 111" 0 91 1 - "-" "curl" "abc" "ratings:9080" "10.0.0.7:9080" outbound|9080||ratings.shop.svc.cluster.local - 10.96.0.1:9080 10.0.0.5:1234 - default"#;
    const JSON_NR: &str = r#"{"authority":"reviews:9080","bytes_received":0,"bytes_sent":0,"connection_termination_details":null,"downstream_local_address":"10.96.12.3:9080","downstream_remote_address":"10.0.0.5:40000","duration":0,"method":"GET","path":"/admin","protocol":"HTTP/1.1","request_id":"r-nr","requested_server_name":null,"response_code":404,"response_code_details":"route_not_found","response_flags":"NR","route_name":null,"start_time":"2023-11-14T22:13:21.000Z","upstream_cluster":null,"upstream_host":null,"upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":"curl/8.5.0","x_forwarded_for":null}"#;

    #[test]
    fn istio_text_format() {
        let record = parse_line(TEXT_UF).unwrap();
        assert_eq!(record.start_time_unix_nanos, 1_700_000_000_123_000_000);
        assert_eq!(record.method, "GET");
        assert_eq!(record.path, "/reviews/0");
        assert_eq!(record.response_code, 503);
        assert_eq!(record.response_flags, (1 << 5) | (1 << 15));
        assert!(
            record
                .response_code_details
                .ends_with("Connection_refused}")
        );
        assert_eq!(
            record.transport_failure_reason,
            "delayed connect error: Connection refused"
        );
        assert_eq!(record.duration_nanos, 2_000_000);
        assert_eq!(record.request_id, "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab");
        assert_eq!(record.authority, "reviews:9080");
        assert_eq!(record.upstream_host, "10.0.0.9:9080");
        assert_eq!(
            record.cluster,
            "outbound|9080||reviews.shop.svc.cluster.local"
        );
        assert_eq!(record.source_address, "10.0.0.5:40000");
        assert_eq!(record.route_name, "default");
        assert_eq!(record.direction, Direction::Outbound as i32);
        assert!(!record.sampled_success);

        let inbound = parse_line(TEXT_INBOUND).unwrap();
        assert_eq!(inbound.direction, Direction::Inbound as i32);
        assert_eq!(inbound.response_flags, 0);
        assert_eq!(inbound.response_code_details, "via_upstream");
        assert_eq!(inbound.cluster, "inbound|9080||");
    }

    #[test]
    fn older_text_format_and_prefixes() {
        let record = parse_line(TEXT_OLD).unwrap();
        assert_eq!(record.response_code_details, "");
        assert_eq!(
            record.transport_failure_reason,
            "delayed connect error: 111"
        );
        assert_eq!(
            record.cluster,
            "outbound|9080||ratings.shop.svc.cluster.local"
        );
        assert_eq!(record.route_name, "default");
        let prefixed = format!("[pod/productpage-v1-7d9c/istio-proxy] {TEXT_UF}");
        assert_eq!(
            parse_line(&prefixed).unwrap().request_id,
            "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab"
        );
    }

    #[test]
    fn istio_json_format() {
        let record = parse_line(JSON_NR).unwrap();
        assert_eq!(record.response_code, 404);
        assert_eq!(record.response_flags, 1 << 8);
        assert_eq!(record.response_code_details, "route_not_found");
        assert_eq!(record.route_name, "");
        assert_eq!(record.cluster, "");
        assert_eq!(record.path, "/admin");
        assert!(!record.sampled_success);
        let ok = r#"{"response_code":200,"response_flags":"-","upstream_cluster":"outbound|9080||reviews.shop.svc.cluster.local","grpc_status":"UNAVAILABLE"}"#;
        let record = parse_line(ok).unwrap();
        assert_eq!(record.grpc_status, Some(14));
        assert!(!record.sampled_success, "gRPC failures log 200");
    }

    #[test]
    fn not_access_logs() {
        assert_eq!(
            parse_line("2023-11-14T22:13:20Z info starting"),
            Err(AccessLogError::Unrecognised)
        );
        assert_eq!(
            parse_line(r#"{"level":"info"}"#),
            Err(AccessLogError::NotHttp)
        );
        assert!(matches!(
            parse_line("[2023-11-14T22:13:20.123Z] \"GET / HTTP/1.1\" 200"),
            Err(AccessLogError::Fields { .. })
        ));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_time("2024-02-29T23:59:59.5Z"),
            Some(1_709_251_199_500_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("99999999999999-01-01T00:00:00Z"), None);
        assert_eq!(parse_time("2024-01-01T99:00:00Z"), None);
    }
}
