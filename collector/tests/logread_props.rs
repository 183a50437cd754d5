//! Property tests of the log reader: whatever bytes it is given — random bytes, invalid UTF-8,
//! 1 MB lines, half JSON objects, real Envoy lines cut at every character or with random bytes
//! spliced in — `LogReader::read_line` never panics and `read_lines` never fails, and its counts
//! add up: every non-blank line is either read or counted unreadable. Case counts are bounded
//! so the whole file runs in seconds.

use meshwhy_collector::logread::{self, LogReader, MAX_LINE_BYTES, ReadReport};
use proptest::prelude::*;
use proptest::sample::Index;

/// Lines real Envoy 1.40 wrote for the e2e failure matrix (uf-urx, uc, rbac) in every Istio format era
/// (captured from tests/tests/access_logs.rs; text eras, then JSON eras).
const REAL_LINES: &[&str] = &[
    r#"[2026-12-03T14:02:20.035Z] "GET /uf-urx HTTP/1.1" 503 URX,UF 0 121 7 - "-" "-" "era-uf-urx" "backend.e2e.svc.cluster.local:80" "127.0.0.1:36567""#,
    r#"[2026-12-03T14:02:20.045Z] "GET /uc HTTP/1.1" 503 UC 0 95 3 - "-" "-" "era-uc" "backend.e2e.svc.cluster.local:80" "127.0.0.1:45135""#,
    r#"[2026-12-03T14:02:21.152Z] "GET /rbac HTTP/1.1" 403 - 0 19 0 - "-" "-" "era-rbac" "backend.e2e.svc.cluster.local:80" "-""#,
    r#"[2026-12-03T14:02:20.035Z] "GET /uf-urxHTTP/1.1" 503 URX,UF 0 121 7 - "-" "-" "era-uf-urx" "backend.e2e.svc.cluster.local:80" "127.0.0.1:36567" outbound|80||closed.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34700"#,
    r#"[2026-12-03T14:02:20.045Z] "GET /ucHTTP/1.1" 503 UC 0 95 3 - "-" "-" "era-uc" "backend.e2e.svc.cluster.local:80" "127.0.0.1:45135" outbound|80||closer.e2e.svc.cluster.local 127.0.0.1:53940 127.0.0.1:45729 127.0.0.1:34700"#,
    r#"[2026-12-03T14:02:21.152Z] "GET /rbacHTTP/1.1" 403 - 0 19 0 - "-" "-" "era-rbac" "backend.e2e.svc.cluster.local:80" "-" outbound|80|v1|backend.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34724"#,
    r#"[2026-12-03T14:02:20.035Z] "GET /uf-urx HTTP/1.1" 503 URX,UF "-" 0 121 7 - "-" "-" "era-uf-urx" "backend.e2e.svc.cluster.local:80" "127.0.0.1:36567" outbound|80||closed.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34700 -"#,
    r#"[2026-12-03T14:02:20.045Z] "GET /uc HTTP/1.1" 503 UC "-" 0 95 3 - "-" "-" "era-uc" "backend.e2e.svc.cluster.local:80" "127.0.0.1:45135" outbound|80||closer.e2e.svc.cluster.local 127.0.0.1:53940 127.0.0.1:45729 127.0.0.1:34700 -"#,
    r#"[2026-12-03T14:02:21.152Z] "GET /rbac HTTP/1.1" 403 - "-" 0 19 0 - "-" "-" "era-rbac" "backend.e2e.svc.cluster.local:80" "-" outbound|80|v1|backend.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34724 -"#,
    r#"[2026-12-03T14:02:20.035Z] "GET /uf-urx HTTP/1.1" 503 URX,UF "-" "delayed_connect_error:_Connection_refused" 0 121 7 - "-" "-" "era-uf-urx" "backend.e2e.svc.cluster.local:80" "127.0.0.1:36567" outbound|80||closed.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34700 -"#,
    r#"[2026-12-03T14:02:20.045Z] "GET /uc HTTP/1.1" 503 UC "-" "-" 0 95 3 - "-" "-" "era-uc" "backend.e2e.svc.cluster.local:80" "127.0.0.1:45135" outbound|80||closer.e2e.svc.cluster.local 127.0.0.1:53940 127.0.0.1:45729 127.0.0.1:34700 -"#,
    r#"[2026-12-03T14:02:21.152Z] "GET /rbac HTTP/1.1" 403 - "-" "-" 0 19 0 - "-" "-" "era-rbac" "backend.e2e.svc.cluster.local:80" "-" outbound|80|v1|backend.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34724 -"#,
    r#"[2026-12-03T14:02:20.035Z] "GET /uf-urx HTTP/1.1" 503 URX,UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 121 7 - "-" "-" "era-uf-urx" "backend.e2e.svc.cluster.local:80" "127.0.0.1:36567" outbound|80||closed.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34700 - uf-urx"#,
    r#"[2026-12-03T14:02:20.045Z] "GET /uc HTTP/1.1" 503 UC upstream_reset_before_response_started{connection_termination} - "-" 0 95 3 - "-" "-" "era-uc" "backend.e2e.svc.cluster.local:80" "127.0.0.1:45135" outbound|80||closer.e2e.svc.cluster.local 127.0.0.1:53940 127.0.0.1:45729 127.0.0.1:34700 - uc"#,
    r#"[2026-12-03T14:02:21.152Z] "GET /rbac HTTP/1.1" 403 - rbac_access_denied_matched_policy[ns[e2e]-policy[deny-admin]-rule[0]] - "-" 0 19 0 - "-" "-" "era-rbac" "backend.e2e.svc.cluster.local:80" "-" outbound|80|v1|backend.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34724 - rbac"#,
    r#"[2026-12-03T14:02:20.035Z] "GET /uf-urx HTTP/1.1" 503 URX,UF "-" "delayed_connect_error:_Connection_refused" 0 121 7 - "-" "-" "era-uf-urx" "backend.e2e.svc.cluster.local:80" "127.0.0.1:36567" outbound|80||closed.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34700 - uf-urx"#,
    r#"[2026-12-03T14:02:20.045Z] "GET /uc HTTP/1.1" 503 UC "-" "-" 0 95 3 - "-" "-" "era-uc" "backend.e2e.svc.cluster.local:80" "127.0.0.1:45135" outbound|80||closer.e2e.svc.cluster.local 127.0.0.1:53940 127.0.0.1:45729 127.0.0.1:34700 - uc"#,
    r#"[2026-12-03T14:02:21.152Z] "GET /rbac HTTP/1.1" 403 - "-" "-" 0 19 0 - "-" "-" "era-rbac" "backend.e2e.svc.cluster.local:80" "-" outbound|80|v1|backend.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34724 - rbac"#,
    r#"[2026-12-03T14:02:20.035Z] "GET /uf-urx HTTP/1.1" 503 URX,UF "delayed_connect_error:_Connection_refused" 0 121 7 - "-" "-" "era-uf-urx" "backend.e2e.svc.cluster.local:80" "127.0.0.1:36567" outbound|80||closed.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34700 - uf-urx"#,
    r#"[2026-12-03T14:02:20.045Z] "GET /uc HTTP/1.1" 503 UC "-" 0 95 3 - "-" "-" "era-uc" "backend.e2e.svc.cluster.local:80" "127.0.0.1:45135" outbound|80||closer.e2e.svc.cluster.local 127.0.0.1:53940 127.0.0.1:45729 127.0.0.1:34700 - uc"#,
    r#"[2026-12-03T14:02:21.152Z] "GET /rbac HTTP/1.1" 403 - "-" 0 19 0 - "-" "-" "era-rbac" "backend.e2e.svc.cluster.local:80" "-" outbound|80|v1|backend.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34724 - rbac"#,
    r#"[2026-12-03T14:02:20.035Z] "GET /uf-urx HTTP/1.1" 503 URX,UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 0 121 7 - "-" "-" "era-uf-urx" "backend.e2e.svc.cluster.local:80" "127.0.0.1:36567" outbound|80||closed.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34700 - uf-urx"#,
    r#"[2026-12-03T14:02:20.045Z] "GET /uc HTTP/1.1" 503 UC upstream_reset_before_response_started{connection_termination} - "-" 0 95 3 - "-" "-" "era-uc" "backend.e2e.svc.cluster.local:80" "127.0.0.1:45135" outbound|80||closer.e2e.svc.cluster.local 127.0.0.1:53940 127.0.0.1:45729 127.0.0.1:34700 - uc"#,
    r#"[2026-12-03T14:02:21.152Z] "GET /rbac HTTP/1.1" 403 - rbac_access_denied_matched_policy[ns[e2e]-policy[deny-admin]-rule[0]] - "-" 0 19 0 - "-" "-" "era-rbac" "backend.e2e.svc.cluster.local:80" "-" outbound|80|v1|backend.e2e.svc.cluster.local - 127.0.0.1:45729 127.0.0.1:34724 - rbac"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":121,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34700","duration":7,"istio_policy_status":null,"method":"GET","path":"/uf-urx","protocol":"HTTP/1.1","request_id":"era-uf-urx","requested_server_name":null,"response_code":503,"response_flags":"URX,UF","start_time":"2026-12-03T14:02:20.035Z","upstream_cluster":"outbound|80||closed.e2e.svc.cluster.local","upstream_host":"127.0.0.1:36567","upstream_local_address":null,"upstream_service_time":null,"user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":95,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34700","duration":3,"istio_policy_status":null,"method":"GET","path":"/uc","protocol":"HTTP/1.1","request_id":"era-uc","requested_server_name":null,"response_code":503,"response_flags":"UC","start_time":"2026-12-03T14:02:20.045Z","upstream_cluster":"outbound|80||closer.e2e.svc.cluster.local","upstream_host":"127.0.0.1:45135","upstream_local_address":"127.0.0.1:53940","upstream_service_time":null,"user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":19,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34724","duration":0,"istio_policy_status":null,"method":"GET","path":"/rbac","protocol":"HTTP/1.1","request_id":"era-rbac","requested_server_name":null,"response_code":403,"response_flags":"-","start_time":"2026-12-03T14:02:21.152Z","upstream_cluster":"outbound|80|v1|backend.e2e.svc.cluster.local","upstream_host":null,"upstream_local_address":null,"upstream_service_time":null,"user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":121,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34700","duration":7,"istio_policy_status":null,"method":"GET","path":"/uf-urx","protocol":"HTTP/1.1","request_id":"era-uf-urx","requested_server_name":null,"response_code":503,"response_flags":"URX,UF","start_time":"2026-12-03T14:02:20.035Z","upstream_cluster":"outbound|80||closed.e2e.svc.cluster.local","upstream_host":"127.0.0.1:36567","upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":"delayed_connect_error:_Connection_refused","user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":95,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34700","duration":3,"istio_policy_status":null,"method":"GET","path":"/uc","protocol":"HTTP/1.1","request_id":"era-uc","requested_server_name":null,"response_code":503,"response_flags":"UC","start_time":"2026-12-03T14:02:20.045Z","upstream_cluster":"outbound|80||closer.e2e.svc.cluster.local","upstream_host":"127.0.0.1:45135","upstream_local_address":"127.0.0.1:53940","upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":19,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34724","duration":0,"istio_policy_status":null,"method":"GET","path":"/rbac","protocol":"HTTP/1.1","request_id":"era-rbac","requested_server_name":null,"response_code":403,"response_flags":"-","start_time":"2026-12-03T14:02:21.152Z","upstream_cluster":"outbound|80|v1|backend.e2e.svc.cluster.local","upstream_host":null,"upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":121,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34700","duration":7,"method":"GET","path":"/uf-urx","protocol":"HTTP/1.1","request_id":"era-uf-urx","requested_server_name":null,"response_code":503,"response_code_details":"upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}","response_flags":"URX,UF","route_name":"uf-urx","start_time":"2026-12-03T14:02:20.035Z","upstream_cluster":"outbound|80||closed.e2e.svc.cluster.local","upstream_host":"127.0.0.1:36567","upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":"delayed_connect_error:_Connection_refused","user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":95,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34700","duration":3,"method":"GET","path":"/uc","protocol":"HTTP/1.1","request_id":"era-uc","requested_server_name":null,"response_code":503,"response_code_details":"upstream_reset_before_response_started{connection_termination}","response_flags":"UC","route_name":"uc","start_time":"2026-12-03T14:02:20.045Z","upstream_cluster":"outbound|80||closer.e2e.svc.cluster.local","upstream_host":"127.0.0.1:45135","upstream_local_address":"127.0.0.1:53940","upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":19,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34724","duration":0,"method":"GET","path":"/rbac","protocol":"HTTP/1.1","request_id":"era-rbac","requested_server_name":null,"response_code":403,"response_code_details":"rbac_access_denied_matched_policy[ns[e2e]-policy[deny-admin]-rule[0]]","response_flags":"-","route_name":"rbac","start_time":"2026-12-03T14:02:21.152Z","upstream_cluster":"outbound|80|v1|backend.e2e.svc.cluster.local","upstream_host":null,"upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":121,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34700","duration":7,"istio_policy_status":null,"method":"GET","path":"/uf-urx","protocol":"HTTP/1.1","request_id":"era-uf-urx","requested_server_name":null,"response_code":503,"response_flags":"URX,UF","route_name":"uf-urx","start_time":"2026-12-03T14:02:20.035Z","upstream_cluster":"outbound|80||closed.e2e.svc.cluster.local","upstream_host":"127.0.0.1:36567","upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":"delayed_connect_error:_Connection_refused","user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":95,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34700","duration":3,"istio_policy_status":null,"method":"GET","path":"/uc","protocol":"HTTP/1.1","request_id":"era-uc","requested_server_name":null,"response_code":503,"response_flags":"UC","route_name":"uc","start_time":"2026-12-03T14:02:20.045Z","upstream_cluster":"outbound|80||closer.e2e.svc.cluster.local","upstream_host":"127.0.0.1:45135","upstream_local_address":"127.0.0.1:53940","upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":19,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34724","duration":0,"istio_policy_status":null,"method":"GET","path":"/rbac","protocol":"HTTP/1.1","request_id":"era-rbac","requested_server_name":null,"response_code":403,"response_flags":"-","route_name":"rbac","start_time":"2026-12-03T14:02:21.152Z","upstream_cluster":"outbound|80|v1|backend.e2e.svc.cluster.local","upstream_host":null,"upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":121,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34700","duration":7,"method":"GET","path":"/uf-urx","protocol":"HTTP/1.1","request_id":"era-uf-urx","requested_server_name":null,"response_code":503,"response_flags":"URX,UF","route_name":"uf-urx","start_time":"2026-12-03T14:02:20.035Z","upstream_cluster":"outbound|80||closed.e2e.svc.cluster.local","upstream_host":"127.0.0.1:36567","upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":"delayed_connect_error:_Connection_refused","user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":95,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34700","duration":3,"method":"GET","path":"/uc","protocol":"HTTP/1.1","request_id":"era-uc","requested_server_name":null,"response_code":503,"response_flags":"UC","route_name":"uc","start_time":"2026-12-03T14:02:20.045Z","upstream_cluster":"outbound|80||closer.e2e.svc.cluster.local","upstream_host":"127.0.0.1:45135","upstream_local_address":"127.0.0.1:53940","upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":19,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34724","duration":0,"method":"GET","path":"/rbac","protocol":"HTTP/1.1","request_id":"era-rbac","requested_server_name":null,"response_code":403,"response_flags":"-","route_name":"rbac","start_time":"2026-12-03T14:02:21.152Z","upstream_cluster":"outbound|80|v1|backend.e2e.svc.cluster.local","upstream_host":null,"upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":121,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34700","duration":7,"method":"GET","path":"/uf-urx","protocol":"HTTP/1.1","request_id":"era-uf-urx","requested_server_name":null,"response_code":503,"response_code_details":"upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}","response_flags":"URX,UF","route_name":"uf-urx","start_time":"2026-12-03T14:02:20.035Z","upstream_cluster":"outbound|80||closed.e2e.svc.cluster.local","upstream_host":"127.0.0.1:36567","upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":"delayed_connect_error:_Connection_refused","user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":95,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34700","duration":3,"method":"GET","path":"/uc","protocol":"HTTP/1.1","request_id":"era-uc","requested_server_name":null,"response_code":503,"response_code_details":"upstream_reset_before_response_started{connection_termination}","response_flags":"UC","route_name":"uc","start_time":"2026-12-03T14:02:20.045Z","upstream_cluster":"outbound|80||closer.e2e.svc.cluster.local","upstream_host":"127.0.0.1:45135","upstream_local_address":"127.0.0.1:53940","upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":null,"x_forwarded_for":null}"#,
    r#"{"authority":"backend.e2e.svc.cluster.local:80","bytes_received":0,"bytes_sent":19,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:45729","downstream_remote_address":"127.0.0.1:34724","duration":0,"method":"GET","path":"/rbac","protocol":"HTTP/1.1","request_id":"era-rbac","requested_server_name":null,"response_code":403,"response_code_details":"rbac_access_denied_matched_policy[ns[e2e]-policy[deny-admin]-rule[0]]","response_flags":"-","route_name":"rbac","start_time":"2026-12-03T14:02:21.152Z","upstream_cluster":"outbound|80|v1|backend.e2e.svc.cluster.local","upstream_host":null,"upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":null,"x_forwarded_for":null}"#,
];

