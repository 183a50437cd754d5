//! `response.code_details`: why Envoy sent the code it sent, in every syntax seen across
//! versions — `name`, `name{reason}`, `name{reason|transport}` (1.2x+ pipe),
//! `name{reason,transport}` (older comma, often an errno), `name[policy]` (RBAC) and
//! `name(reason)` (downstream disconnects), with spaces or `_`.

use super::transport::TransportFailure;

/// What kind of decision a details value records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailsKind {
    /// `via_upstream`: the upstream chose the code; Envoy only forwarded it.
    ViaUpstream,
    /// `upstream_reset_before_response_started…`: the upstream failed before any response.
    UpstreamResetBeforeResponse,
    /// `upstream_reset_after_response_started…`: the upstream failed mid-response.
    UpstreamResetAfterResponse,
    /// `route_not_found`.
    RouteNotFound,
    /// `no_healthy_upstream`.
    NoHealthyUpstream,
    /// `cluster_not_found`.
    ClusterNotFound,
    /// `response_timeout` (older: `upstream_response_timeout`): the route timeout expired.
    ResponseTimeout,
    /// `upstream_per_try_timeout` / `upstream_per_try_idle_timeout`.
    PerTryTimeout,
    /// `stream_idle_timeout` and other idle timeouts.
    StreamIdleTimeout,
    /// `upstream_max_stream_duration_reached`.
    MaxStreamDuration,
    /// `request_header_timeout` / `request_overall_timeout` (HCM; no flag is set).
    RequestTimeout,
    /// `downstream_remote_disconnect`: the client went away.
    DownstreamRemoteDisconnect,
    /// `downstream_local_disconnect(<reason>)`: Envoy closed the client's connection.
    DownstreamLocalDisconnect,
    /// `rbac_access_denied_matched_policy[<policy>]` (or plain `rbac_access_denied`).
    RbacDenied,
    /// `ext_authz_denied`.
    ExtAuthzDenied,
    /// `ext_authz_error` and friends: the authorization service itself failed.
    ExtAuthzError,
    /// `local_rate_limited`, `request_rate_limited`.
    RateLimited,
    /// `fault_filter_abort`.
    FaultAbort,
    /// `wasm_fail_stream`: a wasm filter failed and its failure policy closed the stream.
    WasmFailStream,
    /// `direct_response` (e.g. Istio's `block_all` 502).
    DirectResponse,
    /// `filter_chain_not_found`: no listener filter chain matched the connection.
    FilterChainNotFound,
    /// The overload manager refused the request.
    Overload,
    /// A codec or protocol error (`codec_error`, `protocol_error`, `http1.*`, `http2.*`).
    ProtocolError,
    /// No details at all.
    Empty,
    /// A value this version does not know; kept raw.
    Other,
}

/// A `response.code_details` value split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeDetails {
    /// The name before any `{…}`, `[…]` or `(…)`, spaces as `_`.
    pub name: String,
    /// What kind of decision the name stands for.
    pub kind: DetailsKind,
    /// The reason inside braces, e.g. `remote_connection_failure`, `connection_termination`,
    /// `overflow`.
    pub reason: Option<String>,
    /// The transport failure carried inside the braces, when there is one.
    pub transport: Option<TransportFailure>,
    /// The argument in `[…]` or `(…)`: an RBAC policy id or a disconnect reason.
    pub argument: Option<String>,
}

