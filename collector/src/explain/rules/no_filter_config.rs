//! `no_filter_config`: NFCF — a filter whose config comes over ECDS (a WasmPlugin, typically)
//! has no config yet, so the request was rejected.

use super::{Diagnosis, Rule, bits, code, subject};
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct NoFilterConfig;

impl Rule for NoFilterConfig {
    fn cause(&self) -> Cause {
        Cause::NoFilterConfig
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        if !group.has(bits::NFCF) {
            return None;
        }
        let mut next = Next::new(group, context);
        let ecds = format!("istioctl proxy-config ecds {}", next.pod().proxy());
        next.proxy_status()
            .push(ecds)
            .list("wasmplugin", None)
            .proxy_logs("wasm|ecds|extension config");
        Some(
            Diagnosis::new(
                format!(
                    "{}: a filter's discovered config (ECDS) never arrived, so the sidecar rejected the request ({}, NFCF)",
                    subject(group),
                    code(group)
                ),
                Confidence::High,
            )
            .resource(Some(Resource::hint(
                "WasmPlugin delivery: the module did not download or verify (url, sha256, pull secret), \
                 or istiod has not pushed it to this proxy yet",
            )))
            .commands(next),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::testkit::*;

    #[test]
    fn table() {
        assert!(check(&NoFilterConfig, client(), outbound(500, "NFCF", "")).is_some());
        assert!(check(&NoFilterConfig, server(), inbound(500, "NFCF", "")).is_some());
        assert!(check(&NoFilterConfig, client(), outbound(503, "UF", "")).is_none());
        let diagnosis = check(&NoFilterConfig, client(), outbound(500, "NFCF", "")).unwrap();
        assert_eq!(
            diagnosis.next_commands[1],
            "istioctl proxy-config ecds productpage-v1-7d9c.shop"
        );
    }
}