/// Fragments of the kinds users paste: salvage shapes, tool prefixes, chat artefacts.
const FRAGMENTS: &[&str] = &[
    "503 UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
    "503 UF,URX upstream_reset_before_response_started{remote_connection_failure,delayed_connect_error:_111}",
    r#""response_flags":"UC","response_code":503,"upstream_cluster":"outbound|9080||reviews.shop.svc.cluster.local""#,
    r#"{"response_code":"503","response_flags":"UH","upstream_host":null,"#,
    "status=503 response_flag=UT status_details=response_timeout duration=15000",
    r#"[pod/productpage-v1-7d9c/istio-proxy] [2024-05-01T10:00:00.000Z] "GET /reviews/0 HTTP/1.1" 503 UF,URX "-" "-" 0 91 30 - "-" "curl/8.5.0" "9f1c" "reviews:9080" "10.0.0.7:9080" outbound|9080||reviews.shop.svc.cluster.local - 10.96.0.10:9080 10.0.0.5:50000 - default"#,
    r#"productpage-v1-7d9c istio-proxy [2024-05-01T10:00:00.000Z] "- - -" 0 UH - - "-" 0 0 0 - "-" "-" "-" "-" "-" BlackHoleCluster - 10.0.0.9:443 10.0.0.5:40000 api.example.com -"#,
    r#"2024-05-01T10:00:00.123456789Z [2024-05-01T10:00:00.000Z] "- - -" 0 NR filter_chain_not_found - "-" 0 0 0 - "-" "-" "-" "-" "-" - - 10.0.0.8:9080 10.0.0.5:41000 - -"#,
    r#"**503 UC** ""upstream_reset_before_response_started{connection_termination}"" …"#,
    "TLS error: Secret is not supplied by SDS",
    "403 - rbac_access_denied_matched_policy[ns[shop]-policy[deny-all]-rule[0]]",
    "404 NR route_not_found",
    r#""GET /api/v1/items?page=2 HTTP/2" 200 URX,UF"#,
    "inbound|8080|| 503 UC",
];

