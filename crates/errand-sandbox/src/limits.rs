//! Resource limits of an attempt: what they are, and the weakest way to enforce them (rlimits),
//! used only for a resource no cgroup controller can limit on this host (see `cgroup.rs`).

use std::fmt;

/// Memory, processes and CPU for all of one attempt's commands together.
///
/// Enforced with cgroup v2 where errand can create cgroups with the controller enabled, else
/// cgroup v1, else (memory and pids only) rlimits, which are much weaker: `RLIMIT_AS` bounds
/// each process's *address space*, not the attempt's memory (and breaks programs that reserve
/// large virtual ranges, such as Go and the JVM, if set low), and `RLIMIT_NPROC` counts every
/// process of the sandbox uid, so all attempts on the machine share one budget.
/// [`crate::Sandbox::isolation`] says which was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// RAM (and swap, where the host accounts it) in bytes; the kernel kills a process of the
    /// attempt when it is exceeded. `None`: unlimited.
    pub memory_bytes: Option<u64>,
    /// Processes and threads at once; `fork` fails with EAGAIN beyond it. `None`: unlimited.
    pub pids: Option<u64>,
    /// CPU time per wall-clock second, in thousandths of a core (2000 = two cores' worth);
    /// excess is throttled, never killed. `None`: unlimited. No rlimit can express a rate.
    pub cpu_millicores: Option<u64>,
    /// `false` skips cgroups and uses only the rlimit fallback (for hosts where errand must not
    /// create cgroups, and for testing the fallback).
    pub use_cgroups: bool,
}

impl Default for Limits {
    /// 4 GiB of memory, 512 processes, two cores.
    fn default() -> Self {
        Limits {
            memory_bytes: Some(4 << 30),
            pids: Some(512),
            cpu_millicores: Some(2000),
            use_cgroups: true,
        }
    }
}

/// A limit that stopped (part of) a command: which one, and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHit {
    /// `memory` or `pids`.
    pub limit: String,
    /// For people and the model, e.g. `the attempt's memory limit (64.0 MiB) was reached; the
    /// kernel killed a process`.
    pub detail: String,
}

impl fmt::Display for LimitHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.limit, self.detail)
    }
}

/// `4.0 GiB`, `512.0 MiB`, `100 B`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `2 cores`, `0.5 cores`.
pub(crate) fn human_cores(millicores: u64) -> String {
    if millicores.is_multiple_of(1000) {
        format!("{} cores", millicores / 1000)
    } else {
        format!("{} cores", millicores as f64 / 1000.0)
    }
}

/// The rlimits a command gets for the resources no cgroup limits, set between fork and exec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rlimits {
    pub address_space: Option<u64>,
    pub processes: Option<u64>,
}

impl Rlimits {
    /// Applies them to the calling process. Async-signal-safe: only `setrlimit`.
    pub fn apply(&self) -> std::io::Result<()> {
        for (resource, value) in
            [(libc::RLIMIT_AS, self.address_space), (libc::RLIMIT_NPROC, self.processes)]
        {
            if let Some(value) = value {
                let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
                // SAFETY: a plain system call on a valid, initialised struct.
                if unsafe { libc::setrlimit(resource, &limit) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_cores_read_like_a_person_wrote_them() {
        assert_eq!(human_bytes(4 << 30), "4.0 GiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_cores(2000), "2 cores");
        assert_eq!(human_cores(500), "0.5 cores");
    }
}
