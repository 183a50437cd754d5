//! Collector settings with their defaults, validated before anything is bound or spawned.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Default gRPC listen address of `meshwhy-collector`.
pub const DEFAULT_GRPC_ADDR: &str = "0.0.0.0:9900";
/// Default HTTP listen address of `/metrics`, `/healthz` and `/readyz`.
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9901";
/// Default number of decision records kept in memory; the oldest are evicted first.
pub const DEFAULT_MAX_RECORDS: usize = 200_000;
/// Default number of Push batches that may wait for the aggregator before pushes are refused.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Default number of queries that may wait for the aggregator before queries are refused.
pub const DEFAULT_QUERY_QUEUE_CAPACITY: usize = 64;
/// Default largest batch accepted, in records; bigger batches get INVALID_ARGUMENT.
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 10_000;
/// Default largest gRPC message accepted, in bytes: a full batch of long records exceeds
/// tonic's 4 MiB default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Default `--store` of the `meshwhy-collector` binary: durable, so history survives restarts.
/// ([`StoreConfig::default`] stays in memory: what embedding code and tests start.)
pub const DEFAULT_STORE: &str = "sqlite";
/// Default `--data-dir`, relative to the working directory: where the durable store keeps its file.
pub const DEFAULT_DATA_DIR: &str = "meshwhy-data";
/// Default `--retention`: records and counts older than this are deleted from the durable store.
pub const DEFAULT_RETENTION: &str = "24h";
/// Default `--max-db-size`: the oldest records are deleted while the file's data exceeds it.
pub const DEFAULT_MAX_DB_SIZE: &str = "2GiB";

/// Which store keeps the collector's records (`--store`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreKind {
    /// In memory only: a restart forgets everything.
    #[default]
    Memory,
    /// One SQLite file under `--data-dir`: history survives restarts.
    Sqlite,
}

/// Parses `--store`.
pub fn parse_store(value: &str) -> Result<StoreKind, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "memory" => Ok(StoreKind::Memory),
        "sqlite" => Ok(StoreKind::Sqlite),
        _ => Err(ConfigError::Invalid {
            setting: STORE,
            value: value.to_owned(),
            expected: "memory or sqlite",
        }),
    }
}

/// `24h` → (24, `h`), `2 GiB` → (2, `GiB`), `90` → (90, ``); `None` without leading digits.
fn number_and_unit(value: &str) -> Option<(u64, &str)> {
    let trimmed = value.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    Some((number.parse().ok()?, unit.trim()))
}

/// Parses a duration such as `24h`, `90m`, `7d`, `30s` (a bare number is seconds) into
/// nanoseconds; `0` turns the limit off.
pub fn parse_duration(setting: Setting, value: &str) -> Result<u64, ConfigError> {
    let invalid = || ConfigError::Invalid {
        setting,
        value: value.to_owned(),
        expected: "a duration such as 24h, 90m, 7d or 30s (0 keeps everything)",
    };
    let (number, unit) = number_and_unit(value).ok_or_else(invalid)?;
    let seconds: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(seconds)
        .and_then(|s| s.checked_mul(1_000_000_000))
        .ok_or_else(invalid)
}

/// Parses a size such as `2GiB`, `500MB`, `64MiB` or a byte count; `0` turns the limit off.
pub fn parse_size(setting: Setting, value: &str) -> Result<u64, ConfigError> {
    let invalid = || ConfigError::Invalid {
        setting,
        value: value.to_owned(),
        expected: "a size such as 2GiB, 500MiB, 1GB or a byte count (0 keeps everything)",
    };
    let (number, unit) = number_and_unit(value).ok_or_else(invalid)?;
    let unit = unit.to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return Err(invalid()),
    };
    number.checked_mul(multiplier).ok_or_else(invalid)
}

/// Which store the collector opens, and the durable store's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Memory or SQLite.
    pub kind: StoreKind,
    /// Directory of the SQLite file (created if missing).
    pub data_dir: PathBuf,
    /// Age past which the SQLite store deletes records and counts, ns; 0 keeps everything.
    pub retention_nanos: u64,
    /// Data size past which the SQLite store deletes the oldest records, bytes; 0 = no limit.
    pub max_db_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::default(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            retention_nanos: 24 * 3600 * 1_000_000_000,
            max_db_bytes: 2 << 30,
        }
    }
}

