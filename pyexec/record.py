"""What one run produced: the record ``pyexec.jail`` fills and ``pyexec.outcome`` interprets."""

from __future__ import annotations

from dataclasses import dataclass

from pyexec.settings import Limits


@dataclass
class RunRecord:
    """Everything observed about one run, before anyone decides what it means."""

    stdout: bytes = b""
    stdout_truncated: bool = False
    stderr: bytes = b""
    stderr_truncated: bool = False
    report: bytes = b""
    report_truncated: bool = False
    timed_out: bool = False
    exit_code: int | None = None
    # nsjail's rusage: CPU of the whole jail (nsjail included). Its ru_maxrss is not
    # kept: it carries the service's own size from before the exec.
    cpu_seconds: float = 0.0
    startup_cpu_ms: float = 0.0
    # How the jail's init ended, from nsjail's own log: a signal name or an exit
    # status (the exit code alone cannot tell os._exit(137) from SIGKILL).
    exit_signal: str | None = None
    exit_status: int | None = None
    oom_killed: bool | None = None
    # From the jail's cgroup when readable (None otherwise): trusted figures.
    cgroup_peak_bytes: int | None = None
    # Without cgroups: the jail's init's peak RSS (VmHWM), as last sampled during the
    # run; it never includes the service.
    init_peak_bytes: int | None = None
    # The lowest hard RLIMIT_CPU of the jail's init seen during the run (seconds): a
    # script that lowers it and is killed for it must not look like an OOM kill.
    init_cpu_rlimit_seconds: int | None = None
    cgroup_cpu_ms: float | None = None
    cpu_exceeded: bool = False  # the jail as a whole used more than its CPU limit
    # Without cgroups: the jail's processes together (PSS summed by the watchdog)
    # passed its memory limit and it was stopped; and the largest sum seen.
    memory_exceeded: bool = False
    jail_peak_bytes: int | None = None
    wall_seconds: float = 0.0
    log: bytes = b""
    limits: Limits | None = None
    # The request had output_files: the report is followed by the files' bytes.
    wants_files: bool = False
