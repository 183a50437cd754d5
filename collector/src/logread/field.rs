//! What a log reader can recognise — one [`Field`] per Envoy format command it understands — and
//! how a value of each lands in a [`DecisionRecord`]: its shape (used to tell formats apart by
//! structure), its record field and the `unknown_fields` bit it clears.

use meshwhy_proto::v1::{DecisionRecord, RecordField};

/// A value a line can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// `%START_TIME%`.
    StartTime,
    /// `%REQ(:METHOD)%`.
    Method,
    /// `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%`, `%REQ(:PATH)%`.
    Path,
    /// `%PROTOCOL%`.
    Protocol,
    /// `%RESPONSE_CODE%`.
    Code,
    /// `%RESPONSE_FLAGS%` (short names) or `%RESPONSE_FLAGS_LONG%`.
    Flags,
    /// `%RESPONSE_CODE_DETAILS%`.
    Details,
    /// `%CONNECTION_TERMINATION_DETAILS%`.
    TerminationDetails,
    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`.
    TransportFailure,
    /// `%BYTES_SENT%`.
    BytesSent,
    /// `%DURATION%` (milliseconds).
    Duration,
    /// `%REQ(X-REQUEST-ID)%`.
    RequestId,
    /// `%REQ(:AUTHORITY)%`.
    Authority,
    /// `%UPSTREAM_HOST%`.
    UpstreamHost,
    /// `%UPSTREAM_CLUSTER%`, `%UPSTREAM_CLUSTER_RAW%`.
    Cluster,
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`.
    SourceAddress,
    /// `%REQUESTED_SERVER_NAME%`.
    Sni,
    /// `%ROUTE_NAME%`.
    RouteName,
    /// `%GRPC_STATUS%` (a name or a number).
    GrpcStatus,
    /// `%UPSTREAM_REQUEST_ATTEMPT_COUNT%`.
    Attempts,
    /// `%TRACE_ID%`, `%REQ(TRACEPARENT)%`, `%REQ(X-B3-TRACEID)%`.
    TraceId,
    /// `%DOWNSTREAM_PEER_URI_SAN%`.
    DownstreamPeer,
    /// `%UPSTREAM_PEER_URI_SAN%`.
    UpstreamPeer,
    /// `%UPSTREAM_TLS_VERSION%`.
    UpstreamTls,
    /// A number the reader checks the shape of but does not keep (`%BYTES_RECEIVED%`,
    /// `%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%`).
    Number,
    /// An address it does not keep (`%UPSTREAM_LOCAL_ADDRESS%`, `%DOWNSTREAM_LOCAL_ADDRESS%`).
    Address,
    /// Anything else (user agent, forwarded-for, mixer status, commands it does not know).
    Other,
}

/// The `unknown_fields` bit of a record field.
pub(crate) const fn bit(field: RecordField) -> u64 {
    1 << field as u32
}

/// Every field a log line could leave unknown.
pub(crate) const ALL: u64 = {
    let mut all = 0u64;
    let mut f = RecordField::StartTime as u32;
    while f <= RecordField::BytesSent as u32 {
        all |= 1 << f;
        f += 1;
    }
    // A capability, not a field: set only when the format's era says so.
    all & !bit(RecordField::NcFlag)
};

