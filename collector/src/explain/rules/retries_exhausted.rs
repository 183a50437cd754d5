//! `retries_exhausted`: URX — every attempt failed. The finding names what the last attempt ran
//! into by judging the group as if URX were not set (UF+URX → "last attempt: connect failed").

use super::{Diagnosis, RULES, Rule, bits, diagnose_with, subject, virtual_service};
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::group::{Context, Group};

pub(crate) struct RetriesExhausted;

/// How the last attempt failed, as a phrase after "last attempt:".
fn last_attempt(cause: Cause, group: &Group<'_>) -> String {
    let code = group.record().response_code;
    match cause {
        Cause::UpstreamConnectFailed => match &group.transport {
            Some(transport) => format!("connect failed ({})", transport.describe()),
            None => "connect failed".to_owned(),
        },
        Cause::MtlsMismatch => "TLS handshake failed".to_owned(),
        Cause::UpstreamConnectionTerminated => "the upstream closed the connection".to_owned(),
        Cause::IdleTimeoutRace => "the upstream closed a reused keep-alive connection".to_owned(),
        Cause::CertificateNotReady => "no workload certificate (SDS)".to_owned(),
        Cause::UpstreamReset => "the upstream reset the stream".to_owned(),
        Cause::UpstreamTimeout => "timed out".to_owned(),
        Cause::CircuitBreakerOverflow => "circuit breaker overflow".to_owned(),
        Cause::NoHealthyUpstream => "no healthy upstream".to_owned(),
        Cause::AppReturnedError => format!("the app answered {code}"),
        Cause::ProtocolError => "protocol error".to_owned(),
        other => other.id().replace('_', " "),
    }
}

impl Rule for RetriesExhausted {
    fn cause(&self) -> Cause {
        Cause::RetriesExhausted
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        if !group.has(bits::URX) {
            return None;
        }
        let mut without = group.clone();
        without.flags &= !bits::URX;
        let others: Vec<&dyn Rule> = RULES
            .iter()
            .copied()
            .filter(|rule| rule.cause() != Cause::RetriesExhausted)
            .collect();
        let (cause, inner) = diagnose_with(&others, &without, context);
        let attempts = match group.max_attempts {
            0 | 1 => String::new(),
            n => format!(" after {n} attempts"),
        };
        let mut next = Next::new(group, context);
        for command in inner.next_commands {
            next.push(command);
        }
        // The retry policy itself: how many, on what.
        next.routes();
        // A gRPC failure keeps HTTP 200: say what the client got, or the title reads as a success.
        let answered = match group.record().response_code {
            200..=299 => format!("; the client got {}", super::code(group)),
            _ => String::new(),
        };
        let mut diagnosis = Diagnosis::new(
            format!(
                "{}: retries exhausted{attempts}; last attempt: {}{answered}",
                subject(group),
                last_attempt(cause, group)
            ),
            inner.confidence,
        )
        .resource(match inner.resource {
            // The retry policy lives in the route's VirtualService: name it when the last
            // attempt's cause names no resource of its own (e.g. the app answered 503).
            Some(resource) if !resource.kind.is_empty() => Some(resource),
            other => match &group.route_resource {
                Some(_) => {
                    let hint = match other.map(|r| r.hint).filter(|h| !h.is_empty()) {
                        Some(last) => format!(
                            "its retry policy (retries, retryOn) retried and gave up; the last attempt points at {last}"
                        ),
                        None => "its retry policy (retries, retryOn) retried and gave up".to_owned(),
                    };
                    Some(virtual_service(group, &hint))
                }
                None => other,
            },
        })
        .commands(next);
        diagnosis.notes = inner.notes;
        diagnosis.last_attempt = Some(cause);
        if cause == Cause::UpstreamConnectFailed {
            diagnosis = diagnosis.note(
                "Istio retries connect failures twice by default, so a closed port shows as UF,URX with 3 attempts",
            );
        }
        Some(diagnosis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::finding::Confidence;
    use crate::explain::fixtures::*;
    use crate::explain::testkit::*;

    #[test]
    fn table() {
        let cases = [
            // Envoy 1.40 on a sidecar: closed port with Istio's default retries.
            (
                outbound(503, "UF,URX", REFUSED),
                Cause::UpstreamConnectFailed,
                "last attempt: connect failed (connection refused)",
            ),
            // retry_on 5xx and the app keeps answering 503.
            (
                outbound(503, "URX", VIA_UPSTREAM),
                Cause::AppReturnedError,
                "last attempt: the app answered 503",
            ),
            (
                outbound(503, "UC,URX", TERMINATED),
                Cause::UpstreamConnectionTerminated,
                "last attempt: the upstream closed the connection",
            ),
            (
                outbound(504, "UT,URX", RESPONSE_TIMEOUT),
                Cause::UpstreamTimeout,
                "last attempt: timed out",
            ),
            // Older comma/errno details.
            (
                outbound(503, "UF,URX", OLD_REFUSED),
                Cause::UpstreamConnectFailed,
                "connect failed (connection refused)",
            ),
        ];
        for (mut record, cause, phrase) in cases {
            record.attempt_count = 3;
            let details = record.response_code_details.clone();
            let diagnosis = check(&RetriesExhausted, client(), record).unwrap();
            assert_eq!(diagnosis.last_attempt, Some(cause), "{details}");
            assert!(
                diagnosis
                    .title
                    .contains("retries exhausted after 3 attempts"),
                "{}",
                diagnosis.title
            );
            assert!(diagnosis.title.contains(phrase), "{}", diagnosis.title);
            assert!(
                diagnosis
                    .next_commands
                    .iter()
                    .any(|c| c.contains("proxy-config routes"))
            );
        }
        // retryOn 5xx through a VirtualService and the app keeps answering 503: the
        // VirtualService (its retry policy) is the resource.
        let mut record = outbound(503, "URX", VIA_UPSTREAM);
        record.route_provenance = VS.into();
        let diagnosis = check(&RetriesExhausted, client(), record).unwrap();
        assert_eq!(diagnosis.last_attempt, Some(Cause::AppReturnedError));
        let resource = diagnosis.resource.unwrap();
        assert_eq!(
            (
                resource.kind.as_str(),
                resource.namespace.as_str(),
                resource.name.as_str()
            ),
            ("VirtualService", "shop", "reviews")
        );
        let diagnosis = check(
            &RetriesExhausted,
            client(),
            outbound(503, "UF,URX", REFUSED),
        )
        .unwrap();
        assert_eq!(diagnosis.confidence, Confidence::High);
        assert!(check(&RetriesExhausted, client(), outbound(503, "UF", REFUSED)).is_none());
    }
}
