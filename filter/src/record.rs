//! Decision records: decodes the raw property values read in `on_log` (Envoy's encodings: 8-byte
//! little-endian integers, 1-byte bools, raw UTF-8 strings, serialized protobuf metadata) into a
//! `meshwhy.v1.DecisionRecord`, and extracts Istio provenance from xDS metadata.

use meshwhy_proto::v1::{DecisionRecord, Direction};
use prost::Message;

use crate::classify::Outcome;
use crate::headers::RequestHeaders;

/// Longest path kept, in bytes.
pub const MAX_PATH_BYTES: usize = 512;
/// Longest identifier-like string kept (names, addresses, ids), in bytes.
pub const MAX_SHORT_BYTES: usize = 256;
/// Longest free-text string kept (details, failure reasons, principals, provenance), in bytes.
pub const MAX_LONG_BYTES: usize = 1024;
/// Longest trace id kept, in bytes (W3C ids are 32 hex digits).
pub const MAX_TRACE_ID_BYTES: usize = 64;

/// Decodes an Envoy integer property (8 bytes little endian; shorter values are zero-extended).
pub fn decode_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    let mut buf = [0u8; 8];
    buf.iter_mut().zip(bytes).for_each(|(dst, src)| *dst = *src);
    Some(u64::from_le_bytes(buf))
}

/// Decodes an integer property into a u32, saturating.
pub fn decode_u32(bytes: &[u8]) -> Option<u32> {
    decode_u64(bytes).map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}

/// Decodes a timestamp or duration (int64 nanoseconds); negative values become 0.
pub fn decode_nanos(bytes: &[u8]) -> u64 {
    decode_u64(bytes)
        .filter(|v| i64::try_from(*v).is_ok())
        .unwrap_or(0)
}

/// Decodes a bool property (1 byte).
pub fn decode_bool(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| *b != 0)
}

/// Cuts `s` to at most `max` bytes, at a char boundary.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        s.truncate(s.floor_char_boundary(max));
    }
}

/// A raw value as a string: UTF-8 (invalid sequences replaced), at most `max` bytes.
pub fn decode_string(bytes: Vec<u8>, max: usize) -> String {
    let mut s = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    truncate(&mut s, max);
    s
}

fn opt_string(bytes: Option<Vec<u8>>, max: usize) -> String {
    bytes.map(|b| decode_string(b, max)).unwrap_or_default()
}

/// Everything before the first `?`: paths are recorded without their query string.
pub fn strip_query(path: &[u8]) -> &[u8] {
    match path.iter().position(|b| *b == b'?') {
        Some(end) => path.get(..end).unwrap_or(path),
        None => path,
    }
}

/// Trace id: the second dash-separated field of `traceparent`, else `x-b3-traceid`.
pub fn trace_id(traceparent: Option<&[u8]>, b3_trace_id: Option<&[u8]>) -> String {
    let from_traceparent = traceparent
        .and_then(|value| value.split(|b| *b == b'-').nth(1))
        .filter(|id| !id.is_empty());
    match from_traceparent.or(b3_trace_id.filter(|id| !id.is_empty())) {
        Some(id) => decode_string(id.to_vec(), MAX_TRACE_ID_BYTES),
        None => String::new(),
    }
}

/// Maps `xds.listener_direction` (1 inbound, 2 outbound) to the wire enum.
pub fn direction(value: Option<u64>) -> Direction {
    match value {
        Some(1) => Direction::Inbound,
        Some(2) => Direction::Outbound,
        _ => Direction::Unspecified,
    }
}

/// `google.protobuf.Struct` in its wire form: `map<string, Value> fields = 1` is a repeated
/// key/value entry. A list instead of a map keeps map code out of the module.
#[derive(Clone, PartialEq, Message)]
pub struct Struct {
    /// The entries, in wire order.
    #[prost(message, repeated, tag = "1")]
    pub fields: Vec<StructEntry>,
}

/// One `Struct` entry.
#[derive(Clone, PartialEq, Message)]
pub struct StructEntry {
    /// Field name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Field value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Value>,
}

