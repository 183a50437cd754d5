//! `meshwhy`: ask the collector why requests failed.

use std::process::ExitCode;

use meshwhy_collector::cli::{self, Cli};
use meshwhy_collector::logging;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse_or_exit();
    logging::init();
    ExitCode::from(cli::run(cli).await)
}
