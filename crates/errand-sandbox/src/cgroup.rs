//! An attempt's cgroups: where they go, the limits written into them, reading whether a limit
//! bit, and removing them.
//!
//! Each controller (memory, pids, cpu) is used from cgroup v2 when the unified hierarchy offers
//! it, else from its cgroup v1 hierarchy (hybrid hosts such as this project's development
//! machine mount v2 without controllers at `/sys/fs/cgroup/unified` and v1 beside it). Where:
//!
//! - v2: `<mount>/errand/<attempt>-<pid>-<n>`. The v2 rule "no internal processes" forbids
//!   enabling controllers for the children of a cgroup that holds processes, and errand's own
//!   cgroup holds errand, so attempts live in a tree of their own below the root (whose
//!   controllers errand enables, as root may). Inside a container whose cgroup root holds
//!   errand, that fails and the next mechanism applies.
//! - v1: `<mount>/<errand's own cgroup>/errand/<attempt>-<pid>-<n>`. v1 has no such rule, so
//!   attempts nest under errand's own cgroup and stay inside whatever limits it has.
//!
//! The suffix keeps two errand processes (or tests) with equal attempt names apart. bwrap enters
//! the cgroups from the pre-exec hook (`exec.rs`) by writing "0" (the writer itself, per
//! `cgroup_procs_write_start` in kernel/cgroup/cgroup.c, for both versions) into `cgroup.procs`
//! files opened before the fork, so every process of the command is born inside.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::SandboxError;
use crate::limits::{LimitHit, Limits, Rlimits, human_bytes, human_cores};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    const ALL: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Cpu];

    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// A place where errand may create attempt cgroups for some controllers.
#[derive(Debug, Clone)]
struct Hierarchy {
    version: Version,
    controllers: Vec<Controller>,
    /// The `errand` directory the attempts' cgroups are created in.
    parent: PathBuf,
}

/// The hierarchies of this host, found once per process (mounts do not change under us).
fn hierarchies() -> &'static [Hierarchy] {
    static FOUND: OnceLock<Vec<Hierarchy>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        discover(&mountinfo, &own, &enable_v2_controllers)
    })
}

/// One cgroup file system mount from `/proc/self/mountinfo` (proc(5)).
#[derive(Debug, PartialEq, Eq)]
struct CgroupMount {
    version: Version,
    /// The cgroup the mount shows at its mount point.
    root: String,
    mount_point: PathBuf,
    writable: bool,
    /// Super options, which name a v1 hierarchy's controllers.
    options: Vec<String>,
}

fn parse_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let mut after = after.split(' ');
            let version = match after.next()? {
                "cgroup" => Version::V1,
                "cgroup2" => Version::V2,
                _ => return None,
            };
            let _source = after.next();
            Some(CgroupMount {
                version,
                root: fields.get(3)?.to_string(),
                mount_point: PathBuf::from(fields.get(4)?),
                writable: fields.get(5)?.split(',').any(|o| o == "rw"),
                options: after.next().unwrap_or("").split(',').map(String::from).collect(),
            })
        })
        .collect()
}

/// Errand's own cgroup in the v1 hierarchy of `controller`, from `/proc/self/cgroup`
/// (`id:controllers:path` lines).
fn own_v1_cgroup<'a>(own: &'a str, controller: &str) -> Option<&'a str> {
    own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        controllers.split(',').any(|c| c == controller).then_some(path)
    })
}

