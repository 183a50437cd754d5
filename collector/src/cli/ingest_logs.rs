//! `meshwhy ingest-logs FILE|-`: Envoy/Istio access-log lines loaded into a running collector
//! over the filters' own `Ingest.Push`, so history, hop joins and the counter rules work on them.
//!
//! Each pod's lines are sent as one proxy instance: failures as records, successful requests as
//! success counters (as the filter sends them), in batches of at most [`MAX_BATCH_RECORDS`]
//! records numbered 1, 2, 3… The instance id is derived from the pod, the namespace and the
//! input's first line, so loading the same file again sends the same (instance, sequence) pairs
//! and the collector applies them once. A file that has grown since it was loaded shares that
//! id: its batches up to the old end are duplicates, and the one batch that straddles the old end
//! keeps only what it held then.
//!
//! Reading runs on its own thread (stdin may block for as long as a `kubectl logs -f` runs) and
//! hands finished batches to the pusher through a small bounded channel, so a slow collector
//! slows the reading instead of growing memory.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Cursor, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use meshwhy_proto::v1::ingest_client::IngestClient;
use meshwhy_proto::v1::{Counter, DecisionRecord, ProxyIdentity, PushRequest};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic_prost::prost::Message as _;

use super::explain::DEFAULT_WINDOW;
use super::logs::{self, FORMATS_HELP, Identity, Input, LogSource};
use super::{CliError, connect_ingest};
use crate::logread::{LogLine, ReadReport};
use crate::time::{format_rfc3339, unix_nanos};

/// Most records in one Push batch.
pub const MAX_BATCH_RECORDS: usize = 1000;
/// A batch is also sent once its records reach this many bytes: 1000 records cut from 64 KiB
/// lines would come near the collector's message limit.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Finished batches waiting for the pusher.
const BATCHES_IN_FLIGHT: usize = 4;
/// First wait before a batch the collector refused as saturated is sent again.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
/// Longest wait between two tries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);
/// How long a saturated collector is waited for before giving up.
const SATURATED_PATIENCE: Duration = Duration::from_secs(60);

/// The input and who wrote it.
#[derive(Debug, Args)]
#[command(after_long_help = FORMATS_HELP)]
pub struct IngestLogsArgs {
    /// The access log to load (`-` = stdin), e.g. the output of `kubectl logs POD -c istio-proxy`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Who wrote the lines and in which format.
    #[command(flatten)]
    pub source: LogSource,
    /// The namespace of the pods that wrote the lines (a line does not carry one).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The workload of the pods that wrote the lines. Default: each pod's name without its
    /// ReplicaSet suffix (`reviews-v1-545db77b95-22jzk` → `reviews-v1`).
    #[arg(long)]
    pub workload: Option<String>,
}

/// From the reading thread to the pusher.
enum Message {
    // Boxed: a batch is large and the channel holds a few.
    Batch(Box<Batch>),
    Done(Result<ReadReport, CliError>),
}

/// One Push and what it carries.
struct Batch {
    request: PushRequest,
    successes: u64,
}

/// What the collector did with the batches.
#[derive(Debug, Default)]
struct Totals {
    records: u64,
    successes: u64,
    duplicate_records: u64,
    duplicate_successes: u64,
    batches: u64,
    newest_start_unix_nanos: u64,
}

/// Reads, pushes, prints one summary line.
pub(crate) async fn run(collector: &str, args: IngestLogsArgs) -> Result<(), CliError> {
    // Everything that can be refused is refused before the collector is contacted.
    args.source.reader()?;
    let identity = Identity::new(
        &args.source,
        args.namespace.as_deref(),
        args.workload.as_deref(),
    )?;
    let input = Input::from_path(&args.file);
    let opened = input.open()?;
    let mut client = connect_ingest(collector).await?;

    let (sender, mut receiver) = mpsc::channel(BATCHES_IN_FLIGHT);
    let reading = input.clone();
    let source = args.source.clone();
    // A plain thread, not spawn_blocking: a read blocked on a pipe must not hold up the exit.
    std::thread::spawn(move || {
        let result = read_batches(&reading, opened, &source, identity, &sender);
        let _ = sender.blocking_send(Message::Done(result));
    });

    let mut totals = Totals::default();
    let mut proxies: Vec<ProxyIdentity> = Vec::new();
    let report = loop {
        match receiver.recv().await {
            Some(Message::Batch(batch)) => {
                if let Some(proxy) = &batch.request.proxy
                    && !proxies
                        .iter()
                        .any(|known| known.instance_id == proxy.instance_id)
                {
                    proxies.push(proxy.clone());
                }
                push(&mut client, collector, *batch, &mut totals).await?;
            }
            Some(Message::Done(result)) => break result?,
            None => {
                return Err(CliError::Input {
                    path: input.name(),
                    source: std::io::Error::other("the reading thread stopped"),
                });
            }
        }
    };
    logs::check(&report, &input)?;
    println!(
        "{}",
        summary(&input.name(), collector, &report, &totals, &proxies)
    );
    let window_start = unix_nanos(
        SystemTime::now()
            .checked_sub(DEFAULT_WINDOW)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    );
    if totals.newest_start_unix_nanos != 0 && totals.newest_start_unix_nanos < window_start {
        eprintln!(
            "meshwhy: the newest line is from {}, before the last 15 minutes that `meshwhy explain` looks at by default: use `meshwhy explain --since 0s`",
            format_rfc3339(totals.newest_start_unix_nanos)
        );
    }
    Ok(())
}

