//! `upstream_connection_terminated`: UC — the upstream closed the connection before answering:
//! the app crashed or closed an idle keep-alive connection Envoy was about to reuse.

use super::{Diagnosis, Rule, bits, code, destination_rule, subject};
use crate::explain::Cause;
use crate::explain::commands::{self, Next};
use crate::explain::finding::Confidence;
use crate::explain::group::{Context, Group};

pub(crate) struct UpstreamConnectionTerminated;

impl Rule for UpstreamConnectionTerminated {
    fn cause(&self) -> Cause {
        Cause::UpstreamConnectionTerminated
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let terminated = group.has(bits::UC)
            || group.details.reason.as_deref() == Some("connection_termination");
        if !terminated {
            return None;
        }
        let resource = destination_rule(
            group,
            "the app closes connections Envoy reuses (its keep-alive timeout shorter than the \
             DestinationRule's connectionPool.http.idleTimeout), or it crashed mid-request",
        );
        let mut next = Next::new(group, context);
        next.upstream_logs().resource(&resource).clusters();
        if let Some(namespace) = commands::service(group).and_then(|s| s.namespace) {
            next.list("peerauthentication", Some(&namespace));
        }
        Some(
            Diagnosis::new(
                format!(
                    "{}: the upstream closed the connection before answering, so the sidecar answered {} (UC)",
                    subject(group),
                    code(group)
                ),
                Confidence::Medium,
            )
            .resource(Some(resource))
            .commands(next)
            .note("plaintext sent to a STRICT mTLS server also ends this way; the server side then logs filter_chain_not_found"),
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
        let diagnosis = check(
            &UpstreamConnectionTerminated,
            client(),
            outbound(503, "UC", TERMINATED),
        )
        .unwrap();
        assert!(diagnosis.title.ends_with("(UC)"), "{}", diagnosis.title);
        assert_eq!(
            diagnosis.next_commands[0],
            "kubectl logs reviews-v1-5d8c -n shop --tail=200"
        );
        let alone = check_alone(
            &UpstreamConnectionTerminated,
            outbound(503, "UC", TERMINATED),
        )
        .unwrap();
        assert_eq!(
            alone.next_commands[0],
            "kubectl logs -n shop -l app=reviews --tail=200 --prefix"
        );
        // The upstream host is the caller's own address: the destination's logs, not the caller's.
        let mut shared_ip = outbound(503, "UC", TERMINATED);
        shared_ip.upstream_host = "10.0.0.5:9080".into();
        let shared_ip = check(&UpstreamConnectionTerminated, client(), shared_ip).unwrap();
        assert_eq!(
            shared_ip.next_commands[0],
            "kubectl logs -n shop -l app=reviews --tail=200 --prefix"
        );
        assert!(
            !shared_ip
                .next_commands
                .iter()
                .any(|command| command.starts_with("kubectl logs productpage")),
            "{:?}",
            shared_ip.next_commands
        );
        assert!(
            check(
                &UpstreamConnectionTerminated,
                client(),
                outbound(503, "", TERMINATED)
            )
            .is_some()
        );
        assert!(
            check(
                &UpstreamConnectionTerminated,
                client(),
                outbound(503, "UF", REFUSED)
            )
            .is_none()
        );
    }
}
