//! The seccomp filter every sandboxed command runs under, as classic BPF that bwrap loads
//! (`bwrap --seccomp FD` reads an array of `struct sock_filter` from FD until end of file, sets
//! `no_new_privs` and installs it just before it executes the command).
//!
//! It is a deny list, not an allow list: a coding agent runs compilers, interpreters, test
//! runners and package managers we cannot enumerate, so everything is allowed except system
//! calls such work never needs and that widen the kernel's attack surface: mounting and
//! namespaces (the sandbox's walls), tracing and reading other processes' memory, loading code
//! into the kernel (modules, kexec, eBPF), keyrings, io_uring, userfaultfd, perf events and a
//! handful of obsolete or host-wide calls. Denied calls fail with `EPERM`, which programs treat
//! as "not allowed here", except `clone3`, which fails with `ENOSYS`: its flags live in memory
//! that seccomp cannot inspect, and glibc falls back to `clone` (whose flags *are* checked) only
//! on `ENOSYS` (moby/moby#42680 and #42681 made Docker's default profile do the same).
//!
//! The choice follows, without copying, Docker's default profile (moby `profiles/seccomp`),
//! Flatpak's blocklist (`common/flatpak-run.c`, itself from linux-user-chroot and Sandstorm:
//! keyrings, `TIOCSTI`, the new mount API) and the Codex CLI's Linux sandbox, which
//! uses seccomp for its network ban (here the network namespace does that job).
//!
//! Only x86_64 and aarch64 system calls are allowed at all: a process that switches to another
//! ABI (32-bit x86 through `int 0x80`, or x32 numbers on x86_64) could reach the kernel under
//! numbers this filter does not list, so the first is killed and the second denied.
//! Everything is in the kernel's UAPI: `linux/seccomp.h`, `linux/filter.h`, `linux/audit.h`.

/// One classic BPF instruction, laid out as `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Instruction classes and modes (linux/bpf_common.h).
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const BPF_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K: u16 = 0x05 | 0x30; // BPF_JMP | BPF_JGE | BPF_K
const BPF_JSET_K: u16 = 0x05 | 0x40; // BPF_JMP | BPF_JSET | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

// Return values (linux/seccomp.h).
pub(crate) const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(crate) const RET_ERRNO: u32 = 0x0005_0000;
pub(crate) const RET_ALLOW: u32 = 0x7fff_0000;

// AUDIT_ARCH_* (linux/audit.h): machine | 64-bit | little-endian.
pub(crate) const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
pub(crate) const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;
/// x32 system calls are x86_64 numbers with this bit set (arch/x86/include/uapi/asm/unistd.h).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Offsets into `struct seccomp_data { int nr; u32 arch; u64 ip; u64 args[6]; }`. Arguments are
// compared on their low 32 bits (little-endian: the first word), which is all the kernel reads
// of the ones checked here (`clone` flags, `ioctl` request and `personality` are 32-bit).
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const fn offset_arg_low(index: u32) -> u32 {
    16 + 8 * index
}

/// `clone` flags that create namespaces (linux/sched.h). `CLONE_NEWTIME` (0x80) cannot be given
/// to `clone`, whose low byte is the exit signal, only to `clone3` and `unshare`, both denied.
const CLONE_NAMESPACE_FLAGS: u32 = 0x0002_0000 // CLONE_NEWNS
    | 0x0200_0000 // CLONE_NEWCGROUP
    | 0x0400_0000 // CLONE_NEWUTS
    | 0x0800_0000 // CLONE_NEWIPC
    | 0x1000_0000 // CLONE_NEWUSER
    | 0x2000_0000 // CLONE_NEWPID
    | 0x4000_0000; // CLONE_NEWNET

/// `personality` values a normal program uses: PER_LINUX, PER_LINUX32, their UNAME26 variants
/// and 0xffffffff (query). Others, such as ADDR_NO_RANDOMIZE or READ_IMPLIES_EXEC, weaken the
/// process's own hardening; Docker's profile allows the same five.
const ALLOWED_PERSONALITIES: [u32; 5] = [0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// `ioctl` requests that push input into a terminal or reach the console (asm-generic/ioctls.h,
/// the same on both architectures): TIOCSTI could type commands into a terminal outside.
const DENIED_IOCTLS: [u32; 2] = [0x5412 /* TIOCSTI */, 0x541c /* TIOCLINUX */];

/// The system call numbers the filter treats specially, for one architecture.
pub(crate) struct SyscallTable {
    pub arch: u32,
    pub clone: u32,
    pub clone3: u32,
    pub personality: u32,
    pub ioctl: u32,
    /// Denied with EPERM, by name (the names are for tests and documentation).
    pub denied: &'static [(&'static str, u32)],
}

