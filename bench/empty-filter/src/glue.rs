//! The proxy-wasm contexts: a root context that reads its configuration once, and HTTP contexts
//! whose hooks all keep the SDK's defaults (Continue) except `on_log`, which does nothing unless
//! a variant is configured.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use crate::reads;

mod entry {
    use super::{EmptyRoot, LogLevel, RootContext, Work};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> {
            Box::new(EmptyRoot { work: Work::Nothing })
        });
    }}
}

thread_local! {
    /// Whether this VM already reported a failed CEL evaluation.
    static CEL_FAILURE_LOGGED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What each request's `on_log` does.
#[derive(Clone, Copy)]
enum Work {
    /// Nothing: the floor.
    Nothing,
    /// Read this many properties.
    Reads(usize),
    /// Evaluate the CEL expression with this token.
    Cel(u32),
}

/// Root context: remembers the configured variant.
struct EmptyRoot {
    work: Work,
}

impl Context for EmptyRoot {}

impl RootContext for EmptyRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let config = String::from_utf8_lossy(&config);
        self.work = match config.trim() {
            "" | "0" => Work::Nothing,
            cel if cel.starts_with("cel") => {
                let expression = cel
                    .strip_prefix("cel")
                    .and_then(|n| n.parse().ok())
                    .and_then(reads::cel_expression);
                let token = expression
                    .ok_or_else(|| {
                        format!("{cel:?}: expected cel1 to cel{}", reads::PROPERTIES.len())
                    })
                    .and_then(|expression| reads::create_expression(&expression));
                match token {
                    Ok(token) => Work::Cel(token),
                    Err(error) => {
                        // A benchmark variant that cannot do its work must not pass for the
                        // floor: refusing the configuration makes Envoy exit and the benchmark
                        // fail.
                        let _ = hostcalls::log(LogLevel::Error, &format!("empty filter: {error}"));
                        return false;
                    }
                }
            }
            number => match number.parse() {
                Ok(n) => Work::Reads(n),
                Err(_) => {
                    let _ = hostcalls::log(
                        LogLevel::Error,
                        &format!(
                            "empty filter: configuration {number:?} is not empty, a number or celN"
                        ),
                    );
                    return false;
                }
            },
        };
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EmptyHttp { work: self.work }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Per-request context.
struct EmptyHttp {
    work: Work,
}

impl Context for EmptyHttp {}

impl HttpContext for EmptyHttp {
    fn on_log(&mut self) {
        match self.work {
            Work::Nothing => {}
            Work::Reads(n) => {
                std::hint::black_box(reads::perform(n));
            }
            Work::Cel(token) => match reads::evaluate(token) {
                Ok(value) => {
                    std::hint::black_box(value);
                }
                Err(error) => {
                    // A failed evaluation is cheaper than a real one: say so (once per VM), so
                    // the benchmark refuses the numbers instead of reporting a flattering cost.
                    if !CEL_FAILURE_LOGGED.replace(true) {
                        let _ = hostcalls::log(LogLevel::Error, &format!("empty filter: {error}"));
                    }
                }
            },
        }
    }
}
