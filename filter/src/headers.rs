//! The request headers a decision record needs, picked out of the host's serialized header map:
//! one host call for all of them instead of one per header (each call costs microseconds of
//! Envoy CPU, and a full record used to spend eight of them here).

/// Request header values a record uses, each `None` when absent. Envoy's `request.id`,
/// `request.method` and `request.host` properties read exactly these headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    /// `content-type` (gRPC detection).
    pub content_type: Option<Vec<u8>>,
    /// `x-request-id`.
    pub request_id: Option<Vec<u8>>,
    /// `traceparent` (W3C trace context).
    pub traceparent: Option<Vec<u8>>,
    /// `x-b3-traceid` (Zipkin B3, Istio's default propagation).
    pub b3_trace_id: Option<Vec<u8>>,
    /// `:method`.
    pub method: Option<Vec<u8>>,
    /// `:authority` (HTTP/1.1 `Host`).
    pub authority: Option<Vec<u8>>,
    /// `:path`: after any `prefix_rewrite`, query string included.
    pub path: Option<Vec<u8>>,
    /// `x-envoy-original-path`: the path before a rewrite, query string included.
    pub original_path: Option<Vec<u8>>,
}

impl RequestHeaders {
    /// Picks the wanted headers out of a serialized map. The first value of a repeated header
    /// wins (as Envoy's own properties do); a malformed map yields what came before the fault.
    pub fn from_serialized(map: &[u8]) -> Self {
        let mut headers = Self::default();
        for (name, value) in pairs(map) {
            let slot = match name {
                b"content-type" => &mut headers.content_type,
                b"x-request-id" => &mut headers.request_id,
                b"traceparent" => &mut headers.traceparent,
                b"x-b3-traceid" => &mut headers.b3_trace_id,
                b":method" => &mut headers.method,
                b":authority" => &mut headers.authority,
                b":path" => &mut headers.path,
                b"x-envoy-original-path" => &mut headers.original_path,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value.to_vec());
            }
        }
        headers
    }
}

/// The (name, value) pairs of a map serialized in the proxy-wasm ABI's form: a u32 count, then
/// per pair a u32 name length and a u32 value length, then per pair the name and the value each
/// followed by a NUL; integers little endian.
pub fn pairs(map: &[u8]) -> Pairs<'_> {
    let count = read_u32(map, 0).unwrap_or(0);
    // A count the buffer cannot hold ends the iteration at the first missing length.
    let data = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(4))
        .unwrap_or(usize::MAX);
    Pairs {
        map,
        next: 0,
        count,
        data,
    }
}

/// Iterator over a serialized map; see [`pairs`].
#[derive(Debug)]
pub struct Pairs<'a> {
    map: &'a [u8],
    next: usize,
    count: usize,
    /// Offset of the next name in the data section.
    data: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.count {
            return None;
        }
        let item = self.read();
        match item {
            Some(_) => self.next += 1,
            None => self.count = 0,
        }
        item
    }
}

impl<'a> Pairs<'a> {
    fn read(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let sizes = self.next.checked_mul(8)?.checked_add(4)?;
        let name_len = read_u32(self.map, sizes)?;
        let value_len = read_u32(self.map, sizes.checked_add(4)?)?;
        let name = slice(self.map, self.data, name_len)?;
        let value_at = self.data.checked_add(name_len)?.checked_add(1)?;
        let value = slice(self.map, value_at, value_len)?;
        self.data = value_at.checked_add(value_len)?.checked_add(1)?;
        Some((name, value))
    }
}

fn slice(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    bytes.get(at..at.checked_add(len)?)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let raw: [u8; 4] = slice(bytes, at, 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(raw)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serializes pairs the way the host does.
    fn serialize(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        let len = |s: &str| u32::try_from(s.len()).unwrap().to_le_bytes();
        out.extend_from_slice(&u32::try_from(pairs.len()).unwrap().to_le_bytes());
        for (name, value) in pairs {
            out.extend_from_slice(&len(name));
            out.extend_from_slice(&len(value));
        }
        for (name, value) in pairs {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            out.extend_from_slice(value.as_bytes());
            out.push(0);
        }
        out
    }

    fn some(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn picks_the_record_headers() {
        let map = serialize(&[
            (":authority", "reviews:9080"),
            (":path", "/rewritten?q=1"),
            (":method", "GET"),
            ("user-agent", "curl"),
            ("x-request-id", "req-1"),
            ("x-envoy-original-path", "/orig?q=1"),
            ("traceparent", "00-abc-def-01"),
            ("x-b3-traceid", "b3id"),
            ("content-type", "application/grpc"),
        ]);
        assert_eq!(
            RequestHeaders::from_serialized(&map),
            RequestHeaders {
                content_type: some("application/grpc"),
                request_id: some("req-1"),
                traceparent: some("00-abc-def-01"),
                b3_trace_id: some("b3id"),
                method: some("GET"),
                authority: some("reviews:9080"),
                path: some("/rewritten?q=1"),
                original_path: some("/orig?q=1"),
            }
        );
    }

    #[test]
    fn first_value_wins_and_empty_values_are_present() {
        let map = serialize(&[("x-request-id", ""), ("x-request-id", "second")]);
        let headers = RequestHeaders::from_serialized(&map);
        assert_eq!(headers.request_id, Some(Vec::new()));
        assert_eq!(headers.method, None);
    }

    #[test]
    fn empty_and_malformed_maps_are_safe() {
        assert_eq!(
            RequestHeaders::from_serialized(&[]),
            RequestHeaders::default()
        );
        assert_eq!(pairs(&serialize(&[])).count(), 0);
        let map = serialize(&[(":method", "GET"), (":path", "/a")]);
        // Cut inside the second value: the first pair survives.
        let cut = map.get(..map.len() - 2).unwrap();
        assert_eq!(
            pairs(cut).collect::<Vec<_>>(),
            vec![(&b":method"[..], &b"GET"[..])]
        );
        // A count far beyond the buffer.
        let mut huge = map.clone();
        huge.splice(0..4, u32::MAX.to_le_bytes());
        assert_eq!(pairs(&huge).count(), 0);
        // Every truncation of a valid map parses without panicking.
        for end in 0..map.len() {
            let _ = RequestHeaders::from_serialized(map.get(..end).unwrap());
        }
    }
}