/// `NAME: loaded …` — records, successes, duplicates, unreadable lines, the proxies.
fn summary(
    name: &str,
    collector: &str,
    report: &ReadReport,
    totals: &Totals,
    proxies: &[ProxyIdentity],
) -> String {
    const NAMED: usize = 3;
    let mut named: Vec<String> = proxies
        .iter()
        .take(NAMED)
        .map(
            |proxy| match (proxy.pod.is_empty(), proxy.namespace.is_empty()) {
                (true, _) => "an unnamed pod".to_owned(),
                (false, true) => proxy.pod.clone(),
                (false, false) => format!("{}.{}", proxy.pod, proxy.namespace),
            },
        )
        .collect();
    if proxies.len() > NAMED {
        named.push(format!("{} more", proxies.len() - NAMED));
    }
    let proxies_text = match proxies.len() {
        0 => "no proxy".to_owned(),
        1 => format!("1 proxy: {}", named.join(", ")),
        n => format!("{n} proxies: {}", named.join(", ")),
    };
    format!(
        "{name}: loaded {} failure records and {} successful requests ({proxies_text}) into {collector}; \
         already loaded before: {} records and {} successes; unreadable: {} of {} lines{}",
        totals.records,
        totals.successes,
        totals.duplicate_records,
        totals.duplicate_successes,
        report.unreadable,
        report.lines,
        match report.proxy_log {
            0 => String::new(),
            n => format!(", and {n} of the proxy's own log"),
        }
    )
}

/// Pushes one batch, waiting out a saturated collector (the same sequence number: a retry is
/// never applied twice).
async fn push(
    client: &mut IngestClient<Channel>,
    collector: &str,
    batch: Batch,
    totals: &mut Totals,
) -> Result<(), CliError> {
    let started = Instant::now();
    let mut delay = FIRST_RETRY_DELAY;
    let response = loop {
        match client.push(batch.request.clone()).await {
            Ok(response) => break response.into_inner(),
            Err(status)
                if status.code() == tonic::Code::ResourceExhausted
                    && started.elapsed() < SATURATED_PATIENCE =>
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(status) => return Err(CliError::from_status(collector, status)),
        }
    };
    let records = batch.request.records.len() as u64;
    totals.batches += 1;
    if response.duplicate {
        totals.duplicate_records += records;
        totals.duplicate_successes += batch.successes;
    } else {
        totals.records += records;
        totals.successes += batch.successes;
    }
    if let Some(newest) = batch
        .request
        .records
        .iter()
        .map(|record| record.start_time_unix_nanos)
        .max()
    {
        totals.newest_start_unix_nanos = totals.newest_start_unix_nanos.max(newest);
    }
    Ok(())
}

/// The reading thread: every line into its pod's batch, each batch handed over when full, the
/// rest at the end.
fn read_batches(
    input: &Input,
    mut opened: Box<dyn BufRead + Send>,
    source: &LogSource,
    identity: Identity,
    sender: &mpsc::Sender<Message>,
) -> Result<ReadReport, CliError> {
    let reader = source.reader()?;
    let (consumed, first) = logs::first_line(&mut opened).map_err(|source| CliError::Input {
        path: input.name(),
        source,
    })?;
    let stop = std::rc::Rc::new(std::cell::Cell::new(false));
    let stream = logs::StopAt::new(Cursor::new(consumed).chain(opened), stop.clone());
    let mut batcher = Batcher::new(identity, first);
    let hand_over = |batch: Batch| {
        // The pusher failed and is gone: stop reading.
        if sender
            .blocking_send(Message::Batch(Box::new(batch)))
            .is_err()
        {
            stop.set(true);
        }
    };
    let report = input.read_from(stream, &reader, |line| {
        if let Some(batch) = batcher.add(line) {
            hand_over(batch);
        }
    })?;
    for batch in batcher.finish() {
        hand_over(batch);
    }
    Ok(report)
}

