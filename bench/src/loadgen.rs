//! The load generator: HTTP/1.1 keep-alive GETs over plain TCP, two modes.
//! - Closed loop (`saturate`): N connections, each sending its next request as soon as the
//!   previous answer is read, bounded by a request count and a time limit. Keeps Envoy's single
//!   worker busy, which is where Envoy CPU per request and requests/s are measured.
//! - Open loop (`fixed_rate`): a fixed request rate spread over N connections, bounded by time,
//!   for latency below saturation. Latency counts from the scheduled send time when the
//!   connection was still busy with an earlier answer (no coordinated omission), else from the
//!   actual send (tokio's timer fires at 1 ms granularity; counting its lateness as latency
//!   would swamp sub-millisecond answers).
//!
//! Written here rather than taken from wrk/oha so it has a fixed-rate mode, needs nothing
//! installed, and costs little CPU on the core it shares with the upstream.

use crate::upstream::find;
use anyhow::{Context, Result, bail};
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// What to request.
#[derive(Debug, Clone)]
pub struct Target {
    /// Envoy's listener.
    pub addr: SocketAddr,
    /// The whole request, pre-rendered.
    pub request: Arc<[u8]>,
    /// The status every answer must have (a different one counts as an error).
    pub expect_status: u16,
}

impl Target {
    /// A GET of `path` with the headers a typical in-mesh client sends.
    pub fn get(addr: SocketAddr, authority: &str, path: &str, expect_status: u16) -> Self {
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: {authority}\r\nuser-agent: meshwhy-bench/1\r\n\
             accept: */*\r\n\r\n"
        );
        Self {
            addr,
            request: request.into_bytes().into(),
            expect_status,
        }
    }
}

/// The outcome of one closed-loop run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Saturation {
    /// Answers with the expected status.
    pub completed: u64,
    /// Failed exchanges and unexpected statuses.
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// The outcome of one open-loop run.
#[derive(Debug, Clone, Default)]
pub struct FixedRate {
    /// Answers with the expected status.
    pub completed: u64,
    /// Failed exchanges and unexpected statuses.
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Every answer's latency, sorted ascending.
    pub latencies: Vec<Duration>,
}

impl FixedRate {
    /// The `q` quantile (0–1) of the latencies; zero when there are none.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[rank.min(self.latencies.len() - 1)]
    }
}

/// Closed loop: `connections` keep-alive connections, until `max_requests` have been sent or
/// `time_limit` has passed.
pub async fn saturate(
    target: &Target,
    connections: usize,
    max_requests: u64,
    time_limit: Duration,
) -> Result<Saturation> {
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + time_limit;
    let mut workers = Vec::new();
    for _ in 0..connections.max(1) {
        let target = target.clone();
        let issued = Arc::clone(&issued);
        workers.push(tokio::spawn(async move {
            let mut tally = Saturation::default();
            let mut conn = None;
            while issued.fetch_add(1, Ordering::Relaxed) < max_requests && Instant::now() < deadline
            {
                match exchange(&mut conn, &target).await {
                    Ok(status) if status == target.expect_status => tally.completed += 1,
                    _ => tally.errors += 1,
                }
            }
            tally
        }));
    }
    let mut total = Saturation::default();
    for worker in workers {
        let tally = worker.await?;
        total.completed += tally.completed;
        total.errors += tally.errors;
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// Open loop: `rate` requests/s spread evenly over `connections` connections for `duration`.
pub async fn fixed_rate(
    target: &Target,
    connections: usize,
    rate: f64,
    duration: Duration,
) -> Result<FixedRate> {
    if rate <= 0.0 {
        bail!("the request rate must be positive, got {rate}");
    }
    let connections = connections.max(1);
    let interval = Duration::from_secs_f64(1.0 / rate);
    // Start a little later so every worker is ready at t0.
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + duration;
    let mut workers = Vec::new();
    for worker in 0..connections {
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            let mut result = FixedRate::default();
            let mut conn = None;
            // Connect before the clock starts: connection setup is not request latency.
            let _ = connect(&mut conn, &target).await;
            let mut free_at = start;
            for slot in (worker as u32..).step_by(connections) {
                let due = start + interval * slot;
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                let status = exchange(&mut conn, &target).await;
                let done = Instant::now();
                // Busy past the due time: the wait was the server's fault, count it.
                let from = if free_at > due { due } else { sent };
                free_at = done;
                match status {
                    Ok(status) if status == target.expect_status => {
                        result.completed += 1;
                        result.latencies.push(done - from);
                    }
                    _ => result.errors += 1,
                }
            }
            result
        }));
    }
    let mut total = FixedRate::default();
    for worker in workers {
        let part = worker.await?;
        total.completed += part.completed;
        total.errors += part.errors;
        total.latencies.extend(part.latencies);
    }
    total.elapsed = start.elapsed();
    total.latencies.sort_unstable();
    Ok(total)
}

/// A keep-alive connection and its read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

async fn connect<'a>(conn: &'a mut Option<Conn>, target: &Target) -> Result<&'a mut Conn> {
    if conn.is_none() {
        let stream = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connect to {}", target.addr))?;
        stream.set_nodelay(true)?;
        *conn = Some(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        });
    }
    conn.as_mut().context("connection just made")
}

/// One request/answer on the connection, reconnecting first when it was closed. On any error
/// the connection is dropped so the next exchange starts clean.
async fn exchange(conn: &mut Option<Conn>, target: &Target) -> Result<u16> {
    let result = async {
        let live = connect(conn, target).await?;
        live.stream.write_all(&target.request).await?;
        read_response(live).await
    }
    .await;
    match result {
        Ok((status, keep_alive)) => {
            if !keep_alive {
                *conn = None;
            }
            Ok(status)
        }
        Err(error) => {
            *conn = None;
            Err(error)
        }
    }
}

/// Reads one response (headers with a content-length, then the body); returns its status and
/// whether the connection stays open.
async fn read_response(conn: &mut Conn) -> Result<(u16, bool)> {
    let head_end = loop {
        if let Some(end) = find(&conn.buf, b"\r\n\r\n") {
            break end + 4;
        }
        read_more(conn).await?;
    };
    let head = std::str::from_utf8(&conn.buf[..head_end]).context("response head is not UTF-8")?;
    let (status, length, keep_alive) = parse_head(head)?;
    while conn.buf.len() < head_end + length {
        read_more(conn).await?;
    }
    conn.buf.drain(..head_end + length);
    Ok((status, keep_alive))
}

async fn read_more(conn: &mut Conn) -> Result<()> {
    let mut chunk = [0u8; 4096];
    let n = conn.stream.read(&mut chunk).await?;
    if n == 0 {
        bail!("connection closed mid-response");
    }
    conn.buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Status, content-length and keep-alive from a response head. Envoy always sends a
/// content-length for the bodies this benchmark produces; a chunked answer is an error here.
fn parse_head(head: &str) -> Result<(u16, usize, bool)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut keep_alive = true;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            keep_alive = false;
        }
    }
    let length = length.with_context(|| format!("no content-length in {head:?}"))?;
    Ok((status, length, keep_alive))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::FastUpstream;

    #[test]
    fn parses_heads() {
        let head =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nconnection: close\r\n\r\n";
        assert_eq!(parse_head(head).unwrap(), (503, 4, false));
        assert!(parse_head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn both_modes_complete_against_the_upstream() {
        let upstream = FastUpstream::start().await.unwrap();
        let target = Target::get(upstream.addr, "x", "/ok", 200);
        let run = saturate(&target, 2, 50, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((run.completed, run.errors), (50, 0));
        let failing = Target::get(upstream.addr, "x", "/status/503", 200);
        let run = saturate(&failing, 1, 3, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((run.completed, run.errors), (0, 3));
        let run = fixed_rate(&target, 2, 200.0, Duration::from_millis(200))
            .await
            .unwrap();
        assert!(run.completed >= 30 && run.errors == 0, "{run:?}");
        assert!(run.quantile(0.99) >= run.quantile(0.5));
    }
}
