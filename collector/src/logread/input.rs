//! Whole inputs: lines split (invalid UTF-8 read lossily, a line over [`MAX_LINE_BYTES`] cut
//! there), blank ones skipped, the proxy's own log lines and unreadable ones counted and sampled
//! for one warning, and a line hard-wrapped in two read whole again.

use std::collections::BTreeMap;
use std::io::BufRead;

use super::{CUT_SUFFIX, LogLine, LogReader, MAX_LINE_BYTES, ORIGIN_SALVAGED};

/// Characters of an unreadable line quoted in the warning.
const SAMPLE_CHARS: usize = 120;
/// Unreadable lines quoted in the warning.
const MAX_SAMPLES: usize = 3;

/// What reading a whole input found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Non-blank lines.
    pub lines: u64,
    /// Lines read into a record.
    pub read: u64,
    /// Of those, lines recovered by salvage (no known format matched).
    pub salvaged: u64,
    /// Lines with nothing recognisable.
    pub unreadable: u64,
    /// Lines of the proxy's own log (Envoy's `[… ][thread][level]` messages, istio-agent's
    /// `…Z<TAB>info<TAB>…`): `kubectl logs -c istio-proxy` interleaves them; not access-log
    /// entries, and not unreadable either.
    pub proxy_log: u64,
    /// Lines that were the wrapped rest of the line before them (read together with it).
    pub joined: u64,
    /// The first few skipped lines (unreadable or the proxy's own), shortened.
    pub samples: Vec<String>,
    /// Records per origin (`access-log:istio-1.9`, …).
    pub by_origin: BTreeMap<String, u64>,
}

impl ReadReport {
    /// The warning to print when some lines were unreadable; `None` when all were read.
    pub fn warning(&self, name: &str) -> Option<String> {
        let skipped = self.unreadable + self.proxy_log;
        if skipped == 0 {
            return None;
        }
        let mut text = format!(
            "{name}: {skipped} of {} lines are not access-log entries (skipped)",
            self.lines
        );
        if self.proxy_log > 0 {
            text.push_str(&format!(
                ": {} of the proxy's own log, {} unreadable",
                self.proxy_log, self.unreadable
            ));
        }
        for sample in &self.samples {
            text.push_str("\n  e.g. ");
            text.push_str(sample);
        }
        Some(text)
    }
}

/// Whether a line is one of the proxy's own log messages rather than an access-log entry:
/// Envoy's `[2024-01-01 00:00:00.000][12][info][config] …` or istio-agent's
/// `2024-01-01T00:00:00.000000Z<TAB>info<TAB>…`, after any log tool's prefix.
pub fn is_proxy_log(line: &str) -> bool {
    const LEVELS: &[&str] = &[
        "trace", "debug", "info", "warn", "warning", "error", "critical", "fatal",
    ];
    let head = &line.as_bytes()[..line.len().min(160)];
    let agent = memchr::memmem::find_iter(head, b"Z\t").any(|at| {
        let rest = &head[at + 2..];
        LEVELS.iter().any(|level| {
            rest.starts_with(level.as_bytes()) && rest.get(level.len()) == Some(&b'\t')
        })
    });
    let envoy = memchr::memmem::find_iter(head, b"][").any(|at| {
        // `…:00.000][12][info]`: a thread id in brackets, then a level.
        let rest = &head[at + 2..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        digits > 0
            && rest[digits..].starts_with(b"][")
            && LEVELS
                .iter()
                .any(|level| rest[digits + 2..].starts_with(level.as_bytes()))
    });
    agent || envoy
}

/// Reads every line of `input`, calling `each` for every record; invalid UTF-8 is read lossily,
/// a line longer than [`MAX_LINE_BYTES`] is read as cut there. Only an I/O error fails.
pub fn read_lines(
    mut input: impl BufRead,
    reader: &LogReader,
    mut each: impl FnMut(LogLine),
) -> std::io::Result<ReadReport> {
    let mut report = ReadReport::default();
    let mut buffer = Vec::new();
    // A line read as cut, held back one line: the next may be its wrapped rest.
    let mut held: Option<(String, LogLine)> = None;
    let mut emit = |report: &mut ReadReport, read: LogLine| {
        report.read += 1;
        if read.record.origin == ORIGIN_SALVAGED {
            report.salvaged += 1;
        }
        *report
            .by_origin
            .entry(read.record.origin.clone())
            .or_default() += 1;
        each(read);
    };
    while next_line(&mut input, &mut buffer)? {
        let line = String::from_utf8_lossy(&buffer);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        report.lines += 1;
        if let Some((head, cut)) = held.take() {
            if let Some(whole) = rejoin(reader, &head, line) {
                report.joined += 1;
                emit(&mut report, whole);
                continue;
            }
            emit(&mut report, cut);
        }
        if is_proxy_log(line) {
            report.proxy_log += 1;
            if report.samples.len() < MAX_SAMPLES {
                report.samples.push(shorten(line));
            }
            continue;
        }
        match reader.read_line(line) {
            Ok(read) if read.record.origin.ends_with(CUT_SUFFIX) => {
                held = Some((line.to_owned(), read));
            }
            Ok(read) => emit(&mut report, read),
            Err(_) => {
                report.unreadable += 1;
                if report.samples.len() < MAX_SAMPLES {
                    report.samples.push(shorten(line));
                }
            }
        }
    }
    if let Some((_, cut)) = held {
        emit(&mut report, cut);
    }
    Ok(report)
}

/// The record of a line wrapped in two (a terminal's or a chat's hard wrap, cut anywhere, even
/// inside a word): `head` read as cut and `tail` not a line of its own; `None` unless together
/// they make a whole line of a known format.
fn rejoin(reader: &LogReader, head: &str, tail: &str) -> Option<LogLine> {
    if tail.starts_with('[') || tail.starts_with('{') || is_proxy_log(tail) {
        return None;
    }
    ["", " "].iter().find_map(|separator| {
        let joined = format!("{head}{separator}{tail}");
        reader.read_line(&joined).ok().filter(|read| {
            !read.record.origin.ends_with(CUT_SUFFIX) && read.record.origin != ORIGIN_SALVAGED
        })
    })
}

/// The next line into `buffer` (without its newline), at most [`MAX_LINE_BYTES`] of it; false at
/// the end of the input.
fn next_line(input: &mut impl BufRead, buffer: &mut Vec<u8>) -> std::io::Result<bool> {
    buffer.clear();
    let mut any = false;
    loop {
        let available = match input.fill_buf() {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok(any);
        }
        any = true;
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..end], Some(end + 1)),
            None => (available, None),
        };
        let room = MAX_LINE_BYTES.saturating_sub(buffer.len());
        buffer.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = done.unwrap_or(available.len());
        input.consume(used);
        if done.is_some() {
            return Ok(true);
        }
    }
}

fn shorten(line: &str) -> String {
    let mut chars = line.chars();
    let head: String = chars.by_ref().take(SAMPLE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}
