"""Starting and tearing down nsjail processes: one launcher thread, one reaper.

Both are process-wide services for pyexec.jail. The launcher exists because
PR_SET_PDEATHSIG fires when the *thread* that forked a process exits; the reaper
because a jail that has answered is torn down off the request path, and tests and
shutdown need to wait for that.
"""

from __future__ import annotations

import functools
import logging
import mmap
import os
import queue
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from pyexec.kernelfiles import read_kernel_file, write_kernel_file

log = logging.getLogger("pyexec")
# Teardowns that may run at once (pyexec.spawn.Reaper).
REAPER_THREADS = 64
# How long the exit watch waits for a process it was given before it hands the
# teardown to a reaper thread, whose teardown stops a stuck nsjail the hard way.
EXIT_WATCH_SECONDS = 5.0

# nsjail gets SIGKILL if the service process dies, however it dies (its own
# PR_SET_PDEATHSIG then takes the jail down): no jail outlives the service. The
# nsjail that scripts/build_nsjail.sh builds sets that signal itself, before its
# main() (scripts/nsjail_pdeathsig.c), and holds this marker; any other nsjail runs
# under util-linux's setpriv, present on every Debian-based image, at the cost of
# one more exec per jail (~1 ms of CPU).
PDEATHSIG_MARKER = b"pyexec-nsjail: PR_SET_PDEATHSIG=SIGKILL set before main"
# The same nsjail denies every x32 system call to itself and all it starts, by a
# seccomp filter it installs before its main() (scripts/nsjail_x32.c), and holds
# this marker; any other nsjail gets the x32 table in its policy on its command
# line (pyexec.command.x32_policy_args).
X32_MARKER = b"pyexec-nsjail: x32 system calls denied (EPERM) before main"
# The same nsjail gives itself oom_score_adj 1000 before its main()
# (scripts/nsjail_oom.c), which its jail inherits, and holds this marker; the
# service writes the score for any other nsjail (put_oom_first).
OOM_MARKER = b"pyexec-nsjail: oom_score_adj=1000 set before main"
_SETPRIV = shutil.which("setpriv")
SETPRIV_PREFIX: tuple[str, ...] = (_SETPRIV, "--pdeathsig", "KILL") if _SETPRIV else ()
# The kernel's OOM killer takes jails first: nsjail and the jail's init get
# oom_score_adj 1000 (raising it needs no privilege), which the built nsjail sets
# itself (OOM_MARKER) and the service writes through /proc for any other, rather
# than by a `choom` exec per jail (~1.3 ms of CPU each). Without
# cgroups, an overshoot between two polls of the memory watchdog then kills a jail,
# never the service (the service lowers its own score where it may).
JAIL_OOM_SCORE_ADJ = 1000
SERVICE_OOM_SCORE_ADJ = -500


@functools.cache
def _resolve(nsjail_path: str) -> str:
    return shutil.which(nsjail_path) or nsjail_path


def _holds(nsjail_path: str, marker: bytes) -> bool:
    """Whether this nsjail binary holds ``marker`` (one of our constructors'); False
    when it cannot be read. Each file is read once, but a binary replaced at the same
    path (`make setup` while the service runs) is read anew: one stat per call."""
    path = _resolve(nsjail_path)
    try:
        stat = os.stat(path)
    except OSError:
        return False
    return _file_holds(path, (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns), marker)


