//! The log reader's throughput on one core: lines per second of `LogReader::read_line` for
//! Istio's current default TEXT format (a realistic mix: successes, `UF,URX`, `NR`, `UH`, TCP
//! lines), for Istio's JSON lines, and for the fragments salvage has to recover
//! (`503 UF upstream_reset_before_response_started{…}`, `"response_flags":"UC"` snippets,
//! `status=503 response_flag=UT`); plus the text mix through `read_lines` (line splitting and
//! UTF-8 checks included, as `--input-file` reads). Single-threaded, in this process; lines are
//! generated here (deterministic) and cycled, thousands of distinct ones so the caches see a
//! stream, not one line. Not a test: nothing is asserted on time.

use crate::stats::Spread;
use anyhow::{Context, Result, bail, ensure};
use meshwhy_collector::logread::{self, LogReader};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// DESIGN/issue budget: Istio's default text format, lines/s on one core.
pub const BUDGET_TEXT_PER_CORE: f64 = 1_000_000.0;
/// Salvage (no known format matches), lines/s on one core.
pub const BUDGET_SALVAGE_PER_CORE: f64 = 300_000.0;
/// Distinct lines generated per kind.
const DISTINCT_LINES: usize = 10_000;

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct LogreadLoad {
    /// Lines read per kind per round.
    pub lines: u64,
    /// Rounds; each round measures every kind once, in turn.
    pub rounds: usize,
    /// The CPU this process is pinned to, when it is.
    pub pinned_cpu: Option<usize>,
}

/// One kind of input measured.
#[derive(Debug, Clone, Serialize)]
pub struct KindResult {
    /// Short name (`istio-text`, `json`, `salvage`, `istio-text/read_lines`).
    pub kind: String,
    /// What the lines are.
    pub description: String,
    /// Distinct lines cycled.
    pub distinct_lines: usize,
    /// Mean line length, bytes.
    pub mean_bytes: f64,
    /// Lines per second of wall time, over rounds.
    pub lines_per_second: Spread,
    /// Lines per second of the measuring thread's CPU time, over rounds (10 ms ticks).
    pub lines_per_cpu_second: Spread,
    /// What reading the distinct lines once gave: records per origin.
    pub origins: BTreeMap<String, u64>,
    /// Of the distinct lines: how many read into a record.
    pub read: u64,
    /// Of those, recovered by salvage.
    pub salvaged: u64,
    /// Of the distinct lines: how many were unreadable.
    pub unreadable: u64,
}

/// The whole log reader run.
#[derive(Debug, Clone, Serialize)]
pub struct LogreadResult {
    /// Lines per kind per round.
    pub lines_per_round: u64,
    /// Rounds.
    pub rounds: usize,
    /// The CPU the process ran on, when pinned.
    pub pinned_cpu: Option<usize>,
    /// Per kind, in table order.
    pub kinds: Vec<KindResult>,
}

/// How a kind is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `LogReader::read_line` per line.
    ReadLine,
    /// `logread::read_lines` over the lines joined by newlines, in memory.
    ReadLines,
}

struct Kind {
    name: &'static str,
    description: &'static str,
    lines: Vec<String>,
    mode: Mode,
}

/// Runs the measurement on a thread of its own (its CPU time is the figure's denominator).
pub async fn run(load: &LogreadLoad) -> Result<LogreadResult> {
    let load = *load;
    tokio::task::spawn_blocking(move || measure(&load))
        .await
        .context("the log reader bench thread")?
}

