//! Salvage: when no format matches, what can be recognised anywhere in the line — a status code
//! next to a flags token (`503 UF,URX`, `0 -`), a code-details string, a transport failure
//! reason, `key=value` and `"key":value` pairs, cluster names, an SNI, a request line, a request
//! id, a timestamp, durations with units — is kept, and everything else stays unknown. A fragment
//! with a code, flags or details is enough to explain.

use meshwhy_proto::v1::{DecisionRecord, RecordField};

use super::field::{self, Field};
use crate::decode::{ClusterName, CodeDetails, DetailsKind, TransportFailure};

/// A token of a line: `[…]`, `"…"` or a bare word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token<'a> {
    text: &'a str,
    quoted: bool,
    bracketed: bool,
}

/// Most tokens looked at: a 64 KiB line of single characters must not cost more than a short one.
const MAX_TOKENS: usize = 256;

/// What salvage found: the record and the fields it covered.
pub(crate) struct Salvaged {
    pub(crate) record: DecisionRecord,
    pub(crate) known: u64,
    /// Where the first recognised token starts: what precedes it may be a log tool's prefix.
    pub(crate) prefix_end: usize,
}

/// Recovers what it can; `None` when nothing explainable is there (no code with a flags token,
/// details or request line beside it, no flag, no details, no transport failure reason).
pub(crate) fn salvage(line: &str) -> Option<Salvaged> {
    let mut found = Found::default();
    let tokens = found.scan(line);
    found.finish(line, &tokens)
}

/// Fills the fields `known` lacks from what `rest` shows (custom fields appended to a known
/// format: `… default grpc_status=14`).
pub(crate) fn fill(rest: &str, record: DecisionRecord, known: u64) -> (DecisionRecord, u64) {
    let mut found = Found {
        record,
        known,
        ..Found::default()
    };
    found.scan(rest);
    (found.record, found.known)
}

/// Reads `key=value`, `key="value"`, `"key":value` and `"key": "value"` pairs into `found`.
fn pairs(line: &str, found: &mut Found) {
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut seen = 0;
    while i < bytes.len() && seen < MAX_TOKENS {
        let separator = bytes[i];
        if separator != b'=' && separator != b':' {
            i += 1;
            continue;
        }
        seen += 1;
        // The key: a word (possibly quoted) right before the separator.
        let mut key_end = i;
        let quoted_key = key_end > 0 && bytes[key_end - 1] == b'"';
        if quoted_key {
            key_end -= 1;
        }
        let mut key_start = key_end;
        while key_start > 0 {
            let b = bytes[key_start - 1];
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' || b == b'@' {
                key_start -= 1;
            } else {
                break;
            }
        }
        if key_start == key_end || (quoted_key && (key_start == 0 || bytes[key_start - 1] != b'"'))
        {
            i += 1;
            continue;
        }
        if separator == b':' && !quoted_key {
            // `host:port`, `TLS error: …`, times: only quoted keys take a colon.
            i += 1;
            continue;
        }
        let key = &line[key_start..key_end];
        // The value: quoted up to the closing quote, else up to a delimiter.
        let mut start = i + 1;
        while start < bytes.len() && bytes[start] == b' ' {
            start += 1;
        }
        let (value, next) = if bytes.get(start) == Some(&b'"') {
            match line[start + 1..].find('"') {
                Some(len) => (&line[start + 1..start + 1 + len], start + 2 + len),
                None => (&line[start + 1..], bytes.len()),
            }
        } else {
            let len = line[start..]
                .find([' ', ',', '}', '\t'])
                .unwrap_or(line.len() - start);
            // A details value keeps its `{…,…}`: extend to its closing brace.
            let mut len = len;
            if line[start..start + len].contains('{')
                && let Some(close) = line[start..].find('}')
            {
                len = close + 1;
            }
            (&line[start..start + len], start + len)
        };
        let field = Field::of_key(key);
        if field != Field::Other && field.record_field().is_some() {
            found.pair(field, value);
        }
        i = next.max(i + 1);
    }
}

