//! The `meshwhy.v1.Ingest` HTTP/2 glue, written out instead of tonic's generated `IngestServer`
//! for one reason: Push requests go through [`PushCodec`], which decodes cheaper than the
//! generic prost codec. Same service name, path, message types and status mapping.

use std::task::{Context, Poll};

use meshwhy_proto::v1::ingest_server::Ingest;
use meshwhy_proto::v1::{PushRequest, PushResponse};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Arc, Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Status};
use tonic_prost::ProstEncoder;
use tonic_prost::prost::Message;

/// gRPC path of `Ingest.Push`.
const PUSH_PATH: &str = "/meshwhy.v1.Ingest/Push";

/// Serves `meshwhy.v1.Ingest` with [`PushCodec`]; a drop-in for the generated server.
#[derive(Debug)]
pub struct IngestServer<T> {
    inner: Arc<T>,
    max_decoding_message_size: Option<usize>,
}

impl<T> IngestServer<T> {
    /// Serves `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner: Arc::new(inner),
            max_decoding_message_size: None,
        }
    }

    /// Refuses requests larger than `limit` bytes (tonic's default otherwise: 4 MiB).
    #[must_use]
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.max_decoding_message_size = Some(limit);
        self
    }
}

impl<T> Clone for IngestServer<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            max_decoding_message_size: self.max_decoding_message_size,
        }
    }
}

impl<T> NamedService for IngestServer<T> {
    const NAME: &'static str = meshwhy_proto::INGEST_SERVICE;
}

/// Adapts the `Ingest` implementation to tonic's unary call.
struct PushMethod<T>(Arc<T>);

impl<T: Ingest> UnaryService<PushRequest> for PushMethod<T> {
    type Response = PushResponse;
    type Future = BoxFuture<tonic::Response<PushResponse>, Status>;

    fn call(&mut self, request: tonic::Request<PushRequest>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.push(request).await })
    }
}

