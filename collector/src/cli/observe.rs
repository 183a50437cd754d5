//! `meshwhy observe`: Hubble-style record watching. Prints the matching records of the last
//! `--since` (oldest first) and, with `-f`, every new matching record as the collector stores it.
//! With `--input-file`/`--line` it prints the records read from access-log lines instead, the
//! same filters applied locally (the collector's own filter code), in the order of the lines.
//!
//! Namespace, source workload, destination service, code, flags and window are filtered by the
//! collector; `--cause` and `--details` here. The cause is the explain engine's reading of the
//! record on its own (no hop correlation, no traffic shares): `meshwhy explain` is the authority.
//!
//! `-o compact` (default) prints one line per record:
//! `TIME NAMESPACE/POD -> AUTHORITY PATH CODE FLAGS DETAILS [cause=ID]` (`<-` for inbound records).
//! `-o json` prints the `meshwhy records -o json` document (records oldest first) and cannot
//! follow; `-o jsonl` prints one `meshwhy records` record object per line, plus `"cause"` (the
//! cause id, or null for a record the engine does not call a failure).

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;
use meshwhy_proto::v1::{Direction, ObserveRequest, ProxyIdentity, StoredRecord};
use regex::Regex;
use serde::Serialize;

use super::explain::Style;
use super::filters::{Filters, Outcome};
use super::logs::{self, FORMATS_HELP, Identity, Input, LogInput, StopAt};
use super::output::{self, Column, or_dash, truncate};
use super::records::{JsonRecord, JsonRecords};
use super::{CliError, connect};
use crate::explain::{self, Cause};
use crate::time::format_clock_millis;

/// `-o/--output` of observe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ObserveFormat {
    /// Fixed-width columns with a header.
    Table,
    /// One short line per record.
    #[default]
    Compact,
    /// One JSON document (not with --follow).
    Json,
    /// One JSON object per record and line.
    Jsonl,
}

/// The backlog `meshwhy observe` starts with unless `--since` says otherwise.
pub const DEFAULT_BACKLOG: Duration = Duration::from_secs(5 * 60);

/// Filters, input and output of `meshwhy observe`.
#[derive(Debug, Args)]
#[command(
    mut_arg("namespace", |arg| arg.help("Only records from proxies in this namespace. With --input-file/--line: also the namespace of the proxies that wrote the lines (a line does not carry one), so every line is in it")),
    mut_arg("since", |arg| arg.help("Start with the records that started within this long before now, e.g. 30s, 15m, 2h; 0s = everything stored. Default: 5m from the collector, the whole input with --input-file/--line")),
    mut_arg("limit", |arg| arg.help("At most this many backlog records, the newest (the collector's default is 1000); the collector applies it before --cause and --details. With --input-file/--line: the newest that pass every filter (default: all)")),
    after_long_help = FORMATS_HELP,
)]
pub struct ObserveArgs {
    /// Namespace, window, backlog size.
    #[command(flatten)]
    pub filters: Filters,
    /// Only outbound records sent by this workload (its client sidecar's view).
    #[arg(long, value_name = "WORKLOAD")]
    pub from_workload: Option<String>,
    /// Only records whose authority or outbound cluster host contains this text.
    #[arg(long, value_name = "SERVICE")]
    pub to_service: Option<String>,
    /// Code and flags.
    #[command(flatten)]
    pub outcome: Outcome,
    /// Only records the explain engine attributes to this cause id (e.g. upstream_connect_failed;
    /// see `meshwhy explain --help`). Repeat or separate with commas: any may match.
    #[arg(long = "cause", value_name = "CAUSE", value_delimiter = ',', value_parser = parse_cause)]
    pub causes: Vec<Cause>,
    /// Only records whose response code details match this regular expression.
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub details: Option<Regex>,
    /// After the backlog, keep printing new records until interrupted (Ctrl-C). Follows the
    /// collector only: to follow a log, pipe it (`kubectl logs -f POD -c istio-proxy | meshwhy
    /// observe --input-file -` prints each line's record as it comes).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Access-log lines instead of the collector.
    #[command(flatten)]
    pub input: LogInput,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ObserveFormat,
}

fn parse_cause(id: &str) -> Result<Cause, String> {
    Cause::from_id(id).ok_or_else(|| {
        let valid: Vec<&str> = Cause::ALL.iter().map(|cause| cause.id()).collect();
        format!("unknown cause {id:?}; valid: {}", valid.join(", "))
    })
}

fn parse_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|error| format!("invalid regular expression: {error}"))
}

