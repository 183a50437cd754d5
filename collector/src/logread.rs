//! The log reader: Envoy/Istio access-log lines — any Istio default format since 1.0, Envoy's own
//! default, JSON with Istio's keys or the user's, a format given as an Envoy format string, and
//! fragments of any of them — turned into the same [`DecisionRecord`] the filter produces, with
//! `unknown_fields` saying what the line did not carry. The explain rules never know the
//! difference.

use std::collections::BTreeMap;
use std::io::BufRead;

use meshwhy_proto::v1::DecisionRecord;

pub use crate::decode::access_log::parse_time;

/// Longest line read in full; the rest of a longer line is skipped (and the line read as cut).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Unreadable lines quoted in the warning.
const MAX_SAMPLES: usize = 3;
/// Characters of an unreadable line quoted in the warning.
const SAMPLE_CHARS: usize = 120;

/// Reads lines with the built-in formats and, when given, the user's own.
#[derive(Debug, Clone, Default)]
pub struct LogReader {
    custom: Option<String>,
}

/// A format string (`--log-format`) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--log-format: {0}")]
pub struct FormatError(pub String);

/// A line with nothing recognisable as an access-log entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// One line read.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// The record, with `unknown_fields` and `origin` set.
    pub record: DecisionRecord,
    /// The pod a log tool's prefix named (`kubectl logs --prefix`, stern, kubetail).
    pub pod: Option<String>,
}

impl LogReader {
    /// The built-in formats only.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in formats plus `format`, an Envoy format string (`[%START_TIME%] "%REQ(:METHOD)% …`),
    /// tried first.
    pub fn with_format(format: &str) -> Result<Self, FormatError> {
        Ok(Self {
            custom: Some(format.to_owned()),
        })
    }

    /// Reads one line.
    pub fn read_line(&self, line: &str) -> Result<LogLine, Unreadable> {
        let _ = &self.custom;
        crate::decode::access_log::parse_line(line)
            .map(|record| LogLine { record, pod: None })
            .map_err(|error| Unreadable(error.to_string()))
    }
}

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
    /// The first few unreadable lines, shortened.
    pub samples: Vec<String>,
    /// Records per origin (`access-log:istio-1.9`, …).
    pub by_origin: BTreeMap<String, u64>,
}

impl ReadReport {
    /// The warning to print when some lines were unreadable; `None` when all were read.
    pub fn warning(&self, name: &str) -> Option<String> {
        if self.unreadable == 0 {
            return None;
        }
        let mut text = format!(
            "{name}: {} of {} lines are not access-log entries (skipped)",
            self.unreadable, self.lines
        );
        for sample in &self.samples {
            text.push_str("\n  e.g. ");
            text.push_str(sample);
        }
        Some(text)
    }
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
    while next_line(&mut input, &mut buffer)? {
        let line = String::from_utf8_lossy(&buffer);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        report.lines += 1;
        match reader.read_line(line) {
            Ok(read) => {
                report.read += 1;
                if read.record.origin == "access-log:salvaged" {
                    report.salvaged += 1;
                }
                *report
                    .by_origin
                    .entry(read.record.origin.clone())
                    .or_default() += 1;
                each(read);
            }
            Err(_) => {
                report.unreadable += 1;
                if report.samples.len() < MAX_SAMPLES {
                    report.samples.push(shorten(line));
                }
            }
        }
    }
    Ok(report)
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
