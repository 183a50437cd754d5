//! The one owner of collector state: a task that applies pushes and answers queries in order.
//!
//! gRPC handlers never touch the store. They `try_send` a command on a bounded queue (a full queue
//! is an immediate RESOURCE_EXHAUSTED, so a slow store can never make a proxy wait) and await a
//! oneshot reply, which for Push arrives only once the store applied the batch.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::CollectorConfig;
use crate::store::{
    CounterFilter, CounterTotal, ExplainAnswer, ExplainQuery, ProxyReport, PushBatch, PushOutcome,
    RecordFilter, RecordPage, Store, StoreError, StoreStats, StoredRecord,
};

/// Newly stored records a follower may fall behind by before it is cut off (with a notice):
/// ingest never waits for a follower.
pub const OBSERVE_BUFFER: usize = 4096;

/// How often the aggregator gives the store a step of upkeep (retention) when none is pending.
pub const MAINTAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Most pushes applied as one group (one commit in a durable store).
pub const PUSH_GROUP_MAX: usize = 64;
/// A group stops growing once it holds this many records, so the first Push's answer is not
/// held back behind a large amount of work.
pub const PUSH_GROUP_RECORDS: usize = 10_000;

/// A newly stored record as published to followers.
pub type Published = Arc<StoredRecord>;

/// Which records an observer wants: the store filter plus what the store cannot index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObserveFilter {
    /// Namespace, code, flags, window start (and the sending workload, see `outbound_only`).
    pub records: RecordFilter,
    /// Only outbound records (set with a source workload: the client sidecar's view).
    pub outbound_only: bool,
    /// Only records whose authority or outbound cluster host contains this text.
    pub to_service: Option<String>,
}

impl ObserveFilter {
    /// Whether `stored` passes.
    pub fn matches(&self, stored: &StoredRecord) -> bool {
        let record = &stored.record;
        self.records.matches(&stored.proxy, record)
            && (!self.outbound_only
                || record.direction == meshwhy_proto::v1::Direction::Outbound as i32)
            && self.to_service.as_deref().is_none_or(|service| {
                record.authority.contains(service)
                    || cluster_host(&record.cluster).is_some_and(|host| host.contains(service))
            })
    }

    /// Whether the store filter alone decides (so a store page of `limit` is exact).
    fn store_decides(&self) -> bool {
        !self.outbound_only && self.to_service.is_none()
    }
}

/// The host of an `outbound|port|subset|host` cluster name.
fn cluster_host(cluster: &str) -> Option<&str> {
    let mut parts = cluster.split('|');
    (parts.next() == Some("outbound"))
        .then(|| parts.nth(2))
        .flatten()
        .filter(|host| !host.is_empty())
}

/// The answer to an observe request: the backlog and, when following, the live feed, taken at
/// the same instant so nothing is missed or sent twice between them.
#[derive(Debug)]
pub struct Observation {
    /// Matching stored records, oldest first (the newest `limit`).
    pub backlog: Vec<StoredRecord>,
    /// Matching records older than the backlog that were left out.
    pub truncated: u64,
    /// Every record stored after the backlog was read (unfiltered); `None` unless following.
    pub live: Option<broadcast::Receiver<Published>>,
}

/// Wall-clock time in nanoseconds since the Unix epoch; injectable so tests control it.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock (0 if it is before 1970, which only a broken host reports).
pub fn system_clock() -> Clock {
    Arc::new(|| crate::time::unix_nanos(SystemTime::now()))
}

/// Why the aggregator could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum AggregatorError {
    /// The push queue is full: the collector is saturated, the proxy should retry later.
    #[error("collector saturated: {capacity} batches already queued; retry later")]
    PushQueueFull {
        /// Configured push queue capacity.
        capacity: usize,
    },
    /// The query queue is full.
    #[error("collector busy: {capacity} queries already queued; retry later")]
    QueryQueueFull {
        /// Configured query queue capacity.
        capacity: usize,
    },
    /// The aggregator task is gone (shutting down).
    #[error("collector is shutting down")]
    Stopped,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

struct PushCommand {
    batch: PushBatch,
    reply: Reply<PushOutcome>,
}

enum QueryCommand {
    Records {
        filter: RecordFilter,
        limit: usize,
        reply: Reply<RecordPage>,
    },
    Counters {
        filter: CounterFilter,
        reply: Reply<Vec<CounterTotal>>,
    },
    Proxies {
        reply: Reply<Vec<ProxyReport>>,
    },
    Explain {
        query: ExplainQuery,
        reply: Reply<ExplainAnswer>,
    },
    Observe {
        filter: ObserveFilter,
        limit: usize,
        follow: bool,
        reply: Reply<Observation>,
    },
    Stats {
        reply: Reply<StoreStats>,
    },
}

