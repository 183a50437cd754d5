//! The filter arguments the query commands share (`records`, `explain`, `top`, `observe`) and
//! the one place they become request fields. Each command words and defaults them for itself
//! with `mut_arg` where it flattens them in, so `--help` still says what they mean there.

use std::time::{Duration, SystemTime};

use clap::Args;
use meshwhy_proto::v1 as pb;

use crate::time::{parse_duration, unix_nanos};

/// Namespace, window and size: what every query command filters on.
#[derive(Debug, Clone, Default, Args)]
pub struct Filters {
    /// Only records from proxies in this namespace.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Only records that started within this long before now, e.g. 30s, 15m, 2h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// At most this many records (the collector's default is 1000).
    #[arg(long)]
    pub limit: Option<u32>,
}

/// Whose failures and towards what: `explain` and `top`.
#[derive(Debug, Clone, Default, Args)]
pub struct Scope {
    /// Only failures recorded by this workload (either side of a hop).
    #[arg(long)]
    pub workload: Option<String>,
    /// Only failures towards this service (authority or cluster host, e.g. `reviews`).
    #[arg(long)]
    pub service: Option<String>,
}

/// What the records' outcome must be: `records` and `observe`.
#[derive(Debug, Clone, Default, Args)]
pub struct Outcome {
    /// Only records with this HTTP status.
    #[arg(long)]
    pub code: Option<u32>,
    /// Only records carrying this response flag (UF, URX, NR…; `bit<N>` for raw bits).
    /// Repeat or separate with commas: all must be set.
    #[arg(long = "flag", value_name = "FLAG", value_delimiter = ',', value_parser = parse_flag)]
    pub flags: Vec<u64>,
}

impl Outcome {
    /// `--code` as the wire has it: 0 = any.
    pub fn response_code(&self) -> u32 {
        self.code.unwrap_or(0)
    }

    /// Every `--flag` bit, all of which must be set.
    pub fn flags_all(&self) -> u64 {
        self.flags.iter().fold(0, |all, flag| all | flag)
    }
}

/// A `--flag` value: a short flag name or `bit<N>`.
pub(crate) fn parse_flag(name: &str) -> Result<u64, String> {
    crate::flags::parse(name).ok_or_else(|| {
        format!(
            "unknown response flag {name:?}; valid: {} (or bit<N>)",
            crate::flags::valid_names()
        )
    })
}

/// `-n` of `explain` and `top`.
pub(crate) const SCOPE_NAMESPACE_HELP: &str = "Only failures recorded in this namespace (either side of a hop). With --input-file/--line: also the namespace of the proxies that wrote the lines (a line does not carry one), so every line is in it";
/// `--since` of `explain` and `top`.
pub(crate) const SCOPE_SINCE_HELP: &str = "How far back to look, e.g. 30s, 15m, 2h; 0s = everything stored. Default: 15m from the collector, the whole input with --input-file/--line";

impl Filters {
    /// `-n` as the wire has it: empty = any.
    pub fn namespace(&self) -> String {
        self.namespace.clone().unwrap_or_default()
    }

    /// The window's start in ns since the Unix epoch, `--since` (else `default`) before `now`;
    /// 0 (no bound) when neither is given or the duration is zero (`0s` = everything stored).
    pub fn since_unix_nanos(&self, now: SystemTime, default: Option<Duration>) -> u64 {
        match self.since.or(default) {
            Some(since) => since_unix_nanos(since, now),
            None => 0,
        }
    }

    /// The Explain request of `explain` and `top`: `default_window` applies when `--since` is
    /// not given (`None` for a log, which is read whole); `request_id` is `explain`'s.
    pub fn explain_request(
        &self,
        scope: &Scope,
        request_id: Option<&str>,
        default_window: Option<Duration>,
        now: SystemTime,
    ) -> pb::ExplainRequest {
        pb::ExplainRequest {
            namespace: self.namespace(),
            workload: scope.workload.clone().unwrap_or_default(),
            service: scope.service.clone().unwrap_or_default(),
            since_unix_nanos: self.since_unix_nanos(now, default_window),
            request_id: request_id.unwrap_or_default().to_owned(),
            // Commands that take `--limit` give it a default; 0 is the engine's "no findings".
            limit: self.limit.unwrap_or(0),
        }
    }
}

/// `now - since` in ns since the Unix epoch; 0 (no bound) for a zero duration.
pub(crate) fn since_unix_nanos(since: Duration, now: SystemTime) -> u64 {
    if since.is_zero() {
        return 0;
    }
    unix_nanos(now.checked_sub(since).unwrap_or(SystemTime::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_start() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let filters = Filters::default();
        assert_eq!(filters.since_unix_nanos(now, None), 0);
        assert_eq!(
            filters.since_unix_nanos(now, Some(Duration::from_secs(60))),
            40_000_000_000
        );
        let everything = Filters {
            since: Some(Duration::ZERO),
            ..Filters::default()
        };
        assert_eq!(
            everything.since_unix_nanos(now, Some(Duration::from_secs(60))),
            0
        );
        let long_ago = Filters {
            since: Some(Duration::from_secs(1_000)),
            ..Filters::default()
        };
        assert_eq!(
            long_ago.since_unix_nanos(now, None),
            0,
            "clamped at the epoch"
        );
    }
}
