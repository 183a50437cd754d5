//! Access-log input for `explain`, `top`, `observe` and `ingest-logs`: where the lines come from
//! (`--input-file`, `--line`, `ingest-logs FILE`), how they are read (`--log-format`, through
//! [`crate::logread`]), whose they are (`--pod`, `-n`, or the pod a `kubectl logs --prefix` /
//! stern prefix names on the line itself), and what is said about lines that could not be read:
//! one warning with samples when some were read, exit 65 with one line when none were.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use clap::Args;
use meshwhy_proto::v1::{DecisionRecord, ProxyIdentity};

use super::CliError;
use crate::logread::{LogLine, LogReader, MAX_LINE_BYTES, ReadReport, read_lines};

/// What `--help` says about the lines read (`explain`, `top`, `observe`, `ingest-logs`).
pub const FORMATS_HELP: &str = "\
Access-log lines (--input-file, --line, ingest-logs):
  Read: Istio's default TEXT format of every release since 1.0 and its JSON format (any era),
  Envoy's own default format, TCP proxy lines (\"- - -\" 0 …), your own format given as
  --log-format '<Envoy format string>', and fragments of any of them (a code, flags and details
  are enough). Prefixes of kubectl logs --prefix/--timestamps and stern/kubetail are understood;
  a pod such a prefix names is the proxy of that line (else --pod, or --proxy POD.NAMESPACE).
  Lines that cannot be read are counted and sampled in one warning on stderr.

Exit codes: 0 done (with a warning when some lines were unreadable); 64 bad arguments or
--log-format; 65 no line of the input is an access-log entry, or the input is empty;
66 the input cannot be read; 69 the collector cannot be reached.";

/// Where the lines come from and how to read them: `explain`, `top` and `observe`.
#[derive(Debug, Clone, Default, Args)]
pub struct LogInput {
    /// Read Envoy/Istio access-log lines from this file (`-` = stdin) and work on them locally
    /// instead of asking the collector (no collector needed).
    #[arg(long, value_name = "PATH", conflicts_with = "lines")]
    pub input_file: Option<PathBuf>,
    /// One pasted access-log line (or a fragment of one) to read instead of asking the collector;
    /// repeat for several. Line breaks inside it are read as spaces (a line wrapped by a chat).
    #[arg(long = "line", value_name = "LINE")]
    pub lines: Vec<String>,
    /// Who wrote the lines and in which format.
    #[command(flatten)]
    pub source: LogSource,
}

/// Who wrote the lines and in which format: every command that reads them.
#[derive(Debug, Clone, Default, Args)]
pub struct LogSource {
    /// The pod whose proxy wrote the lines, so findings and next commands name it; a pod named
    /// by a line's `kubectl logs --prefix`/stern prefix wins for that line.
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,
    /// The proxy that wrote the lines as POD.NAMESPACE: the same as --pod POD -n NAMESPACE.
    #[arg(long, value_name = "POD.NAMESPACE", conflicts_with = "pod")]
    pub proxy: Option<String>,
    /// The access-log format the lines were written in, as an Envoy format string (your
    /// meshConfig accessLogFormat or Telemetry format, e.g. '[%START_TIME%] "%REQ(:METHOD)%
    /// %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% …'); tried
    /// before the built-in formats.
    #[arg(long, value_name = "FORMAT", env = "MESHWHY_LOG_FORMAT")]
    pub log_format: Option<String>,
}

impl LogInput {
    /// Whether lines were given (`--input-file` or `--line`).
    pub fn is_given(&self) -> bool {
        self.input_file.is_some() || !self.lines.is_empty()
    }

