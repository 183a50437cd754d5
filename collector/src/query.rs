//! The `meshwhy.v1.Query` service: records, counters and proxies, read through the aggregator.

use std::pin::Pin;

use meshwhy_proto::v1 as pb;
use meshwhy_proto::v1::query_server::Query;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::aggregator::{AggregatorHandle, Observation, ObserveFilter};
use crate::explain::{Scope, wire};
use crate::flags;
use crate::status::ApiError;
use crate::store::{
    CounterFilter, CounterTotal, ExplainAnswer, ExplainQuery, ProxyReport, RecordFilter,
    StoredRecord,
};

/// Records returned when a ListRecords request leaves `limit` at 0.
pub const DEFAULT_LIST_LIMIT: usize = 1000;

/// Records an Observe stream may have queued towards a slow client before it waits (and, while
/// it waits, falls behind the live feed until it is cut off).
const OBSERVE_QUEUE: usize = 256;

/// Serves Query.
#[derive(Debug, Clone)]
pub struct QueryService {
    aggregator: AggregatorHandle,
    closing: Option<watch::Receiver<bool>>,
}

impl QueryService {
    /// A service reading through `aggregator`.
    pub fn new(aggregator: AggregatorHandle) -> Self {
        Self {
            aggregator,
            closing: None,
        }
    }

    /// Ends followed Observe streams once `closing` turns true (or its sender is dropped), so a
    /// graceful shutdown does not wait for followers forever.
    pub fn closing_on(mut self, closing: watch::Receiver<bool>) -> Self {
        self.closing = Some(closing);
        self
    }
}

/// The filter, backlog size and follow flag of an Observe request.
pub fn observe_filter(request: pb::ObserveRequest) -> (ObserveFilter, usize, bool) {
    let limit = match usize::try_from(request.limit) {
        Ok(0) | Err(_) => DEFAULT_LIST_LIMIT,
        Ok(limit) => limit,
    };
    let from_workload = non_empty(request.from_workload);
    let filter = ObserveFilter {
        records: RecordFilter {
            namespace: non_empty(request.namespace),
            workload: from_workload.clone(),
            response_code: (request.response_code != 0).then_some(request.response_code),
            flags_all: request.flags_all,
            since_unix_nanos: (request.since_unix_nanos != 0).then_some(request.since_unix_nanos),
            ..RecordFilter::default()
        },
        outbound_only: from_workload.is_some(),
        to_service: non_empty(request.to_service),
    };
    (filter, limit, request.follow)
}

