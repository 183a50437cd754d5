//! The log reader: Envoy/Istio access-log lines — any Istio default format since 1.0, Envoy's own
//! default, JSON with Istio's keys or the user's, a format given as an Envoy format string, and
//! fragments of any of them — turned into the same [`DecisionRecord`] the filter produces, with
//! `unknown_fields` saying what the line did not carry. The explain rules never know the
//! difference.

mod clean;
mod eras;
mod field;
mod input;
mod json;
mod salvage;
mod template;

use std::sync::OnceLock;

use meshwhy_proto::v1::{DecisionRecord, Direction, RecordField};

pub use input::{ReadReport, is_proxy_log, read_lines};

use field::Field;
use template::{Fit, Template};

/// Longest line read in full; the rest of a longer line is skipped (and the line read as cut).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// `origin` of records no format matched.
pub const ORIGIN_SALVAGED: &str = "access-log:salvaged";
/// `origin` of JSON records.
pub const ORIGIN_JSON: &str = "access-log:json";
/// `origin` of records read with the user's `--log-format`.
pub const ORIGIN_CUSTOM: &str = "access-log:custom";
/// `origin` suffix of a record whose line ended before its format did.
const CUT_SUFFIX: &str = " (cut)";
/// Most wrappers unwrapped (`{"log": "{\"log\": …}"}`).
const MAX_WRAPPING: usize = 2;

/// Reads lines with the built-in formats and, when given, the user's own (tried first).
#[derive(Debug, Clone, Default)]
pub struct LogReader {
    custom: Option<Template>,
    /// Keys of a JSON `--log-format`, with the fields their commands print.
    json_keys: Vec<(String, Field)>,
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

/// The built-in formats, compiled once.
fn builtins() -> &'static [(eras::Era, Template)] {
    static BUILTINS: OnceLock<Vec<(eras::Era, Template)>> = OnceLock::new();
    BUILTINS.get_or_init(|| {
        let mut compiled: Vec<(eras::Era, Template)> = eras::ERAS
            .iter()
            .filter_map(|era| Template::compile(era.format).ok().map(|t| (*era, t)))
            .collect();
        // Most fields first (stable: ties keep the era order), so the first whole match is the
        // best one.
        compiled.sort_by_key(|(_, template)| std::cmp::Reverse(template.field_count()));
        compiled
    })
}

/// The best template match of a line so far.
struct Best<'a> {
    /// `None` for the user's format.
    era: Option<eras::Era>,
    fit: Fit,
    values: Vec<(Field, &'a str)>,
    rest: &'a str,
    /// Byte offset in the line where the match started (what precedes is a prefix).
    start: usize,
    /// A format without the NC caveat matched as well.
    tied_with_modern: bool,
}

impl LogReader {
    /// The built-in formats only.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in formats plus `format`, an Envoy format string (`[%START_TIME%] "%REQ(:METHOD)% …`)
    /// or a JSON format (`{"status":"%RESPONSE_CODE%", …}`), tried first.
    pub fn with_format(format: &str) -> Result<Self, FormatError> {
        if format.trim().is_empty() {
            return Err(FormatError("the format is empty".to_owned()));
        }
        if let Some(keys) = json::format_keys(format) {
            if keys.is_empty() {
                return Err(FormatError(
                    "the JSON format has no %COMMAND% values meshwhy reads (e.g. \"status\": \"%RESPONSE_CODE%\")"
                        .to_owned(),
                ));
            }
            return Ok(Self {
                custom: None,
                json_keys: keys,
            });
        }
        let template = Template::compile(format).map_err(|error| FormatError(error.0))?;
        Ok(Self {
            custom: Some(template),
            json_keys: Vec::new(),
        })
    }

    /// Reads one line.
    pub fn read_line(&self, line: &str) -> Result<LogLine, Unreadable> {
        // Work stays bounded whatever is pasted: a longer line is read as cut here.
        let line = line.get(..MAX_LINE_BYTES).unwrap_or_else(|| {
            let mut end = MAX_LINE_BYTES.min(line.len());
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            &line[..end]
        });
        self.read_wrapped(line, 0)
            .ok_or_else(|| Unreadable(why_unreadable(line)))
    }

    fn read_wrapped(&self, line: &str, depth: usize) -> Option<LogLine> {
        let cleaned = clean::clean(line);
        if let Some(read) = self.read_format(&cleaned.text, cleaned.cut, depth) {
            return Some(read);
        }
        // Doubled or escaped quotes: the formats again on the line made single, then salvage.
        let single = clean::unquote(&cleaned.text);
        if let Some(single) = &single
            && let Some(read) = self.read_format(single, cleaned.cut, depth)
        {
            return Some(read);
        }
        let text = single.as_deref().unwrap_or(&cleaned.text);
        let salvaged = salvage::salvage(text)?;
        Some(finish_line(
            salvaged.record,
            field::ALL & !salvaged.known,
            ORIGIN_SALVAGED.to_owned(),
            &text[..salvaged.prefix_end],
        ))
    }

