//! Where the benchmark's processes run. Pinning with `taskset` (util-linux): the measured process
//! (Envoy, the collector) gets one CPU and this process (load generator, upstream, in-process
//! sinks) the other, so the load generator's own work never lands on the measured core, the
//! measured process never migrates, and "on one core" means one core. On a machine with one CPU,
//! or without taskset, nothing is pinned and the report says so.
//!
//! Optionally (`--boost`) both sides also run at a higher scheduling priority (`renice`), so a
//! neighbour's compile job time-slices into a burst less often: each preemption costs the
//! measured process its warm caches, which shows up as CPU per request.

use anyhow::{Result, bail};
use std::process::{Command, Stdio};

/// Which CPU each side runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Cpus {
    /// Envoy and the collector child.
    pub measured: usize,
    /// This process.
    pub load: usize,
}

/// The CPUs to use: the first for the measured process, the last for the load; None when there
/// is only one CPU or taskset does not work here.
pub fn plan() -> Option<Cpus> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 || !taskset_works() {
        return None;
    }
    Some(Cpus {
        measured: 0,
        load: cpus - 1,
    })
}

/// Pins every thread of `pid` (existing ones; new threads inherit) to `cpu`.
pub fn pin(pid: u32, cpu: usize) -> Result<()> {
    let status = Command::new("taskset")
        .args([
            "--all-tasks",
            "--pid",
            "--cpu-list",
            &cpu.to_string(),
            &pid.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("taskset could not pin pid {pid} to CPU {cpu}: {status}");
    }
    Ok(())
}

/// Nice value `--boost` gives the measured processes and this one.
pub const BOOST_NICE: i32 = -10;

/// Renices every thread of `pid` (existing ones; new threads inherit) to [`BOOST_NICE`].
pub fn boost(pid: u32) -> Result<()> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))?;
    for task in tasks {
        let tid = task?.file_name();
        let status = Command::new("renice")
            .args(["-n", &BOOST_NICE.to_string(), "-p"])
            .arg(&tid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("renice could not raise the priority of thread {tid:?} of pid {pid}: {status}");
        }
    }
    Ok(())
}

/// A command that runs `program` pinned to `cpu` (taskset execs it in place, so the child's pid
/// is the program's).
pub fn pinned_command(program: &std::path::Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.args(["--cpu-list", &cpu.to_string()]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn taskset_works() -> bool {
    Command::new("taskset")
        .args(["--cpu-list", "0", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