fn measure(load: &LogreadLoad) -> Result<LogreadResult> {
    let reader = LogReader::new();
    let kinds = [
        Kind {
            name: "istio-text",
            description: "Istio 1.23+ default TEXT format: 70% outbound 200s, 10% inbound 200s \
                          (mTLS SNI), 5% 503 URX,UF, 4% 404 NR, 4% 503 UH, 5% TCP, 2% TCP UH \
                          BlackHoleCluster",
            lines: text_lines(DISTINCT_LINES),
            mode: Mode::ReadLine,
        },
        Kind {
            name: "json",
            description: "Istio 1.25+ default JSON keys as Envoy 1.40 writes them (typed \
                          values, null), the same mix",
            lines: json_lines(DISTINCT_LINES),
            mode: Mode::ReadLine,
        },
        Kind {
            name: "salvage",
            description: "fragments no format matches: `503 UF upstream_reset_before_…{…}`, \
                          `\"response_flags\":\"UC\"` JSON snippets, `status=503 \
                          response_flag=UT` key=value, Markdown-emphasised code/flags",
            lines: salvage_lines(DISTINCT_LINES),
            mode: Mode::ReadLine,
        },
        Kind {
            name: "istio-text/read_lines",
            description: "the istio-text lines through read_lines (newline splitting, UTF-8 \
                          checks, counting), from memory",
            lines: text_lines(DISTINCT_LINES),
            mode: Mode::ReadLines,
        },
    ];
    let mut results = Vec::new();
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for kind in &kinds {
        // Warm-up and the line census: every distinct line once.
        let mut report = logread::ReadReport::default();
        for line in &kind.lines {
            report.lines += 1;
            match reader.read_line(line) {
                Ok(read) => {
                    report.read += 1;
                    if read.record.origin == "access-log:salvaged" {
                        report.salvaged += 1;
                    }
                    *report.by_origin.entry(read.record.origin).or_default() += 1;
                }
                Err(_) => report.unreadable += 1,
            }
        }
        results.push(KindResult {
            kind: kind.name.to_owned(),
            description: kind.description.to_owned(),
            distinct_lines: kind.lines.len(),
            mean_bytes: kind.lines.iter().map(String::len).sum::<usize>() as f64
                / kind.lines.len().max(1) as f64,
            lines_per_second: Spread::of(&[]),
            lines_per_cpu_second: Spread::of(&[]),
            origins: report.by_origin,
            read: report.read,
            salvaged: report.salvaged,
            unreadable: report.unreadable,
        });
    }
    let joined: Vec<Vec<u8>> = kinds
        .iter()
        .map(|kind| {
            if kind.mode == Mode::ReadLines {
                (kind.lines.join("\n") + "\n").into_bytes()
            } else {
                Vec::new()
            }
        })
        .collect();
    for round in 0..load.rounds {
        for (index, kind) in kinds.iter().enumerate() {
            let (seconds, cpu_seconds, lines) = match kind.mode {
                Mode::ReadLine => time_read_line(&reader, &kind.lines, load.lines)?,
                Mode::ReadLines => time_read_lines(&reader, &joined[index], kind, load.lines)?,
            };
            let per_second = lines as f64 / seconds.max(1e-9);
            let per_cpu_second = if cpu_seconds > 0.0 {
                lines as f64 / cpu_seconds
            } else {
                f64::NAN
            };
            eprintln!(
                "log reader round {}/{} {:<22} {:>10.0} lines/s  {:>10.0} lines per CPU-second",
                round + 1,
                load.rounds,
                kind.name,
                per_second,
                per_cpu_second
            );
            wall[index].push(per_second);
            cpu[index].push(per_cpu_second);
        }
    }
    for (index, result) in results.iter_mut().enumerate() {
        result.lines_per_second = Spread::of(&wall[index]);
        result.lines_per_cpu_second = Spread::of(&cpu[index]);
    }
    Ok(LogreadResult {
        lines_per_round: load.lines,
        rounds: load.rounds,
        pinned_cpu: load.pinned_cpu,
        kinds: results,
    })
}

