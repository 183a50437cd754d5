//! `app_returned_error`: `via_upstream` with no failure flag — the application chose the code and
//! the sidecar only passed it on: "the 503 that is not a 503". On the server sidecar (inbound)
//! that is certain; on the client sidecar it means "whatever answered upstream", which the hop
//! evidence narrows down.

use meshwhy_proto::v1::Direction;

use super::{Diagnosis, Rule, bits, code, subject};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::{self, Next};
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct AppReturnedError;

fn answer(group: &Group<'_>) -> String {
    match group.record().grpc_status {
        Some(status) if status != 0 => {
            format!(
                "grpc-status {status} {} (HTTP {})",
                super::grpc_name(status),
                group.record().response_code
            )
        }
        _ => code(group),
    }
}

impl Rule for AppReturnedError {
    fn cause(&self) -> Cause {
        Cause::AppReturnedError
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let failure_flags = group.flags & !bits::BENIGN;
        let upstream_chose = match group.details.kind {
            DetailsKind::ViaUpstream => true,
            // Old Envoys logged no details at all; without a flag the code is the app's.
            DetailsKind::Empty => group.record().response_code != 0,
            _ => false,
        };
        if failure_flags != 0 || !upstream_chose {
            return None;
        }
        let confident = group.details.kind == DetailsKind::ViaUpstream;
        let answer = answer(group);
        if group.direction == Direction::Inbound {
            let mut next = Next::new(group, context);
            next.recorder_logs();
            return Some(
                Diagnosis::new(
                    format!(
                        "{}: the app answered {answer} itself; the server sidecar saw the app answer it and only passed it on",
                        subject(group)
                    ),
                    if confident { Confidence::High } else { Confidence::Low },
                )
                .resource(Some(Resource::hint(
                    "the application, not mesh configuration: its logs say why",
                )))
                .commands(next),
            );
        }
        let mut next = Next::new(group, context);
        next.upstream_logs();
        if group.record().response_code == 403 {
            next.push_opt(
                commands::server(group, context).map(|server| commands::authz_check(&server)),
            );
        }
        let mut diagnosis = Diagnosis::new(
            format!(
                "{}: the upstream answered {answer} itself (via_upstream); the client sidecar only passed it on",
                subject(group)
            ),
            if confident { Confidence::Medium } else { Confidence::Low },
        )
        .resource(Some(Resource::hint(
            "the upstream application (or a proxy in front of it), not this sidecar's configuration",
        )))
        .commands(next);
        if group.record().response_code == 403 {
            diagnosis = diagnosis.note(
                "a 403 from the server sidecar's AuthorizationPolicy also reads via_upstream here; \
                 with meshwhy on the server its record would name the policy",
            );
        }
        Some(diagnosis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;

    #[test]
    fn table() {
        let inbound_503 =
            check(&AppReturnedError, server(), inbound(503, "", VIA_UPSTREAM)).unwrap();
        assert_eq!(
            inbound_503.title,
            "shop/reviews-v1 (inbound :9080): the app answered 503 itself; the server sidecar saw the app answer it and only passed it on"
        );
        assert_eq!(inbound_503.confidence, Confidence::High);
        assert_eq!(
            inbound_503.next_commands,
            ["kubectl logs reviews-v1-5d8c -n shop --tail=200"]
        );

        let outbound_503 =
            check(&AppReturnedError, client(), outbound(503, "", VIA_UPSTREAM)).unwrap();
        assert!(
            outbound_503
                .title
                .contains("the upstream answered 503 itself (via_upstream)")
        );
        assert_eq!(outbound_503.confidence, Confidence::Medium);

        let mut grpc = outbound(200, "", VIA_UPSTREAM);
        grpc.grpc_status = Some(14);
        let grpc = check(&AppReturnedError, client(), grpc).unwrap();
        assert!(
            grpc.title.contains("grpc-status 14 UNAVAILABLE (HTTP 200)"),
            "{}",
            grpc.title
        );

        // Only the client's record: the logs to read are the destination's, never the caller's.
        let known_server =
            check(&AppReturnedError, client(), outbound(503, "", VIA_UPSTREAM)).unwrap();
        assert_eq!(
            known_server.next_commands,
            ["kubectl logs reviews-v1-5d8c -n shop --tail=200"]
        );
        let unknown_server = check_alone(&AppReturnedError, outbound(503, "", VIA_UPSTREAM))
            .unwrap()
            .next_commands;
        assert_eq!(
            unknown_server,
            ["kubectl logs -n shop -l app=reviews --tail=200 --prefix"]
        );
        // The upstream host is the caller's own address (host network, one loopback IP for
        // every proxy as in the e2e lab): still the destination, not productpage.
        let mut shared_ip = outbound(503, "", VIA_UPSTREAM);
        shared_ip.upstream_host = "10.0.0.5:9080".into();
        let shared_ip = check(&AppReturnedError, client(), shared_ip).unwrap();
        assert_eq!(
            shared_ip.next_commands,
            ["kubectl logs -n shop -l app=reviews --tail=200 --prefix"]
        );
        assert!(
            shared_ip
                .next_commands
                .iter()
                .all(|command| !command.contains("productpage")),
            "{:?}",
            shared_ip.next_commands
        );

        let forbidden =
            check(&AppReturnedError, client(), outbound(403, "", VIA_UPSTREAM)).unwrap();
        assert_eq!(
            forbidden.next_commands[1],
            "istioctl x authz check reviews-v1-5d8c.shop"
        );
        assert_eq!(forbidden.notes.len(), 1);

        // A delay is not a failure flag; URX is.
        assert!(
            check(
                &AppReturnedError,
                client(),
                outbound(503, "DI", VIA_UPSTREAM)
            )
            .is_some()
        );
        assert!(
            check(
                &AppReturnedError,
                client(),
                outbound(503, "URX", VIA_UPSTREAM)
            )
            .is_none()
        );
        assert!(check(&AppReturnedError, client(), outbound(503, "UF", REFUSED)).is_none());
        // Old Envoy without details: the app, with low confidence.
        assert_eq!(
            check(&AppReturnedError, client(), outbound(500, "", ""))
                .unwrap()
                .confidence,
            Confidence::Low
        );
    }
}
