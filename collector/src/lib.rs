//! meshwhy's collector: ingests decision records from sidecar filters, keeps them, serves queries;
//! plus the library side of the `meshwhy` CLI.

pub mod aggregator;
pub mod cli;
pub mod config;
pub mod decode;
pub mod explain;
pub mod flags;
pub mod http;
pub mod ingest;
pub mod logging;
pub mod logread;
pub mod metrics;
pub mod module;
pub mod query;
pub mod status;
pub mod store;
pub mod time;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use meshwhy_proto::v1::query_server::QueryServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

pub use config::CollectorConfig;
use config::ConfigError;
use config::StoreKind;
use ingest::{IngestServer, IngestService};
use metrics::{MeteredIngest, Metrics};
use query::QueryService;
use store::{MemoryStore, Retention, SqliteStore, Store, StoreOpenError};

/// Why the collector could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The configured store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreOpenError),
    /// The listener's own address could not be read.
    #[error("read the listener address: {0}")]
    ListenerAddr(#[source] std::io::Error),
    /// The gRPC server failed.
    #[error("serve gRPC on {addr}: {source}")]
    Serve {
        /// Where it listened.
        addr: SocketAddr,
        /// What failed.
        #[source]
        source: tonic::transport::Error,
    },
    /// A collector task panicked or was cancelled.
    #[error("collector task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Opens the store `config.store` names: memory, or the SQLite file under its data directory.
pub fn open_store(config: &CollectorConfig) -> Result<Box<dyn Store>, StoreOpenError> {
    let store = &config.store;
    Ok(match store.kind {
        StoreKind::Memory => Box::new(MemoryStore::new(config.max_records)),
        StoreKind::Sqlite => Box::new(SqliteStore::open(
            &store.data_dir,
            config.max_records,
            Retention {
                max_age_nanos: (store.retention_nanos > 0).then_some(store.retention_nanos),
                max_bytes: (store.max_db_bytes > 0).then_some(store.max_db_bytes),
            },
        )?),
    })
}

/// Serves Ingest and Query on `listener` with the configured store until `shutdown`
/// completes, then drains in-flight calls and returns.
pub async fn run(
    listener: TcpListener,
    config: CollectorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CollectorError> {
    config.validate()?;
    let store = open_store(&config)?;
    run_with_store(listener, config, store, shutdown).await
}

/// Like [`run`] with a store of the caller's choosing (a durable store, or a test double).
pub async fn run_with_store<S: Store>(
    listener: TcpListener,
    config: CollectorConfig,
    store: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CollectorError> {
    run_with_listeners(listener, None, config, store, shutdown).await
}

/// Like [`run_with_store`], plus `/metrics`, `/healthz` and `/readyz` over HTTP on
/// `metrics_listener` when given (see [`http`]).
pub async fn run_with_listeners<S: Store>(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    config: CollectorConfig,
    store: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CollectorError> {
    run_serving_module(listener, metrics_listener, None, config, store, shutdown).await
}

/// Like [`run_with_listeners`], also serving `filter_module` at `/filter.wasm` (and its
/// sha256) on the HTTP listener; without one those paths answer 404 saying how to configure it.
pub async fn run_serving_module<S: Store>(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    filter_module: Option<Arc<module::FilterModule>>,
    config: CollectorConfig,
    store: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CollectorError> {
    config.validate()?;
    let addr = listener
        .local_addr()
        .map_err(CollectorError::ListenerAddr)?;
    let (aggregator, aggregator_task) =
        aggregator::spawn(store, &config, aggregator::system_clock());
    let metrics = Metrics::new();
    let ingest = IngestServer::new(MeteredIngest::new(
        IngestService::new(aggregator.clone(), config.max_batch_records),
        Arc::clone(&metrics),
    ))
    .max_decoding_message_size(config.max_message_bytes);
    // Followed Observe streams never end on their own: tell them when shutdown starts.
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = closing_tx.send(true);
    };
    let http_server = match metrics_listener {
        Some(metrics_listener) => {
            let metrics_addr = metrics_listener
                .local_addr()
                .map_err(CollectorError::ListenerAddr)?;
            tracing::info!("meshwhy-collector metrics on http://{metrics_addr}/metrics");
            let state = http::HttpState {
                metrics,
                aggregator: aggregator.clone(),
                store_capacity: config.max_records as u64,
                filter_module,
            };
            let mut closing = closing.clone();
            Some(tokio::spawn(http::serve(
                metrics_listener,
                state,
                async move {
                    // Ends with the gRPC server: on shutdown, or when the sender is gone.
                    let _ = closing.wait_for(|closing| *closing).await;
                },
            )))
        }
        None => None,
    };
    let query = QueryServer::new(QueryService::new(aggregator).closing_on(closing));

    tracing::info!("meshwhy-collector listening on {addr}");
    let served = tonic::transport::Server::builder()
        .add_service(ingest)
        .add_service(query)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await;
    // Every in-flight call has been answered by now; stop the HTTP endpoints (their shutdown
    // is the same signal) and the state owner.
    if let Some(http_server) = http_server {
        http_server.await?;
    }
    aggregator_task.stop().await?;
    tracing::info!("meshwhy-collector on {addr} stopped");
    served.map_err(|source| CollectorError::Serve { addr, source })
}

/// Accepted connections with Nagle off, as tonic sets when it binds the port itself: a small
/// answer (a Push ack, a one-record ListRecords page) must not wait ~40 ms for the client's
/// delayed ACK of the previous one.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// A collector running in the background of this process (tests, the e2e harness).
/// [`CollectorHandle::shutdown`] stops it and returns once the port is closed and every
/// connection has ended; dropping the handle starts the same shutdown without waiting for it
/// (so rebinding the same port right after a drop may still find it taken).
#[derive(Debug)]
pub struct CollectorHandle {
    /// The address it listens on (the real port when bound to port 0).
    pub addr: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` are served, when they are.
    pub metrics_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), CollectorError>>>,
}

impl CollectorHandle {
    /// `http://ADDR`, what a tonic client or `meshwhy --collector` wants.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the collector gracefully and waits until it has stopped.
    pub async fn shutdown(mut self) -> Result<(), CollectorError> {
        if let Some(stop) = self.stop.take() {
            // The collector may have stopped on its own already; its result says why.
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for CollectorHandle {
    fn drop(&mut self) {
        // Graceful, in the background: the listener closes and open connections get a GOAWAY.
        // Aborting instead would leave already-accepted connections served by orphaned tasks.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the collector (the configured store: memory by default) on `listener` in a
/// background task.
pub async fn spawn(
    listener: TcpListener,
    config: CollectorConfig,
) -> Result<CollectorHandle, CollectorError> {
    spawn_with_metrics(listener, None, config).await
}

/// Like [`spawn`], with the HTTP endpoints on `metrics_listener` when given.
pub async fn spawn_with_metrics(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    config: CollectorConfig,
) -> Result<CollectorHandle, CollectorError> {
    config.validate()?;
    let addr = listener
        .local_addr()
        .map_err(CollectorError::ListenerAddr)?;
    let metrics_addr = match &metrics_listener {
        Some(metrics_listener) => Some(
            metrics_listener
                .local_addr()
                .map_err(CollectorError::ListenerAddr)?,
        ),
        None => None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        // Either a signal or the handle being dropped stops the collector.
        let _ = stopped.await;
    };
    let store = open_store(&config)?;
    let task = tokio::spawn(run_with_listeners(
        listener,
        metrics_listener,
        config,
        store,
        shutdown,
    ));
    Ok(CollectorHandle {
        addr,
        metrics_addr,
        stop: Some(stop),
        task: Some(task),
    })
}
