//! What the kernel says a process used: CPU time (utime + stime over all its threads, from
//! `/proc/<pid>/stat`) and memory (`VmRSS`/`VmHWM` from `/proc/<pid>/status`). These are the
//! benchmark's ground truth for Envoy and the collector; nothing is estimated from wall time.

use anyhow::{Context, Result, bail};
use std::time::Duration;

/// User + system CPU time a process has used so far (all threads, reaped children excluded).
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("parse {path}: {stat}"))?;
    // After the name, field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
        bail!("parse {path}: too few fields");
    };
    let ticks = utime.parse::<u64>()? + stime.parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / USER_HZ))
}

/// The unit of `/proc/<pid>/stat` CPU times: USER_HZ, fixed at 100 in the kernel's ABI on
/// x86 and arm (`getconf CLK_TCK`), so one tick is 10 ms: runs must last seconds, not
/// milliseconds, for the per-request figure to be precise.
const USER_HZ: f64 = 100.0;

/// Memory a process holds now and at its peak.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    /// Resident set size now, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size, KiB (`VmHWM`).
    pub peak_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`.
pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .with_context(|| format!("{path} has no {name}"))?;
        let kib = line.trim().trim_end_matches("kB").trim();
        Ok(kib.parse()?)
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let before = cpu_time(pid).unwrap();
        // Burn a little CPU so the reading moves (10 ms ticks).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(cpu_time(pid).unwrap() >= before);
        let memory = memory(pid).unwrap();
        assert!(memory.rss_kib > 0 && memory.peak_kib >= memory.rss_kib);
    }
}
