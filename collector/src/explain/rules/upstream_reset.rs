//! `upstream_reset`: UR or a reset in the details — the upstream reset the stream, before or
//! after the response started; a bare `upstream_reset_before_response_started` means it closed
//! while the request body was still streaming.

use super::{Diagnosis, Rule, bits, code, subject};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct UpstreamReset;

impl Rule for UpstreamReset {
    fn cause(&self) -> Cause {
        Cause::UpstreamReset
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let kind = group.details.kind;
        let reset = group.has_any(bits::UR | bits::LR)
            || matches!(
                kind,
                DetailsKind::UpstreamResetBeforeResponse | DetailsKind::UpstreamResetAfterResponse
            );
        if !reset {
            return None;
        }
        let how = match (kind, group.details.reason.as_deref()) {
            (DetailsKind::UpstreamResetAfterResponse, _) => {
                "the upstream reset the stream mid-response"
            }
            (DetailsKind::UpstreamResetBeforeResponse, None) => {
                "the upstream closed while the request body was still being sent"
            }
            _ if group.has(bits::LR) => "the stream was reset locally by Envoy",
            _ => "the upstream reset the stream before answering",
        };
        let mut next = Next::new(group, context);
        next.upstream_logs().clusters();
        Some(
            Diagnosis::new(
                format!("{}: {how} ({})", subject(group), code(group)),
                Confidence::Medium,
            )
            .resource(Some(Resource::hint(
                "the upstream app (request size limits, crashes) or its HTTP/2 stream limits",
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
        let bare = check(&UpstreamReset, client(), outbound(503, "", BARE_RESET)).unwrap();
        assert!(bare.title.contains("request body"), "{}", bare.title);
        let after = check(
            &UpstreamReset,
            client(),
            outbound(
                200,
                "UR",
                "upstream_reset_after_response_started{remote_reset}",
            ),
        )
        .unwrap();
        assert!(after.title.contains("mid-response"));
        let remote = check(
            &UpstreamReset,
            client(),
            outbound(
                503,
                "UR",
                "upstream_reset_before_response_started{remote_reset}",
            ),
        )
        .unwrap();
        assert!(remote.title.contains("before answering"));
        assert!(check(&UpstreamReset, client(), outbound(503, "", VIA_UPSTREAM)).is_none());
    }
}