fn tokenize(line: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() && tokens.len() < MAX_TOKENS {
        let (token, tail) = if let Some(inner) = rest.strip_prefix('[') {
            match inner.find(']') {
                Some(end) => (
                    Token {
                        text: &inner[..end],
                        quoted: false,
                        bracketed: true,
                    },
                    &inner[end + 1..],
                ),
                None => (
                    Token {
                        text: inner,
                        quoted: false,
                        bracketed: true,
                    },
                    "",
                ),
            }
        } else if let Some(inner) = rest.strip_prefix('"') {
            match inner.find('"') {
                Some(end) => (
                    Token {
                        text: &inner[..end],
                        quoted: true,
                        bracketed: false,
                    },
                    &inner[end + 1..],
                ),
                None => (
                    Token {
                        text: inner,
                        quoted: true,
                        bracketed: false,
                    },
                    "",
                ),
            }
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (
                Token {
                    text: rest[..end].trim_end_matches([',', ';']),
                    quoted: false,
                    bracketed: false,
                },
                &rest[end..],
            )
        };
        tokens.push(token);
        rest = tail.trim_start();
    }
    tokens
}

/// What was recognised so far; the first recognition of a field wins (pairs go first: a key says
/// what a value is).
#[derive(Default)]
struct Found {
    record: DecisionRecord,
    known: u64,
    /// Something worth explaining was seen.
    explainable: bool,
    /// Index of the first token recognised positionally.
    first: Option<usize>,
    code_token: Option<usize>,
    cluster_token: Option<usize>,
}