/// How handlers reach the aggregator; cheap to clone.
#[derive(Debug, Clone)]
pub struct AggregatorHandle {
    pushes: mpsc::Sender<PushCommand>,
    queries: mpsc::Sender<QueryCommand>,
}

/// Stops the aggregator task and waits for it.
#[derive(Debug)]
pub struct AggregatorTask {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl AggregatorTask {
    /// Stops after the command being processed; queued commands get `Stopped`.
    pub async fn stop(self) -> Result<(), tokio::task::JoinError> {
        // The task may already have ended (every handle dropped); that is fine.
        let _ = self.stop.send(());
        self.task.await
    }
}

impl std::fmt::Debug for PushCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushCommand")
            .field("sequence", &self.batch.sequence)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for QueryCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Records { .. } => "QueryCommand::Records",
            Self::Counters { .. } => "QueryCommand::Counters",
            Self::Proxies { .. } => "QueryCommand::Proxies",
            Self::Explain { .. } => "QueryCommand::Explain",
            Self::Observe { .. } => "QueryCommand::Observe",
            Self::Stats { .. } => "QueryCommand::Stats",
        })
    }
}

/// Starts the aggregator task owning `store`. Must be called inside a tokio runtime.
pub fn spawn<S: Store>(
    store: S,
    config: &CollectorConfig,
    clock: Clock,
) -> (AggregatorHandle, AggregatorTask) {
    let (pushes, push_rx) = mpsc::channel(config.queue_capacity.max(1));
    let (queries, query_rx) = mpsc::channel(config.query_queue_capacity.max(1));
    let (stop, stop_rx) = oneshot::channel();
    let (published, _) = broadcast::channel(OBSERVE_BUFFER);
    let task = tokio::spawn(run(store, push_rx, query_rx, stop_rx, clock, published));
    (
        AggregatorHandle { pushes, queries },
        AggregatorTask { stop, task },
    )
}

async fn run<S: Store>(
    mut store: S,
    mut pushes: mpsc::Receiver<PushCommand>,
    mut queries: mpsc::Receiver<QueryCommand>,
    mut stop: oneshot::Receiver<()>,
    clock: Clock,
    published: broadcast::Sender<Published>,
) {
    let mut evicted = 0;
    let mut upkeep = tokio::time::interval(MAINTAIN_EVERY);
    upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The store said more upkeep is due: one step per turn, after any waiting push.
    let mut upkeep_pending = false;
    loop {
        // Once every handle is gone there is nothing left to keep up: no upkeep then (the loop
        // waits for the stop signal as before).
        let open = !(pushes.is_closed() && queries.is_closed());
        tokio::select! {
            // Queries first: a flood of pushes must not starve someone debugging an outage.
            biased;
            _ = &mut stop => break,
            Some(query) = queries.recv() => answer(&store, query, &published),
            // A tick is due at most once a second and a step is small: ahead of pushes so a
            // flood of them cannot postpone retention forever.
            _ = upkeep.tick(), if open => upkeep_pending = maintain(&mut store, &clock),
            Some(first) = pushes.recv() => {
                // Pushes that queued meanwhile go in with it: a durable store commits them
                // together, one disk write instead of one per Push.
                let mut group = vec![first];
                let mut records = group[0].batch.records.len();
                while group.len() < PUSH_GROUP_MAX && records < PUSH_GROUP_RECORDS {
                    match pushes.try_recv() {
                        Ok(next) => {
                            records += next.batch.records.len();
                            group.push(next);
                        }
                        Err(_) => break,
                    }
                }
                apply_group(&mut store, group, &clock, &published);
                let stats = store.stats();
                if stats.evicted_records > evicted {
                    tracing::debug!(
                        evicted_records = stats.evicted_records,
                        "record cap reached; oldest records evicted"
                    );
                    evicted = stats.evicted_records;
                }
            }
            () = std::future::ready(()), if upkeep_pending && open => {
                upkeep_pending = maintain(&mut store, &clock);
            }
            else => break,
        }
    }
    tracing::debug!("aggregator stopped");
}

