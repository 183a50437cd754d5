//! meshwhy's proxy-wasm HTTP filter: records what Envoy decided for each request and ships it
//! to the collector. Successes bump (route, cluster, code) counters; failures and sampled
//! successes become full `DecisionRecord`s; both go out in unary `Ingest.Push` batches.
//!
//! A pure core (configuration, classification, decoding, counters, batching) that tests on the
//! host, and thin glue (`hostcall`, `glue`, wasm32 only) that moves bytes between Envoy and it.

// The filter must never take Envoy's worker down: a panic traps the VM.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable
    )
)]

pub mod batch;
pub mod cache;
pub mod classify;
pub mod config;
pub mod counters;
pub mod headers;
pub mod node;
pub mod record;
pub mod sample;

#[cfg(target_arch = "wasm32")]
mod glue;
#[cfg(target_arch = "wasm32")]
mod hostcall;

/// Version of this filter, reported in every batch.
pub const FILTER_VERSION: &str = env!("CARGO_PKG_VERSION");