/// Pieces log lines are made of, for generated lines that look almost right.
const PIECES: &[&str] = &[
    " ",
    " ",
    " ",
    "\"",
    "\"",
    "-",
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    "|",
    ",",
    ":",
    "=",
    "_",
    "…",
    "\\",
    "\t",
    "*",
    "`",
    "\u{0}",
    "\u{fffd}",
    "ä",
    "😀",
    "0",
    "1",
    "503",
    "200",
    "0",
    "404",
    "UF",
    "URX",
    "UC",
    "UH",
    "NR",
    "DC",
    "UT",
    "UO",
    "NC",
    "UAEX",
    "DPE",
    "UPE",
    "URX,UF",
    "\"- - -\"",
    "[2024-05-01T10:00:00.000Z]",
    "2024-05-01T10:00:00.123Z",
    "\"GET /x HTTP/1.1\"",
    "HTTP/2",
    "via_upstream",
    "upstream_reset_before_response_started{",
    "remote_connection_failure",
    "connection_termination",
    "delayed_connect_error:_111",
    "filter_chain_not_found",
    "rbac_access_denied_matched_policy[",
    "TLS error:",
    "TLS_error:|268435703:",
    "outbound|",
    "inbound|",
    "|80|",
    "||",
    "BlackHoleCluster",
    "PassthroughCluster",
    ".svc.cluster.local",
    "10.0.0.1:80",
    "{\"",
    "\":",
    "\"response_code\":",
    "\"response_flags\":\"",
    "null",
    "true",
    "status=",
    "response_flag=",
    "duration=",
    "key=value",
    "\"request_id\":\"",
    "outbound_.80_._.",
];

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Failures print the shrunk input; no regression files in the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Non-blank lines of `input` as `read_lines` defines a line: split at `\n`, at most
/// [`MAX_LINE_BYTES`] of each read (lossily), blank when only whitespace is left.
fn non_blank_lines(input: &[u8]) -> u64 {
    let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    if input.ends_with(b"\n") || input.is_empty() {
        pieces.pop();
    }
    pieces
        .into_iter()
        .filter(|piece| {
            let head = &piece[..piece.len().min(MAX_LINE_BYTES)];
            !String::from_utf8_lossy(head).trim().is_empty()
        })
        .count() as u64
}