impl Found {
    fn scan<'a>(&mut self, line: &'a str) -> Vec<Token<'a>> {
        pairs(line, self);
        let tokens = tokenize(line);
        for (i, token) in tokens.iter().enumerate() {
            self.token(i, token, &tokens);
        }
        tokens
    }

    fn has(&self, field: RecordField) -> bool {
        self.known & field::bit(field) != 0
    }

    fn set(&mut self, field: Field, value: &str) -> bool {
        let Some(record_field) = field.record_field() else {
            return false;
        };
        if self.has(record_field) || !field.accepts(value) {
            return false;
        }
        field.store(&mut self.record, value);
        self.known |= field::bit(record_field);
        true
    }

    fn pair(&mut self, field: Field, value: &str) {
        if self.set(field, value) {
            self.explainable |= match field {
                Field::Code => value != "-",
                Field::Flags => value != "-",
                Field::Details | Field::TransportFailure => true,
                _ => false,
            };
        }
    }

    fn mark(&mut self, i: usize) {
        self.first = Some(self.first.map_or(i, |first| first.min(i)));
    }

    fn token(&mut self, i: usize, token: &Token<'_>, tokens: &[Token<'_>]) {
        let text = token.text;
        if text.is_empty() || text.contains('=') || text.starts_with('{') {
            return;
        }
        if token.bracketed {
            if crate::time::parse_rfc3339(text).is_some() {
                self.set(Field::StartTime, text);
                self.mark(i);
            }
            return;
        }
        if token.quoted {
            self.quoted(i, text);
            return;
        }
        if is_code(text) {
            let next = tokens.get(i + 1).filter(|t| !t.quoted && !t.bracketed);
            let flags_next = next.is_some_and(|t| field::parse_flags(t.text).is_some());
            let details_next = next.is_some_and(|t| is_details(t.text));
            let after_request_line =
                i > 0 && tokens[i - 1].quoted && request_line(tokens[i - 1].text).is_some();
            if (flags_next || details_next || after_request_line) && self.set(Field::Code, text) {
                self.code_token = Some(i);
                self.explainable |= text != "0" || flags_next;
                self.mark(i);
                return;
            }
        }
        if text != "-" && field::parse_flags(text).is_some_and(|bits| bits != 0) {
            if self.set(Field::Flags, text) {
                self.explainable = true;
                self.mark(i);
            }
            return;
        }
        if text == "-" && self.code_token == Some(i.wrapping_sub(1)) {
            self.set(Field::Flags, text);
            return;
        }
        if is_details(text) {
            if self.set(Field::Details, text) {
                self.explainable = true;
                self.mark(i);
            }
            return;
        }
        if is_cluster(text) {
            if self.set(Field::Cluster, text) {
                self.cluster_token = Some(i);
                self.mark(i);
            }
            return;
        }
        if text.starts_with("outbound_.") {
            self.set(Field::Sni, text);
            return;
        }
        if is_uuid(text) {
            self.set(Field::RequestId, text);
            return;
        }
        if crate::time::parse_rfc3339(text).is_some() {
            self.set(Field::StartTime, text);
            return;
        }
        if has_duration_unit(text)
            && !self.has(RecordField::Duration)
            && let Some(nanos) = field::parse_millis(text)
        {
            self.record.duration_nanos = nanos;
            self.known |= field::bit(RecordField::Duration);
        }
    }

    fn quoted(&mut self, i: usize, text: &str) {
        if let Some((method, path, protocol)) = request_line(text) {
            self.set(Field::Method, method);
            self.set(Field::Path, path);
            self.set(Field::Protocol, protocol);
            self.mark(i);
            return;
        }
        if is_transport_failure(text) {
            if self.set(Field::TransportFailure, text) {
                self.explainable = true;
                self.mark(i);
            }
            return;
        }
        if is_uuid(text) {
            self.set(Field::RequestId, text);
        }
    }

    fn finish(mut self, line: &str, tokens: &[Token<'_>]) -> Option<Salvaged> {
        if !self.explainable {
            return None;
        }
        // Istio's order around the cluster: "request id" "authority" "upstream host" CLUSTER
        // upstream-local downstream-local downstream-remote.
        if let Some(at) = self.cluster_token {
            let before = |back: usize| at.checked_sub(back).and_then(|j| tokens.get(j));
            if let Some(host) = before(1).filter(|t| t.quoted && is_address(t.text)) {
                self.set(Field::UpstreamHost, host.text);
                if let Some(authority) = before(2).filter(|t| t.quoted) {
                    self.set(Field::Authority, authority.text);
                }
            }
            let after: Vec<&Token<'_>> = tokens[at + 1..].iter().take(3).collect();
            if after.len() == 3
                && after
                    .iter()
                    .all(|t| !t.quoted && (t.text == "-" || is_address(t.text)))
            {
                self.set(Field::SourceAddress, after[2].text);
            }
        }
        // A TCP proxy line: `"- - -" 0`.
        if self.record.method.is_empty()
            && self.record.protocol.is_empty()
            && line.contains("\"- - -\"")
        {
            self.record.protocol = crate::explain::TCP.to_owned();
            self.known |= field::bit(RecordField::Protocol) | field::bit(RecordField::Method);
        }
        let prefix_end = self
            .first
            .and_then(|first| tokens.get(first))
            .map_or(0, |token| offset_in(line, token.text).saturating_sub(1));
        Some(Salvaged {
            record: self.record,
            known: self.known,
            prefix_end,
        })
    }
}

fn offset_in(line: &str, part: &str) -> usize {
    (part.as_ptr() as usize)
        .saturating_sub(line.as_ptr() as usize)
        .min(line.len())
}

/// An HTTP status, or 0 (no response / TCP).
fn is_code(text: &str) -> bool {
    text.len() <= 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && text
            .parse::<u32>()
            .is_ok_and(|code| code == 0 || (100..=599).contains(&code))
}

/// A code-details value Envoy writes (`via_upstream`, `upstream_reset_before_response_started{…}`,
/// `filter_chain_not_found`, `rbac_access_denied_matched_policy[…]`, …), possibly cut short.
fn is_details(text: &str) -> bool {
    if !text.contains('_') || !text.as_bytes()[0].is_ascii_lowercase() {
        return false;
    }
    let parsed = CodeDetails::parse(text);
    if !matches!(parsed.kind, DetailsKind::Other | DetailsKind::Empty) {
        return true;
    }
    // Cut inside the name: the start of a known one.
    const PREFIXES: &[&str] = &[
        "upstream_reset_",
        "rbac_access_denied",
        "downstream_",
        "http1.",
        "http2.",
    ];
    PREFIXES.iter().any(|prefix| text.starts_with(prefix))
}

