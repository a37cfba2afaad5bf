"""One nsjail jail's life: start it, wait until its runner is ready, hand it one script,
collect what it produced, tear it down. A Jail is used once.

What the jail is made of lives elsewhere: its shape in ``nsjail.cfg``, its command
line in ``pyexec.command``, the wire format with the runner in ``pyexec.protocol``,
the pipe reading in ``pyexec.pipes`` and the reading of nsjail's log in
``pyexec.nsjail_log``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from pyexec import nsjail_log, protocol, watchdog
from pyexec.cgroups import CgroupSupport, CpuMeter
from pyexec.command import JailFds, nsjail_argv
from pyexec.errors import JailStartError, JailStartTimeout, JailUsedError
from pyexec.files import MAX_LISTED
from pyexec.jail_ids import JAIL_IDS, SHARED_ID
from pyexec.kernelfiles import KernelFile, open_kernel_file, read_kernel_file
from pyexec.payload import Payload
from pyexec.pipes import Capture, PipeSet
from pyexec.record import RunRecord
from pyexec.runner_code import runner_launch
from pyexec.settings import Limits, Settings
from pyexec.spawn import (
    LAUNCHER,
    REAPER,
    is_oom_first,
    launch_prefix,
    put_oom_first,
    sets_own_oom_score,
)

MAX_LOG_BYTES = 64 * 1024
CPU_POLL_SECONDS = 0.05  # how often a running jail's CPU is checked against its limit
# A script that writes a byte at a time would make the service wake (and spend CPU)
# once per byte: past this many wake-ups, a wake-up that read little is followed by
# a short wait, so the pipe fills and the next read takes many bytes.
SMALL_READ_BYTES = 4096
SMALL_READS_BEFORE_PAUSE = 32  # wake-ups before pausing starts
COALESCE_SECONDS = 0.005
# What a jail writes to stderr before it is ready is kept up to this (a traceback).
STARTUP_STDERR_BYTES = 16 * 1024
REPORT_SLACK_BYTES = 4096  # the report's own fields around a result of the maximum size
# The listing of returned files in the report: at most MAX_LISTED entries of a
# path (up to 1024 bytes, each up to 6 in the ASCII-escaped JSON) and a size.
LISTING_SLACK_BYTES = MAX_LISTED * (6 * 1024 + 100)


class Jail:
    """A single-use jail: ``start``, ``wait_ready``, then ``run``; ``close`` any time."""

    def __init__(
        self,
        settings: Settings,
        cgroups: CgroupSupport,
        preimport: str = "",
        memory_mb: int | None = None,
        nice_level: int | None = None,
    ) -> None:
        self.settings = settings
        self.nice_level = nice_level  # None: nsjail.cfg's
        # Called once nsjail is reaped, i.e. nothing of the jail runs any more (the
        # executor gives back its admission ticket); at the latest by close().
        self.on_reaped: Callable[[], None] | None = None
        self.cgroups = cgroups
        self.preimport = preimport
        self.memory_mb = memory_mb or settings.memory_mb
        self.proc: subprocess.Popen[bytes] | None = None
        self._control_w = -1
        self._result = Capture(-1, settings.max_result_bytes + REPORT_SLACK_BYTES)
        self._log = Capture(-1, MAX_LOG_BYTES)
        self._ready = False
        self._used = False
        self.ready_at = 0.0
        self.startup_cpu_ms = 0.0
        self.init_pid: int | None = None  # host pid of the jail's init (the runner)
        # Held open from ready to close, read on the request path without an open
        # (pyexec/kernelfiles.py): where the whole jail's CPU is counted, its
        # cgroup's peak memory, its init's limits; and a pidfd that wakes when
        # nsjail exits (None where the kernel has none).
        self._cpu_handle: KernelFile | None = None
        self._peak_file: KernelFile | None = None
        self._init_limits: KernelFile | None = None
        self._exit_fd: int | None = None
        self._oom_written = False  # the service writes the OOM score (spawn.put_oom_first)
        # The host uid and gid of the jail's processes (pyexec/jail_ids.py), taken at
        # start and given back once nsjail is reaped.
        self.outer_id: int | None = None
        # run() hands a jail that answered to the reaper thread; close() may race it.
        self._close_lock = threading.RLock()

    def start(self) -> None:
        """Start nsjail and the runner; returns at once (see ``wait_ready``)."""
        control_r, self._control_w = os.pipe2(os.O_CLOEXEC)
        self._result.fd, result_w = os.pipe2(os.O_CLOEXEC)
        self._log.fd, log_w = os.pipe2(os.O_CLOEXEC)
        fds = JailFds(control_r, result_w, log_w)
        per_jail = self.settings.jail_uids == "per_jail"
        self.outer_id = JAIL_IDS.take() if per_jail else SHARED_ID
        argv = nsjail_argv(
            self.settings,
            self.cgroups,
            self.memory_mb,
            self.preimport,
            fds,
            self.outer_id,
            launch_prefix(self.settings.nsjail_path),
            self.nice_level,
        )
        try:
            runner_fds = runner_launch(self.settings.sandbox_python).fds
            self.proc = LAUNCHER.popen(argv, (control_r, result_w, log_w, *runner_fds))
        except BaseException:
            self._give_back_id()
            raise
        finally:
            for fd in (control_r, result_w, log_w):
                os.close(fd)
        self._exit_fd = _pidfd(self.proc.pid)
        # The built nsjail has given itself (and so the init) the score already.
        self._oom_written = not sets_own_oom_score(self.settings.nsjail_path)
        if self._oom_written:
            put_oom_first(self.proc.pid)

    def _outputs(self) -> tuple[int, int]:
        """The fds of the jail's stdout and stderr."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        return self.proc.stdout.fileno(), self.proc.stderr.fileno()

    def wait_ready(self, timeout: float) -> None:
        """Block until the runner reports ready, or raise JailStartError (the jail is
        then stopped)."""
        deadline = time.monotonic() + timeout
        # Anything printed before the script arrives (import warnings) is the
        # jail's, not the user's: never shown to a script's caller, but the start
        # of stderr names why a jail that exits before it is ready did.
        dropped = [Capture(fd, 0) for fd in self._outputs()]
        dropped[1].cap = STARTUP_STDERR_BYTES
        # nsjail's log is not watched here: it writes ~25 lines while the jail starts,
        # a few KB that its pipe holds, and each would wake this thread. It is read
        # once the jail is ready, or has failed (log_text).
        with PipeSet([self._result, *dropped]) as pipes:
            while (line := protocol.first_line(self._result.data)) is None:
                remaining = deadline - time.monotonic()
                if self._result.eof or remaining <= 0:
                    self.terminate()
                    if self._result.eof:
                        raise JailStartError(
                            f"the jail exited before it was ready: {self.log_text()}"
                            f"{_last_line(dropped[1].data)}"
                        )
                    raise JailStartTimeout(
                        f"the jail was not ready within {timeout:g} s: {self.log_text()}"
                    )
                pipes.pump(remaining)
        self._log.drain()
        del self._result.data[: len(line) + len(protocol.LINE_END)]
        startup_cpu_ms = protocol.parse_ready(line)
        if startup_cpu_ms is None:
            self.terminate()
            raise JailStartError(f"the runner did not report ready: {line[:200]!r}")
        self.startup_cpu_ms = startup_cpu_ms
        self.init_pid = self._init_pid()
        if self.init_pid is not None and self._oom_written:
            # This nsjail may have started the init before it got its own score:
            # the init gets it here, before any script, and what the script starts
            # inherits it.
            put_oom_first(self.init_pid)
        if self.init_pid is not None:
            self._init_limits = open_kernel_file(f"/proc/{self.init_pid}/limits")
        if self.init_pid is not None and self.cgroups.enforced:
            # Joining a v1 cgroup costs milliseconds (an RCU grace period): done
            # here, while the jail warms up, not when the script is handed over.
            self._cpu_handle = self.cgroups.track_cpu(self.init_pid)
            self._peak_file = self.cgroups.memory_peak_file(self.init_pid)
        self._ready = True
        self.ready_at = time.monotonic()

    def oom_first(self) -> bool:
        """Whether the jail's init runs with oom_score_adj 1000, read from /proc (the
        self-test reports it: from the built nsjail's own score or the service's
        writes)."""
        return self.init_pid is not None and is_oom_first(self.init_pid)

    def alive(self) -> bool:
        """True while nsjail (and so the jail) has not exited; never reaps it."""
        if self.proc is None or self.proc.returncode is not None:
            return False
        if self._exit_fd is not None:
            try:
                exited = os.waitid(os.P_PIDFD, self._exit_fd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # reaped by another thread meanwhile
                return False
            return exited is None
        try:
            stat = read_kernel_file(f"/proc/{self.proc.pid}/stat")
            state = stat.rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"

    def _init_pid(self) -> int | None:
        """The host pid of nsjail's one child, the jail's init."""
        assert self.proc is not None
        children = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"
        try:
            pids = read_kernel_file(children).split()
        except OSError:
            return None
        return int(pids[0]) if pids else None

    def set_priority(self, niceness: int) -> None:
        """Renice the jail's init (host pid) so a running script outranks warming jails.

        Jails start at nsjail.cfg's nice level; processes the script starts later
        inherit the new value. Best effort: a jail that is gone needs no priority.
        """
        self.nice_level = niceness  # the watchdog's base without cgroups
        pid = self.init_pid or self._init_pid()
        if pid is not None:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, niceness)

    def log_text(self) -> str:
        """nsjail's own log lines so far (for operators and service logs only)."""
        with contextlib.suppress(OSError):
            self._log.drain()
        return nsjail_log.summary(bytes(self._log.data))

    def run(
        self, script: str, limits: Limits | None = None, payload: Payload | None = None
    ) -> RunRecord:
        """Hand the script over and collect everything it produced.

        The jail is then torn down: at once when the run ended abnormally, else by
        the reaper once the answer is on its way; and always if this raises.
        """
        if self._used or not self._ready:
            raise JailUsedError("a jail serves exactly one script, once it is ready")
        self._used = True
        try:
            return self._run(
                script, limits or self.settings.default_limits(), payload or Payload()
            )
        except BaseException:
            self.close()
            raise

    def _run(self, script: str, limits: Limits, payload: Payload) -> RunRecord:
        if limits.memory_mb != self.memory_mb:
            raise JailUsedError("this jail was started with another memory limit")
        record = RunRecord(
            limits=limits, startup_cpu_ms=self.startup_cpu_ms, wants_files=payload.wants_files
        )
        source = script.encode("utf-8", "surrogatepass")
        meta, data = payload.meta_and_data()
        request = protocol.request_bytes(
            limits.cpu_seconds, self.settings.max_result_bytes, source, meta, data
        )
        if payload.caps is not None and payload.wants_files:
            # Room for the returned files and their listing after the report.
            self._result.cap += payload.caps.max_total_bytes + LISTING_SLACK_BYTES
        # Count the whole jail's CPU from here (its init and all it starts), so the
        # CPU limit holds for the jail, not only per process (RLIMIT_CPU).
        meter = CpuMeter.begin(self._cpu_handle)
        started = time.monotonic()
        reported = self._exchange(request, limits, record, meter)
        record.wall_seconds = time.monotonic() - started
        self._measure(record, meter)
        if self._control_w >= 0:
            os.close(self._control_w)  # the runner may exit now
            self._control_w = -1
        if (
            reported
            and not record.stdout_truncated
            and not record.cpu_exceeded
            and not record.memory_exceeded
        ):
            # Answer now; the jail's teardown (exit, unmapping, cgroup removal)
            # happens off the request path. It is stopped at once, not waited for:
            # its figures are read, and the runner has nothing left to do, but a
            # script may have left processes busy or kept the runner from exiting,
            # and CPU spent after the report is outside both the limit and `usage`.
            record.log = bytes(self._log.data)
            self._stop_after_answer()
        else:
            stopped = reported or record.stdout_truncated or record.report_truncated
            self.collect(
                record,
                kill_now=stopped
                or record.timed_out
                or record.cpu_exceeded
                or record.memory_exceeded,
            )
        return record

    def _stop_after_answer(self) -> None:
        """Signal nsjail now and leave its teardown to the exit watch, which runs it
        once nsjail has exited (spawn.Reaper.after_exit): by then this request's
        answer is usually on its way, and no thread was woken meanwhile. Without a
        pidfd, a reaper thread waits for it."""
        self.terminate()
        with self._close_lock:  # no close() can release the pidfd meanwhile
            if self._exit_fd is not None:
                REAPER.after_exit(self._exit_fd, self.close)
                return
        REAPER.call(self.close)

    def _exchange(
        self, request: bytes, limits: Limits, record: RunRecord, meter: CpuMeter
    ) -> bool:
        """Write the request and read the jail's pipes until it reports, floods, ends
        or passes its time or CPU limit; True when a whole report arrived.

        stdout flood or an oversized result stops the jail; extra stderr is read
        and dropped.
        """
        max_output = self.settings.max_output_bytes
        stdout_fd, stderr_fd = self._outputs()
        # Past its cap, stdout stops the jail (output_limit); stderr is only cut, and
        # read at a pace of the service's choosing.
        stdout, stderr = Capture(stdout_fd, max_output), Capture(stderr_fd, max_output, paced=True)
        outputs = (stdout, stderr, self._result)
        deadline = time.monotonic() + limits.timeout_seconds
        cpu_budget_ms = limits.cpu_seconds * 1000
        wakeups = 0
        # The first check at once: a run that dies at its first instruction leaves
        # its peak memory only in this sample (its cgroup may go with it).
        next_check = 0.0
        report_length: int | None = None
        with PipeSet([*outputs, self._log], self._control_w, request) as pipes:
            while not all(capture.eof for capture in outputs):
                now = time.monotonic()
                if now >= deadline:
                    record.timed_out = True
                    break
                if now >= next_check:
                    if self._over_limits(meter, cpu_budget_ms, record, first=not next_check):
                        break
                    next_check = now + CPU_POLL_SECONDS
                got = pipes.pump(min(deadline, next_check) - now)
                wakeups += 1
                if wakeups > SMALL_READS_BEFORE_PAUSE and got < SMALL_READ_BYTES:
                    time.sleep(COALESCE_SECONDS)  # a dripping writer: read in batches
                if stdout.truncated or self._result.truncated:
                    break
                if report_length is None:
                    report_length = protocol.report_length(self._result.data, record.wants_files)
                if report_length is not None and len(self._result.data) >= report_length:
                    break
        reported = (
            not self._result.truncated
            and report_length is not None
            and len(self._result.data) >= report_length
        )
        if reported and not stdout.truncated:
            # The runner flushed stdout before it wrote its report, so what it
            # printed is already in the pipes: take it without waiting for exit.
            stdout.drain()
            stderr.drain()
        record.stdout, record.stdout_truncated = bytes(stdout.data), stdout.truncated
        record.stderr, record.stderr_truncated = bytes(stderr.data), stderr.truncated
        record.report, record.report_truncated = bytes(self._result.data), self._result.truncated
        return reported

    def _over_limits(
        self, meter: CpuMeter, cpu_budget_ms: float, record: RunRecord, first: bool = False
    ) -> bool:
        """Every poll interval (not every wake-up): the jail's CPU against its limit,
        what a killed jail would take with it, and without cgroups its memory; True
        (and the record says which) when the jail must stop. The ``first`` check, at
        the hand-over, skips the CPU: the meter has just begun, at zero."""
        if not first and self._over_cpu(meter, cpu_budget_ms):
            record.cpu_exceeded = True
            return True
        self._sample(record)
        return record.memory_exceeded

    @staticmethod
    def _over_cpu(meter: CpuMeter, budget_ms: float) -> bool:
        """True once the whole jail has used its CPU budget (when it can be counted)."""
        used = meter.used_ms()
        return used is not None and used >= budget_ms

    def _sample(self, record: RunRecord) -> None:
        """What the jail may take with it when it is killed: its peak memory, and the
        CPU limit its init runs under."""
        if self.init_pid is None:
            return
        self._sample_peak(record)
        if not self.cgroups.enforced:
            self._watch_without_cgroups(record)
        hard = _cpu_rlimit_seconds(self._init_limits)
        if hard is not None:
            record.init_cpu_rlimit_seconds = min(hard, record.init_cpu_rlimit_seconds or hard)

    def _watch_without_cgroups(self, record: RunRecord) -> None:
        """Without cgroups, RLIMIT_AS holds each process, not the jail, and the CPU is
        shared per thread: sum the memory of all of the jail's processes and stop the
        jail past its limit, and lower their priority as they multiply
        (pyexec/watchdog.py)."""
        assert self.init_pid is not None
        tree = watchdog.jail_tree(self.init_pid)
        resident = watchdog.resident_bytes(tree.processes)
        record.jail_peak_bytes = max(resident, record.jail_peak_bytes or 0)
        if resident > self.memory_mb * 1024 * 1024:
            record.memory_exceeded = True
            self.terminate()
            return
        base = watchdog.LOWEST_NICE if self.nice_level is None else self.nice_level
        watchdog.hold_share(tree.threads, base)

    def _sample_peak(self, record: RunRecord) -> None:
        """Keep the jail's peak memory as seen now: a run that is killed may take its
        cgroup with it before the end of the run can read it."""
        assert self.init_pid is not None
        if self.cgroups.enforced:
            peak = None if self._peak_file is None else self.cgroups.memory_peak(self._peak_file)
            if peak is not None:
                record.cgroup_peak_bytes = max(peak, record.cgroup_peak_bytes or 0)
            return
        hwm = _vm_hwm_bytes(self.init_pid)
        if hwm is not None:
            record.init_peak_bytes = max(hwm, record.init_peak_bytes or 0)

    def _measure(self, record: RunRecord, meter: CpuMeter) -> None:
        """The jail's cgroup figures, read before teardown removes the cgroup."""
        if self.init_pid is None:
            return
        self._sample_peak(record)
        if not self.cgroups.enforced:
            return
        used = meter.used_ms()
        if used is not None:
            record.cgroup_cpu_ms = max(0.0, used)

    def collect(self, record: RunRecord, kill_now: bool) -> None:
        """Stop what is left of the jail (when ``kill_now``, else let it end), reap
        nsjail with its rusage, read how the jail ended from nsjail's log, close."""
        assert self.proc is not None
        if kill_now:
            self.terminate()
        usage = self._reap(grace=2.0)
        record.cpu_seconds = usage.ru_utime + usage.ru_stime
        if self.init_pid is not None and self.cgroups.enforced:
            self._sample_peak(record)  # an OOM-killed jail's cgroup outlives it a while
        record.exit_code = self.proc.returncode
        self._log.drain(block=True)
        ended = nsjail_log.ending(bytes(self._log.data))
        if ended is not None:
            record.exit_signal = ended.signal
            record.exit_status = ended.status
            record.oom_killed = self.cgroups.oom_killed(ended.pid)
        record.log = bytes(self._log.data)
        self.close()

    def terminate(self) -> None:
        """Ask nsjail to end the jail: on SIGTERM it kills and reaps every jailed process.

        Reaping the jail's init only completes once every process in its pid
        namespace is gone, so when nsjail exits nothing of the jail is left.
        """
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)

    def close(self) -> None:
        """End the jail if it still runs, reap nsjail, remove the jail's cgroups,
        release every fd. Safe to call twice, and from two threads."""
        with self._close_lock:
            if self.proc is not None:
                if self.proc.returncode is None:
                    self.terminate()
                    self._reap(grace=5.0)
                self._remove_cgroups()
                for stream in (self.proc.stdout, self.proc.stderr):
                    if stream is not None:
                        stream.close()
            self._release_fds()
        self._notify_reaped()

    def _release_fds(self) -> None:
        """Close the pipes, the kernel files held open and the pidfd (under the
        close lock)."""
        for capture in (self._result, self._log):
            if capture.fd >= 0:
                os.close(capture.fd)
                capture.fd = -1
        for held in (self._cpu_handle, self._peak_file, self._init_limits):
            if held is not None:
                held.close()
        if self._exit_fd is not None:
            os.close(self._exit_fd)
            self._exit_fd = None
        if self._control_w >= 0:
            os.close(self._control_w)
            self._control_w = -1

    def _notify_reaped(self) -> None:
        """Give back the jail's outer id and call ``on_reaped``, once."""
        self._give_back_id()
        with self._close_lock:
            on_reaped, self.on_reaped = self.on_reaped, None
        if on_reaped is not None:
            on_reaped()

    def _give_back_id(self) -> None:
        """Free the jail's per-jail outer id: nothing of the jail runs as it any more."""
        with self._close_lock:
            outer_id, self.outer_id = self.outer_id, None
        if outer_id is not None:
            JAIL_IDS.give_back(outer_id)  # the shared 65534 was never handed out: ignored

    def _reap(self, grace: float) -> resource.struct_rusage:
        """Wait for nsjail; after ``grace`` s stop it, and SIGKILL it 5 s later
        (nsjail itself stuck). Returns its rusage (the whole jail's).

        Sleeps on a pidfd, which wakes when nsjail exits, where the kernel has them
        (5.3 and later); else polls every 2 ms."""
        assert self.proc is not None
        pid = self.proc.pid
        start = time.monotonic()
        stage = 0
        exit_fd = self._exit_fd
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self._notify_reaped()
                return usage
            waited = time.monotonic() - start
            if stage == 0 and waited >= grace:
                self.terminate()
                stage = 1
            elif stage == 1 and waited >= grace + 5:
                os.killpg(pid, signal.SIGKILL)
                stage = 2
            if exit_fd is None:
                time.sleep(0.002)
            else:
                next_stage = (grace, grace + 5, waited + 1.0)[stage]
                select.select([exit_fd], [], [], max(0.0, next_stage - waited))

    def _remove_cgroups(self) -> None:
        """Remove the jail's cgroups if nsjail could not (found from its exit line),
        off the request path."""
        with contextlib.suppress(OSError):
            self._log.drain(block=True)
        ended = nsjail_log.ending(bytes(self._log.data))
        pid = ended.pid if ended is not None else self.init_pid
        if pid is None or not self.cgroups.enforced:
            return
        # nsjail is reaped, so the cgroup is empty: one rmdir here mostly does it,
        # without another thread (the reaper retries what the kernel still holds).
        if not self.cgroups.untrack_cpu(pid, patiently=False):
            REAPER.call(functools.partial(self.cgroups.untrack_cpu, pid))
        if self.cgroups.leaves_jail_dirs(pid):
            # Memory is uncharged asynchronously after an OOM kill: keep trying.
            REAPER.call(functools.partial(self.cgroups.remove_jail, pid))


def _pidfd(pid: int) -> int | None:
    """A file descriptor that becomes readable when ``pid`` exits, or None."""
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


def _last_line(stderr: bytes | bytearray) -> str:
    """`` | runner stderr: <its last line>`` (e.g. the exception a failed import
    raised), or nothing when the runner wrote nothing."""
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return f" | runner stderr: {lines[-1][:300]}" if lines else ""


def _vm_hwm_bytes(pid: int) -> int | None:
    """A process's peak resident set (VmHWM) from /proc, or None once it is gone."""
    try:
        for line in read_kernel_file(f"/proc/{pid}/status").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cpu_rlimit_seconds(limits: KernelFile | None) -> int | None:
    """A process's hard RLIMIT_CPU in seconds from its /proc limits file (None:
    unlimited, gone or never opened)."""
    if limits is None:
        return None
    try:
        for line in limits.read().splitlines():
            if line.startswith("Max cpu time"):
                hard = line.split()[4]
                return int(hard) if hard.isdigit() else None
    except (OSError, IndexError):
        return None
    return None
