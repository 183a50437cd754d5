//! `stream_idle_timeout`: the connection manager's own timers — stream idle timeout (SI),
//! max connection/stream duration (DT), and request header/overall timeouts (details only).

use super::{Diagnosis, Rule, bits, code, subject};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct StreamIdleTimeout;

impl Rule for StreamIdleTimeout {
    fn cause(&self) -> Cause {
        Cause::StreamIdleTimeout
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let kind = group.details.kind;
        let what = if group.has(bits::SI) || kind == DetailsKind::StreamIdleTimeout {
            "the stream idle timeout fired: no bytes moved for the idle period"
        } else if group.has(bits::DT) {
            "the max connection or stream duration was reached"
        } else if kind == DetailsKind::RequestTimeout {
            "the client did not send the whole request in time (request header/overall timeout)"
        } else {
            return None;
        };
        let mut next = Next::new(group, context);
        next.listeners().clusters();
        Some(
            Diagnosis::new(
                format!("{}: {what} ({})", subject(group), code(group)),
                Confidence::Medium,
            )
            .resource(Some(Resource::hint(
                "connection manager timeouts (stream_idle_timeout, request timeouts; ProxyConfig or \
                 an EnvoyFilter) or DestinationRule connectionPool.http.idleTimeout / maxConnectionDuration",
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
        assert!(
            check(
                &StreamIdleTimeout,
                client(),
                outbound(408, "SI", "stream_idle_timeout")
            )
            .unwrap()
            .title
            .contains("idle")
        );
        assert!(
            check(&StreamIdleTimeout, server(), inbound(0, "DT", ""))
                .unwrap()
                .title
                .contains("duration")
        );
        assert!(
            check(
                &StreamIdleTimeout,
                server(),
                inbound(408, "", "request_header_timeout")
            )
            .unwrap()
            .title
            .contains("in time")
        );
        assert!(
            check(
                &StreamIdleTimeout,
                client(),
                outbound(504, "UT", "response_timeout")
            )
            .is_none()
        );
    }
}
