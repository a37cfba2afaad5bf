"""nsjail's command line for one jail, from the settings and the run's memory limit.

Pure but for the runner's compiled code, which the jail's interpreter makes once per
process (pyexec/runner_code.py). The jail's shape (namespaces, mounts, seccomp,
environment) is ``nsjail.cfg``; this adds only per-run values: the rlimits and cgroup
limits, the fds nsjail passes through, nsjail's own backstop time limit and the runner
command; and, for an nsjail that does not deny x32 system calls itself, the x32 part
of the seccomp policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyexec.cgroups import CgroupSupport
from pyexec.jail_ids import mapping_args
from pyexec.runner_code import runner_launch
from pyexec.settings import Settings
from pyexec.spawn import denies_x32_itself

# Extra CPU seconds a jail may spend before its script arrives (imports).
STARTUP_CPU_SECONDS = 60
# -I: isolated (no environment, no user site); -S: no site (the runner does the
# parts that matter); -B: no bytecode writes (read-only fs); -u: unbuffered output.
PYTHON_FLAGS = ("-I", "-S", "-B", "-u")
# The x32 ABI numbers the same syscalls with bit 30 set (0x40000000 | nr) and passes
# the filter's architecture check, so nsjail.cfg's denylist does not reach them. The
# nsjail that scripts/build_nsjail.sh builds denies them all itself
# (scripts/nsjail_x32.c); any other gets this policy: the whole x32 table, 0 to 547
# (the x32-only entries end at 547; past it the kernel answers ENOSYS), EPERM like
# the rest of the denylist. kafel has no ranges, so each number is an entry, and
# nsjail compiles them at every start (0.55-0.8 ms of CPU per jail).
X32_TABLE_SIZE = 548
X32_POLICY = (
    "ERRNO(1) { "
    + ", ".join(f"SYSCALL[{0x40000000 | nr:#x}]" for nr in range(X32_TABLE_SIZE))
    + " }"
)


def x32_policy_args(nsjail_path: str) -> tuple[str, ...]:
    """What this nsjail needs on its command line for x32 system calls to be denied:
    nothing when it denies them itself, else X32_POLICY, which nsjail adds to
    nsjail.cfg's ``seccomp_string`` lines. The service's self-test proves the result
    in a real jail (an x32 getpid must meet EPERM) before any script runs."""
    return () if denies_x32_itself(nsjail_path) else ("--seccomp_string", X32_POLICY)


@dataclass(frozen=True)
class JailFds:
    """The pipe ends nsjail passes into the jail (or writes its log to)."""

    control_r: int
    result_w: int
    log_w: int


def rlimit_args(settings: Settings, cgroups: CgroupSupport, memory_mb: int) -> list[str]:
    """Per-jail limits: cgroup limits where cgroups work, rlimits as the fallback."""
    args = [
        "--rlimit_fsize",
        str(settings.file_size_mb),
        "--rlimit_nofile",
        str(settings.max_open_files),
        # A backstop: the runner lowers it to the run's own limit at hand-over.
        "--rlimit_cpu",
        str(settings.max_cpu_seconds + STARTUP_CPU_SECONDS),
    ]
    if not cgroups.enforced:
        return [
            *args,
            "--rlimit_as",
            str(memory_mb),
            "--rlimit_nproc",
            str(settings.max_pids),
        ]
    args += [
        "--cgroup_mem_max",
        str(memory_mb * 1024 * 1024),
        "--cgroup_pids_max",
        str(settings.max_pids),
        "--cgroup_cpu_ms_per_sec",
        str(settings.cpus * 1000),
    ]
    if cgroups.mode == "v2":
        args += ["--cgroup_mem_swap_max", "0"]
    return [*args, "--rlimit_nproc", "soft"]


def _pass_fd_args(fds: tuple[int, ...]) -> list[str]:
    return [arg for fd in fds for arg in ("--pass_fd", str(fd))]


def backstop_seconds(settings: Settings) -> int:
    """nsjail's own time limit, only a backstop: the service enforces the script's
    deadline, and a pooled jail may first wait up to the idle age."""
    return int(
        settings.startup_timeout_seconds
        + settings.pool_max_idle_seconds
        + settings.max_timeout_seconds
        + 5
    )


def nsjail_argv(
    settings: Settings,
    cgroups: CgroupSupport,
    memory_mb: int,
    preimport: str,
    fds: JailFds,
    outer_id: int,
    prefix: tuple[str, ...] = (),
    nice_level: int | None = None,
) -> list[str]:
    """The full command: ``prefix`` (setpriv's death signal for an nsjail that does
    not set its own, pyexec.spawn.launch_prefix), nsjail, the runner.

    ``outer_id`` is the host uid and gid the jail's 65534 maps to (pyexec/jail_ids.py).

    ``nice_level`` overrides nsjail.cfg's (the warming jails' low priority) for a
    jail that a request is already waiting for: nsjail applies it before the runner
    starts, so nothing of the jail runs at the lower priority.
    """
    return [
        *prefix,
        settings.nsjail_path,
        "--config",
        settings.nsjail_config,
        *x32_policy_args(settings.nsjail_path),
        "--log_fd",
        str(fds.log_w),
        "--pass_fd",
        str(fds.control_r),
        "--pass_fd",
        str(fds.result_w),
        *_pass_fd_args(runner_launch(settings.sandbox_python).fds),
        "--time_limit",
        str(backstop_seconds(settings)),
        *mapping_args(outer_id),
        *(("--nice_level", str(nice_level)) if nice_level is not None else ()),
        *cgroups.nsjail_args,
        *rlimit_args(settings, cgroups, memory_mb),
        "--",
        settings.sandbox_python,
        *PYTHON_FLAGS,
        *runner_launch(settings.sandbox_python).args,
        "--control-fd",
        str(fds.control_r),
        "--result-fd",
        str(fds.result_w),
        "--preimport",
        preimport,
    ]
