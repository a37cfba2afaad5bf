"""Who may run now: a fixed number of slots, a bounded queue for them, a memory budget.

At most ``max_concurrent`` scripts run at once. A request waits for a slot only
while fewer than ``max_queue`` others wait, and only for ``queue_wait_seconds``;
otherwise it is refused at once (503 ``overloaded``), so that the latency of the
admitted requests stays near normal under overload. The memory limits of running
jails never add up past ``memory_budget_mb``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pyexec.errors import Overloaded
from pyexec.settings import Settings


class Admission:
    """Slots, queue and memory budget of one instance, under a lock of its own."""

    def __init__(self, settings: Settings) -> None:
        self.max_concurrent = settings.max_concurrent
        self.max_queue = settings.max_queue
        self.queue_wait_seconds = settings.queue_wait_seconds
        self.memory_budget_mb = settings.memory_budget_mb
        self._slots = threading.BoundedSemaphore(settings.max_concurrent)
        self._lock = threading.Lock()
        self._waiting = 0
        self._memory = threading.Condition(self._lock)
        self._memory_used = 0

    @contextmanager
    def admit(self, memory_mb: int) -> Iterator[None]:
        """Hold a slot and ``memory_mb`` of the budget for the block, or raise Overloaded."""
        if not self._take_slot():
            raise self._overloaded()
        try:
            if not self._reserve_memory(memory_mb):
                raise self._overloaded()
            try:
                yield
            finally:
                self._release_memory(memory_mb)
        finally:
            self._slots.release()

    def waiting(self) -> int:
        """How many requests wait for a slot now."""
        with self._lock:
            return self._waiting

    def _take_slot(self) -> bool:
        with self._lock:
            queue_full = self._waiting >= self.max_queue
            if not queue_full:
                self._waiting += 1
        if queue_full:
            return self._slots.acquire(blocking=False)
        try:
            return self._slots.acquire(timeout=self.queue_wait_seconds)
        finally:
            with self._lock:
                self._waiting -= 1

    def _reserve_memory(self, memory_mb: int) -> bool:
        """Count ``memory_mb`` against the budget, waiting at most queue_wait_seconds."""
        deadline = time.monotonic() + self.queue_wait_seconds
        with self._memory:
            while self._memory_used + memory_mb > self.memory_budget_mb:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._memory.wait(remaining)
            self._memory_used += memory_mb
            return True

    def _release_memory(self, memory_mb: int) -> None:
        with self._memory:
            self._memory_used -= memory_mb
            self._memory.notify_all()

    def _overloaded(self) -> Overloaded:
        return Overloaded(
            f"The service is running its maximum of {self.max_concurrent} scripts "
            f"(or {self.memory_budget_mb} MB of jails) at once; retry in a moment."
        )