    /// A JSON object or a text format, not salvage.
    fn read_format(&self, text: &str, cut: bool, depth: usize) -> Option<LogLine> {
        if text.ends_with('}')
            && let Some(at) = text.find('{')
        {
            match json::read(&text[at..], &self.json_keys) {
                Some(json::JsonLine::Record {
                    record,
                    known,
                    predates_nc,
                }) => {
                    let unknown = json::unknown(known, predates_nc);
                    return Some(finish_line(
                        *record,
                        unknown,
                        ORIGIN_JSON.to_owned(),
                        &text[..at],
                    ));
                }
                Some(json::JsonLine::Wrapped(inner)) if depth < MAX_WRAPPING => {
                    let mut read = self.read_wrapped(&inner, depth + 1)?;
                    read.pod = read.pod.or_else(|| clean::pod_in_prefix(&text[..at]));
                    return Some(read);
                }
                _ => {}
            }
        }
        self.read_text(text, cut)
    }

    /// The best-fitting text format, when one fits well enough: whole (perhaps with more after
    /// it), or cut short after the response code.
    fn read_text(&self, text: &str, cut: bool) -> Option<LogLine> {
        let mut best: Option<Best<'_>> = None;
        let mut values = Vec::with_capacity(24);
        let time_at = time_start(text);
        // Found only when a format needs it: most lines match whole from their start time.
        let mut request_at: Option<Option<usize>> = None;
        let custom = self.custom.iter().map(|template| (None, template));
        let builtin = builtins()
            .iter()
            .map(|(era, template)| (Some(*era), template));
        for (era, template) in custom.chain(builtin) {
            let mut whole = false;
            for start in starts(template, text, time_at).into_iter().flatten() {
                if let Some(matched) = template.match_line(&text[start..], &mut values) {
                    whole |= matched.fit != Fit::Cut;
                    consider(&mut best, era, matched, &mut values, start);
                }
            }
            // A line whose head was cut off starts at its request line.
            if !whole
                && let Some(at) = *request_at.get_or_insert_with(|| request_line_start(text))
                && let Some(matched) = template.match_request_line(&text[at..], &mut values)
            {
                consider(&mut best, era, matched, &mut values, at);
            }
            // The user's format first, then the built-ins by falling field count: a whole match
            // cannot be beaten by what follows.
            if best.as_ref().is_some_and(|best| best.fit == Fit::Full) {
                break;
            }
        }
        let best = best?;
        Some(Self::record_of(best, text, cut))
    }

    fn record_of(best: Best<'_>, text: &str, cut: bool) -> LogLine {
        let mut record = DecisionRecord::default();
        let mut known = 0u64;
        for (field, value) in &best.values {
            field.store(&mut record, value);
            if let Some(record_field) = field.record_field() {
                known |= field::bit(record_field);
            }
        }
        let carried = |f: Field| best.values.iter().any(|(field, _)| *field == f);
        // `"- - -" 0`: a TCP proxy connection (Istio's HTTP and TCP lines share one format);
        // Istio 1.0's separate TCP format has no request line at all.
        let tcp_line = carried(Field::Method)
            && carried(Field::Protocol)
            && record.method.is_empty()
            && record.protocol.is_empty()
            && record.response_code == 0;
        let tcp_format = best.era.is_some_and(|era| era.name == "istio-1.0-tcp");
        if tcp_line || tcp_format {
            record.protocol = crate::explain::TCP.to_owned();
            known |= field::bit(RecordField::Protocol) | field::bit(RecordField::Method);
        }
        if best.fit == Fit::Extra {
            (record, known) = salvage::fill(best.rest, record, known);
        }
        let mut unknown = field::ALL & !known;
        if best.era.is_some_and(|era| era.predates_nc) && !best.tied_with_modern {
            unknown |= field::bit(RecordField::NcFlag);
        }
        let name = best.era.map_or(ORIGIN_CUSTOM, |era| era.origin);
        let origin = if best.fit == Fit::Cut || cut {
            format!("{name}{CUT_SUFFIX}")
        } else {
            name.to_owned()
        };
        finish_line(record, unknown, origin, &text[..best.start])
    }
}

/// The finished line: what every source leaves implicit (the direction, from the cluster name;
/// the success marking: access logs carry every request) and the identity its prefix names.
fn finish_line(
    mut record: DecisionRecord,
    mut unknown: u64,
    origin: String,
    prefix: &str,
) -> LogLine {
    let direction = direction_of(&record);
    if direction != Direction::Unspecified {
        unknown &= !field::bit(RecordField::Direction);
    }
    record.direction = direction as i32;
    record.unknown_fields = unknown;
    record.origin = origin;
    record.sampled_success = !crate::explain::is_failure(&record);
    LogLine {
        record,
        pod: clean::pod_in_prefix(prefix),
    }
}