    /// The lines to read, or `None` to ask the collector. Flags that only describe a log are
    /// refused without one, so `--pod` is never mistaken for a filter.
    pub fn input(&self) -> Result<Option<Input>, CliError> {
        if let Some(path) = &self.input_file {
            return Ok(Some(Input::from_path(path)));
        }
        if !self.lines.is_empty() {
            return Ok(Some(Input::Lines(self.lines.clone())));
        }
        if let Some(flag) = [
            self.source.pod.as_ref().map(|_| "--pod"),
            self.source.proxy.as_ref().map(|_| "--proxy"),
        ]
        .into_iter()
        .flatten()
        .next()
        {
            return Err(CliError::Usage(format!(
                "{flag} names the proxy that wrote --input-file/--line lines and needs one of them; \
                 it does not filter the collector's records (`meshwhy records --pod POD` does)"
            )));
        }
        Ok(None)
    }
}

impl LogSource {
    /// The reader for these lines: the built-in formats, plus `--log-format` when given (a bad
    /// format string is a usage error, exit 64).
    pub fn reader(&self) -> Result<LogReader, CliError> {
        match &self.log_format {
            Some(format) => {
                LogReader::with_format(format).map_err(|error| CliError::Usage(error.to_string()))
            }
            None => Ok(LogReader::new()),
        }
    }
}

/// Where lines are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input (`-`).
    Stdin,
    /// A file.
    File(PathBuf),
    /// `--line` values, one line each.
    Lines(Vec<String>),
}

impl Input {
    /// `-` is stdin; anything else a file.
    pub fn from_path(path: &Path) -> Self {
        if path.as_os_str() == "-" {
            Self::Stdin
        } else {
            Self::File(path.to_owned())
        }
    }

    /// How messages name the input.
    pub fn name(&self) -> String {
        match self {
            Self::Stdin => "stdin".to_owned(),
            Self::File(path) => path.display().to_string(),
            Self::Lines(_) => "--line".to_owned(),
        }
    }

    /// Opens the input; a file that cannot be opened is exit 66.
    pub fn open(&self) -> Result<Box<dyn BufRead + Send>, CliError> {
        match self {
            Self::Stdin => Ok(Box::new(BufReader::new(std::io::stdin()))),
            Self::File(path) => {
                let file = std::fs::File::open(path).map_err(|source| CliError::Input {
                    path: self.name(),
                    source,
                })?;
                Ok(Box::new(BufReader::new(file)))
            }
            Self::Lines(lines) => {
                let mut text = String::new();
                for line in lines {
                    // One value is one line: a break inside it is a wrap, not a second line.
                    text.extend(
                        line.chars()
                            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
                    );
                    text.push('\n');
                }
                Ok(Box::new(Cursor::new(text.into_bytes())))
            }
        }
    }

    /// Reads every line of an opened input (see [`Input::open`]) with `reader`, calling `each`
    /// for every record. Only an I/O error fails (exit 66); unreadable lines are in the report.
    pub fn read_from(
        &self,
        source: impl BufRead,
        reader: &LogReader,
        each: impl FnMut(LogLine),
    ) -> Result<ReadReport, CliError> {
        read_lines(source, reader, each).map_err(|source| CliError::Input {
            path: self.name(),
            source,
        })
    }

    /// Opens and reads the input; see [`Input::read_from`].
    pub fn read(
        &self,
        reader: &LogReader,
        each: impl FnMut(LogLine),
    ) -> Result<ReadReport, CliError> {
        let source = self.open()?;
        self.read_from(source, reader, each)
    }
}

/// A reader that ends (reads as EOF) once `stop` is set: how a command stops reading an
/// endless pipe when it has nowhere left to send what it reads.
pub struct StopAt<R> {
    inner: R,
    stop: Rc<Cell<bool>>,
}

impl<R> StopAt<R> {
    /// `inner` until `stop` is set.
    pub fn new(inner: R, stop: Rc<Cell<bool>>) -> Self {
        Self { inner, stop }
    }
}

impl<R: BufRead> Read for StopAt<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.get() {
            return Ok(0);
        }
        self.inner.read(buf)
    }
}

impl<R: BufRead> BufRead for StopAt<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.stop.get() {
            return Ok(&[]);
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
    }
}

