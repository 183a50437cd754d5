//! The `meshwhy` CLI: argument types, collector connection, exit codes; one module per subcommand.

pub mod enable;
pub mod explain;
pub mod filters;
pub mod flags;
pub mod ingest_logs;
pub mod logs;
pub mod observe;
pub mod output;
pub mod proxies;
pub mod records;
pub mod top;

use std::time::Duration;

use clap::{Parser, Subcommand};
use meshwhy_proto::v1::ingest_client::IngestClient;
use meshwhy_proto::v1::query_client::QueryClient;
use tonic::transport::{Channel, Endpoint};

pub use output::OutputFormat;

/// Collector address used when neither `--collector` nor `MESHWHY_COLLECTOR` is given.
pub const DEFAULT_COLLECTOR: &str = "http://127.0.0.1:9900";
/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the collector answered with an error, or output could not be written.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code (sysexits EX_USAGE): bad flags or arguments.
pub const EXIT_USAGE: u8 = 64;
/// Exit code (sysexits EX_DATAERR): the input holds nothing that can be read (no access-log
/// line in it, or it is empty).
pub const EXIT_DATA_ERR: u8 = 65;
/// Exit code (sysexits EX_NOINPUT): an input file cannot be read.
pub const EXIT_NO_INPUT: u8 = 66;
/// Exit code (sysexits EX_UNAVAILABLE): the collector cannot be reached.
pub const EXIT_UNAVAILABLE: u8 = 69;

/// How long to wait for the TCP/HTTP2 connection to the collector.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a single query may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response accepted: a page of long records exceeds tonic's 4 MiB default.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Why did this request fail? Ask the collector that meshwhy's sidecar filters report to, or
/// read the Envoy/Istio access logs you already have.
#[derive(Debug, Parser)]
#[command(name = "meshwhy", version, about, propagate_version = true)]
pub struct Cli {
    /// Collector gRPC address: http://HOST:PORT, or HOST:PORT.
    #[arg(
        long,
        global = true,
        env = "MESHWHY_COLLECTOR",
        default_value = DEFAULT_COLLECTOR,
        value_parser = parse_collector_url,
    )]
    pub collector: String,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain why requests failed: causes, evidence, the Istio resource and the next commands.
    Explain(explain::ExplainArgs),
    /// Failure groups ranked by impact, with decoded flags.
    Top(top::TopArgs),
    /// List stored decision records (failures and sampled successes), newest first.
    Records(records::RecordsArgs),
    /// Watch records Hubble-style: the recent ones, then (-f) each new one as it is stored.
    Observe(observe::ObserveArgs),
    /// List the proxies (filter VM instances) that report, with batch loss and drop counts.
    Proxies(proxies::ProxiesArgs),
    /// Print Envoy's response flags and what each one means.
    Flags(flags::FlagsArgs),
    /// Load Envoy/Istio access-log lines into a running collector, so history, hop joins and
    /// the counter rules work on them.
    IngestLogs(ingest_logs::IngestLogsArgs),
    /// Print the namespace's WasmPlugin for `kubectl apply -f -` (module served by the
    /// collector, sha256 pinned, FAIL_OPEN); touches no cluster.
    Enable(enable::EnableArgs),
    /// Print what to delete to stop recording in a namespace (`kubectl delete -f -`).
    Disable(enable::DisableArgs),
}

impl Cli {
    /// Parses the process arguments; on a usage error prints clap's message and exits 64
    /// (`--help` and `--version` exit 0).
    pub fn parse_or_exit() -> Self {
        match Self::try_parse() {
            Ok(cli) => cli,
            Err(error) => {
                let code = if error.use_stderr() {
                    EXIT_USAGE
                } else {
                    EXIT_OK
                };
                // Nothing better to do if the terminal is gone.
                let _ = error.print();
                std::process::exit(i32::from(code));
            }
        }
    }
}

/// Accepts `http://host:port` or a bare `host:port` (http is assumed).
pub fn parse_collector_url(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    let url = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    if !url.starts_with("http://") {
        return Err(format!(
            "{url:?}: only http:// is supported (the collector serves plaintext gRPC)"
        ));
    }
    Endpoint::from_shared(url.clone())
        .map(|_| url)
        .map_err(|error| {
            format!(
                "{value:?} is not a valid address ({error}); expected HOST:PORT or http://HOST:PORT"
            )
        })
}

