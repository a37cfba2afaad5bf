"""One nsjail jail: start it, wait until its runner is ready, hand it one script, collect.

The jail's shape (namespaces, mounts, seccomp, environment) is ``nsjail.cfg``;
this module only adds per-run values: limits from the settings, the cgroup
flags, the fds it passes and the runner command. A Jail is used once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import resource
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pyexec.cgroups import CgroupSupport
from pyexec.settings import Limits, Settings
from pyexec.spawn import DEATH_SIGNAL_PREFIX, LAUNCHER, REAPER

RUNNER_SOURCE = (Path(__file__).parent / "runner.py").read_text(encoding="utf-8")
READY_PREFIX = b"ready "
MAX_LOG_BYTES = 64 * 1024
CPU_POLL_SECONDS = 0.05  # how often a running jail's CPU is checked against its limit
EXIT_LINE = re.compile(
    rb"pid=(\d+) \(\[STANDALONE MODE\]\) "
    rb"(?:terminated with signal: (SIG\w+)|exited with status: (\d+))"
)
# Extra CPU seconds a jail may spend before its script arrives (imports).
STARTUP_CPU_SECONDS = 60


class JailStartError(RuntimeError):
    """The jail did not come up; the message is for operators, not users."""


class JailUsedError(RuntimeError):
    """A jail was asked to run a second script (or before it was ready)."""


@dataclass
class RunRecord:
    """Everything observed about one run; interpreted by pyexec.executor."""

    stdout: bytes = b""
    stdout_truncated: bool = False
    stderr: bytes = b""
    stderr_truncated: bool = False
    report: bytes = b""
    report_truncated: bool = False
    timed_out: bool = False
    exit_code: int | None = None
    cpu_seconds: float = 0.0
    max_rss_bytes: int = 0
    startup_cpu_ms: float = 0.0
    # How the jail's init ended, from nsjail's own log: a signal name or an exit
    # status (the exit code alone cannot tell os._exit(137) from SIGKILL).
    exit_signal: str | None = None
    exit_status: int | None = None
    oom_killed: bool | None = None
    # From the jail's cgroup when readable (None otherwise): trusted figures.
    cgroup_peak_bytes: int | None = None
    cgroup_cpu_ms: float | None = None
    cpu_exceeded: bool = False  # the jail as a whole used more than its CPU limit
    wall_seconds: float = 0.0
    log: bytes = b""
    limits: Limits | None = None


def _rlimit_args(settings: Settings, cgroups: CgroupSupport, memory_mb: int) -> list[str]:
    args = [
        "--rlimit_fsize",
        str(settings.file_size_mb),
        "--rlimit_nofile",
        str(settings.max_open_files),
        # A backstop: the runner lowers it to the run's own limit at hand-over.
        "--rlimit_cpu",
        str(settings.max_cpu_seconds + STARTUP_CPU_SECONDS),
    ]
    if cgroups.enforced:
        memory = str(memory_mb * 1024 * 1024)
        args += [
            "--cgroup_mem_max",
            memory,
            "--cgroup_pids_max",
            str(settings.max_pids),
            "--cgroup_cpu_ms_per_sec",
            str(settings.cpus * 1000),
        ]
        if cgroups.mode == "v2":
            args += ["--cgroup_mem_swap_max", "0"]
        args += ["--rlimit_nproc", "soft"]
    else:
        args += [
            "--rlimit_as",
            str(memory_mb),
            "--rlimit_nproc",
            str(settings.max_pids),
        ]
    return args


def _append_capped(buffer: bytearray, chunk: bytes, cap: int) -> bool:
    """Append what fits of ``chunk`` under ``cap``; False when some of it did not."""
    room = cap - len(buffer)
    buffer += chunk[: max(room, 0)]
    return len(chunk) <= room


class Jail:
    """A single-use jail. ``start`` then ``wait_ready`` then ``run``; ``kill`` any time."""

    def __init__(
        self,
        settings: Settings,
        cgroups: CgroupSupport,
        preimport: str = "",
        memory_mb: int | None = None,
    ) -> None:
        self.settings = settings
        self.cgroups = cgroups
        self.preimport = preimport
        self.memory_mb = memory_mb or settings.memory_mb
        self.proc: subprocess.Popen[bytes] | None = None
        self._record = RunRecord()
        self._control_w = -1
        self._result_r = -1
        self._log_r = -1
        self._ready = False
        self._used = False
        self.ready_at = 0.0
        self.startup_cpu_ms = 0.0
        self.init_pid: int | None = None  # host pid of the jail's init (the runner)
        self._cpu_handle: Path | None = None  # where the whole jail's CPU is counted
        self._buffer = b""
        self._log = bytearray()
        # run() hands a jail that answered to the reaper thread; close() may race it.
        self._close_lock = threading.RLock()

    def _argv(self, control_r: int, result_w: int, log_w: int) -> list[str]:
        settings = self.settings
        # nsjail's own time limit is only a backstop: the service enforces the
        # script's deadline; a pooled jail may first wait up to the idle age.
        backstop = int(
            settings.startup_timeout_seconds
            + settings.pool_max_idle_seconds
            + settings.max_timeout_seconds
            + 5
        )
        return [
            *DEATH_SIGNAL_PREFIX,
            settings.nsjail_path,
            "--config",
            settings.nsjail_config,
            "--log_fd",
            str(log_w),
            "--pass_fd",
            str(control_r),
            "--pass_fd",
            str(result_w),
            "--time_limit",
            str(backstop),
            *self.cgroups.nsjail_args,
            *_rlimit_args(settings, self.cgroups, self.memory_mb),
            "--",
            settings.sandbox_python,
            "-I",
            "-S",
            "-B",
            "-u",
            "-c",
            RUNNER_SOURCE,
            "--control-fd",
            str(control_r),
            "--result-fd",
            str(result_w),
            "--preimport",
            self.preimport,
        ]

    def start(self) -> None:
        """Start nsjail and the runner; returns at once (see ``wait_ready``)."""
        control_r, self._control_w = os.pipe2(os.O_CLOEXEC)
        self._result_r, result_w = os.pipe2(os.O_CLOEXEC)
        self._log_r, log_w = os.pipe2(os.O_CLOEXEC)
        try:
            self.proc = LAUNCHER.popen(
                self._argv(control_r, result_w, log_w), (control_r, result_w, log_w)
            )
        finally:
            for fd in (control_r, result_w, log_w):
                os.close(fd)

    def _read_log(self) -> None:
        try:
            chunk = os.read(self._log_r, 65536)
        except BlockingIOError:
            return
        _append_capped(self._log, chunk, MAX_LOG_BYTES)

    def wait_ready(self, timeout: float) -> None:
        """Block until the runner reports ready, or raise JailStartError."""
        assert self.proc is not None
        assert self.proc.stdout
        assert self.proc.stderr
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._result_r, selectors.EVENT_READ)
            selector.register(self._log_r, selectors.EVENT_READ)
            # Anything printed before the script arrives (import warnings) is
            # the jail's, not the user's: drained and dropped.
            selector.register(self.proc.stdout.fileno(), selectors.EVENT_READ)
            selector.register(self.proc.stderr.fileno(), selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    raise JailStartError(
                        f"the jail was not ready within {timeout:g} s: {self.log_text()}"
                    )
                for key, _ in selector.select(remaining):
                    if key.fileobj == self._log_r:
                        self._read_log()
                        continue
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fd)
                        if key.fileobj == self._result_r:
                            self.kill()
                            raise JailStartError(
                                f"the jail exited before it was ready: {self.log_text()}"
                            )
                    elif key.fileobj == self._result_r:
                        self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        if not line.startswith(READY_PREFIX):
            self.kill()
            raise JailStartError(f"the runner did not report ready: {line[:200]!r}")
        self.startup_cpu_ms = float(line[len(READY_PREFIX) :])
        self.init_pid = self._init_pid()
        if self.init_pid is not None and self.cgroups.enforced:
            # Joining a v1 cgroup costs milliseconds (an RCU grace period): done
            # here, while the jail warms up, not when the script is handed over.
            self._cpu_handle = self.cgroups.track_cpu(self.init_pid)
        self._ready = True
        self.ready_at = time.monotonic()

    def alive(self) -> bool:
        """True while nsjail (and so the jail) has not exited; never reaps it."""
        if self.proc is None or self.proc.returncode is not None:
            return False
        try:
            state = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"

    def _init_pid(self) -> int | None:
        """The host pid of nsjail's one child, the jail's init."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            pids = children.read_text().split()
        except OSError:
            return None
        return int(pids[0]) if pids else None

    def set_priority(self, niceness: int) -> None:
        """Renice the jail's init (host pid) so a running script outranks warming jails.

        Jails start at nsjail.cfg's nice level; processes the script starts later
        inherit the new value. Best effort: a jail that is gone needs no priority.
        """
        pid = self.init_pid or self._init_pid()
        if pid is not None:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, niceness)

    def log_text(self) -> str:
        """nsjail's own log lines so far (for operators and service logs only)."""
        if self._log_r >= 0:
            os.set_blocking(self._log_r, False)
            with contextlib.suppress(OSError):
                self._read_log()
        lines = bytes(self._log).decode("utf-8", "replace").strip().splitlines()
        wanted = [line for line in lines if "[E]" in line or "[F]" in line or "[W]" in line]
        return " | ".join((wanted or lines)[-5:]) or "no log"

    def run(self, script: str, limits: Limits | None = None) -> RunRecord:
        """Hand the script over and collect everything; the jail is then torn down
        (at once, or by the reaper once it has answered), even if this raises."""
        if self._used or not self._ready:
            raise JailUsedError("a jail serves exactly one script, once it is ready")
        self._used = True
        try:
            return self._run(script, limits)
        except BaseException:
            self.close()
            raise

    def _run(self, script: str, limits: Limits | None) -> RunRecord:
        assert self.proc is not None
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        settings = self.settings
        limits = limits or settings.default_limits()
        if limits.memory_mb != self.memory_mb:
            raise ValueError("this jail was started with another memory limit")
        record = self._record
        record.limits = limits
        record.startup_cpu_ms = self.startup_cpu_ms
        source = script.encode("utf-8", "surrogatepass")
        header = f"{limits.cpu_seconds} {settings.max_result_bytes} {len(source)}\n"
        request = header.encode() + source
        # Count the whole jail's CPU from here (its init and all it starts), so the
        # CPU limit holds for the jail, not only per process (RLIMIT_CPU).
        cpu_handle = self._cpu_handle
        cpu_start = 0.0
        if cpu_handle is not None:
            cpu_start = self.cgroups.cpu_ms(cpu_handle) or 0.0
        cpu_budget_ms = limits.cpu_seconds * 1000
        started = time.monotonic()
        deadline = started + limits.timeout_seconds
        stdout = bytearray()
        stderr = bytearray()
        report = bytearray(self._buffer)
        caps = {
            "stdout": settings.max_output_bytes,
            "stderr": settings.max_output_bytes,
            "report": settings.max_result_bytes + 4096,
        }
        buffers = {"stdout": stdout, "stderr": stderr, "report": report}
        names = {
            self.proc.stdout.fileno(): "stdout",
            self.proc.stderr.fileno(): "stderr",
            self._result_r: "report",
        }
        pending = memoryview(request)
        os.set_blocking(self._control_w, False)
        stop = reported = False
        with selectors.DefaultSelector() as selector:
            for fd in names:
                selector.register(fd, selectors.EVENT_READ)
            selector.register(self._log_r, selectors.EVENT_READ)
            selector.register(self._control_w, selectors.EVENT_WRITE)
            open_reads = set(names)
            while open_reads and not stop:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    record.timed_out = True
                    break
                if cpu_handle is not None:
                    used = self.cgroups.cpu_ms(cpu_handle)
                    if used is not None and used - cpu_start >= cpu_budget_ms:
                        record.cpu_exceeded = True
                        break
                    remaining = min(remaining, CPU_POLL_SECONDS)
                for key, _ in selector.select(remaining):
                    fd = key.fd
                    if fd == self._control_w:
                        pending = self._send(selector, pending)
                    elif fd == self._log_r:
                        self._read_log()
                    else:
                        name = names[fd]
                        chunk = os.read(fd, 65536)
                        if not chunk:
                            selector.unregister(fd)
                            open_reads.discard(fd)
                            continue
                        buffer = buffers[name]
                        if not _append_capped(buffer, chunk, caps[name]):
                            setattr(record, f"{name}_truncated", True)
                            # stdout flood or oversized result: stop the jail now.
                            # Extra stderr is read and dropped.
                            stop = stop or name != "stderr"
                        elif name == "report" and b"\n" in buffer:
                            reported = True
                            stop = True
        if reported and not record.stdout_truncated:
            # The runner flushed stdout before it wrote its report, so what it
            # printed is already in the pipes: take it without waiting for exit.
            for fd, name in names.items():
                if name != "report":
                    self._drain(fd, buffers[name], caps[name], record, name)
        record.wall_seconds = time.monotonic() - started
        if self.init_pid is not None and self.cgroups.enforced:
            # Before teardown removes the cgroup.
            record.cgroup_peak_bytes = self.cgroups.memory_peak(self.init_pid)
            if cpu_handle is not None:
                used = self.cgroups.cpu_ms(cpu_handle)
                if used is not None:
                    record.cgroup_cpu_ms = max(0.0, used - cpu_start)
        if self._control_w >= 0:
            os.close(self._control_w)  # the runner may exit now
            self._control_w = -1
        if reported and not record.stdout_truncated and not record.cpu_exceeded:
            # Answer now; the jail's teardown (exit, unmapping, cgroup removal)
            # happens off the request path.
            record.log = bytes(self._log)
            REAPER.call(self.finish)
        else:
            self._finish(record, kill_now=stop or record.timed_out or record.cpu_exceeded)
        record.stdout = bytes(stdout)
        record.stderr = bytes(stderr)
        record.report = bytes(report)
        return record

    @staticmethod
    def _drain(fd: int, buffer: bytearray, cap: int, record: RunRecord, name: str) -> None:
        """Read what is already in a pipe, without blocking, up to its cap."""
        os.set_blocking(fd, False)
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            if not _append_capped(buffer, chunk, cap):
                setattr(record, f"{name}_truncated", True)
                return

    def _send(self, selector: selectors.BaseSelector, pending: memoryview) -> memoryview:
        """Write what the control pipe takes. The pipe stays open: closing it tells
        the runner it may exit, once the jail's cgroup has been read."""
        try:
            written = os.write(self._control_w, pending)
        except BlockingIOError:
            return pending
        except BrokenPipeError:
            written = len(pending)  # the runner is gone; its exit tells why
        pending = pending[written:]
        if not pending:
            selector.unregister(self._control_w)
        return pending

    def _finish(self, record: RunRecord, kill_now: bool) -> None:
        """Stop whatever is left of the jail and reap nsjail with its rusage."""
        assert self.proc is not None
        if kill_now:
            self.kill()
        _status, usage = self._reap(grace=2.0)
        record.cpu_seconds = usage.ru_utime + usage.ru_stime
        record.max_rss_bytes = usage.ru_maxrss * 1024
        record.exit_code = self.proc.returncode
        self._drain_log()
        ended = EXIT_LINE.search(bytes(self._log))
        if ended:
            pid = int(ended.group(1))
            record.exit_signal = ended.group(2).decode() if ended.group(2) else None
            record.exit_status = int(ended.group(3)) if ended.group(3) else None
            record.oom_killed = self.cgroups.oom_killed(pid)
        record.log = bytes(self._log)
        self.close()

    def _drain_log(self) -> None:
        """Read nsjail's log to its end (nsjail has exited, so EOF comes at once)."""
        if self._log_r < 0:
            return
        os.set_blocking(self._log_r, True)
        while chunk := os.read(self._log_r, 65536):
            _append_capped(self._log, chunk, MAX_LOG_BYTES)

    def _remove_cgroups(self) -> None:
        """Remove the jail's cgroups if nsjail could not (found from its exit line)."""
        with contextlib.suppress(OSError):
            self._drain_log()
        ended = EXIT_LINE.search(bytes(self._log))
        pid = int(ended.group(1)) if ended else self.init_pid
        if pid is None or not self.cgroups.enforced:
            return
        if self.cgroups.cpuacct is not None:
            REAPER.call(functools.partial(self.cgroups.untrack_cpu, pid))
        if any(directory.exists() for directory in self.cgroups.jail_dirs(pid)):
            # Memory is uncharged asynchronously after an OOM kill: keep trying,
            # off the request path.
            REAPER.call(functools.partial(self.cgroups.remove_jail, pid))

    def _reap(self, grace: float) -> tuple[int, resource.struct_rusage]:
        """Wait for nsjail; after ``grace`` s stop it, and SIGKILL it if it lingers."""
        assert self.proc is not None
        pid = self.proc.pid
        start = time.monotonic()
        stage = 0
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                return status, usage
            waited = time.monotonic() - start
            if stage == 0 and waited >= grace:
                self.kill()
                stage = 1
            elif stage == 1 and waited >= grace + 5:
                os.killpg(pid, signal.SIGKILL)  # nsjail itself is stuck
                stage = 2
            time.sleep(0.002)

    def kill(self) -> None:
        """Ask nsjail to end the jail: on SIGTERM it kills and reaps every jailed process.

        Reaping the jail's init only completes once every process in its pid
        namespace is gone, so when nsjail exits nothing of the jail is left.
        """
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)

    def finish(self) -> None:
        """Let a jail that has reported exit on its own (briefly), then close it."""
        with self._close_lock:
            if self.proc is not None and self.proc.returncode is None:
                self._reap(grace=1.0)
            self._close()

    def close(self) -> None:
        """Kill (if still running), reap and release every fd. Safe to call twice."""
        with self._close_lock:
            self._close()

    def _close(self) -> None:
        if self.proc is not None:
            if self.proc.returncode is None:
                self.kill()
                self._reap(grace=5.0)
            self._remove_cgroups()
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
        for name in ("_control_w", "_result_r", "_log_r"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
