//! The reader's table: hand-written lines of every built-in format era, of JSON and custom
//! formats, of every salvage shape and paste artefact, each with the origin, the fields it must
//! recover, what must stay unknown, and the cause the engine gives it.

use meshwhy_proto::v1::{DecisionRecord, Direction, ProxyIdentity, RecordField};

use super::{LogReader, field::bit};

const UF: u64 = 1 << 5;
const UC: u64 = 1 << 6;
const UH: u64 = 1 << 1;
const NR: u64 = 1 << 8;
const URX: u64 = 1 << 15;
const UT: u64 = 1 << 2;

/// One row: a line, where it must be read from, and what must come out.
struct Row {
    name: &'static str,
    line: &'static str,
    origin: &'static str,
    check: fn(&DecisionRecord),
    /// Fields that must stay unknown.
    unknown: &'static [RecordField],
    /// Fields that must be known.
    known: &'static [RecordField],
    cause: &'static str,
}

fn cause(record: &DecisionRecord) -> String {
    let proxy = ProxyIdentity::default();
    crate::explain::record_cause(&proxy, record)
        .map_or_else(|| "success".to_owned(), |c| c.id().to_owned())
}

const ROWS: &[Row] = &[
    Row {
        name: "istio 1.9+ text, UF,URX",
        line: r#"[2023-11-14T22:13:20.123Z] "GET /reviews/0?x=1 HTTP/1.1" 503 UF,URX upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed connect error: Connection refused" 0 91 2 - "-" "curl/8.5.0" "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab" "reviews:9080" "10.0.0.9:9080" outbound|9080||reviews.shop.svc.cluster.local - 10.96.12.3:9080 10.0.0.5:40000 - default"#,
        origin: "access-log:istio-1.9+",
        check: |r| {
            assert_eq!(r.start_time_unix_nanos, 1_700_000_000_123_000_000);
            assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/reviews/0"));
            assert_eq!((r.response_code, r.response_flags), (503, UF | URX));
            assert_eq!(
                r.transport_failure_reason,
                "delayed connect error: Connection refused"
            );
            assert_eq!(r.duration_nanos, 2_000_000);
            assert_eq!(r.request_id, "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab");
            assert_eq!(r.authority, "reviews:9080");
            assert_eq!(r.upstream_host, "10.0.0.9:9080");
            assert_eq!(r.cluster, "outbound|9080||reviews.shop.svc.cluster.local");
            assert_eq!(r.source_address, "10.0.0.5:40000");
            assert_eq!(r.route_name, "default");
            assert_eq!(r.protocol, "HTTP/1.1");
            assert_eq!(r.bytes_sent, 91);
            assert_eq!(r.direction, Direction::Outbound as i32);
        },
        unknown: &[
            RecordField::AttemptCount,
            RecordField::RouteProvenance,
            RecordField::VirtualHost,
            RecordField::EndpointTlsMode,
        ],
        known: &[
            RecordField::ResponseCodeDetails,
            RecordField::RouteName,
            RecordField::Cluster,
            RecordField::Direction,
        ],
        cause: "retries_exhausted",
    },
    Row {
        name: "istio 1.9+ text, inbound app 503 with mTLS SNI",
        line: r#"[2023-11-14T22:13:20.124Z] "GET /reviews/0 HTTP/1.1" 503 - via_upstream - "-" 0 19 1 1 "-" "curl/8.5.0" "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab" "reviews:9080" "10.0.0.9:9080" inbound|9080|| 127.0.0.6:51423 10.0.0.9:9080 10.0.0.5:40000 outbound_.9080_._.reviews.shop.svc.cluster.local default"#,
        origin: "access-log:istio-1.9+",
        check: |r| {
            assert_eq!(r.direction, Direction::Inbound as i32);
            assert_eq!(r.response_code_details, "via_upstream");
            assert_eq!(
                r.requested_server_name,
                "outbound_.9080_._.reviews.shop.svc.cluster.local"
            );
        },
        unknown: &[],
        known: &[RecordField::RequestedServerName],
        cause: "app_returned_error",
    },
    Row {
        name: "istio 1.23+ legacy alt stat name for the cluster",
        line: r#"[2024-09-01T00:00:00.000Z] "GET /r HTTP/2" 503 UH no_healthy_upstream - "-" 0 19 0 - "-" "grpc-go" "r-23" "reviews:9080" "-" outbound;9080;v2;reviews.shop.svc.cluster.local - 10.96.12.3:9080 10.0.0.5:40000 - default"#,
        origin: "access-log:istio-1.9+",
        check: |r| {
            assert_eq!(r.cluster, "outbound|9080|v2|reviews.shop.svc.cluster.local");
            assert_eq!(r.protocol, "HTTP/2");
        },
        unknown: &[],
        known: &[],
        cause: "no_healthy_upstream",
    },
    Row {
        name: "istio 1.8 text",
        line: r#"[2021-01-01T10:00:00.000Z] "GET /ratings HTTP/1.1" 503 UF "delayed connect error: 111" 0 91 1 - "-" "curl" "id-18" "ratings:9080" "10.0.0.7:9080" outbound|9080||ratings.shop.svc.cluster.local - 10.96.0.1:9080 10.0.0.5:1234 - default"#,
        origin: "access-log:istio-1.8",
        check: |r| {
            assert_eq!(r.transport_failure_reason, "delayed connect error: 111");
            assert_eq!(r.route_name, "default");
            assert_eq!(r.request_id, "id-18");
        },
        unknown: &[RecordField::ResponseCodeDetails, RecordField::NcFlag],
        known: &[RecordField::RouteName, RecordField::TransportFailureReason],
        cause: "upstream_connect_failed",
    },
    Row {
        name: "istio 1.3-1.7 text: mixer status and transport, two quoted fields",
        line: r#"[2020-05-01T10:00:00.000Z] "GET /ratings HTTP/1.1" 503 UC "-" "-" 70 95 0 - "-" "curl" "id-13" "ratings:9080" "10.0.0.7:9080" outbound|9080||ratings.shop.svc.cluster.local 10.0.0.5:3333 10.96.0.1:9080 10.0.0.5:1234 - default"#,
        origin: "access-log:istio-1.3-1.7",
        check: |r| {
            assert_eq!((r.response_code, r.response_flags), (503, UC));
            assert_eq!(r.bytes_sent, 95);
            assert_eq!(r.route_name, "default");
        },
        unknown: &[RecordField::ResponseCodeDetails, RecordField::NcFlag],
        known: &[RecordField::TransportFailureReason, RecordField::RouteName],
        cause: "upstream_connection_terminated",
    },
    Row {
        name: "istio 1.2 text: no route name",
        line: r#"[2019-07-01T10:00:00.000Z] "GET /ratings HTTP/1.1" 404 NR "-" "-" 0 0 0 - "-" "curl" "id-12" "ratings:9080" "-" - - 10.96.0.1:9080 10.0.0.5:1234 -"#,
        origin: "access-log:istio-1.2",
        check: |r| assert_eq!((r.response_code, r.response_flags), (404, NR)),
        unknown: &[
            RecordField::RouteName,
            RecordField::ResponseCodeDetails,
            RecordField::NcFlag,
        ],
        known: &[RecordField::TransportFailureReason],
        cause: "no_route",
    },
    Row {
        name: "istio 1.1 text: mixer status only",
        line: r#"[2019-04-01T10:00:00.000Z] "GET /ratings HTTP/1.1" 503 UH "-" 0 19 0 - "-" "curl" "id-11" "ratings:9080" "-" outbound|9080||ratings.shop.svc.cluster.local - 10.96.0.1:9080 10.0.0.5:1234 -"#,
        origin: "access-log:istio-1.1",
        check: |r| {
            assert_eq!((r.response_code, r.response_flags), (503, UH));
            assert_eq!(r.cluster, "outbound|9080||ratings.shop.svc.cluster.local");
        },
        unknown: &[
            RecordField::RouteName,
            RecordField::TransportFailureReason,
            RecordField::NcFlag,
        ],
        known: &[RecordField::Cluster],
        cause: "no_healthy_upstream",
    },
    Row {
        name: "istio 1.0.3 text: no space before the protocol",
        line: r#"[2018-10-01T10:00:00.000Z] "GET /productpageHTTP/1.1" 503 UF 0 57 1 - "-" "curl" "id-10" "productpage:9080" "10.0.0.2:9080" outbound|9080||productpage.default.svc.cluster.local - 10.96.0.2:9080 10.0.0.9:4444"#,
        origin: "access-log:istio-1.0",
        check: |r| {
            assert_eq!(r.path, "/productpage");
            assert_eq!(r.protocol, "HTTP/1.1");
            assert_eq!(r.source_address, "10.0.0.9:4444");
        },
        unknown: &[
            RecordField::TransportFailureReason,
            RecordField::RequestedServerName,
        ],
        known: &[RecordField::Cluster],
        cause: "upstream_connect_failed",
    },
    Row {
        name: "istio 1.0 TCP format",
        line: r#"[2018-10-01T10:00:00.000Z] UF 0 0 1 "-" outbound|3306||mysql.db.svc.cluster.local - 10.96.0.3:3306 10.0.0.9:5555"#,
        origin: "access-log:istio-1.0-tcp",
        check: |r| {
            assert_eq!(r.protocol, "TCP");
            assert_eq!(r.response_flags, UF);
        },
        unknown: &[RecordField::ResponseCode],
        known: &[RecordField::Protocol],
        cause: "upstream_connect_failed",
    },
    Row {
        name: "envoy default format",
        line: r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 503 UO 154 81 2 - "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "10.0.2.1:80""#,
        origin: "access-log:envoy-default",
        check: |r| {
            assert_eq!(r.method, "POST");
            assert_eq!(r.upstream_host, "10.0.2.1:80");
            assert_eq!(r.authority, "locations");
        },
        unknown: &[RecordField::Cluster, RecordField::RouteName],
        known: &[RecordField::UpstreamHost],
        cause: "circuit_breaker_overflow",
    },
    Row {
        name: "TCP line in today's format: REGISTRY_ONLY",
        line: r#"[2024-01-01T00:00:00.000Z] "- - -" 0 UH no_healthy_upstream - "-" 0 0 0 - "-" "-" "-" "-" "-" BlackHoleCluster - 10.96.0.9:443 10.0.0.5:5000 api.example.com -"#,
        origin: "access-log:istio-1.9+",
        check: |r| {
            assert_eq!(r.protocol, "TCP");
            assert_eq!(r.cluster, "BlackHoleCluster");
            assert_eq!(r.requested_server_name, "api.example.com");
            assert!(!r.sampled_success);
        },
        unknown: &[],
        known: &[RecordField::Protocol],
        cause: "registry_only_blocked",
    },
    Row {
        name: "TCP success is not a failure",
        line: r#"[2024-01-01T00:00:00.000Z] "- - -" 0 - - - "-" 813 4200 1200 - "-" "-" "-" "-" "10.0.0.8:5432" outbound|5432||db.data.svc.cluster.local 10.0.0.5:41000 10.96.0.8:5432 10.0.0.5:40998 - -"#,
        origin: "access-log:istio-1.9+",
        check: |r| {
            assert_eq!(r.protocol, "TCP");
            assert!(r.sampled_success);
        },
        unknown: &[],
        known: &[],
        cause: "success",
    },
    Row {
        name: "istio JSON 1.9+ keys",
        line: r#"{"authority":"reviews:9080","bytes_received":"0","bytes_sent":"0","connection_termination_details":"-","downstream_local_address":"10.96.12.3:9080","downstream_remote_address":"10.0.0.5:40000","duration":"0","method":"GET","path":"/admin","protocol":"HTTP/1.1","request_id":"r-nr","requested_server_name":"-","response_code":"404","response_code_details":"route_not_found","response_flags":"NR","route_name":"-","start_time":"2023-11-14T22:13:21.000Z","upstream_cluster":"-","upstream_host":"-","upstream_local_address":"-","upstream_service_time":"-","upstream_transport_failure_reason":"-","user_agent":"curl/8.5.0","x_forwarded_for":"-"}"#,
        origin: "access-log:json",
        check: |r| {
            assert_eq!((r.response_code, r.response_flags), (404, NR));
            assert_eq!(r.response_code_details, "route_not_found");
            assert_eq!(r.request_id, "r-nr");
        },
        unknown: &[RecordField::AttemptCount],
        known: &[RecordField::RouteName, RecordField::ResponseCodeDetails],
        cause: "no_route",
    },
    Row {
        name: "istio JSON 1.1 keys (istio_policy_status)",
        line: r#"{"start_time":"2019-04-01T10:00:00.000Z","method":"GET","path":"/r","protocol":"HTTP/1.1","response_code":"503","response_flags":"UH","bytes_received":"0","bytes_sent":"19","duration":"0","upstream_service_time":"-","x_forwarded_for":"-","user_agent":"curl","request_id":"j-11","authority":"r:80","upstream_host":"-","upstream_cluster":"outbound|80||r.default.svc.cluster.local","upstream_local_address":"-","downstream_local_address":"10.96.0.1:80","downstream_remote_address":"10.0.0.5:1","requested_server_name":"-","istio_policy_status":"-"}"#,
        origin: "access-log:json",
        check: |r| assert_eq!(r.response_flags, UH),
        unknown: &[
            RecordField::ResponseCodeDetails,
            RecordField::RouteName,
            RecordField::NcFlag,
        ],
        known: &[RecordField::Cluster],
        cause: "no_healthy_upstream",
    },
    Row {
        name: "user JSON: typed values, renamed keys, gRPC 200 with UT",
        line: r#"{"ts":"2024-03-01T00:00:00Z","status":200,"response_flag":"UT","status_details":"response_timeout","grpc_status":"DEADLINE_EXCEEDED","upstream":"10.1.0.4:50051","duration_ms":15000}"#,
        origin: "access-log:json",
        check: |r| {
            assert_eq!((r.response_code, r.response_flags), (200, UT));
            assert_eq!(r.grpc_status, Some(4));
            assert_eq!(r.duration_nanos, 15_000_000_000);
            assert!(!r.sampled_success, "gRPC fails with HTTP 200");
        },
        unknown: &[RecordField::Cluster],
        known: &[RecordField::GrpcStatus],
        cause: "upstream_timeout",
    },
    Row {
        name: "docker json-file wrapper around a text line, kubectl prefix inside",
        line: r#"{"log":"[2023-11-14T22:13:20.123Z] \"GET /x HTTP/1.1\" 503 UH no_healthy_upstream - \"-\" 0 19 0 - \"-\" \"curl\" \"w-1\" \"x:80\" \"-\" outbound|80||x.default.svc.cluster.local - 10.96.0.1:80 10.0.0.5:1 - default\n","stream":"stdout","time":"2023-11-14T22:13:20.2Z"}"#,
        origin: "access-log:istio-1.9+",
        check: |r| assert_eq!(r.request_id, "w-1"),
        unknown: &[],
        known: &[],
        cause: "no_healthy_upstream",
    },
    Row {
        name: "kubectl --prefix --timestamps",
        line: r#"[pod/productpage-v1-7d9c/istio-proxy] 2023-11-14T22:13:20.200000000Z [2023-11-14T22:13:20.123Z] "GET /r HTTP/1.1" 504 UT response_timeout - "-" 0 24 500 - "-" "curl" "p-1" "r:80" "10.0.0.9:80" outbound|80||r.default.svc.cluster.local 10.0.0.5:1 10.96.0.1:80 10.0.0.5:2 - default"#,
        origin: "access-log:istio-1.9+",
        check: |r| assert_eq!((r.response_code, r.response_flags), (504, UT)),
        unknown: &[],
        known: &[],
        cause: "upstream_timeout",
    },
    Row {
        name: "stern prefix with colours",
        line: "\x1b[32mratings-v1-5f9\x1b[0m \x1b[34mistio-proxy\x1b[0m [2023-11-14T22:13:20.123Z] \"GET /r HTTP/1.1\" 503 UO upstream_reset_before_response_started{overflow} - \"-\" 0 81 0 - \"-\" \"curl\" \"s-1\" \"r:80\" \"10.0.0.9:80\" outbound|80||r.default.svc.cluster.local - 10.96.0.1:80 10.0.0.5:2 - default",
        origin: "access-log:istio-1.9+",
        check: |_| {},
        unknown: &[],
        known: &[],
        cause: "circuit_breaker_overflow",
    },
    Row {
        name: "line cut short after the details, marked with …",
        line: r#"[2023-11-14T22:13:20.123Z] "GET /r HTTP/1.1" 503 UC upstream_reset_before_response_started{connection_termination} - "-" 0 95 1 …"#,
        origin: "access-log:istio-1.9+ (cut)",
        check: |r| {
            assert_eq!((r.response_code, r.response_flags), (503, UC));
            assert_eq!(r.duration_nanos, 1_000_000);
        },
        unknown: &[
            RecordField::Cluster,
            RecordField::RequestId,
            RecordField::UpstreamHost,
        ],
        known: &[RecordField::ResponseCodeDetails, RecordField::Duration],
        cause: "upstream_connection_terminated",
    },
    Row {
        name: "head cut off: starts at the request line",
        line: r#"T22:13:20.123Z] "GET /r HTTP/1.1" 404 NR route_not_found - "-" 0 0 0 - "-" "curl" "h-1" "r:80" "-" - - 10.96.0.1:80 10.0.0.5:2 - -"#,
        origin: "access-log:istio-1.9+",
        check: |r| assert_eq!(r.request_id, "h-1"),
        unknown: &[RecordField::StartTime],
        known: &[RecordField::RequestId],
        cause: "no_route",
    },
    Row {
        name: "custom fields appended to the default format",
        line: r#"[2023-11-14T22:13:20.123Z] "POST /pkg.Svc/Call HTTP/2" 200 UF,URX upstream_reset_before_response_started{remote_connection_failure} - "-" 0 0 3 - "-" "grpc-go" "g-1" "svc:50051" "10.0.0.9:50051" outbound|50051||svc.default.svc.cluster.local - 10.96.0.1:50051 10.0.0.5:2 - default grpc_status=14 attempts=3"#,
        origin: "access-log:istio-1.9+",
        check: |r| {
            assert_eq!(r.grpc_status, Some(14));
            assert_eq!(r.attempt_count, 3);
            assert!(!r.sampled_success);
        },
        unknown: &[],
        known: &[RecordField::GrpcStatus, RecordField::AttemptCount],
        cause: "retries_exhausted",
    },
    Row {
        name: "CSV export with doubled quotes",
        line: r#""[2023-11-14T22:13:20.123Z] ""GET /r HTTP/1.1"" 403 - rbac_access_denied_matched_policy[ns[shop]-policy[deny-admin]-rule[0]] - ""-"" 0 19 0 - ""-"" ""curl"" ""c-1"" ""r:80"" ""-"" inbound|80|| - 10.0.0.9:80 10.0.0.5:2 outbound_.80_._.r.shop.svc.cluster.local -""#,
        origin: "access-log:istio-1.9+",
        check: |r| assert_eq!(r.response_code, 403),
        unknown: &[],
        known: &[],
        cause: "rbac_denied",
    },
    Row {
        name: "Markdown emphasis in a chat paste",
        line: r#"[2023-11-14T22:13:20.123Z] "GET /r HTTP/1.1" **503 NC** cluster_not_found - "-" 0 0 0 - "-" "curl" "m-1" "r:80" "-" - - 10.96.0.1:80 10.0.0.5:2 - r-route"#,
        origin: "access-log:istio-1.9+",
        check: |r| assert_eq!(r.route_name, "r-route"),
        unknown: &[],
        known: &[],
        cause: "no_cluster",
    },
    Row {
        name: "salvage: code flags details",
        line: "503 UF,URX upstream_reset_before_response_started{remote_connection_failure,delayed_connect_error:_111}",
        origin: "access-log:salvaged",
        check: |r| assert_eq!(r.response_flags, UF | URX),
        unknown: &[
            RecordField::Cluster,
            RecordField::RequestId,
            RecordField::RouteName,
        ],
        known: &[
            RecordField::ResponseCode,
            RecordField::ResponseFlags,
            RecordField::ResponseCodeDetails,
        ],
        cause: "retries_exhausted",
    },
    Row {
        name: "salvage: code flags and two quoted fields",
        line: r#"...503 UC "-" "-" 0 95 ..."#,
        origin: "access-log:salvaged",
        check: |r| assert_eq!((r.response_code, r.response_flags), (503, UC)),
        unknown: &[RecordField::ResponseCodeDetails],
        known: &[],
        cause: "upstream_connection_terminated",
    },
    Row {
        name: "salvage: key=value format",
        line: "ts=2024-03-01T00:00:00Z response_flag=UT status=200 status_details=response_timeout upstream_cluster=outbound|80||a.b.svc.cluster.local",
        origin: "access-log:salvaged",
        check: |r| {
            assert_eq!((r.response_code, r.response_flags), (200, UT));
            assert_eq!(r.cluster, "outbound|80||a.b.svc.cluster.local");
        },
        unknown: &[RecordField::RequestId],
        known: &[RecordField::Cluster, RecordField::ResponseCodeDetails],
        cause: "upstream_timeout",
    },
    Row {
        name: "salvage: JSON cut from the middle of an object",
        line: r#""upstream_transport_failure_reason":"TLS error: Secret is not supplied by SDS","response_code":503,"response_flags":"UF","upstream_cluster":"outbound|443||pay.shop.svc.cluster.lo"#,
        origin: "access-log:salvaged",
        check: |r| {
            assert!(
                r.transport_failure_reason
                    .contains("Secret is not supplied by SDS")
            );
            assert_eq!(r.response_flags, UF);
        },
        unknown: &[],
        known: &[RecordField::TransportFailureReason],
        cause: "certificate_not_ready",
    },
    Row {
        name: "inbound listener miss: a TCP line with its head cut off",
        line: r#""- - -" 0 NR filter_chain_not_found - "-" 0 0 0 - "-" "-" "-" "-" "-" - - 10.0.0.9:9080 10.0.0.5:40000"#,
        origin: "access-log:istio-1.9+ (cut)",
        check: |r| {
            assert_eq!(r.protocol, "TCP");
            assert_eq!(r.response_code_details, "filter_chain_not_found");
        },
        unknown: &[],
        known: &[],
        cause: "no_filter_chain",
    },
    Row {
        name: "salvage: UAEX alone",
        line: "403 UAEX",
        origin: "access-log:salvaged",
        check: |r| assert_eq!(r.response_code, 403),
        unknown: &[RecordField::ResponseCodeDetails],
        known: &[],
        cause: "ext_authz_denied",
    },
    Row {
        name: "salvage: DPE codec error",
        line: r#"400 DPE http1.codec_error"#,
        origin: "access-log:salvaged",
        check: |r| assert_eq!(r.response_code_details, "http1.codec_error"),
        unknown: &[],
        known: &[],
        cause: "protocol_error",
    },
];

