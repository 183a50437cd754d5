//! What pasting does to a line, undone: terminal colours (stern), Markdown emphasis and code
//! ticks, `...`/`…` where a line was cut, doubled quotes from CSV exports and `\"` from a line
//! copied out of JSON; and the pod a log tool's prefix names (`kubectl logs --prefix`, stern,
//! kubetail).

use std::borrow::Cow;

/// A line as the formats expect it, and whether it visibly ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cleaned<'a> {
    pub(crate) text: Cow<'a, str>,
    /// It ended in `...` or `…`: the rest was cut off.
    pub(crate) cut: bool,
}

/// Undoes colours, emphasis and cut marks. Cheap when there is nothing to undo (the common case).
pub(crate) fn clean(line: &str) -> Cleaned<'_> {
    let mut text: Cow<'_, str> = Cow::Borrowed(line.trim());
    // One pass to learn whether there is anything to undo at all.
    if memchr::memchr3(0x1b, b'*', b'`', text.as_bytes()).is_some() {
        if text.contains('\x1b') {
            text = Cow::Owned(strip_ansi(&text));
        }
        if text.contains("**") || text.contains('`') {
            text = Cow::Owned(text.replace("**", "").replace('`', ""));
        }
    }
    for mark in ["…", "..."] {
        if let Some(tail) = text.strip_prefix(mark) {
            // Pasted from the middle of a line.
            text = Cow::Owned(tail.trim_start().to_owned());
            break;
        }
    }
    let mut cut = false;
    for mark in ["…", "..."] {
        if let Some(head) = text.trim_end().strip_suffix(mark) {
            cut = true;
            text = Cow::Owned(head.trim_end().to_owned());
            break;
        }
    }
    match text {
        Cow::Borrowed(b) => Cleaned {
            text: Cow::Borrowed(b.trim()),
            cut,
        },
        Cow::Owned(o) => Cleaned {
            text: Cow::Owned(o.trim().to_owned()),
            cut,
        },
    }
}

/// The line with doubled quotes (`""GET / HTTP/1.1""`, a CSV cell) or escaped ones (`\"`) made
/// single; `None` when it has neither.
pub(crate) fn unquote(line: &str) -> Option<String> {
    if line.contains("\\\"") {
        return Some(line.replace("\\\"", "\""));
    }
    if line.contains("\"\"") {
        let inner = line
            .strip_prefix('"')
            .and_then(|l| l.strip_suffix('"'))
            .filter(|inner| inner.contains("\"\""))
            .unwrap_or(line);
        return Some(inner.replace("\"\"", "\""));
    }
    None
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        // CSI: ESC [ parameters final-byte.
        if chars.clone().next() == Some('[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// The pod named by what precedes the access-log entry: `[pod/NAME/CONTAINER]` (kubectl
/// `--prefix`), `NAME CONTAINER` (stern), `[NAME]` (kubetail); timestamps (`--timestamps`) are
/// skipped.
pub(crate) fn pod_in_prefix(prefix: &str) -> Option<String> {
    let prefix = prefix.trim();
    if prefix.is_empty() {
        return None;
    }
    if let Some(at) = prefix.find("pod/") {
        let name = prefix[at + 4..].split(['/', ']', ' ']).next()?;
        return is_pod_name(name).then(|| name.to_owned());
    }
    let words: Vec<&str> = prefix
        .split_whitespace()
        .map(|word| word.trim_matches(|c| c == '[' || c == ']'))
        .filter(|word| !word.is_empty() && !looks_like_time(word))
        .collect();
    match words.as_slice() {
        [.., pod, container] if is_container(container) && is_pod_name(pod) => {
            Some((*pod).to_owned())
        }
        [pod] if is_pod_name(pod) && pod.contains('-') => Some((*pod).to_owned()),
        _ => None,
    }
}

fn is_container(name: &str) -> bool {
    matches!(
        name,
        "istio-proxy" | "proxy" | "envoy" | "sidecar" | "istio-proxy:"
    )
}

/// A DNS-1123 name with at least one letter (`productpage-v1-7d9c-x2`).
fn is_pod_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
}

fn looks_like_time(word: &str) -> bool {
    word.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && (word.contains(':') || word.contains('T'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undoes_colours_emphasis_and_cut_marks() {
        let cleaned = clean("\x1b[32mreviews-v1\x1b[0m **503 UF** `via_upstream` ...");
        assert_eq!(cleaned.text, "reviews-v1 503 UF via_upstream");
        assert!(cleaned.cut);
        assert!(matches!(clean("503 UF").text, Cow::Borrowed(_)));
        assert_eq!(clean("503 UF …").text, "503 UF");
    }

    #[test]
    fn doubled_and_escaped_quotes() {
        assert_eq!(
            unquote(r#""[t] ""GET / HTTP/1.1"" 503""#).as_deref(),
            Some(r#"[t] "GET / HTTP/1.1" 503"#)
        );
        assert_eq!(
            unquote(r#"\"GET / HTTP/1.1\" 503"#).as_deref(),
            Some(r#""GET / HTTP/1.1" 503"#)
        );
        assert_eq!(unquote(r#""GET / HTTP/1.1" 503"#), None);
    }

    #[test]
    fn pods_from_tool_prefixes() {
        assert_eq!(
            pod_in_prefix("[pod/productpage-v1-7d9c/istio-proxy]").as_deref(),
            Some("productpage-v1-7d9c")
        );
        assert_eq!(
            pod_in_prefix("2023-11-14T22:13:20.123456789Z [pod/reviews-v2-1/istio-proxy]")
                .as_deref(),
            Some("reviews-v2-1")
        );
        assert_eq!(
            pod_in_prefix("ratings-v1-5f9 istio-proxy").as_deref(),
            Some("ratings-v1-5f9")
        );
        assert_eq!(
            pod_in_prefix("[details-v1-79f774bdb9-abcde]").as_deref(),
            Some("details-v1-79f774bdb9-abcde")
        );
        assert_eq!(pod_in_prefix("2023-11-14T22:13:20.123Z"), None);
        assert_eq!(pod_in_prefix("info"), None);
    }
}