/// Which hierarchies to use. `enable_v2` turns controllers on for the children of a v2 mount's
/// root and returns those that are on (a parameter, so discovery is testable without root).
fn discover(
    mountinfo: &str,
    own: &str,
    enable_v2: &dyn Fn(&Path) -> Vec<Controller>,
) -> Vec<Hierarchy> {
    let mounts = parse_mounts(mountinfo);
    let mut found = Vec::new();
    if let Some(v2) = mounts.iter().find(|m| m.version == Version::V2 && m.writable) {
        let controllers = enable_v2(&v2.mount_point);
        if !controllers.is_empty() {
            found.push(Hierarchy {
                version: Version::V2,
                controllers,
                parent: v2.mount_point.join("errand"),
            });
        }
    }
    for controller in Controller::ALL {
        if found.iter().any(|h| h.controllers.contains(&controller)) {
            continue;
        }
        let name = controller.name();
        let Some(mount) = mounts.iter().find(|m| {
            m.version == Version::V1 && m.writable && m.options.iter().any(|o| o == name)
        }) else {
            continue;
        };
        let own_path = own_v1_cgroup(own, name).unwrap_or("/");
        // The mount may show a sub-tree (its root); errand's path is relative to the hierarchy.
        let relative = own_path.strip_prefix(mount.root.as_str()).unwrap_or(own_path);
        let parent = mount.mount_point.join(relative.trim_start_matches('/')).join("errand");
        found.push(Hierarchy { version: Version::V1, controllers: vec![controller], parent });
    }
    found
}

/// Enables memory, pids and cpu for the children of the v2 root at `mount` where the kernel
/// offers them (the root cgroup is exempt from "no internal processes"); returns those on.
fn enable_v2_controllers(mount: &Path) -> Vec<Controller> {
    let words = |file: &str| -> Vec<String> {
        std::fs::read_to_string(mount.join(file))
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let available = words("cgroup.controllers");
    for controller in Controller::ALL {
        let name = controller.name();
        if available.iter().any(|c| c == name)
            && !words("cgroup.subtree_control").contains(&name.to_string())
        {
            let _ = std::fs::write(mount.join("cgroup.subtree_control"), format!("+{name}"));
        }
    }
    let enabled = words("cgroup.subtree_control");
    Controller::ALL.into_iter().filter(|c| enabled.iter().any(|e| e == c.name())).collect()
}

/// How an attempt's limits are enforced: its cgroups, and rlimits for what they do not cover.
#[derive(Debug)]
pub(crate) struct Enforcement {
    pub cgroup: Option<AttemptCgroup>,
    pub rlimits: Rlimits,
    /// One line for [`crate::Sandbox::isolation`].
    pub summary: String,
}

/// Creates the attempt's cgroups (blocking: call from `spawn_blocking`). Nothing is left behind
/// on error.
pub(crate) fn enforce(limits: &Limits, attempt: &str) -> Result<Enforcement, SandboxError> {
    let hierarchies = if limits.use_cgroups { hierarchies() } else { &[] };
    let wanted = |c: Controller| match c {
        Controller::Memory => limits.memory_bytes.map(human_bytes).map(|v| format!("memory {v}")),
        Controller::Pids => limits.pids.map(|v| format!("pids {v}")),
        Controller::Cpu => limits.cpu_millicores.map(|v| format!("cpu {}", human_cores(v))),
    };
    let mut cgroup = AttemptCgroup { dirs: Vec::new(), limits: limits.clone() };
    let name = format!("{attempt}-{}-{}", std::process::id(), next_suffix());
    let mut parts: Vec<(String, &str)> = Vec::new();
    let mut rlimits = Rlimits::default();
    for controller in Controller::ALL {
        let Some(text) = wanted(controller) else { continue };
        match hierarchies.iter().find(|h| h.controllers.contains(&controller)) {
            Some(hierarchy) => {
                let dir = cgroup.dir_for(hierarchy, &name).map_err(|source| {
                    SandboxError::Setup(format!(
                        "cannot create the attempt's cgroup under {}: {source}",
                        hierarchy.parent.display()
                    ))
                })?;
                write_limit(dir.version, controller, &dir.path, limits).map_err(|source| {
                    SandboxError::Setup(format!(
                        "cannot set the {} limit in {}: {source}",
                        controller.name(),
                        dir.path.display()
                    ))
                })?;
                let version = if dir.version == Version::V2 { "cgroup v2" } else { "cgroup v1" };
                parts.push((text, version));
            }
            None => match controller {
                Controller::Memory => {
                    rlimits.address_space = limits.memory_bytes;
                    parts.push((text, "rlimit RLIMIT_AS, per process"));
                }
                Controller::Pids => {
                    rlimits.processes = limits.pids;
                    parts.push((text, "rlimit RLIMIT_NPROC, per uid"));
                }
                Controller::Cpu => parts.push((text, "not enforced: no cpu controller")),
            },
        }
    }
    let summary = summarize(&parts);
    let cgroup = if cgroup.dirs.is_empty() { None } else { Some(cgroup) };
    Ok(Enforcement { cgroup, rlimits, summary })
}

/// `limits (cgroup v1): memory 4.0 GiB, pids 512, cpu 2 cores; wall clock per command`, or
/// each limit with its own mechanism when they differ.
fn summarize(parts: &[(String, &str)]) -> String {
    let tail = "wall clock per command";
    let Some((_, first)) = parts.first() else {
        return format!("limits: {tail}");
    };
    if parts.iter().all(|(_, m)| m == first) {
        let items: Vec<&str> = parts.iter().map(|(t, _)| t.as_str()).collect();
        format!("limits ({first}): {}; {tail}", items.join(", "))
    } else {
        let items: Vec<String> = parts.iter().map(|(t, m)| format!("{t} ({m})")).collect();
        format!("limits: {}; {tail}", items.join(", "))
    }
}

fn write_limit(
    version: Version,
    controller: Controller,
    dir: &Path,
    limits: &Limits,
) -> std::io::Result<()> {
    let write = |file: &str, value: String| std::fs::write(dir.join(file), value);
    // Files that only exist with swap accounting: a missing one is not an error.
    let write_if_present = |file: &str, value: String| match write(file, value) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    match (version, controller) {
        (Version::V2, Controller::Memory) => {
            let bytes = limits.memory_bytes.unwrap_or(u64::MAX);
            write("memory.max", bytes.to_string())?;
            // Swap would let the attempt exceed its memory by the swap's size.
            write_if_present("memory.swap.max", "0".into())
        }
        (Version::V1, Controller::Memory) => {
            let bytes = limits.memory_bytes.unwrap_or(u64::MAX);
            // memsw (memory + swap) must stay >= the memory limit, so it comes second.
            write("memory.limit_in_bytes", bytes.to_string())?;
            write_if_present("memory.memsw.limit_in_bytes", bytes.to_string())
        }
        (_, Controller::Pids) => {
            write("pids.max", limits.pids.map_or("max".into(), |n| n.to_string()))
        }
        (version, Controller::Cpu) => {
            let Some(millicores) = limits.cpu_millicores else { return Ok(()) };
            // Quota per 100 ms period; the kernel refuses quotas under 1 ms.
            let quota = (millicores * 100).max(1000);
            if version == Version::V2 {
                write("cpu.max", format!("{quota} 100000"))
            } else {
                write("cpu.cfs_period_us", "100000".into())?;
                write("cpu.cfs_quota_us", quota.to_string())
            }
        }
    }
}

fn next_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One cgroup directory of the attempt.
#[derive(Debug)]
struct CgroupDir {
    version: Version,
    controllers: Vec<Controller>,
    path: PathBuf,
    parent: PathBuf,
}

/// The attempt's cgroups, removed by [`AttemptCgroup::remove_blocking`] or, failing that, when
/// dropped.
#[derive(Debug)]
pub(crate) struct AttemptCgroup {
    dirs: Vec<CgroupDir>,
    limits: Limits,
}

/// Counters that grow when a limit bites.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    oom_kills: u64,
    forks_refused: u64,
}