/// What a counter is keyed by: the filter's (route, cluster, code) and the provenance it carries.
type CounterKey = (String, String, u32, String, String, String, String);

/// One pod's instance and what it has not sent yet.
struct Pending {
    proxy: ProxyIdentity,
    next_sequence: u64,
    records: Vec<DecisionRecord>,
    bytes: usize,
    counters: BTreeMap<CounterKey, u64>,
}

impl Pending {
    fn take(&mut self) -> Batch {
        let counters: Vec<Counter> = std::mem::take(&mut self.counters)
            .into_iter()
            .map(
                |(
                    (
                        route_name,
                        cluster,
                        response_code,
                        virtual_host,
                        route_provenance,
                        cluster_provenance,
                        cluster_subset,
                    ),
                    count,
                )| Counter {
                    route_name,
                    cluster,
                    response_code,
                    count,
                    route_provenance,
                    cluster_provenance,
                    cluster_subset,
                    virtual_host,
                },
            )
            .collect();
        let successes = counters.iter().map(|counter| counter.count).sum();
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.bytes = 0;
        Batch {
            request: PushRequest {
                proxy: Some(self.proxy.clone()),
                sequence,
                records: std::mem::take(&mut self.records),
                counters,
                dropped_records: 0,
                dropped_counter_keys: 0,
                sent_time_unix_nanos: unix_nanos(SystemTime::now()),
            },
            successes,
        }
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.counters.is_empty()
    }
}

/// Lines into per-pod batches; deterministic for a given input (the same batches, in the same
/// order, every time), which is what makes a second load a no-op.
struct Batcher {
    identity: Identity,
    first_line: String,
    pods: Vec<Pending>,
    /// Keyed by the pod a line resolves to (see [`Identity::pod_of`]): one instance per pod.
    by_pod: HashMap<String, usize>,
}

impl Batcher {
    fn new(identity: Identity, first_line: String) -> Self {
        Self {
            identity,
            first_line,
            pods: Vec::new(),
            by_pod: HashMap::new(),
        }
    }

    /// Adds a line; a batch when its pod's is full.
    fn add(&mut self, line: LogLine) -> Option<Batch> {
        let pod = self.identity.pod_of(line.pod.as_deref());
        let index = match self.by_pod.get(pod) {
            Some(&index) => index,
            None => {
                let pod = pod.to_owned();
                let mut proxy = self.identity.proxy(line.pod.as_deref());
                proxy.instance_id = instance_id(&proxy, &self.first_line);
                self.pods.push(Pending {
                    proxy,
                    next_sequence: 1,
                    records: Vec::new(),
                    bytes: 0,
                    counters: BTreeMap::new(),
                });
                self.by_pod.insert(pod, self.pods.len() - 1);
                self.pods.len() - 1
            }
        };
        let pending = &mut self.pods[index];
        let record = line.record;
        if !crate::explain::is_failure(&record) {
            // The filter counts successes instead of recording them; so does a loaded log.
            let key = (
                record.route_name,
                record.cluster,
                record.response_code,
                record.virtual_host,
                record.route_provenance,
                record.cluster_provenance,
                record.cluster_subset,
            );
            *pending.counters.entry(key).or_default() += 1;
            return None;
        }
        pending.bytes += record.encoded_len();
        pending.records.push(record);
        (pending.records.len() >= MAX_BATCH_RECORDS || pending.bytes >= MAX_BATCH_BYTES)
            .then(|| pending.take())
    }

    /// Every pod's remainder, in the order the pods first appeared.
    fn finish(mut self) -> Vec<Batch> {
        self.pods
            .iter_mut()
            .filter(|pending| !pending.is_empty())
            .map(Pending::take)
            .collect()
    }
}

