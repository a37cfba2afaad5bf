"""Who may run now: a fixed number of slots, a bounded queue for them, a memory budget.

At most ``max_concurrent`` scripts run at once. A request waits for a slot only
while fewer than ``max_queue`` others wait, and only for ``queue_wait_seconds``;
otherwise it is refused at once (503 ``overloaded``), so that the latency of the
admitted requests stays near normal under overload.

Memory: a request at or below the default memory limit needs only a slot (the
instance is sized for ``max_concurrent`` of them). Requests above it together hold
at most half of ``memory_budget_mb``, so two big requests can never lock the
default-size ones out.

A ticket is held until the jail is torn down, not until the answer is sent: a jail
that lingers after its answer still counts.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pyexec.errors import Overloaded
from pyexec.held import Held
from pyexec.settings import Settings


class Ticket(Held):
    """A slot (and for a big request, memory) held until ``release`` (pyexec.held)."""

    def __init__(self, admission: Admission, memory_mb: int) -> None:
        super().__init__(functools.partial(admission._give_back, memory_mb))


class Admission:
    """Slots, queue and memory budget of one instance, under a lock of its own."""

    def __init__(self, settings: Settings) -> None:
        self.max_concurrent = settings.max_concurrent
        self.max_queue = settings.max_queue
        self.queue_wait_seconds = settings.queue_wait_seconds
        self.memory_budget_mb = settings.memory_budget_mb
        self.default_memory_mb = settings.memory_mb
        self.large_budget_mb = settings.memory_budget_mb // 2
        self._slots = threading.BoundedSemaphore(settings.max_concurrent)
        self._lock = threading.Lock()
        self._waiting = 0
        self._memory = threading.Condition(self._lock)
        self._large_used = 0

    def acquire(self, memory_mb: int) -> Ticket:
        """A ticket for one run of ``memory_mb``, or Overloaded."""
        if not self._take_slot():
            raise self._overloaded()
        if not self._reserve_memory(memory_mb):
            self._slots.release()
            raise self._overloaded()
        return Ticket(self, memory_mb)

    @contextmanager
    def admit(self, memory_mb: int) -> Iterator[None]:
        """Hold a ticket for the block, or raise Overloaded."""
        ticket = self.acquire(memory_mb)
        try:
            yield
        finally:
            ticket.release()

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

    def _is_large(self, memory_mb: int) -> bool:
        return memory_mb > self.default_memory_mb

    def _reserve_memory(self, memory_mb: int) -> bool:
        """Count a big request against half the budget, waiting at most queue_wait_seconds."""
        if not self._is_large(memory_mb):
            return True
        deadline = time.monotonic() + self.queue_wait_seconds
        with self._memory:
            while self._large_used + memory_mb > self.large_budget_mb:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._memory.wait(remaining)
            self._large_used += memory_mb
            return True

    def _give_back(self, memory_mb: int) -> None:
        if self._is_large(memory_mb):
            with self._memory:
                self._large_used -= memory_mb
                self._memory.notify_all()
        self._slots.release()

    def _overloaded(self) -> Overloaded:
        return Overloaded(
            f"The service is running its maximum of {self.max_concurrent} scripts "
            f"(or {self.large_budget_mb} MB of jails above the default "
            f"{self.default_memory_mb} MB) at once; retry in a moment."
        )