@functools.cache
def _file_holds(path: str, identity: tuple[int, int, int, int], marker: bytes) -> bool:
    try:
        with (
            open(path, "rb") as binary,
            mmap.mmap(binary.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            return data.find(marker) >= 0
    except (OSError, ValueError):  # gone since, unreadable, empty
        return False


def forget_binaries() -> None:
    """Read each nsjail binary afresh next time (tests that rewrite one in place
    within one tick of the file system's clock)."""
    _resolve.cache_clear()
    _file_holds.cache_clear()


def sets_own_death_signal(nsjail_path: str) -> bool:
    """Whether this nsjail binary gives itself PR_SET_PDEATHSIG (PDEATHSIG_MARKER)."""
    return _holds(nsjail_path, PDEATHSIG_MARKER)


def denies_x32_itself(nsjail_path: str) -> bool:
    """Whether this nsjail binary denies x32 system calls to every jail by a filter
    of its own (X32_MARKER). The service's self-test proves it in a real jail either
    way: a binary that holds the marker but not the filter is refused."""
    return _holds(nsjail_path, X32_MARKER)


def sets_own_oom_score(nsjail_path: str) -> bool:
    """Whether this nsjail binary gives itself (and so its jail) oom_score_adj 1000
    (OOM_MARKER). The self-test reads the score of a real jail's init either way."""
    return _holds(nsjail_path, OOM_MARKER)


def launch_prefix(nsjail_path: str) -> tuple[str, ...]:
    """What nsjail is started under: nothing when it sets its own death signal,
    else setpriv's (nothing either when there is no setpriv: see dies_with_service)."""
    return () if sets_own_death_signal(nsjail_path) else SETPRIV_PREFIX


def dies_with_service(nsjail_path: str) -> bool:
    """Whether nsjail (and so every jail) is killed when the service dies, by its own
    death signal or by setpriv's (the start-up log's ``dies_with_service``)."""
    return sets_own_death_signal(nsjail_path) or bool(SETPRIV_PREFIX)


def _set_oom_score_adj(pid: int | str, value: int) -> bool:
    try:
        write_kernel_file(f"/proc/{pid}/oom_score_adj", str(value))
    except OSError:
        return False
    return True


def is_oom_first(pid: int) -> bool:
    """Whether process ``pid`` runs with oom_score_adj 1000 (False once it is gone)."""
    try:
        return read_kernel_file(f"/proc/{pid}/oom_score_adj").strip() == str(JAIL_OOM_SCORE_ADJ)
    except OSError:
        return False


def put_oom_first(pid: int) -> bool:
    """Make process ``pid`` (nsjail, or a jail's init before any script runs in it)
    the OOM killer's first choice; what it starts later inherits that. Whether it
    worked (the process may be gone)."""
    return _set_oom_score_adj(pid, JAIL_OOM_SCORE_ADJ)


def lower_own_oom_score() -> bool:
    """Make the service the OOM killer's last choice (needs CAP_SYS_RESOURCE); whether
    it worked. Not -1000: a service that leaks must still be killable."""
    return _set_oom_score_adj("self", SERVICE_OOM_SCORE_ADJ)


class Launcher:
    """Starts every nsjail process from a thread that outlives it.

    PR_SET_PDEATHSIG (nsjail's own, or setpriv's) fires when the *thread* that forked the
    process exits, not the process: a jail started from a thread that ends (a
    request's, the self-test's) would be killed with it, even mid-request. So nsjail
    is started from one long-lived launcher thread; or, without that hand-off (two
    thread wake-ups, ~3% of the worker's CPU per request: issue 20), from a thread
    that has said it will outlive what it starts (``start_here``, the pool's refill
    workers), which must then call ``outlive_jails`` before it ends.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[
            tuple[list[str], tuple[int, ...], Future[subprocess.Popen[bytes]]]
        ] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        # The threads that start their own nsjails (start_here), each with those it
        # started that may not have been reaped yet; and the process they belong to.
        self._started_here: dict[int, list[subprocess.Popen[bytes]]] = {}
        self._started_here_pid = 0

    def start_here(self) -> None:
        """From now on, start the calling thread's nsjails in that thread. The caller
        promises to call ``outlive_jails`` before it ends."""
        if self._started_here_pid != os.getpid():  # after a fork: not the parent's
            self._started_here = {}
            self._started_here_pid = os.getpid()
        self._started_here[threading.get_ident()] = []

    def outlive_jails(self, poll_seconds: float = 0.05) -> None:
        """Block the calling thread until every nsjail it started itself has exited:
        their death signal fires when this thread ends. Called by a thread that used
        ``start_here``, as the last thing before it ends."""
        started = self._started_here.pop(threading.get_ident(), [])
        while any(not _exited(process) for process in started):
            time.sleep(poll_seconds)

    def popen(self, argv: list[str], pass_fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
        """Start ``argv``, from this thread if it has said it will outlive what it
        starts (``start_here``), else from the launcher thread; return its Popen."""
        if self._started_here_pid == os.getpid():
            started = self._started_here.get(threading.get_ident())
            if started is not None:
                started[:] = [process for process in started if process.returncode is None]
                process = _start(argv, pass_fds)
                started.append(process)
                return process
        with self._lock:
            # After a fork (gunicorn's worker) the parent's thread does not exist here.
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._requests = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._serve, name="jail-launcher", daemon=True
                )
                self._pid = os.getpid()
                self._thread.start()
        future: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put((argv, pass_fds, future))
        return future.result()

    def _serve(self) -> None:
        requests = self._requests
        while True:
            argv, pass_fds, future = requests.get()
            try:
                future.set_result(_start(argv, pass_fds))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)


def _start(argv: list[str], pass_fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
    """Start one nsjail (from a thread that outlives it: see Launcher)."""
    return subprocess.Popen(
        argv,
        # Nothing of the service's environment (its secrets among it) reaches nsjail,
        # which needs none: the jail's own is nsjail.cfg's envar lines. Without a
        # locale, setpriv also starts ~0.2 ms sooner.
        env={},
        # Opened afresh for each nsjail: an fd kept for all of them would become
        # some other file's if anything closed it.
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Unbuffered: only the pipes' fds are used (pyexec.pipes), and a buffered
        # reader costs a seek test per pipe.
        bufsize=0,
        pass_fds=pass_fds,
        start_new_session=True,
    )


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether ``process`` has exited, without reaping it (its jail's teardown reaps
    it, for its rusage)."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped meanwhile
        return True


LAUNCHER = Launcher()


class Reaper:
    """Tears down jails (and their cgroups) off the request path, and can wait for it.

    Teardowns run on a pool of threads that are kept once started (starting a thread
    per teardown cost ~0.1 ms of the worker's CPU, two or three per request), up to
    REAPER_THREADS at once: a teardown may wait seconds for a stuck jail, and must not
    hold the others up.

    A jail that has answered is first only signalled, and its teardown waits in one
    exit-watch thread (``after_exit``) on nsjail's pidfd, with every other such jail's,
    in one epoll set: handing it to a reaper thread at once woke that thread while the
    request's own thread still ran, only for it to contend for the GIL and then sleep
    on the pidfd (issue 20).
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pending = 0
        self._threads: ThreadPoolExecutor | None = None
        self._pid = 0
        # The exit watch: an epoll set of pidfds (the watch's own duplicates), each
        # fd's teardown and the time after which a reaper thread takes it over.
        self._exits: select.epoll | None = None
        self._watched: dict[int, tuple[Callable[[], object], float]] = {}
        self._watch_pid = 0

    def call(self, work: Callable[[], object]) -> None:
        """Run ``work`` in a background thread that ``wait_idle`` accounts for."""
        with self._condition:
            self._pending += 1
        self._submit(work)

    def _submit(self, work: Callable[[], object]) -> None:
        """Run ``work``, already counted as pending, on a reaper thread."""
        with self._condition:
            # After a fork (gunicorn's worker) the parent's threads do not exist here.
            if self._threads is None or self._pid != os.getpid():
                self._threads = ThreadPoolExecutor(REAPER_THREADS, "jail-reaper")
                self._pid = os.getpid()
            threads = self._threads
        threads.submit(self._run, work)

    def after_exit(self, pidfd: int, work: Callable[[], object]) -> None:
        """Run ``work`` once the process of ``pidfd`` has exited (so that it finds
        nothing left to wait for), in the exit-watch thread; after EXIT_WATCH_SECONDS
        on a reaper thread instead. ``pidfd`` stays the caller's: the watch sleeps on
        a duplicate, so the caller may close its own at any time. Counted by
        ``wait_idle`` from now."""
        watched = os.dup(pidfd)
        with self._condition:
            # After a fork (gunicorn's worker) the parent's thread, and what it
            # watched, are not this process's.
            if self._exits is None or self._watch_pid != os.getpid():
                self._exits = select.epoll()
                self._watched = {}
                self._watch_pid = os.getpid()
                threading.Thread(
                    target=self._watch_exits, args=(self._exits,), name="jail-exits", daemon=True
                ).start()
            self._pending += 1
            self._watched[watched] = (work, time.monotonic() + EXIT_WATCH_SECONDS)
            # A sleeping epoll_wait sees an fd added from another thread: no wake-up.
            self._exits.register(watched, select.EPOLLIN | select.EPOLLONESHOT)

    def _watch_exits(self, exits: select.epoll) -> None:
        """The exit watch: run the teardown of each process that has exited, and hand
        to a reaper thread those that have not within EXIT_WATCH_SECONDS."""
        timeout = EXIT_WATCH_SECONDS
        while True:
            events = exits.poll(timeout)
            now = time.monotonic()
            exited = {fd for fd, _mask in events}
            with self._condition:
                late = {fd for fd, (_work, after) in self._watched.items() if after <= now}
                ended = [(fd, self._watched.pop(fd)[0]) for fd in exited | late]
                soonest = min((after for _work, after in self._watched.values()), default=None)
            timeout = EXIT_WATCH_SECONDS if soonest is None else max(0.0, soonest - now)
            for fd, work in ended:
                os.close(fd)  # also takes it out of the epoll set
                if fd in exited:
                    self._run(work)
                else:  # still running: a reaper thread's teardown stops it
                    self._submit(work)

    def _run(self, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:
            log.exception("a jail's teardown failed")
        finally:
            with self._condition:
                self._pending -= 1
                if not self._pending:  # only wait_idle waits, for none pending
                    self._condition.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no teardown is pending (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True


REAPER = Reaper()
