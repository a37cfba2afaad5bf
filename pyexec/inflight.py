"""One budget for the bytes the service holds for its clients: request bodies and
unsent answers (PYEXEC_INFLIGHT_MB).

Without it, memory grows with the number of clients rather than with the work: 146
clients that never read a 6 MB answer held 1.18 GB in the worker. A body reserves
its declared length (a chunked one the largest allowed body) before a byte is read;
an answer reserves its length once it is built and holds it until the server has
written it or given up. When the budget is full the request gets 503 ``overloaded``.

Fairness: reservations over ``LARGE_BYTES`` together hold at most half of the
budget, so clients of big answers can fill only that half and the other half is
always there for everyday requests (a hello's answer is a few hundred bytes). The
same rule as big jails in pyexec/admission.py.
"""

from __future__ import annotations

import functools
import threading

from pyexec.held import Held

LARGE_BYTES = 1024 * 1024


class Reservation(Held):
    """``size`` bytes held until ``release`` (pyexec.held)."""

    def __init__(self, budget: InFlight, size: int) -> None:
        super().__init__(functools.partial(budget._give_back, size))
        self.size = size


class InFlight:
    """The byte budget of one worker, under a lock of its own; never waits."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.large_budget_bytes = budget_bytes // 2
        self._lock = threading.Lock()
        self._used = 0
        self._large_used = 0

    def reserve(self, size: int) -> Reservation | None:
        """Hold ``size`` bytes, or None when they do not fit now."""
        large = size > LARGE_BYTES
        with self._lock:
            if self._used + size > self.budget_bytes:
                return None
            if large and self._large_used + size > self.large_budget_bytes:
                return None
            self._used += size
            if large:
                self._large_used += size
        return Reservation(self, size)

    def could_ever_fit(self, size: int) -> bool:
        """Whether ``size`` bytes fit in an empty budget (else refusing them is final)."""
        if size > LARGE_BYTES:
            return size <= self.large_budget_bytes
        return size <= self.budget_bytes

    def used(self) -> tuple[int, int]:
        """Bytes held now: (all, by reservations over LARGE_BYTES)."""
        with self._lock:
            return self._used, self._large_used

    def _give_back(self, size: int) -> None:
        with self._lock:
            self._used -= size
            if size > LARGE_BYTES:
                self._large_used -= size
