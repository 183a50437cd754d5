//! Upstream transport failure reasons (`upstream.transport_failure_reason`, or the text Envoy
//! appends inside the details braces): connect errors by text or by errno, and TLS errors.

use super::tls::TlsError;

/// Why the upstream connection failed, as far as the text says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportFailure {
    /// Nothing listens on the port (`Connection refused`, errno 111).
    ConnectionRefused,
    /// The connect did not complete in time (`timed out`, errno 110): a dropped SYN, often a
    /// NetworkPolicy or firewall.
    ConnectionTimeout,
    /// No route to the host (errno 113) or the network is unreachable (errno 101).
    Unreachable,
    /// The peer reset the connection while connecting (errno 104).
    ConnectionReset,
    /// The TLS handshake failed.
    Tls(TlsError),
    /// Anything else, readable (spaces, not `_`).
    Other(String),
}

impl TransportFailure {
    /// Decodes a transport failure text; `None` for an empty one.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        if let Some(tls) = TlsError::parse(text) {
            return Some(Self::Tls(tls));
        }
        let readable = super::spaced(text);
        let lower = readable.to_ascii_lowercase();
        let errno = trailing_errno(&lower);
        Some(
            if lower.contains("connection refused") || errno == Some(111) {
                Self::ConnectionRefused
            } else if lower.contains("timed out") || lower.contains("timeout") || errno == Some(110)
            {
                Self::ConnectionTimeout
            } else if lower.contains("no route to host")
                || lower.contains("network is unreachable")
                || matches!(errno, Some(101 | 113))
            {
                Self::Unreachable
            } else if lower.contains("connection reset") || errno == Some(104) {
                Self::ConnectionReset
            } else {
                Self::Other(readable)
            },
        )
    }

    /// A stable short class for grouping and display, e.g. `connection_refused`, `tls:WRONG_VERSION_NUMBER`.
    pub fn class(&self) -> String {
        match self {
            Self::ConnectionRefused => "connection_refused".into(),
            Self::ConnectionTimeout => "connection_timeout".into(),
            Self::Unreachable => "unreachable".into(),
            Self::ConnectionReset => "connection_reset".into(),
            Self::Tls(tls) => match &tls.reason {
                Some(reason) => format!("tls:{reason}"),
                None => "tls".into(),
            },
            Self::Other(_) => "other".into(),
        }
    }

    /// One phrase for people: "connection refused", "TLS handshake failed (WRONG_VERSION_NUMBER)".
    pub fn describe(&self) -> String {
        match self {
            Self::ConnectionRefused => "connection refused".into(),
            Self::ConnectionTimeout => "connect timed out".into(),
            Self::Unreachable => "host unreachable".into(),
            Self::ConnectionReset => "connection reset while connecting".into(),
            Self::Tls(tls) => match &tls.reason {
                Some(reason) => format!("TLS handshake failed ({reason})"),
                None => "TLS handshake failed".into(),
            },
            Self::Other(text) => text.clone(),
        }
    }
}

/// The errno at the end of texts such as `delayed connect error: 111` or `transport: 111`.
fn trailing_errno(text: &str) -> Option<u32> {
    let trimmed = text.trim_end();
    let head = trimmed.trim_end_matches(|c: char| c.is_ascii_digit());
    let number = &trimmed[head.len()..];
    // Only a number that follows a colon is an errno; "port 9080" is not.
    if number.is_empty() || !head.trim_end().ends_with(':') {
        return None;
    }
    number.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let cases: [(&str, &str); 12] = [
            (
                "delayed connect error: Connection refused",
                "connection_refused",
            ),
            (
                "delayed_connect_error:_Connection_refused",
                "connection_refused",
            ),
            ("delayed connect error: 111", "connection_refused"),
            ("transport:_111", "connection_refused"),
            ("delayed connect error: 110", "connection_timeout"),
            ("connection timeout", "connection_timeout"),
            ("delayed connect error: 113", "unreachable"),
            (
                "immediate connect error: Network is unreachable",
                "unreachable",
            ),
            ("delayed connect error: 104", "connection_reset"),
            (
                "TLS_error:|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end",
                "tls:WRONG_VERSION_NUMBER",
            ),
            (
                "TLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED",
                "tls:CERTIFICATE_VERIFY_FAILED",
            ),
            ("something new: port 9080", "other"),
        ];
        for (text, class) in cases {
            let failure = TransportFailure::parse(text).unwrap();
            assert_eq!(failure.class(), class, "{text}");
        }
        assert_eq!(TransportFailure::parse("  "), None);
        assert_eq!(
            TransportFailure::parse("weird_thing").unwrap(),
            TransportFailure::Other("weird thing".into())
        );
    }
}
