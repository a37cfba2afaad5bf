"""nsjail's command line for one jail, from the settings and the run's memory limit.

Pure but for the runner's compiled code, which the jail's interpreter makes once per
process (pyexec/runner_code.py). The jail's shape (namespaces, mounts, seccomp,
environment) is ``nsjail.cfg``; this adds only per-run values: the rlimits and cgroup
limits, the fds nsjail passes through, nsjail's own backstop time limit and the runner
command.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyexec.cgroups import CgroupSupport
from pyexec.jail_ids import mapping_args
from pyexec.runner_code import runner_launch
from pyexec.settings import Settings

# Extra CPU seconds a jail may spend before its script arrives (imports).
STARTUP_CPU_SECONDS = 60
# -I: isolated (no environment, no user site); -S: no site (the runner does the
# parts that matter); -B: no bytecode writes (read-only fs); -u: unbuffered output.
PYTHON_FLAGS = ("-I", "-S", "-B", "-u")


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