/// Sends the backlog, then (when following) each matching live record, into `sink` until the
/// client goes away, the collector closes, or the client falls too far behind.
async fn stream_observation(
    observation: Observation,
    filter: ObserveFilter,
    sink: mpsc::Sender<Result<pb::StoredRecord, Status>>,
    mut closing: Option<watch::Receiver<bool>>,
) {
    for stored in observation.backlog {
        if sink.send(Ok(stored_record(stored))).await.is_err() {
            return;
        }
    }
    let Some(mut live) = observation.live else {
        return;
    };
    loop {
        let next = tokio::select! {
            () = sink.closed() => return,
            () = closed(closing.as_mut()) => return,
            next = live.recv() => next,
        };
        match next {
            Ok(stored) => {
                if filter.matches(&stored)
                    && sink
                        .send(Ok(stored_record((*stored).clone())))
                        .await
                        .is_err()
                {
                    return;
                }
            }
            Err(RecvError::Lagged(missed)) => {
                let _ = sink
                    .send(Err(Status::resource_exhausted(format!(
                        "observer fell behind: {missed} newly stored records were skipped; \
                         narrow the filters or re-run"
                    ))))
                    .await;
                return;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Completes when the collector starts shutting down; never without a signal.
async fn closed(closing: Option<&mut watch::Receiver<bool>>) {
    match closing {
        // An error means the sender is gone: closing too.
        Some(closing) => {
            let _ = closing.wait_for(|closing| *closing).await;
        }
        None => std::future::pending().await,
    }
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// The store filter for a ListRecords request, and the page size (0 = the default).
pub fn record_filter(request: pb::ListRecordsRequest) -> (RecordFilter, usize) {
    let limit = match usize::try_from(request.limit) {
        Ok(0) | Err(_) => DEFAULT_LIST_LIMIT,
        Ok(limit) => limit,
    };
    let filter = RecordFilter {
        namespace: non_empty(request.namespace),
        workload: non_empty(request.workload),
        pod: non_empty(request.pod),
        response_code: (request.response_code != 0).then_some(request.response_code),
        flags_all: request.flags_all,
        since_unix_nanos: (request.since_unix_nanos != 0).then_some(request.since_unix_nanos),
        request_id: non_empty(request.request_id),
    };
    (filter, limit)
}

/// The engine query for an Explain request: a request id wins over the window filters.
pub fn explain_query(request: pb::ExplainRequest) -> ExplainQuery {
    ExplainQuery {
        scope: Scope {
            namespace: non_empty(request.namespace),
            workload: non_empty(request.workload),
            service: non_empty(request.service),
            since_unix_nanos: request.since_unix_nanos,
        },
        request_id: non_empty(request.request_id),
        limit: usize::try_from(request.limit).unwrap_or(0),
    }
}

fn stored_record(stored: StoredRecord) -> pb::StoredRecord {
    pb::StoredRecord {
        flag_names: flags::names(stored.record.response_flags),
        record: Some(stored.record),
        proxy: Some((*stored.proxy).clone()),
        received_time_unix_nanos: stored.received_unix_nanos,
    }
}

fn proxy_counter(total: CounterTotal) -> pb::ProxyCounter {
    pb::ProxyCounter {
        pod: total.pod,
        namespace: total.namespace,
        workload: total.workload,
        counter: Some(total.counter),
    }
}

fn proxy_status(report: ProxyReport) -> pb::ProxyStatus {
    pb::ProxyStatus {
        proxy: Some((*report.proxy).clone()),
        last_sequence: report.last_sequence,
        batches: report.batches,
        missing_batches: report.missing_batches,
        dropped_records: report.dropped_records,
        dropped_counter_keys: report.dropped_counter_keys,
        last_seen_unix_nanos: report.last_seen_unix_nanos,
        records: report.records,
    }
}

/// The stream type of Observe.
pub type ObserveStream = Pin<Box<dyn Stream<Item = Result<pb::StoredRecord, Status>> + Send>>;

#[tonic::async_trait]
impl Query for QueryService {
    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        request: Request<pb::ObserveRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let (filter, limit, follow) = observe_filter(request.into_inner());
        let observation = self
            .aggregator
            .observe(filter.clone(), limit, follow)
            .await
            .map_err(ApiError::from)?;
        let (sink, source) = mpsc::channel(OBSERVE_QUEUE);
        tokio::spawn(stream_observation(
            observation,
            filter,
            sink,
            self.closing.clone(),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(source))))
    }

    async fn list_records(
        &self,
        request: Request<pb::ListRecordsRequest>,
    ) -> Result<Response<pb::ListRecordsResponse>, Status> {
        let (filter, limit) = record_filter(request.into_inner());
        let page = self
            .aggregator
            .list_records(filter, limit)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListRecordsResponse {
            records: page.records.into_iter().map(stored_record).collect(),
            truncated: page.truncated,
        }))
    }

    async fn list_counters(
        &self,
        request: Request<pb::ListCountersRequest>,
    ) -> Result<Response<pb::ListCountersResponse>, Status> {
        let request = request.into_inner();
        let filter = CounterFilter {
            namespace: non_empty(request.namespace),
            workload: non_empty(request.workload),
        };
        let totals = self
            .aggregator
            .list_counters(filter)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListCountersResponse {
            counters: totals.into_iter().map(proxy_counter).collect(),
        }))
    }

    async fn list_proxies(
        &self,
        _request: Request<pb::ListProxiesRequest>,
    ) -> Result<Response<pb::ListProxiesResponse>, Status> {
        let reports = self
            .aggregator
            .list_proxies()
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListProxiesResponse {
            proxies: reports.into_iter().map(proxy_status).collect(),
        }))
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let query = explain_query(request.into_inner());
        let answer = self
            .aggregator
            .explain(query)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(match &answer {
            ExplainAnswer::Window(report) => wire::report(report),
            ExplainAnswer::Request(report) => wire::request_report(report),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_request_matches_everything_with_the_default_limit() {
        let (filter, limit) = record_filter(pb::ListRecordsRequest::default());
        assert_eq!(filter, RecordFilter::default());
        assert_eq!(limit, DEFAULT_LIST_LIMIT);
    }

    #[test]
    fn every_field_becomes_a_filter() {
        let (filter, limit) = record_filter(pb::ListRecordsRequest {
            namespace: "shop".into(),
            workload: "reviews".into(),
            response_code: 503,
            flags_all: 1 << 5,
            since_unix_nanos: 9,
            request_id: "r1".into(),
            limit: 5,
            pod: "reviews-1".into(),
        });
        assert_eq!(limit, 5);
        assert_eq!(
            filter,
            RecordFilter {
                namespace: Some("shop".into()),
                workload: Some("reviews".into()),
                pod: Some("reviews-1".into()),
                response_code: Some(503),
                flags_all: 1 << 5,
                since_unix_nanos: Some(9),
                request_id: Some("r1".into()),
            }
        );
    }

    fn stored(request_id: &str) -> StoredRecord {
        StoredRecord {
            record: pb::DecisionRecord {
                request_id: request_id.into(),
                ..Default::default()
            },
            proxy: std::sync::Arc::new(pb::ProxyIdentity::default()),
            received_unix_nanos: 1,
        }
    }

    #[test]
    fn observe_request_fields() {
        let (filter, limit, follow) = observe_filter(pb::ObserveRequest {
            namespace: "shop".into(),
            from_workload: "productpage".into(),
            to_service: "reviews".into(),
            response_code: 503,
            flags_all: 1 << 5,
            since_unix_nanos: 9,
            follow: true,
            limit: 0,
        });
        assert_eq!(limit, DEFAULT_LIST_LIMIT);
        assert!(follow);
        assert!(filter.outbound_only);
        assert_eq!(filter.to_service.as_deref(), Some("reviews"));
        assert_eq!(
            filter.records,
            RecordFilter {
                namespace: Some("shop".into()),
                workload: Some("productpage".into()),
                response_code: Some(503),
                flags_all: 1 << 5,
                since_unix_nanos: Some(9),
                ..RecordFilter::default()
            }
        );
        let (all, _, follow) = observe_filter(pb::ObserveRequest::default());
        assert_eq!(all, ObserveFilter::default());
        assert!(!follow);
    }

    #[tokio::test]
    async fn a_lagging_follower_is_told_and_cut_off() {
        let (published, live) = tokio::sync::broadcast::channel(2);
        for id in ["a", "b", "c", "d"] {
            published.send(std::sync::Arc::new(stored(id))).unwrap();
        }
        let (sink, mut source) = mpsc::channel(8);
        let observation = Observation {
            backlog: vec![stored("old")],
            truncated: 0,
            live: Some(live),
        };
        stream_observation(observation, ObserveFilter::default(), sink, None).await;
        let first = source.recv().await.unwrap().unwrap();
        assert_eq!(first.record.unwrap().request_id, "old");
        let error = source.recv().await.unwrap().unwrap_err();
        assert_eq!(error.code(), tonic::Code::ResourceExhausted);
        assert!(
            error.message().contains("2 newly stored records"),
            "{error}"
        );
        assert!(source.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_follower_ends_when_the_collector_closes() {
        let (_published, live) = tokio::sync::broadcast::channel(2);
        let (closing_tx, closing) = watch::channel(false);
        let (sink, mut source) = mpsc::channel(8);
        let observation = Observation {
            backlog: Vec::new(),
            truncated: 0,
            live: Some(live),
        };
        let task = tokio::spawn(stream_observation(
            observation,
            ObserveFilter::default(),
            sink,
            Some(closing),
        ));
        closing_tx.send(true).unwrap();
        task.await.unwrap();
        assert!(source.recv().await.is_none());
    }

    #[test]
    fn explain_request_fields() {
        let query = explain_query(pb::ExplainRequest {
            namespace: "shop".into(),
            workload: String::new(),
            service: "reviews".into(),
            since_unix_nanos: 7,
            request_id: String::new(),
            limit: 3,
        });
        assert_eq!(query.scope.namespace.as_deref(), Some("shop"));
        assert_eq!(query.scope.workload, None);
        assert_eq!(query.scope.service.as_deref(), Some("reviews"));
        assert_eq!(query.scope.since_unix_nanos, 7);
        assert_eq!(query.request_id, None);
        assert_eq!(query.limit, 3);
        let one = explain_query(pb::ExplainRequest {
            request_id: "r1".into(),
            ..Default::default()
        });
        assert_eq!(one.request_id.as_deref(), Some("r1"));
    }
}
