//! proxy-wasm glue (wasm32 only): `MeshwhyRoot` owns the shipping state and talks to the
//! collector from root callbacks; `MeshwhyHttp` reads properties in `on_log` and hands them to
//! the pure core. Every hook returns Continue, nothing here panics, and a bad configuration
//! disables the filter instead of failing `on_configure` (which would make Envoy exit).

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::Duration;

use meshwhy_proto::v1::{ProxyIdentity, PushResponse};
use meshwhy_proto::{INGEST_PUSH_METHOD, INGEST_SERVICE};
use prost::Message;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel, Status};

use crate::batch::{Batcher, FailureAction, WarnLimiter, grpc_status_name, retry_delay_ms};
use crate::cache::{ProvenanceCache, UpstreamCache};
use crate::classify::{Classifier, Outcome, grpc_failed, is_grpc_content_type};
use crate::config::{self, Config};
use crate::headers::RequestHeaders;
use crate::hostcall::{self, Buffer, HeaderMap, Level};
use crate::node::{format_instance_id, identity_from_node};
use crate::record::{
    self, MAX_SHORT_BYTES, Provenance, RawRecord, UpstreamFacts, decode_bool, decode_string,
    decode_u32, decode_u64,
};
use crate::sample::Sampler;

/// The entry point Envoy calls when it loads the module.
mod entry {
    use super::{LogLevel, MeshwhyRoot, RootContext};

    proxy_wasm::main! {{
        // Forward every level: Envoy applies its own wasm log level, so none is hard-coded here.
        proxy_wasm::set_log_level(LogLevel::Trace);
        proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> { Box::new(MeshwhyRoot::default()) });
    }}
}

/// Property paths, segments joined with '\0' as the host ABI expects.
mod path {
    pub(super) const RESPONSE_CODE: &[u8] = b"response\0code";
    pub(super) const RESPONSE_FLAGS: &[u8] = b"response\0flags";
    pub(super) const RESPONSE_GRPC_STATUS: &[u8] = b"response\0grpc_status";
    pub(super) const RESPONSE_CODE_DETAILS: &[u8] = b"response\0code_details";
    pub(super) const REQUEST_DURATION: &[u8] = b"request\0duration";
    pub(super) const LISTENER_DIRECTION: &[u8] = b"xds\0listener_direction";
    pub(super) const ROUTE_NAME: &[u8] = b"xds\0route_name";
    pub(super) const VIRTUAL_HOST_NAME: &[u8] = b"xds\0virtual_host_name";
    pub(super) const CLUSTER_NAME: &[u8] = b"xds\0cluster_name";
    pub(super) const ROUTE_METADATA: &[u8] = b"xds\0route_metadata";
    pub(super) const CLUSTER_METADATA: &[u8] = b"xds\0cluster_metadata";
    pub(super) const UPSTREAM_HOST_METADATA: &[u8] = b"xds\0upstream_host_metadata";
    pub(super) const NODE: &[u8] = b"xds\0node";
    pub(super) const UPSTREAM_ADDRESS: &[u8] = b"upstream\0address";
    pub(super) const UPSTREAM_ATTEMPTS: &[u8] = b"upstream\0request_attempt_count";
    pub(super) const UPSTREAM_FAILURE_REASON: &[u8] = b"upstream\0transport_failure_reason";
    pub(super) const UPSTREAM_TLS_VERSION: &[u8] = b"upstream\0tls_version";
    pub(super) const UPSTREAM_PEER_SAN: &[u8] = b"upstream\0uri_san_peer_certificate";
    pub(super) const CONNECTION_MTLS: &[u8] = b"connection\0mtls";
    pub(super) const CONNECTION_PEER_SAN: &[u8] = b"connection\0uri_san_peer_certificate";
    pub(super) const SOURCE_ADDRESS: &[u8] = b"source\0address";
    pub(super) const PLUGIN_NAME: &[u8] = b"plugin_name";
}

/// Tick period while a high-water flush is pending.
const EARLY_FLUSH_TICK_MS: u32 = 10;
/// Warnings about the collector: at most one per minute.
const WARN_INTERVAL_NANOS: u64 = 60_000_000_000;
/// gRPC DEADLINE_EXCEEDED, for a call whose answer never came.
const GRPC_DEADLINE_EXCEEDED: u32 = 4;
/// gRPC UNAVAILABLE, for a call Envoy refused to start.
const GRPC_UNAVAILABLE: u32 = 14;
const NANOS_PER_MILLI: u64 = 1_000_000;

