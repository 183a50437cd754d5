//! Test support shared by the collector's integration tests.

use meshwhy_collector::store::{
    CounterFilter, CounterTotal, MemoryStore, ProxyReport, PushBatch, PushOutcome, RecordFilter,
    RecordPage, Store, StoreError, StoreStats,
};
use tokio::sync::mpsc;

/// The memory store behind a gate: `apply_push` reports the batch's sequence on `entered`, then
/// blocks until the test sends on `release`, so the aggregator's queue can be filled (and the
/// aggregator held) deterministically.
pub(crate) struct GateStore {
    pub(crate) inner: MemoryStore,
    pub(crate) entered: mpsc::UnboundedSender<u64>,
    pub(crate) release: std::sync::mpsc::Receiver<()>,
}

impl Store for GateStore {
    fn apply_push(&mut self, batch: PushBatch, now: u64) -> Result<PushOutcome, StoreError> {
        let _ = self.entered.send(batch.sequence);
        // Blocking inside the aggregator is the point; block_in_place keeps the runtime's other
        // tasks (the gRPC and HTTP handlers) running meanwhile.
        tokio::task::block_in_place(|| self.release.recv()).expect("test releases the gate");
        self.inner.apply_push(batch, now)
    }
    fn list_records(&self, filter: &RecordFilter, limit: usize) -> Result<RecordPage, StoreError> {
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
}
