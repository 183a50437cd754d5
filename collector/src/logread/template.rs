//! Envoy format strings (`[%START_TIME%] "%REQ(:METHOD)% …" %RESPONSE_CODE% …`) compiled into
//! patterns, and lines matched against them by structure: every literal must stand where the
//! format puts it and every value must have its field's shape. That is how the Istio eras are
//! told apart (a quoted field after the flags, or details there) without guessing, and how a
//! user's own `--log-format` is read.

use super::field::Field;

/// A compiled format.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
    /// Index of the literal that opens the request line (`"` before `%REQ(:METHOD)%`): where a
    /// line whose head was cut off starts.
    request_line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Field(Field),
}

/// How much of a line a template explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fit {
    /// The line ended before the format did (cut short, or only a head pasted).
    Cut,
    /// The whole format matched and more followed (custom fields appended).
    Extra,
    /// The line is exactly the format.
    Full,
}

/// A successful match: how well, and where the unexplained rest begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Matched<'a> {
    pub(crate) fit: Fit,
    /// Text after the format (for [`Fit::Extra`]).
    pub(crate) rest: &'a str,
}

/// Why a format string cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompileError(pub(crate) String);

impl Template {
    /// Compiles an Envoy format string. Commands it does not know match any value.
    pub(crate) fn compile(format: &str) -> Result<Self, CompileError> {
        let format = format.trim_end_matches('\n').trim_end_matches("\\n");
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = format;
        while let Some(at) = rest.find('%') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let Some(end) = command_end(after) else {
                return Err(CompileError(format!(
                    "unterminated command at `{}` (commands look like %RESPONSE_CODE% or %REQ(:METHOD)%)",
                    shorten(&rest[at..])
                )));
            };
            let command = &after[..end];
            rest = &after[end + 1..];
            if command.is_empty() {
                // `%%` prints a percent sign.
                literal.push('%');
                continue;
            }
            let (name, argument) = split_command(command);
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                return Err(CompileError(format!(
                    "`%{command}%` is not an Envoy format command"
                )));
            }
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Field(Field::of_command(name, argument)));
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        let useful = pieces.iter().any(|piece| {
            matches!(
                piece,
                Piece::Field(Field::Code | Field::Flags | Field::Details | Field::TransportFailure)
            )
        });
        if !useful {
            return Err(CompileError(
                "the format has none of %RESPONSE_CODE%, %RESPONSE_FLAGS%, %RESPONSE_CODE_DETAILS%, \
                 %UPSTREAM_TRANSPORT_FAILURE_REASON%: its lines carry nothing to explain"
                    .to_owned(),
            ));
        }
        let request_line = pieces.windows(2).position(|pair| {
            matches!(pair, [Piece::Literal(l), Piece::Field(Field::Method)] if l.ends_with('"'))
        });
        Ok(Self {
            pieces,
            request_line,
        })
    }

    /// The fields this format carries.
    #[cfg(test)]
    pub(crate) fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Field(field) => Some(*field),
            Piece::Literal(_) => None,
        })
    }

    /// How many values the format prints.
    pub(crate) fn field_count(&self) -> usize {
        self.pieces
            .iter()
            .filter(|piece| matches!(piece, Piece::Field(_)))
            .count()
    }

    /// Whether the format starts with a literal (`[`) rather than a value.
    pub(crate) fn first_literal(&self) -> Option<&str> {
        match self.pieces.first() {
            Some(Piece::Literal(literal)) => Some(literal),
            _ => None,
        }
    }

    /// Matches `line` from its start against the whole format, collecting `(field, value)` into
    /// `values` (cleared first). `None` when the line does not have this format's structure.
    pub(crate) fn match_line<'a>(
        &self,
        line: &'a str,
        values: &mut Vec<(Field, &'a str)>,
    ) -> Option<Matched<'a>> {
        self.match_from(0, line, values)
    }

    /// As [`Template::match_line`] for a line whose head was cut off: it starts at the request
    /// line's opening quote.
    pub(crate) fn match_request_line<'a>(
        &self,
        line: &'a str,
        values: &mut Vec<(Field, &'a str)>,
    ) -> Option<Matched<'a>> {
        self.match_from(self.request_line?, line, values)
    }

    fn match_from<'a>(
        &self,
        first: usize,
        line: &'a str,
        values: &mut Vec<(Field, &'a str)>,
    ) -> Option<Matched<'a>> {
        values.clear();
        let cut = Matched {
            fit: Fit::Cut,
            rest: "",
        };
        let mut pos = 0;
        let mut i = first;
        if Some(first) == self.request_line {
            // Only the request line's opening quote of the literal before it (`] "`) is there.
            pos = usize::from(line.starts_with('"'));
            if pos == 0 {
                return None;
            }
            i += 1;
        }
        while let Some(piece) = self.pieces.get(i) {
            let rest = &line[pos..];
            match piece {
                Piece::Literal(literal) => {
                    if starts_with(rest.as_bytes(), literal.as_bytes()) {
                        pos += literal.len();
                        i += 1;
                    } else if literal.starts_with(rest) {
                        return Some(cut);
                    } else {
                        return None;
                    }
                }
                Piece::Field(field) => {
                    if rest.is_empty() {
                        return Some(cut);
                    }
                    match self.pieces.get(i + 1) {
                        Some(Piece::Literal(next)) => match find(rest, next) {
                            Some(end) => {
                                let value = &rest[..end];
                                // Cut at the first space, it holds none (Envoy prints no tabs).
                                let spaced = !next.starts_with(' ');
                                if !field.accepts_cut(value, spaced) {
                                    return None;
                                }
                                values.push((*field, value));
                                // The literal was found right there: step over it too.
                                pos += end + next.len();
                                i += 2;
                            }
                            None => {
                                // The line ends inside this value (or inside the literal after it).
                                let value = strip_partial(rest, next);
                                if !field.accepts(value) || value.contains('"') {
                                    // Not a cut value but a different structure.
                                    return None;
                                }
                                values.push((*field, value));
                                return Some(cut);
                            }
                        },
                        Some(Piece::Field(second)) => {
                            // Two values with nothing between them: Istio 1.0.3's
                            // `%PATH%%PROTOCOL%`. Only a protocol can be split off the end.
                            let next = match self.pieces.get(i + 2) {
                                Some(Piece::Literal(next)) => next.as_str(),
                                _ => return None,
                            };
                            let end = find(rest, next).unwrap_or(rest.len());
                            let joined = &rest[..end];
                            let split =
                                split_protocol(joined).filter(|_| *second == Field::Protocol);
                            let (value, protocol) = split?;
                            if !field.accepts(value) {
                                return None;
                            }
                            values.push((*field, value));
                            values.push((*second, protocol));
                            pos += end;
                            i += 2;
                            if end == rest.len() {
                                return Some(cut);
                            }
                        }
                        None => {
                            let end = rest
                                .bytes()
                                .position(|b| b.is_ascii_whitespace())
                                .unwrap_or(rest.len());
                            let value = &rest[..end];
                            if !field.accepts(value) {
                                return None;
                            }
                            values.push((*field, value));
                            let tail = rest[end..].trim();
                            return Some(Matched {
                                fit: if tail.is_empty() {
                                    Fit::Full
                                } else {
                                    Fit::Extra
                                },
                                rest: tail,
                            });
                        }
                    }
                }
            }
        }
        let tail = line[pos..].trim();
        Some(Matched {
            fit: if tail.is_empty() {
                Fit::Full
            } else {
                Fit::Extra
            },
            rest: tail,
        })
    }
}