/// A Push that is out.
#[derive(Debug, Clone, Copy)]
struct Call {
    token: u32,
    sent_at: u64,
}

/// Everything a configured (enabled) VM keeps. Lives in the root context, shared with HTTP
/// contexts of the same thread through `Rc<RefCell<…>>`.
struct Active {
    config: Config,
    classifier: Classifier,
    sampler: Sampler,
    batcher: Batcher,
    provenance: ProvenanceCache,
    upstream: UpstreamCache,
    /// Host time at the last root callback, nanoseconds. `on_log` uses it for provenance expiry
    /// rather than asking the host per request; the tick keeps it within one tick period.
    now: u64,
    /// Current push interval (the collector may change it).
    flush_interval_ms: u32,
    /// Normal tick period: min(flush interval, provenance TTL), so the clock stays fresh enough.
    tick_ms: u32,
    next_flush_at: u64,
    early_flush_requested: bool,
    call: Option<Call>,
    warn: WarnLimiter,
    /// Pushes failed since the last success.
    failed_pushes: u64,
}

type Shared = Rc<RefCell<Option<Active>>>;

fn millis(ms: u32) -> u64 {
    u64::from(ms).saturating_mul(NANOS_PER_MILLI)
}

fn lossy(bytes: Option<Vec<u8>>) -> String {
    bytes
        .map(|b| decode_string(b, MAX_SHORT_BYTES))
        .unwrap_or_default()
}

/// A random 64-bit id: std's per-thread random keys (WASI `random_get`) mixed with the time.
fn random_instance_id(now: u64) -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now);
    hasher.finish()
}

impl Active {
    fn new(config: Config, identity: ProxyIdentity, seed: u64, now: u64) -> Self {
        let classifier = Classifier::new(&config);
        let sampler = Sampler::new(config.success_sample_rate, seed);
        let batcher = Batcher::new(
            identity,
            config.max_batch_records,
            config.max_buffered_records,
            config.max_counter_keys,
        );
        let ttl = millis(config.provenance_ttl_ms);
        let provenance = ProvenanceCache::new(ttl, config.max_counter_keys);
        let upstream = UpstreamCache::new(ttl, config.max_counter_keys);
        let flush_interval_ms = config.flush_interval_ms;
        let tick_ms = flush_interval_ms.min(config.provenance_ttl_ms);
        Self {
            config,
            classifier,
            sampler,
            batcher,
            provenance,
            upstream,
            now,
            flush_interval_ms,
            tick_ms,
            next_flush_at: now.saturating_add(millis(flush_interval_ms)),
            early_flush_requested: false,
            call: None,
            warn: WarnLimiter::new(WARN_INTERVAL_NANOS),
            failed_pushes: 0,
        }
    }

    // ---- root side -------------------------------------------------------------------------

    fn on_tick(&mut self, now: u64) {
        self.now = now;
        let early = std::mem::take(&mut self.early_flush_requested);
        if early {
            hostcall::set_tick_period_ms(self.tick_ms);
        }
        if let Some(call) = self.call {
            // Envoy answers every call by its deadline; this only unsticks a lost answer.
            let stale_after = millis(self.config.grpc_timeout_ms)
                .saturating_mul(2)
                .saturating_add(millis(1000));
            if now.saturating_sub(call.sent_at) > stale_after {
                self.call = None;
                let action = self.batcher.on_failure(GRPC_DEADLINE_EXCEEDED);
                self.push_failed(now, GRPC_DEADLINE_EXCEEDED, action);
            }
        }
        // Half a tick of slack so timer jitter does not skip a whole interval.
        let due = now.saturating_add(millis(self.tick_ms) / 2) >= self.next_flush_at;
        // While pushes fail, only the backoff's schedule sends.
        if (early && self.failed_pushes == 0) || due {
            self.next_flush_at = now.saturating_add(millis(self.flush_interval_ms));
            self.flush(now);
        }
    }

