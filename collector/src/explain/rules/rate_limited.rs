//! `rate_limited`: RL (a local or global rate limit said no; 429 by default) or RLSE (the rate
//! limit service failed and the filter failed closed).

use super::{Diagnosis, Rule, bits, code, subject};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct RateLimited;

impl Rule for RateLimited {
    fn cause(&self) -> Cause {
        Cause::RateLimited
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let limited = group.has(bits::RL) || group.details.kind == DetailsKind::RateLimited;
        let service_failed = group.has(bits::RLSE);
        if !limited && !service_failed {
            return None;
        }
        let mut next = Next::new(group, context);
        next.list("envoyfilter", None)
            .listeners()
            .proxy_stats("ratelimit|rate_limit");
        let title = if service_failed {
            format!(
                "{}: the rate limit service failed and the filter rejected the request ({}, RLSE)",
                subject(group),
                code(group)
            )
        } else {
            format!(
                "{}: a rate limit rejected the request ({}, RL): too many requests, not a broken upstream",
                subject(group),
                code(group)
            )
        };
        Some(
            Diagnosis::new(title, Confidence::High)
                .resource(Some(Resource::hint(
                    "the local_ratelimit / ratelimit filter config (usually an EnvoyFilter) on this proxy",
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
        let rl = check(
            &RateLimited,
            client(),
            outbound(429, "RL", "local_rate_limited"),
        )
        .unwrap();
        assert!(rl.title.contains("(429, RL)"), "{}", rl.title);
        let rlse = check(
            &RateLimited,
            client(),
            outbound(500, "RLSE", "rate_limiter_error"),
        )
        .unwrap();
        assert!(rlse.title.contains("RLSE"));
        assert!(
            check(
                &RateLimited,
                server(),
                inbound(429, "", "local_rate_limited")
            )
            .is_some()
        );
        // UO is a circuit breaker, not a rate limit.
        assert!(check(&RateLimited, client(), outbound(503, "UO", "")).is_none());
        assert!(check(&RateLimited, client(), outbound(429, "", "via_upstream")).is_none());
    }
}