/// Applies a group of pushes, publishes what was stored to followers, and answers each Push
/// only now that the store has applied (for a durable store: committed) it.
fn apply_group<S: Store>(
    store: &mut S,
    group: Vec<PushCommand>,
    clock: &Clock,
    published: &broadcast::Sender<Published>,
) {
    // Copies only while someone follows.
    let following = published.receiver_count() > 0;
    let mut batches = Vec::with_capacity(group.len());
    let mut waiting = Vec::with_capacity(group.len());
    for PushCommand { batch, reply } in group {
        let copy = following.then(|| (Arc::new(batch.proxy.clone()), batch.records.clone()));
        batches.push(batch);
        waiting.push((reply, copy));
    }
    let now = clock();
    let outcomes = if batches.len() == 1 {
        batches
            .into_iter()
            .map(|batch| store.apply_push(batch, now))
            .collect()
    } else {
        store.apply_pushes(batches, now)
    };
    for ((reply, copy), outcome) in waiting.into_iter().zip(outcomes) {
        if let (Ok(PushOutcome { duplicate: false }), Some((proxy, records))) = (&outcome, copy) {
            for record in records {
                // Never blocks; no follower left is fine.
                let _ = published.send(Arc::new(StoredRecord {
                    record,
                    proxy: Arc::clone(&proxy),
                    received_unix_nanos: now,
                }));
            }
        }
        // The handler may have given up (client deadline); the batch is stored anyway and a
        // retry is answered as a duplicate.
        let _ = reply.send(outcome);
    }
}

/// One step of store upkeep; whether another is due right away. A failure is logged and
/// retried at the next tick (ingest goes on: retention running late loses nothing).
fn maintain<S: Store>(store: &mut S, clock: &Clock) -> bool {
    match store.maintain(clock()) {
        Ok(more) => more,
        Err(error) => {
            tracing::warn!(%error, "store upkeep failed; retrying at the next tick");
            false
        }
    }
}

fn answer<S: Store>(store: &S, query: QueryCommand, published: &broadcast::Sender<Published>) {
    // A dropped receiver means the client went away; nothing to do.
    match query {
        QueryCommand::Records {
            filter,
            limit,
            reply,
        } => {
            let _ = reply.send(store.list_records(&filter, limit));
        }
        QueryCommand::Counters { filter, reply } => {
            let _ = reply.send(store.list_counters(&filter));
        }
        QueryCommand::Proxies { reply } => {
            let _ = reply.send(store.list_proxies());
        }
        // Runs on the owner task: explain reads records by reference, which only the owner can
        // do without copying; it is bounded (well under a second for a full store), and pushes
        // meanwhile wait in their bounded queue.
        QueryCommand::Explain { query, reply } => {
            let _ = reply.send(store.explain(&query));
        }
        QueryCommand::Stats { reply } => {
            let _ = reply.send(Ok(store.stats()));
        }
        // Backlog and subscription in one turn of the owner: no push lands between them.
        QueryCommand::Observe {
            filter,
            limit,
            follow,
            reply,
        } => {
            let _ = reply.send(observe(store, &filter, limit).map(|(backlog, truncated)| {
                Observation {
                    backlog,
                    truncated,
                    live: follow.then(|| published.subscribe()),
                }
            }));
        }
    }
}

/// The newest `limit` matching records, oldest first, and how many more matched.
fn observe<S: Store>(
    store: &S,
    filter: &ObserveFilter,
    limit: usize,
) -> Result<(Vec<StoredRecord>, u64), StoreError> {
    if filter.store_decides() {
        let page = store.list_records(&filter.records, limit)?;
        let mut backlog = page.records;
        backlog.reverse();
        return Ok((backlog, page.truncated));
    }
    let page = store.list_records(&filter.records, usize::MAX)?;
    let mut matching: Vec<StoredRecord> = page
        .records
        .into_iter()
        .filter(|stored| filter.matches(stored))
        .collect();
    let truncated = matching.len().saturating_sub(limit);
    matching.truncate(limit);
    matching.reverse();
    Ok((matching, truncated as u64))
}

impl AggregatorHandle {
    /// Queues a batch and waits until the store applied it. Never waits for queue space.
    pub async fn push(&self, batch: PushBatch) -> Result<PushOutcome, AggregatorError> {
        let (reply, response) = oneshot::channel();
        self.pushes
            .try_send(PushCommand { batch, reply })
            .map_err(|error| match error {
                TrySendError::Full(_) => AggregatorError::PushQueueFull {
                    capacity: self.pushes.max_capacity(),
                },
                TrySendError::Closed(_) => AggregatorError::Stopped,
            })?;
        Ok(response.await.map_err(|_| AggregatorError::Stopped)??)
    }

    /// Matching records, newest first, at most `limit`.
    pub async fn list_records(
        &self,
        filter: RecordFilter,
        limit: usize,
    ) -> Result<RecordPage, AggregatorError> {
        self.query(|reply| QueryCommand::Records {
            filter,
            limit,
            reply,
        })
        .await
    }