impl Field {
    /// The record field a value of this kind fills, if it is kept.
    pub(crate) fn record_field(self) -> Option<RecordField> {
        Some(match self {
            Field::StartTime => RecordField::StartTime,
            Field::Method => RecordField::Method,
            Field::Path => RecordField::Path,
            Field::Protocol => RecordField::Protocol,
            Field::Code => RecordField::ResponseCode,
            Field::Flags => RecordField::ResponseFlags,
            Field::Details => RecordField::ResponseCodeDetails,
            Field::TerminationDetails => RecordField::ConnectionTerminationDetails,
            Field::TransportFailure => RecordField::TransportFailureReason,
            Field::BytesSent => RecordField::BytesSent,
            Field::Duration => RecordField::Duration,
            Field::RequestId => RecordField::RequestId,
            Field::Authority => RecordField::Authority,
            Field::UpstreamHost => RecordField::UpstreamHost,
            Field::Cluster => RecordField::Cluster,
            Field::SourceAddress => RecordField::SourceAddress,
            Field::Sni => RecordField::RequestedServerName,
            Field::RouteName => RecordField::RouteName,
            Field::GrpcStatus => RecordField::GrpcStatus,
            Field::Attempts => RecordField::AttemptCount,
            Field::TraceId => RecordField::TraceId,
            Field::DownstreamPeer => RecordField::DownstreamTls,
            Field::UpstreamPeer | Field::UpstreamTls => RecordField::UpstreamTls,
            Field::Number | Field::Address | Field::Other => return None,
        })
    }

    /// Whether `value` (as printed, `-` for none) can be a value of this field: how formats are
    /// told apart by structure. Loose where Envoy's output varies, strict where it never does.
    pub(crate) fn accepts(self, value: &str) -> bool {
        self.accepts_cut(value, true)
    }

    /// As [`Field::accepts`] for a value cut at a space by its format (`may_have_spaces`
    /// false): it cannot hold one, so only its other properties are checked.
    pub(crate) fn accepts_cut(self, value: &str, may_have_spaces: bool) -> bool {
        if value == "-" {
            return true;
        }
        match self {
            Field::Code => {
                !value.is_empty() && value.len() <= 3 && value.bytes().all(|b| b.is_ascii_digit())
            }
            Field::Flags => parse_flags(value).is_some(),
            Field::Number | Field::BytesSent | Field::Duration | Field::Attempts => {
                !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
            }
            Field::Method => !value.is_empty() && value.bytes().all(|b| b.is_ascii_uppercase()),
            Field::Protocol => is_protocol(value),
            Field::StartTime => !value.is_empty() && value.as_bytes()[0].is_ascii_digit(),
            // Values Envoy prints without spaces (details are underscored).
            Field::Path
            | Field::Details
            | Field::TerminationDetails
            | Field::Cluster
            | Field::Sni
            | Field::RouteName
            | Field::SourceAddress
            | Field::Address
            | Field::UpstreamHost => {
                let spaces = may_have_spaces && value.bytes().any(|b| b.is_ascii_whitespace());
                !value.is_empty() && !spaces
            }
            _ => true,
        }
    }

    /// Stores `value` in `record`. `-`, empty and `null` mean "none" (the field is still known).
    pub(crate) fn store(self, record: &mut DecisionRecord, value: &str) {
        let value = value.trim_ascii();
        if value.is_empty() || value == "-" || value == "null" {
            return;
        }
        match self {
            Field::StartTime => {
                record.start_time_unix_nanos = parse_start(value).unwrap_or(0);
            }
            Field::Method => record.method = value.to_owned(),
            Field::Path => record.path = truncate(strip_query(value), MAX_PATH_BYTES).to_owned(),
            Field::Protocol => record.protocol = value.to_owned(),
            Field::Code => record.response_code = value.parse().unwrap_or(0),
            Field::Flags => record.response_flags = parse_flags(value).unwrap_or(0),
            Field::Details => record.response_code_details = value.to_owned(),
            Field::TerminationDetails => record.connection_termination_details = value.to_owned(),
            Field::TransportFailure => record.transport_failure_reason = value.to_owned(),
            Field::BytesSent => record.bytes_sent = value.parse().unwrap_or(0),
            Field::Duration => record.duration_nanos = parse_millis(value).unwrap_or(0),
            Field::RequestId => record.request_id = value.to_owned(),
            Field::Authority => record.authority = value.to_owned(),
            Field::UpstreamHost => record.upstream_host = value.to_owned(),
            Field::Cluster => record.cluster = cluster_name(value),
            Field::SourceAddress => record.source_address = value.to_owned(),
            Field::Sni => record.requested_server_name = value.to_owned(),
            Field::RouteName => record.route_name = value.to_owned(),
            Field::GrpcStatus => record.grpc_status = grpc_status(value),
            Field::Attempts => record.attempt_count = value.parse().unwrap_or(0),
            Field::TraceId => record.trace_id = trace_id(value).to_owned(),
            Field::DownstreamPeer => {
                record.downstream_peer_principal = value.to_owned();
                record.downstream_mtls = true;
            }
            Field::UpstreamPeer => record.upstream_peer_principal = value.to_owned(),
            Field::UpstreamTls => record.upstream_tls_version = value.to_owned(),
            Field::Number | Field::Address | Field::Other => {}
        }
    }

