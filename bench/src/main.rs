//! `meshwhy-bench`: parse the settings, run the benchmarks, exit non-zero on failure.

use clap::Parser;
use meshwhy_bench::options::Options;
use std::process::ExitCode;

/// Exit code (sysexits EX_USAGE) for bad flags or environment.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let options = match Options::try_parse() {
        Ok(options) => options.resolved(),
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(error) = options.validate() {
        eprintln!("meshwhy-bench: {error}");
        return ExitCode::from(EXIT_USAGE);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("meshwhy-bench: start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(meshwhy_bench::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meshwhy-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
