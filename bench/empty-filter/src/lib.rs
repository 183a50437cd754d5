//! The benchmarks' V8 floor: a proxy-wasm HTTP filter with no-op root and HTTP contexts, so
//! `meshwhy-bench` can measure what any wasm filter costs Envoy just by existing (the VM calls
//! for every request's hooks) apart from what meshwhy itself does.
//!
//! Its plugin configuration picks a variant that prices one piece of a filter's work in
//! isolation (see [`reads`]): empty = nothing at all; a number N = read the first N properties
//! of [`reads::PROPERTIES`] in `on_log`; `celN` = fetch the same first N values with one CEL
//! expression through Envoy's `expr_evaluate` foreign function instead of N reads.
//!
//! Host only (not wasm32) the crate is empty, so `cargo clippy --workspace` and `cargo test
//! --workspace` on the host build it without the proxy-wasm host ABI.

#[cfg(target_arch = "wasm32")]
mod glue;
#[cfg(target_arch = "wasm32")]
mod reads;