/// Reads `input` whole and checks that it could not fail and that the counts add up.
fn read_all(input: &[u8]) -> ReadReport {
    let mut calls = 0u64;
    let mut origins = 0u64;
    let report = logread::read_lines(input, &LogReader::new(), |line| {
        calls += 1;
        origins += u64::from(!line.record.origin.is_empty());
    })
    .expect("read_lines never fails on an in-memory input");
    assert_eq!(report.lines, non_blank_lines(input), "non-blank lines");
    assert_eq!(
        report.read + report.unreadable + report.proxy_log + report.joined,
        report.lines,
        "read + unreadable + the proxy's own + joined = lines"
    );
    assert_eq!(calls, report.read, "one callback per line read");
    assert_eq!(origins, report.read, "every record says where it came from");
    assert!(report.salvaged <= report.read, "salvaged ⊆ read");
    assert_eq!(
        report.by_origin.values().sum::<u64>(),
        report.read,
        "by_origin sums to read"
    );
    let skipped = report.unreadable + report.proxy_log;
    assert!(
        report.samples.len() as u64 <= skipped,
        "samples ⊆ skipped lines"
    );
    assert_eq!(
        report.warning("input").is_some(),
        skipped > 0,
        "a warning exactly when lines were skipped"
    );
    if skipped > 0 {
        assert!(!report.samples.is_empty(), "unreadable lines are sampled");
    }
    report
}