/// Calls denied on every architecture, by their generic purpose. Numbers differ per
/// architecture; the tables below give them (x86_64: arch/x86/entry/syscalls/syscall_64.tbl;
/// aarch64: include/uapi/asm-generic/unistd.h).
pub(crate) const X86_64: SyscallTable = SyscallTable {
    arch: AUDIT_ARCH_X86_64,
    clone: 56,
    clone3: 435,
    personality: 135,
    ioctl: 16,
    denied: &[
        // The sandbox's walls: mounts, root changes and namespaces.
        ("mount", 165),
        ("umount2", 166),
        ("pivot_root", 155),
        ("chroot", 161),
        ("open_tree", 428),
        ("move_mount", 429),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
        ("unshare", 272),
        ("setns", 308),
        // Other processes: tracing, their memory, their file descriptors.
        ("ptrace", 101),
        ("process_vm_readv", 310),
        ("process_vm_writev", 311),
        ("process_madvise", 440),
        ("pidfd_getfd", 438),
        ("kcmp", 312),
        // Code into the kernel, and kernel interfaces with a long record of exploits.
        ("kexec_load", 246),
        ("kexec_file_load", 320),
        ("init_module", 175),
        ("finit_module", 313),
        ("delete_module", 176),
        ("bpf", 321),
        ("perf_event_open", 298),
        ("userfaultfd", 323),
        ("io_uring_setup", 425),
        ("io_uring_enter", 426),
        ("io_uring_register", 427),
        ("keyctl", 250),
        ("add_key", 248),
        ("request_key", 249),
        // File handles bypass path-based checks (the "shocker" container escape).
        ("open_by_handle_at", 304),
        ("name_to_handle_at", 303),
        // Host-wide switches and obsolete calls.
        ("swapon", 167),
        ("swapoff", 168),
        ("reboot", 169),
        ("acct", 163),
        ("quotactl", 179),
        ("quotactl_fd", 443),
        ("lookup_dcookie", 212),
        ("syslog", 103),
        ("vhangup", 153),
        ("iopl", 172),
        ("ioperm", 173),
        ("modify_ldt", 154),
        ("uselib", 134),
        ("_sysctl", 156),
    ],
};

pub(crate) const AARCH64: SyscallTable = SyscallTable {
    arch: AUDIT_ARCH_AARCH64,
    clone: 220,
    clone3: 435,
    personality: 92,
    ioctl: 29,
    // aarch64 has no iopl, ioperm, modify_ldt, uselib or _sysctl.
    denied: &[
        ("mount", 40),
        ("umount2", 39),
        ("pivot_root", 41),
        ("chroot", 51),
        ("open_tree", 428),
        ("move_mount", 429),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
        ("unshare", 97),
        ("setns", 268),
        ("ptrace", 117),
        ("process_vm_readv", 270),
        ("process_vm_writev", 271),
        ("process_madvise", 440),
        ("pidfd_getfd", 438),
        ("kcmp", 272),
        ("kexec_load", 104),
        ("kexec_file_load", 294),
        ("init_module", 105),
        ("finit_module", 273),
        ("delete_module", 106),
        ("bpf", 280),
        ("perf_event_open", 241),
        ("userfaultfd", 282),
        ("io_uring_setup", 425),
        ("io_uring_enter", 426),
        ("io_uring_register", 427),
        ("keyctl", 219),
        ("add_key", 217),
        ("request_key", 218),
        ("open_by_handle_at", 265),
        ("name_to_handle_at", 264),
        ("swapon", 224),
        ("swapoff", 225),
        ("reboot", 142),
        ("acct", 89),
        ("quotactl", 60),
        ("quotactl_fd", 443),
        ("lookup_dcookie", 18),
        ("syslog", 116),
        ("vhangup", 58),
    ],
};

/// A forward jump target inside the program being assembled.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Label(usize);

/// An instruction whose jump target may still be a label.
enum Item {
    /// Loads the 32-bit word at this offset of `seccomp_data` into the accumulator.
    Load(u32),
    /// Jumps to the label when `accumulator <op> k`; falls through otherwise.
    Jump {
        code: u16,
        k: u32,
        to: Label,
    },
    Return(u32),
    Here(Label),
}