/// Everything the collector library needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    /// Which store keeps records, counters and proxies.
    pub store: StoreConfig,
    /// In-memory cap on stored records; the oldest are evicted first and evictions counted.
    pub max_records: usize,
    /// Push batches that may wait for the aggregator; when full, Push gets RESOURCE_EXHAUSTED.
    pub queue_capacity: usize,
    /// Queries that may wait for the aggregator; kept apart so a flood of pushes never starves
    /// the on-call engineer's query.
    pub query_queue_capacity: usize,
    /// Largest batch accepted, in records.
    pub max_batch_records: usize,
    /// Largest gRPC message decoded, in bytes.
    pub max_message_bytes: usize,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            store: StoreConfig::default(),
            max_records: DEFAULT_MAX_RECORDS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            query_queue_capacity: DEFAULT_QUERY_QUEUE_CAPACITY,
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

impl CollectorConfig {
    /// Checks every field; the error names the field and says what would be accepted.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_records", self.max_records),
            ("queue_capacity", self.queue_capacity),
            ("query_queue_capacity", self.query_queue_capacity),
            ("max_batch_records", self.max_batch_records),
            ("max_message_bytes", self.max_message_bytes),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        Ok(())
    }
}

/// A setting that is exposed as a command-line flag and an environment variable, so errors can
/// name both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The command-line flag, e.g. `--max-records`.
    pub flag: &'static str,
    /// The environment variable, e.g. `MESHWHY_MAX_RECORDS`.
    pub env: &'static str,
}

/// `--grpc-addr` / `MESHWHY_GRPC_ADDR`.
pub const GRPC_ADDR: Setting = Setting {
    flag: "--grpc-addr",
    env: "MESHWHY_GRPC_ADDR",
};
/// `--metrics-addr` / `MESHWHY_METRICS_ADDR`.
pub const METRICS_ADDR: Setting = Setting {
    flag: "--metrics-addr",
    env: "MESHWHY_METRICS_ADDR",
};
/// `--max-records` / `MESHWHY_MAX_RECORDS`.
pub const MAX_RECORDS: Setting = Setting {
    flag: "--max-records",
    env: "MESHWHY_MAX_RECORDS",
};
/// `--queue-capacity` / `MESHWHY_QUEUE_CAPACITY`.
pub const QUEUE_CAPACITY: Setting = Setting {
    flag: "--queue-capacity",
    env: "MESHWHY_QUEUE_CAPACITY",
};

/// `--store` / `MESHWHY_STORE`.
pub const STORE: Setting = Setting {
    flag: "--store",
    env: "MESHWHY_STORE",
};
/// `--data-dir` / `MESHWHY_DATA_DIR`.
pub const DATA_DIR: Setting = Setting {
    flag: "--data-dir",
    env: "MESHWHY_DATA_DIR",
};
/// `--retention` / `MESHWHY_RETENTION`.
pub const RETENTION: Setting = Setting {
    flag: "--retention",
    env: "MESHWHY_RETENTION",
};
/// `--max-db-size` / `MESHWHY_MAX_DB_SIZE`.
pub const MAX_DB_SIZE: Setting = Setting {
    flag: "--max-db-size",
    env: "MESHWHY_MAX_DB_SIZE",
};

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A field that must be at least 1 is 0.
    #[error("{field} must be at least 1")]
    Zero {
        /// The `CollectorConfig` field.
        field: &'static str,
    },
    /// A flag or environment variable has a value that does not parse or is out of range.
    #[error("invalid {} (env {}) value {value:?}: expected {expected}", setting.flag, setting.env)]
    Invalid {
        /// Which setting.
        setting: Setting,
        /// The value given.
        value: String,
        /// What would be accepted, as advice to the user.
        expected: &'static str,
    },
}

/// Parses the gRPC listen address: `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT` (resolved once, now).
pub fn parse_listen_addr(value: &str) -> Result<SocketAddr, ConfigError> {
    parse_addr(GRPC_ADDR, value)
}

/// Parses the listen address of `setting` (see [`parse_listen_addr`]); errors name `setting`.
pub fn parse_addr(setting: Setting, value: &str) -> Result<SocketAddr, ConfigError> {
    let invalid = || ConfigError::Invalid {
        setting,
        value: value.to_owned(),
        expected: "HOST:PORT such as 0.0.0.0:9900 or 127.0.0.1:0",
    };
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // Only try name resolution for things shaped like host:port, so "nonsense" fails fast
    // without a DNS lookup.
    let (host, port) = value.rsplit_once(':').ok_or_else(invalid)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(invalid());
    }
    value
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(invalid)
}

