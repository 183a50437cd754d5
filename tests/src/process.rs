//! Child processes that never outlive the harness: killed on drop, and (Linux) killed by the
//! kernel if the test process itself dies, so a crashed test leaks no Envoy.

use anyhow::{Context, Result};
use std::process::{Child, Command};

/// A started child process, killed and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
}

impl ChildGuard {
    /// Starts `command`, asking the kernel to SIGKILL it when this process exits.
    pub fn spawn(name: &str, mut command: Command) -> Result<Self> {
        die_with_parent(&mut command);
        let child = command.spawn().with_context(|| format!("start {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Some(exit status) when the child has already exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The name given at spawn, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "pre_exec runs prctl between fork and exec; it is async-signal-safe"
)]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on the forked child; no allocation, no locks.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}
