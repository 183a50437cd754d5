//! Failure classification: which outcomes get a full record and which only bump a counter.
//!
//! Split into steps so the glue can decide with the cheapest reads first: code and flags, then
//! (only for otherwise-successful requests) the content-type, then (only for gRPC) grpc-status.

use crate::config::Config;

/// Response flag DI (bit 9): a fault filter delayed the request. Seen on successes.
pub const FLAG_DELAY_INJECTED: u64 = 1 << 9;
/// Response flag RFCF (bit 20): the response came from the cache filter. Seen on successes.
pub const FLAG_RESPONSE_FROM_CACHE: u64 = 1 << 20;
/// Flags that do not by themselves make a request a failure.
pub const BENIGN_FLAGS: u64 = FLAG_DELAY_INJECTED | FLAG_RESPONSE_FROM_CACHE;

const GRPC_CONTENT_TYPE: &[u8] = b"application/grpc";

/// What is known about a request's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// `response.code`; `None` (or 0) when no response was sent, e.g. the client went away.
    pub code: Option<u32>,
    /// `response.flags` bitmask.
    pub flags: u64,
    /// The request's content-type starts with `application/grpc`.
    pub grpc: bool,
    /// `response.grpc_status`, read only for gRPC requests (Envoy reports a non-zero value for
    /// plain HTTP too, so it means nothing there).
    pub grpc_status: Option<u32>,
}

/// The capture set from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    capture_min_code: u32,
    capture_codes: Vec<u32>,
}

impl Classifier {
    /// Builds the classifier from the validated configuration.
    pub fn new(config: &Config) -> Self {
        Self {
            capture_min_code: config.capture_min_code,
            capture_codes: config.capture_codes.clone(),
        }
    }

    /// First step, from `response.code` and `response.flags` alone: any flag other than DI and
    /// RFCF, no response at all, a code at or above `capture_min_code`, or a listed code.
    pub fn fails_on_code_or_flags(&self, code: Option<u32>, flags: u64) -> bool {
        if flags & !BENIGN_FLAGS != 0 {
            return true;
        }
        match code {
            None | Some(0) => true,
            Some(code) => code >= self.capture_min_code || self.capture_codes.contains(&code),
        }
    }

    /// The whole decision, for callers that have every value.
    pub fn is_failure(&self, outcome: &Outcome) -> bool {
        self.fails_on_code_or_flags(outcome.code, outcome.flags)
            || (outcome.grpc && grpc_failed(outcome.grpc_status))
    }
}

/// Whether a request content-type is gRPC (`application/grpc`, `application/grpc+proto`, …).
pub fn is_grpc_content_type(content_type: &[u8]) -> bool {
    content_type
        .get(..GRPC_CONTENT_TYPE.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(GRPC_CONTENT_TYPE))
}

/// Whether a gRPC request's status is a failure: present and not OK.
pub fn grpc_failed(grpc_status: Option<u32>) -> bool {
    matches!(grpc_status, Some(status) if status != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier() -> Classifier {
        Classifier {
            capture_min_code: 500,
            capture_codes: vec![403, 429],
        }
    }

    #[test]
    fn table() {
        let uf = 1 << 5;
        let urx = 1 << 15;
        let dc = 1 << 14;
        let unknown_bit = 1 << 40;
        let cases: &[(&str, Outcome, bool)] = &[
            (
                "plain 200",
                Outcome {
                    code: Some(200),
                    ..Default::default()
                },
                false,
            ),
            (
                "404 is not captured by default",
                Outcome {
                    code: Some(404),
                    ..Default::default()
                },
                false,
            ),
            (
                "403 is listed",
                Outcome {
                    code: Some(403),
                    ..Default::default()
                },
                true,
            ),
            (
                "429 is listed",
                Outcome {
                    code: Some(429),
                    ..Default::default()
                },
                true,
            ),
            (
                "499 below the minimum",
                Outcome {
                    code: Some(499),
                    ..Default::default()
                },
                false,
            ),
            (
                "500",
                Outcome {
                    code: Some(500),
                    ..Default::default()
                },
                true,
            ),
            (
                "app 503 without flags",
                Outcome {
                    code: Some(503),
                    ..Default::default()
                },
                true,
            ),
            (
                "UF",
                Outcome {
                    code: Some(503),
                    flags: uf,
                    ..Default::default()
                },
                true,
            ),
            (
                "200 with URX",
                Outcome {
                    code: Some(200),
                    flags: urx,
                    ..Default::default()
                },
                true,
            ),
            (
                "DC, no code",
                Outcome {
                    code: None,
                    flags: dc,
                    ..Default::default()
                },
                true,
            ),
            (
                "no code at all",
                Outcome {
                    code: None,
                    ..Default::default()
                },
                true,
            ),
            (
                "code 0",
                Outcome {
                    code: Some(0),
                    ..Default::default()
                },
                true,
            ),
            (
                "DI on a success",
                Outcome {
                    code: Some(200),
                    flags: FLAG_DELAY_INJECTED,
                    ..Default::default()
                },
                false,
            ),
            (
                "RFCF on a success",
                Outcome {
                    code: Some(200),
                    flags: FLAG_RESPONSE_FROM_CACHE,
                    ..Default::default()
                },
                false,
            ),
            (
                "DI plus UF",
                Outcome {
                    code: Some(503),
                    flags: FLAG_DELAY_INJECTED | uf,
                    ..Default::default()
                },
                true,
            ),
            (
                "unknown flag bit",
                Outcome {
                    code: Some(200),
                    flags: unknown_bit,
                    ..Default::default()
                },
                true,
            ),
            (
                "gRPC OK",
                Outcome {
                    code: Some(200),
                    grpc: true,
                    grpc_status: Some(0),
                    ..Default::default()
                },
                false,
            ),
            (
                "gRPC UNAVAILABLE under HTTP 200",
                Outcome {
                    code: Some(200),
                    grpc: true,
                    grpc_status: Some(14),
                    ..Default::default()
                },
                true,
            ),
            (
                "gRPC without a status",
                Outcome {
                    code: Some(200),
                    grpc: true,
                    grpc_status: None,
                    ..Default::default()
                },
                false,
            ),
            (
                "plain HTTP 200 reports grpc_status 2; ignored",
                Outcome {
                    code: Some(200),
                    grpc: false,
                    grpc_status: Some(2),
                    ..Default::default()
                },
                false,
            ),
        ];
        let classifier = classifier();
        for (name, outcome, want) in cases {
            assert_eq!(classifier.is_failure(outcome), *want, "{name}");
        }
    }

    #[test]
    fn capture_set_is_configurable() {
        let classifier = Classifier {
            capture_min_code: 600,
            capture_codes: vec![404],
        };
        assert!(!classifier.fails_on_code_or_flags(Some(503), 0));
        assert!(classifier.fails_on_code_or_flags(Some(404), 0));
        assert!(classifier.fails_on_code_or_flags(Some(503), 1 << 1));
    }

    #[test]
    fn grpc_content_types() {
        assert!(is_grpc_content_type(b"application/grpc"));
        assert!(is_grpc_content_type(b"application/grpc+proto"));
        assert!(is_grpc_content_type(b"application/grpc-web"));
        assert!(is_grpc_content_type(b"Application/GRPC"));
        assert!(!is_grpc_content_type(b"application/json"));
        assert!(!is_grpc_content_type(b"application/grp"));
        assert!(!is_grpc_content_type(b""));
    }
}