/// A tiny assembler: conditional jumps go forward to labels, everything else falls through.
#[derive(Default)]
struct Assembler {
    items: Vec<Item>,
    labels: usize,
}

impl Assembler {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    fn load(&mut self, offset: u32) {
        self.items.push(Item::Load(offset));
    }
    fn jump(&mut self, code: u16, k: u32, to: Label) {
        self.items.push(Item::Jump { code, k, to });
    }
    fn ret(&mut self, value: u32) {
        self.items.push(Item::Return(value));
    }
    fn here(&mut self, label: Label) {
        self.items.push(Item::Here(label));
    }

    /// Resolves labels into relative offsets. Panics only on a program this module builds
    /// wrongly (a backward jump, an unknown label, or a jump longer than BPF's 255), which the
    /// unit tests would catch: the program does not depend on input.
    fn finish(self) -> Vec<SockFilter> {
        let mut positions = vec![None; self.labels];
        let mut count = 0usize;
        for item in &self.items {
            match item {
                Item::Here(label) => positions[label.0] = Some(count),
                _ => count += 1,
            }
        }
        let mut program = Vec::with_capacity(count);
        for item in self.items {
            let at = program.len();
            match item {
                Item::Here(_) => {}
                Item::Load(offset) => {
                    program.push(SockFilter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: offset })
                }
                Item::Return(value) => {
                    program.push(SockFilter { code: BPF_RET_K, jt: 0, jf: 0, k: value })
                }
                Item::Jump { code, k, to } => {
                    let target = positions[to.0].expect("every label is placed (seccomp.rs)");
                    let distance = target
                        .checked_sub(at + 1)
                        .and_then(|d| u8::try_from(d).ok())
                        .expect("jumps go forward by at most 255 (seccomp.rs)");
                    program.push(SockFilter { code, jt: distance, jf: 0, k });
                }
            }
        }
        program
    }
}

/// Builds the filter for both architectures.
pub(crate) fn filter() -> Vec<SockFilter> {
    let mut asm = Assembler::default();
    let x86_64 = asm.label();
    let aarch64 = asm.label();
    asm.load(OFFSET_ARCH);
    asm.jump(BPF_JEQ_K, X86_64.arch, x86_64);
    asm.jump(BPF_JEQ_K, AARCH64.arch, aarch64);
    asm.ret(RET_KILL_PROCESS);
    asm.here(x86_64);
    arch_section(&mut asm, &X86_64, true);
    asm.here(aarch64);
    arch_section(&mut asm, &AARCH64, false);
    asm.finish()
}

/// The checks for one architecture; every path ends in a return.
fn arch_section(asm: &mut Assembler, table: &SyscallTable, x32_exists: bool) {
    let (deny, enosys, clone, personality, ioctl) =
        (asm.label(), asm.label(), asm.label(), asm.label(), asm.label());
    asm.load(OFFSET_NR);
    if x32_exists {
        asm.jump(BPF_JGE_K, X32_SYSCALL_BIT, deny);
    }
    asm.jump(BPF_JEQ_K, table.clone, clone);
    asm.jump(BPF_JEQ_K, table.clone3, enosys);
    asm.jump(BPF_JEQ_K, table.personality, personality);
    asm.jump(BPF_JEQ_K, table.ioctl, ioctl);
    for &(_, nr) in table.denied {
        asm.jump(BPF_JEQ_K, nr, deny);
    }
    asm.ret(RET_ALLOW);

    asm.here(clone);
    asm.load(offset_arg_low(0));
    asm.jump(BPF_JSET_K, CLONE_NAMESPACE_FLAGS, deny);
    asm.ret(RET_ALLOW);

    asm.here(personality);
    let allowed = asm.label();
    asm.load(offset_arg_low(0));
    for value in ALLOWED_PERSONALITIES {
        asm.jump(BPF_JEQ_K, value, allowed);
    }
    asm.ret(RET_ERRNO | libc::EPERM as u32);
    asm.here(allowed);
    asm.ret(RET_ALLOW);

    asm.here(ioctl);
    asm.load(offset_arg_low(1));
    for request in DENIED_IOCTLS {
        asm.jump(BPF_JEQ_K, request, deny);
    }
    asm.ret(RET_ALLOW);

    asm.here(deny);
    asm.ret(RET_ERRNO | libc::EPERM as u32);
    asm.here(enosys);
    asm.ret(RET_ERRNO | libc::ENOSYS as u32);
}

/// The filter as bwrap reads it, built once per process.
pub(crate) fn compiled() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(filter_bytes)
}

