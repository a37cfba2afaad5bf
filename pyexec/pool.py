"""Pools of pre-warmed, single-use jails, refilled in the background.

A cold jail costs ~20-40 ms and ``import numpy, pandas`` inside it ~0.3-0.6 s of
CPU. So jails are started ahead of time: each runs the runner up to "ready"
(having imported its pool's modules) and waits for one script. A jail serves one
request and is destroyed; nothing is reused, so isolation is that of a cold jail.

There are three pools: *heavy* jails have imported ``settings.preimport`` (numpy and
pandas by default); *chart* jails have imported those and ``matplotlib.pyplot``;
*light* ones have imported nothing, so scripts that never mention those modules do
not pay for them under sustained load. A script goes to the chart pool when its
source names matplotlib, else to the heavy pool when it names a pre-imported
module, else to the light one. Charts get a pool of their own because importing
pyplot doubles a heavy jail's warm-up CPU (docs/performance.md, Charts): every
numpy and pandas request would pay for it.

Warming jails run at nice 19 (nsjail.cfg); a jail handed a script is reniced to
RUNNING_NICE, so refills take only the CPU that running scripts leave.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from pyexec.cgroups import CgroupSupport
from pyexec.errors import JailStartError
from pyexec.jail import Jail
from pyexec.settings import Settings
from pyexec.spawn import LAUNCHER

log = logging.getLogger("pyexec.pool")

RUNNING_NICE = 10
CHART_MODULE = "matplotlib.pyplot"
CHART_PATTERN = re.compile(r"\bmatplotlib\b")
FAILURE_BACKOFF_SECONDS = 1.0


@dataclass
class _Pool:
    """Ready jails of one kind and how many are being started for it."""

    name: str
    preimport: str
    size: int
    ready: deque[Jail] = field(default_factory=deque)
    starting: int = 0
    waiters: int = 0  # requests waiting for one of the jails being started


class JailPools:
    """The light and heavy pools, their refill workers, and jail hand-out."""

    def __init__(self, settings: Settings, cgroups: CgroupSupport) -> None:
        self.settings = settings
        self.cgroups = cgroups
        # PYEXEC_POOL_SIZE=0 turns the pool off altogether; a light jail costs a
        # few MB idle, so more of them are kept than of heavy ones (~45 MB each).
        sizes = settings.pool_sizes()
        self.light = _Pool("light", "", sizes["light"])
        self.heavy = _Pool("heavy", ",".join(settings.preimport), sizes["heavy"])
        self.chart = _Pool("chart", ",".join([*settings.preimport, CHART_MODULE]), sizes["chart"])
        # Refilled in this order when equally short.
        self._all = (self.heavy, self.chart, self.light)
        names = "|".join(re.escape(name.split(".")[0]) for name in settings.preimport)
        self._heavy_pattern = re.compile(rf"\b(?:{names})\b") if names else None
        # Two conditions on one lock, so that each wakes only whom it concerns: a
        # jail taken wakes one idle refill worker (not all of them, nor the waiting
        # requests); a jail ready, or a start ended, wakes the requests waiting for one.
        # Code takes the lock itself: a Condition's __enter__ and __exit__ are Python
        # calls on every request's path.
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self._refill_due = threading.Condition(self._lock)
        self._closed = False
        # Held for a whole close(): shutdown's close waits for one that a SIGTERM
        # handler's thread already began, so no jail outlives shutdown's sweep.
        self._closing = threading.Lock()
        # Set by each refill worker when it has left its loop (it then lives on
        # until the jails it started have exited: spawn.Launcher.start_here).
        self._workers_done: list[threading.Event] = []

    def start(self) -> None:
        """Start the refill workers (none when the pool size is 0)."""
        if sum(pool.size for pool in self._all) == 0:
            return
        for index in range(self.settings.pool_refill):
            done = threading.Event()
            threading.Thread(
                target=self._refill_loop, args=(done,), name=f"pool-refill-{index}", daemon=True
            ).start()
            self._workers_done.append(done)

    def pool_for(self, script: str) -> _Pool:
        """The chart pool if the script names matplotlib, the heavy pool if it names a
        pre-imported module, else the light one."""
        if CHART_PATTERN.search(script):
            return self.chart
        if self._heavy_pattern is not None and self._heavy_pattern.search(script):
            return self.heavy
        return self.light

    def _new_jail(
        self, pool: _Pool, memory_mb: int | None = None, nice_level: int | None = None
    ) -> Jail:
        jail = Jail(self.settings, self.cgroups, pool.preimport, memory_mb, nice_level)
        jail.start()
        return jail

    def cold_jail(self, pool: _Pool, memory_mb: int | None = None) -> Jail:
        """Start a jail for a waiting request, at running priority from its first
        instruction; the caller closes it."""
        jail = self._new_jail(pool, memory_mb, RUNNING_NICE)
        try:
            jail.wait_ready(self.settings.startup_timeout_seconds)
        except BaseException:
            jail.close()
            raise
        return jail

    def acquire(self, script: str, memory_mb: int | None = None) -> tuple[Jail, bool]:
        """A ready jail for ``script`` and whether it came warm from the pool.

        Waits up to ``pool_wait_seconds`` for a refill already under way, but only
        while there are fewer waiters than refills in flight (in a burst, queueing
        behind one refill worker would serialize everyone); otherwise it starts a
        cold jail at once: an empty pool never fails a request. Pooled jails have
        the default memory limit; a request with its own starts a cold jail.
        """
        pool = self.pool_for(script)
        if memory_mb is not None and memory_mb != self.settings.memory_mb:
            return self.cold_jail(pool, memory_mb), False
        deadline = time.monotonic() + self.settings.pool_wait_seconds
        with self._lock:
            waiting = False
            try:
                while True:
                    jail = self._pop_live(pool)
                    if jail is not None:
                        self._refill_due.notify()  # one refill worker has work
                        jail.set_priority(RUNNING_NICE)
                        return jail, True
                    remaining = deadline - time.monotonic()
                    if waiting:
                        pool.waiters -= 1
                        waiting = False
                    if pool.waiters >= pool.starting or remaining <= 0 or self._closed:
                        break
                    pool.waiters += 1
                    waiting = True
                    self._condition.wait(remaining)
            finally:
                if waiting:
                    pool.waiters -= 1
        return self.cold_jail(pool), False

    def _pop_live(self, pool: _Pool) -> Jail | None:
        """Take the oldest ready jail that is still alive; discard dead ones."""
        while pool.ready:
            jail = pool.ready.popleft()
            if jail.alive():
                return jail
            log.warning("a warm %s jail died while idle; replacing it", pool.name)
            jail.close()
        return None

    def _needs(self) -> _Pool | None:
        """The pool furthest below its size (heavy first on ties), if any."""
        best: _Pool | None = None
        best_gap = 0
        for pool in self._all:
            gap = pool.size - len(pool.ready) - pool.starting
            if gap > best_gap:
                best, best_gap = pool, gap
        return best

    def _recycle_idle(self) -> list[Jail]:
        """Remove ready jails older than the idle limit (caller holds the lock)."""
        limit = time.monotonic() - self.settings.pool_max_idle_seconds
        stale: list[Jail] = []
        for pool in self._all:
            while pool.ready and pool.ready[0].ready_at < limit:
                stale.append(pool.ready.popleft())
        return stale

    def _refill_loop(self, done: threading.Event) -> None:
        """Refill until the pools close. The worker starts its jails itself, with no
        hand-off to the launcher thread, so it outlives them: a jail handed to a
        request may run on after the pools close (shutdown's grace)."""
        LAUNCHER.start_here()
        try:
            while not self._closed:
                try:
                    self._refill_step()
                except Exception:
                    log.exception("refill worker error")
                    time.sleep(FAILURE_BACKOFF_SECONDS)
        finally:
            done.set()
            LAUNCHER.outlive_jails()

    def _refill_step(self) -> None:
        """Recycle idle jails and start one jail where the pool is short (or wait)."""
        with self._lock:
            stale = self._recycle_idle()
            pool = None if self._closed else self._needs()
            if pool is None and not stale:
                if not self._closed:
                    self._refill_due.wait(timeout=1.0)
                return
            if pool is not None:
                pool.starting += 1
        for jail in stale:
            jail.close()
        if pool is not None:
            self._refill_one(pool)

    def _refill_one(self, pool: _Pool) -> None:
        jail: Jail | None = None
        try:
            jail = self._new_jail(pool)
            jail.wait_ready(self.settings.startup_timeout_seconds)
        except (JailStartError, OSError) as exc:
            log.error("could not warm a %s jail: %s", pool.name, exc)
            if jail is not None:
                jail.close()
            jail = None
            time.sleep(FAILURE_BACKOFF_SECONDS)
        with self._lock:
            pool.starting -= 1
            if jail is not None and not self._closed:
                pool.ready.append(jail)
                jail = None
            self._condition.notify_all()
        if jail is not None:
            jail.close()

    def wait_full(self, timeout: float) -> bool:
        """Block until every pool holds its full size of ready jails (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while any(len(p.ready) < p.size or p.starting for p in self._all):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    def ready_pids(self) -> set[int]:
        """Host pids of the nsjail processes of the ready jails."""
        with self._lock:
            jails = [jail for pool in self._all for jail in pool.ready]
        return {jail.proc.pid for jail in jails if jail.proc is not None}

    def idle_counts(self) -> dict[str, int]:
        """How many ready jails each pool holds now."""
        with self._lock:
            return {pool.name: len(pool.ready) for pool in (self.light, self.heavy, self.chart)}

    def close(self) -> None:
        """Stop refilling and destroy every ready jail; returns once they are gone
        (also when another thread's close was already under way)."""
        with self._closing:
            with self._lock:
                self._closed = True
                jails = [jail for pool in self._all for jail in pool.ready]
                for pool in self._all:
                    pool.ready.clear()
                self._condition.notify_all()
                self._refill_due.notify_all()
            for jail in jails:
                jail.close()
            for done in self._workers_done:
                done.wait(timeout=self.settings.startup_timeout_seconds + 5)