impl ObserveArgs {
    /// The request these arguments describe, with `--since` taken relative to `now`.
    pub fn request(&self, now: SystemTime) -> ObserveRequest {
        // A log is read whole unless a window is asked for.
        let backlog = (!self.input.is_given()).then_some(DEFAULT_BACKLOG);
        ObserveRequest {
            namespace: self.filters.namespace(),
            from_workload: self.from_workload.clone().unwrap_or_default(),
            to_service: self.to_service.clone().unwrap_or_default(),
            response_code: self.outcome.response_code(),
            flags_all: self.outcome.flags_all(),
            // `0s` means everything stored, as for `meshwhy explain`; 0 is "no bound" on the wire.
            since_unix_nanos: self.filters.since_unix_nanos(now, backlog),
            follow: self.follow,
            limit: self.filters.limit.unwrap_or(0),
        }
    }

    /// Whether a record passes the client-side filters; `cause` is its classification.
    fn keeps(&self, stored: &StoredRecord, cause: Option<Cause>) -> bool {
        let details = stored
            .record
            .as_ref()
            .map_or("", |record| record.response_code_details.as_str());
        (self.causes.is_empty() || cause.is_some_and(|cause| self.causes.contains(&cause)))
            && self
                .details
                .as_ref()
                .is_none_or(|regex| regex.is_match(details))
    }
}

/// The explain engine's cause for one record on its own; `None` when it is not a failure.
pub fn record_cause(stored: &StoredRecord) -> Option<Cause> {
    let record = stored.record.as_ref()?;
    let proxy = stored.proxy.clone().unwrap_or_default();
    explain::record_cause(&proxy, record)
}

/// A `meshwhy records` JSON record plus its cause.
#[derive(Debug, Serialize)]
pub struct JsonObserved {
    /// The record, as `meshwhy records` prints it.
    #[serde(flatten)]
    pub record: JsonRecord,
    /// Cause id, or null when the engine does not call it a failure.
    pub cause: Option<&'static str>,
}

/// Streams and prints until the backlog is done (or, following, until Ctrl-C).
pub(crate) async fn run(collector: &str, args: ObserveArgs) -> Result<(), CliError> {
    if args.follow && args.output == ObserveFormat::Json {
        return Err(CliError::Usage(
            "-o json prints one document and cannot follow; use -o jsonl with --follow".into(),
        ));
    }
    if let Some(lines) = args.input.input()? {
        if args.follow {
            return Err(CliError::Usage(
                "-f/--follow follows the collector and cannot be used with --input-file/--line; \
                 to follow a log, pipe it: `kubectl logs -f POD -c istio-proxy | meshwhy observe --input-file -`"
                    .into(),
            ));
        }
        return observe_log(&args, &lines);
    }
    let mut client = connect(collector).await?;
    let request = args.request(SystemTime::now());
    let stdout = std::io::stdout();
    let style = Style::for_terminal(stdout.is_terminal());
    let mut printer = Printer::new(args.output, style);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut stream = tokio::select! {
        response = client.observe(request) => response
            .map_err(|status| CliError::from_status(collector, status))?
            .into_inner(),
        _ = &mut interrupted => return Ok(()),
    };
    let mut out = stdout.lock();
    loop {
        let next = tokio::select! {
            next = stream.message() => next,
            // Ctrl-C ends a follow cleanly.
            _ = &mut interrupted => break,
        };
        let Some(stored) = next.map_err(|status| CliError::from_status(collector, status))? else {
            break;
        };
        let cause = record_cause(&stored);
        if args.keeps(&stored, cause) {
            printer.print(&mut out, &stored, cause)?;
            // Followers read line by line: do not sit on a buffer.
            if args.follow {
                out.flush()?;
            }
        }
    }
    printer.finish(&mut out)?;
    out.flush()?;
    Ok(())
}