/// The filter as the bytes bwrap reads: `struct sock_filter` in native byte order.
fn filter_bytes() -> Vec<u8> {
    let program = filter();
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for insn in program {
        bytes.extend_from_slice(&insn.code.to_ne_bytes());
        bytes.push(insn.jt);
        bytes.push(insn.jf);
        bytes.extend_from_slice(&insn.k.to_ne_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `program` on one system call the way the kernel's classic BPF interpreter does, for
    /// the instructions the filter uses; anything else fails the test.
    fn run(program: &[SockFilter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend_from_slice(&nr.to_le_bytes());
        data.extend_from_slice(&arch.to_le_bytes());
        data.extend_from_slice(&0u64.to_le_bytes());
        for arg in args {
            data.extend_from_slice(&arg.to_le_bytes());
        }
        let mut accumulator = 0u32;
        let mut pc = 0usize;
        loop {
            let insn = program.get(pc).expect("the program ran off its end");
            pc += 1;
            let jump = |taken: bool| if taken { insn.jt as usize } else { insn.jf as usize };
            match insn.code {
                BPF_LD_W_ABS => {
                    let at = insn.k as usize;
                    let word = data.get(at..at + 4).expect("load inside seccomp_data");
                    accumulator = u32::from_le_bytes(word.try_into().unwrap());
                }
                BPF_JEQ_K => pc += jump(accumulator == insn.k),
                BPF_JGE_K => pc += jump(accumulator >= insn.k),
                BPF_JSET_K => pc += jump(accumulator & insn.k != 0),
                BPF_RET_K => return insn.k,
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;

    fn nr(table: &SyscallTable, name: &str) -> u32 {
        table.denied.iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr).unwrap()
    }

    #[test]
    fn every_listed_call_is_denied_and_ordinary_calls_are_allowed() {
        let program = filter();
        assert!(program.len() < 4096, "BPF_MAXINSNS");
        for table in [&X86_64, &AARCH64] {
            for &(name, nr) in table.denied {
                assert_eq!(run(&program, table.arch, nr, [0; 6]), EPERM, "{name}");
            }
            assert_eq!(run(&program, table.arch, table.clone3, [0; 6]), ENOSYS);
        }
        // read, write, openat, execve, wait4 on x86_64; read, write, openat, execve on aarch64.
        for nr in [0, 1, 257, 59, 61] {
            assert_eq!(run(&program, AUDIT_ARCH_X86_64, nr, [0; 6]), RET_ALLOW, "x86_64 {nr}");
        }
        for nr in [63, 64, 56, 221] {
            assert_eq!(run(&program, AUDIT_ARCH_AARCH64, nr, [0; 6]), RET_ALLOW, "aarch64 {nr}");
        }
        // The numbers are per architecture: aarch64's mount (40) is x86_64's sendfile.
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, 40, [0; 6]), RET_ALLOW);
        assert_eq!(run(&program, AUDIT_ARCH_AARCH64, 40, [0; 6]), EPERM);
    }

    #[test]
    fn other_architectures_are_killed_and_x32_is_denied() {
        let program = filter();
        const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
        const AUDIT_ARCH_ARM: u32 = 40 | 0x4000_0000;
        for arch in [AUDIT_ARCH_I386, AUDIT_ARCH_ARM, 0] {
            assert_eq!(run(&program, arch, 0, [0; 6]), RET_KILL_PROCESS, "{arch:#x}");
        }
        // x32 `read` and x32 `mount`.
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, [0; 6]), EPERM);
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 165, [0; 6]), EPERM);
        // aarch64 has no x32: the bit is just a (nonexistent) number there, allowed to fail.
        assert_eq!(run(&program, AUDIT_ARCH_AARCH64, X32_SYSCALL_BIT, [0; 6]), RET_ALLOW);
    }

    #[test]
    fn clone_is_allowed_without_namespace_flags_only() {
        let program = filter();
        // What glibc passes for fork() and pthread_create().
        let fork = 0x0120_0011u64; // CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
        let thread = 0x003d_0f00u64;
        for table in [&X86_64, &AARCH64] {
            for flags in [fork, thread, 0] {
                assert_eq!(
                    run(&program, table.arch, table.clone, [flags, 0, 0, 0, 0, 0]),
                    RET_ALLOW
                );
            }
            for flag in [0x0002_0000u64, 0x1000_0000, 0x4000_0000, 0x2000_0000, 0x0200_0000] {
                let args = [fork | flag, 0, 0, 0, 0, 0];
                assert_eq!(run(&program, table.arch, table.clone, args), EPERM, "{flag:#x}");
            }
        }
    }

    #[test]
    fn personality_and_ioctl_are_checked_by_argument() {
        let program = filter();
        for table in [&X86_64, &AARCH64] {
            let call = |nr, a0: u64, a1: u64| run(&program, table.arch, nr, [a0, a1, 0, 0, 0, 0]);
            assert_eq!(call(table.personality, 0xffff_ffff, 0), RET_ALLOW);
            assert_eq!(call(table.personality, 0x8, 0), RET_ALLOW);
            // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC.
            assert_eq!(call(table.personality, 0x4_0000, 0), EPERM);
            assert_eq!(call(table.personality, 0x40_0000, 0), EPERM);
            assert_eq!(call(table.ioctl, 0, 0x5412), EPERM, "TIOCSTI");
            assert_eq!(call(table.ioctl, 0, 0x541c), EPERM, "TIOCLINUX");
            assert_eq!(call(table.ioctl, 0, 0x5401), RET_ALLOW, "TCGETS");
        }
        assert_eq!(nr(&X86_64, "ptrace"), 101);
    }

    /// The tables against the C library's numbers for the architecture we are built for, and
    /// aarch64's against the kernel's generic table when its header is installed.
    #[test]
    fn syscall_numbers_match_the_system_headers() {
        #[cfg(target_arch = "x86_64")]
        let (table, known) = (
            &X86_64,
            [
                ("mount", libc::SYS_mount),
                ("ptrace", libc::SYS_ptrace),
                ("unshare", libc::SYS_unshare),
                ("setns", libc::SYS_setns),
                ("bpf", libc::SYS_bpf),
                ("keyctl", libc::SYS_keyctl),
                ("io_uring_setup", libc::SYS_io_uring_setup),
                ("open_by_handle_at", libc::SYS_open_by_handle_at),
                ("perf_event_open", libc::SYS_perf_event_open),
                ("userfaultfd", libc::SYS_userfaultfd),
                ("kexec_file_load", libc::SYS_kexec_file_load),
                ("process_vm_writev", libc::SYS_process_vm_writev),
                ("fsmount", libc::SYS_fsmount),
                ("syslog", libc::SYS_syslog),
                ("iopl", libc::SYS_iopl),
                ("_sysctl", libc::SYS__sysctl),
            ],
        );
        #[cfg(target_arch = "aarch64")]
        let (table, known) = (
            &AARCH64,
            [
                ("mount", libc::SYS_mount),
                ("ptrace", libc::SYS_ptrace),
                ("unshare", libc::SYS_unshare),
                ("bpf", libc::SYS_bpf),
                ("io_uring_setup", libc::SYS_io_uring_setup),
            ],
        );
        for (name, number) in known {
            assert_eq!(i64::from(nr(table, name)), number, "{name}");
        }
        assert_eq!(i64::from(table.clone), libc::SYS_clone);
        assert_eq!(i64::from(table.clone3), libc::SYS_clone3);
        assert_eq!(i64::from(table.personality), libc::SYS_personality);
        assert_eq!(i64::from(table.ioctl), libc::SYS_ioctl);

        let Ok(generic) = std::fs::read_to_string("/usr/include/asm-generic/unistd.h") else {
            return;
        };
        let defined = |name: &str| {
            let prefix = format!("#define __NR_{name} ");
            generic.lines().find_map(|l| l.strip_prefix(&prefix)?.trim().parse::<u32>().ok())
        };
        for &(name, number) in AARCH64.denied {
            // Calls newer than the installed headers are not there; the rest must agree.
            if let Some(expected) = defined(name) {
                assert_eq!(number, expected, "aarch64 {name}");
            }
        }
        assert_eq!(defined("clone"), Some(AARCH64.clone));
        assert_eq!(defined("personality"), Some(AARCH64.personality));
        assert_eq!(defined("ioctl"), Some(AARCH64.ioctl));
    }

    #[test]
    fn the_bytes_are_eight_per_instruction() {
        let bytes = filter_bytes();
        assert_eq!(bytes.len(), filter().len() * 8);
        // exec.rs writes it into a pipe before bwrap reads it: it must fit the smallest pipe
        // buffer (one page) so that the write cannot block.
        assert!(bytes.len() <= 4096, "{} bytes", bytes.len());
        assert_eq!(&bytes[..2], &BPF_LD_W_ABS.to_ne_bytes());
    }
}