impl CodeDetails {
    /// Decodes any details value; unknown names decode to [`DetailsKind::Other`].
    pub fn parse(raw: &str) -> Self {
        let norm = super::underscored(raw.trim());
        let open = norm.find(['{', '[', '(']);
        let (name, inner, bracket) = match open {
            Some(at) => {
                let bracket = norm.as_bytes()[at];
                let close = match bracket {
                    b'{' => '}',
                    b'[' => ']',
                    _ => ')',
                };
                // The closer is the last char, so nested `ns[a]-policy[b]` stays whole; without
                // it (a value cut off at the length limit) everything after the opener is kept.
                let end = if norm.len() > at + 1 && norm.ends_with(close) {
                    norm.len() - 1
                } else {
                    norm.len()
                };
                (&norm[..at], &norm[at + 1..end], Some(bracket))
            }
            None => (norm.as_str(), "", None),
        };
        let (reason, transport, argument) = match bracket {
            Some(b'{') => {
                let (reason, transport) = split_reason(inner);
                (
                    Some(reason.to_owned()).filter(|r| !r.is_empty()),
                    transport,
                    None,
                )
            }
            Some(_) => (None, None, Some(inner.to_owned())),
            None => (None, None, None),
        };
        Self {
            kind: kind_of(name),
            name: name.to_owned(),
            reason,
            transport,
            argument,
        }
    }

    /// A stable class for grouping: the name plus the reason and the transport class (never the
    /// addresses or free text that differ per request), e.g.
    /// `upstream_reset_before_response_started{remote_connection_failure|connection_refused}`.
    pub fn class(&self) -> String {
        let mut class = self.name.clone();
        match (&self.reason, &self.transport, &self.argument) {
            (Some(reason), Some(transport), _) => {
                class.push_str(&format!("{{{reason}|{}}}", transport.class()));
            }
            (Some(reason), None, _) => class.push_str(&format!("{{{reason}}}")),
            (None, Some(transport), _) => class.push_str(&format!("{{{}}}", transport.class())),
            (None, None, Some(argument)) if self.kind == DetailsKind::RbacDenied => {
                class.push_str(&format!("[{argument}]"));
            }
            (None, None, Some(argument)) => class.push_str(&format!("({argument})")),
            (None, None, None) => {}
        }
        class
    }

    /// Whether the upstream chose the response (`via_upstream`).
    pub fn via_upstream(&self) -> bool {
        self.kind == DetailsKind::ViaUpstream
    }
}

/// Splits brace content into the reason and the transport failure: the first `|` (new) or `,`
/// (old) separates them. A trailing `|remote_address:…` is dropped: it differs per endpoint.
fn split_reason(inner: &str) -> (&str, Option<TransportFailure>) {
    let Some(at) = inner.find(['|', ',']) else {
        return (inner, None);
    };
    let mut transport = &inner[at + 1..];
    if let Some(address) = transport.find("|remote_address:") {
        transport = &transport[..address];
    }
    // `transport:_111` keeps its prefix: the colon is what marks 111 as an errno.
    (&inner[..at], TransportFailure::parse(transport))
}