/// `google.protobuf.Value`, only the kinds meshwhy reads: strings (3) and structs (5). Numbers,
/// bools, lists and nulls are skipped as unknown fields.
#[derive(Clone, PartialEq, Message)]
pub struct Value {
    /// `string_value`.
    #[prost(string, optional, tag = "3")]
    pub string_value: Option<String>,
    /// `struct_value`.
    #[prost(message, optional, boxed, tag = "5")]
    pub struct_value: Option<Box<Struct>>,
}

impl Struct {
    /// The value of `key` (the last one wins, as in a protobuf map).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields
            .iter()
            .rev()
            .find(|e| e.key == key)
            .and_then(|e| e.value.as_ref())
    }

    /// The string value of `key`, when it is a non-empty string.
    pub fn string(&self, key: &str) -> Option<&str> {
        self.get(key)
            .and_then(|v| v.string_value.as_deref())
            .filter(|s| !s.is_empty())
    }
}

/// `envoy.config.core.v3.Metadata`: only `map<string, Struct> filter_metadata = 1`, in its wire
/// form; `typed_filter_metadata` is skipped.
#[derive(Clone, PartialEq, Message)]
pub struct Metadata {
    /// Filter name → structured metadata.
    #[prost(message, repeated, tag = "1")]
    pub filter_metadata: Vec<MetadataEntry>,
}

/// One `filter_metadata` entry.
#[derive(Clone, PartialEq, Message)]
pub struct MetadataEntry {
    /// Filter name, e.g. `istio`.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Its metadata.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Struct>,
}

impl Metadata {
    /// Decodes serialized metadata; `None` when absent or malformed.
    pub fn decode_opt(bytes: Option<&[u8]>) -> Option<Self> {
        bytes.and_then(|b| Self::decode(b).ok())
    }

    /// The string at `filter_metadata[filter].fields[key]`, or empty.
    pub fn string(&self, filter: &str, key: &str, max: usize) -> String {
        let value = self
            .filter_metadata
            .iter()
            .rev()
            .find(|e| e.key == filter)
            .and_then(|e| e.value.as_ref())
            .and_then(|s| s.string(key));
        let mut s = value.map(str::to_owned).unwrap_or_default();
        truncate(&mut s, max);
        s
    }
}

/// What the configuration fixes per (route, cluster): which Istio resources produced them, the
/// virtual host and the listener's direction. Cached per (route, cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// `istio.config` of the route metadata (the VirtualService path).
    pub route_provenance: String,
    /// `istio.config` of the cluster metadata (the DestinationRule path).
    pub cluster_provenance: String,
    /// `istio.subset` of the cluster metadata.
    pub cluster_subset: String,
    /// Virtual host seen with the route when this was read.
    pub virtual_host: String,
    /// `xds.listener_direction` seen with the route (1 inbound, 2 outbound).
    pub listener_direction: Option<u64>,
}

impl Provenance {
    /// Extracts provenance from serialized `xds.route_metadata` and `xds.cluster_metadata`.
    pub fn from_metadata(
        route_metadata: Option<&[u8]>,
        cluster_metadata: Option<&[u8]>,
        virtual_host: String,
        listener_direction: Option<u64>,
    ) -> Self {
        let route = Metadata::decode_opt(route_metadata);
        let cluster = Metadata::decode_opt(cluster_metadata);
        Self {
            route_provenance: route
                .map(|m| m.string("istio", "config", MAX_LONG_BYTES))
                .unwrap_or_default(),
            cluster_provenance: cluster
                .as_ref()
                .map(|m| m.string("istio", "config", MAX_LONG_BYTES))
                .unwrap_or_default(),
            cluster_subset: cluster
                .map(|m| m.string("istio", "subset", MAX_SHORT_BYTES))
                .unwrap_or_default(),
            virtual_host,
            listener_direction,
        }
    }

    /// Whether the request came in on an outbound listener (the app calling out): its
    /// downstream is the app's own plaintext connection, so there is nothing to learn from it.
    pub fn is_outbound(&self) -> bool {
        self.listener_direction == Some(2)
    }
}

