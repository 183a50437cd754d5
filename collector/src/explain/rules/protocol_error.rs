//! `protocol_error`: a malformed response (UPE) or request (DPE, IH), or a codec error. In a mesh
//! the usual reason is a port whose protocol is declared wrong (Service port name or
//! appProtocol says http while the app speaks HTTP/2, gRPC or TLS).
//!
//! Which side is read from the details as much as the flags: `http1.codec_error` and the other
//! `http1.*`/`http2.*`/`codec_error` names are the connection manager's, i.e. the downstream's
//! bytes; `upstream_reset_…{protocol_error}` is the upstream's, even when a pasted line is cut
//! inside the braces.

use super::{Diagnosis, Rule, bits, code, subject};
use crate::decode::DetailsKind;
use crate::explain::Cause;
use crate::explain::commands::{self, Next};
use crate::explain::finding::{Confidence, Resource};
use crate::explain::group::{Context, Group};

pub(crate) struct ProtocolError;

impl Rule for ProtocolError {
    fn cause(&self) -> Cause {
        Cause::ProtocolError
    }

    fn check(&self, group: &Group<'_>, context: &Context<'_>) -> Option<Diagnosis> {
        // `protocol_error` is the only reset reason starting so: a cut line keeps a prefix of it.
        let upstream_codec = group.details.reason.as_deref().is_some_and(|reason| {
            reason.starts_with("protocol_error")
                || (reason.len() >= 5 && "protocol_error".starts_with(reason))
        });
        let downstream_codec = group.details.kind == DetailsKind::ProtocolError;
        let side = if group.has(bits::UPE) || (upstream_codec && !group.has(bits::DPE)) {
            "the upstream answered with a malformed response"
        } else if group.has(bits::DPE) || downstream_codec {
            "the client sent a malformed request, or not the protocol this port declares"
        } else if group.has(bits::IH) {
            "the request carried invalid x-envoy-* headers"
        } else {
            return None;
        };
        let service = commands::service(group);
        let mut next = Next::new(group, context);
        next.push_opt(service.as_ref().and_then(commands::service_yaml))
            .describe()
            .clusters();
        let port_hint = match &service {
            Some(service) if service.name.is_some() => format!(
                "the protocol declared for {}'s port (port name http-/http2-/grpc-/tcp- or appProtocol) vs what the app speaks",
                service.fqdn
            ),
            _ => "the declared port protocol (Service port name or appProtocol) vs what the app speaks".to_owned(),
        };
        Some(
            Diagnosis::new(
                format!(
                    "{}: {side} ({}, {})",
                    subject(group),
                    code(group),
                    super::flag_names(group.flags)
                ),
                Confidence::Medium,
            )
            .resource(Some(Resource::hint(port_hint)))
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
        let upe = check(
            &ProtocolError,
            client(),
            outbound(
                502,
                "UPE",
                "upstream_reset_before_response_started{protocol_error}",
            ),
        )
        .unwrap();
        assert!(upe.title.contains("malformed response"), "{}", upe.title);
        assert!(
            upe.resource
                .unwrap()
                .hint
                .contains("reviews.shop.svc.cluster.local's port")
        );
        assert_eq!(
            upe.next_commands[0],
            "kubectl get service reviews -n shop -o yaml"
        );
        // gRPC failures can log 200 with UPE.
        assert!(check(&ProtocolError, client(), outbound(200, "UPE", "")).is_some());
        assert!(
            check(
                &ProtocolError,
                server(),
                inbound(400, "DPE", "http1.codec_error")
            )
            .unwrap()
            .title
            .contains("malformed request")
        );
        assert!(check(&ProtocolError, client(), outbound(503, "", "via_upstream")).is_none());
    }

    #[test]
    fn the_side_comes_from_the_details_too() {
        // Lines cut inside the braces, and details without their flag (salvaged fragments).
        for details in [
            "upstream_reset_before_response_started{protocol_error",
            "upstream_reset_before_response_started{protocol_err",
            "upstream_reset_before_response_started{protocol_error}",
        ] {
            for flag in ["UPE", ""] {
                let diagnosis = check(&ProtocolError, client(), outbound(502, flag, details))
                    .unwrap_or_else(|| panic!("{flag} {details}"));
                assert!(
                    diagnosis.title.contains("malformed response"),
                    "{flag} {details}: {}",
                    diagnosis.title
                );
            }
        }
        // The connection manager's codec errors are the client's bytes, flag or not.
        for flag in ["DPE", ""] {
            let diagnosis = check(
                &ProtocolError,
                server(),
                inbound(400, flag, "http1.codec_error"),
            )
            .unwrap();
            assert!(
                diagnosis
                    .title
                    .contains("the client sent a malformed request"),
                "{flag}: {}",
                diagnosis.title
            );
        }
        // gRPC keeps HTTP 200 with UPE.
        let grpc = check(&ProtocolError, client(), outbound(200, "UPE", "")).unwrap();
        assert!(
            grpc.title.contains("HTTP 200 carrying a gRPC failure, UPE"),
            "{}",
            grpc.title
        );
        assert!(
            check(
                &ProtocolError,
                client(),
                outbound(
                    503,
                    "UC",
                    "upstream_reset_before_response_started{connection_termination}"
                )
            )
            .is_none()
        );
    }
}
