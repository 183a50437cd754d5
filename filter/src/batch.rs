//! The shipping state machine: a bounded record buffer, the live success counters, and at most
//! one Push in flight. A failed batch is kept and retried with the same sequence number (the
//! collector applies each (instance, sequence) once), so counters are never lost or doubled and
//! memory stays flat however long the collector is down.

use std::collections::VecDeque;

use meshwhy_proto::v1::{DecisionRecord, ProxyIdentity, PushRequest};
use prost::Message;

use crate::cache::ProvenanceCache;
use crate::counters::CounterTable;

/// gRPC INVALID_ARGUMENT: the collector will never accept this batch.
pub const GRPC_INVALID_ARGUMENT: u32 = 3;
/// Longest wait between pushes while the collector keeps failing them, unless the flush
/// interval itself is longer.
pub const MAX_RETRY_DELAY_MS: u32 = 5_000;

/// How long to wait before the next push after `failed_pushes` consecutive failures: the flush
/// interval, doubled per further failure, at most [`MAX_RETRY_DELAY_MS`] (or the interval). A
/// full buffer does not shorten it, so an outage costs a push every few seconds rather than one
/// per tick, and a collector that comes back gets the backlog within the cap.
pub fn retry_delay_ms(flush_interval_ms: u32, failed_pushes: u64) -> u32 {
    let cap = MAX_RETRY_DELAY_MS.max(flush_interval_ms);
    let doublings = u32::try_from(failed_pushes.saturating_sub(1).min(16)).unwrap_or(16);
    flush_interval_ms.saturating_mul(1 << doublings).min(cap)
}

/// Where the current batch is.
#[derive(Debug)]
enum State {
    /// Nothing sent and unanswered.
    Idle,
    /// A Push is out; its batch is kept until the answer.
    InFlight(PushRequest),
    /// The last Push failed with a retryable status; sent again on the next flush.
    Retry(PushRequest),
}

/// What a failed call did to its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    /// Kept; the same sequence goes out again on the next flush.
    Retry {
        /// Sequence of the kept batch.
        sequence: u64,
    },
    /// Rejected for good: its records were dropped (and counted), its counters merged back.
    Dropped {
        /// Sequence of the dropped batch.
        sequence: u64,
        /// Records dropped with it.
        records: usize,
    },
    /// No batch was in flight (a late or duplicate answer).
    Ignored,
}

/// Buffer, counters and the batch in flight for one VM.
#[derive(Debug)]
pub struct Batcher {
    identity: ProxyIdentity,
    queue: VecDeque<DecisionRecord>,
    counters: CounterTable,
    max_batch_records: usize,
    max_buffered_records: usize,
    next_sequence: u64,
    dropped_records: u64,
    state: State,
}

impl Batcher {
    /// A batcher for the VM `identity`. `max_buffered_records` bounds queued plus in-flight
    /// records.
    pub fn new(
        identity: ProxyIdentity,
        max_batch_records: usize,
        max_buffered_records: usize,
        max_counter_keys: usize,
    ) -> Self {
        let max_batch_records = max_batch_records.max(1);
        Self {
            identity,
            queue: VecDeque::new(),
            counters: CounterTable::new(max_counter_keys),
            max_batch_records,
            max_buffered_records: max_buffered_records.max(max_batch_records),
            next_sequence: 1,
            dropped_records: 0,
            state: State::Idle,
        }
    }

    /// The identity every batch carries.
    pub fn identity(&self) -> &ProxyIdentity {
        &self.identity
    }

    fn batch_records(&self) -> usize {
        match &self.state {
            State::Idle => 0,
            State::InFlight(batch) | State::Retry(batch) => batch.records.len(),
        }
    }

    /// Buffers a record; when the buffer is full the record is dropped and counted.
    pub fn push_record(&mut self, record: DecisionRecord) -> bool {
        if self.buffered_records() >= self.max_buffered_records {
            self.dropped_records = self.dropped_records.saturating_add(1);
            return false;
        }
        self.queue.push_back(record);
        true
    }

