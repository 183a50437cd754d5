//! `stream_idle_timeout`: the connection manager's own timers — stream idle timeout (SI),
//! max connection/stream duration (DT), and request header/overall timeouts (details only).
//! Formats without SI or details still show the idle timeout as a duration: a request that ended
//! with no flag or DC exactly at Envoy's default stream idle timeout (300 s).

use meshwhy_proto::v1::RecordField;

use super::{Diagnosis, Rule, bits, code, subject, tcp, unseen};
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
        let at_idle_timeout = at_default_idle_timeout(group);
        let what = if group.has(bits::SI) || kind == DetailsKind::StreamIdleTimeout {
            "the stream idle timeout fired: no bytes moved for the idle period".to_owned()
        } else if group.has(bits::DT) {
            "the max connection or stream duration was reached".to_owned()
        } else if kind == DetailsKind::RequestTimeout {
            "the client did not send the whole request in time (request header/overall timeout)"
                .to_owned()
        } else if at_idle_timeout {
            format!(
                "the request ended after {} ms, at Envoy's default stream idle timeout (300 s), with {}: the stream idle timeout most likely fired",
                group.record().duration_nanos / 1_000_000,
                super::flag_names(group.flags)
            )
        } else {
            return None;
        };
        let mut next = Next::new(group, context);
        next.listeners().clusters();
        let mut diagnosis = Diagnosis::new(
            format!("{}: {what} ({})", subject(group), code(group)),
            Confidence::Medium,
        )
        .resource(Some(Resource::hint(
            "connection manager timeouts (stream_idle_timeout, request timeouts; ProxyConfig or \
             an EnvoyFilter) or DestinationRule connectionPool.http.idleTimeout / maxConnectionDuration",
        )))
        .commands(next);
        if at_idle_timeout && !group.has(bits::SI) {
            diagnosis = diagnosis.note(
                "read from the duration: no SI flag or stream_idle_timeout details say so; a stream \
                 that streams nothing for 300 s (long polling, a slow upstream) ends this way",
            );
        }
        Some(diagnosis)
    }
}

/// Envoy's default `stream_idle_timeout` (HTTP connection manager).
const DEFAULT_STREAM_IDLE_TIMEOUT_NANOS: u64 = 300_000_000_000;
/// How far past the timeout a logged duration may land (timer granularity, the close itself).
const IDLE_TIMEOUT_SLACK_NANOS: u64 = 1_000_000_000;

/// An HTTP request that ended with no flag but DC at the default idle timeout, and that no
/// upstream answered (the app's own slow answer is not a timeout).
fn at_default_idle_timeout(group: &Group<'_>) -> bool {
    let record = group.record();
    let duration = record.duration_nanos;
    !tcp(group)
        && !unseen(group, RecordField::Duration)
        && group.flags & !(bits::BENIGN | bits::DC) == 0
        && group.details.kind != DetailsKind::ViaUpstream
        && (DEFAULT_STREAM_IDLE_TIMEOUT_NANOS
            ..DEFAULT_STREAM_IDLE_TIMEOUT_NANOS + IDLE_TIMEOUT_SLACK_NANOS)
            .contains(&duration)
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

    #[test]
    fn a_duration_at_the_default_idle_timeout() {
        // Istio before 1.9 (no details): the client's sidecar logs the stream that idled out as
        // DC or with no flag, 300 s long.
        let idle = |flags: &str, ms: u64| {
            let mut record = inbound(0, flags, "");
            record.duration_nanos = ms * 1_000_000;
            record.unknown_fields = 1 << RecordField::ResponseCodeDetails as u32;
            record
        };
        for flags in ["DC", ""] {
            let diagnosis = check(&StreamIdleTimeout, server(), idle(flags, 300_001)).unwrap();
            assert!(
                diagnosis.title.contains(
                    "ended after 300001 ms, at Envoy's default stream idle timeout (300 s)"
                ),
                "{}",
                diagnosis.title
            );
            assert!(diagnosis.notes[0].starts_with("read from the duration"));
        }
        let engine = explain_records(&[(server(), idle("DC", 300_004))]);
        assert_eq!(engine.findings[0].cause, Cause::StreamIdleTimeout);
        // Other durations, an app's own slow answer, another flag, an unknown duration: not this.
        assert!(check(&StreamIdleTimeout, server(), idle("DC", 12_000)).is_none());
        let mut slow_app = inbound(504, "", "via_upstream");
        slow_app.duration_nanos = 300_000_000_000;
        assert!(check(&StreamIdleTimeout, server(), slow_app).is_none());
        assert!(check(&StreamIdleTimeout, server(), idle("UF", 300_000)).is_none());
        let mut unknown = idle("DC", 300_000);
        unknown.unknown_fields |= 1 << RecordField::Duration as u32;
        assert!(check(&StreamIdleTimeout, server(), unknown).is_none());
    }
}
