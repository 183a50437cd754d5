//! `fault_injected`: a VirtualService fault aborted the request (FI, `fault_filter_abort`).

use super::{Diagnosis, Rule, bits, code, subject, virtual_service};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::Confidence;
use crate::explain::group::{Context, Group};

pub(crate) struct FaultInjected;

impl Rule for FaultInjected {
    fn cause(&self) -> Cause {
        Cause::FaultInjected
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        if !group.has(bits::FI) && group.details.kind != DetailsKind::FaultAbort {
            return None;
        }
        let resource = virtual_service(group, "a VirtualService http[].fault.abort on this route");
        let mut next = Next::new(group, context);
        next.resource(&resource).routes();
        let delayed = if group.has(bits::DI) {
            " after an injected delay"
        } else {
            ""
        };
        Some(
            Diagnosis::new(
                format!(
                    "{}: fault injection aborted the request with {}{delayed} (FI): configured, not broken",
                    subject(group),
                    code(group)
                ),
                Confidence::High,
            )
            .resource(Some(resource))
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
        let mut record = outbound(500, "FI", "fault_filter_abort");
        record.route_provenance = VS.into();
        let diagnosis = check(&FaultInjected, client(), record).unwrap();
        let resource = diagnosis.resource.unwrap();
        assert_eq!(
            (resource.kind.as_str(), resource.name.as_str()),
            ("VirtualService", "reviews")
        );
        assert_eq!(
            diagnosis.next_commands[0],
            "kubectl get virtualservice reviews -n shop -o yaml"
        );
        assert!(
            check(
                &FaultInjected,
                client(),
                outbound(500, "DI,FI", "fault_filter_abort")
            )
            .unwrap()
            .title
            .contains("delay")
        );
        // A delay alone is not an abort.
        assert!(
            check(
                &FaultInjected,
                client(),
                outbound(200, "DI", "via_upstream")
            )
            .is_none()
        );
    }
}