/// Longest run of blank lines skipped while looking for the first line.
const MAX_LEADING_BLANK_BYTES: usize = 64 * 1024;

/// Reads `input` up to the end of its first non-blank line (at most [`MAX_LINE_BYTES`] of it)
/// and returns the bytes consumed, to be read again in front of the rest (`Cursor::new(bytes)
/// .chain(input)` reads exactly the original stream), and that line, trimmed.
pub fn first_line(input: &mut impl BufRead) -> std::io::Result<(Vec<u8>, String)> {
    let mut consumed = Vec::new();
    let mut line_start = 0;
    loop {
        let (used, end_of_line) = {
            let available = match input.fill_buf() {
                Ok(bytes) => bytes,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if available.is_empty() {
                break;
            }
            let (chunk, end_of_line) = match available.iter().position(|&b| b == b'\n') {
                Some(end) => (&available[..=end], true),
                None => (available, false),
            };
            consumed.extend_from_slice(chunk);
            (chunk.len(), end_of_line)
        };
        input.consume(used);
        if end_of_line {
            if !consumed[line_start..].trim_ascii().is_empty() {
                break;
            }
            line_start = consumed.len();
            if line_start > MAX_LEADING_BLANK_BYTES {
                break;
            }
        } else if consumed.len() - line_start >= MAX_LINE_BYTES {
            break;
        }
    }
    let end = consumed.len().min(line_start + MAX_LINE_BYTES);
    let line = String::from_utf8_lossy(&consumed[line_start..end])
        .trim()
        .to_owned();
    Ok((consumed, line))
}

/// After a read: prints the warning about unreadable lines when some lines were read (exit 0
/// follows), or fails with one line (exit 65) when none were or the input was empty.
pub fn check(report: &ReadReport, input: &Input) -> Result<(), CliError> {
    let name = input.name();
    if report.read > 0 {
        if let Some(warning) = report.warning(&name) {
            eprintln!("meshwhy: {}", printable(&warning, true));
        }
        return Ok(());
    }
    Err(CliError::Data(nothing_read(report, input)))
}

/// The one line of exit 65.
fn nothing_read(report: &ReadReport, input: &Input) -> String {
    let name = input.name();
    if report.lines == 0 {
        let hint = if *input == Input::Stdin {
            " (was anything piped in? e.g. `kubectl logs POD -c istio-proxy | meshwhy explain --input-file -`)"
        } else {
            ""
        };
        return format!("{name} is empty: there are no access-log lines to read{hint}");
    }
    let sample = report
        .samples
        .first()
        .map(|sample| printable(sample, false))
        .unwrap_or_default();
    let what = if report.lines == 1 {
        format!("its one line is not an Envoy access-log entry (`{sample}`)")
    } else {
        format!(
            "none of its {} lines is an Envoy access-log entry (e.g. `{sample}`)",
            report.lines
        )
    };
    format!(
        "{name}: {what}; see `meshwhy explain --help` for the formats read, or pass --log-format"
    )
}

/// `text` with control characters escaped, so a binary sample cannot garble the terminal or
/// break the one-line message; line breaks kept only when `keep_newlines`.
fn printable(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\n' && keep_newlines {
            out.push(c);
        } else if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Who wrote the lines, from the flags; completed per line by [`Identity::proxy`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pod: Option<String>,
    namespace: String,
    workload: Option<String>,
}

impl Identity {
    /// From `--pod`/`--proxy`, the namespace (`-n`) and, for `ingest-logs`, `--workload`.
    /// `--proxy POD.NS` naming another namespace than `-n` is a usage error.
    pub fn new(
        source: &LogSource,
        namespace: Option<&str>,
        workload: Option<&str>,
    ) -> Result<Self, CliError> {
        let (pod, proxy_namespace) = match &source.proxy {
            Some(proxy) => {
                let (pod, namespace) = proxy.rsplit_once('.').unwrap_or((proxy, ""));
                (
                    Some(pod.to_owned()),
                    Some(namespace).filter(|ns| !ns.is_empty()),
                )
            }
            None => (source.pod.clone(), None),
        };
        let namespace = match (proxy_namespace, namespace) {
            (Some(from_proxy), Some(flag)) if from_proxy != flag => {
                return Err(CliError::Usage(format!(
                    "--proxy {} is in namespace {from_proxy:?} but -n says {flag:?}",
                    source.proxy.as_deref().unwrap_or_default()
                )));
            }
            (Some(namespace), _) | (None, Some(namespace)) => namespace.to_owned(),
            (None, None) => String::new(),
        };
        Ok(Self {
            pod: pod.filter(|pod| !pod.is_empty()),
            namespace,
            workload: workload.map(str::to_owned),
        })
    }

    /// The pod that wrote a line: the one its prefix named, else `--pod`, else none (empty).
    pub fn pod_of<'a>(&'a self, line_pod: Option<&'a str>) -> &'a str {
        line_pod
            .filter(|pod| !pod.is_empty())
            .or(self.pod.as_deref())
            .unwrap_or_default()
    }

    /// The proxy that wrote a line: the pod its prefix named, else `--pod`; the namespace from
    /// the flags; the workload from `--workload`, else the pod name without its ReplicaSet
    /// suffix.
    pub fn proxy(&self, line_pod: Option<&str>) -> ProxyIdentity {
        let pod = self.pod_of(line_pod);
        let workload = match &self.workload {
            Some(workload) => workload.clone(),
            None => workload_of(pod).to_owned(),
        };
        ProxyIdentity {
            pod: pod.to_owned(),
            namespace: self.namespace.clone(),
            workload,
            ..ProxyIdentity::default()
        }
    }
}

/// The Kubernetes random-suffix alphabet (`k8s.io/apimachinery/pkg/util/rand`): no vowels, no
/// 0/1/3, so generated suffixes never spell words.
const SUFFIX_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

/// The workload of a Deployment's pod, `name-<pod-template-hash>-<suffix>` → `name`
/// (`reviews-v1-545db77b95-22jzk` → `reviews-v1`); any other name is its own workload.
pub fn workload_of(pod: &str) -> &str {
    let mut parts = pod.rsplitn(3, '-');
    let (Some(suffix), Some(hash), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return pod;
    };
    let suffix_ok = suffix.len() == 5 && suffix.chars().all(|c| SUFFIX_ALPHABET.contains(c));
    // Template hashes were decimal before Kubernetes 1.8, safe-encoded since: 6 to 10 of either.
    let hash_ok = (6..=10).contains(&hash.len())
        && hash
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase());
    if suffix_ok && hash_ok && !name.is_empty() {
        name
    } else {
        pod
    }
}