    /// The field an Envoy format command stands for, e.g. `REQ(:METHOD)`, `RESPONSE_FLAGS`.
    /// `name` is the command, `argument` what is inside its parentheses (without `:N` length).
    pub(crate) fn of_command(name: &str, argument: &str) -> Field {
        match name {
            "START_TIME" => Field::StartTime,
            "PROTOCOL" => Field::Protocol,
            "RESPONSE_CODE" => Field::Code,
            "RESPONSE_FLAGS" | "RESPONSE_FLAGS_LONG" => Field::Flags,
            "RESPONSE_CODE_DETAILS" => Field::Details,
            "CONNECTION_TERMINATION_DETAILS" => Field::TerminationDetails,
            "UPSTREAM_TRANSPORT_FAILURE_REASON" => Field::TransportFailure,
            "BYTES_SENT" => Field::BytesSent,
            "BYTES_RECEIVED" | "UPSTREAM_WIRE_BYTES_SENT" | "UPSTREAM_WIRE_BYTES_RECEIVED" => {
                Field::Number
            }
            "DURATION" => Field::Duration,
            "UPSTREAM_HOST" => Field::UpstreamHost,
            "UPSTREAM_CLUSTER" | "UPSTREAM_CLUSTER_RAW" => Field::Cluster,
            "DOWNSTREAM_REMOTE_ADDRESS" => Field::SourceAddress,
            "DOWNSTREAM_LOCAL_ADDRESS"
            | "UPSTREAM_LOCAL_ADDRESS"
            | "DOWNSTREAM_DIRECT_REMOTE_ADDRESS"
            | "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Field::Address,
            "REQUESTED_SERVER_NAME" => Field::Sni,
            "ROUTE_NAME" => Field::RouteName,
            "GRPC_STATUS" | "GRPC_STATUS_NUMBER" => Field::GrpcStatus,
            "UPSTREAM_REQUEST_ATTEMPT_COUNT" => Field::Attempts,
            "TRACE_ID" => Field::TraceId,
            "DOWNSTREAM_PEER_URI_SAN" => Field::DownstreamPeer,
            "UPSTREAM_PEER_URI_SAN" => Field::UpstreamPeer,
            "UPSTREAM_TLS_VERSION" => Field::UpstreamTls,
            "REQ" => match header_name(argument).as_str() {
                ":method" => Field::Method,
                ":path" | "x-envoy-original-path" => Field::Path,
                ":authority" | "host" => Field::Authority,
                "x-request-id" => Field::RequestId,
                "traceparent" | "x-b3-traceid" => Field::TraceId,
                _ => Field::Other,
            },
            "RESP" | "TRAILER" if header_name(argument) == "grpc-status" => Field::GrpcStatus,
            "RESP" if header_name(argument) == "x-envoy-upstream-service-time" => Field::Number,
            _ => Field::Other,
        }
    }