    /// Counts one success.
    pub fn count_success(&mut self, route: &[u8], cluster: &[u8], code: u32) {
        self.counters.bump(route, cluster, code);
    }

    /// Records held: queued plus those in the current batch (never above the configured max).
    pub fn buffered_records(&self) -> usize {
        self.queue.len().saturating_add(self.batch_records())
    }

    /// Records waiting for a batch.
    pub fn queued_records(&self) -> usize {
        self.queue.len()
    }

    /// High-water: a full batch is waiting, flush without waiting for the next interval.
    pub fn should_flush_early(&self) -> bool {
        self.queue.len() >= self.max_batch_records
    }

    /// Whether a Push is out and unanswered.
    pub fn in_flight(&self) -> bool {
        matches!(self.state, State::InFlight(_))
    }

    /// Sequence of the batch in flight or waiting for a retry.
    pub fn current_sequence(&self) -> Option<u64> {
        match &self.state {
            State::Idle => None,
            State::InFlight(batch) | State::Retry(batch) => Some(batch.sequence),
        }
    }

    /// Records dropped since start (buffer full, batch rejected).
    pub fn dropped_records(&self) -> u64 {
        self.dropped_records
    }

    /// Requests counted under the overflow key since start.
    pub fn dropped_counter_keys(&self) -> u64 {
        self.counters.dropped_counter_keys()
    }

    /// The encoded Push to send now, if any; the batch then counts as in flight.
    ///
    /// A batch waiting for a retry goes out again with its sequence, records and counters
    /// unchanged (only the send time and cumulative drop counts are refreshed). Otherwise a new
    /// batch takes up to `max_batch_records` records and every counter delta. `None` while a
    /// call is in flight or when there is nothing to send.
    pub fn next_batch(
        &mut self,
        now_unix_nanos: u64,
        provenance: &ProvenanceCache,
    ) -> Option<Vec<u8>> {
        let mut batch = match std::mem::replace(&mut self.state, State::Idle) {
            State::InFlight(batch) => {
                self.state = State::InFlight(batch);
                return None;
            }
            State::Retry(batch) => batch,
            State::Idle => {
                if self.queue.is_empty() && !self.counters.has_pending() {
                    return None;
                }
                let take = self.queue.len().min(self.max_batch_records);
                let records: Vec<DecisionRecord> = self.queue.drain(..take).collect();
                let counters = self
                    .counters
                    .drain(|route, cluster| provenance.latest(route, cluster));
                let sequence = self.next_sequence;
                self.next_sequence = self.next_sequence.saturating_add(1);
                PushRequest {
                    proxy: Some(self.identity.clone()),
                    sequence,
                    records,
                    counters,
                    ..Default::default()
                }
            }
        };
        batch.dropped_records = self.dropped_records;
        batch.dropped_counter_keys = self.counters.dropped_counter_keys();
        batch.sent_time_unix_nanos = now_unix_nanos;
        let bytes = batch.encode_to_vec();
        self.state = State::InFlight(batch);
        Some(bytes)
    }

    /// The collector stored the batch in flight.
    pub fn on_success(&mut self) -> Option<u64> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::InFlight(batch) => Some(batch.sequence),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// The call failed with `grpc_status`. INVALID_ARGUMENT drops the batch's records (counted)
    /// and merges its counters back into the live table; anything else keeps it for a retry.
    pub fn on_failure(&mut self, grpc_status: u32) -> FailureAction {
        let batch = match std::mem::replace(&mut self.state, State::Idle) {
            State::InFlight(batch) => batch,
            other => {
                self.state = other;
                return FailureAction::Ignored;
            }
        };
        let sequence = batch.sequence;
        if grpc_status != GRPC_INVALID_ARGUMENT {
            self.state = State::Retry(batch);
            return FailureAction::Retry { sequence };
        }
        let records = batch.records.len();
        self.dropped_records = self.dropped_records.saturating_add(records as u64);
        self.counters.merge(&batch.counters);
        FailureAction::Dropped { sequence, records }
    }
}