/// `observe` over access-log lines: each record read passes the collector's filters and the
/// client-side ones, then is printed as it is read (so a pipe from `kubectl logs -f` prints live),
/// or, with `--limit`, the newest that passed are printed at the end.
fn observe_log(args: &ObserveArgs, input: &Input) -> Result<(), CliError> {
    let identity = Identity::new(&args.input.source, args.filters.namespace.as_deref(), None)?;
    let reader = args.input.source.reader()?;
    let (filter, _, _) = crate::query::observe_filter(args.request(SystemTime::now()));
    // 0 is the collector's "its default": for a log, every record.
    let limit = args
        .filters
        .limit
        .filter(|&limit| limit > 0)
        .map(|limit| limit as usize);
    let live = *input == Input::Stdin;
    let stdout = std::io::stdout();
    let style = Style::for_terminal(stdout.is_terminal());
    let mut printer = Printer::new(args.output, style);
    let mut out = stdout.lock();
    let mut proxies: HashMap<String, Arc<ProxyIdentity>> = HashMap::new();
    let mut newest: VecDeque<(StoredRecord, Option<Cause>)> = VecDeque::new();
    let mut failed: Option<std::io::Error> = None;
    // A failed write (the reader of a pipe left) ends the read, even of an endless pipe.
    let stop = Rc::new(Cell::new(false));
    let source = StopAt::new(input.open()?, Rc::clone(&stop));
    let report = input.read_from(source, &reader, |line| {
        let proxy = proxies
            .entry(identity.pod_of(line.pod.as_deref()).to_owned())
            .or_insert_with(|| Arc::new(identity.proxy(line.pod.as_deref())));
        let stored = crate::store::StoredRecord {
            record: line.record,
            proxy: Arc::clone(proxy),
            received_unix_nanos: 0,
        };
        if !filter.matches(&stored) {
            return;
        }
        let stored = StoredRecord {
            flag_names: crate::flags::names(stored.record.response_flags),
            record: Some(stored.record),
            proxy: Some((*stored.proxy).clone()),
            received_time_unix_nanos: 0,
        };
        let cause = record_cause(&stored);
        if !args.keeps(&stored, cause) {
            return;
        }
        match limit {
            Some(limit) => {
                if newest.len() == limit {
                    newest.pop_front();
                }
                newest.push_back((stored, cause));
            }
            None => {
                let printed = printer
                    .print(&mut out, &stored, cause)
                    .and_then(|()| if live { out.flush() } else { Ok(()) });
                if let Err(error) = printed {
                    failed = Some(error);
                    stop.set(true);
                }
            }
        }
    })?;
    if let Some(error) = failed {
        return Err(error.into());
    }
    logs::check(&report, input)?;
    for (stored, cause) in &newest {
        printer.print(&mut out, stored, *cause)?;
    }
    printer.finish(&mut out)?;
    out.flush()?;
    Ok(())
}

/// Writes records in the chosen format as they come.
struct Printer {
    format: ObserveFormat,
    style: Style,
    header_written: bool,
    printed: usize,
    document: Vec<JsonRecord>,
}

impl Printer {
    fn new(format: ObserveFormat, style: Style) -> Self {
        Self {
            format,
            style,
            header_written: false,
            printed: 0,
            document: Vec::new(),
        }
    }

    fn print(
        &mut self,
        out: &mut impl Write,
        stored: &StoredRecord,
        cause: Option<Cause>,
    ) -> std::io::Result<()> {
        self.printed += 1;
        match self.format {
            ObserveFormat::Compact => writeln!(out, "{}", compact_line(stored, cause, self.style)),
            ObserveFormat::Table => {
                if !self.header_written {
                    self.header_written = true;
                    let headers: Vec<String> = COLUMNS
                        .iter()
                        .map(|column| column.header.to_owned())
                        .collect();
                    writeln!(out, "{}", fixed_row(&headers))?;
                }
                writeln!(out, "{}", fixed_row(&table_row(stored, cause)))
            }
            ObserveFormat::Json => {
                self.document.push(JsonRecord::from(stored));
                Ok(())
            }
            ObserveFormat::Jsonl => output::write_jsonl(
                out,
                [JsonObserved {
                    record: JsonRecord::from(stored),
                    cause: cause.map(Cause::id),
                }],
            ),
        }
    }

    fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        match self.format {
            ObserveFormat::Json => output::write_json(
                out,
                &JsonRecords {
                    records: std::mem::take(&mut self.document),
                    truncated: 0,
                },
            ),
            ObserveFormat::Table | ObserveFormat::Compact if self.printed == 0 => {
                // Like kubectl: nothing on stdout when nothing matched, a note on stderr.
                eprintln!("no records matched");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn record_time(stored: &StoredRecord) -> u64 {
    match stored.record.as_ref().map(|r| r.start_time_unix_nanos) {
        Some(start) if start > 0 => start,
        _ => stored.received_time_unix_nanos,
    }
}

/// `HH:MM:SS.mmm` of the record; `-` when it has no time at all (a log fragment without one).
fn clock(stored: &StoredRecord) -> String {
    match record_time(stored) {
        0 => "-".to_owned(),
        time => format_clock_millis(time),
    }
}

fn arrow(direction: i32) -> &'static str {
    match Direction::try_from(direction) {
        Ok(Direction::Inbound) => "<-",
        _ => "->",
    }
}

/// `TIME ns/pod -> authority path CODE FLAGS details [cause=ID]`.
pub fn compact_line(stored: &StoredRecord, cause: Option<Cause>, style: Style) -> String {
    let record = stored.record.clone().unwrap_or_default();
    let proxy = stored.proxy.clone().unwrap_or_default();
    let code = match record.response_code {
        0 => "-".to_owned(),
        code => code.to_string(),
    };
    let failed = explain::is_failure(&record);
    let flags = if stored.flag_names.is_empty() {
        "-".to_owned()
    } else {
        stored.flag_names.join(",")
    };
    let mut line = format!(
        "{} {} {} {} {} {} {} {}",
        style.dim(&clock(stored)),
        style.bold(&format!(
            "{}/{}",
            or_dash(&proxy.namespace),
            or_dash(&proxy.pod)
        )),
        arrow(record.direction),
        or_dash(&record.authority),
        or_dash(&record.path),
        if failed { style.cause(&code) } else { code },
        flags,
        or_dash(&record.response_code_details),
    );
    if let Some(cause) = cause {
        line.push_str(&format!(" cause={}", style.cause(cause.id())));
    }
    line
}

const COLUMNS: [Column; 9] = [
    col("TIME", 12),
    col("NAMESPACE/POD", 40),
    col("DIR", 3),
    col("METHOD", 7),
    col("AUTHORITY+PATH", 48),
    col("CODE", 4),
    col("FLAGS", 16),
    col("CAUSE", 30),
    col("DETAILS", 80),
];

const fn col(header: &'static str, max_width: usize) -> Column {
    Column { header, max_width }
}

/// Cells in header order.
fn table_row(stored: &StoredRecord, cause: Option<Cause>) -> Vec<String> {
    let record = stored.record.clone().unwrap_or_default();
    let proxy = stored.proxy.clone().unwrap_or_default();
    vec![
        clock(stored),
        format!("{}/{}", or_dash(&proxy.namespace), or_dash(&proxy.pod)),
        match Direction::try_from(record.direction) {
            Ok(Direction::Inbound) => "in",
            Ok(Direction::Outbound) => "out",
            _ => "-",
        }
        .to_owned(),
        or_dash(&record.method),
        or_dash(&format!("{}{}", record.authority, record.path)),
        match record.response_code {
            0 => "-".to_owned(),
            code => code.to_string(),
        },
        if stored.flag_names.is_empty() {
            "-".to_owned()
        } else {
            stored.flag_names.join(",")
        },
        cause.map_or_else(|| "-".to_owned(), |cause| cause.id().to_owned()),
        or_dash(&record.response_code_details),
    ]
}

/// A streamed table cannot measure its rows first: every column is padded to its maximum width.
fn fixed_row(cells: &[String]) -> String {
    let mut line = String::new();
    for (index, (cell, column)) in cells.iter().zip(&COLUMNS).enumerate() {
        if index > 0 {
            line.push_str("  ");
        }
        let cell = truncate(cell, column.max_width);
        let pad = column.max_width.saturating_sub(cell.chars().count());
        line.push_str(&cell);
        line.extend(std::iter::repeat_n(' ', pad));
    }
    line.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use meshwhy_proto::v1::{DecisionRecord, ProxyIdentity};

    use super::*;
    use crate::cli::{Cli, Command};

    fn sample() -> StoredRecord {
        StoredRecord {
            record: Some(DecisionRecord {
                start_time_unix_nanos: 1_709_251_199_123_000_000,
                request_id: "r1".into(),
                direction: Direction::Outbound as i32,
                method: "GET".into(),
                authority: "reviews:9080".into(),
                path: "/reviews/1".into(),
                response_code: 503,
                response_flags: 1 << 5,
                response_code_details:
                    "upstream_reset_before_response_started{remote_connection_failure}".into(),
                cluster: "outbound|9080||reviews.shop.svc.cluster.local".into(),
                ..Default::default()
            }),
            proxy: Some(ProxyIdentity {
                instance_id: "0af3".into(),
                pod: "productpage-1".into(),
                namespace: "shop".into(),
                workload: "productpage".into(),
                ..Default::default()
            }),
            flag_names: vec!["UF".into()],
            received_time_unix_nanos: 1,
        }
    }

    fn parse(args: &[&str]) -> ObserveArgs {
        let cli = Cli::try_parse_from(["meshwhy", "observe"].iter().chain(args)).unwrap();
        let Command::Observe(args) = cli.command else {
            panic!("observe expected");
        };
        args
    }

    #[test]
    fn flags_parse_and_build_the_request() {
        let args = parse(&[
            "-n",
            "shop",
            "--from-workload",
            "productpage",
            "--to-service",
            "reviews",
            "--code",
            "503",
            "--flag",
            "UF,URX",
            "--since",
            "1m",
            "-f",
            "--limit",
            "7",
            "-o",
            "jsonl",
        ]);
        assert!(args.follow);
        assert_eq!(args.output, ObserveFormat::Jsonl);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let request = args.request(now);
        assert_eq!(request.namespace, "shop");
        assert_eq!(request.from_workload, "productpage");
        assert_eq!(request.to_service, "reviews");
        assert_eq!(request.response_code, 503);
        assert_eq!(request.flags_all, (1 << 5) | (1 << 15));
        assert_eq!(request.since_unix_nanos, 40_000_000_000);
        assert!(request.follow);
        assert_eq!(request.limit, 7);
    }

    #[test]
    fn defaults_are_five_minutes_compact_no_follow() {
        let args = parse(&[]);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(args.request(now).since_unix_nanos, 700_000_000_000);
        let file = parse(&["--input-file", "x.log"]);
        assert_eq!(file.request(now).since_unix_nanos, 0, "a log is read whole");
        assert_eq!(args.output, ObserveFormat::Compact);
        assert!(!args.follow);
        let everything = parse(&["--since", "0s"]).request(SystemTime::now());
        assert_eq!(everything.since_unix_nanos, 0);
    }

    #[test]
    fn bad_cause_and_regex_are_usage_errors() {
        let error = Cli::try_parse_from(["meshwhy", "observe", "--cause", "nope"]).unwrap_err();
        assert!(
            error.to_string().contains("upstream_connect_failed"),
            "{error}"
        );
        let error = Cli::try_parse_from(["meshwhy", "observe", "--details", "("]).unwrap_err();
        assert!(
            error.to_string().contains("invalid regular expression"),
            "{error}"
        );
    }

    #[test]
    fn client_side_filters() {
        let stored = sample();
        let cause = record_cause(&stored);
        assert_eq!(cause, Some(Cause::UpstreamConnectFailed));
        assert!(parse(&["--details", "remote_connection_failure$|failure}"]).keeps(&stored, cause));
        assert!(!parse(&["--details", "^via_upstream$"]).keeps(&stored, cause));
        assert!(parse(&["--cause", "upstream_connect_failed"]).keeps(&stored, cause));
        assert!(!parse(&["--cause", "no_route,rbac_denied"]).keeps(&stored, cause));
        assert!(!parse(&["--cause", "no_route"]).keeps(&stored, None));
    }

    #[test]
    fn compact_line_reads_like_hubble() {
        let line = compact_line(&sample(), Some(Cause::UpstreamConnectFailed), Style::PLAIN);
        assert_eq!(
            line,
            "23:59:59.123 shop/productpage-1 -> reviews:9080 /reviews/1 503 UF \
             upstream_reset_before_response_started{remote_connection_failure} \
             cause=upstream_connect_failed"
        );
        let mut inbound = sample();
        inbound.record.as_mut().unwrap().direction = Direction::Inbound as i32;
        assert!(compact_line(&inbound, None, Style::PLAIN).contains(" <- reviews:9080 "));
    }

    #[test]
    fn table_rows_are_fixed_width() {
        let mut out = Vec::new();
        let mut printer = Printer::new(ObserveFormat::Table, Style::PLAIN);
        printer.print(&mut out, &sample(), None).unwrap();
        printer.print(&mut out, &sample(), None).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("TIME          NAMESPACE/POD"),
            "{text}"
        );
        assert_eq!(lines[1], lines[2]);
        assert_eq!(lines[0].find("DETAILS"), lines[1].find("upstream_reset"));
    }

    #[test]
    fn jsonl_adds_the_cause() {
        let mut out = Vec::new();
        let mut printer = Printer::new(ObserveFormat::Jsonl, Style::PLAIN);
        printer
            .print(&mut out, &sample(), Some(Cause::UpstreamConnectFailed))
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["cause"], "upstream_connect_failed");
        assert_eq!(value["proxy"]["pod"], "productpage-1");
        assert_eq!(value.as_object().unwrap().len(), 31);
    }
}