/// What a record says about the picked upstream host: its connection's TLS version and peer
/// identity and the endpoint's `tlsMode`. Fixed per (cluster, host) while its connections last,
/// so it is cached with the provenance's short expiry — except when Envoy flagged the request,
/// where the connection itself may be the explanation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamFacts {
    /// `upstream.tls_version` (empty: plaintext, or no connection).
    pub tls_version: String,
    /// `upstream.uri_san_peer_certificate`.
    pub peer_principal: String,
    /// `envoy.transport_socket_match.tlsMode` of `xds.upstream_host_metadata`.
    pub endpoint_tls_mode: String,
}

impl UpstreamFacts {
    /// Decodes the three raw values.
    pub fn decode(
        tls_version: Option<Vec<u8>>,
        peer_principal: Option<Vec<u8>>,
        host_metadata: Option<&[u8]>,
    ) -> Self {
        Self {
            tls_version: opt_string(tls_version, MAX_SHORT_BYTES),
            peer_principal: opt_string(peer_principal, MAX_LONG_BYTES),
            endpoint_tls_mode: endpoint_tls_mode(host_metadata),
        }
    }
}

/// `envoy.transport_socket_match.tlsMode` of serialized `xds.upstream_host_metadata`; empty when
/// the endpoint has no such metadata (Envoy then fails the read, and the glue passes `None`).
pub fn endpoint_tls_mode(upstream_host_metadata: Option<&[u8]>) -> String {
    Metadata::decode_opt(upstream_host_metadata)
        .map(|m| m.string("envoy.transport_socket_match", "tlsMode", MAX_SHORT_BYTES))
        .unwrap_or_default()
}

/// Raw per-request property and header values for one full record, as the host returned them
/// (`None` when absent). Filled by the glue in `on_log`; what is fixed per route or upstream
/// host comes separately, from the caches.
#[derive(Debug, Clone, Default)]
pub struct RawRecord {
    /// The host's clock in `on_log`, nanoseconds since the epoch: the start time is this minus
    /// `request.duration` (a clock call is cheaper than reading `request.time`, and `on_log`
    /// runs as the stream completes, so the two agree to well under a millisecond).
    pub now_unix_nanos: u64,
    /// The request headers a record uses.
    pub headers: RequestHeaders,
    /// `response.code_details`.
    pub code_details: Option<Vec<u8>>,
    /// `upstream.transport_failure_reason`.
    pub transport_failure_reason: Option<Vec<u8>>,
    /// `xds.route_name`.
    pub route_name: Option<Vec<u8>>,
    /// `xds.cluster_name`.
    pub cluster: Option<Vec<u8>>,
    /// `upstream.address`.
    pub upstream_address: Option<Vec<u8>>,
    /// `upstream.request_attempt_count`.
    pub attempt_count: Option<Vec<u8>>,
    /// `request.duration`.
    pub duration: Option<Vec<u8>>,
    /// `connection.mtls`.
    pub downstream_mtls: Option<Vec<u8>>,
    /// `connection.uri_san_peer_certificate`.
    pub downstream_peer_principal: Option<Vec<u8>>,
    /// `source.address`.
    pub source_address: Option<Vec<u8>>,
}

