//! `wasm_plugin_failure`: a wasm filter failed and, failing closed, answered `503 wasm_fail_stream`.

use super::{Diagnosis, Rule, code, subject};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct WasmPluginFailure;

impl Rule for WasmPluginFailure {
    fn cause(&self) -> Cause {
        Cause::WasmPluginFailure
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        if group.details.kind != DetailsKind::WasmFailStream {
            return None;
        }
        let mut next = Next::new(group, context);
        next.list_here("wasmplugin")
            .list("wasmplugin", Some("istio-system"))
            .proxy_logs("wasm")
            .proxy_status();
        Some(
            Diagnosis::new(
                format!(
                    "{}: a wasm plugin in the sidecar failed and, failing closed, answered {} itself (wasm_fail_stream)",
                    subject(group),
                    code(group)
                ),
                Confidence::High,
            )
            .resource(Some(Resource::hint(
                "a WasmPlugin with failStrategy FAIL_CLOSE (the default): its VM trapped or failed to start; \
                 the sidecar fails every request on that worker until it is fixed",
            )))
            .commands(next),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;

    #[test]
    fn table() {
        let cases = [
            (outbound(503, "", WASM_FAIL), true),
            (inbound(503, "", WASM_FAIL), true),
            (outbound(503, "", VIA_UPSTREAM), false),
            (outbound(503, "UF", REFUSED), false),
        ];
        for (record, claims) in cases {
            let details = record.response_code_details.clone();
            let diagnosis = check(&WasmPluginFailure, client(), record);
            assert_eq!(diagnosis.is_some(), claims, "{details}");
            if let Some(diagnosis) = diagnosis {
                assert!(diagnosis.title.contains("wasm_fail_stream"));
                assert!(diagnosis.next_commands[0].starts_with("kubectl get wasmplugin -n shop"));
            }
        }
    }
}
