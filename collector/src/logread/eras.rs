//! The access-log formats meshwhy reads without being told: Istio's default TEXT format in every
//! era since 1.0 and Envoy's own default, verbatim from their sources (see
//! shared/ACCESS_LOG_FORMATS.md), newest first.

/// One built-in format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Era {
    /// Its name, e.g. `istio-1.9+`.
    pub(crate) name: &'static str,
    /// `origin` of its records: `access-log:<name>`.
    pub(crate) origin: &'static str,
    /// The Envoy format string.
    pub(crate) format: &'static str,
    /// Whether every proxy that logged this format predates Envoy's NC flag (Envoy 1.18, first in
    /// Istio 1.10): a route to a missing or warming cluster then logged `503 NR`.
    pub(crate) predates_nc: bool,
}

/// Istio 1.9 – today. 1.23+ prints `%UPSTREAM_CLUSTER_RAW%` where 1.9–1.22 had
/// `%UPSTREAM_CLUSTER%`: the same shape (the reader maps an alt stat name back). Istio 1.9's own
/// proxies (Envoy 1.17) predate NC but carry the details, where a missing cluster reads
/// `cluster_not_found`.
const ISTIO_1_9: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%"#;

/// Istio 1.8: Mixer gone, no details yet.
const ISTIO_1_8: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%"#;

/// Istio 1.3 – 1.7: the mixer status and the transport failure reason, two quoted fields after the
/// flags, and the route name at the end.
const ISTIO_1_3: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% "%DYNAMIC_METADATA(istio.mixer:status)%" "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%"#;

/// Istio 1.2 (and 1.3–1.5 proxies older than 1.3): as 1.3 without the route name.
const ISTIO_1_2: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% "%DYNAMIC_METADATA(istio.mixer:status)%" "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME%"#;

/// Istio 1.1: the mixer status only. Token for token the shape of 1.8 but one field shorter
/// (no route name), which is what tells them apart.
const ISTIO_1_1: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% "%DYNAMIC_METADATA(istio.mixer:status)%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME%"#;

/// Istio 1.0.3 – 1.0.6: Envoy's default plus addresses, with the missing space between path and
/// protocol (`"GET /productpageHTTP/1.1"`) every 1.0.x tag shipped.
const ISTIO_1_0: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%%PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%"#;

/// Istio 1.0.x's separate TCP format.
const ISTIO_1_0_TCP: &str = r#"[%START_TIME%] %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%"#;

/// Envoy's own default (unchanged since 2016; Istio 0.x – 1.0.2 used it, and so does any Envoy
/// whose access log names no format).
const ENVOY_DEFAULT: &str = r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%""#;

/// Every built-in format, most common first (a tie between two matches goes to the earlier).
pub(crate) const ERAS: &[Era] = &[
    Era {
        name: "istio-1.9+",
        origin: "access-log:istio-1.9+",
        format: ISTIO_1_9,
        predates_nc: false,
    },
    Era {
        name: "istio-1.8",
        origin: "access-log:istio-1.8",
        format: ISTIO_1_8,
        predates_nc: true,
    },
    Era {
        name: "istio-1.3-1.7",
        origin: "access-log:istio-1.3-1.7",
        format: ISTIO_1_3,
        predates_nc: true,
    },
    Era {
        name: "istio-1.2",
        origin: "access-log:istio-1.2",
        format: ISTIO_1_2,
        predates_nc: true,
    },
    Era {
        name: "istio-1.1",
        origin: "access-log:istio-1.1",
        format: ISTIO_1_1,
        predates_nc: true,
    },
    Era {
        name: "istio-1.0",
        origin: "access-log:istio-1.0",
        format: ISTIO_1_0,
        predates_nc: true,
    },
    Era {
        name: "istio-1.0-tcp",
        origin: "access-log:istio-1.0-tcp",
        format: ISTIO_1_0_TCP,
        predates_nc: true,
    },
    Era {
        name: "envoy-default",
        origin: "access-log:envoy-default",
        format: ENVOY_DEFAULT,
        predates_nc: false,
    },
];

/// The formats as text, for `--help` and docs: `name: format`.
pub fn builtin_formats() -> impl Iterator<Item = (&'static str, &'static str)> {
    ERAS.iter().map(|era| (era.name, era.format))
}