impl AttemptCgroup {
    /// The attempt's directory in `hierarchy`, created on first use.
    fn dir_for(&mut self, hierarchy: &Hierarchy, name: &str) -> std::io::Result<&CgroupDir> {
        if let Some(index) = self.dirs.iter().position(|d| d.parent == hierarchy.parent) {
            return Ok(&self.dirs[index]);
        }
        let path = hierarchy.parent.join(name);
        // Another attempt's removal may take the (empty) parent away between our two steps.
        let mut tries = 0;
        loop {
            std::fs::create_dir_all(&hierarchy.parent)?;
            if hierarchy.version == Version::V2 {
                let names: Vec<String> =
                    hierarchy.controllers.iter().map(|c| format!("+{}", c.name())).collect();
                std::fs::write(hierarchy.parent.join("cgroup.subtree_control"), names.join(" "))?;
            }
            match std::fs::create_dir(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
                result => break result?,
            }
        }
        self.dirs.push(CgroupDir {
            version: hierarchy.version,
            controllers: hierarchy.controllers.clone(),
            path,
            parent: hierarchy.parent.clone(),
        });
        Ok(self.dirs.last().expect("pushed just above"))
    }

    /// The directories, for operators and tests.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// The `cgroup.procs` files a command's first process writes itself into.
    pub fn procs_files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.dirs.iter().map(|d| d.path.join("cgroup.procs"))
    }

    /// Reads the counters (small reads of kernel memory, cheap enough for an async thread).
    pub fn counters(&self) -> Counters {
        let mut counters = Counters::default();
        for dir in &self.dirs {
            if dir.controllers.contains(&Controller::Memory) {
                // v2 memory.events and v1 memory.oom_control (since Linux 4.13) both count
                // OOM kills as `oom_kill N`.
                let file =
                    if dir.version == Version::V2 { "memory.events" } else { "memory.oom_control" };
                counters.oom_kills += read_key(&dir.path.join(file), "oom_kill");
            }
            if dir.controllers.contains(&Controller::Pids) {
                // `max N`: forks refused because pids.max was reached (both versions).
                counters.forks_refused += read_key(&dir.path.join("pids.events"), "max");
            }
        }
        counters
    }

    /// Which limit bit between two readings (memory first: an OOM kill is the louder event).
    pub fn hit(&self, before: Counters, after: Counters) -> Option<LimitHit> {
        if after.oom_kills > before.oom_kills {
            let limit = self.limits.memory_bytes.map(human_bytes).unwrap_or_default();
            return Some(LimitHit {
                limit: "memory".into(),
                detail: format!(
                    "the attempt's memory limit ({limit}) was reached; the kernel killed a \
                     process of the command"
                ),
            });
        }
        if after.forks_refused > before.forks_refused {
            let limit = self.limits.pids.map(|n| n.to_string()).unwrap_or_default();
            return Some(LimitHit {
                limit: "pids".into(),
                detail: format!(
                    "the attempt's process limit ({limit} processes and threads) was reached; \
                     creating more failed"
                ),
            });
        }
        None
    }

    /// Kills whatever is left in the cgroups and removes them, then their parents if empty.
    pub fn remove_blocking(&mut self) -> std::io::Result<()> {
        self.remove(50)
    }

    fn remove(&mut self, tries: u32) -> std::io::Result<()> {
        let mut first_error = None;
        for dir in std::mem::take(&mut self.dirs) {
            if let Err(error) = remove_dir(&dir, tries) {
                tracing::warn!(cgroup = %dir.path.display(), %error, "cannot remove the attempt's cgroup");
                first_error.get_or_insert(error);
            }
            // Fails while other attempts use it, as it should.
            let _ = std::fs::remove_dir(&dir.parent);
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for AttemptCgroup {
    fn drop(&mut self) {
        // Normally empty: destroy removed them. On an error path, try once without waiting.
        let _ = self.remove(1);
    }
}

fn remove_dir(dir: &CgroupDir, tries: u32) -> std::io::Result<()> {
    let mut attempt = 0;
    loop {
        kill_members(dir);
        match std::fs::remove_dir(&dir.path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            // EBUSY while killed processes are still exiting.
            Err(e) if attempt + 1 < tries => {
                tracing::debug!(error = %e, "cgroup still busy");
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// SIGKILL to every process of the cgroup: `cgroup.kill` on v2 (Linux 5.14+), else one by one.
fn kill_members(dir: &CgroupDir) {
    if dir.version == Version::V2 && std::fs::write(dir.path.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    let procs = std::fs::read_to_string(dir.path.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<libc::pid_t>().ok()) {
        // SAFETY: kill has no memory-safety preconditions; a pid that is gone gives ESRCH.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The number after `key` in a flat-keyed cgroup file (`key value` lines); 0 if absent.
fn read_key(file: &Path, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let (k, v) = line.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct
37 30 0:33 / /sys/fs/cgroup/freezer ro,nosuid shared:17 - cgroup cgroup rw,freezer
";
    const HYBRID_OWN: &str = "\
9:name=systemd:/
8:pids:/
6:cpu,cpuacct:/user.slice
4:memory:/process_api/abc
0::/
";

    #[test]
    fn a_hybrid_host_without_v2_controllers_uses_v1_under_errands_own_cgroup() {
        let found = discover(HYBRID, HYBRID_OWN, &|_| Vec::new());
        let parents: Vec<(Version, &str, String)> = found
            .iter()
            .map(|h| (h.version, h.controllers[0].name(), h.parent.display().to_string()))
            .collect();
        assert_eq!(
            parents,
            [
                (Version::V1, "memory", "/sys/fs/cgroup/memory/process_api/abc/errand".into()),
                (Version::V1, "pids", "/sys/fs/cgroup/pids/errand".into()),
                (Version::V1, "cpu", "/sys/fs/cgroup/cpu,cpuacct/user.slice/errand".into()),
            ]
        );
    }

    #[test]
    fn v2_controllers_win_over_v1_and_read_only_mounts_are_skipped() {
        let found = discover(HYBRID, HYBRID_OWN, &|mount| {
            assert_eq!(mount, Path::new("/sys/fs/cgroup/unified"));
            vec![Controller::Memory, Controller::Pids]
        });
        assert_eq!(found[0].version, Version::V2);
        assert_eq!(found[0].parent, Path::new("/sys/fs/cgroup/unified/errand"));
        assert_eq!(found[0].controllers, [Controller::Memory, Controller::Pids]);
        assert_eq!(found.len(), 2);
        assert_eq!((found[1].version, found[1].controllers[0]), (Version::V1, Controller::Cpu));

        let read_only = HYBRID.replace("rw,nosuid,nodev,noexec,relatime", "ro,nosuid");
        assert!(discover(&read_only, HYBRID_OWN, &|_| vec![Controller::Memory]).is_empty());
    }

    #[test]
    fn a_pure_v2_host() {
        let mountinfo = "25 1 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n";
        let found = discover(mountinfo, "0::/system.slice/errand.service\n", &|_| {
            vec![Controller::Memory, Controller::Pids, Controller::Cpu]
        });
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].parent, Path::new("/sys/fs/cgroup/errand"));
        // Without controllers there is nothing to use.
        assert!(discover(mountinfo, "0::/\n", &|_| Vec::new()).is_empty());
    }

    #[test]
    fn the_summary_names_the_mechanism() {
        let same = [("memory 4.0 GiB".to_string(), "cgroup v1"), ("pids 512".into(), "cgroup v1")];
        assert_eq!(
            summarize(&same),
            "limits (cgroup v1): memory 4.0 GiB, pids 512; wall clock per command"
        );
        let mixed =
            [("memory 1.0 GiB".to_string(), "cgroup v2"), ("cpu 2 cores".into(), "cgroup v1")];
        assert_eq!(
            summarize(&mixed),
            "limits: memory 1.0 GiB (cgroup v2), cpu 2 cores (cgroup v1); wall clock per command"
        );
        assert_eq!(summarize(&[]), "limits: wall clock per command");
    }

    #[test]
    fn flat_keyed_files() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("memory.events");
        std::fs::write(&file, "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\n").unwrap();
        assert_eq!(read_key(&file, "oom_kill"), 1);
        assert_eq!(read_key(&file, "max"), 12);
        assert_eq!(read_key(&file, "absent"), 0);
        assert_eq!(read_key(&tmp.path().join("missing"), "max"), 0);
    }

    #[test]
    fn without_cgroups_memory_and_pids_fall_back_to_rlimits() {
        let limits = Limits { use_cgroups: false, ..Limits::default() };
        let enforcement = enforce(&limits, "x").unwrap();
        assert!(enforcement.cgroup.is_none());
        assert_eq!(enforcement.rlimits.address_space, Some(4 << 30));
        assert_eq!(enforcement.rlimits.processes, Some(512));
        assert!(enforcement.summary.contains("RLIMIT_NPROC"), "{}", enforcement.summary);
        assert!(
            enforcement.summary.contains("cpu 2 cores (not enforced"),
            "{}",
            enforcement.summary
        );
    }
}