/// A CLI failure, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments that clap could not catch.
    #[error("{0}")]
    Usage(String),
    /// The collector is not reachable.
    #[error(
        "cannot reach the collector at {url}: {reason}. Is meshwhy-collector running? Set --collector or MESHWHY_COLLECTOR."
    )]
    Unreachable {
        /// The collector URL tried.
        url: String,
        /// The innermost cause, e.g. `Connection refused (os error 111)`.
        reason: String,
    },
    /// The collector answered with an error.
    #[error("the collector at {url} refused the request: {code:?}: {message}")]
    Rpc {
        /// The collector URL.
        url: String,
        /// gRPC status code.
        code: tonic::Code,
        /// gRPC status message.
        message: String,
    },
    /// Writing the output failed.
    #[error("write output: {0}")]
    Output(#[from] std::io::Error),
    /// The input holds nothing that can be read (one line saying what was found instead).
    #[error("{0}")]
    Data(String),
    /// An input file (`--input-file`) could not be read.
    #[error("read {path}: {source}")]
    Input {
        /// The path given (`-` = stdin).
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::Unreachable { .. } => EXIT_UNAVAILABLE,
            Self::Data(_) => EXIT_DATA_ERR,
            Self::Input { .. } => EXIT_NO_INPUT,
            Self::Rpc { .. } | Self::Output(_) => EXIT_FAILURE,
        }
    }

    /// Maps a failed call: UNAVAILABLE means the connection failed or the collector is going away.
    pub(crate) fn from_status(url: &str, status: tonic::Status) -> Self {
        if status.code() == tonic::Code::Unavailable {
            return Self::Unreachable {
                url: url.to_owned(),
                reason: innermost_cause(&status),
            };
        }
        Self::Rpc {
            url: url.to_owned(),
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

/// The deepest error in a chain: the one that says what actually happened
/// ("Connection refused (os error 111)" rather than "transport error").
fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let text = cause.to_string();
    if text.is_empty() {
        error.to_string()
    } else {
        text
    }
}

/// Connects to the collector now, so an unreachable one is reported before anything else.
pub(crate) async fn connect(url: &str) -> Result<QueryClient<Channel>, CliError> {
    let channel = connect_channel(url).await?;
    Ok(QueryClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES))
}

/// Connects to the collector's Ingest service now (see [`connect`]).
pub(crate) async fn connect_ingest(url: &str) -> Result<IngestClient<Channel>, CliError> {
    Ok(IngestClient::new(connect_channel(url).await?))
}

async fn connect_channel(url: &str) -> Result<Channel, CliError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| CliError::Usage(format!("invalid --collector {url:?}: {error}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| CliError::Unreachable {
            url: url.to_owned(),
            reason: innermost_cause(&error),
        })?;
    Ok(channel)
}

/// Runs a parsed command line and returns the exit code; errors are printed as one line.
pub async fn run(cli: Cli) -> u8 {
    let result = match cli.command {
        Command::Explain(args) => explain::run(&cli.collector, args).await,
        Command::Top(args) => top::run(&cli.collector, args).await,
        Command::Records(args) => records::run(&cli.collector, args).await,
        Command::Observe(args) => observe::run(&cli.collector, args).await,
        Command::Proxies(args) => proxies::run(&cli.collector, args).await,
        Command::Flags(args) => flags::run(args),
        Command::IngestLogs(args) => ingest_logs::run(&cli.collector, args).await,
        Command::Enable(args) => enable::run_enable(args).await,
        Command::Disable(args) => enable::run_disable(args),
    };
    match result {
        Ok(()) => EXIT_OK,
        // `meshwhy records | head`: the reader left; that is not a failure.
        Err(CliError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(error) => {
            eprintln!("meshwhy: {error}");
            error.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn collector_urls() {
        assert_eq!(
            parse_collector_url("127.0.0.1:9900").unwrap(),
            "http://127.0.0.1:9900"
        );
        assert_eq!(
            parse_collector_url("http://collector.meshwhy:9900/").unwrap(),
            "http://collector.meshwhy:9900"
        );
        assert!(parse_collector_url("https://x:1").is_err());
        assert!(parse_collector_url("http://bad host:1").is_err());
    }

    #[test]
    fn exit_codes() {
        let unreachable = CliError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            reason: "Connection refused (os error 111)".into(),
        };
        assert_eq!(unreachable.exit_code(), EXIT_UNAVAILABLE);
        assert_eq!(
            unreachable.to_string(),
            "cannot reach the collector at http://127.0.0.1:1: Connection refused (os error 111). \
             Is meshwhy-collector running? Set --collector or MESHWHY_COLLECTOR."
        );
        assert_eq!(CliError::Usage("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(CliError::Data("x".into()).exit_code(), EXIT_DATA_ERR);
        let rpc = CliError::from_status("u", tonic::Status::internal("boom"));
        assert_eq!(rpc.exit_code(), EXIT_FAILURE);
        let gone = CliError::from_status("u", tonic::Status::unavailable("going away"));
        assert_eq!(gone.exit_code(), EXIT_UNAVAILABLE);
    }

    #[test]
    fn records_flags_parse() {
        let cli = Cli::try_parse_from([
            "meshwhy",
            "--collector",
            "localhost:1",
            "records",
            "-n",
            "shop",
            "--flag",
            "uf",
            "--flag",
            "URX,NR",
            "--since",
            "15m",
            "-o",
            "jsonl",
        ])
        .unwrap();
        assert_eq!(cli.collector, "http://localhost:1");
        let Command::Records(args) = cli.command else {
            panic!("records expected");
        };
        assert_eq!(args.filters.namespace.as_deref(), Some("shop"));
        assert_eq!(args.outcome.flags, [1 << 5, 1 << 15, 1 << 8]);
        assert_eq!(args.filters.since, Some(Duration::from_secs(900)));
        assert_eq!(args.output, OutputFormat::Jsonl);
    }

    #[test]
    fn unknown_flag_name_lists_valid_ones() {
        let error = Cli::try_parse_from(["meshwhy", "records", "--flag", "XX"]).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("unknown response flag \"XX\""),
            "{message}"
        );
        assert!(message.contains("LH, UH, UT"), "{message}");
        assert!(error.use_stderr());
    }

    #[test]
    fn bad_since_is_a_usage_error() {
        let error = Cli::try_parse_from(["meshwhy", "records", "--since", "soon"]).unwrap_err();
        assert!(error.to_string().contains("e.g. 30s"));
    }
}