/// `log-` and 16 hex digits of a stable hash (FNV-1a, 64 bits) of the pod, the namespace and the
/// input's first line: the same for the same file and pod on every run and every machine.
fn instance_id(proxy: &ProxyIdentity, first_line: &str) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in [&proxy.pod, &proxy.namespace, first_line] {
        // 0xff never occurs in UTF-8: the parts cannot run into each other.
        for &byte in part.as_bytes().iter().chain(&[0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("log-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use meshwhy_proto::v1::Direction;

    use super::*;
    use crate::logread::LogLine;

    fn line(pod: Option<&str>, code: u32, flags: u64) -> LogLine {
        LogLine {
            record: DecisionRecord {
                direction: Direction::Outbound as i32,
                response_code: code,
                response_flags: flags,
                cluster: "outbound|9080||reviews.shop.svc.cluster.local".into(),
                route_name: "default".into(),
                sampled_success: code == 200 && flags == 0,
                ..Default::default()
            },
            pod: pod.map(str::to_owned),
        }
    }

    fn identity() -> Identity {
        let source = LogSource {
            pod: Some("productpage-v1-545db77b95-22jzk".into()),
            ..LogSource::default()
        };
        Identity::new(&source, Some("shop"), None).unwrap()
    }

    #[test]
    fn instance_ids_are_stable_and_distinct() {
        let a = identity().proxy(None);
        let id = instance_id(&a, "first");
        assert_eq!(id, instance_id(&a, "first"));
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("log-"));
        assert_ne!(id, instance_id(&a, "other"));
        let b = identity().proxy(Some("reviews-v1-5d8c9b7f4d-x7v2q"));
        assert_ne!(id, instance_id(&b, "first"));
        // The pieces are kept apart: ("ab", "c") is not ("a", "bc").
        let mut ab = a.clone();
        ab.pod = "ab".into();
        ab.namespace = "c".into();
        let mut a_bc = a;
        a_bc.pod = "a".into();
        a_bc.namespace = "bc".into();
        assert_ne!(instance_id(&ab, ""), instance_id(&a_bc, ""));
    }

    #[test]
    fn batches_per_pod_with_numbered_sequences() {
        let mut batcher = Batcher::new(identity(), "first".into());
        let mut full = Vec::new();
        for _ in 0..MAX_BATCH_RECORDS + 1 {
            full.extend(batcher.add(line(None, 503, 1 << 5)));
        }
        batcher.add(line(None, 200, 0));
        batcher.add(line(None, 200, 0));
        batcher.add(line(Some("reviews-v1-5d8c9b7f4d-x7v2q"), 200, 0));
        // A prefix naming --pod's own pod is the same instance, not a second one with its id.
        batcher.add(line(Some("productpage-v1-545db77b95-22jzk"), 200, 0));
        assert_eq!(full.len(), 1);
        assert_eq!(full[0].request.records.len(), MAX_BATCH_RECORDS);
        assert_eq!(full[0].request.sequence, 1);
        let rest = batcher.finish();
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0].request.sequence, 2);
        assert_eq!(rest[0].request.records.len(), 1);
        assert_eq!(rest[0].successes, 3);
        assert_eq!(rest[0].request.counters.len(), 1);
        assert_eq!(rest[0].request.counters[0].count, 3);
        assert_eq!(rest[0].request.counters[0].route_name, "default");
        let first = full[0].request.proxy.as_ref().unwrap();
        assert_eq!(first.pod, "productpage-v1-545db77b95-22jzk");
        assert_eq!(first.workload, "productpage-v1");
        assert_eq!(first.namespace, "shop");
        let other = rest[1].request.proxy.as_ref().unwrap();
        assert_eq!(other.pod, "reviews-v1-5d8c9b7f4d-x7v2q");
        assert_eq!(other.workload, "reviews-v1");
        assert_ne!(other.instance_id, first.instance_id);
        assert_eq!(rest[1].request.sequence, 1, "sequences are per instance");
        assert!(rest[1].request.records.is_empty());
        // Every batch passes the collector's own validation.
        for batch in full.iter().chain(&rest) {
            crate::ingest::validate(batch.request.clone(), MAX_BATCH_RECORDS).unwrap();
        }
    }

    #[test]
    fn summary_line() {
        let proxies = vec![identity().proxy(None)];
        let report = ReadReport {
            lines: 8,
            read: 7,
            unreadable: 1,
            ..ReadReport::default()
        };
        let totals = Totals {
            records: 4,
            successes: 3,
            ..Totals::default()
        };
        assert_eq!(
            summary("x.log", "http://c:1", &report, &totals, &proxies),
            "x.log: loaded 4 failure records and 3 successful requests (1 proxy: \
             productpage-v1-545db77b95-22jzk.shop) into http://c:1; already loaded before: \
             0 records and 0 successes; unreadable: 1 of 8 lines"
        );
    }
}