    /// Sends the next batch unless a call is out.
    fn flush(&mut self, now: u64) {
        if self.call.is_some() {
            return;
        }
        let Some(bytes) = self.batcher.next_batch(now, &self.provenance) else {
            return;
        };
        let timeout = Duration::from_millis(self.config.grpc_timeout_ms.into());
        let result = proxy_wasm::hostcalls::dispatch_grpc_call(
            &self.config.grpc_upstream,
            INGEST_SERVICE,
            INGEST_PUSH_METHOD,
            Vec::new(),
            Some(&bytes),
            timeout,
        );
        match result {
            Ok(token) => {
                self.call = Some(Call {
                    token,
                    sent_at: now,
                })
            }
            Err(status) => {
                // ParseFailure: no such cluster; InternalFailure: a wrapped name whose cluster is
                // missing. Keep the batch for a retry; memory stays bounded.
                let action = self.batcher.on_failure(GRPC_UNAVAILABLE);
                self.note_failed_push(now);
                if let Some(suppressed) = self.warn.allow(now) {
                    let cluster = &self.config.collector_cluster;
                    hostcall::log(
                        Level::Warn,
                        &format!(
                            "meshwhy: cannot call the collector: Envoy refused cluster \"{cluster}\" \
                             ({}); define an HTTP/2 cluster named \"{cluster}\" pointing at \
                             the collector; {}{}",
                            host_status_name(status),
                            self.action_text(action),
                            suppressed_text(suppressed)
                        ),
                    );
                }
            }
        }
    }

    fn on_grpc_response(&mut self, now: u64, token: u32, status: u32, response_size: usize) {
        self.now = now;
        match self.call {
            Some(call) if call.token == token => self.call = None,
            // An answer to a call given up on (or from a previous configuration).
            _ => return,
        }
        if status != 0 {
            let action = self.batcher.on_failure(status);
            self.push_failed(now, status, action);
            return;
        }
        self.batcher.on_success();
        if response_size > 0 {
            let response = hostcall::buffer(Buffer::GrpcReceive, response_size)
                .and_then(|body| PushResponse::decode(body.as_slice()).ok());
            if let Some(response) = response {
                self.apply_response(&response);
            }
        }
        if self.failed_pushes > 0 {
            hostcall::log(
                Level::Info,
                &format!(
                    "meshwhy: collector cluster \"{}\" reachable again after {} failed pushes",
                    self.config.collector_cluster, self.failed_pushes
                ),
            );
            self.failed_pushes = 0;
        }
        if self.batcher.should_flush_early() {
            self.flush(now);
        }
    }

    /// The collector may ask for another flush interval.
    fn apply_response(&mut self, response: &PushResponse) {
        let wanted = match response.flush_interval_ms {
            0 => self.config.flush_interval_ms,
            ms => ms.clamp(10, 60_000),
        };
        if wanted == self.flush_interval_ms {
            return;
        }
        self.flush_interval_ms = wanted;
        self.tick_ms = wanted.min(self.config.provenance_ttl_ms);
        self.next_flush_at = self.now.saturating_add(millis(wanted));
        hostcall::set_tick_period_ms(self.tick_ms);
        hostcall::log(
            Level::Info,
            &format!("meshwhy: flush_interval_ms={wanted} (set by the collector)"),
        );
    }

    /// Counts a failed push and backs off: the next one waits [`retry_delay_ms`].
    fn note_failed_push(&mut self, now: u64) {
        self.failed_pushes = self.failed_pushes.saturating_add(1);
        let delay = retry_delay_ms(self.flush_interval_ms, self.failed_pushes);
        self.next_flush_at = now.saturating_add(millis(delay));
    }

    fn push_failed(&mut self, now: u64, status: u32, action: FailureAction) {
        self.note_failed_push(now);
        let Some(suppressed) = self.warn.allow(now) else {
            return;
        };
        let cluster = &self.config.collector_cluster;
        let hint = match status {
            14 => format!(
                " (is the collector up, and is cluster \"{cluster}\" HTTP/2 with http2_protocol_options?)"
            ),
            _ => String::new(),
        };
        hostcall::log(
            Level::Warn,
            &format!(
                "meshwhy: push to collector cluster \"{cluster}\" failed: grpc-status {status} ({}){hint}; {}{}",
                grpc_status_name(status),
                self.action_text(action),
                suppressed_text(suppressed)
            ),
        );
    }