/// Builds the record from the request's own values and the cached per-route and per-host facts.
pub fn build(
    raw: RawRecord,
    outcome: &Outcome,
    provenance: Provenance,
    upstream: UpstreamFacts,
    sampled_success: bool,
) -> DecisionRecord {
    let headers = raw.headers;
    let duration_nanos = raw.duration.as_deref().map(decode_nanos).unwrap_or(0);
    let path = headers
        .original_path
        .as_deref()
        .or(headers.path.as_deref())
        .map(strip_query)
        .unwrap_or_default()
        .to_vec();
    DecisionRecord {
        start_time_unix_nanos: raw.now_unix_nanos.saturating_sub(duration_nanos),
        request_id: opt_string(headers.request_id, MAX_SHORT_BYTES),
        trace_id: trace_id(
            headers.traceparent.as_deref(),
            headers.b3_trace_id.as_deref(),
        ),
        direction: direction(provenance.listener_direction) as i32,
        method: opt_string(headers.method, MAX_SHORT_BYTES),
        authority: opt_string(headers.authority, MAX_SHORT_BYTES),
        path: decode_string(path, MAX_PATH_BYTES),
        response_code: outcome.code.unwrap_or(0),
        response_flags: outcome.flags,
        response_code_details: opt_string(raw.code_details, MAX_LONG_BYTES),
        transport_failure_reason: opt_string(raw.transport_failure_reason, MAX_LONG_BYTES),
        route_name: opt_string(raw.route_name, MAX_SHORT_BYTES),
        virtual_host: provenance.virtual_host,
        cluster: opt_string(raw.cluster, MAX_SHORT_BYTES),
        upstream_host: opt_string(raw.upstream_address, MAX_SHORT_BYTES),
        attempt_count: raw
            .attempt_count
            .as_deref()
            .and_then(decode_u32)
            .unwrap_or(0),
        duration_nanos,
        downstream_mtls: raw.downstream_mtls.as_deref().is_some_and(decode_bool),
        downstream_peer_principal: opt_string(raw.downstream_peer_principal, MAX_LONG_BYTES),
        upstream_tls_version: upstream.tls_version,
        upstream_peer_principal: upstream.peer_principal,
        route_provenance: provenance.route_provenance,
        cluster_provenance: provenance.cluster_provenance,
        cluster_subset: provenance.cluster_subset,
        endpoint_tls_mode: upstream.endpoint_tls_mode,
        grpc_status: if outcome.grpc {
            outcome.grpc_status
        } else {
            None
        },
        sampled_success,
        source_address: opt_string(raw.source_address, MAX_SHORT_BYTES),
        // The rest is what access-log lines add (origin, protocol, SNI, bytes): the filter reads
        // every field it sends, so nothing is marked unknown.
        ..DecisionRecord::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn string_value(s: &str) -> Value {
        Value {
            string_value: Some(s.to_owned()),
            struct_value: None,
        }
    }

    pub(crate) fn entry(key: &str, value: Value) -> StructEntry {
        StructEntry {
            key: key.to_owned(),
            value: Some(value),
        }
    }

    pub(crate) fn string_struct(fields: &[(&str, &str)]) -> Struct {
        Struct {
            fields: fields
                .iter()
                .map(|(k, v)| entry(k, string_value(v)))
                .collect(),
        }
    }

    pub(crate) fn metadata(entries: &[(&str, &[(&str, &str)])]) -> Vec<u8> {
        let filter_metadata = entries
            .iter()
            .map(|(filter, fields)| MetadataEntry {
                key: (*filter).to_owned(),
                value: Some(string_struct(fields)),
            })
            .collect();
        Metadata { filter_metadata }.encode_to_vec()
    }

    #[test]
    fn struct_is_wire_compatible_with_a_map_of_values() {
        // google.protobuf.Struct {"a": number 1.5, "b": "x", "a": "last"} as protoc would write
        // it: entries are messages {1: key, 2: Value}; the number kind (2) is skipped.
        let number = [0x11, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]; // field 2, fixed64 1.5
        let mut bytes = Vec::new();
        for (key, value) in [
            (b"a".as_slice(), number.to_vec()),
            (b"b", vec![0x1a, 1, b'x']),
            (b"a", vec![0x1a, 4, b'l', b'a', b's', b't']),
        ] {
            let mut entry = vec![0x0a, key.len() as u8];
            entry.extend_from_slice(key);
            entry.push(0x12);
            entry.push(value.len() as u8);
            entry.extend_from_slice(&value);
            bytes.push(0x0a);
            bytes.push(entry.len() as u8);
            bytes.extend_from_slice(&entry);
        }
        let decoded = Struct::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded.string("b"), Some("x"));
        assert_eq!(decoded.string("a"), Some("last"));
        assert_eq!(decoded.string("missing"), None);
    }

    fn le(v: u64) -> Option<Vec<u8>> {
        Some(v.to_le_bytes().to_vec())
    }

    fn s(v: &str) -> Option<Vec<u8>> {
        Some(v.as_bytes().to_vec())
    }

    #[test]
    fn integers_decode_little_endian() {
        assert_eq!(decode_u64(&503u64.to_le_bytes()), Some(503));
        assert_eq!(decode_u64(&[1]), Some(1));
        assert_eq!(decode_u64(&[]), None);
        assert_eq!(decode_u64(&[0; 9]), None);
        assert_eq!(decode_u32(&u64::MAX.to_le_bytes()), Some(u32::MAX));
        assert_eq!(decode_nanos(&(-5i64).to_le_bytes()), 0);
        assert_eq!(
            decode_nanos(&1_700_000_000_000_000_000u64.to_le_bytes()),
            1_700_000_000_000_000_000
        );
        assert!(decode_bool(&[1]));
        assert!(!decode_bool(&[0]));
        assert!(!decode_bool(&[]));
    }

    #[test]
    fn strings_are_lossy_and_truncated_at_char_boundaries() {
        assert_eq!(decode_string(b"via_upstream".to_vec(), 100), "via_upstream");
        assert_eq!(decode_string(vec![b'a', 0xff, b'b'], 100), "a\u{fffd}b");
        assert_eq!(decode_string("héllo".as_bytes().to_vec(), 2), "h");
        assert_eq!(decode_string("héllo".as_bytes().to_vec(), 3), "hé");
        let long = "x".repeat(2000);
        assert_eq!(
            decode_string(long.into_bytes(), MAX_LONG_BYTES).len(),
            MAX_LONG_BYTES
        );
    }

    #[test]
    fn query_strings_are_stripped() {
        assert_eq!(strip_query(b"/app503?token=secret"), b"/app503");
        assert_eq!(strip_query(b"/plain"), b"/plain");
        assert_eq!(strip_query(b"?only"), b"");
    }

    #[test]
    fn trace_ids() {
        let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".as_slice();
        assert_eq!(
            trace_id(Some(tp), Some(b"b3")),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            trace_id(None, Some(b"80f198ee56343ba864fe8b2a57d3eff7")),
            "80f198ee56343ba864fe8b2a57d3eff7"
        );
        assert_eq!(trace_id(Some(b"garbage"), Some(b"b3id")), "b3id");
        assert_eq!(trace_id(None, None), "");
    }

    #[test]
    fn directions() {
        assert_eq!(direction(Some(1)), Direction::Inbound);
        assert_eq!(direction(Some(2)), Direction::Outbound);
        assert_eq!(direction(Some(0)), Direction::Unspecified);
        assert_eq!(direction(None), Direction::Unspecified);
    }

    #[test]
    fn istio_provenance_is_extracted() {
        let route = metadata(&[(
            "istio",
            &[(
                "config",
                "/apis/networking.istio.io/v1/namespaces/shop/virtual-service/reviews",
            )],
        )]);
        let cluster = metadata(&[(
            "istio",
            &[
                (
                    "config",
                    "/apis/networking.istio.io/v1/namespaces/shop/destination-rule/reviews",
                ),
                ("subset", "v2"),
            ],
        )]);
        let provenance =
            Provenance::from_metadata(Some(&route), Some(&cluster), "reviews:9080".into(), Some(2));
        assert_eq!(
            provenance,
            Provenance {
                route_provenance:
                    "/apis/networking.istio.io/v1/namespaces/shop/virtual-service/reviews".into(),
                cluster_provenance:
                    "/apis/networking.istio.io/v1/namespaces/shop/destination-rule/reviews".into(),
                cluster_subset: "v2".into(),
                virtual_host: "reviews:9080".into(),
                listener_direction: Some(2),
            }
        );
        assert!(provenance.is_outbound());
        assert_eq!(
            Provenance::from_metadata(None, Some(b"\xff\xff"), String::new(), None),
            Provenance::default()
        );
    }

    #[test]
    fn tls_mode_from_endpoint_metadata() {
        let md = metadata(&[
            ("envoy.transport_socket_match", &[("tlsMode", "istio")]),
            ("istio", &[("workload", "a;b")]),
        ]);
        assert_eq!(endpoint_tls_mode(Some(&md)), "istio");
        assert_eq!(endpoint_tls_mode(None), "");
        let other = metadata(&[("istio", &[("workload", "a;b")])]);
        assert_eq!(endpoint_tls_mode(Some(&other)), "");
    }

    #[test]
    fn builds_a_full_record() {
        let raw = RawRecord {
            now_unix_nanos: 1_700_000_000_125_000_000,
            headers: RequestHeaders {
                request_id: s("req-1"),
                traceparent: s("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                method: s("GET"),
                authority: s("reviews:9080"),
                original_path: s("/orig?token=secret"),
                path: s("/rewritten"),
                ..Default::default()
            },
            code_details: s("upstream_reset_before_response_started{remote_connection_failure}"),
            transport_failure_reason: s("delayed connect error: Connection refused"),
            route_name: s("reviews-route"),
            cluster: s("outbound|9080|v2|reviews.shop.svc.cluster.local"),
            upstream_address: s("10.0.0.9:9080"),
            attempt_count: le(3),
            duration: le(1_500_000),
            downstream_mtls: Some(vec![1]),
            downstream_peer_principal: s("spiffe://cluster.local/ns/shop/sa/productpage"),
            source_address: s("10.0.0.7:51234"),
        };
        let outcome = Outcome {
            code: Some(503),
            flags: (1 << 5) | (1 << 15),
            grpc: false,
            grpc_status: Some(2),
        };
        let provenance = Provenance {
            route_provenance: "vs".into(),
            cluster_provenance: "dr".into(),
            cluster_subset: "v2".into(),
            virtual_host: "reviews.shop.svc.cluster.local:9080".into(),
            listener_direction: Some(2),
        };
        let host_metadata = metadata(&[("envoy.transport_socket_match", &[("tlsMode", "istio")])]);
        let upstream = UpstreamFacts::decode(
            s("TLSv1.3"),
            s("spiffe://cluster.local/ns/shop/sa/reviews"),
            Some(&host_metadata),
        );
        let record = build(raw, &outcome, provenance, upstream, false);
        assert_eq!(
            record,
            DecisionRecord {
                start_time_unix_nanos: 1_700_000_000_123_500_000,
                request_id: "req-1".into(),
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                direction: Direction::Outbound as i32,
                method: "GET".into(),
                authority: "reviews:9080".into(),
                path: "/orig".into(),
                response_code: 503,
                response_flags: (1 << 5) | (1 << 15),
                response_code_details:
                    "upstream_reset_before_response_started{remote_connection_failure}".into(),
                transport_failure_reason: "delayed connect error: Connection refused".into(),
                route_name: "reviews-route".into(),
                virtual_host: "reviews.shop.svc.cluster.local:9080".into(),
                cluster: "outbound|9080|v2|reviews.shop.svc.cluster.local".into(),
                upstream_host: "10.0.0.9:9080".into(),
                attempt_count: 3,
                duration_nanos: 1_500_000,
                downstream_mtls: true,
                downstream_peer_principal: "spiffe://cluster.local/ns/shop/sa/productpage".into(),
                upstream_tls_version: "TLSv1.3".into(),
                upstream_peer_principal: "spiffe://cluster.local/ns/shop/sa/reviews".into(),
                route_provenance: "vs".into(),
                cluster_provenance: "dr".into(),
                cluster_subset: "v2".into(),
                endpoint_tls_mode: "istio".into(),
                grpc_status: None,
                sampled_success: false,
                source_address: "10.0.0.7:51234".into(),
                ..DecisionRecord::default()
            }
        );
    }

    #[test]
    fn sparse_record_for_a_disconnect() {
        let raw = RawRecord {
            headers: RequestHeaders {
                path: s("/dc?x=1"),
                ..Default::default()
            },
            ..Default::default()
        };
        let outcome = Outcome {
            code: None,
            flags: 1 << 14,
            grpc: true,
            grpc_status: Some(1),
        };
        let provenance = Provenance {
            virtual_host: "local:80".into(),
            ..Default::default()
        };
        let record = build(raw, &outcome, provenance, UpstreamFacts::default(), false);
        assert_eq!(record.response_code, 0);
        assert_eq!(record.path, "/dc");
        assert_eq!(record.virtual_host, "local:80");
        assert_eq!(record.grpc_status, Some(1));
        assert_eq!(record.direction, Direction::Unspecified as i32);
        assert_eq!(record.endpoint_tls_mode, "");
    }

    #[test]
    fn long_paths_are_truncated() {
        let raw = RawRecord {
            headers: RequestHeaders {
                path: Some(vec![b'a'; 4000]),
                ..Default::default()
            },
            ..Default::default()
        };
        let record = build(
            raw,
            &Outcome::default(),
            Provenance::default(),
            UpstreamFacts::default(),
            true,
        );
        assert_eq!(record.path.len(), MAX_PATH_BYTES);
        assert!(record.sampled_success);
    }
}