    /// Counter totals.
    pub async fn list_counters(
        &self,
        filter: CounterFilter,
    ) -> Result<Vec<CounterTotal>, AggregatorError> {
        self.query(|reply| QueryCommand::Counters { filter, reply })
            .await
    }

    /// Proxy instances and their loss accounting.
    pub async fn list_proxies(&self) -> Result<Vec<ProxyReport>, AggregatorError> {
        self.query(|reply| QueryCommand::Proxies { reply }).await
    }

    /// Findings over a window, or one request explained end to end.
    pub async fn explain(&self, query: ExplainQuery) -> Result<ExplainAnswer, AggregatorError> {
        self.query(|reply| QueryCommand::Explain { query, reply })
            .await
    }

    /// The backlog of matching records (oldest first, at most `limit`) and, with `follow`, a
    /// subscription to every record stored afterwards.
    pub async fn observe(
        &self,
        filter: ObserveFilter,
        limit: usize,
        follow: bool,
    ) -> Result<Observation, AggregatorError> {
        self.query(|reply| QueryCommand::Observe {
            filter,
            limit,
            follow,
            reply,
        })
        .await
    }

    /// The store's size and eviction count (metrics, readiness: an answer means the owner task
    /// is turning).
    pub async fn stats(&self) -> Result<StoreStats, AggregatorError> {
        self.query(|reply| QueryCommand::Stats { reply }).await
    }

    /// Push batches waiting for the aggregator now, and how many may wait.
    pub fn push_queue(&self) -> (usize, usize) {
        let capacity = self.pushes.max_capacity();
        (capacity - self.pushes.capacity(), capacity)
    }

    async fn query<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> QueryCommand,
    ) -> Result<T, AggregatorError> {
        let (reply, response) = oneshot::channel();
        self.queries
            .try_send(command(reply))
            .map_err(|error| match error {
                TrySendError::Full(_) => AggregatorError::QueryQueueFull {
                    capacity: self.queries.max_capacity(),
                },
                TrySendError::Closed(_) => AggregatorError::Stopped,
            })?;
        Ok(response.await.map_err(|_| AggregatorError::Stopped)??)
    }
}

#[cfg(test)]
mod tests {
    use meshwhy_proto::v1::ProxyIdentity;

    use super::*;
    use crate::store::MemoryStore;

    fn batch(sequence: u64) -> PushBatch {
        PushBatch {
            proxy: ProxyIdentity {
                instance_id: "a".into(),
                ..Default::default()
            },
            sequence,
            records: vec![Default::default()],
            counters: vec![],
            dropped_records: 0,
            dropped_counter_keys: 0,
        }
    }

    fn fixed_clock() -> Clock {
        Arc::new(|| 42)
    }