    fn action_text(&self, action: FailureAction) -> String {
        let buffered = self.batcher.buffered_records();
        let dropped = self.batcher.dropped_records();
        match action {
            FailureAction::Retry { sequence } => format!(
                "batch {sequence} kept for retry ({buffered} records buffered, {dropped} dropped so far)"
            ),
            FailureAction::Dropped { sequence, records } => format!(
                "the collector rejected batch {sequence}: its {records} records are dropped, its \
                 counters go out with the next batch ({dropped} records dropped so far)"
            ),
            FailureAction::Ignored => {
                format!("{buffered} records buffered, {dropped} dropped so far")
            }
        }
    }

    // ---- per request -----------------------------------------------------------------------

    /// Decides with the cheapest reads first; successes bump a counter, failures (and sampled
    /// successes) become full records.
    fn on_log(&mut self) {
        let code = hostcall::property(path::RESPONSE_CODE)
            .as_deref()
            .and_then(decode_u32);
        let flags = hostcall::property(path::RESPONSE_FLAGS)
            .as_deref()
            .and_then(decode_u64)
            .unwrap_or(0);
        let mut failure = self.classifier.fails_on_code_or_flags(code, flags);
        let mut grpc = None;
        if !failure {
            let content_type = hostcall::header(HeaderMap::Request, b"content-type");
            let read = read_grpc(content_type.as_deref());
            failure = read.0 && grpc_failed(read.1);
            grpc = Some(read);
        }
        let sampled = !failure && self.sampler.sample();
        if !failure && !sampled {
            self.count_success(code.unwrap_or(0));
            return;
        }
        let headers = hostcall::header_pairs(HeaderMap::Request)
            .map(|map| RequestHeaders::from_serialized(&map))
            .unwrap_or_default();
        let (is_grpc, grpc_status) =
            grpc.unwrap_or_else(|| read_grpc(headers.content_type.as_deref()));
        let outcome = Outcome {
            code,
            flags,
            grpc: is_grpc,
            grpc_status,
        };
        let record = self.read_record(headers, &outcome, sampled);
        self.batcher.push_record(record);
        if self.batcher.should_flush_early()
            && !self.early_flush_requested
            && self.failed_pushes == 0
        {
            // Only root callbacks may send (answers to calls made here never arrive): ask the
            // root for an early tick. Not while pushes fail: then the backoff decides.
            self.early_flush_requested = hostcall::set_tick_period_ms(EARLY_FLUSH_TICK_MS);
        }
    }

    /// Success path: two reads, plus four on a provenance miss; no allocation of ours when the
    /// counter key exists.
    fn count_success(&mut self, code: u32) {
        let route = hostcall::property(path::ROUTE_NAME).unwrap_or_default();
        let cluster = hostcall::property(path::CLUSTER_NAME).unwrap_or_default();
        if self.provenance.fresh(&route, &cluster, self.now).is_none() {
            self.provenance
                .insert(&route, &cluster, read_provenance(true), self.now);
        }
        self.batcher.count_success(&route, &cluster, code);
    }

    /// A full record. Every host call costs microseconds of Envoy CPU, so only what can differ
    /// per request is read per request: on top of the code, flags and header map, six reads and
    /// the clock, plus the transport failure when Envoy flagged the request and the downstream
    /// peer on inbound listeners. What the configuration fixes comes from the caches.
    fn read_record(
        &mut self,
        headers: RequestHeaders,
        outcome: &Outcome,
        sampled: bool,
    ) -> meshwhy_proto::v1::DecisionRecord {
        let property = hostcall::property;
        let flagged = outcome.flags != 0;
        let mut raw = RawRecord {
            now_unix_nanos: hostcall::now_nanos().unwrap_or(self.now),
            headers,
            code_details: property(path::RESPONSE_CODE_DETAILS),
            route_name: property(path::ROUTE_NAME),
            cluster: property(path::CLUSTER_NAME),
            upstream_address: property(path::UPSTREAM_ADDRESS),
            // Read even without a picked host: UH counts one attempt with no address (Envoy 1.40).
            attempt_count: property(path::UPSTREAM_ATTEMPTS),
            duration: property(path::REQUEST_DURATION),
            ..Default::default()
        };
        if flagged {
            // Set by a failed upstream connection, which Envoy always flags (UF, URX, UO, UH…).
            raw.transport_failure_reason = property(path::UPSTREAM_FAILURE_REASON);
        }
        let provenance = self.record_provenance(raw.route_name.as_deref(), raw.cluster.as_deref());
        if !provenance.is_outbound() {
            // On an outbound listener the downstream is the app's own plaintext connection.
            raw.downstream_mtls = property(path::CONNECTION_MTLS);
            if raw.downstream_mtls.as_deref().is_some_and(decode_bool) {
                raw.downstream_peer_principal = property(path::CONNECTION_PEER_SAN);
            }
            raw.source_address = property(path::SOURCE_ADDRESS);
        }
        let upstream = self.upstream_facts(
            raw.cluster.as_deref(),
            raw.upstream_address.as_deref(),
            flagged,
        );
        record::build(raw, outcome, provenance, upstream, sampled)
    }