    /// The field a key of a JSON or `key=value` log stands for: Istio's JSON keys in every era
    /// and the names users give them (`status`, `response_flag`, `status_details`, `upstream`…),
    /// compared as lowercase snake case.
    pub(crate) fn of_key(key: &str) -> Field {
        // Most keys already are lowercase snake case (Istio's are): no copy for those.
        let normalised;
        let key = if key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            key
        } else {
            normalised = normalise_key(key);
            normalised.as_str()
        };
        match key {
            "start_time" | "timestamp" | "time" | "start" | "ts" | "request_start_time" => {
                Field::StartTime
            }
            "method" | "request_method" | "http_method" => Field::Method,
            "path" | "x_envoy_original_path" | "request_path" | "uri" | "url_path" => Field::Path,
            "protocol" | "request_protocol" | "http_protocol" => Field::Protocol,
            "response_code" | "status" | "status_code" | "code" | "http_status"
            | "response_status" | "http_status_code" => Field::Code,
            "response_flags"
            | "response_flag"
            | "flags"
            | "envoy_flags"
            | "response_flags_long" => Field::Flags,
            "response_code_details"
            | "status_details"
            | "code_details"
            | "details"
            | "response_details" => Field::Details,
            "connection_termination_details" | "termination_details" => Field::TerminationDetails,
            "upstream_transport_failure_reason"
            | "transport_failure_reason"
            | "upstream_failure"
            | "upstream_failure_reason" => Field::TransportFailure,
            "bytes_sent" | "response_bytes" => Field::BytesSent,
            "duration" | "duration_ms" | "request_duration" | "latency" | "latency_ms"
            | "response_time" | "elapsed" => Field::Duration,
            "request_id" | "x_request_id" | "requestid" | "req_id" => Field::RequestId,
            "authority" | "host" | "request_authority" | "http_host" => Field::Authority,
            "upstream_host" | "upstream_address" | "upstream" | "upstream_remote_address" => {
                Field::UpstreamHost
            }
            "upstream_cluster" | "upstream_cluster_raw" | "cluster" | "cluster_name" => {
                Field::Cluster
            }
            "downstream_remote_address"
            | "source_address"
            | "client_address"
            | "downstream_address"
            | "remote_address"
            | "client_ip" => Field::SourceAddress,
            "requested_server_name" | "sni" | "server_name" => Field::Sni,
            "route_name" | "route" => Field::RouteName,
            "grpc_status" | "grpc_status_code" | "grpc_code" => Field::GrpcStatus,
            "upstream_request_attempt_count"
            | "attempts"
            | "attempt_count"
            | "retries_attempts" => Field::Attempts,
            "trace_id" | "traceparent" | "x_b3_traceid" | "traceid" => Field::TraceId,
            "downstream_peer_uri_san" | "downstream_peer_principal" | "source_principal" => {
                Field::DownstreamPeer
            }
            "upstream_peer_uri_san" | "upstream_peer_principal" => Field::UpstreamPeer,
            "upstream_tls_version" => Field::UpstreamTls,
            "bytes_received" | "upstream_service_time" => Field::Number,
            _ => Field::Other,
        }
    }
}

/// Longest path kept, as the filter keeps it.
const MAX_PATH_BYTES: usize = 512;