/// Keeps `matched` when it beats `best`: a whole match over one with more after it over a cut
/// one, the user's format over a built-in, more values over fewer. A cut match must have
/// reached the response code.
fn consider<'a>(
    best: &mut Option<Best<'a>>,
    era: Option<eras::Era>,
    matched: template::Matched<'a>,
    values: &mut Vec<(Field, &'a str)>,
    start: usize,
) {
    if matched.fit == Fit::Cut && !values.iter().any(|(field, _)| *field == Field::Code) {
        return;
    }
    let rank = |fit: Fit, custom: bool, n: usize| (fit, custom, n);
    match best {
        Some(best)
            if rank(matched.fit, era.is_none(), values.len())
                <= rank(best.fit, best.era.is_none(), best.values.len()) =>
        {
            if best.fit == matched.fit
                && best.values.len() == values.len()
                && era.is_some_and(|era| !era.predates_nc)
            {
                best.tied_with_modern = true;
            }
        }
        Some(best) => {
            // Trade buffers: the loser's is reused for the next attempt, nothing is copied.
            std::mem::swap(&mut best.values, values);
            best.era = era;
            best.fit = matched.fit;
            best.rest = matched.rest;
            best.start = start;
            best.tied_with_modern = false;
        }
        None => {
            *best = Some(Best {
                era,
                fit: matched.fit,
                // Taken, not copied: most lines are matched once.
                values: std::mem::take(values),
                rest: matched.rest,
                start,
                tied_with_modern: false,
            });
        }
    }
}

/// Where in `text` a template may start: at the start time for formats opening with `[`, at its
/// first literal for other formats that open with one, else at one of the first words (after
/// a log tool's prefix).
fn starts(template: &Template, text: &str, time_at: Option<usize>) -> [Option<usize>; 5] {
    let mut starts = [None; 5];
    match template.first_literal() {
        Some("[") => starts[0] = time_at,
        Some(literal) => {
            for (slot, (i, _)) in starts.iter_mut().zip(text.match_indices(literal)) {
                *slot = Some(i);
            }
        }
        None => {
            for (slot, i) in starts.iter_mut().zip(word_starts(text)) {
                *slot = Some(i);
            }
        }
    }
    starts
}

/// The listener a record's cluster name says it went through (`inbound|…` vs `outbound|…` and
/// Istio's special clusters), or its route or SNI when the cluster says nothing.
fn direction_of(record: &DecisionRecord) -> Direction {
    let cluster = record.cluster.as_str();
    if cluster.starts_with("inbound|") || cluster.starts_with("InboundPassthroughCluster") {
        Direction::Inbound
    } else if cluster.starts_with("outbound|")
        || matches!(cluster, "PassthroughCluster" | "BlackHoleCluster")
        || matches!(record.route_name.as_str(), "allow_any" | "block_all")
    {
        Direction::Outbound
    } else if record.requested_server_name.starts_with("outbound_.") {
        Direction::Inbound
    } else {
        Direction::Unspecified
    }
}

/// Where `[<digit>` opens a start time.
fn time_start(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    memchr::memchr_iter(b'[', bytes).find(|&i| bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
}

/// Where `"METHOD ` or `"- ` opens a request line.
fn request_line_start(text: &str) -> Option<usize> {
    // Methods are short: looking further than this after each quote would make a line of quotes
    // cost its length squared.
    const LONGEST_METHOD: usize = 16;
    let bytes = text.as_bytes();
    memchr::memchr_iter(b'"', bytes).find(|&i| {
        let word = &bytes[i + 1..bytes.len().min(i + 2 + LONGEST_METHOD)];
        let Some(end) = word.iter().position(|&b| b == b' ') else {
            return false;
        };
        let word = &word[..end];
        word == b"-" || (!word.is_empty() && word.iter().all(u8::is_ascii_uppercase))
    })
}

/// Offsets of the line's first words: where a custom format without a leading literal may
/// start once a log tool's prefix is skipped.
fn word_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = text.as_bytes();
    std::iter::once(0).chain(
        (1..bytes.len()).filter(move |&i| {
            bytes[i - 1].is_ascii_whitespace() && !bytes[i].is_ascii_whitespace()
        }),
    )
}

/// One clause on why a line was not read.
fn why_unreadable(line: &str) -> String {
    if line.trim().is_empty() {
        "an empty line".to_owned()
    } else {
        "no access-log format matched and no status code with flags, details or transport failure reason was recognised".to_owned()
    }
}

#[cfg(test)]
mod tests;