fn kind_of(name: &str) -> DetailsKind {
    use DetailsKind as K;
    match name {
        "via_upstream" => K::ViaUpstream,
        "upstream_reset_before_response_started" => K::UpstreamResetBeforeResponse,
        "upstream_reset_after_response_started" => K::UpstreamResetAfterResponse,
        "route_not_found" => K::RouteNotFound,
        "no_healthy_upstream" => K::NoHealthyUpstream,
        "cluster_not_found" => K::ClusterNotFound,
        // `upstream_response_timeout` is the pre-1.2x spelling.
        "response_timeout" | "upstream_response_timeout" => K::ResponseTimeout,
        "upstream_per_try_timeout" | "upstream_per_try_idle_timeout" => K::PerTryTimeout,
        "upstream_max_stream_duration_reached" | "max_duration_timeout" => K::MaxStreamDuration,
        "request_header_timeout" | "request_overall_timeout" => K::RequestTimeout,
        "downstream_remote_disconnect" => K::DownstreamRemoteDisconnect,
        "downstream_local_disconnect" => K::DownstreamLocalDisconnect,
        "ext_authz_denied" => K::ExtAuthzDenied,
        "fault_filter_abort" => K::FaultAbort,
        "wasm_fail_stream" => K::WasmFailStream,
        "direct_response" => K::DirectResponse,
        "filter_chain_not_found" => K::FilterChainNotFound,
        "" => K::Empty,
        _ if name.starts_with("rbac_access_denied") => K::RbacDenied,
        _ if name.starts_with("ext_authz") => K::ExtAuthzError,
        _ if name.contains("rate_limit") => K::RateLimited,
        _ if name.contains("idle_timeout") => K::StreamIdleTimeout,
        _ if name.starts_with("overload") => K::Overload,
        _ if name.starts_with("wasm") => K::WasmFailStream,
        _ if name.contains("codec_error")
            || name.contains("protocol_error")
            || name.starts_with("http1.")
            || name.starts_with("http2.")
            || name.starts_with("http3.") =>
        {
            K::ProtocolError
        }
        _ => K::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TransportFailure as T;

    struct Case {
        raw: &'static str,
        kind: DetailsKind,
        reason: Option<&'static str>,
        transport: Option<&'static str>,
        argument: Option<&'static str>,
        class: &'static str,
    }

    const fn case(
        raw: &'static str,
        kind: DetailsKind,
        reason: Option<&'static str>,
        transport: Option<&'static str>,
        argument: Option<&'static str>,
        class: &'static str,
    ) -> Case {
        Case {
            raw,
            kind,
            reason,
            transport,
            argument,
            class,
        }
    }

    #[test]
    fn every_form() {
        use DetailsKind as K;
        let cases = [
            // Envoy 1.40, real runs (ENVOY_FACTS failure matrix).
            case(
                "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
                K::UpstreamResetBeforeResponse,
                Some("remote_connection_failure"),
                Some("connection_refused"),
                None,
                "upstream_reset_before_response_started{remote_connection_failure|connection_refused}",
            ),
            case(
                "upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end}",
                K::UpstreamResetBeforeResponse,
                Some("remote_connection_failure"),
                Some("tls:WRONG_VERSION_NUMBER"),
                None,
                "upstream_reset_before_response_started{remote_connection_failure|tls:WRONG_VERSION_NUMBER}",
            ),
            case(
                "upstream_reset_before_response_started{connection_termination}",
                K::UpstreamResetBeforeResponse,
                Some("connection_termination"),
                None,
                None,
                "upstream_reset_before_response_started{connection_termination}",
            ),
            case(
                "upstream_reset_before_response_started{overflow}",
                K::UpstreamResetBeforeResponse,
                Some("overflow"),
                None,
                None,
                "upstream_reset_before_response_started{overflow}",
            ),
            // Older: comma and errno.
            case(
                "upstream_reset_before_response_started{connection_failure,transport:_111}",
                K::UpstreamResetBeforeResponse,
                Some("connection_failure"),
                Some("connection_refused"),
                None,
                "upstream_reset_before_response_started{connection_failure|connection_refused}",
            ),
            case(
                "upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}",
                K::UpstreamResetBeforeResponse,
                Some("connection_failure"),
                Some("connection_refused"),
                None,
                "upstream_reset_before_response_started{connection_failure|connection_refused}",
            ),
            // Spaces instead of `_`, and a remote address after the transport text.
            case(
                "upstream_reset_before_response_started{remote connection failure|delayed connect error: Connection refused|remote_address:10.0.0.9:9080}",
                K::UpstreamResetBeforeResponse,
                Some("remote_connection_failure"),
                Some("connection_refused"),
                None,
                "upstream_reset_before_response_started{remote_connection_failure|connection_refused}",
            ),
            // Bare: the upstream closed while the request body was still streaming.
            case(
                "upstream_reset_before_response_started",
                K::UpstreamResetBeforeResponse,
                None,
                None,
                None,
                "upstream_reset_before_response_started",
            ),
            case(
                "upstream_reset_after_response_started{remote_reset}",
                K::UpstreamResetAfterResponse,
                Some("remote_reset"),
                None,
                None,
                "upstream_reset_after_response_started{remote_reset}",
            ),
            case(
                "rbac_access_denied_matched_policy[ns[shop]-policy[deny-admin]-rule[0]]",
                K::RbacDenied,
                None,
                None,
                Some("ns[shop]-policy[deny-admin]-rule[0]"),
                "rbac_access_denied_matched_policy[ns[shop]-policy[deny-admin]-rule[0]]",
            ),
            case(
                "rbac_access_denied_matched_policy[none]",
                K::RbacDenied,
                None,
                None,
                Some("none"),
                "rbac_access_denied_matched_policy[none]",
            ),
            case(
                "downstream_local_disconnect(filter_chain_is_being_removed)",
                K::DownstreamLocalDisconnect,
                None,
                None,
                Some("filter_chain_is_being_removed"),
                "downstream_local_disconnect(filter_chain_is_being_removed)",
            ),
            case(
                "response_timeout",
                K::ResponseTimeout,
                None,
                None,
                None,
                "response_timeout",
            ),
            case(
                "upstream_response_timeout",
                K::ResponseTimeout,
                None,
                None,
                None,
                "upstream_response_timeout",
            ),
            case(
                "via_upstream",
                K::ViaUpstream,
                None,
                None,
                None,
                "via_upstream",
            ),
            case(
                "route_not_found",
                K::RouteNotFound,
                None,
                None,
                None,
                "route_not_found",
            ),
            case(
                "no_healthy_upstream",
                K::NoHealthyUpstream,
                None,
                None,
                None,
                "no_healthy_upstream",
            ),
            case(
                "cluster_not_found",
                K::ClusterNotFound,
                None,
                None,
                None,
                "cluster_not_found",
            ),
            case(
                "wasm_fail_stream",
                K::WasmFailStream,
                None,
                None,
                None,
                "wasm_fail_stream",
            ),
            case(
                "downstream_remote_disconnect",
                K::DownstreamRemoteDisconnect,
                None,
                None,
                None,
                "downstream_remote_disconnect",
            ),
            case(
                "local_rate_limited",
                K::RateLimited,
                None,
                None,
                None,
                "local_rate_limited",
            ),
            case(
                "ext_authz_denied",
                K::ExtAuthzDenied,
                None,
                None,
                None,
                "ext_authz_denied",
            ),
            case(
                "ext_authz_error",
                K::ExtAuthzError,
                None,
                None,
                None,
                "ext_authz_error",
            ),
            case(
                "fault_filter_abort",
                K::FaultAbort,
                None,
                None,
                None,
                "fault_filter_abort",
            ),
            case(
                "direct_response",
                K::DirectResponse,
                None,
                None,
                None,
                "direct_response",
            ),
            case(
                "filter_chain_not_found",
                K::FilterChainNotFound,
                None,
                None,
                None,
                "filter_chain_not_found",
            ),
            case(
                "stream_idle_timeout",
                K::StreamIdleTimeout,
                None,
                None,
                None,
                "stream_idle_timeout",
            ),
            case(
                "request_header_timeout",
                K::RequestTimeout,
                None,
                None,
                None,
                "request_header_timeout",
            ),
            case(
                "upstream_reset_before_response_started{protocol_error}",
                K::UpstreamResetBeforeResponse,
                Some("protocol_error"),
                None,
                None,
                "upstream_reset_before_response_started{protocol_error}",
            ),
            case(
                "http1.codec_error",
                K::ProtocolError,
                None,
                None,
                None,
                "http1.codec_error",
            ),
            case("", K::Empty, None, None, None, ""),
            case(
                "something_new_in_1.41",
                K::Other,
                None,
                None,
                None,
                "something_new_in_1.41",
            ),
            // A value cut off mid-way keeps what it has.
            case(
                "rbac_access_denied_matched_policy[ns[shop]-policy[deny",
                K::RbacDenied,
                None,
                None,
                Some("ns[shop]-policy[deny"),
                "rbac_access_denied_matched_policy[ns[shop]-policy[deny]",
            ),
        ];
        for case in cases {
            let details = CodeDetails::parse(case.raw);
            assert_eq!(details.kind, case.kind, "{}", case.raw);
            assert_eq!(details.reason.as_deref(), case.reason, "{}", case.raw);
            assert_eq!(
                details.transport.as_ref().map(T::class).as_deref(),
                case.transport,
                "{}",
                case.raw
            );
            assert_eq!(details.argument.as_deref(), case.argument, "{}", case.raw);
            assert_eq!(details.class(), case.class, "{}", case.raw);
        }
    }
}