/// `X-ENVOY-ORIGINAL-PATH?:PATH` → `x-envoy-original-path` (the first choice is the one Envoy
/// prints when present; both are paths).
fn header_name(argument: &str) -> String {
    argument
        .split('?')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `responseCode`, `Response-Code`, `response.code` → `response_code`.
pub(crate) fn normalise_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    let mut previous_lower = false;
    for c in key.trim().chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c == '-' || c == '.' || c == ' ' || c == '@' {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            previous_lower = false;
        } else {
            out.push(c);
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out.trim_matches('_').to_owned()
}

/// `UF,URX` (or `-`) → the bitmask; also Envoy's long names (`UpstreamConnectionFailure`).
/// `None` when any part is not a flag: that is how a flags field is recognised.
pub(crate) fn parse_flags(value: &str) -> Option<u64> {
    if value == "-" {
        return Some(0);
    }
    let mut bits = 0;
    for name in value.split(',') {
        let name = name.trim();
        bits |= crate::flags::parse(name).or_else(|| long_flag(name))?;
    }
    Some(bits)
}

/// Envoy's `%RESPONSE_FLAGS_LONG%` names for the flags worth explaining.
fn long_flag(name: &str) -> Option<u64> {
    const LONG: &[(&str, &str)] = &[
        ("FailedLocalHealthCheck", "LH"),
        ("NoHealthyUpstream", "UH"),
        ("UpstreamRequestTimeout", "UT"),
        ("LocalReset", "LR"),
        ("UpstreamRemoteReset", "UR"),
        ("UpstreamConnectionFailure", "UF"),
        ("UpstreamConnectionTermination", "UC"),
        ("UpstreamOverflow", "UO"),
        ("NoRouteFound", "NR"),
        ("DelayInjected", "DI"),
        ("FaultInjected", "FI"),
        ("RateLimited", "RL"),
        ("UnauthorizedExternalService", "UAEX"),
        ("RateLimitServiceError", "RLSE"),
        ("DownstreamConnectionTermination", "DC"),
        ("UpstreamRetryLimitExceeded", "URX"),
        ("StreamIdleTimeout", "SI"),
        ("InvalidEnvoyRequestHeaders", "IH"),
        ("DownstreamProtocolError", "DPE"),
        ("UpstreamMaxStreamDurationReached", "UMSDR"),
        ("ResponseFromCacheFilter", "RFCF"),
        ("NoFilterConfigFound", "NFCF"),
        ("DurationTimeout", "DT"),
        ("UpstreamProtocolError", "UPE"),
        ("NoClusterFound", "NC"),
        ("OverloadManagerTerminated", "OM"),
        ("DnsResolutionFailed", "DF"),
        ("DropOverload", "DO"),
        ("DownstreamRemoteReset", "DR"),
        ("UnconditionalDropOverload", "UDO"),
    ];
    let (_, short) = LONG.iter().find(|(long, _)| *long == name)?;
    crate::flags::parse(short)
}

/// `HTTP/1.1`, `HTTP/2`, `HTTP/3`, `HTTP/1.0`.
pub(crate) fn is_protocol(value: &str) -> bool {
    value
        .strip_prefix("HTTP/")
        .is_some_and(|version| matches!(version, "1.0" | "1.1" | "2" | "2.0" | "3" | "3.0"))
}

/// `%START_TIME%` in Envoy's default form, or seconds / milliseconds since the epoch (custom
/// `%START_TIME(%s)%` formats).
fn parse_start(value: &str) -> Option<u64> {
    if let Some(nanos) = crate::time::parse_rfc3339(value) {
        return Some(nanos);
    }
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let whole: u64 = whole.parse().ok()?;
    // Seconds have ten digits for this century, milliseconds thirteen.
    let (seconds, extra_millis) = if whole >= 100_000_000_000 {
        (whole / 1000, whole % 1000)
    } else {
        (whole, 0)
    };
    let fraction_nanos = if fraction.is_empty() || whole >= 100_000_000_000 {
        0
    } else {
        let digits: String = fraction.chars().take(9).collect();
        let scale = 10u64.pow(9 - u32::try_from(digits.len()).unwrap_or(9));
        digits.parse::<u64>().ok()? * scale
    };
    seconds
        .checked_mul(1_000_000_000)?
        .checked_add(extra_millis * 1_000_000 + fraction_nanos)
}

/// Milliseconds (`12`, `12ms`, `1.5s`, `250us`) → nanoseconds.
pub(crate) fn parse_millis(value: &str) -> Option<u64> {
    let value = value.trim();
    let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1_000_000.0)
    } else if let Some(n) = value
        .strip_suffix("us")
        .or_else(|| value.strip_suffix("µs"))
    {
        (n, 1_000.0)
    } else if let Some(n) = value.strip_suffix("ns") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1_000_000_000.0)
    } else {
        (value, 1_000_000.0)
    };
    let number: f64 = number.trim().parse().ok()?;
    // Bounded far below u64::MAX nanoseconds, so the cast cannot saturate.
    (number.is_finite() && (0.0..1e12).contains(&number)).then_some((number * scale) as u64)
}

