//! `meshwhy-collector`: receives decision records from meshwhy sidecar filters and serves queries.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use std::path::PathBuf;

use meshwhy_collector::config::{
    self, CollectorConfig, ConfigError, GRPC_ADDR, METRICS_ADDR, Setting, StoreConfig,
};
use meshwhy_collector::logging;
use meshwhy_collector::module::{self, FilterModule};
use meshwhy_collector::store::Store;
use tokio::net::TcpListener;

/// Exit code (sysexits EX_USAGE) for bad flags, environment or an unusable address.
const EXIT_USAGE: u8 = 64;

/// Receives decision records from meshwhy sidecar filters and answers the meshwhy CLI.
#[derive(Debug, Parser)]
#[command(name = "meshwhy-collector", version, about)]
struct Args {
    /// Address to serve gRPC (Ingest and Query) on, HOST:PORT.
    #[arg(long, env = "MESHWHY_GRPC_ADDR", value_name = "HOST:PORT", default_value = config::DEFAULT_GRPC_ADDR)]
    grpc_addr: String,

    /// Address to serve HTTP /metrics (Prometheus), /healthz and /readyz on, HOST:PORT (port 0:
    /// any free port; the bound address is logged).
    #[arg(long, env = "MESHWHY_METRICS_ADDR", value_name = "HOST:PORT", default_value = config::DEFAULT_METRICS_ADDR)]
    metrics_addr: String,

    /// Decision records kept in memory; the oldest are evicted first.
    #[arg(long, env = "MESHWHY_MAX_RECORDS", value_name = "N", default_value_t = config::DEFAULT_MAX_RECORDS.to_string())]
    max_records: String,

    /// Push batches that may wait for the aggregator before pushes get RESOURCE_EXHAUSTED.
    #[arg(long, env = "MESHWHY_QUEUE_CAPACITY", value_name = "N", default_value_t = config::DEFAULT_QUEUE_CAPACITY.to_string())]
    queue_capacity: String,

    /// Where records are kept: sqlite (one file under --data-dir; history survives restarts) or
    /// memory (a restart forgets them).
    #[arg(
        long,
        env = "MESHWHY_STORE",
        value_name = "sqlite|memory",
        default_value = config::DEFAULT_STORE
    )]
    store: String,

    /// Directory of the sqlite store's file (created if missing).
    #[arg(long, env = "MESHWHY_DATA_DIR", value_name = "DIR", default_value = config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,

    /// With --store sqlite: delete records and counts older than this (e.g. 24h, 7d; 0 keeps
    /// everything).
    #[arg(long, env = "MESHWHY_RETENTION", value_name = "DURATION", default_value = config::DEFAULT_RETENTION)]
    retention: String,

    /// With --store sqlite: delete the oldest records while the file holds more than this
    /// (e.g. 2GiB, 500MB; 0 means no limit).
    #[arg(long, env = "MESHWHY_MAX_DB_SIZE", value_name = "SIZE", default_value = config::DEFAULT_MAX_DB_SIZE)]
    max_db_size: String,

    /// The filter module to serve at /filter.wasm (and its sha256 at /filter.wasm.sha256) on the
    /// metrics port, read once at start. Default: meshwhy_filter.wasm next to this binary when
    /// it exists, else none (those paths answer 404).
    #[arg(long, env = "MESHWHY_FILTER_WASM", value_name = "PATH")]
    filter_wasm: Option<std::path::PathBuf>,
}

impl Args {
    /// Numbers and addresses are parsed here rather than by clap so that a bad value gives one
    /// line naming both the flag and its environment variable.
    fn settings(&self) -> Result<(Addrs, CollectorConfig), ConfigError> {
        let addrs = Addrs {
            grpc: config::parse_listen_addr(&self.grpc_addr)?,
            metrics: config::parse_addr(METRICS_ADDR, &self.metrics_addr)?,
        };
        let config = CollectorConfig {
            store: StoreConfig {
                kind: config::parse_store(&self.store)?,
                data_dir: self.data_dir.clone(),
                retention_nanos: config::parse_duration(config::RETENTION, &self.retention)?,
                max_db_bytes: config::parse_size(config::MAX_DB_SIZE, &self.max_db_size)?,
            },
            max_records: config::parse_count(config::MAX_RECORDS, &self.max_records)?,
            queue_capacity: config::parse_count(config::QUEUE_CAPACITY, &self.queue_capacity)?,
            ..CollectorConfig::default()
        };
        config.validate()?;
        Ok((addrs, config))
    }
}

/// Where to listen.
#[derive(Debug, Clone, Copy)]
struct Addrs {
    grpc: SocketAddr,
    metrics: SocketAddr,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => {
            // --help / --version
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("meshwhy-collector: {first} (see --help)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let (addrs, config) = match args.settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("meshwhy-collector: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let filter_module = match args.filter_wasm.clone().or_else(module::default_path) {
        Some(path) => match FilterModule::load(&path) {
            Ok(module) => Some(std::sync::Arc::new(module)),
            Err(error) => {
                eprintln!("meshwhy-collector: {error}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => None,
    };
    logging::init();
    if let Some(module) = &filter_module {
        tracing::info!(
            path = %module.path().display(),
            sha256 = module.sha256_hex(),
            bytes = module.bytes().len(),
            "serving the filter module at /filter.wasm"
        );
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("meshwhy-collector: start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(addrs, config, filter_module))
}

/// Binds `addr` or says, in one line, which setting to change.
async fn bind(addr: SocketAddr, setting: Setting) -> Result<TcpListener, ExitCode> {
    TcpListener::bind(addr).await.map_err(|error| {
        eprintln!(
            "meshwhy-collector: cannot listen on {addr} ({} / {}): {error}; choose another address or stop whatever holds it",
            setting.flag, setting.env
        );
        ExitCode::from(EXIT_USAGE)
    })
}

/// Opens the configured store, or says in one line why not (exit 64 when a setting must change).
fn open_store(config: &CollectorConfig) -> Result<Box<dyn Store>, ExitCode> {
    meshwhy_collector::open_store(config).map_err(|error| {
        eprintln!("meshwhy-collector: {error}");
        if error.is_config() {
            ExitCode::from(EXIT_USAGE)
        } else {
            ExitCode::FAILURE
        }
    })
}

async fn serve(
    addrs: Addrs,
    config: CollectorConfig,
    filter_module: Option<std::sync::Arc<FilterModule>>,
) -> ExitCode {
    let listener = match bind(addrs.grpc, GRPC_ADDR).await {
        Ok(listener) => listener,
        Err(code) => return code,
    };
    let metrics_listener = match bind(addrs.metrics, METRICS_ADDR).await {
        Ok(listener) => listener,
        Err(code) => return code,
    };
    let store = match open_store(&config) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let served = meshwhy_collector::run_serving_module(
        listener,
        Some(metrics_listener),
        filter_module,
        config,
        store,
        shutdown_signal(),
    );
    match served.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let error = anyhow::Error::from(error);
            eprintln!("meshwhy-collector: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT or SIGTERM (what Kubernetes sends before killing the pod).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without a handler there is nothing to wait for; SIGTERM may still come.
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stop with SIGINT");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received; finishing in-flight calls");
}
