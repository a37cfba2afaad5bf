"""Inside the guest: watch the service while it is tested.

Two threads, so a slow /healthz does not delay the memory samples or the reverse:
- /healthz once a second (a missed second is skipped, not bunched up); every answer
  that is not a 200, or does not come within 5 s, is a failure, kept with its time;
- the memory of the service (gunicorn master and worker) and of the service with
  its jails (PSS of the whole process tree), the guest's MemAvailable, and how many
  tasks were runnable at once (the guest has one CPU: that many share it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import service
from client import call


@dataclass
class Monitor:
    """Start with ``start``; ``stop`` ends both threads; the figures stay readable."""

    service_pid: int
    started: float = field(default_factory=time.monotonic)
    polls: int = 0
    failures: list[str] = field(default_factory=list)
    slowest_ms: float = 0.0
    peak_service_mib: float = 0.0
    peak_with_jails_mib: float = 0.0
    peak_processes: int = 0
    peak_runnable: int = 0
    min_available_mib: float = float("inf")
    service_exit: str = ""
    _done: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Monitor:
        for target in (self._poll_health, self._sample_memory):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _poll_health(self) -> None:
        tick = time.monotonic()
        while not self._done.is_set():
            began = time.monotonic()
            answer = call("GET", "/healthz", timeout=5)
            took = 1000 * (time.monotonic() - began)
            self.polls += 1
            self.slowest_ms = max(self.slowest_ms, took)
            if not (isinstance(answer, tuple) and answer[0] == 200):
                label = answer if isinstance(answer, str) else _label(answer)
                self.failures.append(f"t+{began - self.started:.0f}s {label}")
            tick += 1.0
            while tick < time.monotonic():
                tick += 1.0  # skip the seconds a slow answer took
            self._done.wait(tick - time.monotonic())

    def _sample_memory(self) -> None:
        while not self._done.is_set():
            table = service.processes()
            if self.service_pid not in table and not self.service_exit:
                self.service_exit = f"the service's process was gone at t+{self.now():.0f}s"
            tree = service.descendants(self.service_pid, table)
            kib = {pid: service.pss_kib(pid) for pid in tree}
            own = [pid for pid in tree if not _in_jail(pid, table, self.service_pid)]
            self.peak_service_mib = max(self.peak_service_mib, sum(kib[p] for p in own) / 1024)
            self.peak_with_jails_mib = max(self.peak_with_jails_mib, sum(kib.values()) / 1024)
            self.peak_processes = max(self.peak_processes, len(tree))
            self.min_available_mib = min(self.min_available_mib, service.mem_available_mib())
            self.peak_runnable = max(self.peak_runnable, service.runnable())
            self._done.wait(1.0)

    def now(self) -> float:
        """Seconds since the monitor started (the t+ of its events)."""
        return time.monotonic() - self.started

    def figures(self) -> dict[str, Any]:
        return {
            "service_exit": self.service_exit,
            "healthz_polls": self.polls,
            "healthz_failures": self.failures,
            "healthz_slowest_ms": round(self.slowest_ms),
            "peak_service_mib": round(self.peak_service_mib, 1),
            "peak_service_with_jails_mib": round(self.peak_with_jails_mib, 1),
            "peak_service_processes": self.peak_processes,
            "min_mem_available_mib": round(self.min_available_mib, 1),
            "peak_runnable": self.peak_runnable,
        }


def _label(answer: tuple[int, Any]) -> str:
    status, body = answer
    kind = body.get("kind") if isinstance(body, dict) else None
    return f"{status} {kind}" if kind else str(status)


def _in_jail(pid: int, table: dict[int, tuple[int, str]], root: int) -> bool:
    """True when ``pid`` is an nsjail process or below one (a jail), not the service."""
    while pid in table and pid != root:
        parent, name = table[pid]
        if name == "nsjail":
            return True
        pid = parent
    return False