/// Parses a count that must be at least 1.
pub fn parse_count(setting: Setting, value: &str) -> Result<usize, ConfigError> {
    match value.trim().replace('_', "").parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::Invalid {
            setting,
            value: value.to_owned(),
            expected: "a whole number of at least 1",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(CollectorConfig::default().validate(), Ok(()));
        assert_eq!(CollectorConfig::default().max_records, 200_000);
        assert_eq!(CollectorConfig::default().queue_capacity, 1024);
        assert_eq!(CollectorConfig::default().max_batch_records, 10_000);
    }

    #[test]
    fn zero_fields_are_named() {
        let config = CollectorConfig {
            queue_capacity: 0,
            ..CollectorConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err.to_string(), "queue_capacity must be at least 1");
    }

    #[test]
    fn listen_addr_forms() {
        assert_eq!(
            parse_listen_addr("0.0.0.0:9900").unwrap(),
            "0.0.0.0:9900".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("[::1]:0").unwrap(),
            "[::1]:0".parse().unwrap()
        );
        assert!(
            parse_listen_addr("localhost:9900")
                .unwrap()
                .ip()
                .is_loopback()
        );
        for bad in ["nonsense", ":9900", "127.0.0.1:99999", "127.0.0.1", ""] {
            let err = parse_listen_addr(bad).unwrap_err();
            let message = err.to_string();
            assert!(message.contains("--grpc-addr"), "{message}");
            assert!(message.contains("MESHWHY_GRPC_ADDR"), "{message}");
        }
    }

    #[test]
    fn metrics_addr_errors_name_their_setting() {
        assert_eq!(
            parse_addr(METRICS_ADDR, "127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        let message = parse_addr(METRICS_ADDR, "nonsense")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("--metrics-addr (env MESHWHY_METRICS_ADDR)"),
            "{message}"
        );
    }

    #[test]
    fn store_defaults_match_the_flag_defaults() {
        let store = StoreConfig::default();
        // The library's default stays in memory; the binary's flag default is durable.
        assert_eq!(store.kind, StoreKind::Memory);
        assert_eq!(parse_store(DEFAULT_STORE), Ok(StoreKind::Sqlite));
        assert_eq!(
            parse_duration(RETENTION, DEFAULT_RETENTION),
            Ok(store.retention_nanos)
        );
        assert_eq!(
            parse_size(MAX_DB_SIZE, DEFAULT_MAX_DB_SIZE),
            Ok(store.max_db_bytes)
        );
    }

    #[test]
    fn store_durations_and_sizes() {
        assert_eq!(parse_store("SQLite"), Ok(StoreKind::Sqlite));
        assert_eq!(parse_store("memory"), Ok(StoreKind::Memory));
        let message = parse_store("postgres").unwrap_err().to_string();
        assert!(message.contains("--store (env MESHWHY_STORE)"), "{message}");
        let hour = 3_600_000_000_000;
        assert_eq!(parse_duration(RETENTION, "24h"), Ok(24 * hour));
        assert_eq!(parse_duration(RETENTION, "90m"), Ok(90 * 60_000_000_000));
        assert_eq!(parse_duration(RETENTION, "7d"), Ok(7 * 24 * hour));
        assert_eq!(parse_duration(RETENTION, "30"), Ok(30_000_000_000));
        assert_eq!(parse_duration(RETENTION, "0"), Ok(0));
        for bad in ["", "h", "24x", "-1h", "99999999999999999d"] {
            let message = parse_duration(RETENTION, bad).unwrap_err().to_string();
            assert!(
                message.contains("--retention (env MESHWHY_RETENTION)"),
                "{message}"
            );
        }
        assert_eq!(parse_size(MAX_DB_SIZE, "2GiB"), Ok(2 << 30));
        assert_eq!(parse_size(MAX_DB_SIZE, "500MB"), Ok(500_000_000));
        assert_eq!(parse_size(MAX_DB_SIZE, "4096"), Ok(4096));
        for bad in ["", "GiB", "2 gibibytes", "1.5GiB"] {
            let message = parse_size(MAX_DB_SIZE, bad).unwrap_err().to_string();
            assert!(
                message.contains("--max-db-size (env MESHWHY_MAX_DB_SIZE)"),
                "{message}"
            );
        }
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count(MAX_RECORDS, "200_000"), Ok(200_000));
        assert_eq!(parse_count(MAX_RECORDS, " 7 "), Ok(7));
        for bad in ["0", "-1", "lots", ""] {
            let err = parse_count(QUEUE_CAPACITY, bad).unwrap_err();
            assert!(
                err.to_string()
                    .contains("--queue-capacity (env MESHWHY_QUEUE_CAPACITY)")
            );
        }
    }
}