impl<T, B> Service<http::Request<B>> for IngestServer<T>
where
    T: Ingest,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != PUSH_PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let method = PushMethod(Arc::clone(&self.inner));
        let max_decoding_message_size = self.max_decoding_message_size;
        Box::pin(async move {
            let mut grpc =
                Grpc::new(PushCodec).apply_max_message_size_config(max_decoding_message_size, None);
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// Encodes `PushResponse` with prost; decodes `PushRequest` straight from the contiguous request
/// buffer (prost through tonic's generic buffer pays a bounds-checked advance per byte run), with
/// the records vector sized up front instead of regrown (a record is ~0.5 KiB decoded, so a full
/// batch would otherwise be copied several times over).
#[derive(Debug, Clone, Copy, Default)]
pub struct PushCodec;

impl Codec for PushCodec {
    type Encode = PushResponse;
    type Decode = PushRequest;
    type Encoder = ProstEncoder<PushResponse>;
    type Decoder = PushCodec;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        PushCodec
    }
}

impl Decoder for PushCodec {
    type Item = PushRequest;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<PushRequest>, Status> {
        use tonic_prost::prost::bytes::Buf;
        let len = buf.remaining();
        let request = if buf.chunk().len() == len {
            let request = decode_push(buf.chunk());
            buf.advance(len);
            request
        } else {
            // Not contiguous (tonic keeps one buffer, so not expected): copy once.
            decode_push(&buf.copy_to_bytes(len))
        };
        // Like tonic's prost codec: a message that does not parse is INTERNAL.
        request
            .map(Some)
            .map_err(|error| Status::new(Code::Internal, error.to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl Encoder for PushCodec {
    type Item = PushResponse;
    type Error = Status;

    fn encode(&mut self, item: PushResponse, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        ProstEncoder::default().encode(item, buf)
    }
}

/// Records reserved up front at most: the default batch limit. The count comes from the sender,
/// and an empty record takes 2 bytes on the wire but ~0.5 KiB decoded, so a hostile message
/// must not size the allocation; past this prost grows the vector as usual (and the batch is
/// then refused by `validate` anyway under the default limit).
const MAX_RESERVED_RECORDS: usize = crate::config::DEFAULT_MAX_BATCH_RECORDS;

/// Decodes a `PushRequest` (prost does all the parsing and validation).
pub fn decode_push(bytes: &[u8]) -> Result<PushRequest, tonic_prost::prost::DecodeError> {
    let mut request = PushRequest::default();
    request
        .records
        .reserve_exact(count_records(bytes).min(MAX_RESERVED_RECORDS));
    request.merge(bytes)?;
    Ok(request)
}

/// `PushRequest.records` field number.
const RECORDS_FIELD: u64 = 3;

/// How many `records` fields a `PushRequest` encoding holds: a capacity hint only, so anything
/// malformed just ends the count (prost then reports the error).
fn count_records(mut bytes: &[u8]) -> usize {
    let mut count = 0;
    while !bytes.is_empty() {
        let Some(key) = varint(&mut bytes) else {
            break;
        };
        let skip = match key & 7 {
            0 => varint(&mut bytes).map(|_| 0),
            1 => Some(8),
            2 => varint(&mut bytes).and_then(|len| usize::try_from(len).ok()),
            5 => Some(4),
            // Groups (3, 4) are not in this message; anything else is corrupt.
            _ => None,
        };
        let Some(rest) = skip.and_then(|skip| bytes.get(skip..)) else {
            break;
        };
        if key >> 3 == RECORDS_FIELD && key & 7 == 2 {
            count += 1;
        }
        bytes = rest;
    }
    count
}

/// Reads one base-128 varint; `None` if it is truncated or longer than 10 bytes.
fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (index, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            *bytes = bytes.get(index + 1..)?;
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use meshwhy_proto::v1::{Counter, DecisionRecord, ProxyIdentity};

    use super::*;

    fn request(records: usize) -> PushRequest {
        PushRequest {
            proxy: Some(ProxyIdentity {
                instance_id: "0af3".into(),
                pod: "reviews-1".into(),
                ..Default::default()
            }),
            sequence: 300,
            records: (0..records)
                .map(|i| DecisionRecord {
                    request_id: format!("r{i}"),
                    response_code: 503,
                    response_flags: 1 << 40,
                    duration_nanos: u64::MAX,
                    grpc_status: Some(14),
                    ..Default::default()
                })
                .collect(),
            counters: vec![Counter {
                count: 5,
                ..Default::default()
            }],
            dropped_records: 1 << 20,
            dropped_counter_keys: 0,
            sent_time_unix_nanos: 1_700_000_000_000_000_000,
        }
    }

    #[test]
    fn decodes_like_prost_and_counts_the_records() {
        for records in [0, 1, 7, 500] {
            let wire = request(records).encode_to_vec();
            assert_eq!(count_records(&wire), records);
            let decoded = decode_push(&wire).unwrap();
            assert_eq!(decoded, PushRequest::decode(wire.as_slice()).unwrap());
            assert!(decoded.records.capacity() >= records);
        }
    }

    #[test]
    fn fixed_width_and_unknown_fields_are_skipped() {
        let mut wire = request(2).encode_to_vec();
        // Unknown fields 14 (fixed64), 15 (fixed32) and 300 (varint, a two-byte key), then one
        // more record.
        wire.extend_from_slice(&[
            (14 << 3) | 1,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            8,
            (15 << 3) | 5,
            1,
            2,
            3,
            4,
        ]);
        wire.extend_from_slice(&[0xe0, 0x12, 0x96, 0x01]);
        wire.extend_from_slice(&[(3 << 3) | 2, 0]);
        assert_eq!(count_records(&wire), 3);
        assert_eq!(decode_push(&wire).unwrap().records.len(), 3);
    }

    #[test]
    fn the_reservation_is_capped() {
        // Empty records: 2 bytes each on the wire.
        let wire = [(3 << 3) | 2, 0].repeat(MAX_RESERVED_RECORDS + 10);
        assert_eq!(count_records(&wire), MAX_RESERVED_RECORDS + 10);
        let decoded = decode_push(&wire).unwrap();
        assert_eq!(decoded.records.len(), MAX_RESERVED_RECORDS + 10);
    }

    #[test]
    fn malformed_input_is_a_decode_error_not_a_panic() {
        let wire = request(3).encode_to_vec();
        for cut in 0..wire.len() {
            let truncated = &wire[..cut];
            assert!(count_records(truncated) <= 3);
            // Either an error or a shorter valid message; never a panic.
            let _ = decode_push(truncated);
        }
        assert!(decode_push(&[0xff; 11]).is_err());
        assert_eq!(count_records(&[(3 << 3) | 2, 0xff]), 0);
        assert_eq!(count_records(&[(3 << 3) | 3]), 0);
    }
}