/// `read_line` over `lines`, cycled until `count`: (wall s, thread CPU s, lines read).
fn time_read_line(reader: &LogReader, lines: &[String], count: u64) -> Result<(f64, f64, u64)> {
    ensure!(!lines.is_empty(), "no lines to read");
    let cpu_before = thread_cpu_time()?;
    let start = Instant::now();
    let mut read = 0u64;
    let mut done = 0u64;
    'outer: loop {
        for line in lines {
            if done == count {
                break 'outer;
            }
            done += 1;
            if let Ok(line) = reader.read_line(black_box(line)) {
                read += u64::from(black_box(&line).record.response_flags != u64::MAX);
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = (thread_cpu_time()? - cpu_before).as_secs_f64();
    black_box(read);
    Ok((seconds, cpu_seconds, done))
}

/// `read_lines` over `input` (the kind's lines joined) as often as it takes to reach `count`.
fn time_read_lines(
    reader: &LogReader,
    input: &[u8],
    kind: &Kind,
    count: u64,
) -> Result<(f64, f64, u64)> {
    let per_pass = kind.lines.len() as u64;
    ensure!(per_pass > 0, "no lines to read");
    let passes = count.div_ceil(per_pass).max(1);
    let cpu_before = thread_cpu_time()?;
    let start = Instant::now();
    let mut done = 0u64;
    for _ in 0..passes {
        let report = logread::read_lines(input, reader, |line| {
            black_box(&line);
        })?;
        done += report.lines;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = (thread_cpu_time()? - cpu_before).as_secs_f64();
    Ok((seconds, cpu_seconds, done))
}

/// User + system CPU time of the calling thread (`/proc/thread-self/stat`, 10 ms ticks).
fn thread_cpu_time() -> Result<Duration> {
    let stat =
        std::fs::read_to_string("/proc/thread-self/stat").context("read /proc/thread-self/stat")?;
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("parse /proc/thread-self/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
        bail!("parse /proc/thread-self/stat: too few fields");
    };
    let ticks = utime.parse::<u64>()? + stime.parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / 100.0))
}

/// A small deterministic generator (SplitMix64) for varied but reproducible lines.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// An x-request-id like Envoy's (a UUID v4).
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    fn ip(&mut self) -> String {
        format!("10.244.{}.{}", self.below(8), 2 + self.below(250))
    }

    fn time(&mut self) -> String {
        let ms = self.below(86_400_000);
        format!(
            "2026-11-25T{:02}:{:02}:{:02}.{:03}Z",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    }
}

const SERVICES: &[(&str, u16)] = &[
    ("productpage.shop", 9080),
    ("reviews.shop", 9080),
    ("ratings.shop", 9080),
    ("details.shop", 9080),
    ("cart.checkout", 8080),
    ("payments.checkout", 8443),
];
const PATHS: &[&str] = &[
    "/productpage",
    "/reviews/0",
    "/ratings/7?user=3",
    "/api/v1/items?page=2",
    "/healthz",
    "/api/v1/cart/checkout",
];
const AGENTS: &[&str] = &[
    "curl/8.5.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "python-requests/2.31.0",
    "grpc-go/1.60.1",
];

/// One of the mix's outcomes, as the fields both the text and the JSON lines print.
struct Outcome {
    start: String,
    method: &'static str,
    path: &'static str,
    protocol: &'static str,
    code: u32,
    flags: &'static str,
    details: String,
    transport: &'static str,
    bytes_received: u64,
    bytes_sent: u64,
    duration: u64,
    service_time: Option<u64>,
    user_agent: &'static str,
    request_id: String,
    authority: String,
    upstream_host: Option<String>,
    cluster: Option<String>,
    upstream_local: Option<String>,
    downstream_local: String,
    downstream_remote: String,
    sni: Option<String>,
    route: Option<&'static str>,
}

fn outcome(g: &mut Gen) -> Outcome {
    let (service, port) = SERVICES[g.below(SERVICES.len() as u64) as usize];
    let fqdn = format!("{service}.svc.cluster.local");
    let roll = g.below(100);
    let mut o = Outcome {
        start: g.time(),
        method: g.pick(&["GET", "GET", "GET", "POST", "PUT"]),
        path: g.pick(PATHS),
        protocol: g.pick(&["HTTP/1.1", "HTTP/1.1", "HTTP/2"]),
        code: 200,
        flags: "-",
        details: "via_upstream".to_owned(),
        transport: "-",
        bytes_received: g.below(2) * g.below(4000),
        bytes_sent: 100 + g.below(20_000),
        duration: 1 + g.below(80),
        service_time: None,
        user_agent: g.pick(AGENTS),
        request_id: g.uuid(),
        authority: format!("{}:{port}", service.split('.').next().unwrap_or(service)),
        upstream_host: Some(format!("{}:{port}", g.ip())),
        cluster: Some(format!("outbound|{port}||{fqdn}")),
        upstream_local: Some(format!("{}:{}", g.ip(), 30_000 + g.below(30_000))),
        downstream_local: format!("10.96.{}.{}:{port}", g.below(255), g.below(255)),
        downstream_remote: format!("{}:{}", g.ip(), 30_000 + g.below(30_000)),
        sni: None,
        route: Some("default"),
    };
    o.service_time = Some(o.duration.saturating_sub(1));
    match roll {
        0..70 => {}
        70..80 => {
            // Inbound, from an Istio mTLS client.
            o.cluster = Some(format!("inbound|{port}||"));
            o.upstream_host = Some(format!("{}:{port}", g.ip()));
            o.upstream_local = Some(format!("127.0.0.6:{}", 30_000 + g.below(30_000)));
            o.sni = Some(format!("outbound_.{port}_._.{fqdn}"));
            o.route = Some("default");
        }
        80..85 => {
            o.code = 503;
            o.flags = "URX,UF";
            o.details = "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}".to_owned();
            o.transport = "delayed_connect_error:_Connection_refused";
            o.bytes_sent = 145;
            o.service_time = None;
            o.upstream_local = None;
        }
        85..89 => {
            o.code = 404;
            o.flags = "NR";
            o.details = "route_not_found".to_owned();
            o.bytes_sent = 0;
            o.duration = 0;
            o.service_time = None;
            o.upstream_host = None;
            o.cluster = None;
            o.upstream_local = None;
            o.route = None;
        }
        89..93 => {
            o.code = 503;
            o.flags = "UH";
            o.details = "no_healthy_upstream".to_owned();
            o.bytes_sent = 19;
            o.duration = 0;
            o.service_time = None;
            o.upstream_host = None;
            o.upstream_local = None;
        }
        _ => {
            // TCP proxy: `"- - -" 0 …`.
            o.method = "-";
            o.path = "-";
            o.protocol = "-";
            o.code = 0;
            o.details = "-".to_owned();
            o.service_time = None;
            o.user_agent = "-";
            o.request_id = "-".to_owned();
            o.authority = "-".to_owned();
            o.route = None;
            o.bytes_received = 500 + g.below(5000);
            o.duration = 10 + g.below(60_000);
            if roll >= 98 {
                o.flags = "UH";
                o.bytes_received = 0;
                o.bytes_sent = 0;
                o.upstream_host = None;
                o.cluster = Some("BlackHoleCluster".to_owned());
                o.upstream_local = None;
                o.downstream_local = format!("142.250.{}.{}:443", g.below(255), g.below(255));
                o.sni = Some("www.example.com".to_owned());
            } else {
                o.cluster = Some("outbound|5432||postgres.db.svc.cluster.local".to_owned());
                o.upstream_host = Some(format!("{}:5432", g.ip()));
            }
        }
    }
    o
}

fn dash(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

/// Istio 1.23+'s default text format (`EnvoyTextLogFormat`), field for field.
fn text_line(o: &Outcome) -> String {
    let request = if o.method == "-" {
        "- - -".to_owned()
    } else {
        format!("{} {} {}", o.method, o.path, o.protocol)
    };
    format!(
        "[{}] \"{request}\" {} {} {} - \"{}\" {} {} {} {} \"-\" \"{}\" \"{}\" \"{}\" \"{}\" {} {} {} {} {} {}",
        o.start,
        o.code,
        o.flags,
        o.details,
        o.transport,
        o.bytes_received,
        o.bytes_sent,
        o.duration,
        o.service_time.map_or("-".to_owned(), |t| t.to_string()),
        o.user_agent,
        o.request_id,
        o.authority,
        dash(&o.upstream_host),
        dash(&o.cluster),
        dash(&o.upstream_local),
        o.downstream_local,
        o.downstream_remote,
        dash(&o.sni),
        o.route.unwrap_or("-"),
    )
}

/// Istio 1.25+'s default JSON keys, as Envoy 1.40 prints them (numbers typed, absent = null).
fn json_line(o: &Outcome) -> String {
    use serde_json::{Value, json};
    let opt = |value: &Option<String>| value.clone().map_or(Value::Null, Value::from);
    let text = |value: &str| {
        if value == "-" {
            Value::Null
        } else {
            Value::from(value)
        }
    };
    json!({
        "authority": text(&o.authority),
        "bytes_received": o.bytes_received,
        "bytes_sent": o.bytes_sent,
        "connection_termination_details": Value::Null,
        "downstream_local_address": o.downstream_local,
        "downstream_remote_address": o.downstream_remote,
        "duration": o.duration,
        "method": text(o.method),
        "path": text(o.path),
        "protocol": text(o.protocol),
        "request_id": text(&o.request_id),
        "requested_server_name": opt(&o.sni),
        "response_code": o.code,
        "response_code_details": text(&o.details),
        "response_flags": o.flags,
        "route_name": o.route.map_or(Value::Null, Value::from),
        "start_time": o.start,
        "upstream_cluster": opt(&o.cluster),
        "upstream_host": opt(&o.upstream_host),
        "upstream_local_address": opt(&o.upstream_local),
        "upstream_service_time": o.service_time.map_or(Value::Null, |t| Value::from(t.to_string())),
        "upstream_transport_failure_reason": text(o.transport),
        "user_agent": text(o.user_agent),
        "x_forwarded_for": Value::Null,
    })
    .to_string()
}

/// `count` lines of Istio's current default text format.
pub fn text_lines(count: usize) -> Vec<String> {
    let mut g = Gen(0x6c6f_6772_6561_6431);
    (0..count).map(|_| text_line(&outcome(&mut g))).collect()
}

/// `count` lines of Istio's current default JSON format.
pub fn json_lines(count: usize) -> Vec<String> {
    let mut g = Gen(0x6a73_6f6e_6c69_6e65);
    (0..count).map(|_| json_line(&outcome(&mut g))).collect()
}

/// `count` fragments of the shapes salvage recovers.
pub fn salvage_lines(count: usize) -> Vec<String> {
    let mut g = Gen(0x7361_6c76_6167_6521);
    (0..count)
        .map(|i| {
            let (service, port) = SERVICES[g.below(SERVICES.len() as u64) as usize];
            let host = format!("{}:{port}", g.ip());
            match i % 5 {
                0 => format!(
                    "503 UF upstream_reset_before_response_started{{remote_connection_failure|delayed_connect_error:_Connection_refused}} {}ms",
                    g.below(100)
                ),
                1 => format!(
                    r#""response_flags":"UC","response_code":503,"upstream_cluster":"outbound|{port}||{service}.svc.cluster.local","upstream_host":"{host}","duration":{}"#,
                    g.below(50)
                ),
                2 => format!(
                    "status=503 response_flag=UT status_details=response_timeout upstream=outbound|{port}||{service}.svc.cluster.local duration={}",
                    15_000 + g.below(20)
                ),
                3 => format!(
                    "**503 UC** upstream_reset_before_response_started{{connection_termination}} to {host} after {} ms",
                    g.below(10)
                ),
                _ => format!(
                    "got 503 URX,UF from outbound|{port}||{service}.svc.cluster.local: TLS error: 268435703:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER (id {})",
                    g.uuid()
                ),
            }
        })
        .collect()
}

/// The table BENCHMARKS.md shows.
pub fn markdown(out: &mut String, result: &LogreadResult) {
    let pinned = result.pinned_cpu.map_or("not pinned".to_owned(), |cpu| {
        format!("pinned to CPU {cpu}")
    });
    let _ = writeln!(
        out,
        "\nLog reader, one thread ({pinned}): {} rounds of {} lines per kind.\n",
        result.rounds, result.lines_per_round
    );
    let _ = writeln!(
        out,
        "| log reader input | lines per CPU-second, median [range] | lines/s wall | mean line | read / salvaged / unreadable (of the distinct lines) | origins |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for kind in &result.kinds {
        let origins: Vec<String> = kind
            .origins
            .iter()
            .map(|(origin, n)| {
                let origin = if origin.is_empty() {
                    "(no origin)"
                } else {
                    origin
                };
                format!("{origin} {n}")
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} B | {} / {} / {} of {} | {} |",
            kind.kind,
            kind.lines_per_cpu_second.show(0),
            kind.lines_per_second.median,
            kind.mean_bytes,
            kind.read,
            kind.salvaged,
            kind.unreadable,
            kind.distinct_lines,
            origins.join(", ")
        );
    }
}

/// The smoke iteration's checks (no timing): every kind ran and read every one of its lines;
/// the salvage kind through salvage, the formats without it.
pub fn smoke_check(result: &LogreadResult) -> Result<()> {
    for kind in &result.kinds {
        ensure!(
            kind.lines_per_second.median > 0.0,
            "smoke: log reader {} produced no figure",
            kind.kind
        );
        ensure!(
            kind.unreadable == 0,
            "smoke: log reader {}: {} of {} lines unreadable",
            kind.kind,
            kind.unreadable,
            kind.distinct_lines
        );
        if kind.kind == "salvage" {
            ensure!(
                kind.salvaged == kind.read,
                "smoke: log reader salvage: only {} of {} fragments salvaged ({:?})",
                kind.salvaged,
                kind.read,
                kind.origins
            );
        } else {
            ensure!(
                kind.salvaged == 0,
                "smoke: log reader {}: {} lines needed salvage ({:?})",
                kind.kind,
                kind.salvaged,
                kind.origins
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_istio_lines() {
        let text = text_lines(200);
        assert!(
            text.iter()
                .any(|l| l.contains(" 503 URX,UF upstream_reset"))
        );
        assert!(text.iter().any(|l| l.contains("\"- - -\" 0 UH")));
        assert!(text.iter().any(|l| l.contains(" 404 NR route_not_found")));
        // 21 space-separated fields after the request line, as the format has.
        let success = text
            .iter()
            .find(|l| l.contains(" 200 - via_upstream"))
            .unwrap();
        assert!(success.ends_with(" - default"), "{success}");
        let json = json_lines(50);
        for line in &json {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(value["response_code"].is_u64());
        }
        assert_eq!(salvage_lines(10).len(), 10);
        assert_eq!(Gen(1).uuid().len(), 36);
    }
}