fn strip_query(path: &str) -> &str {
    match memchr::memchr(b'?', path.as_bytes()) {
        Some(at) => &path[..at],
        None => path,
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The cluster's real name: newer Envoy prints a cluster's alt stat name for
/// `%UPSTREAM_CLUSTER%` (`outbound;9080;;reviews…`, per Istio's legacy-format comment) where
/// `%UPSTREAM_CLUSTER_RAW%` has `outbound|9080||reviews…`.
fn cluster_name(value: &str) -> String {
    if (value.starts_with("outbound;") || value.starts_with("inbound;")) && !value.contains('|') {
        value.replace(';', "|")
    } else {
        value.to_owned()
    }
}

/// The trace id of a W3C `traceparent` (`00-<trace>-<span>-01`), else the value.
fn trace_id(value: &str) -> &str {
    let mut parts = value.split('-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(version), Some(trace), Some(_)) if version.len() == 2 && trace.len() == 32 => trace,
        _ => value,
    }
}

/// `%GRPC_STATUS%` is a name (`UNAVAILABLE`), a number, or (Envoy ≥ 1.28) a camel-case name.
pub(crate) fn grpc_status(value: &str) -> Option<u32> {
    if let Ok(number) = value.parse::<u32>() {
        return (number <= 16).then_some(number);
    }
    let snake = normalise_key(value);
    crate::decode::GRPC_STATUS_NAMES
        .iter()
        .position(|name| name.eq_ignore_ascii_case(&snake))
        .and_then(|i| u32::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_every_spelling() {
        for key in [
            "response_code",
            "responseCode",
            "Response-Code",
            "status",
            "code",
        ] {
            assert_eq!(Field::of_key(key), Field::Code, "{key}");
        }
        assert_eq!(Field::of_key("response_flag"), Field::Flags);
        assert_eq!(Field::of_key("status_details"), Field::Details);
        assert_eq!(Field::of_key("upstream_cluster_raw"), Field::Cluster);
        assert_eq!(Field::of_key("@timestamp"), Field::StartTime);
        assert_eq!(Field::of_key("user_agent"), Field::Other);
    }

    #[test]
    fn flags_short_long_and_not_flags() {
        assert_eq!(parse_flags("UF,URX"), Some((1 << 5) | (1 << 15)));
        assert_eq!(parse_flags("-"), Some(0));
        assert_eq!(parse_flags("UpstreamConnectionFailure"), Some(1 << 5));
        assert_eq!(parse_flags("GET"), None);
        assert_eq!(parse_flags("200"), None);
    }

    #[test]
    fn values() {
        assert_eq!(parse_millis("12"), Some(12_000_000));
        assert_eq!(parse_millis("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_millis("nope"), None);
        assert_eq!(grpc_status("UNAVAILABLE"), Some(14));
        assert_eq!(grpc_status("Unavailable"), Some(14));
        assert_eq!(grpc_status("DeadlineExceeded"), Some(4));
        assert_eq!(grpc_status("14"), Some(14));
        assert_eq!(grpc_status("99"), None);
        assert_eq!(
            cluster_name("outbound;9080;;reviews.shop.svc.cluster.local"),
            "outbound|9080||reviews.shop.svc.cluster.local"
        );
        assert_eq!(
            parse_start("1700000000.123"),
            Some(1_700_000_000_123_000_000)
        );
        assert_eq!(
            parse_start("1700000000123"),
            Some(1_700_000_000_123_000_000)
        );
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(ALL & bit(RecordField::NcFlag) == 0);
        assert!(ALL & bit(RecordField::BytesSent) != 0);
    }
}