/// `read_line` on `line`: it may refuse, never panic (a panic fails the test).
fn read_one(line: &str) {
    let _ = LogReader::new().read_line(line);
}

/// Every character-boundary prefix and suffix of `line`.
fn cuts(line: &str) -> impl Iterator<Item = &str> {
    line.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(line.len()))
        .flat_map(move |i| [&line[..i], &line[i..]])
}

#[test]
fn real_lines_read_whole_and_cut_at_every_character() {
    let reader = LogReader::new();
    for line in REAL_LINES {
        assert!(
            reader.read_line(line).is_ok(),
            "a real Envoy line must read: {line}"
        );
        for cut in cuts(line) {
            read_one(cut);
        }
    }
    for fragment in FRAGMENTS {
        for cut in cuts(fragment) {
            read_one(cut);
        }
    }
    // All of it at once, as one input.
    let mut input = String::new();
    for line in REAL_LINES.iter().chain(FRAGMENTS) {
        for cut in cuts(line).step_by(7) {
            input.push_str(cut);
            input.push('\n');
        }
    }
    read_all(input.as_bytes());
}

#[test]
fn half_json_objects() {
    let json: Vec<&str> = REAL_LINES
        .iter()
        .copied()
        .filter(|l| l.starts_with('{'))
        .collect();
    assert!(!json.is_empty());
    let mut input = String::new();
    for line in &json {
        let bounds: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
        // Cut from the middle of the object: every start, a few lengths.
        for (n, &start) in bounds.iter().enumerate() {
            for len in [1, 17, 80, 200] {
                let end = bounds.get(n + len).copied().unwrap_or(line.len());
                read_one(&line[start..end]);
            }
            if n % 5 == 0 {
                input.push_str(&line[start..]);
                input.push('\n');
            }
        }
        // Doubled quotes, as some exports write them.
        read_one(&line.replace('"', "\"\""));
        // Nested and unbalanced.
        read_one(&format!("{{\"log\":{line}"));
        read_one(&"{".repeat(10_000));
        read_one(&"[\"".repeat(10_000));
    }
    read_all(input.as_bytes());
}