fn is_transport_failure(text: &str) -> bool {
    let lower = text.to_ascii_lowercase().replace('_', " ");
    TransportFailure::parse(text).is_some()
        || lower.starts_with("tls error")
        || lower.starts_with("delayed connect error")
        || lower.starts_with("connection failure")
        || lower.contains("secret is not supplied by sds")
}

fn is_cluster(text: &str) -> bool {
    !matches!(
        ClusterName::parse(text),
        ClusterName::None | ClusterName::Other(_)
    ) && !text.starts_with("outbound_.")
}

fn is_address(text: &str) -> bool {
    text.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
    })
}

fn is_uuid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn has_duration_unit(text: &str) -> bool {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == 'µ');
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && matches!(&text[digits.len()..], "ms" | "s" | "us" | "µs")
}

/// `GET /reviews/0 HTTP/1.1` → its parts; `- - -` (TCP) too.
fn request_line(text: &str) -> Option<(&str, &str, &str)> {
    let mut parts = text.split(' ');
    let (method, path, protocol) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let method_ok =
        method == "-" || (!method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()));
    let protocol_ok = protocol == "-" || field::is_protocol(protocol);
    (method_ok && protocol_ok && !path.is_empty()).then_some((method, path, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn salvaged(line: &str) -> DecisionRecord {
        salvage(line)
            .unwrap_or_else(|| panic!("nothing salvaged from {line}"))
            .record
    }

    #[test]
    fn code_flags_details_fragment() {
        let record = salvaged(
            "503 UF,URX upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
        );
        assert_eq!(record.response_code, 503);
        assert_eq!(record.response_flags, (1 << 5) | (1 << 15));
        assert!(
            record
                .response_code_details
                .starts_with("upstream_reset_before")
        );
    }

    #[test]
    fn pairs_of_both_kinds() {
        let record = salvaged(
            r#"response_flag=UT status=200 status_details=response_timeout duration=15003"#,
        );
        assert_eq!((record.response_code, record.response_flags), (200, 1 << 2));
        assert_eq!(record.response_code_details, "response_timeout");
        assert_eq!(record.duration_nanos, 15_003_000_000);
        let record = salvaged(
            r#"…"response_code": 503, "response_flags":"UC","upstream_cluster":"outbound|80||a.b.svc.cluster.local","upstream_ho"#,
        );
        assert_eq!((record.response_code, record.response_flags), (503, 1 << 6));
        assert_eq!(record.cluster, "outbound|80||a.b.svc.cluster.local");
    }

    #[test]
    fn tcp_and_listener_fragments() {
        let record = salvaged(
            r#""- - -" 0 NR filter_chain_not_found - "-" 0 0 0 - "-" "-" "-" "-" "-" - - 10.0.0.9:9080 10.0.0.5:4000 - -"#,
        );
        assert_eq!(record.protocol, "TCP");
        assert_eq!(record.response_flags, 1 << 8);
        assert_eq!(record.response_code_details, "filter_chain_not_found");
        let record = salvaged(r#"0 UH - "-" BlackHoleCluster"#);
        assert_eq!(record.cluster, "BlackHoleCluster");
        assert_eq!(record.response_flags, 1 << 1);
    }

    #[test]
    fn transport_failure_and_request_line() {
        let record =
            salvaged(r#""GET /pay HTTP/1.1" 503 "TLS error: Secret is not supplied by SDS""#);
        assert_eq!(record.method, "GET");
        assert_eq!(record.response_code, 503);
        assert!(record.transport_failure_reason.contains("SDS"));
        let record = salvaged(r#"503 UPE upstream_reset_before_response_started{protocol_err"#);
        assert_eq!(record.response_flags, 1 << 23);
    }

    #[test]
    fn nothing_to_explain() {
        assert!(salvage("2023-11-14T22:13:19.000000Z info Envoy proxy is ready").is_none());
        assert!(salvage("GET 200 hello world").is_none());
        assert!(salvage("").is_none());
        assert!(salvage(&"x ".repeat(100_000)).is_none());
    }
}
