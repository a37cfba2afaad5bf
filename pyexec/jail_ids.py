"""The host uid and gid each jail's processes run as: one of their own per jail.

Inside, every jail runs as 65534 (nobody). Outside, the kernel keeps some budgets per
user: pipe buffer pages (pipe-user-pages-soft), inotify watches and instances, the
process count on kernels before 5.14 (RLIMIT_NPROC; later ones count per user
namespace). Were every jail the same host uid, one jail could spend those for all the
others. So each jail gets its own outer id, from JAIL_ID_BASE up, pooled jails
included, given back once nsjail is reaped (and with it every process of the jail:
nsjail reaps the jail's init, which the kernel only lets end once its pid namespace
is empty). Ids are handed out round-robin, so a freed id is not reused until the
whole range has gone round.

``PYEXEC_JAIL_UIDS=shared`` maps every jail to 65534 instead, for a host where ids
above 65535 cannot be mapped (a user namespace that maps only 65536 ids): /healthz
then says ``jail_uids: "shared"``.

The ids are never 0 and never 65534, and they are per service process: two services
on one host would share them, which costs only those per-user budgets.
"""

from __future__ import annotations

import threading

INSIDE_ID = 65534
SHARED_ID = 65534
JAIL_ID_BASE = 100_000
JAIL_ID_COUNT = 65_536


class JailIdsExhausted(RuntimeError):
    """Every per-jail id is taken: more jails alive than JAIL_ID_COUNT."""


class JailIds:
    """Hands out one outer id per live jail, round-robin over the range."""

    def __init__(self, base: int = JAIL_ID_BASE, count: int = JAIL_ID_COUNT) -> None:
        self.base = base
        self.count = count
        self._taken: set[int] = set()
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        """A free id, marked taken until ``give_back``."""
        with self._lock:
            if len(self._taken) >= self.count:
                raise JailIdsExhausted(f"all {self.count} jail ids are in use")
            while True:
                candidate = self.base + self._next
                self._next = (self._next + 1) % self.count
                if candidate not in self._taken:
                    self._taken.add(candidate)
                    return candidate

    def give_back(self, outer_id: int) -> None:
        """Free ``outer_id`` (its jail is reaped); ids not handed out are ignored."""
        with self._lock:
            self._taken.discard(outer_id)

    def holds(self, outer_id: int) -> bool:
        """True while ``outer_id`` is taken."""
        with self._lock:
            return outer_id in self._taken

    def in_use(self) -> int:
        """How many ids are taken now."""
        with self._lock:
            return len(self._taken)


JAIL_IDS = JailIds()


def mapping_args(outer_id: int) -> list[str]:
    """nsjail's options mapping the jail's 65534 to ``outer_id``, for uid and gid."""
    mapping = f"{INSIDE_ID}:{outer_id}:1"
    return ["--user", mapping, "--group", mapping]