    #[tokio::test]
    async fn push_is_applied_before_it_is_acknowledged() {
        let (handle, task) = spawn(
            MemoryStore::new(10),
            &CollectorConfig::default(),
            fixed_clock(),
        );
        assert!(!handle.push(batch(1)).await.unwrap().duplicate);
        assert!(handle.push(batch(1)).await.unwrap().duplicate);
        let page = handle
            .list_records(RecordFilter::default(), 10)
            .await
            .unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].received_unix_nanos, 42);
        let proxies = handle.list_proxies().await.unwrap();
        assert_eq!(proxies[0].last_seen_unix_nanos, 42);
        task.stop().await.unwrap();
        assert!(matches!(
            handle.push(batch(2)).await,
            Err(AggregatorError::Stopped)
        ));
    }

    #[test]
    fn observe_filter_reads_the_outbound_cluster_host() {
        assert_eq!(
            cluster_host("outbound|9080|v1|reviews.shop.svc.cluster.local"),
            Some("reviews.shop.svc.cluster.local")
        );
        assert_eq!(cluster_host("inbound|9080||"), None);
        assert_eq!(cluster_host("PassthroughCluster"), None);
        let filter = ObserveFilter {
            to_service: Some("reviews.shop".into()),
            outbound_only: true,
            ..Default::default()
        };
        let mut stored = StoredRecord {
            record: meshwhy_proto::v1::DecisionRecord {
                direction: meshwhy_proto::v1::Direction::Outbound as i32,
                authority: "reviews:9080".into(),
                cluster: "outbound|9080||reviews.shop.svc.cluster.local".into(),
                ..Default::default()
            },
            proxy: Arc::new(ProxyIdentity::default()),
            received_unix_nanos: 0,
        };
        assert!(filter.matches(&stored));
        stored.record.direction = meshwhy_proto::v1::Direction::Inbound as i32;
        assert!(!filter.matches(&stored));
    }

    #[tokio::test]
    async fn observe_subscribes_with_the_backlog_and_skips_duplicates() {
        let (handle, task) = spawn(
            MemoryStore::new(10),
            &CollectorConfig::default(),
            fixed_clock(),
        );
        handle.push(batch(1)).await.unwrap();
        let quiet = handle
            .observe(ObserveFilter::default(), 10, false)
            .await
            .unwrap();
        assert_eq!(quiet.backlog.len(), 1);
        assert!(quiet.live.is_none());
        let mut following = handle
            .observe(ObserveFilter::default(), 10, true)
            .await
            .unwrap();
        assert_eq!(following.backlog.len(), 1);
        let mut live = following.live.take().unwrap();
        handle.push(batch(1)).await.unwrap();
        handle.push(batch(2)).await.unwrap();
        let published = live.recv().await.unwrap();
        assert_eq!(published.received_unix_nanos, 42);
        assert_eq!(published.proxy.instance_id, "a");
        assert!(live.try_recv().is_err(), "the duplicate was not published");
        task.stop().await.unwrap();
    }

    /// Counts upkeep steps; says more is due for the first `busy` of them.
    struct Upkeep {
        inner: MemoryStore,
        steps: Arc<std::sync::atomic::AtomicUsize>,
        busy: usize,
    }

    impl Store for Upkeep {
        fn apply_push(&mut self, batch: PushBatch, now: u64) -> Result<PushOutcome, StoreError> {
            self.inner.apply_push(batch, now)
        }
        fn list_records(
            &self,
            filter: &RecordFilter,
            limit: usize,
        ) -> Result<RecordPage, StoreError> {
            self.inner.list_records(filter, limit)
        }
        fn list_counters(&self, filter: &CounterFilter) -> Result<Vec<CounterTotal>, StoreError> {
            self.inner.list_counters(filter)
        }
        fn list_proxies(&self) -> Result<Vec<ProxyReport>, StoreError> {
            self.inner.list_proxies()
        }
        fn stats(&self) -> StoreStats {
            self.inner.stats()
        }
        fn maintain(&mut self, now: u64) -> Result<bool, StoreError> {
            assert_eq!(now, 42, "upkeep runs on the aggregator's clock");
            let step = self.steps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(step < self.busy)
        }
    }

    #[tokio::test]
    async fn upkeep_steps_until_the_store_is_done_and_pushes_go_on() {
        let steps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let store = Upkeep {
            inner: MemoryStore::new(10),
            steps: Arc::clone(&steps),
            busy: 3,
        };
        let (handle, task) = spawn(store, &CollectorConfig::default(), fixed_clock());
        assert!(!handle.push(batch(1)).await.unwrap().duplicate);
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            // The first tick is immediate; three busy steps ask for a fourth at once.
            while steps.load(std::sync::atomic::Ordering::SeqCst) < 4 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("upkeep ran");
        assert!(!handle.push(batch(2)).await.unwrap().duplicate);
        task.stop().await.unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        // Nobody consumes: once the single slot is taken, the next push is refused, not queued.
        let (pushes, _push_rx) = mpsc::channel(1);
        let (queries, _query_rx) = mpsc::channel(1);
        let handle = AggregatorHandle { pushes, queries };
        let (reply, _response) = oneshot::channel();
        handle
            .pushes
            .try_send(PushCommand {
                batch: batch(1),
                reply,
            })
            .unwrap();
        assert!(matches!(
            handle.push(batch(2)).await,
            Err(AggregatorError::PushQueueFull { capacity: 1 })
        ));
        let (reply, _response) = oneshot::channel();
        handle
            .queries
            .try_send(QueryCommand::Proxies { reply })
            .unwrap();
        assert!(matches!(
            handle.list_proxies().await,
            Err(AggregatorError::QueryQueueFull { capacity: 1 })
        ));
    }

    #[tokio::test]
    async fn a_closed_queue_means_stopped() {
        let (pushes, push_rx) = mpsc::channel(1);
        let (queries, query_rx) = mpsc::channel(1);
        drop((push_rx, query_rx));
        let handle = AggregatorHandle { pushes, queries };
        assert!(matches!(
            handle.push(batch(1)).await,
            Err(AggregatorError::Stopped)
        ));
        assert!(matches!(
            handle.list_proxies().await,
            Err(AggregatorError::Stopped)
        ));
    }
}