    /// Provenance, virtual host and direction for a full record, through the cache. An unnamed
    /// route (Istio leaves VirtualService routes without `name:` unnamed) does not tell two
    /// VirtualServices sending to one cluster apart, so it is read afresh, as is a request
    /// that matched no route (no metadata to read then).
    fn record_provenance(&mut self, route: Option<&[u8]>, cluster: Option<&[u8]>) -> Provenance {
        let Some(route) = route.filter(|route| !route.is_empty()) else {
            return read_provenance(route.is_some() || cluster.is_some());
        };
        let cluster = cluster.unwrap_or_default();
        if let Some(provenance) = self.provenance.fresh(route, cluster, self.now) {
            return provenance.clone();
        }
        let provenance = read_provenance(true);
        self.provenance
            .insert(route, cluster, provenance.clone(), self.now);
        provenance
    }

    /// TLS facts and endpoint metadata of the picked upstream host, through the cache unless
    /// Envoy flagged the request: a failed or reset connection may be the very explanation (e.g.
    /// a DestinationRule that just turned mTLS off), so it is read afresh, and not cached (a
    /// handshake that failed says nothing about the host's working connections).
    fn upstream_facts(
        &mut self,
        cluster: Option<&[u8]>,
        address: Option<&[u8]>,
        flagged: bool,
    ) -> UpstreamFacts {
        let Some(address) = address else {
            return UpstreamFacts::default();
        };
        let cluster = cluster.unwrap_or_default();
        if !flagged && let Some(facts) = self.upstream.fresh(cluster, address, self.now) {
            return facts.clone();
        }
        let host_metadata = hostcall::property(path::UPSTREAM_HOST_METADATA);
        let facts = UpstreamFacts::decode(
            hostcall::property(path::UPSTREAM_TLS_VERSION),
            hostcall::property(path::UPSTREAM_PEER_SAN),
            // Absent (a failed read) when the endpoint has no metadata: no sidecar-injected tlsMode.
            host_metadata.as_deref(),
        );
        if !flagged {
            self.upstream
                .insert(cluster, address, facts.clone(), self.now);
        }
        facts
    }
}

/// Whether the request is gRPC (by its `content-type`) and, only then, its grpc-status
/// (meaningless for plain HTTP).
fn read_grpc(content_type: Option<&[u8]>) -> (bool, Option<u32>) {
    if !content_type.is_some_and(is_grpc_content_type) {
        return (false, None);
    }
    (
        true,
        hostcall::property(path::RESPONSE_GRPC_STATUS)
            .as_deref()
            .and_then(decode_u32),
    )
}

/// Reads what is fixed per (route, cluster); the route and cluster metadata only when there is
/// a route or cluster to carry it.
fn read_provenance(with_metadata: bool) -> Provenance {
    let virtual_host = lossy(hostcall::property(path::VIRTUAL_HOST_NAME));
    let direction = hostcall::property(path::LISTENER_DIRECTION)
        .as_deref()
        .and_then(decode_u64);
    if !with_metadata {
        return Provenance::from_metadata(None, None, virtual_host, direction);
    }
    let route_metadata = hostcall::property(path::ROUTE_METADATA);
    let cluster_metadata = hostcall::property(path::CLUSTER_METADATA);
    Provenance::from_metadata(
        route_metadata.as_deref(),
        cluster_metadata.as_deref(),
        virtual_host,
        direction,
    )
}

