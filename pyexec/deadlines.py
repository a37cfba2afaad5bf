"""Deadlines for whole socket operations: one thread shuts a socket down when its time is up.

A socket timeout bounds each ``recv`` or ``send``, not a whole body or answer: a client
that drips one byte just before every timeout holds a server thread for as long as it
likes. So the body's read and the answer's write get a deadline of their own, and at
that moment this watchdog shuts the socket down, which ends the blocked call at once.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass


@dataclass(slots=True)
class Watch:
    """One deadline on one socket; ``fired`` says whether it passed."""

    when: float
    sock: socket.socket
    how: int
    cancelled: bool = False
    fired: bool = False


# The heap holds (when, order, watch): tuples of a float and a unique int compare in C.
# Cancelled watches stay in it until they come to its top, so with a few thousand
# there, a dataclass's generated __lt__ cost ~30 Python calls per request.
Entry = tuple[float, int, Watch]


class Watchdog:
    """Shuts sockets down at their deadlines, from one thread per process."""

    def __init__(self) -> None:
        self._heap: list[Entry] = []
        # watch() and cancel() take the lock itself: Condition's own __enter__ and
        # __exit__ are Python calls, four per request for each of the three watches.
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self._order = itertools.count()
        self._pid = 0

    def watch(self, sock: socket.socket, seconds: float, how: int) -> Watch:
        """Shut ``sock`` down (``how``: socket.SHUT_RD, SHUT_RDWR) in ``seconds``
        unless ``cancel`` comes first."""
        watch = Watch(time.monotonic() + seconds, sock, how)
        entry = (watch.when, next(self._order), watch)
        with self._lock:
            if self._pid != os.getpid():  # a forked worker has no watcher thread yet
                self._pid = os.getpid()
                self._heap = []
                threading.Thread(target=self._run, name="deadlines", daemon=True).start()
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                # Only a new earliest deadline changes when the watcher must wake; a
                # notify per watch (three per request) cost a thread switch each.
                self._condition.notify()
        return watch

    def cancel(self, watch: Watch) -> bool:
        """Stop watching; True when the deadline had already passed."""
        with self._lock:
            watch.cancelled = True
            return watch.fired

    def _run(self) -> None:
        with self._condition:
            while True:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                watch = heapq.heappop(self._heap)[2]
                watch.fired = True
                with contextlib.suppress(OSError):  # already closed by its own side
                    watch.sock.shutdown(watch.how)


WATCHDOG = Watchdog()