#[test]
fn every_row() {
    let reader = LogReader::new();
    let mut failures = Vec::new();
    for row in ROWS {
        let read = match reader.read_line(row.line) {
            Ok(read) => read,
            Err(error) => {
                failures.push(format!("{}: not read: {error}", row.name));
                continue;
            }
        };
        let record = &read.record;
        if record.origin != row.origin {
            failures.push(format!(
                "{}: origin {} (want {})",
                row.name, record.origin, row.origin
            ));
        }
        for field in row.unknown {
            if record.unknown_fields & bit(*field) == 0 {
                failures.push(format!("{}: {field:?} should be unknown", row.name));
            }
        }
        for field in row.known {
            if record.unknown_fields & bit(*field) != 0 {
                failures.push(format!("{}: {field:?} should be known", row.name));
            }
        }
        let got = cause(record);
        if got != row.cause {
            failures.push(format!("{}: cause {got} (want {})", row.name, row.cause));
        }
        if let Err(panic) = std::panic::catch_unwind(|| (row.check)(record)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {message}", row.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn pods_from_prefixes() {
    let reader = LogReader::new();
    for (row, pod) in [(16, "productpage-v1-7d9c"), (17, "ratings-v1-5f9")] {
        assert_eq!(
            reader.read_line(ROWS[row].line).unwrap().pod.as_deref(),
            Some(pod),
            "{}",
            ROWS[row].name
        );
    }
    assert_eq!(reader.read_line(ROWS[0].line).unwrap().pod, None);
}

#[test]
fn a_custom_format_is_tried_first() {
    let format = r#"%START_TIME(%s)% code=%RESPONSE_CODE% flags=%RESPONSE_FLAGS% %UPSTREAM_CLUSTER_RAW% "%RESPONSE_CODE_DETAILS%" tries=%UPSTREAM_REQUEST_ATTEMPT_COUNT%"#;
    let reader = LogReader::with_format(format).unwrap();
    let read = reader
        .read_line(r#"app-7f-x istio-proxy 1700000000 code=503 flags=URX outbound|80||a.b.svc.cluster.local "via_upstream" tries=3"#)
        .unwrap();
    let record = &read.record;
    assert_eq!(record.origin, "access-log:custom");
    assert_eq!(record.attempt_count, 3);
    assert_eq!(record.start_time_unix_nanos, 1_700_000_000_000_000_000);
    assert_eq!(record.response_code_details, "via_upstream");
    assert!(record.unknown_fields & bit(RecordField::AttemptCount) == 0);
    assert!(record.unknown_fields & bit(RecordField::RequestId) != 0);
    assert_eq!(read.pod.as_deref(), Some("app-7f-x"));
    assert_eq!(cause(record), "retries_exhausted");
    // The built-in formats still work beside it.
    assert_eq!(
        reader.read_line(ROWS[0].line).unwrap().record.origin,
        "access-log:istio-1.9+"
    );
    assert!(LogReader::with_format("%RESPONSE_CODE").is_err());
    assert!(LogReader::with_format("").is_err());
    assert!(LogReader::with_format(r#"{"a":"%REQ(USER-AGENT)%"}"#).is_err());
    let json = LogReader::with_format(r#"{"c":"%RESPONSE_CODE%","f":"%RESPONSE_FLAGS%"}"#).unwrap();
    assert_eq!(
        json.read_line(r#"{"c":503,"f":"UH"}"#)
            .unwrap()
            .record
            .response_flags,
        UH
    );
}

#[test]
fn not_access_logs() {
    let reader = LogReader::new();
    assert!(super::is_proxy_log(
        "2023-11-14T22:13:19.000000Z\tinfo\tEnvoy proxy is ready"
    ));
    assert!(super::is_proxy_log(
        "[pod/a-1/istio-proxy] [2023-11-14 22:13:19.001][15][info][main] ok"
    ));
    assert!(!super::is_proxy_log(ROWS[0].line));
    for line in [
        "2023-11-14T22:13:19.000000Z\tinfo\tEnvoy proxy is ready",
        r#"{"level":"info","msg":"starting"}"#,
        "\u{0}\u{1}\u{2}binary",
        "",
        "GET 200 hello",
    ] {
        assert!(reader.read_line(line).is_err(), "{line:?} was read");
    }
}

#[test]
fn read_lines_counts_samples_and_survives_garbage() {
    let mut input = Vec::new();
    input.extend_from_slice(ROWS[0].line.as_bytes());
    input.extend_from_slice(b"\n\ninfo starting\n\xff\xfe 503 UH\n");
    input.extend_from_slice(b"2023-11-14T22:13:19.000000Z\tinfo\txdsproxy\tconnected\n");
    input.extend_from_slice(
        b"[2023-11-14 22:13:19.001][15][warning][config] [source/x.cc:1] gone\n",
    );
    input.extend_from_slice(&vec![b'x'; 1 << 20]);
    input.extend_from_slice(b"\n");
    let mut records = Vec::new();
    let report =
        super::read_lines(&input[..], &LogReader::new(), |line| records.push(line)).unwrap();
    assert_eq!(report.lines, 6);
    assert_eq!(report.read, 2, "{report:?}");
    assert_eq!(report.salvaged, 1);
    assert_eq!(report.unreadable, 2);
    assert_eq!(report.proxy_log, 2);
    assert_eq!(report.samples[0], "info starting");
    assert!(report.samples[1].starts_with("2023-11-14T22:13:19.000000Z"));
    let warning = report.warning("x.log").unwrap();
    assert!(
        warning.starts_with("x.log: 4 of 6 lines are not access-log entries (skipped): 2 of the proxy's own log, 2 unreadable"),
        "{warning}"
    );
    assert_eq!(records[1].record.response_flags, UH);
}

#[test]
fn a_wrapped_line_is_read_whole() {
    let whole = ROWS[0].line;
    let mut input = String::new();
    // Wrapped inside a word (a terminal's hard wrap) and at a space (a chat's).
    for at in [97, whole.find("\"curl").unwrap()] {
        input.push_str(&whole[..at]);
        input.push('\n');
        input.push_str(whole[at..].trim_start());
        input.push('\n');
    }
    // A line cut for good stays what it was, and the next line is read on its own.
    input.push_str(ROWS[18].line);
    input.push('\n');
    input.push_str(ROWS[1].line);
    input.push('\n');
    let mut records = Vec::new();
    let report = super::read_lines(input.as_bytes(), &LogReader::new(), |line| {
        records.push(line.record)
    })
    .unwrap();
    assert_eq!(
        (report.lines, report.read, report.joined, report.unreadable),
        (6, 4, 2, 0),
        "{report:?}"
    );
    for record in &records[..2] {
        assert_eq!(record.origin, "access-log:istio-1.9+");
        assert_eq!(record.request_id, "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab");
        assert_eq!(record.route_name, "default");
    }
    assert_eq!(records[2].origin, "access-log:istio-1.9+ (cut)");
    assert_eq!(records[3].direction, Direction::Inbound as i32);
}
