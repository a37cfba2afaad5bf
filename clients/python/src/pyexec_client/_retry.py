"""When the client sends a request again, and after how long.

Only where nothing can have run: a connection that never carried the request, and
503 ``overloaded`` / ``shutting_down``, which the service answers before a script
starts. Never a read timeout or a broken connection after the request left (the script
may have run, and running it twice is not the client's call), never a script failure.
All retries fit in the client's ``timeout``, so ``timeout`` bounds a call as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyexec_client._answers import RETRIED_KINDS, RETRY_AFTER_CAP_SECONDS
from pyexec_client.errors import ConnectionFailedError, OverloadedError, PyexecError


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_retries`` retries (so ``max_retries + 1`` attempts); waits from
    ``Retry-After`` (capped), else ``backoff`` (one entry per retry)."""

    max_retries: int = 3
    backoff: tuple[float, ...] = (0.5, 1.0, 2.0)
    max_wait: float = RETRY_AFTER_CAP_SECONDS
    # A retry needs time for its own answer: without it, it would only turn an
    # "overloaded" the caller can act on into a timeout.
    min_attempt_seconds: float = 1.0

    def delay(self, error: PyexecError, retries_done: int, remaining: float) -> float | None:
        """Seconds to wait before sending again after ``error``, or None to give up.

        ``retries_done`` counts the retries already sent; ``remaining`` is what is left
        of the call's ``timeout``: a wait that would not leave ``min_attempt_seconds``
        for the next attempt is not taken.
        """
        if retries_done >= self.max_retries or not retriable(error):
            return None
        wait = self.backoff[min(retries_done, len(self.backoff) - 1)]
        if isinstance(error, OverloadedError) and error.retry_after is not None:
            wait = error.retry_after
        wait = min(wait, self.max_wait)
        return wait if wait + self.min_attempt_seconds <= remaining else None


def retriable(error: PyexecError) -> bool:
    """Whether ``error`` guarantees that the script did not run (so a retry is safe)."""
    if isinstance(error, ConnectionFailedError):
        return not error.request_sent
    return isinstance(error, OverloadedError) and error.kind in RETRIED_KINDS