#[test]
fn megabyte_lines() {
    const MB: usize = 1 << 20;
    let real = REAL_LINES[REAL_LINES.len() / 2];
    let lines: Vec<String> = vec![
        "a".repeat(MB),
        "x".to_owned() + &" ".repeat(MB - 1),
        real.repeat(MB / real.len() + 1),
        format!("{{\"response_code\":503,\"path\":\"{}\"}}", "x".repeat(MB)),
        format!("503 UF {}", "{".repeat(MB)),
        "503 UF,URX ".repeat(MB / 11),
        "\"".repeat(MB),
        "outbound|".repeat(MB / 9),
        "=".repeat(MB),
        "é".repeat(MB / 2),
    ];
    let mut input = Vec::new();
    for line in &lines {
        read_one(line);
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    // A long line of invalid UTF-8 and one with no newline at the end of the input.
    input.extend(std::iter::repeat_n(0xff, MB));
    input.push(b'\n');
    input.extend_from_slice(real.as_bytes());
    input.extend(std::iter::repeat_n(b'z', MB));
    let report = read_all(&input);
    assert_eq!(report.lines, lines.len() as u64 + 2);
}

/// A string made of log-line pieces, or of any characters.
fn loggish() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(proptest::sample::select(PIECES), 0..80)
            .prop_map(|pieces| pieces.concat()),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn read_line_never_panics_on_text(line in loggish()) {
        read_one(&line);
    }

    #[test]
    fn read_lines_never_fails_on_bytes(input in proptest::collection::vec(any::<u8>(), 0..4096)) {
        read_all(&input);
    }

    #[test]
    fn read_lines_counts_mixed_input(
        lines in proptest::collection::vec(
            prop_oneof![
                loggish().prop_map(String::into_bytes),
                proptest::sample::select(REAL_LINES).prop_map(|l| l.as_bytes().to_vec()),
                proptest::collection::vec(any::<u8>(), 0..200),
                Just(b"   \t \r".to_vec()),
            ],
            0..40,
        ),
        crlf in any::<bool>(),
    ) {
        let newline: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let input = lines.join(newline);
        read_all(&input);
    }

    #[test]
    fn real_lines_with_bytes_spliced_in(
        line in proptest::sample::select(REAL_LINES),
        cut in any::<Index>(),
        at in any::<Index>(),
        spliced in proptest::collection::vec(any::<u8>(), 0..24),
        twice in any::<bool>(),
    ) {
        let bytes = line.as_bytes();
        let cut = cut.index(bytes.len() + 1);
        let mut mangled = bytes[..cut].to_vec();
        let at = at.index(mangled.len() + 1);
        mangled.splice(at..at, spliced.iter().copied());
        if twice {
            let tail = mangled.len() / 3;
            mangled.splice(tail..tail, spliced.iter().rev().copied());
        }
        read_one(&String::from_utf8_lossy(&mangled));
        read_all(&mangled);
    }
}
