//! meshwhy's end-to-end harness: runs REAL Envoy with the built wasm module, a small upstream
//! with scripted behaviours and the real collector, all on 127.0.0.1, and stops every process it
//! started (on drop, so also when a test fails).

pub mod access_log;
pub mod cli;
pub mod client;
pub mod collector_process;
pub mod envoy;
pub mod eras;
pub mod kustomize;
pub mod lab;
pub mod paths;
pub mod process;
pub mod scenario;
pub mod schema;
pub mod upstream;
pub mod wait;
