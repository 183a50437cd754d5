//! `upstream_timeout`: UT — the route timeout (or per-try timeout, or max stream duration)
//! expired before the upstream answered: the app is slow, or the timeout is tight.

use super::{Diagnosis, Rule, bits, code, subject, virtual_service};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::Confidence;
use crate::explain::group::{Context, Group};

pub(crate) struct UpstreamTimeout;

impl Rule for UpstreamTimeout {
    fn cause(&self) -> Cause {
        Cause::UpstreamTimeout
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let kind = group.details.kind;
        let timed_out = group.has_any(bits::UT | bits::UMSDR)
            || matches!(
                kind,
                DetailsKind::ResponseTimeout
                    | DetailsKind::PerTryTimeout
                    | DetailsKind::MaxStreamDuration
            );
        if !timed_out {
            return None;
        }
        let resource = virtual_service(
            group,
            "the route timeout: VirtualService http[].timeout, or the client's x-envoy-upstream-rq-timeout-ms",
        );
        let mut next = Next::new(group, context);
        next.routes().resource(&resource).upstream_logs();
        let duration = group.record().duration_nanos / 1_000_000;
        let after = if duration > 0 {
            format!(" after {duration} ms")
        } else {
            String::new()
        };
        let what = match kind {
            DetailsKind::PerTryTimeout => "the per-try timeout",
            DetailsKind::MaxStreamDuration => "the max stream duration",
            _ if group.has(bits::UMSDR) => "the max stream duration",
            _ => "the route timeout",
        };
        Some(
            Diagnosis::new(
                format!(
                    "{}: {what} expired{after} before the upstream answered, so the sidecar answered {} (UT)",
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
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;

    #[test]
    fn table() {
        for details in [RESPONSE_TIMEOUT, OLD_TIMEOUT] {
            let mut record = outbound(504, "UT", details);
            record.duration_nanos = 500_000_000;
            record.route_provenance = VS.into();
            let diagnosis = check(&UpstreamTimeout, client(), record).unwrap();
            assert!(
                diagnosis
                    .title
                    .contains("the route timeout expired after 500 ms"),
                "{}",
                diagnosis.title
            );
            assert_eq!(diagnosis.resource.unwrap().name, "reviews");
        }
        assert!(check(&UpstreamTimeout, client(), outbound(504, "", OLD_TIMEOUT)).is_some());
        // gRPC failures can log 200 with UT.
        assert!(
            check(
                &UpstreamTimeout,
                client(),
                outbound(200, "UT", RESPONSE_TIMEOUT)
            )
            .is_some()
        );
        assert!(check(&UpstreamTimeout, client(), outbound(504, "", VIA_UPSTREAM)).is_none());
    }
}
