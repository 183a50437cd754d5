//! `explain`/`top` on access-log lines (`--input-file PATH|-`, `--line`): lines → records (the
//! log reader) → the same engine, locally. Every line counts: a line that is not an access-log
//! entry (istio-proxy's own logs interleave) is counted and sampled in the warning.

use meshwhy_proto::v1 as pb;

use crate::cli::CliError;
use crate::cli::logs::{self, Identity, Input, Loaded, LogSource};
use crate::explain::{self, RecordRef, Scope, wire};

/// Reads `input` and explains it as `request` asks.
pub(crate) fn explain_log(
    input: &Input,
    source: &LogSource,
    identity: &Identity,
    request: &pb::ExplainRequest,
) -> Result<pb::ExplainResponse, CliError> {
    let loaded = logs::load(input, source, identity)?;
    Ok(explain_loaded(&loaded, request))
}

/// Runs the engine over records read from a log as if a collector held them.
pub(crate) fn explain_loaded(loaded: &Loaded, request: &pb::ExplainRequest) -> pb::ExplainResponse {
    let proxies = &loaded.proxies.list;
    let input = explain::Input {
        records: loaded
            .records
            .iter()
            .map(|(proxy, record)| RecordRef::new(&proxies[*proxy], record))
            .collect(),
        successes: Vec::new(),
        proxies: proxies.iter().collect(),
        // A log holds every request it covers: shares of traffic are exact.
        window_complete: true,
    };
    if !request.request_id.is_empty() {
        return wire::request_report(&explain::explain_request(&input, &request.request_id));
    }
    let scope = Scope {
        namespace: non_empty(&request.namespace),
        workload: non_empty(&request.workload),
        service: non_empty(&request.service),
        since_unix_nanos: request.since_unix_nanos,
    };
    let limit = usize::try_from(request.limit).unwrap_or(0);
    wire::report(&explain::explain(&input, &scope, limit))
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}
