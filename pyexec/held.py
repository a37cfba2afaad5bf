"""Something held (a slot, memory, bytes) until ``release``.

Release is idempotent and may come from any thread: a jail's teardown, the server's
close of an answer and an error path may each try, and the resource must be given
back exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Held:
    """Calls ``give_back`` on the first ``release`` and never again."""

    def __init__(self, give_back: Callable[[], None]) -> None:
        self._give_back = give_back
        self._lock = threading.Lock()
        self._held = True

    def release(self) -> None:
        """Give what is held back (once)."""
        with self._lock:
            if not self._held:
                return
            self._held = False
        self._give_back()