/// Proxies met while reading, one identity per pod, in order of first appearance.
#[derive(Debug, Default)]
pub struct Proxies {
    /// The identities.
    pub list: Vec<ProxyIdentity>,
    by_pod: HashMap<String, usize>,
}

impl Proxies {
    /// The index of the proxy that wrote `line` (added when new).
    pub fn index(&mut self, identity: &Identity, line_pod: Option<&str>) -> usize {
        // Keyed by the pod it resolves to: a prefix naming the --pod pod is the same proxy.
        let key = identity.pod_of(line_pod);
        if let Some(&index) = self.by_pod.get(key) {
            return index;
        }
        self.list.push(identity.proxy(line_pod));
        self.by_pod.insert(key.to_owned(), self.list.len() - 1);
        self.list.len() - 1
    }
}

/// A whole input read into memory: what `explain` and `top` run the engine over.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The proxies that wrote the lines.
    pub proxies: Proxies,
    /// Each record with the index of its proxy.
    pub records: Vec<(usize, DecisionRecord)>,
    /// What reading found.
    pub report: ReadReport,
}

/// Reads all of `input` and [`check`]s the result.
pub fn load(input: &Input, source: &LogSource, identity: &Identity) -> Result<Loaded, CliError> {
    let reader = source.reader()?;
    let mut proxies = Proxies::default();
    let mut records = Vec::new();
    let report = input.read(&reader, |line| {
        let index = proxies.index(identity, line.pod.as_deref());
        records.push((index, line.record));
    })?;
    check(&report, input)?;
    Ok(Loaded {
        proxies,
        records,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_set_suffixes() {
        assert_eq!(workload_of("reviews-v1-545db77b95-22jzk"), "reviews-v1");
        assert_eq!(
            workload_of("istio-ingressgateway-5f9d8b8f7c-x7v2q"),
            "istio-ingressgateway"
        );
        assert_eq!(workload_of("frontend-3823415956-dkpgr"), "frontend");
        // Not two hashes: a StatefulSet or DaemonSet pod, a hand-named pod.
        assert_eq!(workload_of("productpage-v1-7d9c"), "productpage-v1-7d9c");
        assert_eq!(workload_of("web-0"), "web-0");
        assert_eq!(workload_of("node-agent-x7v2q"), "node-agent-x7v2q");
        assert_eq!(
            workload_of("my-app-web-abcde"),
            "my-app-web-abcde",
            "vowels"
        );
        assert_eq!(workload_of("545db77b95-22jzk"), "545db77b95-22jzk");
        assert_eq!(workload_of(""), "");
    }

    fn source(pod: Option<&str>, proxy: Option<&str>) -> LogSource {
        LogSource {
            pod: pod.map(str::to_owned),
            proxy: proxy.map(str::to_owned),
            log_format: None,
        }
    }

    #[test]
    fn identities() {
        let identity =
            Identity::new(&source(None, Some("productpage-v1-7d9c.shop")), None, None).unwrap();
        let proxy = identity.proxy(None);
        assert_eq!(
            (proxy.pod.as_str(), proxy.namespace.as_str()),
            ("productpage-v1-7d9c", "shop")
        );
        assert_eq!(proxy.workload, "productpage-v1-7d9c");
        // A line's prefix names its own pod; the namespace and workload rule stay.
        let prefixed = identity.proxy(Some("reviews-v1-545db77b95-22jzk"));
        assert_eq!(prefixed.pod, "reviews-v1-545db77b95-22jzk");
        assert_eq!(prefixed.workload, "reviews-v1");
        assert_eq!(prefixed.namespace, "shop");

        let flags = Identity::new(
            &source(Some("reviews-v1-545db77b95-22jzk"), None),
            Some("shop"),
            Some("reviews"),
        )
        .unwrap();
        assert_eq!(flags.proxy(None).workload, "reviews");
        assert_eq!(flags.proxy(None).namespace, "shop");

        assert_eq!(
            Identity::new(&LogSource::default(), None, None)
                .unwrap()
                .proxy(None),
            ProxyIdentity::default()
        );
        let same = Identity::new(&source(None, Some("p.shop")), Some("shop"), None);
        assert!(same.is_ok());
        let clash = Identity::new(&source(None, Some("p.shop")), Some("prod"), None).unwrap_err();
        assert_eq!(clash.exit_code(), crate::cli::EXIT_USAGE);
        assert!(clash.to_string().contains("\"shop\""), "{clash}");
    }

    #[test]
    fn proxies_are_one_per_pod() {
        let identity = Identity::new(&source(Some("a"), None), Some("shop"), None).unwrap();
        let mut proxies = Proxies::default();
        assert_eq!(proxies.index(&identity, None), 0);
        assert_eq!(proxies.index(&identity, Some("b")), 1);
        assert_eq!(proxies.index(&identity, None), 0);
        assert_eq!(proxies.index(&identity, Some("b")), 1);
        assert_eq!(
            proxies.index(&identity, Some("a")),
            0,
            "--pod's pod named by a prefix"
        );
        assert_eq!(proxies.index(&identity, Some("")), 0);
        assert_eq!(proxies.list.len(), 2);
        assert_eq!(proxies.list[0].pod, "a");
        assert_eq!(proxies.list[1].pod, "b");
    }

    #[test]
    fn lines_are_one_line_each() {
        let input = Input::Lines(vec!["a\nb".into(), "c\r\nd".into()]);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut input.open().unwrap(), &mut text).unwrap();
        assert_eq!(text, "a b\nc  d\n");
        assert_eq!(input.name(), "--line");
        assert_eq!(Input::from_path(Path::new("-")), Input::Stdin);
    }

    #[test]
    fn nothing_read_is_one_line() {
        let file = Input::File("x.log".into());
        let empty = ReadReport::default();
        assert_eq!(
            nothing_read(&empty, &file),
            "x.log is empty: there are no access-log lines to read"
        );
        assert!(nothing_read(&empty, &Input::Stdin).contains("piped"));
        let garbage = ReadReport {
            lines: 12,
            unreadable: 12,
            samples: vec!["\u{1b}[31mhello\tworld".into()],
            ..ReadReport::default()
        };
        let message = nothing_read(&garbage, &file);
        assert_eq!(
            message,
            "x.log: none of its 12 lines is an Envoy access-log entry (e.g. `\\u{1b}[31mhello\\tworld`); \
             see `meshwhy explain --help` for the formats read, or pass --log-format"
        );
        let error = check(&garbage, &file).unwrap_err();
        assert_eq!(error.exit_code(), crate::cli::EXIT_DATA_ERR);
        let one = ReadReport {
            lines: 1,
            unreadable: 1,
            samples: vec!["hello".into()],
            ..ReadReport::default()
        };
        assert!(
            nothing_read(&one, &Input::Lines(vec!["hello".into()]))
                .starts_with("--line: its one line is not an Envoy access-log entry (`hello`)")
        );
        let some = ReadReport {
            lines: 2,
            read: 1,
            unreadable: 1,
            samples: vec!["hello".into()],
            ..ReadReport::default()
        };
        assert!(check(&some, &file).is_ok());
    }

    #[test]
    fn first_line_is_read_again() {
        let text = b"\n  \r\nfirst line\r\nsecond\n";
        let mut input = &text[..];
        let (consumed, line) = first_line(&mut input).unwrap();
        assert_eq!(line, "first line");
        let mut again = Vec::new();
        Cursor::new(consumed)
            .chain(input)
            .read_to_end(&mut again)
            .unwrap();
        assert_eq!(again, text);

        let (consumed, line) = first_line(&mut &b""[..]).unwrap();
        assert!(consumed.is_empty() && line.is_empty());
        let long = vec![b'x'; MAX_LINE_BYTES * 2];
        let mut input = std::io::BufReader::with_capacity(1000, &long[..]);
        let (consumed, line) = first_line(&mut input).unwrap();
        assert_eq!(line.len(), MAX_LINE_BYTES);
        let mut again = consumed;
        input.read_to_end(&mut again).unwrap();
        assert_eq!(again, long);
    }

    #[test]
    fn stop_at_ends_the_read() {
        let stop = Rc::new(Cell::new(false));
        let mut reader = StopAt::new(&b"a\nb\n"[..], Rc::clone(&stop));
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "a\n");
        stop.set(true);
        line.clear();
        assert_eq!(reader.read_line(&mut line).unwrap(), 0);
    }

    #[test]
    fn pod_without_a_log_is_refused() {
        let input = LogInput {
            source: source(Some("a"), None),
            ..LogInput::default()
        };
        let error = input.input().unwrap_err();
        assert_eq!(error.exit_code(), crate::cli::EXIT_USAGE);
        assert!(error.to_string().starts_with("--pod names"), "{error}");
        assert_eq!(LogInput::default().input().unwrap(), None);
    }
}