/// The first occurrence of `literal` in `text`. The literals of access-log formats are a byte or
/// three (` `, `" "`, `] "`): a scan for the first byte beats a general substring search, whose
/// set-up alone costs more than these short searches.
fn find(text: &str, literal: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let needle = literal.as_bytes();
    let (&first, tail) = needle.split_first()?;
    let mut from = 0;
    while let Some(offset) = memchr::memchr(first, bytes.get(from..)?) {
        let at = from + offset;
        if starts_with(bytes.get(at + 1..)?, tail) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// `haystack.starts_with(prefix)` compared byte by byte: the prefixes here are a few bytes, where
/// a call to `memcmp` costs more than the comparison.
fn starts_with(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack.len() >= prefix.len() && prefix.iter().zip(haystack).all(|(a, b)| a == b)
}

/// Index of the `%` closing a command that starts right after an opening `%`; parentheses may
/// hold `%`-free text with `:` and `?`.
fn command_end(after: &str) -> Option<usize> {
    let mut depth = 0u32;
    for (i, c) in after.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '%' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// `REQ(X-ENVOY-ORIGINAL-PATH?:PATH):256` → (`REQ`, `X-ENVOY-ORIGINAL-PATH?:PATH`).
fn split_command(command: &str) -> (&str, &str) {
    match command.split_once('(') {
        Some((name, rest)) => {
            let argument = rest.rsplit_once(')').map_or(rest, |(argument, _)| argument);
            (name, argument)
        }
        None => (command.split(':').next().unwrap_or(command), ""),
    }
}

/// `/productpageHTTP/1.1` → (`/productpage`, `HTTP/1.1`); `-` stays a protocol of its own.
fn split_protocol(joined: &str) -> Option<(&str, &str)> {
    if let Some(at) = joined.rfind("HTTP/") {
        let (value, protocol) = joined.split_at(at);
        return super::field::is_protocol(protocol).then_some((value, protocol));
    }
    let value = joined.strip_suffix('-')?;
    Some((value, "-"))
}

/// `rest` without a trailing beginning of `next` (`…curl"` when `next` is `" "`).
fn strip_partial<'a>(rest: &'a str, next: &str) -> &'a str {
    for len in (1..next.len()).rev() {
        if let Some(head) = next.get(..len)
            && let Some(value) = rest.strip_suffix(head)
        {
            return value;
        }
    }
    rest
}

fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(template: &Template, line: &'a str) -> Option<(Fit, Vec<(Field, &'a str)>)> {
        let mut values = Vec::new();
        let matched = template.match_line(line, &mut values)?;
        Some((matched.fit, values))
    }

    #[test]
    fn compiles_commands_arguments_and_lengths() {
        let template = Template::compile(
            r#"[%START_TIME%] "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH):64%" %RESPONSE_CODE% 100%%\n"#,
        )
        .unwrap();
        let fields: Vec<Field> = template.fields().collect();
        assert_eq!(fields, [Field::StartTime, Field::Path, Field::Code]);
        assert_eq!(template.first_literal(), Some("["));
        let (fit, found) =
            values(&template, r#"[2024-01-01T00:00:00.000Z] "/a" 503 100%"#).unwrap();
        assert_eq!(fit, Fit::Full);
        assert_eq!(found[1], (Field::Path, "/a"));
    }

    #[test]
    fn bad_formats_say_why() {
        let error = Template::compile("%RESPONSE_CODE").unwrap_err();
        assert!(error.0.contains("unterminated"), "{}", error.0);
        let error = Template::compile("%USER_AGENT% %BYTES_SENT%").unwrap_err();
        assert!(error.0.contains("nothing to explain"), "{}", error.0);
        assert!(Template::compile("%response code%").is_err());
    }

    #[test]
    fn structure_decides_and_lines_may_be_cut_or_extended() {
        let template = Template::compile(r#"%RESPONSE_CODE% %RESPONSE_FLAGS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_SENT%"#).unwrap();
        assert!(
            values(&template, "503 UF 12 0").is_none(),
            "quoted field missing"
        );
        assert!(values(&template, "GET UF \"x\" 0").is_none(), "code shape");
        let (fit, found) =
            values(&template, r#"503 UF,URX "TLS error: 268435703" 91 extra=1"#).unwrap();
        assert_eq!(fit, Fit::Extra);
        assert_eq!(found[2], (Field::TransportFailure, "TLS error: 268435703"));
        let (fit, found) = values(&template, r#"503 UF "delayed connect err"#).unwrap();
        assert_eq!(fit, Fit::Cut);
        assert_eq!(found.len(), 3);
    }

    #[test]
    fn adjacent_path_and_protocol() {
        let template =
            Template::compile(r#""%REQ(:METHOD)% %REQ(:PATH)%%PROTOCOL%" %RESPONSE_CODE%"#)
                .unwrap();
        let (_, found) = values(&template, r#""GET /productpageHTTP/1.1" 200"#).unwrap();
        assert_eq!(found[1], (Field::Path, "/productpage"));
        assert_eq!(found[2], (Field::Protocol, "HTTP/1.1"));
        assert!(values(&template, r#""GET /x HTTP/1.1" 200"#).is_none());
    }
}
