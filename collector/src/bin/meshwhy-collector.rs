//! `meshwhy-collector`: receives decision records from meshwhy sidecar filters and serves queries.

use std::process::ExitCode;

use clap::Parser;
use meshwhy_collector::config::{self, CollectorConfig, ConfigError, GRPC_ADDR};
use meshwhy_collector::logging;

/// Exit code (sysexits EX_USAGE) for bad flags, environment or an unusable address.
const EXIT_USAGE: u8 = 64;

/// Receives decision records from meshwhy sidecar filters and answers the meshwhy CLI.
#[derive(Debug, Parser)]
#[command(name = "meshwhy-collector", version, about)]
struct Args {
    /// Address to serve gRPC (Ingest and Query) on, HOST:PORT.
    #[arg(long, env = "MESHWHY_GRPC_ADDR", value_name = "HOST:PORT", default_value = config::DEFAULT_GRPC_ADDR)]
    grpc_addr: String,

    /// Decision records kept in memory; the oldest are evicted first.
    #[arg(long, env = "MESHWHY_MAX_RECORDS", value_name = "N", default_value_t = config::DEFAULT_MAX_RECORDS.to_string())]
    max_records: String,

    /// Push batches that may wait for the aggregator before pushes get RESOURCE_EXHAUSTED.
    #[arg(long, env = "MESHWHY_QUEUE_CAPACITY", value_name = "N", default_value_t = config::DEFAULT_QUEUE_CAPACITY.to_string())]
    queue_capacity: String,
}

impl Args {
    /// Numbers and addresses are parsed here rather than by clap so that a bad value gives one
    /// line naming both the flag and its environment variable.
    fn settings(&self) -> Result<(std::net::SocketAddr, CollectorConfig), ConfigError> {
        let addr = config::parse_listen_addr(&self.grpc_addr)?;
        let config = CollectorConfig {
            max_records: config::parse_count(config::MAX_RECORDS, &self.max_records)?,
            queue_capacity: config::parse_count(config::QUEUE_CAPACITY, &self.queue_capacity)?,
            ..CollectorConfig::default()
        };
        config.validate()?;
        Ok((addr, config))
    }
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
    let (addr, config) = match args.settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("meshwhy-collector: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    logging::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("meshwhy-collector: start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(addr, config))
}

async fn serve(addr: std::net::SocketAddr, config: CollectorConfig) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "meshwhy-collector: cannot listen on {addr} ({} / {}): {error}; choose another address or stop whatever holds it",
                GRPC_ADDR.flag, GRPC_ADDR.env
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match meshwhy_collector::run(listener, config, shutdown_signal()).await {
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