/// Name of a host call status (without the Debug machinery).
fn host_status_name(status: Status) -> &'static str {
    match status {
        Status::ParseFailure => "ParseFailure: no such cluster",
        Status::InternalFailure => "InternalFailure",
        Status::BadArgument => "BadArgument",
        Status::NotFound => "NotFound",
        _ => "unexpected status",
    }
}

fn suppressed_text(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} similar warnings suppressed)")
    }
}

/// The root context: configuration, the collector connection, the shipping state.
#[derive(Default)]
pub(crate) struct MeshwhyRoot {
    shared: Shared,
}

impl MeshwhyRoot {
    fn configure(&mut self) {
        let now = hostcall::now_nanos().unwrap_or(0);
        let bytes = hostcall::buffer(Buffer::PluginConfiguration, usize::MAX).unwrap_or_default();
        let config = match config::parse(&bytes) {
            Ok(config) => config,
            Err(error) => {
                hostcall::log(Level::Error, &config::error_log_line(&error));
                self.set_active(None);
                // 0 stops the timer of a previous, valid configuration.
                hostcall::set_tick_period_ms(0);
                return;
            }
        };
        // ~61 KB on an Istio sidecar: read once here, never per request.
        let node = hostcall::property(path::NODE);
        let mut identity = match identity_from_node(node.as_deref()) {
            Ok(identity) => identity,
            Err(error) => {
                hostcall::log(
                    Level::Warn,
                    &format!(
                        "meshwhy: {error}; batches will carry only the instance id and plugin name"
                    ),
                );
                ProxyIdentity::default()
            }
        };
        drop(node);
        let id = random_instance_id(now);
        identity.instance_id = format_instance_id(id);
        identity.plugin_name = lossy(hostcall::property(path::PLUGIN_NAME));
        identity.filter_version = crate::FILTER_VERSION.to_owned();
        if config.grpc_upstream != config.collector_cluster {
            hostcall::log(
                Level::Info,
                &format!(
                    "meshwhy: collector_cluster \"{}\" is also valid protobuf bytes, which Envoy would \
                     read as a serialized GrpcService; calling it as GrpcService {{ envoy_grpc {{ \
                     cluster_name }} }} instead",
                    config.collector_cluster
                ),
            );
        }
        let line = format!(
            "meshwhy: configured: collector_cluster={} flush_interval_ms={} instance={}",
            config.collector_cluster, config.flush_interval_ms, identity.instance_id
        );
        let active = Active::new(config, identity, id, now);
        hostcall::set_tick_period_ms(active.tick_ms);
        self.set_active(Some(active));
        hostcall::log(Level::Info, &line);
    }

    fn set_active(&self, active: Option<Active>) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            *shared = active;
        }
    }

    fn with_active(&self, f: impl FnOnce(&mut Active)) {
        // A failed borrow means re-entry from inside our own callback: skip, never panic.
        let Ok(mut shared) = self.shared.try_borrow_mut() else {
            return;
        };
        if let Some(active) = shared.as_mut() {
            f(active);
        }
    }
}

impl Context for MeshwhyRoot {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        self.with_active(|active| {
            let now = hostcall::now_nanos().unwrap_or(active.now);
            active.on_grpc_response(now, token_id, status_code, response_size);
        });
    }
}

impl RootContext for MeshwhyRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.configure();
        // Always true: false is fatal to Envoy whatever the failure policy.
        true
    }

    fn on_tick(&mut self) {
        self.with_active(|active| {
            let now = hostcall::now_nanos().unwrap_or(active.now);
            active.on_tick(now);
        });
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Always a context (the SDK panics on None); a disabled one does nothing.
        Some(Box::new(MeshwhyHttp {
            shared: Rc::clone(&self.shared),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Per-request context: only `on_log` does anything; header hooks keep the SDK's Continue.
pub(crate) struct MeshwhyHttp {
    shared: Shared,
}

impl Context for MeshwhyHttp {}

impl HttpContext for MeshwhyHttp {
    fn on_log(&mut self) {
        let Ok(mut shared) = self.shared.try_borrow_mut() else {
            return;
        };
        if let Some(active) = shared.as_mut() {
            active.on_log();
        }
    }
}