/// gRPC status code name, for log lines.
pub fn grpc_status_name(status: u32) -> &'static str {
    match status {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "unknown status",
    }
}

/// Lets a warning through at most once per interval, counting the ones held back, so a
/// collector outage logs one line a minute, not one per flush.
#[derive(Debug, Clone)]
pub struct WarnLimiter {
    interval_nanos: u64,
    last: Option<u64>,
    suppressed: u64,
}

impl WarnLimiter {
    /// A limiter allowing one warning per `interval_nanos`.
    pub fn new(interval_nanos: u64) -> Self {
        Self {
            interval_nanos,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a warning may be logged now (`n` were held back since the last one).
    pub fn allow(&mut self, now: u64) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_sub(last) < self.interval_nanos => {
                self.suppressed = self.suppressed.saturating_add(1);
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNAVAILABLE: u32 = 14;

    fn batcher(max_batch: usize, max_buffered: usize, max_keys: usize) -> Batcher {
        let identity = ProxyIdentity {
            instance_id: "0123456789abcdef".into(),
            ..Default::default()
        };
        Batcher::new(identity, max_batch, max_buffered, max_keys)
    }

    fn record(n: u32) -> DecisionRecord {
        DecisionRecord {
            request_id: format!("req-{n}"),
            response_code: 503,
            ..Default::default()
        }
    }

    fn decode(bytes: &[u8]) -> PushRequest {
        PushRequest::decode(bytes).expect("valid PushRequest")
    }

    fn cache() -> ProvenanceCache {
        ProvenanceCache::new(1_000_000, 100)
    }

    fn counted(request: &PushRequest) -> u64 {
        request.counters.iter().map(|c| c.count).sum()
    }

    #[test]
    fn nothing_to_send_sends_nothing() {
        let mut b = batcher(10, 100, 10);
        assert!(b.next_batch(1, &cache()).is_none());
        assert!(!b.in_flight());
    }

    #[test]
    fn sequences_start_at_one_and_increase_per_new_batch() {
        let mut b = batcher(10, 100, 10);
        for want in 1..=5u64 {
            b.push_record(record(1));
            let sent = decode(&b.next_batch(want * 10, &cache()).expect("batch"));
            assert_eq!(sent.sequence, want);
            assert_eq!(sent.sent_time_unix_nanos, want * 10);
            assert_eq!(
                sent.proxy.as_ref().map(|p| p.instance_id.as_str()),
                Some("0123456789abcdef")
            );
            assert_eq!(b.on_success(), Some(want));
        }
    }

    #[test]
    fn one_call_in_flight_at_most() {
        let mut b = batcher(10, 100, 10);
        b.push_record(record(1));
        assert!(b.next_batch(1, &cache()).is_some());
        b.push_record(record(2));
        assert!(b.in_flight());
        assert!(
            b.next_batch(2, &cache()).is_none(),
            "second call while the first is out"
        );
        b.on_success();
        let sent = decode(&b.next_batch(3, &cache()).expect("batch"));
        assert_eq!(sent.sequence, 2);
        assert_eq!(sent.records.len(), 1);
    }

    #[test]
    fn batches_take_at_most_max_batch_records() {
        let mut b = batcher(3, 100, 10);
        for n in 0..7 {
            b.push_record(record(n));
        }
        assert!(b.should_flush_early());
        let first = decode(&b.next_batch(1, &cache()).expect("batch"));
        assert_eq!(first.records.len(), 3);
        assert_eq!(first.records[0].request_id, "req-0");
        b.on_success();
        assert!(b.should_flush_early());
        let second = decode(&b.next_batch(2, &cache()).expect("batch"));
        assert_eq!(second.records.len(), 3);
        assert_eq!(second.records[0].request_id, "req-3");
        b.on_success();
        assert!(!b.should_flush_early());
        assert_eq!(b.queued_records(), 1);
    }

    #[test]
    fn retries_back_off_to_a_cap() {
        let delays: Vec<u32> = (1..=6).map(|n| retry_delay_ms(1_000, n)).collect();
        assert_eq!(delays, vec![1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
        assert_eq!(retry_delay_ms(1_000, u64::MAX), 5_000);
        // A flush interval above the cap is kept as it is.
        assert_eq!(retry_delay_ms(20_000, 3), 20_000);
        assert_eq!(retry_delay_ms(100, 2), 200);
    }

    #[test]
    fn counters_alone_make_a_batch() {
        let mut b = batcher(10, 100, 10);
        b.count_success(b"r", b"c", 200);
        b.count_success(b"r", b"c", 200);
        let sent = decode(&b.next_batch(1, &cache()).expect("batch"));
        assert!(sent.records.is_empty());
        assert_eq!(counted(&sent), 2);
        b.on_success();
        assert!(b.next_batch(2, &cache()).is_none(), "deltas were taken");
    }

    #[test]
    fn retry_keeps_the_sequence_and_the_content() {
        let mut b = batcher(10, 100, 10);
        b.push_record(record(1));
        b.count_success(b"r", b"c", 200);
        let first = decode(&b.next_batch(10, &cache()).expect("batch"));
        assert_eq!(
            b.on_failure(UNAVAILABLE),
            FailureAction::Retry { sequence: 1 }
        );
        assert!(!b.in_flight());
        // New traffic while the collector is down lands in the buffer and the live table.
        b.push_record(record(2));
        b.count_success(b"r", b"c", 200);
        let retry = decode(&b.next_batch(20, &cache()).expect("retry"));
        assert_eq!(retry.sequence, 1);
        assert_eq!(retry.records, first.records);
        assert_eq!(retry.counters, first.counters);
        assert_eq!(retry.sent_time_unix_nanos, 20);
        assert_eq!(b.on_success(), Some(1));
        let next = decode(&b.next_batch(30, &cache()).expect("batch"));
        assert_eq!(next.sequence, 2);
        assert_eq!(next.records[0].request_id, "req-2");
        assert_eq!(counted(&next), 1);
    }

    #[test]
    fn buffer_bound_holds_under_a_long_outage() {
        let (max_batch, max_buffered) = (50, 200);
        let mut b = batcher(max_batch, max_buffered, 16);
        let mut offered = 0u64;
        let mut stored_records = 0u64;
        let mut counted_successes = 0u64;
        let mut stored_counts = 0u64;
        // One hour of one-second flushes with the collector down, 300 failures and 1000
        // successes per second, then it comes back.
        for second in 0..3600u64 {
            for n in 0..300u32 {
                offered += 1;
                b.push_record(record(n));
                assert!(b.buffered_records() <= max_buffered);
            }
            for n in 0..1000u32 {
                b.count_success(format!("route-{}", n % 8).as_bytes(), b"cluster", 200);
                counted_successes += 1;
            }
            if let Some(bytes) = b.next_batch(second, &cache()) {
                assert!(decode(&bytes).sequence == 1, "the same batch, retried");
                b.on_failure(UNAVAILABLE);
            }
            assert!(b.buffered_records() <= max_buffered);
        }
        // Recovery: drain everything.
        let mut last_sequence = 0;
        while let Some(bytes) = b.next_batch(4000, &cache()) {
            let sent = decode(&bytes);
            assert!(sent.sequence == last_sequence + 1 || sent.sequence == 1);
            last_sequence = sent.sequence;
            stored_records += sent.records.len() as u64;
            stored_counts += counted(&sent);
            b.on_success();
        }
        assert_eq!(
            stored_records + b.dropped_records(),
            offered,
            "every record is stored or counted as dropped"
        );
        assert_eq!(stored_records, max_buffered as u64);
        assert_eq!(
            stored_counts, counted_successes,
            "counters are exact across an outage"
        );
        assert_eq!(b.buffered_records(), 0);
    }

    #[test]
    fn dropped_count_travels_cumulatively() {
        let mut b = batcher(1, 2, 10);
        for n in 0..5 {
            b.push_record(record(n));
        }
        assert_eq!(b.dropped_records(), 3);
        let sent = decode(&b.next_batch(1, &cache()).expect("batch"));
        assert_eq!(sent.dropped_records, 3);
        b.on_success();
        b.push_record(record(9));
        b.push_record(record(10));
        let sent = decode(&b.next_batch(2, &cache()).expect("batch"));
        assert_eq!(sent.dropped_records, 4, "cumulative");
    }

    #[test]
    fn invalid_argument_drops_records_but_keeps_counters() {
        let mut b = batcher(10, 100, 10);
        b.push_record(record(1));
        b.push_record(record(2));
        b.count_success(b"r", b"c", 200);
        b.count_success(b"r", b"c", 204);
        b.next_batch(1, &cache()).expect("batch");
        assert_eq!(
            b.on_failure(GRPC_INVALID_ARGUMENT),
            FailureAction::Dropped {
                sequence: 1,
                records: 2
            }
        );
        assert_eq!(b.dropped_records(), 2);
        assert!(!b.in_flight());
        b.count_success(b"r", b"c", 200);
        let next = decode(&b.next_batch(2, &cache()).expect("batch"));
        assert_eq!(next.sequence, 2, "a rejected batch's number is not reused");
        assert!(next.records.is_empty());
        assert_eq!(counted(&next), 3);
        assert_eq!(next.dropped_records, 2);
    }

    #[test]
    fn counters_sum_exactly_across_failures_and_retries() {
        let mut b = batcher(5, 20, 4);
        let mut counted_successes = 0u64;
        let mut stored = 0u64;
        let statuses = [
            UNAVAILABLE,
            0,
            4,
            GRPC_INVALID_ARGUMENT,
            8,
            0,
            0,
            GRPC_INVALID_ARGUMENT,
            0,
            13,
            0,
        ];
        for (i, status) in statuses.iter().enumerate() {
            for n in 0..(i as u32 * 3 + 1) {
                b.count_success(format!("r{}", n % 6).as_bytes(), b"c", 200 + n % 2);
                counted_successes += 1;
            }
            b.push_record(record(i as u32));
            let Some(bytes) = b.next_batch(i as u64, &cache()) else {
                continue;
            };
            let sent = decode(&bytes);
            if *status == 0 {
                stored += counted(&sent);
                b.on_success();
            } else {
                b.on_failure(*status);
            }
        }
        while let Some(bytes) = b.next_batch(100, &cache()) {
            stored += counted(&decode(&bytes));
            b.on_success();
        }
        assert_eq!(stored, counted_successes);
    }

    #[test]
    fn late_answers_are_ignored() {
        let mut b = batcher(10, 100, 10);
        assert_eq!(b.on_failure(UNAVAILABLE), FailureAction::Ignored);
        assert_eq!(b.on_success(), None);
        b.push_record(record(1));
        b.next_batch(1, &cache());
        b.on_failure(UNAVAILABLE);
        assert_eq!(
            b.on_failure(UNAVAILABLE),
            FailureAction::Ignored,
            "already waiting for a retry"
        );
        assert_eq!(b.on_success(), None);
        assert_eq!(b.current_sequence(), Some(1));
    }
    #[test]
    fn warnings_are_rate_limited() {
        let mut limiter = WarnLimiter::new(60);
        assert_eq!(limiter.allow(0), Some(0));
        assert_eq!(limiter.allow(10), None);
        assert_eq!(limiter.allow(59), None);
        assert_eq!(limiter.allow(60), Some(2));
        assert_eq!(limiter.allow(61), None);
        assert_eq!(limiter.allow(1000), Some(1));
    }

    #[test]
    fn status_names() {
        assert_eq!(grpc_status_name(14), "UNAVAILABLE");
        assert_eq!(grpc_status_name(GRPC_INVALID_ARGUMENT), "INVALID_ARGUMENT");
        assert_eq!(grpc_status_name(99), "unknown status");
    }
}
