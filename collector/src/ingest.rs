//! The `meshwhy.v1.Ingest` service: validate a batch, hand it to the aggregator, answer.

mod server;

pub use server::{IngestServer, PushCodec, decode_push};

use meshwhy_proto::v1::ingest_server::Ingest;
use meshwhy_proto::v1::{Direction, PushRequest, PushResponse};
use tonic::{Request, Response, Status};

use crate::aggregator::AggregatorHandle;
use crate::status::ApiError;
use crate::store::PushBatch;

/// Longest accepted `proxy.instance_id`, in bytes: ids are short random hex; anything longer is
/// a bug in the sender, and ids are kept per instance for the collector's life.
pub const MAX_INSTANCE_ID_BYTES: usize = 128;

/// Serves Push.
#[derive(Debug, Clone)]
pub struct IngestService {
    aggregator: AggregatorHandle,
    max_batch_records: usize,
}

impl IngestService {
    /// A service that rejects batches over `max_batch_records` records.
    pub fn new(aggregator: AggregatorHandle, max_batch_records: usize) -> Self {
        Self {
            aggregator,
            max_batch_records,
        }
    }
}

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn push(&self, request: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        let batch = validate(request.into_inner(), self.max_batch_records)?;
        let outcome = self.aggregator.push(batch).await.map_err(ApiError::from)?;
        Ok(Response::new(PushResponse {
            duplicate: outcome.duplicate,
            flush_interval_ms: 0,
        }))
    }
}

/// Checks a Push request; the error names the offending field.
pub fn validate(request: PushRequest, max_batch_records: usize) -> Result<PushBatch, ApiError> {
    let PushRequest {
        proxy,
        sequence,
        records,
        counters,
        dropped_records,
        dropped_counter_keys,
        sent_time_unix_nanos: _,
    } = request;
    let proxy = proxy.ok_or_else(|| ApiError::invalid("proxy", "required: who sent the batch"))?;
    if proxy.instance_id.is_empty() {
        return Err(ApiError::invalid(
            "proxy.instance_id",
            "must not be empty: sequences and losses are tracked per instance",
        ));
    }
    if proxy.instance_id.len() > MAX_INSTANCE_ID_BYTES {
        return Err(ApiError::invalid(
            "proxy.instance_id",
            format!("longer than {MAX_INSTANCE_ID_BYTES} bytes"),
        ));
    }
    if sequence == 0 {
        return Err(ApiError::invalid(
            "sequence",
            "must be >= 1 (batches are numbered from 1)",
        ));
    }
    if records.len() > max_batch_records {
        return Err(ApiError::invalid(
            "records",
            format!(
                "{} records in one batch, more than the limit of {max_batch_records}; send smaller batches",
                records.len()
            ),
        ));
    }
    for (index, record) in records.iter().enumerate() {
        if Direction::try_from(record.direction).is_err() {
            return Err(ApiError::invalid(
                format!("records[{index}].direction"),
                format!(
                    "unknown value {} (expected 0 unspecified, 1 inbound or 2 outbound)",
                    record.direction
                ),
            ));
        }
    }
    Ok(PushBatch {
        proxy,
        sequence,
        records,
        counters,
        dropped_records,
        dropped_counter_keys,
    })
}

#[cfg(test)]
mod tests {
    use meshwhy_proto::v1::{DecisionRecord, ProxyIdentity};

    use super::*;

    fn valid() -> PushRequest {
        PushRequest {
            proxy: Some(ProxyIdentity {
                instance_id: "0af3".into(),
                ..Default::default()
            }),
            sequence: 1,
            records: vec![DecisionRecord {
                direction: Direction::Inbound as i32,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn field_of(request: PushRequest, max: usize) -> String {
        match validate(request, max) {
            Err(ApiError::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_valid_batch() {
        let batch = validate(valid(), 10).unwrap();
        assert_eq!(batch.sequence, 1);
        assert_eq!(batch.records.len(), 1);
    }

    #[test]
    fn names_the_bad_field() {
        let mut request = valid();
        request.proxy = None;
        assert_eq!(field_of(request, 10), "proxy");

        let mut request = valid();
        request.proxy.as_mut().unwrap().instance_id.clear();
        assert_eq!(field_of(request, 10), "proxy.instance_id");

        let mut request = valid();
        request.proxy.as_mut().unwrap().instance_id = "x".repeat(MAX_INSTANCE_ID_BYTES + 1);
        assert_eq!(field_of(request, 10), "proxy.instance_id");

        let mut request = valid();
        request.sequence = 0;
        assert_eq!(field_of(request, 10), "sequence");

        assert_eq!(field_of(valid(), 0), "records");

        let mut request = valid();
        request.records.push(DecisionRecord {
            direction: 7,
            ..Default::default()
        });
        assert_eq!(field_of(request, 10), "records[1].direction");
    }
}
