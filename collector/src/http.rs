//! The collector's plain HTTP listener for Kubernetes, Prometheus and the proxies: `/metrics`
//! (text exposition), `/healthz` (the process serves), `/readyz` (the aggregator answers), and
//! the filter module it was started with, `/filter.wasm` and `/filter.wasm.sha256` (see
//! [`crate::module`]). HTTP/1.1 only, GET and HEAD only, on hyper (already in the tree through
//! tonic).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::aggregator::AggregatorHandle;
use crate::metrics::{Gauges, Metrics};
use crate::module::FilterModule;

/// How long a scrape or readiness probe waits for the aggregator: it answers in order behind a
/// running explain (up to ~0.2 s over a million records), so well above that, and well below
/// Kubernetes' default probe timeout of 1 s.
pub const AGGREGATOR_PATIENCE: Duration = Duration::from_millis(800);

/// `Content-Type` of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the endpoints read.
#[derive(Debug, Clone)]
pub struct HttpState {
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// For store gauges, queue depth and readiness.
    pub aggregator: AggregatorHandle,
    /// The store's record cap.
    pub store_capacity: u64,
    /// The module served at `/filter.wasm`, when one was configured.
    pub filter_module: Option<Arc<FilterModule>>,
}

/// Serves the endpoints on `listener` until `shutdown` completes; open connections are closed
/// then (scrapes and probes are short and retried).
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let state = Arc::new(state);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Per-connection errors (e.g. the peer reset before accept): keep serving.
                        tracing::debug!(%error, "metrics listener: accept failed");
                        continue;
                    }
                };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(respond(&state, &request).await) }
                    });
                    if let Err(error) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(%error, "metrics connection ended with an error");
                    }
                });
            }
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn respond(state: &HttpState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/metrics" => {
            let gauges = gauges(state).await;
            let mut response = text(StatusCode::OK, state.metrics.render(&gauges));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/filter.wasm" => match &state.filter_module {
            Some(module) => {
                let mut response = Response::new(Full::new(module.bytes()));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/wasm"));
                response
            }
            None => no_module(),
        },
        "/filter.wasm.sha256" => match &state.filter_module {
            Some(module) => text(StatusCode::OK, format!("{}\n", module.sha256_hex())),
            None => no_module(),
        },
        "/readyz" => match aggregator_stats(state).await {
            Some(_) => text(StatusCode::OK, "ready\n"),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the aggregator did not answer\n",
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz, /readyz, /filter.wasm, /filter.wasm.sha256\n",
        ),
    }
}

async fn aggregator_stats(state: &HttpState) -> Option<crate::store::StoreStats> {
    match tokio::time::timeout(AGGREGATOR_PATIENCE, state.aggregator.stats()).await {
        Ok(Ok(stats)) => Some(stats),
        Ok(Err(error)) => {
            tracing::debug!(%error, "aggregator stats");
            None
        }
        Err(_) => {
            tracing::debug!("aggregator stats: no answer in time");
            None
        }
    }
}

async fn gauges(state: &HttpState) -> Gauges {
    let (depth, capacity) = state.aggregator.push_queue();
    Gauges {
        store: aggregator_stats(state).await,
        store_capacity: state.store_capacity,
        queue_depth: depth as u64,
        queue_capacity: capacity as u64,
    }
}

/// 404 for the module endpoints of a collector started without one: says how to give it one,
/// because the reader is someone whose WasmPlugin or Envoy cannot fetch the module.
fn no_module() -> Response<Full<Bytes>> {
    text(
        StatusCode::NOT_FOUND,
        format!(
            "no filter module is configured on this collector: start it with {} PATH (env {}), \
             or put {} next to its binary\n",
            crate::module::FILTER_WASM.flag,
            crate::module::FILTER_WASM.env,
            crate::module::DEFAULT_FILE_NAME
        ),
    )
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
