//! `downstream_disconnect`: the client went away before the response (DC, DR,
//! `downstream_remote_disconnect`), or the sidecar closed it (`downstream_local_disconnect(<reason>)`,
//! e.g. `filter_chain_is_being_removed`: listener config churn).

use super::{Diagnosis, Rule, bits, code, subject};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::Next;
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct DownstreamDisconnect;

impl Rule for DownstreamDisconnect {
    fn cause(&self) -> Cause {
        Cause::DownstreamDisconnect
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        let kind = group.details.kind;
        let mut next = Next::new(group, context);
        if kind == DetailsKind::DownstreamLocalDisconnect {
            let reason = group.details.argument.as_deref().unwrap_or("");
            next.proxy_status()
                .proxy_logs("draining|filter chain|listener");
            let (why, hint) = if reason.contains("filter_chain_is_being_removed") {
                (
                    "the sidecar closed client connections because their listener filter chain was removed (config churn)",
                    "frequent listener updates to this proxy: check what changes (Services, ServiceEntries, Sidecars) and istiod push rates",
                )
            } else {
                (
                    "the sidecar closed the client connection",
                    "the listener and connection manager settings",
                )
            };
            return Some(
                Diagnosis::new(
                    format!("{}: {why} ({reason})", subject(group)),
                    Confidence::High,
                )
                .resource(Some(Resource::hint(hint)))
                .commands(next),
            );
        }
        let disconnected =
            group.has_any(bits::DC | bits::DR) || kind == DetailsKind::DownstreamRemoteDisconnect;
        if !disconnected {
            return None;
        }
        next.proxy_logs("downstream_remote_disconnect|DC");
        let mut diagnosis = Diagnosis::new(
            format!(
                "{}: the client went away before the response ({}, {})",
                subject(group),
                code(group),
                super::flag_names(group.flags)
            ),
            Confidence::Medium,
        )
        .resource(Some(Resource::hint(
            "the calling client's own timeout or cancellation, not this hop",
        )))
        .commands(next);
        if group.joined == 0 {
            diagnosis = diagnosis.note(
                "when the client has a meshwhy sidecar, its record says why it gave up (e.g. a route timeout, UT)",
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
        let dc = check(
            &DownstreamDisconnect,
            server(),
            inbound(0, "DC", DOWNSTREAM_DISCONNECT),
        )
        .unwrap();
        assert_eq!(
            dc.title,
            "shop/reviews-v1 (inbound :9080): the client went away before the response (no response, DC)"
        );
        let churn = check(
            &DownstreamDisconnect,
            server(),
            inbound(503, "", FILTER_CHAIN_REMOVED),
        )
        .unwrap();
        assert!(churn.title.contains("config churn"), "{}", churn.title);
        assert_eq!(churn.confidence, Confidence::High);
        assert!(
            check(
                &DownstreamDisconnect,
                client(),
                outbound(503, "UF", REFUSED)
            )
            .is_none()
        );
    }
}
