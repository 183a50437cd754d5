//! What the variants do in `on_log`. The reads come in meshwhy's success-path order first
//! (code, flags, the content-type header, route, cluster), then the rest of a full decision
//! record, so `N = 5` prices meshwhy's success-path reads and `N = 16` most of a full record.
//! The CEL variants fetch the same first N values with a single host call each.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;

/// One thing to read.
#[derive(Clone, Copy)]
pub(crate) enum Read {
    /// A property path, as segments.
    Property(&'static [&'static str]),
    /// A request header (lowercase).
    RequestHeader(&'static str),
}

/// Reads in the order `N` takes them.
pub(crate) const PROPERTIES: &[Read] = &[
    Read::Property(&["response", "code"]),
    Read::Property(&["response", "flags"]),
    Read::RequestHeader("content-type"),
    Read::Property(&["xds", "route_name"]),
    Read::Property(&["xds", "cluster_name"]),
    Read::Property(&["request", "id"]),
    Read::Property(&["request", "time"]),
    Read::Property(&["response", "code_details"]),
    Read::Property(&["xds", "virtual_host_name"]),
    Read::Property(&["upstream", "address"]),
    Read::Property(&["upstream", "request_attempt_count"]),
    Read::Property(&["request", "url_path"]),
    Read::Property(&["request", "duration"]),
    Read::Property(&["source", "address"]),
    Read::Property(&["request", "method"]),
    Read::Property(&["request", "host"]),
];

/// The CEL counterpart of each entry of [`PROPERTIES`], as a string (same order).
const CEL_VALUES: &[&str] = &[
    "string(response.code)",
    "string(response.flags)",
    "('content-type' in request.headers ? request.headers['content-type'] : '')",
    "xds.route_name",
    "xds.cluster_name",
    "request.id",
    "string(request.time)",
    "response.code_details",
    "xds.virtual_host_name",
    "upstream.address",
    "string(upstream.request_attempt_count)",
    "request.url_path",
    "string(request.duration)",
    "source.address",
    "request.method",
    "request.host",
];

/// The first `n` values of [`PROPERTIES`] as one CEL string expression, joined by `|`. With
/// `n = 5` that is meshwhy's success path. Evaluation fails when a value is absent (no response
/// code on DC, no route on NR, no upstream address on UH): a real filter would guard each value
/// with `has()` or fall back to separate reads; the benchmark's traffic has every value, so this
/// prices the evaluation itself.
pub(crate) fn cel_expression(n: usize) -> Option<String> {
    let values = CEL_VALUES.get(..n)?;
    let mut terms = Vec::with_capacity(2 * n);
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            terms.push("'|'");
        }
        terms.push(value);
    }
    // Envoy's CEL parser refuses nesting deeper than 32, and `a + b + c + …` nests one level
    // per `+`: concatenate as a balanced tree instead.
    balanced(&terms)
}

/// `terms` concatenated as a balanced tree of `+`.
fn balanced(terms: &[&str]) -> Option<String> {
    match terms {
        [] => None,
        [one] => Some((*one).to_owned()),
        _ => {
            let (left, right) = terms.split_at(terms.len() / 2);
            Some(format!("({} + {})", balanced(left)?, balanced(right)?))
        }
    }
}

/// Performs the first `n` reads and drops the values; returns the bytes read so the reads
/// cannot be optimised away. Only properties the SDK maps to `Ok`/`Err` are listed (no
/// `xds.upstream_host_metadata`, whose `SerializationFailure` the SDK turns into an `Err`
/// anyway), so nothing here can reach the SDK's panicking arms.
pub(crate) fn perform(n: usize) -> usize {
    PROPERTIES
        .iter()
        .take(n)
        .map(|read| {
            let value = match *read {
                Read::Property(path) => hostcalls::get_property(path.to_vec()),
                Read::RequestHeader(name) => {
                    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
                }
            };
            value.ok().flatten().map_or(0, |bytes| bytes.len())
        })
        .sum()
}

/// Compiles `expression` in the host (Envoy's `expr_create` foreign function); the token names
/// it in [`evaluate`].
pub(crate) fn create_expression(expression: &str) -> Result<u32, String> {
    let reply = hostcalls::call_foreign_function("expr_create", Some(expression.as_bytes()))
        .map_err(|status| format!("expr_create failed: {status:?}"))?;
    let bytes = reply.unwrap_or_default();
    let token: [u8; 4] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "expr_create answered {} bytes, not a 4-byte token",
            bytes.len()
        )
    })?;
    Ok(u32::from_le_bytes(token))
}

/// Evaluates the expression for the current request (`expr_evaluate`): the joined values.
pub(crate) fn evaluate(token: u32) -> Result<Vec<u8>, String> {
    match hostcalls::call_foreign_function("expr_evaluate", Some(&token.to_le_bytes())) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err("expr_evaluate returned nothing".to_owned()),
        Err(status) => Err(format!("expr_evaluate failed: {status:?}")),
    }
}
