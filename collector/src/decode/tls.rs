//! TLS errors as Envoy prints them: upstream `TLS_error:|268435703:SSL_routines:…:TLS_error_end`
//! (decimal packed code) and downstream `TLS_error|error:1000010b:SSL routines:…` (hex).

/// Which side of the proxy the TLS handshake failed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsSide {
    /// Envoy was the TLS client (towards the upstream): the `TLS_error:|<decimal>` form.
    Upstream,
    /// Envoy was the TLS server (from the downstream): the `TLS_error|error:<hex>` form.
    Downstream,
    /// The text did not say.
    Unknown,
}

/// A decoded BoringSSL error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// Upstream or downstream handshake.
    pub side: TlsSide,
    /// The packed error code as printed (decimal upstream, hex downstream), when present.
    pub code: Option<String>,
    /// The reason name, e.g. `WRONG_VERSION_NUMBER`, `CERTIFICATE_VERIFY_FAILED`.
    pub reason: Option<String>,
}

impl TlsError {
    /// Decodes `text` when it is a TLS error in any of the known spellings (spaces or `_`).
    pub fn parse(text: &str) -> Option<Self> {
        let norm = super::underscored(text);
        let start = find_ignore_case(&norm, "TLS_error")
            .or_else(|| find_ignore_case(&norm, "SSL_routines"))?;
        let tail = &norm[start..];
        let side = if tail.len() > 9 && tail[9..].starts_with(":|") {
            TlsSide::Upstream
        } else if tail.len() > 9 && tail[9..].starts_with("|error:") {
            TlsSide::Downstream
        } else {
            TlsSide::Unknown
        };
        let code = match side {
            TlsSide::Upstream => leading(&tail[11..], |c| c.is_ascii_digit()),
            TlsSide::Downstream => leading(&tail[16..], |c| c.is_ascii_hexdigit()),
            TlsSide::Unknown => None,
        };
        let reason = find_ignore_case(tail, "OPENSSL_internal:")
            .and_then(|at| {
                leading(&tail[at + "OPENSSL_internal:".len()..], |c| {
                    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
                })
            })
            // `TLS_error_end` terminates the list; it is not a reason.
            .filter(|reason| !reason.starts_with("TLS_"));
        Some(Self { side, code, reason })
    }

    /// A short reading of the reason for people, when it is a well-known one.
    pub fn meaning(&self) -> Option<&'static str> {
        Some(match self.reason.as_deref()? {
            "WRONG_VERSION_NUMBER" => "the peer did not answer with TLS (it speaks plaintext)",
            "CERTIFICATE_VERIFY_FAILED" => {
                "the peer's certificate did not verify (CA, trust domain or SAN mismatch)"
            }
            "TLSV1_ALERT_UNKNOWN_CA" | "SSLV3_ALERT_CERTIFICATE_UNKNOWN" => {
                "the peer rejected our certificate (unknown CA)"
            }
            "TLSV1_ALERT_CERTIFICATE_REQUIRED" | "PEER_DID_NOT_RETURN_A_CERTIFICATE" => {
                "the peer required a client certificate that was not sent"
            }
            "NO_START_LINE" => "a certificate or key could not be read",
            "HTTP_REQUEST" => "plaintext HTTP was sent to a TLS port",
            "SSLV3_ALERT_HANDSHAKE_FAILURE" | "HANDSHAKE_FAILURE_ON_CLIENT_HELLO" => {
                "no common TLS version, cipher or ALPN"
            }
            _ => return None,
        })
    }
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The longest non-empty prefix of `text` whose chars all satisfy `keep`.
fn leading(text: &str, keep: impl Fn(char) -> bool) -> Option<String> {
    let end = text.find(|c: char| !keep(c)).unwrap_or(text.len());
    (end > 0).then(|| text[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let cases: [(&str, TlsSide, Option<&str>, Option<&str>); 6] = [
            // Envoy 1.40 upstream, from the details of a real run.
            (
                "TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end",
                TlsSide::Upstream,
                Some("268435703"),
                Some("WRONG_VERSION_NUMBER"),
            ),
            // The same in upstream.transport_failure_reason, with spaces.
            (
                "TLS error: 268435703:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER",
                TlsSide::Unknown,
                None,
                Some("WRONG_VERSION_NUMBER"),
            ),
            // Downstream form (hex).
            (
                "TLS_error|error:1000007d:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED|TLS_error_end",
                TlsSide::Downstream,
                Some("1000007d"),
                Some("CERTIFICATE_VERIFY_FAILED"),
            ),
            (
                "TLS error: 268436502:SSL routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_UNKNOWN:TLS error end",
                TlsSide::Unknown,
                None,
                Some("SSLV3_ALERT_CERTIFICATE_UNKNOWN"),
            ),
            (
                "TLS_error:|268435703:TLS_error_end",
                TlsSide::Upstream,
                Some("268435703"),
                None,
            ),
            ("tls_error", TlsSide::Unknown, None, None),
        ];
        for (text, side, code, reason) in cases {
            let tls = TlsError::parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(tls.side, side, "{text}");
            assert_eq!(tls.code.as_deref(), code, "{text}");
            assert_eq!(tls.reason.as_deref(), reason, "{text}");
        }
    }

    #[test]
    fn not_tls() {
        for text in [
            "delayed connect error: Connection refused",
            "",
            "connection_termination",
        ] {
            assert_eq!(TlsError::parse(text), None, "{text}");
        }
    }

    #[test]
    fn meanings() {
        let tls =
            TlsError::parse("TLS_error:|1:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER")
                .unwrap();
        assert!(tls.meaning().unwrap().contains("plaintext"));
    }
}
